//! IPv6 on this machine, for the tests of every crate (the tokio and smol tests'
//! helpers include this file by its path): whether it has a loopback, and what a send
//! from IPv6 to IPv4 fails with.

use std::net::SocketAddr;
use std::sync::OnceLock;

/// Whether this machine has an IPv6 loopback (`::1`); containers often have none
/// (`net.ipv6.conf.lo.disable_ipv6=1`). IPv6 cases skip, saying so, where it is missing.
pub fn ipv6_loopback() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let has = std::net::UdpSocket::bind("[::1]:0").is_ok();
        if !has {
            eprintln!("note: no IPv6 loopback (::1) here: IPv6 cases are skipped");
        }
        has
    })
}

/// Whether this machine has no IPv6 loopback; says so (a test that needs one then
/// skips).
pub fn no_ipv6() -> bool {
    let skip = !ipv6_loopback();
    if skip {
        eprintln!("skipped: no IPv6 loopback");
    }
    skip
}

/// Whether `addr` is an IPv6 address on a machine without an IPv6 loopback; says so
/// (a test over both families then skips only its IPv6 case).
pub fn no_ipv6_for(addr: SocketAddr) -> bool {
    let skip = addr.is_ipv6() && !ipv6_loopback();
    if skip {
        eprintln!("skipped: no IPv6 loopback (the IPv6 case)");
    }
    skip
}

/// Checks the error of a send from an IPv6 UDP socket to an IPv4 destination (`what`
/// names the case): Linux answers through its IPv4 path (no route from `::1`), or
/// refuses the family or the address.
pub fn assert_v6_to_v4_send_failed(code: Option<i32>, what: impl std::fmt::Display) {
    assert!(
        [libc::ENETUNREACH, libc::EAFNOSUPPORT, libc::EINVAL]
            .map(Some)
            .contains(&code),
        "{what}: {code:?}"
    );
}
