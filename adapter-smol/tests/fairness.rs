//! Fairness on one thread: a task that loops on always-ready operations under a
//! single-threaded executor. async-io and smol's executors keep no cooperative budget
//! (a native `Async<TcpStream>` read loop whose data is always there never yields
//! either), so such a loop runs until it ends on its own; what this checks is that
//! ours is no worse than the native one there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_smol::TcpStream;
use futures::io::AsyncReadExt;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn bounded<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let v = body();
        let _ = tx.send(());
        v
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang"),
    }
}

/// Floods `s` until `stop`, with one pause: after the first MiB it waits (bounded)
/// until the reading loop has met an empty buffer (a `Pending` poll), so that the
/// native loop and ours each meet one at about the same step, however loaded the
/// machine is (without the pause, whether a loop ever met one depended on whether this
/// thread was descheduled long enough for the reader to catch up).
fn flood(mut s: std::net::TcpStream, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let chunk = [5u8; 16 << 10];
        let mut written = 0;
        let mut paused = false;
        while !stop.load(Ordering::Relaxed) {
            if !paused && written >= 1 << 20 {
                paused = true;
                let before = PENDING.load(Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while PENDING.load(Ordering::SeqCst) == before
                    && !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    thread::yield_now();
                }
            }
            if s.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len();
        }
    })
}

/// How many hot steps ran before another task of the same `LocalExecutor` was polled
/// again (`steps_cap` if never before the hot loop ended), for our stream (`native == false`) or a native `Async<TcpStream>`.
/// Polls of the hot loop's operation that returned `Pending` (it yielded).
static PENDING: AtomicUsize = AtomicUsize::new(0);

fn steps_before_the_other_task_ran(native: bool, steps_cap: usize) -> usize {
    let ex = async_executor::LocalExecutor::new();
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    smol::block_on(ex.run(async {
        let theirs_fut = async { listener.accept().unwrap().0 };
        let (stop2, steps2) = (stop.clone(), steps.clone());
        let hot = if native {
            let mut ours = async_io::Async::<std::net::TcpStream>::connect(addr)
                .await
                .unwrap();
            let helper = flood(theirs_fut.await, stop.clone());
            let task = ex.spawn(async move {
                let mut buf = [0u8; 64];
                for _ in 0..steps_cap {
                    let mut f = std::pin::pin!(ours.read(&mut buf));
                    let r = std::future::poll_fn(|cx| {
                        let p = f.as_mut().poll(cx);
                        if p.is_pending() {
                            PENDING.fetch_add(1, Ordering::Relaxed);
                        }
                        p
                    })
                    .await;
                    assert!(r.unwrap() > 0);
                    steps2.fetch_add(1, Ordering::Relaxed);
                }
                stop2.store(true, Ordering::SeqCst);
            });
            (task, helper)
        } else {
            let ours = TcpStream::connect(addr).await.unwrap();
            let helper = flood(theirs_fut.await, stop.clone());
            let task = ex.spawn(async move {
                for _ in 0..steps_cap {
                    let mut f = std::pin::pin!(ours.receive(Vec::with_capacity(64)));
                    let r = std::future::poll_fn(|cx| {
                        let p = f.as_mut().poll(cx);
                        if p.is_pending() {
                            PENDING.fetch_add(1, Ordering::Relaxed);
                        }
                        p
                    })
                    .await;
                    assert!(r.unwrap().0 > 0);
                    steps2.fetch_add(1, Ordering::Relaxed);
                }
                stop2.store(true, Ordering::SeqCst);
            });
            (task, helper)
        };
        let (steps3, seen2) = (steps.clone(), seen.clone());
        let other = ex.spawn(async move {
            // The first poll of this task after the hot task took its first step:
            // how many steps had it taken by then?
            loop {
                let now = steps3.load(Ordering::Relaxed);
                if now > 0 {
                    seen2.store(now, Ordering::SeqCst);
                    break;
                }
                smol::future::yield_now().await;
            }
        });
        other.await;
        hot.0.await;
        stop.store(true, Ordering::SeqCst);
        hot.1.join().unwrap();
    }));
    eprintln!(
        "native={native}: {} hot steps, {} pending polls",
        steps.load(Ordering::SeqCst),
        PENDING.swap(0, Ordering::SeqCst)
    );
    seen.load(Ordering::SeqCst)
}

#[test]
fn a_ready_receive_loop_yields_as_a_native_async_io_loop_does() {
    bounded(Duration::from_secs(120), || {
        const CAP: usize = 200_000;
        let native = steps_before_the_other_task_ran(true, CAP);
        let ours = steps_before_the_other_task_ran(false, CAP);
        eprintln!(
            "steps before another task ran: native async-io {native}, ours {ours} (cap {CAP})"
        );
        // Not worse than native: both meet the empty buffer the flood's pause leaves,
        // and there the native loop yields to the other task; so must ours.
        assert!(
            native < CAP,
            "the native loop never yielded (the flood's pause)"
        );
        assert!(ours < CAP, "ours never yields where native async-io does");
    });
}
