//! Fairness on one thread: a task that loops on operations that are always ready (its
//! data is always there, or its peer always drains) spends tokio's cooperative budget,
//! so the other tasks of a current-thread runtime still run, with bounded latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_tokio::UdpSocket;
use common::{loopback, pair, pair_with_std};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `body` on a current-thread runtime on its own thread; fails if it does not
/// finish within `limit` (a task that never yields starves the runtime's own timers,
/// so the bound must come from outside the runtime).
fn bounded_current_thread<F, Fut>(limit: Duration, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (done_tx, done) = mpsc::channel();
    let handle = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(body());
        let _ = done_tx.send(());
    });
    match done.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("starved: the runtime did not finish within {limit:?}")
        }
    }
}

/// A std thread that floods `s` until `stop` (or its peer goes).
fn flood(mut s: std::net::TcpStream, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let chunk = [5u8; 16 << 10];
        while !stop.load(Ordering::Relaxed) {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    })
}

/// A std thread that drains `s` until its peer goes.
fn drain(mut s: std::net::TcpStream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut b = vec![0u8; 64 << 10];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    })
}

#[derive(Clone, Copy, Debug)]
enum Hot {
    Receive,
    Send,
    Read,
    Write,
    UdpReceiveFrom,
}

/// Spawns a task that loops on an always-ready operation of kind `hot` until `stop`
/// (at most `cap` steps, so that a failure ends too), counting its steps.
async fn spawn_hot(
    hot: Hot,
    stop: Arc<AtomicBool>,
    steps: Arc<AtomicUsize>,
) -> (tokio::task::JoinHandle<()>, Vec<thread::JoinHandle<()>>) {
    const CAP: usize = 20_000_000;
    let mut helpers = Vec::new();
    let task = match hot {
        Hot::Receive | Hot::Read => {
            let (mut ours, theirs) = pair_with_std().await;
            helpers.push(flood(theirs, stop.clone()));
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                for _ in 0..CAP {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = if matches!(hot, Hot::Receive) {
                        ours.receive(Vec::with_capacity(64)).await.unwrap().0
                    } else {
                        ours.read(&mut buf).await.unwrap()
                    };
                    if n == 0 {
                        // The flood ended, and closed, while this task waited on an
                        // empty buffer: only after the stop.
                        assert!(stop.load(Ordering::SeqCst), "end of stream before the stop");
                        break;
                    }
                    steps.fetch_add(1, Ordering::Relaxed);
                }
            })
        }
        Hot::Send | Hot::Write => {
            let (mut ours, theirs) = pair_with_std().await;
            helpers.push(drain(theirs));
            tokio::spawn(async move {
                for _ in 0..CAP {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if matches!(hot, Hot::Send) {
                        ours.send(&[1u8; 64][..]).await.unwrap();
                    } else {
                        ours.write_all(&[1u8; 64]).await.unwrap();
                    }
                    steps.fetch_add(1, Ordering::Relaxed);
                }
            })
        }
        Hot::UdpReceiveFrom => {
            let ours = UdpSocket::bind(loopback()).await.unwrap();
            let to = ours.local_addr().unwrap();
            let stop2 = stop.clone();
            helpers.push(thread::spawn(move || {
                let sender = std::net::UdpSocket::bind(loopback()).unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    let _ = sender.send_to(&[3u8; 32], to);
                }
                // The receiving task may have checked the stop just before it, and now
                // wait on an empty buffer (this thread starved of CPU): one datagram
                // more ends its wait, and it sees the stop.
                sender.send_to(&[3u8; 32], to).unwrap();
            }));
            tokio::spawn(async move {
                for _ in 0..CAP {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    ours.receive_from(Vec::with_capacity(64)).await.unwrap();
                    steps.fetch_add(1, Ordering::Relaxed);
                }
            })
        }
    };
    (task, helpers)
}

fn p99(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn starves_nothing(hot: Hot) {
    bounded_current_thread(Duration::from_secs(60), move || async move {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        let (task, helpers) = spawn_hot(hot, stop.clone(), steps.clone()).await;
        // Let the hot task get going.
        while steps.load(Ordering::Relaxed) < 1000 {
            tokio::task::yield_now().await;
        }
        // Round trips between two of our sockets, one task each side.
        let (mut a, b) = pair().await;
        let echo = tokio::spawn(async move {
            let mut b = b;
            let mut buf = [0u8; 1];
            while b.read_exact(&mut buf).await.is_ok() {
                b.write_all(&buf).await.unwrap();
            }
        });
        let mut rtts = Vec::new();
        let mut sleeps = Vec::new();
        let mut buf = [0u8; 1];
        let s0 = steps.load(Ordering::Relaxed);
        let started = Instant::now();
        for _ in 0..300 {
            let t = Instant::now();
            a.write_all(b"p").await.unwrap();
            a.read_exact(&mut buf).await.unwrap();
            rtts.push(t.elapsed());
            let t = Instant::now();
            tokio::time::sleep(Duration::from_micros(100)).await;
            sleeps.push(t.elapsed());
        }
        let hot_rate =
            (steps.load(Ordering::Relaxed) - s0) as f64 / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        task.await.unwrap();
        drop(a);
        echo.await.unwrap();
        for h in helpers {
            h.join().unwrap();
        }
        let (r50, r99, rmax) = p99(rtts);
        let (s50, s99, smax) = p99(sleeps);
        eprintln!(
            "{hot:?}: round trips p50={r50:?} p99={r99:?} max={rmax:?}; 100µs sleeps p50={s50:?} p99={s99:?} max={smax:?}; hot {hot_rate:.0}/s"
        );
        // Starvation would be seconds; a loaded 2-core machine gave p99s up to 17 ms.
        let limit = Duration::from_millis(250);
        assert!(r99 < limit, "{hot:?}: round trip p99 {r99:?}");
        assert!(s99 < limit, "{hot:?}: sleep p99 {s99:?}");
    });
}

#[test]
fn a_task_looping_on_ready_receives_starves_no_other_task() {
    starves_nothing(Hot::Receive);
}

#[test]
fn a_task_looping_on_ready_sends_starves_no_other_task() {
    starves_nothing(Hot::Send);
}

#[test]
fn a_task_looping_on_ready_reads_starves_no_other_task() {
    starves_nothing(Hot::Read);
}

#[test]
fn a_task_looping_on_ready_writes_starves_no_other_task() {
    starves_nothing(Hot::Write);
}

#[test]
fn a_task_looping_on_ready_datagrams_starves_no_other_task() {
    starves_nothing(Hot::UdpReceiveFrom);
}
