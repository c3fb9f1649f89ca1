//! The lifecycle of sockets and futures through the tokio adapter (API.md
//! semantics §7–§9 and the adapter section): close while futures of every kind wait,
//! the `*_timeout` forms racing with data (no byte, datagram or connection lost),
//! timed-out sends (torn or not), dropped send futures, and descriptors released.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncresult_tokio::{Error, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair, pair_with_std, pattern, timeouts};

/// Every test body runs under a hard time limit.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test hung")
}

/// Polls `fut` once; `None` if it is pending.
async fn poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process.
fn child_ok(name: &str) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

// ---- close while futures wait -----------------------------------------------------------

/// `close()` on the core socket while futures of every kind wait on it, each in a task
/// of its own: every one resolves with `Disposed` (io traits: `NotConnected`), and the
/// peer of the stream whose send was aborted sees a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_resolves_every_waiting_future_with_disposed() {
    bounded(async {
        let (ours, mut theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let ours = Arc::new(ours);
        let listener = Arc::new(TcpListener::bind(loopback()).await.unwrap());
        let udp = Arc::new(UdpSocket::bind(loopback()).await.unwrap());

        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut tasks = Vec::new();
        {
            let (s, st) = (ours.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut = Box::pin(s.receive(Vec::with_capacity(8)));
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        {
            let (s, st) = (ours.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut = Box::pin(s.send(vec![1u8; 16 << 20]));
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        {
            let (l, st) = (listener.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut = Box::pin(l.accept());
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        {
            let (u, st) = (udp.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut = Box::pin(u.receive_from(Vec::with_capacity(8)));
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        {
            let (s, st) = (ours.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut = Box::pin(s.send_timeout(vec![2u8; 1000], Duration::from_secs(30)));
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        {
            let (s, st) = (ours.clone(), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut fut =
                    Box::pin(s.receive_timeout(Vec::with_capacity(8), Duration::from_secs(30)));
                assert!(poll_once(fut.as_mut()).await.is_none());
                st.send(()).unwrap();
                fut.await.map(|_| ())
            }));
            started_rx.recv().await.unwrap();
        }
        ours.socket().close();
        listener.socket().close();
        udp.socket().close();
        for t in tasks {
            let r = t.await.unwrap();
            assert!(matches!(r, Err(Error::Disposed)), "{r:?}");
        }
        // The aborted send resets the peer.
        let reader = tokio::task::spawn_blocking(move || {
            theirs
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut sink = vec![0u8; 1 << 16];
            loop {
                match theirs.read(&mut sink) {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
        });
        let err = reader.await.unwrap().expect_err("a reset, not a FIN");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET), "{err:?}");
    })
    .await;
}

/// The io traits while close comes: a read waiting in `read` and a write waiting for
/// room in `write_all` both end with `NotConnected` (Disposed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_waiting_reads_and_writes_of_the_io_traits() {
    bounded(async {
        let (ours, _theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let socket = ours.socket().clone();
        let (mut r, mut w) = ours.into_split();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            r.read(&mut buf).await
        });
        let writer = tokio::spawn(async move {
            let data = vec![3u8; 16 << 20];
            w.write_all(&data).await
        });
        // Let both start waiting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reader.is_finished() && !writer.is_finished());
        socket.close();
        let r = reader.await.unwrap().unwrap_err();
        assert_eq!(r.kind(), std::io::ErrorKind::NotConnected, "{r:?}");
        let w = writer.await.unwrap().unwrap_err();
        assert_eq!(w.kind(), std::io::ErrorKind::NotConnected, "{w:?}");
    })
    .await;
}

/// Dropping a stream with nothing queued: the peer sees a FIN (end of stream), not a
/// reset, and the descriptor goes.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_stream_sends_a_fin() {
    bounded(async {
        let (ours, mut theirs) = pair_with_std().await;
        ours.send(b"bye").await.unwrap();
        drop(ours);
        let got = tokio::task::spawn_blocking(move || {
            theirs
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).map(|_| all)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, b"bye");
    })
    .await;
}

/// A receive future owns a handle to the socket (it is `'static`): spawned on its own,
/// it keeps the socket open after the stream is dropped (the peer sees no end of
/// stream, as the stream's docs now say), until it completes; then the socket goes
/// and the peer reads end of stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_receive_keeps_the_socket_open_after_the_stream_is_dropped() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        let pending = tokio::spawn(ours.receive(Vec::with_capacity(8)));
        drop(ours);
        let (peer, mut theirs) = tokio::task::spawn_blocking(move || {
            let mut theirs = theirs;
            theirs
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 8];
            (theirs.read(&mut buf), theirs)
        })
        .await
        .unwrap();
        let e = peer.expect_err("no end of stream while the receive holds the socket");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e:?}");
        theirs.write_all(b"x").unwrap();
        let (n, buf) = pending.await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"x");
        let end = tokio::task::spawn_blocking(move || {
            theirs
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 8];
            theirs.read(&mut buf)
        })
        .await
        .unwrap();
        assert!(
            matches!(end, Ok(0)),
            "the socket went with the receive: {end:?}"
        );
    })
    .await;
}

