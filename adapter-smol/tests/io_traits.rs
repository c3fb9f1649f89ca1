//! Audit of the smol adapter's `futures_io::{AsyncRead, AsyncWrite}` (on `TcpStream`
//! and `&TcpStream`) against the traits' contracts and `futures::io`'s utilities:
//! empty and vectored reads and writes, sticky end of stream and resets, close twice
//! and writes after it, `copy`, `BufReader::lines`, `read_exact` at end of stream,
//! cancel safety of reads and writes, mixing the traits with `send`/`receive`/
//! `begin_*`, `into_inner`/`From<Socket>`, and executors other than `smol::block_on`
//! (`async_executor` on several threads, `futures::executor::block_on` in a process
//! where nothing else drives async-io).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::Duration;

use asyncresult_smol::{Socket, SocketFlags, TcpListener, TcpStream};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::{AsyncRead, AsyncWrite, StreamExt};

mod common;
use common::{loopback, pair};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

async fn pair_with_std() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Runs `make()`'s future on a thread of its own under `smol::block_on`; a hang fails
/// the test even if it blocks that thread.
fn bounded<T, F>(secs: u64, make: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let out = smol::block_on(make());
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {secs} s"),
        _ => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

/// Runs `make()`'s future on an `async_executor` with `threads` threads, bounded.
fn on_executor<T, F>(threads: usize, secs: u64, make: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = smol::channel::unbounded::<()>();
        let runners: Vec<_> = (0..threads)
            .map(|_| {
                let ex = Arc::clone(&ex);
                let stopped = stopped.clone();
                std::thread::spawn(move || futures::executor::block_on(ex.run(stopped.recv())))
            })
            .collect();
        let out = futures::executor::block_on(ex.spawn(make()));
        drop(stop);
        for r in runners {
            let _ = r.join();
        }
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {secs} s"),
        _ => body.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

async fn poll_once<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(f(cx))).await
}

async fn write_until_pending<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> usize {
    let mut accepted = 0;
    loop {
        let chunk = &data[accepted % data.len()..];
        match poll_once(|cx| Pin::new(&mut *w).poll_write(cx, chunk)).await {
            Poll::Ready(written) => accepted += written.unwrap(),
            Poll::Pending => return accepted,
        }
    }
}

fn repeat_to(data: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let at = out.len() % data.len();
        let take = (len - out.len()).min(data.len() - at);
        out.extend_from_slice(&data[at..at + take]);
    }
    out
}

