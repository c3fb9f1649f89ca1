//! Concurrency through the tokio adapter on real runtimes: whole sends and order from
//! many tasks on a multi-thread runtime, split halves in different tasks, a third task
//! closing a stream under its reader and writer, runtime shutdown with operations
//! pending, and a blocked runtime alongside callback users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use asyncresult_tokio::{Error, Socket, SocketFlags, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair};

/// Runs `body` on a thread of its own; a hang fails the test (even one that blocks a
/// runtime's threads, which a tokio timeout would not catch).
fn bounded<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {limit:?}"),
        _ => handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn record(t: u32, seq: u32, body_len: usize) -> Vec<u8> {
    let mut rec = Vec::with_capacity(12 + body_len);
    rec.extend_from_slice(&t.to_le_bytes());
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(&(body_len as u32).to_le_bytes());
    rec.extend((0..body_len).map(|i| body_byte(t, seq, i)));
    rec
}

fn body_byte(t: u32, seq: u32, i: usize) -> u8 {
    (i as u8)
        .wrapping_mul(7)
        .wrapping_add(t as u8)
        .wrapping_add((seq as u8).wrapping_mul(13))
        .wrapping_add((i >> 8) as u8)
}

fn check_records(data: &[u8], per_task: &[u32]) {
    let mut next = vec![0u32; per_task.len()];
    let mut at = 0;
    while at < data.len() {
        assert!(at + 12 <= data.len(), "truncated header at {at}");
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        let (t, seq, len) = (word(0), word(4), word(8) as usize);
        assert!((t as usize) < per_task.len(), "garbage header at {at}");
        assert_eq!(seq, next[t as usize], "task {t} out of order at {at}");
        assert!(at + 12 + len <= data.len(), "truncated record {t}/{seq}");
        let body = &data[at + 12..at + 12 + len];
        if let Some(bad) = body
            .iter()
            .enumerate()
            .position(|(i, &b)| b != body_byte(t, seq, i))
        {
            panic!("record {t}/{seq} torn at body byte {bad}");
        }
        next[t as usize] += 1;
        at += 12 + len;
    }
    assert_eq!(next, per_task, "records missing");
}

fn size_of(t: u32, seq: u32) -> usize {
    match (seq * 3 + t) % 6 {
        0 => 0,
        1 => 1,
        2 => 5_000,
        3 => 200_000,
        4 => {
            if seq % 4 == 0 {
                2 << 20
            } else {
                33
            }
        }
        _ => 70_000,
    }
}

