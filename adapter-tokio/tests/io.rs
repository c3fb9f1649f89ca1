//! The tokio adapter in tokio's own terms: its I/O traits with tokio's utilities,
//! cancel safety, timeouts, both runtime flavours, and Send futures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use asyncresult_tokio::{Error, Socket, SocketFlags, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair, pattern};

/// Every test body runs under a hard time limit.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test hung")
}

#[tokio::test(flavor = "current_thread")]
async fn copy_write_all_and_read_to_end_work_unchanged() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let data = pattern(3 << 20, 7);
        let to_send = data.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&to_send).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        writer.await.unwrap();

        // tokio::io::copy from one of ours to another of ours.
        let (mut a, mut b) = pair().await;
        let (mut c, mut d) = pair().await;
        let payload = pattern(1 << 20, 9);
        let p2 = payload.clone();
        tokio::spawn(async move {
            a.write_all(&p2).await.unwrap();
            a.shutdown().await.unwrap();
        });
        let relay = tokio::spawn(async move {
            let n = tokio::io::copy(&mut b, &mut c).await.unwrap();
            c.shutdown().await.unwrap();
            n
        });
        let mut out = Vec::new();
        d.read_to_end(&mut out).await.unwrap();
        assert_eq!(relay.await.unwrap(), payload.len() as u64);
        assert_eq!(out, payload);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_cancel_safe_under_timeouts() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let data = pattern(200_000, 3);
        let to_send = data.clone();
        tokio::spawn(async move {
            // Trickle, so many reads time out in between.
            for chunk in to_send.chunks(5_000) {
                client.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            client.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut timeouts = 0;
        loop {
            match tokio::time::timeout(Duration::from_micros(300), server.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => timeouts += 1,
            }
        }
        assert_eq!(got, data, "bytes lost or reordered across dropped reads");
        assert!(timeouts > 0, "the test did not exercise a dropped read");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_closes_the_write_half_and_reads_keep_working() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut req = Vec::new();
        server.read_to_end(&mut req).await.unwrap();
        assert_eq!(req, b"request");
        server.write_all(b"response").await.unwrap();
        let mut resp = [0u8; 8];
        client.read_exact(&mut resp).await.unwrap();
        assert_eq!(&resp, b"response");
    })
    .await;
}

/// Writes until one returns `Pending` (the peer reads nothing, the kernel's buffers
/// fill), leaving the writer's wait for room pending; returns the bytes accepted.
async fn write_until_pending<W: tokio::io::AsyncWrite + Unpin>(w: &mut W) -> usize {
    let chunk = vec![0xA5u8; 256 << 10];
    let mut accepted = 0;
    loop {
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut *w).poll_write(cx, &chunk))
        })
        .await;
        match polled {
            std::task::Poll::Ready(written) => accepted += written.unwrap(),
            std::task::Poll::Pending => return accepted,
        }
    }
}

/// A write left waiting for room accepted nothing, so it holds no flush or shutdown
/// up: with no send queued both are ready at once, as with tokio's own stream, and
/// the peer then reads every accepted byte and end of stream.
#[tokio::test(flavor = "current_thread")]
async fn a_write_left_waiting_holds_up_no_flush_or_shutdown() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let accepted = write_until_pending(&mut client).await;
        let quick = Duration::from_secs(5);
        tokio::time::timeout(quick, client.flush())
            .await
            .expect("flush waited for the peer to read")
            .unwrap();
        tokio::time::timeout(quick, client.shutdown())
            .await
            .expect("shutdown waited for the peer to read")
            .unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), accepted);

        // The same through a split-off write half.
        let (client, mut server) = pair().await;
        let (_read, mut write) = client.into_split();
        let accepted = write_until_pending(&mut write).await;
        tokio::time::timeout(quick, write.shutdown())
            .await
            .expect("the half's shutdown waited for the peer to read")
            .unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), accepted);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_work_from_separate_tasks() {
    bounded(async {
        let (client, server) = pair().await;
        let (mut r, mut w) = server.into_split();
        let echo = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                w.write_all(&buf[..n]).await.unwrap();
            }
        });
        let (mut cr, mut cw) = client.into_split();
        let data = pattern(500_000, 1);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            cw.write_all(&d2).await.unwrap();
            drop(cw); // dropping the write half shuts the write side
        });
        let mut got = vec![0u8; data.len()];
        cr.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
        writer.await.unwrap();
        echo.await.unwrap();
    })
    .await;
}

