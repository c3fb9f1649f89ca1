//! The smol adapter under executor set-ups other than the plain one: `LocalExecutor`,
//! `async_io::block_on` next to `smol::block_on` and `futures::executor::block_on`,
//! several executors on several threads sharing sockets, a `block_on` thread that exits
//! with futures pending, a `block_on` thread stuck in core's blocking `end_*`, and
//! executors created and dropped in a loop (threads and descriptors come back).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use asyncresult_smol::{Error, SocketFlags, TcpListener, TcpStream};
use futures::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{bounded, loopback};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn is_child() -> bool {
    std::env::var_os("ASYNCRESULT_CHILD").is_some()
}

fn child_ok(name: &str) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("ASYNCRESULT_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

/// An echo loop over `&TcpStream` (futures-io), until end of stream.
async fn echo(server: &TcpStream) -> usize {
    let mut buf = [0u8; 256];
    let mut total = 0;
    loop {
        let n = (&mut &*server).read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        (&mut &*server).write_all(&buf[..n]).await.unwrap();
        total += n;
    }
}

/// `rounds` small round trips with `send`/`receive`; returns the slowest.
async fn round_trips(client: &TcpStream, rounds: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for i in 0..rounds {
        let start = Instant::now();
        client.send(vec![i as u8; 2]).await.unwrap();
        let mut got = 0;
        while got < 2 {
            let (n, buf) = client.receive(Vec::with_capacity(8)).await.unwrap();
            assert!(n > 0 && buf.iter().all(|&b| b == i as u8));
            got += n;
        }
        worst = worst.max(start.elapsed());
    }
    worst
}

/// A `LocalExecutor` (tasks that are not `Send`), run by each of the three `block_on`s.
#[test]
fn local_executor_under_each_block_on() {
    bounded(Duration::from_secs(60), || {
        for which in 0..3 {
            let ex = async_executor::LocalExecutor::new();
            let work = ex.run(async {
                let (client, server) = pair().await;
                let server = std::rc::Rc::new(server);
                let s2 = server.clone();
                let echoing = ex.spawn(async move { echo(&s2).await });
                let worst = round_trips(&client, 200).await;
                client.socket().shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(echoing.await, 400);
                worst
            });
            let worst = match which {
                0 => smol::block_on(work),
                1 => async_io::block_on(work),
                _ => futures::executor::block_on(work),
            };
            assert!(
                worst < Duration::from_secs(1),
                "block_on {which}: slowest {worst:?}"
            );
        }
    });
}

/// Four threads, each with an executor of another kind, share streams: each stream is
/// written on one thread and read on another, and echoed back on a third.
#[test]
fn several_executors_on_several_threads_share_sockets() {
    bounded(Duration::from_secs(90), || {
        const STREAMS: usize = 8;
        const LEN: usize = 1 << 20;
        let pairs: Vec<(Arc<TcpStream>, Arc<TcpStream>)> = smol::block_on(async {
            let mut v = Vec::new();
            for _ in 0..STREAMS {
                let (c, s) = pair().await;
                v.push((Arc::new(c), Arc::new(s)));
            }
            v
        });
        type Job = Box<
            dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send,
        >;
        let mut jobs: Vec<Vec<Job>> = (0..4).map(|_| Vec::new()).collect();
        for (i, (c, s)) in pairs.iter().enumerate() {
            let (c1, c2, s1) = (c.clone(), c.clone(), s.clone());
            // Writer on thread i % 4, echo on (i + 1) % 4, reader on (i + 2) % 4.
            jobs[i % 4].push(Box::new(move || {
                Box::pin(async move {
                    let data: Vec<u8> = (0..LEN).map(|k| (k * 7 + i) as u8).collect();
                    for chunk in data.chunks(60_000) {
                        c1.send(chunk.to_vec()).await.unwrap();
                    }
                    c1.socket().shutdown(std::net::Shutdown::Write).unwrap();
                })
            }));
            jobs[(i + 1) % 4].push(Box::new(move || {
                Box::pin(async move {
                    assert_eq!(echo(&s1).await, LEN);
                    s1.socket().shutdown(std::net::Shutdown::Write).unwrap();
                })
            }));
            jobs[(i + 2) % 4].push(Box::new(move || {
                Box::pin(async move {
                    let mut got = Vec::with_capacity(LEN);
                    (&mut &*c2).read_to_end(&mut got).await.unwrap();
                    assert_eq!(got.len(), LEN);
                    assert!(got.iter().enumerate().all(|(k, &b)| b == (k * 7 + i) as u8));
                })
            }));
        }
        let mut threads = Vec::new();
        for (t, list) in jobs.into_iter().enumerate() {
            threads.push(std::thread::spawn(move || {
                let futs: Vec<_> = list.into_iter().map(|j| j()).collect();
                match t {
                    0 => {
                        let ex = async_executor::LocalExecutor::new();
                        let tasks: Vec<_> = futs.into_iter().map(|f| ex.spawn(f)).collect();
                        smol::block_on(ex.run(async {
                            for t in tasks {
                                t.await;
                            }
                        }));
                    }
                    1 => futures::executor::block_on(futures::future::join_all(futs)).clear(),
                    2 => {
                        let ex = async_executor::Executor::new();
                        let tasks: Vec<_> = futs.into_iter().map(|f| ex.spawn(f)).collect();
                        async_io::block_on(ex.run(async {
                            for t in tasks {
                                t.await;
                            }
                        }));
                    }
                    _ => {
                        let tasks: Vec<_> = futs.into_iter().map(smol::spawn).collect();
                        futures::executor::block_on(async {
                            for t in tasks {
                                t.await;
                            }
                        });
                    }
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// A thread whose `block_on` returns (and which then exits) with futures still pending
/// that it polled: another thread finishes them, its waker gets the wake-ups. Also a
/// `LocalExecutor` dropped with its thread: its tasks' sockets close (the peer reads
/// end of stream).
#[test]
fn a_block_on_thread_exits_with_futures_pending() {
    bounded(Duration::from_secs(60), || {
        let (client, server) = smol::block_on(pair());
        let (client, server) = (Arc::new(client), Arc::new(server));
        type Pending =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, Error>> + Send>>;
        let (c, c1) = (client.clone(), client.clone());
        let (receive, send): (Pending, Pending) = std::thread::spawn(move || {
            let mut receive: Pending = Box::pin(async move {
                let (n, _) = c1.receive(Vec::with_capacity(16)).await?;
                Ok(n)
            });
            // A send too big for the kernel's buffers: it waits for room.
            let mut send: Pending = Box::pin(async move { c.send(vec![5u8; 16 << 20]).await });
            smol::block_on(futures::future::poll_fn(|cx| {
                assert!(receive.as_mut().poll(cx).is_pending());
                assert!(send.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            }));
            (receive, send)
        })
        .join()
        .unwrap();
        // The thread is gone. The peer reads the big send, then answers.
        let server2 = server.clone();
        let reader = std::thread::spawn(move || {
            futures::executor::block_on(async move {
                let mut got = 0;
                while got < 16 << 20 {
                    let (n, _) = server2.receive(Vec::with_capacity(1 << 16)).await.unwrap();
                    got += n;
                }
                server2.send(&b"answer"[..]).await.unwrap();
            })
        });
        let (sent, received) = futures::executor::block_on(async { futures::join!(send, receive) });
        assert_eq!(sent.unwrap(), 16 << 20);
        reader.join().unwrap();
        assert_eq!(received.unwrap(), 6);

        // A LocalExecutor's tasks die with their thread; their sockets close.
        let (peer, theirs) = smol::block_on(pair());
        std::thread::spawn(move || {
            let ex = async_executor::LocalExecutor::new();
            ex.spawn(async move {
                let _ = theirs.receive(Vec::with_capacity(4)).await;
            })
            .detach();
            smol::block_on(ex.run(async {
                for _ in 0..10 {
                    futures_lite_yield().await;
                }
            }));
        })
        .join()
        .unwrap();
        let (n, _) = smol::block_on(async {
            asyncresult_smol_timeout(peer.receive(Vec::with_capacity(4))).await
        })
        .unwrap();
        assert_eq!(n, 0, "the dropped task's socket did not close");
    });
}

async fn futures_lite_yield() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

async fn asyncresult_smol_timeout<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::pin_mut!(f);
    let timer = async_io::Timer::after(Duration::from_secs(10));
    match futures::future::select(f, timer).await {
        futures::future::Either::Left((v, _)) => v,
        futures::future::Either::Right(_) => panic!("timed out"),
    }
}

/// A `smol::block_on` thread stuck in core's blocking `end_receive` (not reacting):
/// smol futures on other threads keep completing promptly, and the blocked end gets
/// its completion.
#[test]
fn a_block_on_thread_blocked_in_a_blocking_end() {
    bounded(Duration::from_secs(60), || {
        let (a, b) = smol::block_on(pair());
        let b_sock = b.socket().clone();
        let (started_tx, started_rx) = mpsc::channel();
        let blocked = std::thread::spawn(move || {
            smol::block_on(async move {
                let pending = b_sock
                    .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap();
                started_tx.send(()).unwrap();
                b_sock.end_receive(&pending).unwrap().0
            })
        });
        started_rx.recv().unwrap();
        let worst = std::thread::spawn(|| {
            smol::block_on(async {
                let (c, s) = pair().await;
                let s = Arc::new(s);
                let s2 = s.clone();
                let echoing = smol::spawn(async move { echo(&s2).await });
                let worst = round_trips(&c, 300).await;
                c.socket().shutdown(std::net::Shutdown::Write).unwrap();
                echoing.await;
                worst
            })
        })
        .join()
        .unwrap();
        smol::block_on(a.send(&b"late"[..])).unwrap();
        assert_eq!(blocked.join().unwrap(), 4);
        assert!(
            worst < Duration::from_secs(2),
            "slowest round trip {worst:?}"
        );
    });
}

/// Executors with threads of their own made, used and dropped in a loop: the process's
/// threads and descriptors come back to where they were. In a child, alone.
#[test]
fn executors_made_and_dropped_leave_nothing_behind() {
    child_ok("child_executors_made_and_dropped");
}

#[test]
#[ignore = "child scenario of executors_made_and_dropped_leave_nothing_behind"]
fn child_executors_made_and_dropped() {
    if !is_child() {
        return;
    }
    bounded(Duration::from_secs(120), || {
        let cycle = || {
            let ex = Arc::new(async_executor::Executor::new());
            let (stop_tx, stop_rx) = async_channel_like();
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let ex = ex.clone();
                    let stop = stop_rx.clone();
                    std::thread::spawn(move || futures::executor::block_on(ex.run(stop.wait())))
                })
                .collect();
            let worst = futures::executor::block_on(ex.spawn(async {
                let (c, s) = pair().await;
                let s = Arc::new(s);
                let s2 = s.clone();
                let echoing = smol::spawn(async move { echo(&s2).await });
                let w = round_trips(&c, 30).await;
                drop(c);
                echoing.await;
                w
            }));
            stop_tx.fire();
            for t in threads {
                t.join().unwrap();
            }
            worst
        };
        cycle();
        let stats0 = asyncresult_core::driver::engine_stats().unwrap();
        let (fds0, threads0) = (fd_count(), thread_count());
        for i in 0..30 {
            let worst = cycle();
            assert!(
                worst < Duration::from_secs(2),
                "cycle {i}: slowest {worst:?}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (fds, threads) = (fd_count(), thread_count());
            let stats = asyncresult_core::driver::engine_stats().unwrap();
            if fds <= fds0 && threads <= threads0 + stats.workers.saturating_sub(stats0.workers) {
                assert_eq!(stats.drivers, 1, "async-io's one driver");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left behind: fds {fds0} -> {fds}, threads {threads0} -> {threads}, \
                 engine {stats0:?} -> {stats:?}"
            );
            std::thread::yield_now();
        }
    });
}

/// A one-shot stop signal any executor can await.
#[derive(Clone)]
struct Stop(Arc<std::sync::Mutex<StopState>>);

/// Fired, and the wakers waiting for it.
type StopState = (bool, Vec<std::task::Waker>);

fn async_channel_like() -> (Stop, Stop) {
    let s = Stop(Arc::new(std::sync::Mutex::new((false, Vec::new()))));
    (s.clone(), s)
}

impl Stop {
    fn fire(&self) {
        let mut g = self.0.lock().unwrap();
        g.0 = true;
        for w in g.1.drain(..) {
            w.wake();
        }
    }

    async fn wait(self) {
        futures::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            if g.0 {
                std::task::Poll::Ready(())
            } else {
                g.1.push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }
}