/// Many tasks on a multi-thread runtime send records on one shared stream; within a
/// task, pairs of sends are started together (`join`, the first polled first): every
/// record arrives whole, never interleaved, each task's in start order. The reader, a
/// slow one (small reads through `AsyncRead`), lets the kernel buffers fill.
#[test]
fn many_tasks_send_whole_records_on_one_stream() {
    const TASKS: u32 = 12;
    const RECORDS: u32 = 24;
    bounded(Duration::from_secs(90), || {
        let rt = multi_thread(4);
        rt.block_on(async {
            let (client, mut server) = pair().await;
            let client = Arc::new(client);
            let reader = tokio::spawn(async move {
                let mut all = Vec::new();
                let mut chunk = vec![0u8; 1000];
                loop {
                    let n = server.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return all;
                    }
                    all.extend_from_slice(&chunk[..n]);
                }
            });
            let mut tasks = Vec::new();
            for t in 0..TASKS {
                let c = Arc::clone(&client);
                tasks.push(tokio::spawn(async move {
                    let mut seq = 0;
                    while seq < RECORDS {
                        let a = record(t, seq, size_of(t, seq));
                        let b = record(t, seq + 1, size_of(t, seq + 1));
                        let (la, lb) = (a.len(), b.len());
                        // join polls the first before the second: started in order.
                        let (ra, rb) = tokio::join!(c.send(a), c.send(b));
                        assert_eq!(ra.unwrap(), la);
                        assert_eq!(rb.unwrap(), lb);
                        seq += 2;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let client = Arc::into_inner(client).unwrap();
            drop(client);
            let data = reader.await.unwrap();
            check_records(&data, &[RECORDS; TASKS as usize]);
        });
    });
}

/// Both ends split; four tasks on a multi-thread runtime move 8 MiB each way at once
/// (one end echoes with `tokio::io::copy`): every byte arrives, in order.
#[test]
fn split_halves_in_four_tasks_move_data_both_ways() {
    bounded(Duration::from_secs(60), || {
        let rt = multi_thread(3);
        rt.block_on(async {
            let (client, server) = pair().await;
            let (mut sr, mut sw) = server.into_split();
            let echo = tokio::spawn(async move {
                let n = tokio::io::copy(&mut sr, &mut sw).await.unwrap();
                sw.shutdown().await.unwrap();
                n
            });
            let (mut cr, mut cw) = client.into_split();
            let data: Vec<u8> = (0..8usize << 20).map(|i| (i % 253) as u8).collect();
            let to_send = data.clone();
            let writer = tokio::spawn(async move {
                for chunk in to_send.chunks(100_003) {
                    cw.write_all(chunk).await.unwrap();
                }
                drop(cw); // shuts the write side down: the echo ends
            });
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                cr.read_to_end(&mut got).await.unwrap();
                got
            });
            writer.await.unwrap();
            let got = reader.await.unwrap();
            assert_eq!(echo.await.unwrap(), data.len() as u64);
            assert_eq!(got.len(), data.len());
            assert!(got == data, "echoed bytes differ");
        });
    });
}

/// A reader task and a writer task on one stream (through `receive` and `send` on a
/// shared `Arc`), and a third task that closes the socket under them mid-transfer: both
/// finish promptly (no hang, no panic), the reader with a prefix of what was sent.
#[test]
fn a_third_task_closing_the_stream_ends_its_reader_and_writer() {
    bounded(Duration::from_secs(60), || {
        let rt = multi_thread(2);
        for round in 0..20u32 {
            rt.block_on(async {
                let (a, b) = pair().await;
                let (a, b) = (Arc::new(a), Arc::new(b));
                let sent = Arc::new(AtomicUsize::new(0));
                let writer = {
                    let (a, sent) = (Arc::clone(&a), Arc::clone(&sent));
                    tokio::spawn(async move {
                        let mut k = 0u32;
                        loop {
                            let chunk: Vec<u8> =
                                (0..4096u32).map(|i| ((k * 4096 + i) % 251) as u8).collect();
                            match a.send(chunk).await {
                                Ok(n) => {
                                    sent.fetch_add(n, Ordering::SeqCst);
                                }
                                Err(e) => return e,
                            }
                            k += 1;
                        }
                    })
                };
                let reader = {
                    let b = Arc::clone(&b);
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        loop {
                            match b.receive(Vec::with_capacity(3000)).await {
                                Ok((0, _)) => return (got, None),
                                Ok((_, buf)) => got.extend_from_slice(&buf),
                                Err(e) => return (got, Some(e)),
                            }
                        }
                    })
                };
                // Let some bytes flow, then close from a third task: the writer's
                // socket on even rounds, the reader's on odd ones.
                let closer = {
                    let (a, b, sent) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&sent));
                    tokio::spawn(async move {
                        while sent.load(Ordering::SeqCst) < 200_000 {
                            tokio::task::yield_now().await;
                        }
                        if round % 2 == 0 {
                            a.socket().close();
                        } else {
                            b.socket().close();
                        }
                    })
                };
                closer.await.unwrap();
                let werr = writer.await.unwrap();
                if round % 2 == 0 {
                    assert!(matches!(werr, Error::Disposed), "writer: {werr:?}");
                }
                let (got, rerr) = reader.await.unwrap();
                if round % 2 == 1 {
                    assert!(matches!(rerr, Some(Error::Disposed)), "reader: {rerr:?}");
                } else {
                    // The writer's socket closed: end of stream or a reset.
                    assert!(
                        rerr.is_none() || matches!(&rerr, Some(Error::Socket(_))),
                        "reader: {rerr:?}"
                    );
                }
                if let Some(bad) = got
                    .iter()
                    .enumerate()
                    .position(|(i, &x)| x != (i % 251) as u8)
                {
                    panic!("round {round}: byte {bad} of {} is wrong", got.len());
                }
            });
        }
    });
}

