//! The callback pool under blocking callbacks, in a process of its own (exact thread
//! counts): it grows while callbacks block, to no more than its cap (128 workers),
//! every blocked callback comes free, and once idle (10 s) it shrinks back to exactly
//! its base, whichever worker polls as the leader when it goes idle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_conformance::{bounded, loopback};
use asyncresult_core::driver::engine_stats;
use asyncresult_core::{AsyncResult, Socket, SocketFlags};

fn core_pair() -> (Socket, Socket) {
    let listener = Socket::listen_tcp(loopback(), 16).unwrap();
    let client = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
    let server = listener
        .end_accept(&listener.begin_accept(None, None).unwrap())
        .unwrap();
    (client, server)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn the_pool_grows_to_its_cap_under_blocked_callbacks_and_shrinks_back() {
    const BLOCKED: usize = 160;
    bounded(Duration::from_secs(60), "hung", || {
        let base = engine_stats().unwrap().workers;
        let threads_before = threads();
        let started = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = mpsc::channel::<usize>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        let mut keep = Vec::new();
        for i in 0..BLOCKED {
            let (a, b) = core_pair();
            let (started, peak, done, release) = (
                Arc::clone(&started),
                Arc::clone(&peak),
                done_tx.clone(),
                Arc::clone(&release_rx),
            );
            b.begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                Some(Box::new(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                    let now = started.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Blocks until released (one release per callback).
                    release
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(40))
                        .expect("never released");
                    started.fetch_sub(1, Ordering::SeqCst);
                    done.send(i).unwrap();
                })),
                None,
            )
            .unwrap();
            a.end_send(
                &a.begin_send(b"x".to_vec(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
            keep.push((a, b));
        }
        // The pool grows while they block, up to the cap.
        let deadline = Instant::now() + Duration::from_secs(20);
        while started.load(Ordering::SeqCst) < 100 {
            assert!(
                Instant::now() < deadline,
                "the pool did not grow: {} running",
                started.load(Ordering::SeqCst)
            );
            thread::yield_now();
        }
        let grown = engine_stats().unwrap().workers;
        assert!(grown <= 128, "the pool grew past its cap: {grown}");
        for _ in 0..BLOCKED {
            release_tx.send(()).unwrap();
        }
        for _ in 0..BLOCKED {
            done_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a blocked callback never ran");
        }
        assert!(peak.load(Ordering::SeqCst) <= 128);
        drop(keep);
        // Followers idle for 10 s retire while the pool is above its base, so it gets
        // back to exactly its base even if one of the added workers leads.
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let workers = engine_stats().unwrap().workers;
            if workers <= base.max(2) && threads() <= threads_before + 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "workers never retired: {workers} workers, {} threads (before: {base}, {threads_before})",
                threads()
            );
            thread::sleep(Duration::from_millis(100));
        }
    });
}
