//! The lifecycle of sockets and futures through the smol adapter (API.md
//! semantics §7–§9 and the adapter section): close while futures of every kind wait,
//! the `*_timeout` forms racing with data (no byte, datagram or connection lost),
//! timed-out sends, `poll_close` and reads, and descriptors released.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncresult_smol::{Error, TcpListener, TcpStream, UdpSocket};
use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair, pattern, timeouts};

async fn pair_with_std() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Runs a test body under `smol::block_on` with a hard time limit.
fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(async {
        let limit = async_io::Timer::after(Duration::from_secs(60));
        match futures::future::select(Box::pin(f), Box::pin(limit)).await {
            futures::future::Either::Left((value, _)) => value,
            futures::future::Either::Right(_) => panic!("test hung"),
        }
    })
}

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

/// Reads `theirs` to its end on a thread: `Ok(bytes)` at a FIN, `Err` at a reset.
fn read_to_end_on_thread(
    mut theirs: std::net::TcpStream,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        theirs
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut all = Vec::new();
        theirs.read_to_end(&mut all).map(|_| all)
    })
}

// ---- close while futures wait ---------------------------------------------------------

#[test]
fn close_resolves_every_waiting_future_with_disposed() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let ours = Arc::new(ours);
        let listener = Arc::new(TcpListener::bind(loopback()).await.unwrap());
        let udp = Arc::new(UdpSocket::bind(loopback()).await.unwrap());
        let mut tasks: Vec<smol::Task<Result<(), Error>>> = Vec::new();
        let (st, started) = smol::channel::unbounded::<()>();
        macro_rules! waiting {
            ($owner:expr, |$s:ident| $fut:expr) => {{
                let ($s, st) = ($owner.clone(), st.clone());
                tasks.push(smol::spawn(async move {
                    let mut fut = Box::pin($fut);
                    assert!(poll_once(fut.as_mut()).await.is_none());
                    st.send(()).await.unwrap();
                    fut.await.map(|_| ())
                }));
                started.recv().await.unwrap();
            }};
        }
        waiting!(ours, |s| s.receive(Vec::with_capacity(8)));
        waiting!(ours, |s| s.send(vec![1u8; 16 << 20]));
        waiting!(ours, |s| s
            .send_timeout(vec![2u8; 10], Duration::from_secs(30)));
        waiting!(ours, |s| s
            .receive_timeout(Vec::with_capacity(8), Duration::from_secs(30)));
        waiting!(listener, |l| l.accept());
        waiting!(udp, |u| u.receive_from(Vec::with_capacity(8)));
        ours.socket().close();
        listener.socket().close();
        udp.socket().close();
        for t in tasks {
            let r = t.await;
            assert!(matches!(r, Err(Error::Disposed)), "{r:?}");
        }
        let err = read_to_end_on_thread(theirs)
            .join()
            .unwrap()
            .expect_err("a reset, not a FIN");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET), "{err:?}");
    });
}

/// `&TcpStream` io from two tasks while close comes: the waiting read and the write
/// waiting for room both end with `NotConnected`.
#[test]
fn close_ends_waiting_reads_and_writes_of_the_io_traits() {
    bounded(async {
        let (ours, _theirs) = pair_with_std().await;
        ours.socket()
            .as_socket2()
            .set_send_buffer_size(4096)
            .unwrap();
        let ours = Arc::new(ours);
        let r = {
            let s = ours.clone();
            smol::spawn(async move {
                let mut buf = [0u8; 8];
                (&*s).read(&mut buf).await
            })
        };
        let w = {
            let s = ours.clone();
            smol::spawn(async move {
                let data = vec![3u8; 16 << 20];
                (&*s).write_all(&data).await
            })
        };
        async_io::Timer::after(Duration::from_millis(50)).await;
        ours.socket().close();
        let re = r.await.unwrap_err();
        assert_eq!(re.kind(), std::io::ErrorKind::NotConnected, "{re:?}");
        let we = w.await.unwrap_err();
        assert_eq!(we.kind(), std::io::ErrorKind::NotConnected, "{we:?}");
    });
}

/// `poll_close` shuts the write side down (the peer reads end of stream) and reads
/// keep working; a second close is fine; a write after it fails with EPIPE.
#[test]
fn poll_close_then_reads_keep_working() {
    bounded(async {
        let (mut ours, theirs) = pair_with_std().await;
        ours.write_all(b"req").await.unwrap();
        ours.close().await.unwrap();
        ours.close().await.unwrap();
        let mut theirs = theirs;
        let mut req = Vec::new();
        theirs.read_to_end(&mut req).unwrap();
        assert_eq!(req, b"req");
        theirs.write_all(b"resp").unwrap();
        drop(theirs);
        let mut resp = Vec::new();
        ours.read_to_end(&mut resp).await.unwrap();
        assert_eq!(resp, b"resp");
        let e = ours.write(b"x").await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e:?}");
    });
}

// ---- timeouts -------------------------------------------------------------------------