/// A send future dropped while its bytes wait for room, then the write half dropped:
/// the bytes still go out whole, and only then does the peer see end of stream.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_write_half_shuts_down_behind_queued_sends() {
    bounded(async {
        let (client, mut server) = pair().await;
        let (_r, w) = client.into_split();
        let data = pattern(16 << 20, 7);
        let mut send = Box::pin(w.send(data.clone()));
        // The peer reads nothing yet, so 16 MiB cannot all fit in the kernel.
        assert!(
            futures_poll_once(send.as_mut()).await.is_none(),
            "send still queued"
        );
        drop(send);
        drop(w);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes arrived whole and in order");
    })
    .await;
}

/// The same with the whole stream dropped: the queued bytes still go out whole, then
/// the peer sees end of stream (not a reset that throws away what the kernel held).
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_stream_closes_it_behind_queued_sends() {
    bounded(async {
        let (client, mut server) = pair().await;
        let data = pattern(16 << 20, 9);
        let mut send = Box::pin(client.send(data.clone()));
        assert!(
            futures_poll_once(send.as_mut()).await.is_none(),
            "send still queued"
        );
        drop(send);
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes arrived whole and in order");
    })
    .await;
}

/// Polls `fut` once; `None` if it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn into_inner_keeps_unread_bytes_in_the_socket() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"first second").await.unwrap();
        let mut first = [0u8; 6];
        server.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"first ");
        let socket: Socket = server.into_inner();
        // The rest is still there, for whoever reads the socket next.
        let again = TcpStream::from(socket);
        let (n, rest) = again.receive(Vec::with_capacity(64)).await.unwrap();
        assert_eq!(&rest[..n], b"second");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn timeouts_cancel_the_core_operation() {
    bounded(async {
        let (client, server) = pair().await;
        let r = server
            .receive_timeout(Vec::with_capacity(16), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
        client.send(b"later").await.unwrap();
        let (n, buf) = server.receive(Vec::with_capacity(16)).await.unwrap();
        assert_eq!(&buf[..n], b"later");

        let listener = TcpListener::bind(loopback()).await.unwrap();
        let r = listener.accept_timeout(Duration::from_millis(50)).await;
        assert!(matches!(r, Err(Error::Aborted)));

        let udp = UdpSocket::bind(loopback()).await.unwrap();
        let r = udp
            .receive_from_timeout(Vec::with_capacity(16), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::Aborted)));
    })
    .await;
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, _server) = pair().await;
        assert_send(&client.send(b"x"));
        assert_send(&client.receive(Vec::with_capacity(1)));
        assert_send(&TcpStream::connect(loopback()));
        let udp = UdpSocket::bind(loopback()).await.unwrap();
        assert_send(&udp.receive_from(Vec::with_capacity(1)));
    });
}

