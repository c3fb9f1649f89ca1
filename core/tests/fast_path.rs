//! The fast path in syscalls: a small send on an idle socket is one `send` syscall on
//! the calling thread and no poller work on any thread. Its own test binary, because
//! the tracer waits for any child of this process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use asyncresult_core::SocketFlags;
use common::trace;
use common::*;

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
    for _ in 0..10 {
        let ar = ours.begin_send(buf, SocketFlags::NONE, None, None).unwrap();
        assert!(ar.completed_synchronously());
        let n = ours.end_send(&ar).unwrap();
        assert_eq!(n, 16);
    }
    trace::marker();
    let mut got = [0u8; 160];
    theirs.read_exact(&mut got).unwrap();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn fast_path_is_one_send_syscall_and_no_poller_work() {
    bounded(secs(60), || {
        let section = trace::trace_child("child_fast_path_section");
        assert!(section.exit_ok, "child scenario failed");
        let sends = section.count_any(&[libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_write]);
        assert_eq!(
            sends,
            10,
            "one send syscall per send: {:?}",
            section.names()
        );
        assert_eq!(
            section.count_any(trace::POLLER_CALLS),
            0,
            "no poller work: {:?}",
            section.names()
        );
        // The caller made nothing but the ten sends (other threads may only do
        // their own bookkeeping, such as the monitor's timer, none of it poller work).
        assert_eq!(
            section.caller_calls(),
            vec![libc::SYS_sendto; 10],
            "{:?}",
            section.names()
        );
    });
}