// ---- timeouts ----------------------------------------------------------------------------

/// `receive_timeout` in a loop with timeouts short enough to expire while bytes arrive:
/// no byte lost, duplicated or reordered across expiries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_timeouts_racing_with_data_lose_no_byte() {
    bounded(async {
        let (client, server) = pair().await;
        client.set_nodelay(true).unwrap();
        let data = pattern(300_000, 11);
        let to_send = data.clone();
        let (timed_out, mut timeouts) = timeouts();
        let writer = tokio::spawn(async move {
            for (i, chunk) in to_send.chunks(997).enumerate() {
                client.send(chunk.to_vec()).await.unwrap();
                if i % 50 == 49 {
                    timeouts.next().await;
                } else if i % 3 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            client
        });
        let mut got = Vec::new();
        let mut aborted = 0;
        while got.len() < data.len() {
            match server
                .receive_timeout(Vec::with_capacity(333), Duration::from_millis(1))
                .await
            {
                Ok((0, _)) => panic!("end of stream before every byte"),
                Ok((_, buf)) => got.extend_from_slice(&buf),
                Err(Error::Aborted) => {
                    aborted += 1;
                    timed_out.report();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        // A writer paused for a report goes on once nobody can send one.
        drop(timed_out);
        let _client = writer.await.unwrap();
        assert!(
            got == data,
            "bytes lost or reordered across timed-out receives"
        );
        assert!(aborted > 0, "no receive timed out");
    })
    .await;
}

/// `receive_from_timeout` racing with datagrams: every datagram is received exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_from_timeouts_racing_with_datagrams_lose_none() {
    bounded(async {
        let rx = UdpSocket::bind(loopback()).await.unwrap();
        rx.socket()
            .as_socket2()
            .set_recv_buffer_size(1 << 20)
            .unwrap();
        let to = rx.local_addr().unwrap();
        const N: u32 = 3000;
        let (timed_out, mut timeouts) = timeouts();
        let writer = tokio::spawn(async move {
            let tx = UdpSocket::bind(loopback()).await.unwrap();
            for i in 0..N {
                tx.send_to(i.to_be_bytes().to_vec(), to).await.unwrap();
                if i % 500 == 499 {
                    timeouts.next().await;
                } else if i % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let mut seen = vec![false; N as usize];
        let mut count = 0;
        let mut aborted = 0;
        while count < N {
            match rx
                .receive_from_timeout(Vec::with_capacity(4), Duration::from_millis(1))
                .await
            {
                Ok((4, buf, _)) => {
                    let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                    assert!(!seen[i], "datagram {i} twice");
                    seen[i] = true;
                    count += 1;
                }
                Ok(other) => panic!("{other:?}"),
                Err(Error::Aborted) => {
                    aborted += 1;
                    timed_out.report();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        // A writer paused for a report goes on once nobody can send one.
        drop(timed_out);
        writer.await.unwrap();
        assert!(aborted > 0);
    })
    .await;
}

/// `accept_timeout` racing with connecting clients: every connection is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_timeouts_racing_with_connects_lose_none() {
    bounded(async {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        const N: usize = 300;
        let (timed_out, mut timeouts) = timeouts();
        let connector = tokio::task::spawn_blocking(move || {
            let mut kept = Vec::new();
            for i in 0..N {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(&(i as u32).to_be_bytes()).unwrap();
                kept.push(c);
                if i % 50 == 49 {
                    timeouts.next_blocking();
                } else if i % 3 == 0 {
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
            kept
        });
        let mut seen = vec![false; N];
        let mut accepted = 0;
        let mut aborted = 0;
        while accepted < N {
            match listener.accept_timeout(Duration::from_millis(1)).await {
                Ok((s, _)) => {
                    let mut id = [0u8; 4];
                    let mut s = s;
                    s.read_exact(&mut id).await.unwrap();
                    let i = u32::from_be_bytes(id) as usize;
                    assert!(!seen[i]);
                    seen[i] = true;
                    accepted += 1;
                }
                Err(Error::Aborted) => {
                    aborted += 1;
                    timed_out.report();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        // A writer paused for a report goes on once nobody can send one.
        drop(timed_out);
        drop(connector.await.unwrap());
        assert!(aborted > 0);
    })
    .await;
}

/// A send that times out after part of it went out: `Aborted`, the write side is shut
/// (later sends fail with EPIPE), the peer reads a prefix and end of stream, and
/// receives keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_torn_send_shuts_the_write_side() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let data = pattern(8 << 20, 4);
        let r = ours
            .send_timeout(data.clone(), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
        let later = ours.send(b"late").await.unwrap_err();
        assert_eq!(later.error_code(), Some(libc::EPIPE), "{later:?}");
        let (all, mut theirs) = tokio::task::spawn_blocking(move || {
            let mut theirs = theirs;
            theirs
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).unwrap();
            (all, theirs)
        })
        .await
        .unwrap();
        assert!(!all.is_empty() && all.len() < data.len());
        assert!(all[..] == data[..all.len()], "a prefix of the send");
        theirs.write_all(b"back").unwrap();
        let (n, buf) = ours.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    })
    .await;
}

/// A send that times out while queued behind another (none of its bytes sent) leaves
/// the stream whole: the dropped send before it goes out whole, the next send after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_queued_send_leaves_the_stream_whole() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let first = pattern(4 << 20, 8);
        let mut f = Box::pin(ours.send(first.clone()));
        assert!(poll_once(f.as_mut()).await.is_none(), "first send queued");
        drop(f);
        let r = ours
            .send_timeout(vec![0xAAu8; 100_000], Duration::from_millis(30))
            .await;
        assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
        let len = first.len() + 4;
        let reader = tokio::task::spawn_blocking(move || {
            let mut theirs = theirs;
            let mut got = vec![0u8; len];
            theirs.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(ours.send(b"tail").await.unwrap(), 4);
        let got = reader.await.unwrap();
        assert!(
            got[..first.len()] == first[..],
            "the dropped send went out whole"
        );
        assert_eq!(&got[first.len()..], b"tail");
    })
    .await;
}

/// connect_timeout against a listener that drops SYNs: `Aborted` at expiry, in about
/// the time asked.
#[tokio::test(flavor = "current_thread")]
async fn connect_timeout_expires_with_aborted() {
    bounded(async {
        let full = std::net::TcpListener::bind(loopback()).unwrap();
        let addr = full.local_addr().unwrap();
        // Fill the accept queue (backlog 0 takes one or two).
        let mut fillers = Vec::new();
        let started = loop {
            let t0 = Instant::now();
            match TcpStream::connect_timeout(addr, Duration::from_millis(100)).await {
                Ok(s) => fillers.push(s),
                Err(Error::Aborted) => break t0,
                Err(e) => panic!("{e:?}"),
            }
            assert!(fillers.len() < 300, "the accept queue never filled");
        };
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(full);
    })
    .await;
}

// ---- dropping ---------------------------------------------------------------------------

/// Send futures dropped at every stage (never polled, polled once while queued) on a
/// busy stream: the ones that were polled go out whole and in order, before later
/// sends; a never-polled one sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_send_futures_keep_their_order() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let a = pattern(1 << 20, 1);
        let b = pattern(1 << 20, 2);
        let mut fa = Box::pin(ours.send(a.clone()));
        assert!(poll_once(fa.as_mut()).await.is_none());
        let never = ours.send(vec![0xFFu8; 1000]);
        drop(never);
        let mut fb = Box::pin(ours.send(b.clone()));
        assert!(poll_once(fb.as_mut()).await.is_none());
        drop(fa);
        drop(fb);
        let len = a.len() + b.len() + 3;
        let reader = tokio::task::spawn_blocking(move || {
            let mut theirs = theirs;
            let mut got = vec![0u8; len];
            theirs.read_exact(&mut got).unwrap();
            got
        });
        ours.send(b"end").await.unwrap();
        let got = reader.await.unwrap();
        assert!(got[..a.len()] == a[..]);
        assert!(got[a.len()..a.len() + b.len()] == b[..]);
        assert_eq!(&got[a.len() + b.len()..], b"end");
    })
    .await;
}

#[test]
fn descriptors_are_released_after_dropped_and_timed_out_futures() {
    child_ok("child_descriptors_released");
}

/// In a fresh process: futures dropped mid-operation, timed out, streams dropped with
/// sends queued (which complete), a connect future dropped: once everything is gone
/// the descriptor count is back to its start.
#[test]
#[ignore = "run in a child process"]
fn child_descriptors_released() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bounded(async {
        // Warm the engine and the runtime's driver.
        {
            let (a, b) = pair().await;
            a.send(b"x").await.unwrap();
            b.receive(Vec::with_capacity(1)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let base = fd_count();
        let settle = |what: &'static str| async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while fd_count() > base {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} descriptors, base {base}",
                    fd_count()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };

        // Receive and accept futures dropped mid-wait, then the sockets.
        {
            let (a, b) = pair().await;
            let mut r = Box::pin(a.receive(Vec::with_capacity(8)));
            assert!(poll_once(r.as_mut()).await.is_none());
            drop(r);
            let l = TcpListener::bind(loopback()).await.unwrap();
            let mut acc = Box::pin(l.accept());
            assert!(poll_once(acc.as_mut()).await.is_none());
            drop(acc);
            let _ = a
                .receive_timeout(Vec::with_capacity(8), Duration::from_millis(5))
                .await;
            let _ = l.accept_timeout(Duration::from_millis(5)).await;
            drop((a, b, l));
        }
        settle("receive/accept").await;

        // A stream dropped with a send queued: the send completes (the peer reads),
        // then the socket goes.
        {
            let (ours, theirs) = pair_with_std().await;
            ours.socket()
                .as_socket2()
                .set_send_buffer_size(4096)
                .unwrap();
            let mut s = Box::pin(ours.send(vec![5u8; 2 << 20]));
            assert!(poll_once(s.as_mut()).await.is_none());
            drop(s);
            drop(ours);
            let n = tokio::task::spawn_blocking(move || {
                let mut theirs = theirs;
                let mut all = Vec::new();
                theirs.read_to_end(&mut all).unwrap();
                all.len()
            })
            .await
            .unwrap();
            assert_eq!(n, 2 << 20);
        }
        settle("stream dropped behind a send").await;

        // A timed-out send, a split stream's halves dropped.
        {
            let (ours, _theirs) = pair_with_std().await;
            ours.socket()
                .as_socket2()
                .set_send_buffer_size(4096)
                .unwrap();
            let r = ours
                .send_timeout(vec![5u8; 8 << 20], Duration::from_millis(20))
                .await;
            assert!(matches!(r, Err(Error::Aborted)));
            let (rh, wh) = ours.into_split();
            drop(wh);
            drop(rh);
        }
        settle("timed-out send").await;

        // A connect future dropped while the handshake waits (a full accept queue),
        // and a connect that times out.
        {
            let full = std::net::TcpListener::bind(loopback()).unwrap();
            let addr = full.local_addr().unwrap();
            let mut fillers = Vec::new();
            loop {
                let mut c = Box::pin(TcpStream::connect(addr));
                match tokio::time::timeout(Duration::from_millis(100), c.as_mut()).await {
                    Ok(s) => fillers.push(s.unwrap()),
                    Err(_) => break,
                }
                assert!(fillers.len() < 300);
            }
            let r = TcpStream::connect_timeout(addr, Duration::from_millis(20)).await;
            assert!(matches!(r, Err(Error::Aborted)));
            drop((fillers, full));
        }
        settle("connect").await;
    }));
}
