//! The fast path in syscalls: a small send on an idle socket is one `send` syscall on
//! the calling thread and no poller work on any thread. Its own test binary, because
//! the tracer waits for any child of this process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use asyncresult_core::SocketFlags;
use common::trace;
use common::*;

/// Sends in the traced section.
const SENDS: usize = 100;

/// The traced section of the fast-path test (runs in a child process).
#[test]
#[ignore = "child scenario of fast_path_is_one_send_syscall_and_no_poller_work"]
fn child_fast_path_section() {
    let (ours, mut theirs) = tcp_to_std();
    ours.set_nodelay(true).unwrap();
    // Warm up: the first operation initialises lazily created state.
    ours.end_send(
        &ours
            .begin_send(b"w", SocketFlags::NONE, None, None)
            .unwrap(),
    )
    .unwrap();
    let mut one = [0u8; 1];
    theirs.read_exact(&mut one).unwrap();
    let buf: &'static [u8] = b"0123456789abcdef";
    trace::marker();
    for _ in 0..SENDS {
        let ar = ours.begin_send(buf, SocketFlags::NONE, None, None).unwrap();
        assert!(ar.completed_synchronously());
        let n = ours.end_send(&ar).unwrap();
        assert_eq!(n, 16);
    }
    trace::marker();
    let mut got = [0u8; 16 * SENDS];
    theirs.read_exact(&mut got).unwrap();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn fast_path_is_one_send_syscall_and_no_poller_work() {
    let section = trace::traced_section("child_fast_path_section");
    let sends = section.count_any(&[libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_write]);
    assert_eq!(
        sends,
        SENDS,
        "one send syscall per send: {:?}",
        section.names()
    );
    // No poller work per operation. On a loaded machine other threads may still
    // touch the poller inside the section: a worker descheduled before it goes back
    // to `epoll_wait` after finishing with the socket's registration edge, or the
    // monitor, seeing a descheduled worker as stuck, starts one more (measured
    // beside two busy loops: up to 5 `epoll_wait` calls). A handful, never one per
    // send.
    let poller = section.count_any(trace::POLLER_CALLS);
    assert!(
        poller < SENDS / 10,
        "poller work per send: {:?}",
        section.names()
    );
    // The caller made nothing but the sends (other threads may only do their own
    // bookkeeping, such as the monitor's timer).
    assert_eq!(
        section.caller_calls(),
        vec![libc::SYS_sendto; SENDS],
        "{:?}",
        section.names()
    );
}
