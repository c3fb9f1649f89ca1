//! Scale: many sockets with pending operations are multiplexed over the poller, with no
//! thread per socket or per operation. Its own test binary, so the thread count is
//! this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::thread;

use asyncresult_core::{Socket, SocketFlags};
use common::*;

#[test]
fn a_thousand_connections_with_pending_sends_all_complete_and_add_no_threads() {
    const N: usize = 1000;
    bounded(secs(120), || {
        // Each connection takes three descriptors (ours, the peer's, the reader's clone).
        let limit = raise_fd_limit(8192);
        assert!(
            limit >= 4 * N as u64,
            "this test needs {} file descriptors, and the hard limit here is {limit} \
             (raise it: ulimit -Hn)",
            4 * N
        );
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Warm the engine up so its threads exist before we count.
        drop(Socket::connect_tcp(addr).unwrap());
        drop(listener.accept().unwrap());
        let threads_before = thread_count();
        let mut ours = Vec::with_capacity(N);
        let mut theirs = Vec::with_capacity(N);
        for _ in 0..N {
            let s = Socket::connect_tcp(addr).unwrap();
            // Small kernel buffers, so every send has to wait for its reader.
            s.as_socket2().set_send_buffer_size(16 << 10).unwrap();
            s.set_nodelay(true).unwrap();
            ours.push(s);
            theirs.push(listener.accept().unwrap().0);
        }
        let len = 1 << 20;
        let pending: Vec<_> = ours
            .iter()
            .map(|s| {
                s.begin_send(vec![7u8; len], SocketFlags::NONE, None, None)
                    .unwrap()
            })
            .collect();
        let still_pending = pending.iter().filter(|ar| !ar.is_completed()).count();
        assert!(still_pending > N / 2, "only {still_pending} sends waited");
        // No thread per socket or per operation. The monitor may still add a worker
        // when the CPU is so loaded that the leader looks stuck for a period (as on a
        // busy 2-core CI machine): a few at most, against a thousand sockets.
        let added = thread_count().saturating_sub(threads_before);
        assert!(added <= 8, "sockets must not add threads: {added} more");
        // Drain every peer from a few threads.
        let readers: Vec<_> = theirs
            .chunks_mut(N / 4)
            .map(|chunk| {
                let mut chunk: Vec<_> = chunk.iter_mut().map(|s| s.try_clone().unwrap()).collect();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    for s in &mut chunk {
                        let mut left = len;
                        while left > 0 {
                            let n = s.read(&mut buf[..left.min(1 << 16)]).unwrap();
                            assert!(n > 0);
                            left -= n;
                        }
                    }
                })
            })
            .collect();
        for (s, ar) in ours.iter().zip(&pending) {
            assert_eq!(s.end_send(ar).unwrap(), len);
        }
        for r in readers {
            r.join().unwrap();
        }
    });
}
