//! Audit of the tokio adapter's `AsyncRead`/`AsyncWrite` against the traits' contracts
//! and tokio's utilities: `ReadBuf` edge cases, empty and vectored writes, sticky end
//! of stream and resets, shutdown twice and writes after it, `copy_bidirectional`,
//! `tokio::io::split`, `BufReader`/`BufWriter`, cancel safety of reads and writes,
//! mixing the traits with `send`/`receive`/`begin_*`, `into_inner`/`From<Socket>`,
//! `into_split` halves dropped one at a time, and the traits outside a tokio runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{ErrorKind, IoSlice};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use asyncresult_tokio::{Socket, SocketFlags, TcpListener, TcpStream};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
    ReadBuf,
};

mod common;
use common::{loopback, pair, park_block_on};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

/// Our stream on one end, a blocking std stream on the other.
async fn pair_with_std() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Runs `body` on a runtime of the given flavour on a thread of its own; a hang fails
/// the test even if it blocks the runtime's threads.
fn run<T, F>(multi: bool, secs: u64, body: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let out = rt.block_on(body());
        drop(rt);
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {secs} s"),
        _ => handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

/// Polls `f` once with the current task's context.
async fn poll_once<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(f(cx))).await
}

/// Writes until one returns `Pending` (the peer reads nothing, the kernel's buffers
/// fill), leaving the writer's wait for room pending; returns the bytes accepted.
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

/// Closes `s` with a reset (`SO_LINGER` 0).
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

// ---- ReadBuf and empty buffers ------------------------------------------------------

/// A `ReadBuf` with no room left is `Ready(Ok)` at once and untouched, even with no
/// data there (tokio: "If the buffer has no remaining capacity, ... Ready(Ok(()))");
/// a partly filled, partly initialised one is filled after its filled part, which
/// stays as it was.
#[test]
fn read_buf_with_no_room_is_ready_and_a_partly_filled_one_is_appended_to() {
    run(false, 30, || async {
        let (mut client, mut server) = pair().await;
        // No data: a full ReadBuf must not wait.
        let mut storage = [7u8; 4];
        let polled = poll_once(|cx| {
            let mut full = ReadBuf::new(&mut storage);
            full.advance(4);
            let r = Pin::new(&mut server).poll_read(cx, &mut full);
            r.map(|r| r.map(|()| full.filled().len()))
        })
        .await;
        assert!(
            matches!(polled, Poll::Ready(Ok(4))),
            "full ReadBuf: {polled:?}"
        );
        let mut empty: [u8; 0] = [];
        let polled =
            poll_once(|cx| Pin::new(&mut server).poll_read(cx, &mut ReadBuf::new(&mut empty)))
                .await;
        assert!(matches!(polled, Poll::Ready(Ok(()))), "empty ReadBuf");

        client.write_all(b"abcdefgh").await.unwrap();
        // Partly filled (3), partly initialised (5 of 16).
        let mut raw = [std::mem::MaybeUninit::<u8>::uninit(); 16];
        let mut rb = ReadBuf::uninit(&mut raw);
        rb.put_slice(b"xyz");
        rb.initialize_unfilled_to(2);
        assert_eq!(rb.initialized().len(), 5);
        std::future::poll_fn(|cx| Pin::new(&mut server).poll_read(cx, &mut rb))
            .await
            .unwrap();
        assert_eq!(rb.filled(), b"xyzabcdefgh");
        assert_eq!(rb.initialized().len(), 11);

        // A ReadBuf with fewer bytes of room than there is data: exactly that many.
        client.write_all(b"0123456789").await.unwrap();
        let mut small = [0u8; 4];
        let mut rb = ReadBuf::new(&mut small);
        rb.put_slice(b"q");
        std::future::poll_fn(|cx| Pin::new(&mut server).poll_read(cx, &mut rb))
            .await
            .unwrap();
        assert_eq!(rb.filled(), b"q012");
        let mut rest = [0u8; 7];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"3456789");
    });
}