fn reset(s: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

// ---- empty and vectored buffers -----------------------------------------------------

/// An empty read is `Ready(Ok(0))` at once with no data there (through `TcpStream` and
/// `&TcpStream`); `read_vectored` fills its slices in order, skipping empty ones; an
/// empty write is `Ready(Ok(0))` even with the kernel full; a vectored write with
/// empty slices sends the rest in order.
#[test]
fn empty_and_vectored_reads_and_writes() {
    bounded(30, || async {
        let (mut client, mut server) = pair().await;
        let polled = poll_once(|cx| Pin::new(&mut server).poll_read(cx, &mut [])).await;
        assert!(matches!(polled, Poll::Ready(Ok(0))), "{polled:?}");
        let polled = poll_once(|cx| Pin::new(&mut &server).poll_read(cx, &mut [])).await;
        assert!(matches!(polled, Poll::Ready(Ok(0))), "{polled:?}");
        let n = client
            .write_vectored(&[
                IoSlice::new(b""),
                IoSlice::new(b"abc"),
                IoSlice::new(b""),
                IoSlice::new(b"defgh"),
            ])
            .await
            .unwrap();
        assert_eq!(n, 8);
        assert_eq!(client.write(b"").await.unwrap(), 0);
        let (mut a, mut b, mut c) = ([0u8; 0], [0u8; 2], [0u8; 10]);
        let mut got = 0;
        while got < 8 {
            let n = server
                .read_vectored(&mut [
                    IoSliceMut::new(&mut a),
                    IoSliceMut::new(&mut b),
                    IoSliceMut::new(&mut c),
                ])
                .await
                .unwrap();
            assert!(n > 0);
            got += n;
            // futures-io's default fills the first non-empty slice only.
            if got == 2 {
                assert_eq!(&b, b"ab");
            }
        }
        let data = pattern(1 << 20, 1);
        let accepted = write_until_pending(&mut client, &data).await;
        let polled = poll_once(|cx| Pin::new(&mut client).poll_write(cx, b"")).await;
        assert!(matches!(polled, Poll::Ready(Ok(0))), "{polled:?}");
        let polled = poll_once(|cx| Pin::new(&mut &client).poll_write(cx, b"")).await;
        assert!(matches!(polled, Poll::Ready(Ok(0))), "{polled:?}");
        client.close().await.unwrap();
        let mut all = Vec::new();
        server.read_to_end(&mut all).await.unwrap();
        assert!(all == repeat_to(&data, accepted));
    });
}

// ---- end of stream, resets, close -----------------------------------------------------

/// End of stream is sticky through `AsyncRead` and `receive`; `read_exact` past it is
/// `UnexpectedEof`; a reset is reported once as `ConnectionReset`, then end of stream.
#[test]
fn end_of_stream_is_sticky_and_a_reset_is_reported_once() {
    bounded(30, || async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"tail").await.unwrap();
        client.close().await.unwrap();
        let mut six = [0u8; 6];
        let err = server.read_exact(&mut six).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        for _ in 0..5 {
            assert_eq!((&server).read(&mut six).await.unwrap(), 0);
            assert_eq!(server.receive(Vec::with_capacity(8)).await.unwrap().0, 0);
        }
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);

        let (mut ours, theirs) = pair_with_std().await;
        reset(theirs);
        let mut buf = [0u8; 8];
        let first = ours.read(&mut buf).await;
        assert_eq!(
            first.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "{first:?}"
        );
        for _ in 0..3 {
            assert_eq!(ours.read(&mut buf).await.unwrap(), 0);
        }
        assert!(ours.write(b"x").await.is_err());
        ours.close().await.unwrap();
    });
}

