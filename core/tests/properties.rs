//! Property tests: random sequences of API calls — begin, end (right and wrong
//! socket, right and wrong kind), cancel, close, dropping handles — from one or
//! several threads, checked against what each call is allowed to return and against
//! the bytes the peer actually received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use asyncresult_core::{AsyncResult, Error, Socket, SocketFlags};
use common::*;
use proptest::prelude::*;

/// One call a thread makes.
#[derive(Debug, Clone)]
enum Action {
    /// Begin a send of `len` bytes (large ones wait for the peer).
    Send { len: usize, with_callback: bool },
    /// End the result at this index (modulo how many there are).
    End(usize),
    /// End it on another socket: must be `ForeignResult`, and must not consume it.
    EndForeign(usize),
    /// End it with the wrong kind (`end_send_to`): `ForeignResult`, not consumed.
    EndWrongKind(usize),
    /// Cancel it.
    Cancel(usize),
    /// Drop one clone of it (the operation must not care).
    DropClone(usize),
    /// Close the socket (every thread's later begins fail with `Disposed`).
    Close,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (prop_oneof![1usize..64, 1usize..4096, (1usize << 20)..(3usize << 20)], any::<bool>())
            .prop_map(|(len, with_callback)| Action::Send { len, with_callback }),
        3 => any::<usize>().prop_map(Action::End),
        1 => any::<usize>().prop_map(Action::EndForeign),
        1 => any::<usize>().prop_map(Action::EndWrongKind),
        2 => any::<usize>().prop_map(Action::Cancel),
        1 => any::<usize>().prop_map(Action::DropClone),
        1 => Just(Action::Close),
    ]
}

/// What one thread saw of one send.
#[derive(Debug)]
struct Record {
    id: u32,
    len: usize,
    ar: AsyncResult<usize>,
    /// The first outcome an `end_send` returned.
    outcome: Option<Result<usize, String>>,
    cancelled: bool,
    with_callback: bool,
    callbacks: Arc<AtomicUsize>,
}

/// The payload of send `id`: its id, its length, then a pattern.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len.max(8));
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&(len as u32).to_le_bytes());
    p.extend((8..len).map(|i| (i as u8) ^ (id as u8)));
    p.truncate(len.max(8));
    p
}

/// The error's variant name, if the outcome is an error.
fn error_name(outcome: &Result<usize, String>) -> Option<&str> {
    outcome.as_ref().err().map(String::as_str)
}

fn describe(r: &Result<usize, Error>) -> Result<usize, String> {
    r.as_ref().map(|n| *n).map_err(|e| format!("{e:?}"))
}