#[test]
fn a_runtime_that_stops_hands_polling_back() {
    // A current-thread runtime used and then dropped: later blocking use of the core
    // (driven by the engine's workers again) must still work.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, server) = rt.block_on(async {
        let (c, s) = pair().await;
        c.send(b"in runtime").await.unwrap();
        (c.into_inner(), s.into_inner())
    });
    drop(rt);
    let ar = server
        .begin_receive(
            Vec::with_capacity(64),
            asyncresult_tokio::SocketFlags::NONE,
            None,
            None,
        )
        .unwrap();
    assert_eq!(server.end_receive(&ar).unwrap().0, 10);
    let pending = server
        .begin_receive(
            Vec::with_capacity(64),
            asyncresult_tokio::SocketFlags::NONE,
            None,
            None,
        )
        .unwrap();
    client
        .end_send(
            &client
                .begin_send(b"after", asyncresult_tokio::SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
    assert!(pending.wait_timeout(Duration::from_secs(10)));
    assert_eq!(server.end_receive(&pending).unwrap().0, 5);
}

#[test]
fn an_idle_current_thread_runtime_does_not_starve_other_users() {
    // The runtime is alive (its driver attached) but nobody drives it: the engine's
    // monitor must still get blocking users their completions.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, server) = rt.block_on(async {
        let (c, s) = pair().await;
        (c.into_inner(), s.into_inner())
    });
    let pending = server
        .begin_receive(
            Vec::with_capacity(64),
            asyncresult_tokio::SocketFlags::NONE,
            None,
            None,
        )
        .unwrap();
    client
        .end_send(
            &client
                .begin_send(b"hello", asyncresult_tokio::SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
    assert!(pending.wait_timeout(Duration::from_secs(10)), "starved");
    assert_eq!(server.end_receive(&pending).unwrap().0, 5);
    drop(rt);
}

/// A socket future that polls `Pending` gives its unit of tokio's coop budget back, as
/// tokio's own I/O does; only a poll that makes progress spends one. Otherwise a task
/// that polls a pending socket future often (a `select!` loop) would be made to yield
/// for work it never did.
#[tokio::test(flavor = "current_thread")]
async fn pending_polls_spend_no_coop_budget() {
    use std::future::Future as _;
    bounded(async {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let (mut client, _server) = pair().await;
        let task = tokio::spawn(async move {
            let mut receive = std::pin::pin!(client.receive(Vec::with_capacity(8)));
            let mut accept = std::pin::pin!(listener.accept());
            let mut buf = [0u8; 8];
            std::future::poll_fn(|cx| {
                // More pending polls than the budget holds (128 per task poll).
                for _ in 0..200 {
                    assert!(receive.as_mut().poll(cx).is_pending(), "no data was sent");
                    assert!(accept.as_mut().poll(cx).is_pending(), "nobody connects");
                    let mut read = tokio::io::ReadBuf::new(&mut buf);
                    let pending = tokio::io::AsyncRead::poll_read(
                        std::pin::Pin::new(&mut client),
                        cx,
                        &mut read,
                    );
                    assert!(pending.is_pending(), "no data was sent");
                }
                std::task::Poll::Ready(tokio::task::coop::has_budget_remaining())
            })
            .await
        });
        assert!(
            task.await.unwrap(),
            "600 pending polls used up the task's coop budget"
        );
    })
    .await;
}

/// A runtime built without I/O has no reactor for the engine's descriptor: the futures
/// still complete (the engine's own workers wake them), and tokio's refusal of the
/// registration (a panic, caught) happens once per runtime, not once per wait.
#[test]
fn futures_complete_on_a_runtime_without_io() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("IO is disabled") {
            REFUSED.fetch_add(1, Ordering::SeqCst);
        } else {
            previous(info);
        }
    }));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let echoed = rt.block_on(async {
            let (client, server) = pair().await;
            // The echo runs as another task, so each of the client's receives waits.
            let echo = tokio::spawn(async move {
                loop {
                    let (n, buf) = server.receive(Vec::with_capacity(100)).await?;
                    if n == 0 {
                        return Ok::<_, Error>(());
                    }
                    server.send(buf).await?;
                }
            });
            let mut total = 0;
            for round in 0..20u8 {
                client.send(vec![round; 100]).await?;
                let (m, back) = client.receive(Vec::with_capacity(100)).await?;
                assert!(m > 0 && back.iter().all(|&b| b == round));
                total += m;
                while total < 100 * (round as usize + 1) {
                    let (m, _) = client.receive(Vec::with_capacity(100)).await?;
                    total += m;
                }
            }
            client.socket().shutdown(std::net::Shutdown::Write)?;
            echo.await.unwrap()?;
            Ok::<_, Error>(total)
        });
        let _ = done.send(echoed);
    });
    let echoed = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the exchange finished in time");
    assert_eq!(echoed.unwrap(), 2000);
    assert!(
        REFUSED.load(Ordering::SeqCst) <= 1,
        "refused more than once"
    );
}

