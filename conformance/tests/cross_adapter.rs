//! Concurrency across adapters in one process: the one engine serving callback
//! sockets, tokio runtimes and a smol executor at the same time; sockets made in one
//! world and used from another at once; runtimes created and shut down (with pending
//! operations) while the others keep going.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_conformance::{bounded, loopback, tokio_runtime};
use asyncresult_core::{AsyncResult, Socket, SocketFlags};

/// A connected pair of core sockets.
fn core_pair() -> (Socket, Socket) {
    let listener = Socket::listen_tcp(loopback(), 16).unwrap();
    let client = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
    let server = listener
        .end_accept(&listener.begin_accept(None, None).unwrap())
        .unwrap();
    (client, server)
}

/// A callback ping-pong that runs until `stop`: each round trip is a send and a
/// receive with callbacks; returns the rounds and the slowest round trip.
fn callback_pingpong(stop: Arc<AtomicBool>) -> thread::JoinHandle<(u32, Duration)> {
    thread::spawn(move || {
        let (a, b) = core_pair();
        let mut rounds = 0u32;
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            let t0 = Instant::now();
            let (tx, rx) = mpsc::channel();
            let b2 = b.clone();
            b.begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(b2.end_receive(&ar)).unwrap();
                })),
                None,
            )
            .unwrap();
            a.begin_send(rounds.to_le_bytes().to_vec(), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, buf) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a callback round trip never completed")
                .unwrap();
            assert_eq!((n, buf), (4, rounds.to_le_bytes().to_vec()));
            worst = worst.max(t0.elapsed());
            rounds += 1;
        }
        (rounds, worst)
    })
}

/// A smol ping-pong until `stop`, on `smol::block_on` in a thread of its own.
fn smol_pingpong(stop: Arc<AtomicBool>) -> thread::JoinHandle<(u32, Duration)> {
    thread::spawn(move || {
        smol::block_on(async move {
            let l = asyncresult_smol::TcpListener::bind(loopback())
                .await
                .unwrap();
            let a = asyncresult_smol::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap();
            let (b, _) = l.accept().await.unwrap();
            let mut rounds = 0u32;
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                a.send(rounds.to_le_bytes().to_vec()).await.unwrap();
                let mut got = Vec::new();
                while got.len() < 4 {
                    let (n, buf) = b.receive(Vec::with_capacity(4 - got.len())).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf);
                }
                assert_eq!(got, rounds.to_le_bytes());
                worst = worst.max(t0.elapsed());
                rounds += 1;
            }
            (rounds, worst)
        })
    })
}

/// tokio runtimes (both flavours) created, used and shut down over and over, each
/// shut down with a receive pending and a large send under way, while a callback
/// ping-pong and a smol ping-pong run throughout: the others never stall (no round
/// trip takes seconds), the dropped send still goes out whole, and every socket of a
/// dropped runtime is closed.
#[test]
fn tokio_runtimes_come_and_go_while_callbacks_and_smol_keep_going() {
    bounded(Duration::from_secs(120), "hung", || {
        let stop = Arc::new(AtomicBool::new(false));
        let cb = callback_pingpong(Arc::clone(&stop));
        let sm = smol_pingpong(Arc::clone(&stop));
        for round in 0..16u32 {
            let multi = round % 2 == 0;
            let listener = std::net::TcpListener::bind(loopback()).unwrap();
            let addr = listener.local_addr().unwrap();
            let big: Vec<u8> = (0..(2usize << 20)).map(|i| (i % 239) as u8).collect();
            let (tx, rx) = mpsc::channel::<()>();
            let payload = big.clone();
            let task = async move {
                let s = asyncresult_tokio::TcpStream::connect(addr).await.unwrap();
                // A round trip first, so this runtime's driver is attached.
                let (x, y) = {
                    let l = asyncresult_tokio::TcpListener::bind(loopback())
                        .await
                        .unwrap();
                    let x = asyncresult_tokio::TcpStream::connect(l.local_addr().unwrap())
                        .await
                        .unwrap();
                    let (y, _) = l.accept().await.unwrap();
                    (x, y)
                };
                x.send(b"hi".to_vec()).await.unwrap();
                let (n, _) = y.receive(Vec::with_capacity(8)).await.unwrap();
                assert!(n > 0);
                tx.send(()).unwrap();
                let pending_receive = x.receive(Vec::with_capacity(8));
                let big_send = s.send(payload);
                let _ = tokio::join!(pending_receive, big_send);
                unreachable!("neither completes while the runtime lives");
            };
            // Stops the runtime: a multi-thread one from here, a current-thread one on
            // the thread that drives it (it runs only while `block_on` does).
            let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
            let runner = thread::spawn(move || {
                let rt = tokio_runtime(multi).unwrap();
                rt.spawn(task);
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
                if multi {
                    rt.shutdown_timeout(Duration::from_secs(10));
                } else {
                    drop(rt);
                }
            });
            let (mut peer, _) = listener.accept().unwrap();
            rx.recv_timeout(Duration::from_secs(20)).unwrap();
            stop_tx.send(()).unwrap();
            runner.join().unwrap();
            // The send goes out whole once the runtime is gone, then end of stream.
            peer.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut all = Vec::new();
            peer.read_to_end(&mut all).unwrap();
            assert_eq!(
                all.len(),
                big.len(),
                "round {round}: the dropped send was cut"
            );
            assert!(all == big);
        }
        stop.store(true, Ordering::SeqCst);
        let (cr, cw) = cb.join().unwrap();
        let (sr, sw) = sm.join().unwrap();
        assert!(cr > 0 && sr > 0);
        assert!(
            cw < Duration::from_secs(3),
            "a callback round trip took {cw:?}"
        );
        assert!(sw < Duration::from_secs(3), "a smol round trip took {sw:?}");
    });
}