/// A multi-thread runtime shut down while its tasks have a receive waiting, a large
/// `send` and a `write_all` under way: no panic, no hang; the engine's workers take
/// polling back, so the dropped send still goes out whole (semantics §8) and then the
/// peer reads end of stream; every stream is closed (the peers see end of stream).
/// A callback user runs throughout and is not disturbed.
#[test]
fn runtime_shutdown_with_pending_operations_loses_nothing_and_releases_the_sockets() {
    bounded(Duration::from_secs(60), || {
        // A callback user, exchanging pings across the shutdown.
        let cl = Socket::listen_tcp(loopback(), 4).unwrap();
        let cx = Socket::connect_tcp(cl.local_addr().unwrap()).unwrap();
        let cy = cl
            .end_accept(&cl.begin_accept(None, None).unwrap())
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pinger = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut rounds = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let rx = cy
                        .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
                        .unwrap();
                    cx.end_send(
                        &cx.begin_send(
                            rounds.to_le_bytes().to_vec(),
                            SocketFlags::NONE,
                            None,
                            None,
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    assert!(
                        rx.wait_timeout(Duration::from_secs(10)),
                        "callback user starved"
                    );
                    let (n, _) = cy.end_receive(&rx).unwrap();
                    assert!(n > 0);
                    rounds += 1;
                }
                rounds
            })
        };

        let listener = std::net::TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = multi_thread(2);
        let big: Vec<u8> = (0..24usize << 20).map(|i| (i % 249) as u8).collect();
        let (started_tx, started_rx) = mpsc::channel::<&'static str>();
        {
            let big = big.clone();
            let tx = started_tx.clone();
            rt.spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                tx.send("send").unwrap();
                // Polled once, then pending (the peer does not read yet).
                let _ = s.send(big).await;
                unreachable!("the peer reads only after the runtime is gone");
            });
        }
        {
            let tx = started_tx.clone();
            rt.spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                tx.send("receive").unwrap();
                let _ = s.receive(Vec::with_capacity(16)).await;
                unreachable!("nothing is ever sent to it");
            });
        }
        {
            let tx = started_tx.clone();
            rt.spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                tx.send("write_all").unwrap();
                let _ = s.write_all(&vec![7u8; 16 << 20]).await;
                unreachable!("the peer reads only after the runtime is gone");
            });
        }
        let mut peers = Vec::new();
        for _ in 0..3 {
            peers.push(listener.accept().unwrap().0);
        }
        for _ in 0..3 {
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // Let the tasks reach their waits: the peers' receive queues fill.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let queued = |p: &std::net::TcpStream| {
                let mut n: libc::c_int = 0;
                // SAFETY: FIONREAD into a valid int.
                unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(p), libc::FIONREAD, &mut n) };
                n
            };
            if peers.iter().filter(|p| queued(p) > 100_000).count() >= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the senders never started"
            );
            thread::yield_now();
        }
        rt.shutdown_timeout(Duration::from_secs(10));

        // Every peer reads to end of stream; the `send` peer gets the whole buffer.
        let readers: Vec<_> = peers
            .into_iter()
            .map(|mut p| {
                thread::spawn(move || {
                    let mut all = Vec::new();
                    p.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let r = p.read_to_end(&mut all);
                    (all, r.map_err(|e| e.kind()))
                })
            })
            .collect();
        let outcomes: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::SeqCst);
        assert!(pinger.join().unwrap() > 0);
        let whole = outcomes
            .iter()
            .filter(|(all, r)| r.is_ok() && *all == big)
            .count();
        assert_eq!(
            whole,
            1,
            "the dropped send did not go out whole: {:?}",
            outcomes
                .iter()
                .map(|(a, r)| (a.len(), *r))
                .collect::<Vec<_>>()
        );
        for (all, r) in &outcomes {
            // End of stream on every one (no read timed out: every socket was closed).
            assert!(
                r.is_ok() || *r == Err(std::io::ErrorKind::ConnectionReset),
                "a stream was never closed: read {} then {r:?}",
                all.len()
            );
        }
    });
}

/// A current-thread runtime whose only thread blocks (synchronously, inside
/// `block_on`) on a callback-style operation: the runtime's driver cannot drain, yet
/// the operation completes (the engine's monitor and workers step in).
#[test]
fn a_runtime_blocked_in_end_receive_still_gets_its_completion() {
    bounded(Duration::from_secs(30), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, b) = pair().await;
            // The driver is attached now (a future of ours waited on this runtime).
            let (a, b) = (a.into_inner(), b.into_inner());
            for i in 0..20u8 {
                let rx = b
                    .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
                    .unwrap();
                let a2 = a.clone();
                let sender = thread::spawn(move || {
                    a2.end_send(
                        &a2.begin_send(vec![i; 3], SocketFlags::NONE, None, None)
                            .unwrap(),
                    )
                    .unwrap();
                });
                // Blocks this runtime's only thread.
                let (n, buf) = b.end_receive(&rx).unwrap();
                assert_eq!((n, buf), (3, vec![i; 3]));
                sender.join().unwrap();
            }
        });
    });
}