/// An empty write is `Ready(Ok(0))` at once, even when the kernel has no room; a
/// vectored write with empty slices among full ones sends the full ones in order;
/// `is_write_vectored` is true.
#[test]
fn empty_and_vectored_writes() {
    run(false, 30, || async {
        let (mut client, mut server) = pair().await;
        assert!(client.is_write_vectored());
        let bufs = [
            IoSlice::new(b""),
            IoSlice::new(b"ab"),
            IoSlice::new(b""),
            IoSlice::new(b"cde"),
            IoSlice::new(b""),
        ];
        let n = client.write_vectored(&bufs).await.unwrap();
        assert_eq!(n, 5);
        let n = client.write_vectored(&[IoSlice::new(b"")]).await.unwrap();
        assert_eq!(n, 0);
        let n = client.write(b"").await.unwrap();
        assert_eq!(n, 0);
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcde");

        // Full kernel: the empty write still completes at once.
        let data = pattern(1 << 20, 1);
        let accepted = write_until_pending(&mut client, &data).await;
        let polled = poll_once(|cx| Pin::new(&mut client).poll_write(cx, b"")).await;
        assert!(matches!(polled, Poll::Ready(Ok(0))), "{polled:?}");
        // A vectored write too large for the kernel writes part of it, and the rest
        // follows through write_all after the peer reads.
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            all
        });
        let big_a = pattern(3 << 20, 2);
        let big_b = pattern(2 << 20, 3);
        let mut off = 0;
        let total = big_a.len() + big_b.len();
        while off < total {
            let slices: Vec<IoSlice<'_>> = if off < big_a.len() {
                vec![IoSlice::new(&big_a[off..]), IoSlice::new(&big_b)]
            } else {
                vec![IoSlice::new(&big_b[off - big_a.len()..])]
            };
            let n = client.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            off += n;
        }
        client.shutdown().await.unwrap();
        let all = reader.await.unwrap();
        assert_eq!(all.len(), accepted + total);
        let mut expect = Vec::new();
        while expect.len() < accepted {
            let at = expect.len() % data.len();
            let take = (accepted - expect.len()).min(data.len() - at);
            expect.extend_from_slice(&data[at..at + take]);
        }
        expect.extend_from_slice(&big_a);
        expect.extend_from_slice(&big_b);
        assert!(all == expect, "vectored bytes out of order");
    });
}

// ---- end of stream and resets -------------------------------------------------------

/// After the peer's FIN every read returns 0, forever (through `AsyncRead` and
/// `receive` alike); `read_exact` past it is `UnexpectedEof`; `read_to_end` keeps
/// what came before.
#[test]
fn end_of_stream_is_sticky() {
    run(true, 30, || async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"tail").await.unwrap();
        client.shutdown().await.unwrap();
        let mut six = [0u8; 6];
        let err = server.read_exact(&mut six).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        for _ in 0..5 {
            let mut buf = [0u8; 16];
            assert_eq!(server.read(&mut buf).await.unwrap(), 0);
            let (n, _) = server.receive(Vec::with_capacity(16)).await.unwrap();
            assert_eq!(n, 0);
        }
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        // Our side can still write to the half-closed peer.
        server.write_all(b"reply").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"reply");
    });
}

/// A peer's reset reaches a read as `ConnectionReset`, once; then reads return 0 (as
/// tokio's own stream does: the kernel reports the error once); writes fail.
#[test]
fn a_reset_is_reported_once_then_end_of_stream() {
    run(false, 30, || async {
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
        let w = ours.write(b"x").await;
        assert!(w.is_err(), "write after a reset: {w:?}");
        // Shutting down a reset stream is fine (nothing to shut).
        let s = ours.shutdown().await;
        assert!(s.is_ok(), "{s:?}");
    });
}

// ---- shutdown -----------------------------------------------------------------------

/// `poll_shutdown` twice is fine; a write after it fails with `BrokenPipe`; reads keep
/// working to the peer's end of stream; after both sides closed, shutdown is still
/// fine.
#[test]
fn shutdown_twice_then_write_fails_and_reads_go_on() {
    run(false, 30, || async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"before").await.unwrap();
        client.shutdown().await.unwrap();
        client.shutdown().await.unwrap();
        client.flush().await.unwrap();
        let err = client.write_all(b"after").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        let err = client.send(b"after".as_slice()).await.unwrap_err();
        assert_eq!(err.error_code(), Some(libc::EPIPE));
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"before");
        // The peer talks back after our shutdown; we read it to its end.
        let reply = pattern(2 << 20, 9);
        let r2 = reply.clone();
        let writer = tokio::spawn(async move {
            server.write_all(&r2).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert!(back == reply);
        let _server = writer.await.unwrap();
        client.shutdown().await.unwrap();
    });
}