/// `close` through `&TcpStream` from one task while another reads the peer's reply to
/// its end through another `&TcpStream`; close twice; a write after close fails with
/// `BrokenPipe`; a close behind a dropped `send` future waits for it.
#[test]
fn close_through_a_shared_reference_while_reading() {
    bounded(30, || async {
        let (client, server) = pair().await;
        let client = Arc::new(client);
        let big = pattern(6 << 20, 5);
        {
            let mut send = Box::pin(client.send(big.clone()));
            assert!(poll_once(|cx| send.as_mut().poll(cx)).await.is_pending());
        }
        let c2 = Arc::clone(&client);
        let reader = smol::spawn(async move {
            let mut got = Vec::new();
            (&*c2).read_to_end(&mut got).await.unwrap();
            got
        });
        let echo = smol::spawn(async move {
            let mut server = server;
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            server.write_all(&all[..1000]).await.unwrap();
            server.close().await.unwrap();
            all
        });
        (&*client).close().await.unwrap();
        (&*client).close().await.unwrap();
        let err = (&*client).write(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        let all = echo.await;
        assert!(all == big, "got {} of {}", all.len(), big.len());
        assert_eq!(reader.await, big[..1000]);
    });
}

// ---- futures::io utilities ----------------------------------------------------------

/// `futures::io::copy` through a relay of two of our streams (`&TcpStream` read and
/// written in two tasks), `BufReader::lines`, and `AsyncWriteExt::write_all` + close.
#[test]
fn copy_relay_and_buffered_lines() {
    bounded(60, || async {
        let (mut client, relay_in) = pair().await;
        let (relay_out, server) = pair().await;
        let relay = smol::spawn(async move {
            let n = futures::io::copy(&relay_in, &mut &relay_out).await.unwrap();
            (&relay_out).close().await.unwrap();
            n
        });
        let mut text = String::new();
        for i in 0..30_000u32 {
            text.push_str(&format!("line {i} {}\n", "y".repeat((i % 89) as usize)));
        }
        let t2 = text.clone();
        let writer = smol::spawn(async move {
            for chunk in t2.as_bytes().chunks(7777) {
                client.write_all(chunk).await.unwrap();
            }
            client.close().await.unwrap();
            client
        });
        let mut lines = BufReader::with_capacity(500, server).lines();
        let mut i = 0u32;
        while let Some(line) = lines.next().await {
            assert_eq!(
                line.unwrap(),
                format!("line {i} {}", "y".repeat((i % 89) as usize))
            );
            i += 1;
        }
        assert_eq!(i, 30_000);
        assert_eq!(relay.await, text.len() as u64);
        let _c = writer.await;
    });
}

// ---- cancel safety ------------------------------------------------------------------

/// Reads and writes dropped after one pending poll, or by a short timer, over and
/// over across 12 MiB each way: nothing lost or doubled.
#[test]
fn dropped_reads_and_writes_lose_and_double_nothing() {
    bounded(60, || async {
        let (mut client, mut server) = pair().await;
        let data = pattern(12 << 20, 31);
        let d2 = data.clone();
        let writer = smol::spawn(async move {
            let mut off = 0;
            let mut dropped = 0u32;
            while off < d2.len() {
                let end = (off + (1 << 20)).min(d2.len());
                if dropped % 2 == 0 {
                    let mut w = client.write(&d2[off..end]);
                    match poll_once(|cx| Pin::new(&mut w).poll(cx)).await {
                        Poll::Ready(n) => off += n.unwrap(),
                        Poll::Pending => {
                            dropped += 1;
                            smol::future::yield_now().await;
                        }
                    }
                } else {
                    let w = client.write(&d2[off..end]);
                    let t = async {
                        async_io::Timer::after(Duration::from_micros(30)).await;
                        None
                    };
                    let w = async { Some(w.await) };
                    match smol::future::or(w, t).await {
                        Some(n) => off += n.unwrap(),
                        None => dropped += 1,
                    }
                }
            }
            client.close().await.unwrap();
            (client, dropped)
        });
        let mut all = Vec::new();
        let mut buf = vec![0u8; 50_000];
        let mut dropped_reads = 0u32;
        loop {
            let mut r = server.read(&mut buf);
            match poll_once(|cx| Pin::new(&mut r).poll(cx)).await {
                Poll::Ready(n) => {
                    let n = n.unwrap();
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                }
                Poll::Pending => {
                    dropped_reads += 1;
                    smol::future::yield_now().await;
                }
            }
        }
        let (_c, dropped_writes) = writer.await;
        eprintln!("dropped reads {dropped_reads}, writes {dropped_writes}");
        assert_eq!(all.len(), data.len());
        assert!(all == data);
    });
}

/// Sum of `bytes`, a checksum that does not depend on how reads split them.
fn byte_sum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// Reads `reader` to its end in reads of up to `chunk` bytes; the bytes read and their
/// [`byte_sum`].
async fn count_to_end(mut reader: impl AsyncRead + Unpin, chunk: usize) -> (usize, u64) {
    let mut buf = vec![0u8; chunk];
    let (mut count, mut sum) = (0, 0);
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            return (count, sum);
        }
        count += n;
        sum += byte_sum(&buf[..n]);
    }
}

/// Readers sharing one socket's receive side: one task on a stream of its own and two
/// on a second stream over the same socket (`&TcpStream`), on two executor threads.
/// One waiting read parks its waker in the socket's queue, the others wait with
/// readiness operations; whichever way each waits, the data is shared out whole (no
/// byte lost or read twice) and the peer's close ends every reader, none left waiting.
#[test]
fn readers_sharing_a_socket_all_see_the_data_and_the_end() {
    const TOTAL: usize = 4 << 20;
    on_executor(2, 60, || async {
        let (ours, mut theirs) = pair_with_std().await;
        let second = Arc::new(TcpStream::from(ours.socket().clone()));
        let mut readers = vec![smol::spawn(count_to_end(ours, 3_000))];
        for _ in 0..2 {
            let shared = Arc::clone(&second);
            readers.push(smol::spawn(
                async move { count_to_end(&*shared, 1_500).await },
            ));
        }
        let data = pattern(TOTAL, 5);
        let expected = byte_sum(&data);
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            for chunk in data.chunks(10_000) {
                theirs.write_all(chunk).unwrap();
            }
            drop(theirs);
        });
        let (mut count, mut sum) = (0, 0);
        for reader in readers {
            let (c, s) = reader.await;
            count += c;
            sum += s;
        }
        writer.join().unwrap();
        assert_eq!((count, sum), (TOTAL, expected));
    });
}

// ---- mixing with send / receive / begin_* -------------------------------------------