/// Polls `fut` once, from inside a task.
async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

/// A peer's reset reaches a pending receive as `ECONNRESET`, not as a clean end of
/// stream, even when a pending send meets it first (the kernel reports it once).
#[tokio::test(flavor = "current_thread")]
async fn a_reset_reaches_the_reader_even_when_a_send_meets_it_first() {
    bounded(async {
        let (client, server) = pair().await;
        let mut send = Box::pin(client.send(vec![7u8; 64 << 20]));
        assert!(
            poll_once(&mut send).await.is_pending(),
            "64 MiB fit no buffers"
        );
        let mut receive = client.receive(Vec::with_capacity(64));
        assert!(poll_once(&mut receive).await.is_pending());
        // The peer resets the connection (SO_LINGER 0, then close).
        server
            .socket()
            .as_socket2()
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        server.socket().close();
        let received = receive.await.map(|(n, _)| n);
        let err = received.expect_err("a reset is not an end of stream");
        assert_eq!(err.error_code(), Some(libc::ECONNRESET), "{err:?}");
        assert!(send.await.is_err());
        // Reported once; then, as after any reset, the stream reads as ended.
        let (n, _) = client.receive(Vec::with_capacity(64)).await.unwrap();
        assert_eq!(n, 0);
    })
    .await;
}

/// A vectored write of more buffers than one `sendmsg` takes writes part of them (as
/// `writev` through tokio's own streams does), not an `EMSGSIZE` error.
#[tokio::test(flavor = "current_thread")]
async fn a_vectored_write_of_many_buffers_writes_part_of_them() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let bufs: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| i.to_le_bytes()[..3].to_vec())
            .collect();
        let expected: Vec<u8> = bufs.concat();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 15_000];
            server.read_exact(&mut got).await.unwrap();
            got
        });
        // Where the next write starts: a buffer and an offset in it.
        let (mut index, mut offset) = (0, 0);
        let mut first = true;
        while index < bufs.len() {
            // The first write leads with empty buffers: skipped, not counted against
            // the limit.
            let mut slices = vec![std::io::IoSlice::new(&[]); if first { 2000 } else { 0 }];
            first = false;
            slices.push(std::io::IoSlice::new(&bufs[index][offset..]));
            slices.extend(bufs[index + 1..].iter().map(|b| std::io::IoSlice::new(b)));
            let mut n = client.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            while n > 0 {
                let left = bufs[index].len() - offset;
                if n >= left {
                    (n, index, offset) = (n - left, index + 1, 0);
                } else {
                    (n, offset) = (0, offset + n);
                }
            }
        }
        assert_eq!(reader.await.unwrap(), expected);
    })
    .await;
}

/// API.md's methods are the adapter types' own (not only reached through `Deref`), so
/// they can be named by path.
#[test]
fn the_contracts_methods_are_the_types_own() {
    let _: fn(&TcpStream, bool) -> Result<(), Error> = TcpStream::set_nodelay;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::local_addr;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::peer_addr;
    let _: fn(&TcpListener) -> Result<SocketAddr, Error> = TcpListener::local_addr;
    let _: fn(&UdpSocket) -> Result<SocketAddr, Error> = UdpSocket::local_addr;
    #[allow(dead_code)]
    async fn by_path(s: &TcpStream, u: &UdpSocket, to: SocketAddr) -> Result<(), Error> {
        let _: usize = TcpStream::send(s, vec![1u8]).await?;
        let _: (usize, Vec<u8>) = TcpStream::receive(s, Vec::new()).await?;
        UdpSocket::connect(u, to).await?;
        let _: usize = UdpSocket::send(u, vec![1u8]).await?;
        let _: (usize, Vec<u8>) = UdpSocket::receive(u, Vec::new()).await?;
        let _: usize = UdpSocket::send_to(u, vec![1u8], to).await?;
        let _: (usize, Vec<u8>, SocketAddr) = UdpSocket::receive_from(u, Vec::new()).await?;
        Ok(())
    }
}