/// One connection used from three worlds at once: tokio (multi-thread) sends records
/// on one end while the callback adapter sends on the same socket from a thread; smol
/// reads the other end while that end's socket answers with callbacks. Both
/// directions: every record whole, each sender's in order.
#[test]
fn one_socket_used_from_tokio_smol_and_callbacks_at_once() {
    const RECORDS: u32 = 300;
    bounded(Duration::from_secs(90), "hung", || {
        let (a, b) = core_pair();
        let rt = tokio_runtime(true).unwrap();
        // a → b: tokio (sender 0) and callbacks (sender 1) on `a`.
        let tokio_side = {
            let a = a.clone();
            rt.spawn(async move {
                let s = asyncresult_tokio::TcpStream::from(a);
                for seq in 0..RECORDS {
                    let rec = rec(0, seq, (seq as usize * 4099) % 150_000);
                    let len = rec.len();
                    assert_eq!(s.send(rec).await.unwrap(), len);
                }
                // Give the socket back without closing it.
                std::mem::forget(s.into_inner());
            })
        };
        let callback_side = {
            let a = a.clone();
            thread::spawn(move || {
                let done = Arc::new(AtomicUsize::new(0));
                let mut ars = Vec::new();
                for seq in 0..RECORDS {
                    let d = Arc::clone(&done);
                    let a2 = a.clone();
                    ars.push(
                        a.begin_send(
                            rec(1, seq, (seq as usize * 7919) % 90_000),
                            SocketFlags::NONE,
                            Some(Box::new(move |ar: AsyncResult<usize>| {
                                a2.end_send(&ar).unwrap();
                                d.fetch_add(1, Ordering::SeqCst);
                            })),
                            None,
                        )
                        .unwrap(),
                    );
                }
                for ar in &ars {
                    ar.wait();
                }
                while done.load(Ordering::SeqCst) < RECORDS as usize {
                    thread::yield_now();
                }
            })
        };
        // b → a: callbacks on `b` send records (sender 2) while smol reads b.
        let b_sender = {
            let b = b.clone();
            thread::spawn(move || {
                for seq in 0..RECORDS {
                    let ar = b
                        .begin_send(
                            rec(2, seq, (seq as usize * 31) % 20_000),
                            SocketFlags::NONE,
                            None,
                            None,
                        )
                        .unwrap();
                    b.end_send(&ar).unwrap();
                }
            })
        };
        let smol_reader = {
            let b = b.clone();
            thread::spawn(move || {
                smol::block_on(async move {
                    use futures::io::AsyncReadExt;
                    let s = asyncresult_smol::TcpStream::from(b);
                    let mut all = Vec::new();
                    (&s).read_to_end(&mut all).await.unwrap();
                    std::mem::forget(s.into_inner());
                    all
                })
            })
        };
        let a_reader = {
            let a = a.clone();
            thread::spawn(move || {
                let mut all = Vec::new();
                loop {
                    let ar = a
                        .begin_receive(Vec::with_capacity(65536), SocketFlags::NONE, None, None)
                        .unwrap();
                    let (n, buf) = a.end_receive(&ar).unwrap();
                    if n == 0 {
                        return all;
                    }
                    all.extend_from_slice(&buf);
                }
            })
        };
        rt.block_on(tokio_side).unwrap();
        callback_side.join().unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        b_sender.join().unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let to_b = smol_reader.join().unwrap();
        let to_a = a_reader.join().unwrap();
        check(&to_b, &[(0, RECORDS), (1, RECORDS)]);
        check(&to_a, &[(2, RECORDS)]);
        drop(rt);
    });
}

fn rec(t: u32, seq: u32, body_len: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(12 + body_len);
    r.extend_from_slice(&t.to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(&(body_len as u32).to_le_bytes());
    r.extend((0..body_len).map(|i| (i as u8) ^ (t as u8) ^ (seq as u8)));
    r
}

fn check(data: &[u8], senders: &[(u32, u32)]) {
    let mut next = std::collections::HashMap::new();
    let mut at = 0;
    while at < data.len() {
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        let (t, seq, len) = (word(0), word(4), word(8) as usize);
        let n = next.entry(t).or_insert(0u32);
        assert!(
            senders.iter().any(|(s, _)| *s == t),
            "garbage header at {at}"
        );
        assert_eq!(seq, *n, "sender {t} out of order");
        let body = &data[at + 12..at + 12 + len];
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, &b)| b == (i as u8) ^ (t as u8) ^ (seq as u8)),
            "record {t}/{seq} torn"
        );
        *n += 1;
        at += 12 + len;
    }
    for (t, count) in senders {
        assert_eq!(
            next.get(t).copied().unwrap_or(0),
            *count,
            "sender {t} lost records"
        );
    }
}