/// Runs one thread's actions on `socket`; `foreign` is another socket.
fn run_thread(
    socket: &Socket,
    foreign: &Socket,
    actions: &[Action],
    next_id: &AtomicUsize,
    closed: &Mutex<bool>,
) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut clones: Vec<AsyncResult<usize>> = Vec::new();
    for action in actions {
        match action {
            Action::Send { len, with_callback } => {
                let len = (*len).max(8);
                let id = next_id.fetch_add(1, Ordering::SeqCst) as u32;
                let callbacks = Arc::new(AtomicUsize::new(0));
                let counter = callbacks.clone();
                let callback: Option<asyncresult_core::AsyncCallback<usize>> = if *with_callback {
                    Some(Box::new(move |_| {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }))
                } else {
                    None
                };
                let was_closed = *closed.lock().unwrap();
                match socket.begin_send(payload(id, len), SocketFlags::NONE, callback, None) {
                    Ok(ar) => {
                        assert!(!was_closed, "begin after close must fail");
                        clones.push(ar.clone());
                        records.push(Record {
                            id,
                            len,
                            ar,
                            outcome: None,
                            cancelled: false,
                            with_callback: *with_callback,
                            callbacks,
                        });
                    }
                    Err(Error::Disposed) => {}
                    Err(e) => panic!("begin_send failed with {e:?}; only Disposed is allowed"),
                }
            }
            Action::End(i) if !records.is_empty() => {
                let at = i % records.len();
                let r = &mut records[at];
                let got = socket.end_send(&r.ar);
                match (&r.outcome, &got) {
                    (None, _) => r.outcome = Some(describe(&got)),
                    (Some(_), Err(Error::AlreadyEnded)) => {}
                    (Some(_), other) => panic!("second end returned {other:?}"),
                }
                assert!(!matches!(got, Err(Error::ForeignResult)));
            }
            Action::EndForeign(i) if !records.is_empty() => {
                let r = &records[i % records.len()];
                assert!(matches!(foreign.end_send(&r.ar), Err(Error::ForeignResult)));
            }
            Action::EndWrongKind(i) if !records.is_empty() => {
                let r = &records[i % records.len()];
                assert!(matches!(
                    socket.end_send_to(&r.ar),
                    Err(Error::ForeignResult)
                ));
            }
            Action::Cancel(i) if !records.is_empty() => {
                let at = i % records.len();
                let r = &mut records[at];
                let was_completed = r.ar.is_completed();
                let cancelled = r.ar.cancel();
                assert!(
                    !(was_completed && cancelled),
                    "cancelled a completed operation"
                );
                r.cancelled |= cancelled;
            }
            Action::DropClone(i) if !clones.is_empty() => {
                let at = i % clones.len();
                drop(clones.swap_remove(at));
            }
            Action::Close => {
                socket.close();
                *closed.lock().unwrap() = true;
            }
            _ => {}
        }
    }
    // End everything not yet ended, bounded, so every outcome is known.
    for r in &mut records {
        assert!(r.ar.wait_timeout(secs(20)), "send {} never completed", r.id);
        if r.outcome.is_none() {
            r.outcome = Some(describe(&socket.end_send(&r.ar)));
        }
    }
    records
}