/// A shutdown behind a dropped `send` future (queued, the peer not reading yet) waits
/// for it, then the peer reads every byte and end of stream; a write started after
/// the shutdown fails.
#[test]
fn shutdown_waits_for_a_dropped_send_then_later_writes_fail() {
    run(true, 30, || async {
        let (mut client, mut server) = pair().await;
        let big = pattern(8 << 20, 4);
        {
            let mut send = Box::pin(client.send(big.clone()));
            assert!(poll_once(|cx| send.as_mut().poll(cx)).await.is_pending());
        }
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            all
        });
        client.shutdown().await.unwrap();
        let err = client.write(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        let all = reader.await.unwrap();
        assert!(all == big, "got {} of {} bytes", all.len(), big.len());
    });
}

// ---- tokio utilities ----------------------------------------------------------------

/// A proxy built from `copy_bidirectional` between two of our streams, 6 MiB each
/// way, with half-closes passed through: both directions arrive whole and the counts
/// are right.
#[test]
fn copy_bidirectional_proxies_both_ways_with_half_close() {
    for multi in [false, true] {
        run(multi, 60, || async {
            let (client, mut proxy_front) = pair().await;
            let (mut proxy_back, mut backend) = pair().await;
            let proxy = tokio::spawn(async move {
                tokio::io::copy_bidirectional(&mut proxy_front, &mut proxy_back)
                    .await
                    .unwrap()
            });
            let up = pattern(6 << 20, 11);
            let down = pattern(5 << 20, 12);
            let (up2, down2) = (up.clone(), down.clone());
            let back = tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(&mut backend);
                let read = async {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    got
                };
                let write = async {
                    w.write_all(&down2).await.unwrap();
                    w.shutdown().await.unwrap();
                };
                let (got, ()) = tokio::join!(read, write);
                got
            });
            let (mut cr, mut cw) = client.into_split();
            let w = tokio::spawn(async move {
                cw.write_all(&up2).await.unwrap();
                cw.shutdown().await.unwrap();
                cw
            });
            let mut got_down = Vec::new();
            cr.read_to_end(&mut got_down).await.unwrap();
            let _cw = w.await.unwrap();
            let got_up = back.await.unwrap();
            assert!(got_up == up, "upstream corrupted");
            assert!(got_down == down, "downstream corrupted");
            let (a, b) = proxy.await.unwrap();
            assert_eq!((a as usize, b as usize), (up.len(), down.len()));
        });
    }
}

/// `tokio::io::split` (not `into_split`): its halves in two tasks of a multi-thread
/// runtime move 8 MiB each way at once through one stream.
#[test]
fn tokio_io_split_halves_in_two_tasks() {
    run(true, 60, || async {
        let (client, server) = pair().await;
        let echo = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(server);
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let data = pattern(8 << 20, 21);
        let (mut r, mut w) = tokio::io::split(client);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&d2).await.unwrap();
            w.shutdown().await.unwrap();
            w
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            (r, got)
        });
        let (_r, got) = reader.await.unwrap();
        let _w = writer.await.unwrap();
        echo.await.unwrap();
        assert!(got == data);
    });
}

/// `BufWriter` + `BufReader::lines` over 20,000 lines; `read_line` at the end is 0.
#[test]
fn buffered_lines_round_trip() {
    run(false, 30, || async {
        let (client, server) = pair().await;
        let writer = tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(1000, client);
            for i in 0..20_000u32 {
                w.write_all(format!("line {i} {}\n", "x".repeat((i % 97) as usize)).as_bytes())
                    .await
                    .unwrap();
            }
            w.flush().await.unwrap();
            w.shutdown().await.unwrap();
            w.into_inner()
        });
        let mut lines = BufReader::with_capacity(333, server).lines();
        let mut i = 0u32;
        while let Some(line) = lines.next_line().await.unwrap() {
            assert_eq!(line, format!("line {i} {}", "x".repeat((i % 97) as usize)));
            i += 1;
        }
        assert_eq!(i, 20_000);
        let mut server = lines.into_inner();
        let mut s = String::new();
        assert_eq!(server.read_line(&mut s).await.unwrap(), 0);
        let _client = writer.await.unwrap();
    });
}

// ---- cancel safety ------------------------------------------------------------------

