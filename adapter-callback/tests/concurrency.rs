//! Concurrency through the callback adapter: order (§2), the fast path (§3) and
//! exactly-once callbacks and ends (§5, §6) under real threads, over real loopback
//! sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};

use asyncresult_callback::prelude::*;
use common::{bounded, secs, tcp_pair, tcp_to_std};

thread_local! {
    /// Set on this thread while it is inside a `begin_*` call.
    static IN_BEGIN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `begin` with [`IN_BEGIN`] set on this thread.
fn in_begin<T>(begin: impl FnOnce() -> T) -> T {
    IN_BEGIN.with(|b| b.set(true));
    let out = begin();
    IN_BEGIN.with(|b| b.set(false));
    out
}

/// A record: thread, sequence number, body length, body derived from all three.
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

/// Checks a stream of records from `threads` threads, `per_thread` each: every one
/// whole, none interleaved, each thread's in its order.
fn check_records(data: &[u8], threads: u32, per_thread: u32) {
    check_records_each(data, &vec![per_thread; threads as usize]);
}

/// [`check_records`] with a count per thread.
fn check_records_each(data: &[u8], per_thread: &[u32]) {
    let threads = per_thread.len() as u32;
    let mut next = vec![0u32; threads as usize];
    let mut at = 0;
    while at < data.len() {
        assert!(at + 12 <= data.len(), "truncated header at {at}");
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        let (t, seq, len) = (word(0), word(4), word(8) as usize);
        assert!(t < threads, "garbage record header at {at}: t={t}");
        assert_eq!(seq, next[t as usize], "thread {t} out of order at {at}");
        assert!(at + 12 + len <= data.len(), "truncated record {t}/{seq}");
        let body = &data[at + 12..at + 12 + len];
        if let Some(bad) = body
            .iter()
            .enumerate()
            .position(|(i, &b)| b != body_byte(t, seq, i))
        {
            panic!("record {t}/{seq} (len {len}) torn at body byte {bad} (stream offset {at})");
        }
        next[t as usize] += 1;
        at += 12 + len;
    }
    assert_eq!(next, per_thread, "records missing");
}

/// Size of record `seq` of thread `t`: tiny to a few MiB.
fn size_of(t: u32, seq: u32) -> usize {
    match (seq + t) % 7 {
        0 => 0,
        1 => 1,
        2 => 100,
        3 => 4_000,
        4 => 70_000 + (seq as usize * 131) % 9000,
        5 => 300_000,
        _ => {
            if seq % 5 == 0 {
                3 << 20
            } else {
                17
            }
        }
    }
}

/// Many threads send records of varied sizes (some fast path, some queued, some
/// partial) on ONE stream socket, with `begin_send` and `begin_send_vectored` mixed,
/// callbacks on every one, to a slow reader: every record arrives whole and
/// un-interleaved, in each thread's start order; every callback runs exactly once, on
/// another thread than the one that began it, never inside `begin_*`.
#[test]
fn many_threads_mixed_sends_to_a_slow_reader_never_interleave() {
    const THREADS: u32 = 8;
    const RECORDS: u32 = 40;
    bounded(secs(90), || {
        let (ours, mut theirs) = tcp_to_std();
        // A slow reader: small reads, so the kernel buffers fill.
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = [0u8; 1500];
            loop {
                let n = theirs.read(&mut chunk).unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&chunk[..n]);
            }
        });
        let violations = Arc::new(Mutex::new(Vec::<String>::new()));
        let ran = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let mut handles = Vec::new();
        for t in 0..THREADS {
            let s = ours.clone();
            let violations = Arc::clone(&violations);
            let ran = Arc::clone(&ran);
            let start = Arc::clone(&start);
            handles.push(thread::spawn(move || {
                start.wait();
                let me = thread::current().id();
                let mut results = Vec::new();
                for seq in 0..RECORDS {
                    let rec = record(t, seq, size_of(t, seq));
                    let len = rec.len();
                    let count = Arc::new(AtomicUsize::new(0));
                    let (v, c, r) = (
                        Arc::clone(&violations),
                        Arc::clone(&count),
                        Arc::clone(&ran),
                    );
                    let cb = callback(move |ar: AsyncResult<usize>| {
                        if thread::current().id() == me {
                            v.lock()
                                .unwrap()
                                .push(format!("{t}/{seq}: callback on the begin thread"));
                        }
                        if IN_BEGIN.with(Cell::get) {
                            v.lock()
                                .unwrap()
                                .push(format!("{t}/{seq}: callback inside begin"));
                        }
                        if !ar.is_completed() {
                            v.lock()
                                .unwrap()
                                .push(format!("{t}/{seq}: callback before completion"));
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                        r.fetch_add(1, Ordering::SeqCst);
                    });
                    let ar = in_begin(|| {
                        if seq % 3 == 1 {
                            // Split in up to 100 pieces (more than one sendmsg takes).
                            let pieces: Vec<Vec<u8>> = rec
                                .chunks(len.div_ceil(100).max(1))
                                .map(<[u8]>::to_vec)
                                .collect();
                            s.begin_send_vectored(pieces, SocketFlags::NONE, cb, None)
                        } else {
                            s.begin_send(rec, SocketFlags::NONE, cb, None)
                        }
                    })
                    .unwrap();
                    results.push((ar, len, count));
                }
                for (ar, len, _) in &results {
                    assert_eq!(s.end_send(ar).unwrap(), *len);
                }
                results
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().unwrap());
        }
        // Every callback, exactly once (they may lag the ends).
        let total = (THREADS * RECORDS) as usize;
        while ran.load(Ordering::SeqCst) < total {
            thread::yield_now();
        }
        for (_, _, count) in &all {
            assert_eq!(count.load(Ordering::SeqCst), 1);
        }
        assert_eq!(ran.load(Ordering::SeqCst), total);
        let v = violations.lock().unwrap();
        assert!(v.is_empty(), "violations: {:?}", &v[..v.len().min(10)]);
        drop(v);
        ours.close();
        let data = reader.join().unwrap();
        check_records(&data, THREADS, RECORDS);
    });
}

/// Receives started from several threads on one socket: each byte goes to exactly one
/// receive, and the receives, taken in the order they were started (a global order
/// taken under a lock around `begin_receive`), hold the stream in order.
#[test]
fn receives_from_many_threads_take_each_byte_once_in_start_order() {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 300;
    bounded(secs(60), || {
        let (ours, theirs) = tcp_pair();
        // (start order, result) pairs, the start order taken under this lock.
        let order = Arc::new(Mutex::new(0usize));
        let start = Arc::new(Barrier::new(THREADS + 1));
        let mut handles = Vec::new();
        for t in 0..THREADS {
            let s = ours.clone();
            let order = Arc::clone(&order);
            let start = Arc::clone(&start);
            handles.push(thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                for i in 0..PER_THREAD {
                    let cap = 1 + (i * 37 + t * 11) % 700;
                    let mut n = order.lock().unwrap();
                    let ar = s
                        .begin_receive(Vec::with_capacity(cap), SocketFlags::NONE, None, None)
                        .unwrap();
                    mine.push((*n, ar));
                    *n += 1;
                    drop(n);
                }
                mine.into_iter()
                    .map(|(n, ar)| (n, s.end_receive(&ar).unwrap().1))
                    .collect::<Vec<_>>()
            }));
        }
        // The stream: a counter, byte after byte, sent from here in odd-sized pieces
        // while the receives are being begun.
        let total: usize = THREADS * PER_THREAD * 800;
        let stream: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        start.wait();
        let sender = {
            let theirs = theirs.clone();
            let stream = stream.clone();
            thread::spawn(move || {
                let mut at = 0;
                let mut k = 0;
                while at < stream.len() {
                    let n = (1 + (k * 977) % 5000).min(stream.len() - at);
                    let ar = theirs
                        .begin_send(stream[at..at + n].to_vec(), SocketFlags::NONE, None, None)
                        .unwrap();
                    theirs.end_send(&ar).unwrap();
                    at += n;
                    k += 1;
                }
            })
        };
        let mut got: Vec<(usize, Vec<u8>)> = Vec::new();
        for h in handles {
            got.extend(h.join().unwrap());
        }
        got.sort_by_key(|(n, _)| *n);
        let mut received: Vec<u8> = Vec::new();
        for (n, buf) in &got {
            assert!(
                !buf.is_empty(),
                "receive {n} got nothing before end of stream"
            );
            received.extend_from_slice(buf);
        }
        assert!(received.len() <= total);
        if let Some(bad) = received.iter().zip(&stream).position(|(a, b)| a != b) {
            panic!("byte {bad} of the stream, in start order of the receives, is wrong");
        }
        // The rest is still there for the next receive.
        sender.join().unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        loop {
            let ar = ours
                .begin_receive(Vec::with_capacity(1 << 16), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, buf) = ours.end_receive(&ar).unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buf);
        }
        assert_eq!(received.len() + rest.len(), total, "bytes lost or doubled");
        assert_eq!(&stream[received.len()..], &rest[..]);
    });
}