/// Checks every thread's records and the peer's bytes.
fn check(records: &[Vec<Record>], received: &[u8]) {
    // Each send by id: its thread, its place in that thread's begin order, its record.
    let mut by_id: HashMap<u32, (usize, usize, &Record)> = HashMap::new();
    // A close that aborted pending sends resets the connection (as close(2) and .NET
    // do), and a reset discards whatever the peer had not read yet, including the tail
    // of sends that had already completed successfully.
    let mut reset = false;
    for (thread, r, place) in records
        .iter()
        .enumerate()
        .flat_map(|(t, rs)| rs.iter().enumerate().map(move |(i, r)| (t, r, i)))
    {
        let outcome = r.outcome.as_ref().expect("ended");
        match outcome {
            Ok(n) => assert_eq!(*n, r.len, "a successful send reports its whole length"),
            Err(e) if e == "Aborted" => assert!(r.cancelled, "Aborted without a cancel"),
            Err(_) => {}
        }
        if r.cancelled {
            assert_eq!(
                error_name(outcome),
                Some("Aborted"),
                "cancel() true but {outcome:?}"
            );
        }
        reset |= error_name(outcome) == Some("Disposed");
        let calls = r.callbacks.load(Ordering::SeqCst);
        assert!(calls <= 1, "callback ran {calls} times");
        by_id.insert(r.id, (thread, place, r));
    }
    // The peer's stream: whole payloads of successful sends, each thread's in its
    // begin order; at most the last one may be cut short (a torn cancel, or a reset).
    let mut at = 0;
    let mut arrived: HashSet<u32> = HashSet::new();
    let mut last_place: HashMap<usize, usize> = HashMap::new();
    while at + 8 <= received.len() {
        let id = u32::from_le_bytes(received[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(received[at + 4..at + 8].try_into().unwrap()) as usize;
        let &(thread, place, record) = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("unknown payload id {id} at {at}"));
        assert_eq!(len, record.len, "payload header of {id} corrupted");
        let end = (at + len).min(received.len());
        assert_eq!(
            received[at..end],
            payload(id, len)[..end - at],
            "payload {id} corrupted"
        );
        arrived.insert(id);
        if end - at < len {
            assert_eq!(end, received.len(), "a cut payload must be the last");
            assert!(
                reset || record.outcome.as_ref().unwrap().is_err(),
                "a successful send was cut without a reset"
            );
        } else {
            let before = last_place.insert(thread, place);
            assert!(
                before.is_none_or(|b| b < place),
                "thread {thread}: payloads out of begin order"
            );
        }
        at = end;
    }
    // Every successful send's bytes arrived (unless the connection was reset).
    if !reset {
        for r in records.iter().flatten() {
            if r.outcome.as_ref().unwrap().is_ok() {
                assert!(
                    arrived.contains(&r.id),
                    "send {} succeeded but never arrived",
                    r.id
                );
            }
        }
    }
}

fn run_case(threads: Vec<Vec<Action>>) {
    let (ours, theirs) = tcp_to_std();
    let (foreign, _other) = tcp_to_std();
    let reader = thread::spawn(move || {
        let mut theirs = theirs;
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match std::io::Read::read(&mut theirs, &mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    });
    let next_id = AtomicUsize::new(0);
    let closed = Mutex::new(false);
    let records: Vec<Vec<Record>> = thread::scope(|scope| {
        let handles: Vec<_> = threads
            .iter()
            .map(|actions| scope.spawn(|| run_thread(&ours, &foreign, actions, &next_id, &closed)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    ours.close();
    let received = reader.join().unwrap();
    check(&records, &received);
    // Callbacks arrive exactly once (give the callback threads a bounded moment).
    for r in records.iter().flatten() {
        let deadline = std::time::Instant::now() + secs(10);
        let expected = usize::from(r.with_callback);
        while r.callbacks.load(Ordering::SeqCst) < expected {
            assert!(
                std::time::Instant::now() < deadline,
                "callback of {} never ran",
                r.id
            );
            thread::yield_now();
        }
        assert_eq!(
            r.callbacks.load(Ordering::SeqCst),
            expected,
            "callback count of {}",
            r.id
        );
    }
}

/// Cases per property: 48, or `PROPTEST_CASES` (`cargo xtask valgrind` runs fewer under
/// memcheck's slowdown).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn one_thread_any_sequence(actions in proptest::collection::vec(action(), 1..40)) {
        bounded(secs(60), move || run_case(vec![actions]));
    }

    #[test]
    fn three_threads_any_sequences(
        a in proptest::collection::vec(action(), 1..25),
        b in proptest::collection::vec(action(), 1..25),
        c in proptest::collection::vec(action(), 1..25),
    ) {
        bounded(secs(60), move || run_case(vec![a, b, c]));
    }
}

/// The shape of a case that a CI run shrank to (its huge `End`/`Cancel` indices, which
/// are taken modulo the number of sends, written small): one thread's large send
/// completes, another thread closes while a third's sends are still pending, so the
/// close resets the connection and the peer loses the tail of the completed send.
#[test]
fn close_with_aborted_sends_may_cut_a_completed_send() {
    use Action::*;
    let send = |len, with_callback| Send { len, with_callback };
    let a = vec![End(1), Cancel(2), Cancel(3), EndForeign(4), End(5)];
    let b = vec![
        EndForeign(1),
        End(2),
        End(3),
        send(2_408_710, false),
        send(3_023_028, true),
        EndForeign(6),
        send(55, false),
        Cancel(7),
        Cancel(8),
        Cancel(9),
    ];
    let c = vec![
        End(1),
        send(2_284_090, true),
        Close,
        End(3),
        End(4),
        End(5),
        EndForeign(6),
        End(7),
        Close,
        End(8),
        send(18, false),
        send(1661, false),
        EndWrongKind(9),
        send(1_525_673, true),
        send(32, false),
    ];
    for _ in 0..8 {
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        bounded(secs(60), move || run_case(vec![a, b, c]));
    }
}