/// Writes dropped by a short timeout, over and over, while the peer reads slowly: a
/// write that timed out accepted nothing, so resuming from the count the completed
/// writes reported neither loses nor doubles a byte.
#[test]
fn writes_dropped_by_timeouts_lose_and_double_nothing() {
    for multi in [false, true] {
        run(multi, 60, || async {
            let (mut client, mut server) = pair().await;
            let data = pattern(12 << 20, 31);
            let reader = tokio::spawn(async move {
                let mut all = Vec::new();
                let mut buf = vec![0u8; 7001];
                loop {
                    let n = server.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    if all.len() % 5 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                all
            });
            let mut off = 0;
            let mut timeouts = 0u32;
            while off < data.len() {
                let end = (off + (1 << 20)).min(data.len());
                if off % 2 == 0 {
                    let mut write = Box::pin(client.write(&data[off..end]));
                    match poll_once(|cx| write.as_mut().poll(cx)).await {
                        Poll::Ready(n) => off += n.unwrap(),
                        Poll::Pending => {
                            drop(write);
                            timeouts += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                    continue;
                }
                match tokio::time::timeout(Duration::from_micros(50), client.write(&data[off..end]))
                    .await
                {
                    Ok(n) => off += n.unwrap(),
                    Err(_) => timeouts += 1,
                }
            }
            client.shutdown().await.unwrap();
            let all = reader.await.unwrap();
            eprintln!("write timeouts: {timeouts}");
            assert_eq!(all.len(), data.len(), "timeouts: {timeouts}");
            assert!(all == data, "bytes changed (timeouts: {timeouts})");
        });
    }
}

/// Reads dropped over 16 MiB on a multi-thread runtime (the writer in another task):
/// a read future polled once and dropped if pending, alternating with reads under a
/// short timeout: the bytes read are exactly the stream.
#[test]
fn reads_dropped_mid_stream_over_many_mib_lose_nothing() {
    run(true, 60, || async {
        let (mut client, mut server) = pair().await;
        let data = pattern(16 << 20, 41);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in d2.chunks(100_003) {
                client.write_all(chunk).await.unwrap();
            }
            client.shutdown().await.unwrap();
            client
        });
        let mut all = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 65_536];
        let (mut dropped, mut timeouts, mut round) = (0u32, 0u32, 0u32);
        loop {
            round += 1;
            let got = if round % 3 == 0 {
                match tokio::time::timeout(Duration::from_micros(1), server.read(&mut buf)).await {
                    Ok(n) => Some(n.unwrap()),
                    Err(_) => {
                        timeouts += 1;
                        None
                    }
                }
            } else {
                let mut read = Box::pin(server.read(&mut buf));
                match poll_once(|cx| read.as_mut().poll(cx)).await {
                    Poll::Ready(n) => Some(n.unwrap()),
                    Poll::Pending => {
                        drop(read);
                        dropped += 1;
                        tokio::task::yield_now().await;
                        None
                    }
                }
            };
            match got {
                Some(0) => break,
                Some(n) => all.extend_from_slice(&buf[..n]),
                None => {}
            }
        }
        let _c = writer.await.unwrap();
        eprintln!("reads dropped: {dropped}, timed out: {timeouts}");
        assert_eq!(all.len(), data.len());
        assert!(all == data);
    });
}

// ---- mixing with send / receive / begin_* -------------------------------------------

/// `write_all`, `send`, a `send` dropped while queued, `write_vectored` and `send`
/// again, all on one stream: the peer reads them in that order. The reader
/// alternates `read` and `receive`.
#[test]
fn writes_and_sends_interleave_in_order_and_reads_and_receives_too() {
    run(true, 60, || async {
        let (mut client, mut server) = pair().await;
        let a = pattern(100_000, 1);
        let b = pattern(3 << 20, 2);
        let c = pattern(4 << 20, 3);
        let d = pattern(1 << 20, 4);
        let e = pattern(50_000, 5);
        let mut expect = Vec::new();
        for part in [&a, &b, &c, &d, &e] {
            expect.extend_from_slice(part);
        }
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 40_000];
            let mut turn = 0u32;
            loop {
                turn += 1;
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
        client.write_all(&a).await.unwrap();
        client.send(b.clone()).await.unwrap();
        {
            // Queued behind nothing but a full kernel: dropped after one poll.
            let mut send = Box::pin(client.send(c.clone()));
            let _ = poll_once(|cx| send.as_mut().poll(cx)).await;
        }
        let mut off = 0;
        while off < d.len() {
            off += client
                .write_vectored(&[IoSlice::new(&d[off..(off + 300_000).min(d.len())])])
                .await
                .unwrap();
        }
        client.send(e.clone()).await.unwrap();
        client.shutdown().await.unwrap();
        let all = reader.await.unwrap();
        assert_eq!(all.len(), expect.len());
        assert!(all == expect, "order broken");
    });
}