/// `write_all`, `send`, a dropped `send`, `write` and `send` again on one stream: the
/// peer, alternating `read` and `receive`, gets them in that order.
#[test]
fn writes_and_sends_interleave_in_order() {
    on_executor(3, 60, || async {
        let (mut client, mut server) = pair().await;
        let parts: Vec<Vec<u8>> = (0..5u8)
            .map(|i| pattern([90_000, 3 << 20, 4 << 20, 1 << 20, 40_000][i as usize], i))
            .collect();
        let expect: Vec<u8> = parts.concat();
        let reader = smol::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 40_000];
            for turn in 0u32.. {
                let n = if turn % 2 == 0 {
                    let n = server.read(&mut buf).await.unwrap();
                    all.extend_from_slice(&buf[..n]);
                    n
                } else {
                    let (n, got) = server.receive(Vec::with_capacity(30_000)).await.unwrap();
                    all.extend_from_slice(&got);
                    n
                };
                if n == 0 {
                    break;
                }
            }
            all
        });
        client.write_all(&parts[0]).await.unwrap();
        client.send(parts[1].clone()).await.unwrap();
        {
            let mut send = Box::pin(client.send(parts[2].clone()));
            let _ = poll_once(|cx| send.as_mut().poll(cx)).await;
        }
        (&client).write_all(&parts[3]).await.unwrap();
        client.send(parts[4].clone()).await.unwrap();
        client.close().await.unwrap();
        let all = reader.await;
        assert_eq!(all.len(), expect.len());
        assert!(all == expect, "order broken");
    });
}

/// `From<Socket>` with a `begin_receive` pending: it gets the first bytes, `AsyncRead`
/// the next. `into_inner` after a read and a write were dropped while waiting: the
/// socket's `begin_*` are not held up, and its `begin_send` follows the accepted bytes.
#[test]
fn from_socket_and_into_inner_keep_order() {
    bounded(30, || async {
        let (mut client, server) = pair().await;
        let socket: Socket = server.into_inner();
        let pending = socket
            .begin_receive(
                vec![0u8; 5].into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        let mut server = TcpStream::from(socket.clone());
        drop(socket);
        client.write_all(b"firstsecond").await.unwrap();
        let mut rest = [0u8; 6];
        server.read_exact(&mut rest).await.unwrap();
        assert!(pending.is_completed());
        let (n, head) = server.socket().end_receive(&pending).unwrap();
        assert_eq!((&head[..n], &rest), (&b"first"[..], b"second"));

        // Dropped read and write, then into_inner.
        let mut buf = [0u8; 4];
        let mut r = server.read(&mut buf);
        assert!(poll_once(|cx| Pin::new(&mut r).poll(cx)).await.is_pending());
        drop(r);
        let filler = pattern(1 << 20, 5);
        let accepted = write_until_pending(&mut server, &filler).await;
        let socket = server.into_inner();
        let rx = socket
            .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
            .unwrap();
        let tail = pattern(2 << 20, 6);
        let tx = socket
            .begin_send(tail.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut all = vec![0u8; accepted + tail.len()];
        client.read_exact(&mut all).await.unwrap();
        let (n, got) = smol::unblock({
            let socket = socket.clone();
            move || socket.end_receive(&rx)
        })
        .await
        .unwrap();
        assert_eq!(&got[..n], b"ping");
        assert_eq!(socket.end_send(&tx).unwrap(), tail.len());
        assert!(all[..accepted] == repeat_to(&filler, accepted)[..]);
        assert!(all[accepted..] == tail[..]);
    });
}

// ---- executors ----------------------------------------------------------------------

/// A 4-thread `async_executor` driven by `futures::executor::block_on` threads: many
/// connections at once, each echoed through `futures::io::copy` on a split stream
/// (`AsyncReadExt::split`), with `write_all`/`close` and `read_to_end` on the client.
#[test]
fn many_echoes_on_a_multi_threaded_executor() {
    on_executor(4, 60, || async {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = smol::spawn(async move {
            let mut echoes = Vec::new();
            for _ in 0..16 {
                let (s, _) = listener.accept().await.unwrap();
                echoes.push(smol::spawn(async move {
                    let (r, mut w) = s.split();
                    let n = futures::io::copy(r, &mut w).await.unwrap();
                    w.close().await.unwrap();
                    n
                }));
            }
            let mut total = 0;
            for e in echoes {
                total += e.await;
            }
            total
        });
        let mut clients = Vec::new();
        for i in 0..16u8 {
            clients.push(smol::spawn(async move {
                let data = pattern(300_000 + usize::from(i) * 10_007, i);
                let s = TcpStream::connect(addr).await.unwrap();
                let (mut r, mut w) = s.split();
                let d2 = data.clone();
                let write = async move {
                    w.write_all(&d2).await.unwrap();
                    w.close().await.unwrap();
                };
                let read = async move {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    got
                };
                let ((), got) = futures::join!(write, read);
                assert!(got == data);
                data.len() as u64
            }));
        }
        let mut sent = 0;
        for c in clients {
            sent += c.await;
        }
        assert_eq!(server.await, sent);
    });
}

/// Everything under `futures::executor::block_on`, in a fresh process where nothing
/// calls `smol::block_on` or `async_io::block_on`: async-io's own thread drives the
/// reactor; io traits, `send`/`receive` and a timeout all complete.
#[test]
fn works_under_the_futures_executor_alone() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_futures_executor_alone",
            "--ignored",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status:?}");
}

