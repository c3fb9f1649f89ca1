//! Ports that refuse, for the tests of every crate (the tokio and smol tests' helpers
//! include this file by its path).

use std::net::SocketAddr;
use std::sync::OnceLock;

/// A loopback port of `any`'s family that refuses TCP connects and on which no UDP
/// socket is bound: a TCP socket holds it, bound but not listening, for the life of the
/// test process. A port only freed after binding it could be taken meanwhile by another
/// test's listener, or by a connect to it as its own source port (a TCP self-connect).
/// The UDP port of the same number is only as free as any unbound port.
pub fn refusing_port(any: SocketAddr) -> SocketAddr {
    static V4: OnceLock<socket2::Socket> = OnceLock::new();
    static V6: OnceLock<socket2::Socket> = OnceLock::new();
    let (held, domain) = if any.is_ipv6() {
        (&V6, socket2::Domain::IPV6)
    } else {
        (&V4, socket2::Domain::IPV4)
    };
    let held = held.get_or_init(|| {
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
        let mut loopback = any;
        loopback.set_port(0);
        s.bind(&loopback.into()).expect("bind a refusing port");
        s
    });
    held.local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("an IP address")
}