/// While a send is queued (the kernel is full), a new `begin_send` from another thread
/// must not take the fast path: it would overtake. Raced many times: a big send that
/// the reader is draining, and small sends begun from another thread meanwhile.
#[test]
fn a_send_begun_while_another_is_queued_never_takes_the_fast_path() {
    const ROUNDS: u32 = 60;
    bounded(secs(90), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.as_socket2().set_send_buffer_size(64 * 1024).unwrap();
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 32 * 1024];
            loop {
                let n = theirs.read(&mut chunk).unwrap();
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&chunk[..n]);
            }
        });
        let mut overtakes = Vec::new();
        let mut sync_smalls = 0;
        let mut queued_bigs = 0;
        for round in 0..ROUNDS {
            // Thread 0: one big send, usually queued behind a full kernel.
            let big = ours
                .begin_send(
                    record(0, round, 1_000_000 + round as usize * 1000),
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap();
            // Thread 1: small sends while the big one may still be queued.
            let s = ours.clone();
            let big2 = big.clone();
            let smalls = thread::spawn(move || {
                let mut out = Vec::new();
                for k in 0..20u32 {
                    let before = big2.is_completed();
                    let ar = s
                        .begin_send(record(1, round * 20 + k, 10), SocketFlags::NONE, None, None)
                        .unwrap();
                    let after = big2.is_completed();
                    out.push((before, ar.completed_synchronously(), after, ar));
                }
                out
            });
            let smalls = smalls.join().unwrap();
            queued_bigs += usize::from(!big.completed_synchronously());
            ours.end_send(&big).unwrap();
            for (k, (_before, sync, after, ar)) in smalls.into_iter().enumerate() {
                ours.end_send(&ar).unwrap();
                if sync {
                    sync_smalls += 1;
                    // Finished on the calling thread while the big send (begun before
                    // it) had not completed after it returned: it overtook.
                    if !after {
                        overtakes.push((round, k));
                    }
                }
            }
        }
        ours.close();
        let data = reader.join().unwrap();
        assert!(
            overtakes.is_empty(),
            "small sends overtook a queued send: {overtakes:?}"
        );
        // Records of "thread" 0 and 1 each in order, whole.
        check_records_each(&data, &[ROUNDS, ROUNDS * 20]);
        // The race was run: big sends did queue, small ones did take the fast path.
        eprintln!(
            "queued big sends: {queued_bigs}/{ROUNDS}, synchronous small sends: {sync_smalls}"
        );
        assert!(
            queued_bigs > ROUNDS as usize / 4,
            "the big sends rarely queued"
        );
    });
}

