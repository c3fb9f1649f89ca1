//! Concurrency through the smol adapter on a multi-threaded `async_executor`:
//! `&TcpStream` I/O from several tasks at once, whole sends from many tasks, and order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::pair;

/// Runs `make()`'s future on an `async_executor` with `threads` threads, under a hard
/// time limit (a hang fails the test even if it blocks the executor's threads).
fn on_executor<T, F>(
    threads: usize,
    limit: Duration,
    make: impl FnOnce() -> F + Send + 'static,
) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let body = thread::spawn(move || {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = smol::channel::unbounded::<()>();
        let runners: Vec<_> = (0..threads)
            .map(|_| {
                let ex = Arc::clone(&ex);
                let stopped = stopped.clone();
                thread::spawn(move || smol::block_on(ex.run(stopped.recv())))
            })
            .collect();
        let out = smol::block_on(ex.spawn(make()));
        drop(stop);
        for r in runners {
            let _ = r.join();
        }
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {limit:?}"),
        _ => body.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
    }
}

fn record(t: u32, seq: u32, body_len: usize) -> Vec<u8> {
    let mut rec = Vec::with_capacity(12 + body_len);
    rec.extend_from_slice(&t.to_le_bytes());
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(&(body_len as u32).to_le_bytes());
    rec.extend((0..body_len).map(|i| (i as u8) ^ (t as u8) ^ (seq as u8).wrapping_mul(3)));
    rec
}

fn check_records(data: &[u8], per_task: &[u32]) {
    let mut next = vec![0u32; per_task.len()];
    let mut at = 0;
    while at < data.len() {
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        let (t, seq, len) = (word(0), word(4), word(8) as usize);
        assert!((t as usize) < per_task.len(), "garbage header at {at}");
        assert_eq!(seq, next[t as usize], "task {t} out of order");
        let body = &data[at + 12..at + 12 + len];
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, &b)| b == (i as u8) ^ (t as u8) ^ (seq as u8).wrapping_mul(3)),
            "record {t}/{seq} torn"
        );
        next[t as usize] += 1;
        at += 12 + len;
    }
    assert_eq!(next, per_task);
}