#[test]
fn receive_timeouts_racing_with_data_lose_no_byte() {
    bounded(async {
        let (client, server) = pair().await;
        client.set_nodelay(true).unwrap();
        let data = pattern(300_000, 11);
        let to_send = data.clone();
        let (timed_out, mut timeouts) = timeouts();
        let writer = smol::spawn(async move {
            for (i, chunk) in to_send.chunks(997).enumerate() {
                client.send(chunk.to_vec()).await.unwrap();
                if i % 50 == 49 {
                    timeouts.next().await;
                } else if i % 3 == 0 {
                    async_io::Timer::after(Duration::from_millis(1)).await;
                } else {
                    smol::future::yield_now().await;
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
        let _client = writer.await;
        assert!(
            got == data,
            "bytes lost or reordered across timed-out receives"
        );
        assert!(aborted > 0, "no receive timed out");
    });
}

#[test]
fn receive_from_timeouts_racing_with_datagrams_lose_none() {
    bounded(async {
        let rx = UdpSocket::bind(loopback()).await.unwrap();
        rx.socket()
            .as_socket2()
            .set_recv_buffer_size(1 << 20)
            .unwrap();
        let to = rx.local_addr().unwrap();
        const N: u32 = 3000;
        let (timed_out, mut timeouts) = timeouts();
        let writer = std::thread::spawn(move || {
            let tx = std::net::UdpSocket::bind(loopback()).unwrap();
            for i in 0..N {
                tx.send_to(&i.to_be_bytes(), to).unwrap();
                if i % 500 == 499 {
                    timeouts.next_blocking();
                } else if i % 4 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
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
        writer.join().unwrap();
        assert!(aborted > 0);
    });
}

#[test]
fn accept_timeouts_racing_with_connects_lose_none() {
    bounded(async {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        const N: usize = 300;
        let (timed_out, mut timeouts) = timeouts();
        let connector = std::thread::spawn(move || {
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
                Ok((mut s, _)) => {
                    let mut id = [0u8; 4];
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
        drop(connector.join().unwrap());
        assert!(aborted > 0);
    });
}

#[test]
fn a_timed_out_torn_send_shuts_the_write_side() {
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
        let reader = std::thread::spawn(move || {
            let mut theirs = theirs;
            theirs
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).unwrap();
            theirs.write_all(b"back").unwrap();
            (all, theirs)
        });
        let (n, buf) = ours.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"back");
        let (all, _theirs) = reader.join().unwrap();
        assert!(!all.is_empty() && all.len() < data.len());
        assert!(all[..] == data[..all.len()], "a prefix of the send");
    });
}

#[test]
fn a_timed_out_queued_send_leaves_the_stream_whole() {
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
        let reader = std::thread::spawn(move || {
            let mut theirs = theirs;
            let mut got = vec![0u8; len];
            theirs.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(ours.send(b"tail").await.unwrap(), 4);
        let got = reader.join().unwrap();
        assert!(
            got[..first.len()] == first[..],
            "the dropped send went out whole"
        );
        assert_eq!(&got[first.len()..], b"tail");
    });
}

#[test]
fn dropping_the_stream_sends_a_fin() {
    bounded(async {
        let (ours, theirs) = pair_with_std().await;
        ours.send(b"bye").await.unwrap();
        drop(ours);
        let got = read_to_end_on_thread(theirs).join().unwrap().unwrap();
        assert_eq!(got, b"bye");
    });
}

/// A spawned receive future keeps the socket open after the stream is dropped (as the
/// stream's docs say), until it completes; then the peer reads end of stream.
#[test]
fn a_spawned_receive_keeps_the_socket_open_after_the_stream_is_dropped() {
    bounded(async {
        let (ours, mut theirs) = pair_with_std().await;
        let pending = smol::spawn(ours.receive(Vec::with_capacity(8)));
        drop(ours);
        theirs
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 8];
        let e = theirs.read(&mut buf).expect_err("no end of stream yet");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e:?}");
        theirs.write_all(b"x").unwrap();
        let (n, got) = pending.await.unwrap();
        assert_eq!(&got[..n], b"x");
        let end = read_to_end_on_thread(theirs).join().unwrap();
        assert!(matches!(end.as_deref(), Ok(&[])), "{end:?}");
    });
}

#[test]
fn descriptors_are_released_after_dropped_and_timed_out_futures() {
    child_ok("child_descriptors_released");
}

#[test]
#[ignore = "run in a child process"]
fn child_descriptors_released() {
    bounded(async {
        {
            let (a, b) = pair().await;
            a.send(b"x").await.unwrap();
            b.receive(Vec::with_capacity(1)).await.unwrap();
        }
        async_io::Timer::after(Duration::from_millis(50)).await;
        let base = fd_count();
        let settle = |what: &'static str| async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while fd_count() > base {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} descriptors, base {base}",
                    fd_count()
                );
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
        };
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
            let all = read_to_end_on_thread(theirs).join().unwrap().unwrap();
            assert_eq!(all.len(), 2 << 20);
        }
        settle("stream dropped behind a send").await;
        {
            let full = std::net::TcpListener::bind(loopback()).unwrap();
            let addr = full.local_addr().unwrap();
            let mut fillers = Vec::new();
            loop {
                match TcpStream::connect_timeout(addr, Duration::from_millis(100)).await {
                    Ok(s) => fillers.push(s),
                    Err(Error::Aborted) => break,
                    Err(e) => panic!("{e:?}"),
                }
                assert!(fillers.len() < 300);
            }
            drop((fillers, full));
        }
        settle("connect").await;
    });
}