/// A waker that tells the test it was woken.
struct Woken(tokio::sync::Notify);

impl std::task::Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.notify_one();
    }
}

/// A receive future dropped after it was woken, before it tried again: its place goes,
/// and the receive queued behind it gets the bytes (nothing is held up or lost).
#[tokio::test(flavor = "current_thread")]
async fn a_woken_receive_dropped_before_its_try_gives_its_place_up() {
    bounded(async {
        let (client, mut server) = pair().await;
        let socket = client.socket().clone();
        let mut first = Box::pin(client.receive(Vec::with_capacity(64)));
        let woken = std::sync::Arc::new(Woken(tokio::sync::Notify::new()));
        let waker = std::task::Waker::from(std::sync::Arc::clone(&woken));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(
            std::future::Future::poll(first.as_mut(), &mut cx).is_pending(),
            "nothing sent yet"
        );
        let second = socket
            .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
            .unwrap();
        server.write_all(b"A").await.unwrap();
        // Woken: the first receive now holds the head of the queue for its next try.
        woken.0.notified().await;
        assert!(!second.is_completed(), "the later receive went first");
        drop(first);
        std::future::poll_fn(|cx| second.poll_completed(cx)).await;
        let (n, buf) = socket.end_receive(&second).unwrap();
        assert_eq!(&buf[..n], b"A");
    })
    .await;
}

/// A waiting receive future polled again by another task (another waker) before any
/// data came: the data wakes the task that polled it last, and the future, polled by
/// it, returns the bytes (the waker it parked as its place was swapped, not lost).
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_receive_polled_by_another_task_wakes_that_task() {
    bounded(async {
        let (client, mut server) = pair().await;
        let mut receive = Box::pin(client.receive(Vec::with_capacity(64)));
        let first = std::sync::Arc::new(Woken(tokio::sync::Notify::new()));
        let second = std::sync::Arc::new(Woken(tokio::sync::Notify::new()));
        let first_waker = std::task::Waker::from(std::sync::Arc::clone(&first));
        let second_waker = std::task::Waker::from(std::sync::Arc::clone(&second));
        for waker in [&first_waker, &second_waker] {
            let mut cx = std::task::Context::from_waker(waker);
            assert!(
                std::future::Future::poll(receive.as_mut(), &mut cx).is_pending(),
                "nothing sent yet"
            );
        }
        server.write_all(b"B").await.unwrap();
        second.0.notified().await;
        let mut cx = std::task::Context::from_waker(&second_waker);
        match std::future::Future::poll(receive.as_mut(), &mut cx) {
            std::task::Poll::Ready(Ok((n, buf))) => assert_eq!(&buf[..n], b"B"),
            other => panic!("woken, but the receive gave {other:?}"),
        }
    })
    .await;
}

/// An accept future, once polled, keeps its place too: the first connection is its,
/// the next one the `begin_accept`'s begun after it.
#[tokio::test(flavor = "current_thread")]
async fn an_accept_future_keeps_its_place_ahead_of_a_later_begin_accept() {
    bounded(async {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let socket = listener.socket().clone();
        let mut first = Box::pin(listener.accept());
        assert!(poll_once(&mut first).await.is_pending(), "no client yet");
        let second = socket.begin_accept(None, None).unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, from) = first.await.unwrap();
        assert_eq!(from, a.local_addr().unwrap());
        assert_eq!(accepted.peer_addr().unwrap(), a.local_addr().unwrap());
        assert!(!second.is_completed(), "the later accept went first");
        let b = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        std::future::poll_fn(|cx| second.poll_completed(cx)).await;
        let accepted = socket.end_accept(&second).unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), b.local_addr().unwrap());
    })
    .await;
}