#[test]
#[ignore = "run by works_under_the_futures_executor_alone in a child process"]
fn child_futures_executor_alone() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        futures::executor::block_on(async {
            let (mut client, server) = pair().await;
            let data = pattern(4 << 20, 9);
            let d2 = data.clone();
            let (done_tx, done_rx) = futures::channel::oneshot::channel();
            std::thread::spawn(move || {
                futures::executor::block_on(async move {
                    let mut server = server;
                    let mut all = Vec::new();
                    server.read_to_end(&mut all).await.unwrap();
                    server.send(b"done".as_slice()).await.unwrap();
                    server.close().await.unwrap();
                    let _ = done_tx.send(all);
                })
            });
            client.write_all(&d2[..1 << 20]).await.unwrap();
            client.send(d2[1 << 20..].to_vec()).await.unwrap();
            client.close().await.unwrap();
            let (n, got) = client.receive(Vec::with_capacity(16)).await.unwrap();
            assert_eq!(&got[..n], b"done");
            assert!(done_rx.await.unwrap() == data);
            let e = client
                .receive_timeout(Vec::with_capacity(1), Duration::from_millis(20))
                .await;
            assert!(matches!(e, Ok((0, _))), "{e:?}");
            let (c2, _s2) = pair().await;
            let e = c2
                .receive_timeout(Vec::with_capacity(1), Duration::from_millis(20))
                .await;
            assert!(matches!(e, Err(asyncresult_smol::Error::Aborted)), "{e:?}");
        });
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("hung under futures::executor::block_on");
}

/// A `write` waiting for room and a `read` waiting for data, in two tasks through
/// `&TcpStream`, when the peer resets: both end promptly with an error (the reader's
/// is `ConnectionReset`, not a clean end of stream).
#[test]
fn a_reset_ends_a_waiting_write_and_a_waiting_read() {
    on_executor(2, 30, || async {
        let (ours, theirs) = pair_with_std().await;
        let ours = Arc::new(ours);
        let (started_tx, started_rx) = smol::channel::bounded::<()>(1);
        let w = Arc::clone(&ours);
        let writer = smol::spawn(async move {
            let data = pattern(64 << 20, 1);
            let mut off = 0;
            loop {
                let mut handle: &TcpStream = &w;
                let mut write = handle.write(&data[off..]);
                let n = match poll_once(|cx| Pin::new(&mut write).poll(cx)).await {
                    Poll::Ready(n) => n,
                    Poll::Pending => {
                        let _ = started_tx.try_send(());
                        write.await
                    }
                };
                match n {
                    Ok(n) => off += n,
                    Err(e) => return e,
                }
            }
        });
        let r = Arc::clone(&ours);
        let reader = smol::spawn(async move {
            let mut buf = [0u8; 64];
            let mut handle: &TcpStream = &r;
            handle.read(&mut buf).await
        });
        started_rx.recv().await.unwrap();
        reset(theirs);
        let we = writer.await;
        assert!(
            matches!(
                we.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{we:?}"
        );
        let re = reader.await;
        assert_eq!(
            re.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "{re:?}"
        );
    });
}