/// A `begin_receive` pending on the socket when it is wrapped with `From<Socket>`: it
/// gets the first bytes, `AsyncRead` the ones after; a `begin_send` queued before a
/// `write_all` goes first.
#[test]
fn from_socket_with_begun_operations_keeps_their_order() {
    run(false, 30, || async {
        let (client, server) = pair().await;
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
        let mut client = client;
        client.write_all(b"firstsecond").await.unwrap();
        let mut rest = [0u8; 6];
        server.read_exact(&mut rest).await.unwrap();
        let (n, head) = tokio::task::spawn_blocking({
            let socket = socket.clone();
            move || socket.end_receive(&pending)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!((&head[..n], &rest), (&b"first"[..], b"second"));

        // Sends: a large begin_send (queued, the peer not reading), then write_all.
        let big = pattern(6 << 20, 8);
        let sent = socket
            .begin_send(big.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        server.write_all(b"after").await.unwrap();
        server.shutdown().await.unwrap();
        let all = reader.await.unwrap();
        assert!(sent.is_completed());
        assert_eq!(all.len(), big.len() + 5);
        assert!(all[..big.len()] == big[..] && &all[big.len()..] == b"after");
    });
}

// ---- into_inner ---------------------------------------------------------------------

/// `into_inner` after a read was dropped while waiting (a timeout) and after a write
/// was dropped while waiting for room: the stale waits hold nothing up; the socket's
/// `begin_receive` gets the next bytes and its `begin_send` goes out after the bytes
/// the writes accepted.
#[test]
fn into_inner_after_dropped_reads_and_writes() {
    run(true, 30, || async {
        let (mut client, mut server) = pair().await;
        let mut buf = [0u8; 8];
        assert!(
            tokio::time::timeout(Duration::from_millis(20), server.read(&mut buf))
                .await
                .is_err()
        );
        let filler = pattern(1 << 20, 5);
        let accepted = write_until_pending(&mut server, &filler).await;
        let socket = server.into_inner();
        let pending = socket
            .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
            .unwrap();
        let tail = pattern(2 << 20, 6);
        let sent = socket
            .begin_send(tail.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let s2 = socket.clone();
        let (n, got) = tokio::task::spawn_blocking(move || s2.end_receive(&pending))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got[..n], b"ping");
        let mut all = vec![0u8; accepted + tail.len()];
        client.read_exact(&mut all).await.unwrap();
        let s3 = socket.clone();
        assert_eq!(
            tokio::task::spawn_blocking(move || s3.end_send(&sent))
                .await
                .unwrap()
                .unwrap(),
            tail.len()
        );
        assert!(all[accepted..] == tail[..]);
        drop(socket);
        let mut more = [0u8; 1];
        assert_eq!(client.read(&mut more).await.unwrap(), 0, "FIN after drop");
    });
}

// ---- into_split halves --------------------------------------------------------------

/// Dropping the read half leaves the write half working; dropping the write half
/// shuts the write side down (the peer reads end of stream) while the read half
/// keeps reading; dropping both closes the socket.
#[test]
fn split_halves_dropped_one_at_a_time() {
    run(true, 30, || async {
        // Read half first.
        let (client, mut server) = pair().await;
        let (r, mut w) = client.into_split();
        drop(r);
        w.write_all(b"still writing").await.unwrap();
        w.send(b" and sending".as_slice()).await.unwrap();
        drop(w);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"still writing and sending");

        // Write half first.
        let (client, mut server) = pair().await;
        let (mut r, w) = client.into_split();
        drop(w);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "peer sees end of stream");
        let data = pattern(3 << 20, 77);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            server.write_all(&d2).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert!(back == data);
        let mut server = writer.await.unwrap();
        let socket = r.socket().clone();
        assert!(!socket.is_closed());
        drop(socket);
        drop(r);
        // Both gone: the socket is closed; the peer's writes eventually fail.
        let mut failed = false;
        for _ in 0..200 {
            if server.write_all(b"x").await.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            failed,
            "the peer never learnt that both halves were dropped"
        );
    });
}

/// The `socket:[inode]` link of descriptor `fd`.
fn link_of(fd: i32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap()
}

/// Whether any descriptor of this process is `link`, waiting up to 5 s for it to go.
fn still_open_after_a_while(link: &std::path::Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|l| l == link);
        if !open || std::time::Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The stream dropped right after `write_all` was cut off by a timeout (its write
/// left waiting for room, the peer not reading): no send is queued, so the socket is
/// closed at once (its descriptor goes), as a tokio stream's would be, rather than
/// held open until the peer reads. The same for split halves.
#[test]
fn dropping_a_stream_whose_write_waits_for_room_still_closes_it() {
    run(false, 30, || async {
        use std::os::fd::AsRawFd;
        let data = pattern(32 << 20, 3);
        let (mut client, server) = pair().await;
        let link = link_of(client.socket().as_socket2().as_raw_fd());
        let cut = tokio::time::timeout(Duration::from_millis(50), client.write_all(&data)).await;
        assert!(cut.is_err(), "the kernel took 32 MiB?");
        drop(client);
        assert!(
            !still_open_after_a_while(&link),
            "the dropped stream's socket stayed open"
        );

        let (client2, server2) = pair().await;
        let link = link_of(client2.socket().as_socket2().as_raw_fd());
        let (r2, mut w2) = client2.into_split();
        let cut = tokio::time::timeout(Duration::from_millis(50), w2.write_all(&data)).await;
        assert!(cut.is_err());
        drop(w2);
        drop(r2);
        assert!(
            !still_open_after_a_while(&link),
            "the dropped halves' socket stayed open"
        );
        drop((server, server2));
    });
}

// ---- outside a tokio runtime --------------------------------------------------------

/// The io traits (and `send`/`receive`) work under a plain executor with no tokio
/// runtime at all: the engine's own workers wake the futures.
#[test]
fn io_traits_work_without_a_tokio_runtime() {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let listener = Socket::listen_tcp(loopback(), 8).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Socket::connect_tcp(addr).unwrap();
        let server = listener
            .end_accept(&listener.begin_accept(None, None).unwrap())
            .unwrap();
        let mut client = TcpStream::from(client);
        let server = TcpStream::from(server);
        let data = pattern(4 << 20, 50);
        let d2 = data.clone();
        let t = std::thread::spawn(move || {
            park_block_on(async move {
                let mut server = server;
                let mut all = Vec::new();
                server.read_to_end(&mut all).await.unwrap();
                server.write_all(b"done").await.unwrap();
                server.shutdown().await.unwrap();
                all
            })
        });
        park_block_on(async {
            client.write_all(&d2[..1 << 20]).await.unwrap();
            client.send(d2[1 << 20..].to_vec()).await.unwrap();
            client.shutdown().await.unwrap();
            let (n, got) = client.receive(Vec::with_capacity(16)).await.unwrap();
            assert_eq!(&got[..n], b"done");
        });
        let all = t.join().unwrap();
        assert!(all == data);
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        panic!("hung without a tokio runtime");
    }
    h.join().unwrap();
}

// ---- wake-ups under load ------------------------------------------------------------

/// 32 connections × 500 small round trips at once, through `write_all`/`read_exact`
/// on even rounds and `send`/`receive` on odd ones (the echo side alternating the
/// other way): a lost wake-up hangs the test.
#[test]
fn many_small_round_trips_lose_no_wake_up() {
    for multi in [false, true] {
        run(multi, 60, || async {
            let listener = TcpListener::bind(loopback()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let mut echoes = Vec::new();
                for _ in 0..32 {
                    let (mut s, _) = listener.accept().await.unwrap();
                    echoes.push(tokio::spawn(async move {
                        let mut buf = [0u8; 24];
                        for round in 0u32.. {
                            if round % 2 == 1 {
                                match s.read_exact(&mut buf).await {
                                    Ok(_) => {}
                                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
                                    Err(e) => panic!("{e}"),
                                }
                                s.send(buf.to_vec()).await.unwrap();
                            } else {
                                let mut got = Vec::new();
                                while got.len() < 24 {
                                    let (n, b) = s
                                        .receive(Vec::with_capacity(24 - got.len()))
                                        .await
                                        .unwrap();
                                    if n == 0 {
                                        return;
                                    }
                                    got.extend_from_slice(&b);
                                }
                                s.write_all(&got).await.unwrap();
                            }
                        }
                    }));
                }
                for e in echoes {
                    e.await.unwrap();
                }
            });
            let mut clients = Vec::new();
            for c in 0..32u32 {
                clients.push(tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    for round in 0..500u32 {
                        let msg: Vec<u8> = (0..24u32).map(|i| (c * 7 + round + i) as u8).collect();
                        if round % 2 == 0 {
                            s.write_all(&msg).await.unwrap();
                        } else {
                            s.send(msg.clone()).await.unwrap();
                        }
                        let mut back = [0u8; 24];
                        if round % 3 == 0 {
                            let mut got = Vec::new();
                            while got.len() < 24 {
                                let (n, b) =
                                    s.receive(Vec::with_capacity(24 - got.len())).await.unwrap();
                                assert!(n > 0);
                                got.extend_from_slice(&b);
                            }
                            back.copy_from_slice(&got);
                        } else {
                            s.read_exact(&mut back).await.unwrap();
                        }
                        assert_eq!(&back[..], &msg[..]);
                    }
                    s.shutdown().await.unwrap();
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
            server.await.unwrap();
        });
    }
}

/// A hand-written two-way pump in one task: `select!` over a read of each side and a
/// write of what the other side gave, so reads and writes of four halves are dropped
/// all the time with one waker; 6 MiB each way arrive whole.
#[test]
fn a_select_pump_over_four_halves_moves_everything() {
    run(true, 60, || async {
        let (left, pump_l) = pair().await;
        let (pump_r, right) = pair().await;
        let pump = tokio::spawn(async move {
            let (mut lr, mut lw) = pump_l.into_split();
            let (mut rr, mut rw) = pump_r.into_split();
            let (mut to_r, mut to_l) = (Vec::<u8>::new(), Vec::<u8>::new());
            let (mut l_eof, mut r_eof) = (false, false);
            let (mut bl, mut br) = (vec![0u8; 9000], vec![0u8; 7000]);
            loop {
                if l_eof && to_r.is_empty() {
                    rw.shutdown().await.unwrap();
                    l_eof = false;
                    to_r.clear();
                    // Mark done for this direction.
                    bl.clear();
                }
                if r_eof && to_l.is_empty() {
                    lw.shutdown().await.unwrap();
                    r_eof = false;
                    br.clear();
                }
                if bl.is_empty() && br.is_empty() && to_r.is_empty() && to_l.is_empty() {
                    return;
                }
                tokio::select! {
                    n = lr.read(&mut bl), if !bl.is_empty() && to_r.len() < 100_000 => {
                        let n = n.unwrap();
                        if n == 0 { l_eof = true; } else { to_r.extend_from_slice(&bl[..n]); }
                    }
                    n = rr.read(&mut br), if !br.is_empty() && to_l.len() < 100_000 => {
                        let n = n.unwrap();
                        if n == 0 { r_eof = true; } else { to_l.extend_from_slice(&br[..n]); }
                    }
                    n = rw.write(&to_r), if !to_r.is_empty() => {
                        let n = n.unwrap();
                        to_r.drain(..n);
                    }
                    n = lw.write(&to_l), if !to_l.is_empty() => {
                        let n = n.unwrap();
                        to_l.drain(..n);
                    }
                }
            }
        });
        let up = pattern(6 << 20, 61);
        let down = pattern(6 << 20, 62);
        let ends = |s: TcpStream, out: Vec<u8>| {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let write = async move {
                    for chunk in out.chunks(65_537) {
                        w.write_all(chunk).await.unwrap();
                    }
                    w.shutdown().await.unwrap();
                    w
                };
                let read = async move {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    got
                };
                let (_w, got) = tokio::join!(write, read);
                got
            })
        };
        let l = ends(left, up.clone());
        let r = ends(right, down.clone());
        let (got_at_left, got_at_right) = (l.await.unwrap(), r.await.unwrap());
        pump.await.unwrap();
        assert!(got_at_right == up, "left to right corrupted");
        assert!(got_at_left == down, "right to left corrupted");
    });
}