/// A receive future whose first poll tokio's cooperative budget puts off still takes
/// its place at that poll: a `begin_receive_from` begun after it gets the second
/// datagram, the future the first.
#[tokio::test(flavor = "current_thread")]
async fn a_first_poll_put_off_by_the_budget_still_takes_its_place() {
    bounded(async {
        let spender = UdpSocket::bind(loopback()).await.unwrap();
        let receiver = UdpSocket::bind(loopback()).await.unwrap();
        let sender = std::net::UdpSocket::bind(loopback()).unwrap();
        for unit in 0..300u16 {
            sender
                .send_to(&unit.to_le_bytes(), spender.local_addr().unwrap())
                .unwrap();
        }
        tokio::task::yield_now().await;
        // Spend this poll's budget on receives that complete at once.
        let mut spent = 0;
        loop {
            let mut f = Box::pin(spender.receive_from(Vec::with_capacity(2)));
            if poll_once(&mut f).await.is_pending() {
                break;
            }
            spent += 1;
            assert!(spent < 300, "no budget ran out");
        }
        let mut first = Box::pin(receiver.receive_from(Vec::with_capacity(1)));
        assert!(poll_once(&mut first).await.is_pending(), "put off");
        let socket = receiver.socket().clone();
        let second = socket
            .begin_receive_from(Vec::with_capacity(1), SocketFlags::NONE, None, None)
            .unwrap();
        let to = receiver.local_addr().unwrap();
        sender.send_to(&[0], to).unwrap();
        sender.send_to(&[1], to).unwrap();
        let (n, buf, _) = first.await.unwrap();
        assert_eq!(
            &buf[..n],
            [0],
            "the future begun first got the second datagram"
        );
        std::future::poll_fn(|cx| second.poll_completed(cx)).await;
        let (n, buf, _) = socket.end_receive_from(&second).unwrap();
        assert_eq!(&buf[..n], [1]);
    })
    .await;
}

/// A receive future kept after its timeout, not polled and not dropped, holds up no
/// other future: tries are not ordered among themselves (as with tokio's own sockets),
/// so a second receive, waiting before the datagram arrives, gets it, and the kept one
/// the next. So does a stream's `AsyncRead`.
#[tokio::test(flavor = "current_thread")]
async fn a_kept_but_unpolled_receive_does_not_hold_up_another_future() {
    bounded(async {
        let receiver = UdpSocket::bind(loopback()).await.unwrap();
        let sender = UdpSocket::bind(loopback()).await.unwrap();
        let to = receiver.local_addr().unwrap();
        let mut kept = Box::pin(receiver.receive_from(Vec::with_capacity(1)));
        assert!(
            tokio::time::timeout(Duration::from_millis(1), &mut kept)
                .await
                .is_err(),
            "nothing sent yet"
        );
        let mut second = Box::pin(receiver.receive_from(Vec::with_capacity(1)));
        assert!(
            poll_once(&mut second).await.is_pending(),
            "nothing sent yet"
        );
        sender.send_to(vec![0], to).await.unwrap();
        let (n, buf, _) = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the kept future held the second one up")
            .unwrap();
        assert_eq!(&buf[..n], [0]);
        sender.send_to(vec![1], to).await.unwrap();
        let (n, buf, _) = kept.await.unwrap();
        assert_eq!(&buf[..n], [1]);

        let (mut client, mut server) = pair().await;
        let mut kept = Box::pin(client.receive(Vec::with_capacity(1)));
        assert!(poll_once(&mut kept).await.is_pending(), "nothing sent yet");
        let mut got = [0u8; 4];
        let mut read = Box::pin(client.read(&mut got));
        assert!(poll_once(&mut read).await.is_pending(), "nothing sent yet");
        server.write_all(b"read").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the kept future held the read up")
            .unwrap();
        assert_eq!(&got[..n], &b"read"[..n]);
        drop(kept);
    })
    .await;
}