/// Many tasks of a multi-thread runtime receive from one socket at once (futures are
/// not ordered among themselves): every byte goes to exactly one of them.
#[test]
fn many_receiving_tasks_take_each_byte_exactly_once() {
    const TASKS: usize = 8;
    const TOTAL: usize = 4 << 20;
    bounded(Duration::from_secs(60), || {
        let rt = multi_thread(4);
        rt.block_on(async {
            let (a, b) = pair().await;
            let b = Arc::new(b);
            let mut tasks = Vec::new();
            for _ in 0..TASKS {
                let b = Arc::clone(&b);
                tasks.push(tokio::spawn(async move {
                    // Counts of each byte value received.
                    let mut counts = vec![0usize; 256];
                    loop {
                        let (n, buf) = b.receive(Vec::with_capacity(777)).await.unwrap();
                        if n == 0 {
                            return counts;
                        }
                        for &x in &buf {
                            counts[x as usize] += 1;
                        }
                    }
                }));
            }
            let data: Vec<u8> = (0..TOTAL)
                .map(|i| ((i * 7 + i / 256) % 256) as u8)
                .collect();
            let mut expected = vec![0usize; 256];
            for &x in &data {
                expected[x as usize] += 1;
            }
            for chunk in data.chunks(65_537) {
                a.send(chunk.to_vec()).await.unwrap();
            }
            a.socket().shutdown(std::net::Shutdown::Write).unwrap();
            let mut total = vec![0usize; 256];
            for t in tasks {
                for (i, n) in t.await.unwrap().into_iter().enumerate() {
                    total[i] += n;
                }
            }
            assert_eq!(total, expected, "bytes lost or doubled");
        });
    });
}

/// One task races two receive futures and an `AsyncRead` read of one stream against
/// each other and a short timer in `select!`, over and over, while another task
/// streams data in: the losers are dropped (cancel safe), so the bytes read, in the
/// order read, are exactly the stream.
#[test]
fn select_between_receives_reads_and_timers_loses_and_doubles_nothing() {
    const TOTAL: usize = 3 << 20;
    bounded(Duration::from_secs(60), || {
        let rt = multi_thread(2);
        rt.block_on(async {
            let (a, b) = pair().await;
            let data: Vec<u8> = (0..TOTAL)
                .map(|i| ((i * 31 + i / 251) % 256) as u8)
                .collect();
            let to_send = data.clone();
            let writer = tokio::spawn(async move {
                for (k, chunk) in to_send.chunks(4093).enumerate() {
                    a.send(chunk.to_vec()).await.unwrap();
                    if k % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                a.socket().shutdown(std::net::Shutdown::Write).unwrap();
                a
            });
            let mut b = b;
            let mut got = Vec::with_capacity(TOTAL);
            let mut scratch = vec![0u8; 1500];
            let mut k = 0u64;
            loop {
                k += 1;
                let sleep = tokio::time::sleep(Duration::from_micros(50 + (k % 7) * 30));
                let (n, bytes): (usize, Vec<u8>) = {
                    let r1 = b.receive(Vec::with_capacity(1000));
                    let r2 = b.receive(Vec::with_capacity(3000));
                    tokio::select! {
                        r = r1 => { let (n, buf) = r.unwrap(); (n, buf) }
                        r = r2 => { let (n, buf) = r.unwrap(); (n, buf) }
                        _ = sleep => continue,
                    }
                };
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&bytes);
                // And now and then through AsyncRead, raced with a timer.
                if k % 3 == 0 {
                    let sleep = tokio::time::sleep(Duration::from_micros(80));
                    tokio::select! {
                        r = b.read(&mut scratch) => {
                            let n = r.unwrap();
                            if n == 0 { break; }
                            got.extend_from_slice(&scratch[..n]);
                        }
                        _ = sleep => {}
                    }
                }
            }
            drop(writer.await.unwrap());
            assert_eq!(got.len(), TOTAL, "bytes lost or doubled");
            if let Some(bad) = got.iter().zip(&data).position(|(x, y)| x != y) {
                panic!("byte {bad} out of order");
            }
        });
    });
}