/// With nothing queued and room in the kernel, `begin_send` completes synchronously,
/// from many threads at once on many sockets; the callbacks still run elsewhere.
#[test]
fn idle_sockets_complete_small_sends_synchronously_from_many_threads() {
    const THREADS: usize = 8;
    bounded(secs(30), || {
        let mut handles = Vec::new();
        for _ in 0..THREADS {
            handles.push(thread::spawn(|| {
                let (ours, mut theirs) = tcp_to_std();
                let me = thread::current().id();
                let (tx, rx) = mpsc::channel::<ThreadId>();
                for i in 0..200u32 {
                    let tx = tx.clone();
                    let ar = ours
                        .begin_send(
                            i.to_le_bytes().to_vec(),
                            SocketFlags::NONE,
                            callback(move |_ar: AsyncResult<usize>| {
                                tx.send(thread::current().id()).unwrap();
                            }),
                            None,
                        )
                        .unwrap();
                    assert!(
                        ar.completed_synchronously(),
                        "send {i} on an idle socket queued"
                    );
                    assert!(ar.is_completed());
                    assert_eq!(ours.end_send(&ar).unwrap(), 4);
                }
                for _ in 0..200 {
                    assert_ne!(rx.recv_timeout(secs(10)).unwrap(), me);
                }
                let mut buf = vec![0u8; 800];
                theirs.read_exact(&mut buf).unwrap();
                for (i, w) in buf.chunks(4).enumerate() {
                    assert_eq!(u32::from_le_bytes(w.try_into().unwrap()), i as u32);
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Thousands of operations with callbacks over many sockets and threads, each
/// callback ending its own operation while another thread races it with its own
/// `end_*` of a clone: exactly one of the two gets the result, the other
/// `AlreadyEnded`; every callback runs exactly once.
#[test]
fn end_from_the_callback_races_end_from_another_thread_exactly_one_wins() {
    const PAIRS: usize = 8;
    const OPS: usize = 400;
    const BATCH: usize = 16;
    bounded(secs(60), || {
        let wins = Arc::new(AtomicUsize::new(0));
        let already = Arc::new(AtomicUsize::new(0));
        let others = Arc::new(Mutex::new(Vec::<String>::new()));
        let callbacks = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for p in 0..PAIRS {
            let (wins, already, others, callbacks) = (
                Arc::clone(&wins),
                Arc::clone(&already),
                Arc::clone(&others),
                Arc::clone(&callbacks),
            );
            handles.push(thread::spawn(move || {
                let (a, b) = tcp_pair();
                let tally = Arc::new(move |r: Result<usize, Error>, who: &str| match r {
                    Ok(_) => {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(Error::AlreadyEnded) => {
                        already.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => others.lock().unwrap().push(format!("{who}: {e:?}")),
                });
                // Enough bytes for every receive below, sent first; with the sends of
                // the even operations on top.
                let feed = a
                    .begin_send(vec![0xEE; 4 * OPS], SocketFlags::NONE, None, None)
                    .unwrap();
                let mut racers = Vec::new();
                for i in 0..OPS {
                    let fired = Arc::new(AtomicBool::new(false));
                    let c2 = Arc::clone(&callbacks);
                    let once = move || {
                        assert!(!fired.swap(true, Ordering::SeqCst), "callback twice");
                        c2.fetch_add(1, Ordering::SeqCst);
                    };
                    if i % 2 == 0 {
                        let (s, t2) = (a.clone(), Arc::clone(&tally));
                        let ar = a
                            .begin_send(
                                vec![p as u8; 1 + i],
                                SocketFlags::NONE,
                                callback(move |ar: AsyncResult<usize>| {
                                    once();
                                    t2(s.end_send(&ar), "callback");
                                }),
                                None,
                            )
                            .unwrap();
                        let (s, t3) = (a.clone(), Arc::clone(&tally));
                        racers.push(thread::spawn(move || t3(s.end_send(&ar), "racer")));
                    } else {
                        let (s, t2) = (b.clone(), Arc::clone(&tally));
                        let ar = b
                            .begin_receive(
                                Vec::with_capacity(1 + i),
                                SocketFlags::NONE,
                                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                                    once();
                                    t2(s.end_receive(&ar).map(|(n, _)| n), "rx callback");
                                }),
                                None,
                            )
                            .unwrap();
                        let (s, t3) = (b.clone(), Arc::clone(&tally));
                        racers.push(thread::spawn(move || {
                            t3(s.end_receive(&ar).map(|(n, _)| n), "rx racer")
                        }));
                    }
                    if racers.len() == BATCH {
                        for r in racers.drain(..) {
                            r.join().unwrap();
                        }
                    }
                }
                for r in racers {
                    r.join().unwrap();
                }
                drop(feed);
                (a, b)
            }));
        }
        let keep: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let expected = PAIRS * OPS;
        // The callbacks' own ends may lag the racers: wait for every tally.
        while wins.load(Ordering::SeqCst)
            + already.load(Ordering::SeqCst)
            + others.lock().unwrap().len()
            < 2 * expected
        {
            thread::yield_now();
        }
        let others = others.lock().unwrap();
        assert!(
            others.is_empty(),
            "unexpected: {:?}",
            &others[..others.len().min(5)]
        );
        assert_eq!(wins.load(Ordering::SeqCst), expected);
        assert_eq!(already.load(Ordering::SeqCst), expected);
        assert_eq!(callbacks.load(Ordering::SeqCst), expected);
        drop(keep);
    });
}

/// Callbacks that block, each until a later callback (of another socket) releases it:
/// a chain of 40 such callbacks, far more than the base pool, all complete, and an
/// unrelated socket's operations complete promptly meanwhile.
#[test]
fn callbacks_blocked_on_later_callbacks_grow_the_pool_and_all_complete() {
    const CHAIN: usize = 40;
    bounded(secs(60), || {
        let pairs: Vec<(Socket, Socket)> = (0..CHAIN).map(|_| tcp_pair()).collect();
        let (done_tx, done_rx) = mpsc::channel::<usize>();
        // Gate i is opened by callback i+1's start; callback i waits on gate i.
        let mut gates_tx = Vec::new();
        let mut gates_rx = Vec::new();
        for _ in 0..CHAIN {
            let (tx, rx) = mpsc::channel::<()>();
            gates_tx.push(Some(tx));
            gates_rx.push(Some(rx));
        }
        for i in 0..CHAIN {
            let opens = if i > 0 { gates_tx[i - 1].take() } else { None };
            let waits = if i + 1 < CHAIN {
                gates_rx[i].take()
            } else {
                None
            };
            let done = done_tx.clone();
            let s = pairs[i].1.clone();
            pairs[i]
                .1
                .begin_receive(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        let _ = s.end_receive(&ar).unwrap();
                        if let Some(tx) = opens {
                            tx.send(()).unwrap();
                        }
                        if let Some(rx) = waits {
                            // Blocks until the next callback has started.
                            rx.recv_timeout(secs(50))
                                .expect("the next callback never ran");
                        }
                        done.send(i).unwrap();
                    }),
                    None,
                )
                .unwrap();
        }
        // Complete them in order 0, 1, 2, …: each callback blocks until the next runs.
        for (a, _) in &pairs {
            let ar = a
                .begin_send(b"x".to_vec(), SocketFlags::NONE, None, None)
                .unwrap();
            a.end_send(&ar).unwrap();
        }
        // Meanwhile an unrelated socket's callbacks still run.
        let (x, y) = tcp_pair();
        for _ in 0..50 {
            let (tx, rx) = mpsc::channel();
            y.begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(ar.is_completed()).unwrap();
                }),
                None,
            )
            .unwrap();
            x.end_send(
                &x.begin_send(b"ping".to_vec(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
            assert!(rx
                .recv_timeout(secs(10))
                .expect("an unrelated callback starved"));
        }
        let mut done = Vec::new();
        for _ in 0..CHAIN {
            done.push(
                done_rx
                    .recv_timeout(secs(50))
                    .expect("a blocked chain never finished"),
            );
        }
        done.sort_unstable();
        assert_eq!(done, (0..CHAIN).collect::<Vec<_>>());
    });
}

/// More blocked callbacks than the pool's cap (128): each blocks in `end_receive` of a
/// pending operation without a callback, on another socket, whose data comes only
/// once all of them have been started. Operations without callbacks still complete
/// (the monitor serves events), so every callback comes free and all complete.
#[test]
fn more_blocked_callbacks_than_the_cap_come_free_when_their_operations_complete() {
    const BLOCKED: usize = 150;
    common::raise_fd_limit(4096);
    bounded(secs(90), || {
        let started = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = mpsc::channel::<usize>();
        let mut triggers = Vec::new();
        let mut releasers = Vec::new();
        let mut keep = Vec::new();
        for i in 0..BLOCKED {
            let (a, b) = tcp_pair();
            let (c, d) = tcp_pair();
            // The pending receive (no callback) that callback i blocks on.
            let pending = d
                .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
                .unwrap();
            let (started, done, d2) = (Arc::clone(&started), done_tx.clone(), d.clone());
            b.begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                    started.fetch_add(1, Ordering::SeqCst);
                    let (n, _) = d2.end_receive(&pending).unwrap();
                    assert_eq!(n, 1);
                    done.send(i).unwrap();
                }),
                None,
            )
            .unwrap();
            triggers.push(a);
            releasers.push(c);
            keep.push((b, d));
        }
        for a in &triggers {
            a.end_send(
                &a.begin_send(b"t".to_vec(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        }
        // Wait until at least as many callbacks as the cap allows have started.
        while started.load(Ordering::SeqCst) < 100 {
            thread::yield_now();
        }
        for c in &releasers {
            c.end_send(
                &c.begin_send(b"r".to_vec(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        }
        let mut done = HashMap::new();
        for _ in 0..BLOCKED {
            let i = done_rx
                .recv_timeout(secs(60))
                .expect("blocked callbacks never came free");
            *done.entry(i).or_insert(0) += 1;
        }
        assert_eq!(done.len(), BLOCKED);
        assert!(done.values().all(|&n| n == 1));
    });
}

/// Panicking callbacks interleaved with ordinary ones across threads: every ordinary
/// one still runs once.
#[test]
fn panicking_callbacks_among_many_do_not_stop_the_others() {
    bounded(secs(30), || {
        let (tx, rx) = mpsc::channel::<u32>();
        let mut handles = Vec::new();
        for t in 0..4u32 {
            let tx = tx.clone();
            handles.push(thread::spawn(move || {
                let (a, b) = tcp_pair();
                for i in 0..200u32 {
                    let tx = tx.clone();
                    let cb = callback(move |_ar: AsyncResult<usize>| {
                        if i % 3 == 0 {
                            panic!("callback {t}/{i} panics on purpose");
                        }
                        tx.send(t * 1000 + i).unwrap();
                    });
                    a.begin_send(vec![1u8; 1 + i as usize], SocketFlags::NONE, cb, None)
                        .unwrap();
                }
                (a, b)
            }));
        }
        let keep: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let expected = 4 * (0..200).filter(|i| i % 3 != 0).count();
        let mut got = std::collections::HashSet::new();
        for _ in 0..expected {
            assert!(got.insert(
                rx.recv_timeout(secs(10))
                    .expect("a later callback never ran")
            ));
        }
        drop(keep);
    });
}

/// `cancel()` from one thread races the data arriving (from another) for many pending
/// receives with callbacks: each callback runs once; a receive whose cancel returned
/// `true` ends `Aborted` and took no byte, any other ends with its bytes; no byte is
/// lost or doubled.
#[test]
fn cancel_racing_completion_is_exactly_once_and_loses_no_byte() {
    const OPS: usize = 2000;
    bounded(secs(60), || {
        let (a, b) = tcp_pair();
        let callbacks = Arc::new(AtomicUsize::new(0));
        let mut ops = Vec::new();
        for i in 0..OPS {
            let c = Arc::clone(&callbacks);
            let fired = Arc::new(AtomicBool::new(false));
            let ar = b
                .begin_receive(
                    Vec::with_capacity(1 + i % 5),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        assert!(ar.is_completed());
                        assert!(!fired.swap(true, Ordering::SeqCst), "callback twice");
                        c.fetch_add(1, Ordering::SeqCst);
                    }),
                    None,
                )
                .unwrap();
            ops.push(ar);
        }
        let total = OPS * 2;
        let sender = {
            let a = a.clone();
            thread::spawn(move || {
                for k in 0..total {
                    let ar = a
                        .begin_send(vec![(k % 256) as u8], SocketFlags::NONE, None, None)
                        .unwrap();
                    a.end_send(&ar).unwrap();
                }
            })
        };
        // Cancel every third one while the bytes arrive.
        let cancelled: Vec<bool> = ops
            .iter()
            .enumerate()
            .map(|(i, ar)| i % 3 == 0 && ar.cancel())
            .collect();
        sender.join().unwrap();
        // The receives may take up to 5 bytes each: end of stream ends those left.
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let mut eof = false;
        for (ar, was_cancelled) in ops.iter().zip(&cancelled) {
            match b.end_receive(ar) {
                Ok((n, buf)) => {
                    assert!(
                        !was_cancelled,
                        "cancel said true but the receive got {n} bytes"
                    );
                    assert!(n > 0 || got.len() == total, "end of stream before the end");
                    assert!(!(eof && n > 0), "data after end of stream");
                    eof |= n == 0;
                    got.extend_from_slice(&buf);
                }
                Err(Error::Aborted) => assert!(was_cancelled, "Aborted without a cancel"),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        loop {
            let ar = b
                .begin_receive(Vec::with_capacity(4096), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, buf) = b.end_receive(&ar).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf);
        }
        assert_eq!(got.len(), total, "bytes lost or doubled");
        for (k, &x) in got.iter().enumerate() {
            assert_eq!(x, (k % 256) as u8, "byte {k} out of order");
        }
        while callbacks.load(Ordering::SeqCst) < OPS {
            thread::yield_now();
        }
        assert_eq!(callbacks.load(Ordering::SeqCst), OPS);
    });
}

/// `close()` from one thread while others keep beginning sends and receives with
/// callbacks: every `begin_*` either fails with `Disposed` at once or its callback
/// runs exactly once and its end gives a result or `Disposed`; nothing hangs.
#[test]
fn close_racing_begins_from_many_threads_completes_everything_once() {
    const THREADS: usize = 6;
    bounded(secs(60), || {
        for round in 0..30 {
            let (a, b) = tcp_pair();
            let begun = Arc::new(AtomicUsize::new(0));
            let called = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(THREADS + 1));
            let mut handles = Vec::new();
            for t in 0..THREADS {
                let (s, begun, called, start) = (
                    if t % 2 == 0 { a.clone() } else { b.clone() },
                    Arc::clone(&begun),
                    Arc::clone(&called),
                    Arc::clone(&start),
                );
                handles.push(thread::spawn(move || {
                    start.wait();
                    let mut mine = Vec::new();
                    for i in 0..400usize {
                        let c = Arc::clone(&called);
                        let r = if (i + t) % 2 == 0 {
                            s.begin_send(
                                vec![1u8; 1 + (i * 997) % 20_000],
                                SocketFlags::NONE,
                                callback(move |_ar: AsyncResult<usize>| {
                                    c.fetch_add(1, Ordering::SeqCst);
                                }),
                                None,
                            )
                            .map(either_send)
                        } else {
                            s.begin_receive(
                                Vec::with_capacity(100),
                                SocketFlags::NONE,
                                callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                                    c.fetch_add(1, Ordering::SeqCst);
                                }),
                                None,
                            )
                            .map(either_receive)
                        };
                        match r {
                            Ok(op) => {
                                begun.fetch_add(1, Ordering::SeqCst);
                                mine.push(op);
                            }
                            Err(Error::Disposed) => break,
                            Err(e) => panic!("begin: {e:?}"),
                        }
                    }
                    for op in mine {
                        match op {
                            Either::Send(ar) => match s.end_send(&ar) {
                                Ok(_) | Err(Error::Disposed) | Err(Error::Socket(_)) => {}
                                Err(e) => panic!("end_send: {e:?}"),
                            },
                            Either::Receive(ar) => match s.end_receive(&ar) {
                                Ok(_) | Err(Error::Disposed) | Err(Error::Socket(_)) => {}
                                Err(e) => panic!("end_receive: {e:?}"),
                            },
                        }
                    }
                }));
            }
            start.wait();
            // Close one end, or both, while the others begin.
            for _ in 0..(round * 50) {
                thread::yield_now();
            }
            a.close();
            if round % 2 == 0 {
                b.close();
            }
            if round % 2 == 1 {
                // b stays open: its pending receives end by the FIN/RST, its sends
                // by the peer's reset or, if they fit, complete.
            }
            for h in handles {
                h.join().unwrap();
            }
            b.close();
            let begun = begun.load(Ordering::SeqCst);
            let deadline = std::time::Instant::now() + secs(20);
            while called.load(Ordering::SeqCst) < begun {
                assert!(std::time::Instant::now() < deadline, "callbacks missing");
                thread::yield_now();
            }
            assert_eq!(called.load(Ordering::SeqCst), begun, "a callback ran twice");
        }
    });
}

enum Either {
    Send(AsyncResult<usize>),
    Receive(AsyncResult<(usize, Vec<u8>)>),
}

fn either_send(ar: AsyncResult<usize>) -> Either {
    Either::Send(ar)
}

fn either_receive(ar: AsyncResult<(usize, Vec<u8>)>) -> Either {
    Either::Receive(ar)
}

/// Many threads `wait()` on one result while its callback ends it: all return, the
/// callback's end gets the result.
#[test]
fn many_waiters_and_the_callbacks_end_on_one_result() {
    bounded(secs(30), || {
        for _ in 0..50 {
            let (a, b) = tcp_pair();
            let (tx, rx) = mpsc::channel();
            let s = b.clone();
            let ar = b
                .begin_receive(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        tx.send(s.end_receive(&ar).map(|(n, _)| n)).unwrap();
                    }),
                    None,
                )
                .unwrap();
            let waiters: Vec<_> = (0..8)
                .map(|_| {
                    let ar = ar.clone();
                    thread::spawn(move || {
                        ar.wait();
                        assert!(ar.is_completed());
                    })
                })
                .collect();
            a.end_send(
                &a.begin_send(b"abc".to_vec(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
            for w in waiters {
                w.join().unwrap();
            }
            assert_eq!(rx.recv_timeout(secs(10)).unwrap().unwrap(), 3);
            assert!(matches!(b.end_receive(&ar), Err(Error::AlreadyEnded)));
        }
    });
}

/// A callback that begins another operation (which completes synchronously, so its
/// callback is this one's continuation, queued on the same thread) and then blocks
/// until that callback has run: the engine moves the continuation to another thread.
/// Nested 30 deep.
#[test]
fn a_callback_waiting_for_its_own_continuation_does_not_deadlock() {
    const DEPTH: usize = 30;
    fn step(s: Socket, level: usize, done: mpsc::Sender<usize>) {
        let (tx, rx) = mpsc::channel::<()>();
        let s2 = s.clone();
        let done2 = done.clone();
        let ar = s
            .begin_send(
                vec![level as u8],
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    s2.end_send(&ar).unwrap();
                    tx.send(()).unwrap();
                    if level + 1 < DEPTH {
                        step(s2, level + 1, done2);
                    }
                }),
                None,
            )
            .unwrap();
        let _ = ar;
        // Wait for the continuation (only meaningful on a callback thread; the first
        // step runs on the test's thread).
        rx.recv_timeout(secs(20))
            .expect("the continuation never ran");
        done.send(level).unwrap();
    }
    bounded(secs(60), || {
        let (a, mut b) = tcp_to_std();
        let (done_tx, done_rx) = mpsc::channel();
        step(a.clone(), 0, done_tx);
        let mut levels = Vec::new();
        for _ in 0..DEPTH {
            levels.push(
                done_rx
                    .recv_timeout(secs(30))
                    .expect("a level never finished"),
            );
        }
        levels.sort_unstable();
        assert_eq!(levels, (0..DEPTH).collect::<Vec<_>>());
        let mut got = vec![0u8; DEPTH];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, (0..DEPTH as u8).collect::<Vec<_>>());
    });
}

/// `begin_receive_from` from several threads on one UDP socket, the start order taken
/// under a lock: datagrams are atomic, so the i-th receive started gets the i-th
/// datagram, whole; meanwhile several threads `begin_send_to` to it, and each of their
/// datagrams arrives exactly once.
#[test]
fn udp_receives_from_many_threads_get_datagrams_in_start_order() {
    const THREADS: usize = 4;
    const PER: usize = 200;
    bounded(secs(60), || {
        let rx_sock = Socket::bind_udp(common::localhost()).unwrap();
        rx_sock.as_socket2().set_recv_buffer_size(4 << 20).unwrap();
        let to = rx_sock.local_addr().unwrap();
        let order = Arc::new(Mutex::new(0usize));
        let start = Arc::new(Barrier::new(THREADS));
        // Receives completed so far: the sender keeps at most a window of datagrams
        // ahead of them, as a full receive buffer drops datagrams (with the stock
        // `rmem_max` and a loaded machine, a burst of 800 lost a few dozen).
        let arrived = Arc::new(AtomicUsize::new(0));
        let receivers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, order, start) = (rx_sock.clone(), Arc::clone(&order), Arc::clone(&start));
                let arrived = Arc::clone(&arrived);
                thread::spawn(move || {
                    start.wait();
                    let mut mine = Vec::new();
                    for _ in 0..PER {
                        let mut n = order.lock().unwrap();
                        let arrived = Arc::clone(&arrived);
                        let ar = s
                            .begin_receive_from(
                                Vec::with_capacity(2048),
                                SocketFlags::NONE,
                                Some(Box::new(move |_| {
                                    arrived.fetch_add(1, Ordering::SeqCst);
                                })),
                                None,
                            )
                            .unwrap();
                        mine.push((*n, ar));
                        *n += 1;
                    }
                    mine.into_iter()
                        .map(|(n, ar)| (n, s.end_receive_from(&ar).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // All receives are begun before any datagram is sent (one sender, in order).
        while *order.lock().unwrap() < THREADS * PER {
            thread::yield_now();
        }
        let tx_sock = Socket::bind_udp(common::localhost()).unwrap();
        for i in 0..THREADS * PER {
            while i - arrived.load(Ordering::SeqCst) >= 64 {
                thread::yield_now();
            }
            let mut d = (i as u32).to_le_bytes().to_vec();
            d.resize(4 + (i * 13) % 1400, (i % 256) as u8);
            let ar = tx_sock
                .begin_send_to(d, SocketFlags::NONE, to, None, None)
                .unwrap();
            tx_sock.end_send_to(&ar).unwrap();
        }
        let mut all = Vec::new();
        for r in receivers {
            all.extend(r.join().unwrap());
        }
        all.sort_by_key(|(n, _)| *n);
        for (n, (len, buf, from)) in all {
            assert_eq!(from, tx_sock.local_addr().unwrap());
            let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(i, n, "receive {n} got datagram {i}");
            assert_eq!(len, 4 + (i * 13) % 1400);
            assert!(buf[4..].iter().all(|&x| x == (i % 256) as u8));
        }
    });
}