/// Many tasks on a 4-thread executor send records on one stream (pairs started
/// together with `join`); a slow reader through `AsyncRead` on `&TcpStream`: whole,
/// never interleaved, each task's in start order.
#[test]
fn many_tasks_send_whole_records_on_one_stream() {
    const TASKS: u32 = 10;
    const RECORDS: u32 = 20;
    on_executor(4, Duration::from_secs(90), || async {
        let (client, server) = pair().await;
        let client = Arc::new(client);
        let reader = smol::spawn(async move {
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 1000];
            loop {
                let n = (&server).read(&mut chunk).await.unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&chunk[..n]);
            }
        });
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let c = Arc::clone(&client);
            tasks.push(smol::spawn(async move {
                let mut seq = 0;
                while seq < RECORDS {
                    let size = |s: u32| match (s + t) % 5 {
                        0 => 0,
                        1 => 3,
                        2 => 60_000,
                        3 => {
                            if s % 4 == 0 {
                                1 << 20
                            } else {
                                9
                            }
                        }
                        _ => 300_000,
                    };
                    let a = record(t, seq, size(seq));
                    let b = record(t, seq + 1, size(seq + 1));
                    let (la, lb) = (a.len(), b.len());
                    let (ra, rb) = futures::join!(c.send(a), c.send(b));
                    assert_eq!((ra.unwrap(), rb.unwrap()), (la, lb));
                    seq += 2;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        drop(Arc::into_inner(client).unwrap());
        let data = reader.await;
        check_records(&data, &[RECORDS; TASKS as usize]);
    });
}

/// `&TcpStream` read by one task and written by another at once, on both ends (an
/// echo through `futures::io::copy` over `&stream`): every byte comes back in order.
#[test]
fn ref_stream_read_and_written_by_two_tasks_at_once() {
    on_executor(3, Duration::from_secs(60), || async {
        let (client, server) = pair().await;
        let server = Arc::new(server);
        let echo = {
            let s = Arc::clone(&server);
            smol::spawn(async move {
                let n = futures::io::copy(&*s, &mut &*s).await.unwrap();
                (&*s).close().await.unwrap();
                n
            })
        };
        let client = Arc::new(client);
        let data: Vec<u8> = (0..6usize << 20).map(|i| (i % 241) as u8).collect();
        let writer = {
            let c = Arc::clone(&client);
            let data = data.clone();
            smol::spawn(async move {
                for chunk in data.chunks(77_777) {
                    (&*c).write_all(chunk).await.unwrap();
                }
                (&*c).close().await.unwrap();
            })
        };
        let reader = {
            let c = Arc::clone(&client);
            smol::spawn(async move {
                let mut got = Vec::new();
                (&*c).read_to_end(&mut got).await.unwrap();
                got
            })
        };
        writer.await;
        let got = reader.await;
        assert_eq!(echo.await, data.len() as u64);
        assert_eq!(got.len(), data.len());
        assert!(got == data, "echoed bytes differ");
    });
}

/// Two tasks read one `&TcpStream` at once while the data trickles in: neither is left
/// waiting (the half's one wait wakes the last poller, which passes the turn on), and
/// every byte goes to exactly one of them.
#[test]
fn two_readers_on_one_ref_stream_share_every_byte_once() {
    const TOTAL: usize = 300_000;
    on_executor(3, Duration::from_secs(60), || async {
        let (client, server) = pair().await;
        let server = Arc::new(server);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&server);
                smol::spawn(async move {
                    let mut counts = vec![0usize; 256];
                    let mut chunk = vec![0u8; 333];
                    loop {
                        let n = (&*s).read(&mut chunk).await.unwrap();
                        if n == 0 {
                            return counts;
                        }
                        for &x in &chunk[..n] {
                            counts[x as usize] += 1;
                        }
                    }
                })
            })
            .collect();
        let data: Vec<u8> = (0..TOTAL)
            .map(|i| ((i * 13 + i / 256) % 256) as u8)
            .collect();
        let mut expected = vec![0usize; 256];
        for &x in &data {
            expected[x as usize] += 1;
        }
        // Trickle: small sends, each awaited, with a yield in between.
        for chunk in data.chunks(1000) {
            client.send(chunk.to_vec()).await.unwrap();
            smol::future::yield_now().await;
        }
        client.socket().shutdown(std::net::Shutdown::Write).unwrap();
        let mut total = vec![0usize; 256];
        for r in readers {
            for (i, n) in r.await.into_iter().enumerate() {
                total[i] += n;
            }
        }
        assert_eq!(total, expected, "bytes lost or doubled");
    });
}

/// Two tasks `write_all` through one `&TcpStream` at once (their chunks may
/// interleave, as with any stream's `AsyncWrite`), while a third flushes: no hang, and
/// the peer gets every byte exactly once.
#[test]
fn two_writers_on_one_ref_stream_lose_no_byte() {
    const EACH: usize = 3 << 20;
    on_executor(3, Duration::from_secs(60), || async {
        let (client, server) = pair().await;
        let client = Arc::new(client);
        let reader = smol::spawn(async move {
            let mut counts = [0usize; 2];
            let mut chunk = vec![0u8; 4096];
            loop {
                let n = (&server).read(&mut chunk).await.unwrap();
                if n == 0 {
                    return counts;
                }
                for &x in &chunk[..n] {
                    counts[usize::from(x == 0xBB)] += 1;
                }
            }
        });
        let writers: Vec<_> = [0xAAu8, 0xBB]
            .into_iter()
            .map(|byte| {
                let c = Arc::clone(&client);
                smol::spawn(async move {
                    let data = vec![byte; EACH];
                    for chunk in data.chunks(50_001) {
                        (&*c).write_all(chunk).await.unwrap();
                    }
                    (&*c).flush().await.unwrap();
                })
            })
            .collect();
        for w in writers {
            w.await;
        }
        (&*client).close().await.unwrap();
        assert_eq!(reader.await, [EACH, EACH]);
    });
}