/// `read_buf` into a `BytesMut` (uninitialised memory through `ReadBuf`) and
/// `write_all_buf` from a chained `Buf`.
#[test]
fn read_buf_into_bytes_mut_and_write_all_buf() {
    use bytes::{Buf, BytesMut};
    run(false, 30, || async {
        let (mut client, mut server) = pair().await;
        let data = pattern(3 << 20, 71);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            let (a, b) = d2.split_at(1 << 20);
            let mut chain =
                bytes::Bytes::copy_from_slice(a).chain(bytes::Bytes::copy_from_slice(b));
            client.write_all_buf(&mut chain).await.unwrap();
            assert!(!chain.has_remaining());
            client.shutdown().await.unwrap();
            client
        });
        let mut got = BytesMut::with_capacity(1000);
        loop {
            if got.capacity() == got.len() {
                got.reserve(50_000);
            }
            if server.read_buf(&mut got).await.unwrap() == 0 {
                break;
            }
        }
        let _c = writer.await.unwrap();
        assert!(got[..] == data[..]);
    });
}

/// The split halves are `Send`, `Sync`, `Unpin` and `Debug`, so they fit tokio's
/// utilities and tasks.
#[test]
fn split_halves_are_send_sync_unpin() {
    fn check<T: Send + Sync + Unpin + std::fmt::Debug + 'static>() {}
    check::<asyncresult_tokio::OwnedReadHalf>();
    check::<asyncresult_tokio::OwnedWriteHalf>();
    check::<TcpStream>();
}

/// A `write_all` waiting for room and a `read` waiting for data, in two tasks, when the
/// peer resets: both end promptly with an error (the reset reaches the writer, and the
/// reader sees `ConnectionReset`, not a clean end of stream).
#[test]
fn a_reset_ends_a_waiting_write_all_and_a_waiting_read() {
    run(true, 30, || async {
        let (ours, theirs) = pair_with_std().await;
        let (mut r, mut w) = ours.into_split();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(async move {
            let data = pattern(64 << 20, 1);
            let mut started = Some(started_tx);
            let mut off = 0;
            loop {
                let mut write = Box::pin(w.write(&data[off..]));
                let n = match poll_once(|cx| write.as_mut().poll(cx)).await {
                    Poll::Ready(n) => n,
                    Poll::Pending => {
                        if let Some(tx) = started.take() {
                            let _ = tx.send(());
                        }
                        write.await
                    }
                };
                match n {
                    Ok(n) => off += n,
                    Err(e) => return e,
                }
            }
        });
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            r.read(&mut buf).await
        });
        started_rx.await.unwrap();
        reset(theirs);
        let we = writer.await.unwrap();
        assert!(
            matches!(
                we.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{we:?}"
        );
        let re = reader.await.unwrap();
        assert_eq!(
            re.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "{re:?}"
        );
    });
}

/// The halves of one stream on two runtimes at once (two current-thread runtimes on
/// two threads), each echoing through the other end: 8 MiB arrive whole.
#[test]
fn split_halves_on_two_runtimes_at_once() {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, server) = rt.block_on(pair());
        let (mut r, mut w) = client.into_split();
        let data = pattern(8 << 20, 81);
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                w.write_all(&d2).await.unwrap();
                w.shutdown().await.unwrap();
            });
        });
        let echo = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (mut sr, mut sw) = server.into_split();
                tokio::io::copy(&mut sr, &mut sw).await.unwrap();
                sw.shutdown().await.unwrap();
            });
        });
        let got = rt.block_on(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        });
        writer.join().unwrap();
        echo.join().unwrap();
        assert!(got == data);
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        panic!("hung");
    }
    h.join().unwrap();
}

/// A read left waiting on one runtime (kept but no longer driven), then the stream
/// moved to a fresh runtime, whose next read reuses that wait: the data still
/// arrives, and not after a long stall (the second runtime drives the engine).
#[test]
fn a_wait_begun_on_one_runtime_completes_on_another() {
    run(false, 30, || async {
        let rt_a = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, mut server, rt_a) = tokio::task::spawn_blocking(move || {
            let (c, mut s) = rt_a.block_on(async {
                let (c, s) = pair().await;
                (c, s)
            });
            rt_a.block_on(async {
                let mut buf = [0u8; 4];
                let mut read = Box::pin(s.read(&mut buf));
                assert!(poll_once(|cx| read.as_mut().poll(cx)).await.is_pending());
            });
            // rt_a is kept (dropped at the end), but nothing drives it any more.
            (c, s, rt_a)
        })
        .await
        .unwrap();
        let mut client = client;
        let mut worst = Duration::ZERO;
        for i in 0..20u8 {
            let start = std::time::Instant::now();
            client.write_all(&[i]).await.unwrap();
            let mut one = [0u8; 1];
            server.read_exact(&mut one).await.unwrap();
            assert_eq!(one[0], i);
            worst = worst.max(start.elapsed());
        }
        eprintln!("worst round trip: {worst:?}");
        tokio::task::spawn_blocking(move || drop(rt_a))
            .await
            .unwrap();
        assert!(worst < Duration::from_millis(500), "stalled: {worst:?}");
    });
}

/// A flush with nothing queued is ready at once and spends none of tokio's cooperative
/// budget, as tokio's own streams' flush: a thousand in one poll of the task are all
/// ready (the budget holds 128 units). (A flush behind a queued send waits for it:
/// `shutdown_waits_for_a_dropped_send_then_later_writes_fail`.)
#[test]
fn a_flush_with_nothing_queued_spends_no_budget() {
    for multi in [false, true] {
        run(multi, 30, || async {
            let (mut ours, _theirs) = pair().await;
            let ready = poll_once(|cx| {
                Poll::Ready(
                    (0..1000)
                        .filter(|_| Pin::new(&mut ours).poll_flush(cx).is_ready())
                        .count(),
                )
            })
            .await;
            assert_eq!(ready, Poll::Ready(1000));
        });
    }
}
