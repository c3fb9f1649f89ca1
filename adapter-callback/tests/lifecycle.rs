//! The lifecycle of sockets and operations through the callback adapter
//! (API.md semantics §5–§9): close racing with begins, with cancels and with itself,
//! close from a callback, cancel racing with completion (no byte lost), end_* from
//! other threads and on clones, and descriptors released once everything is gone.
//!
//! Scenarios that count the process's descriptors run in a child process of their own
//! (`run_child`), so that other tests of this binary do not move the count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use asyncresult_callback::prelude::*;
use common::{
    bounded, child_ok, eventually, fd_count, localhost, pattern, secs, stalled_sender, tcp_to_std,
};

/// Checks that one begun operation completed as it may.
type Check = Box<dyn Fn() -> Result<(), String> + Send>;
/// Ends one operation on the socket.
type Ender = Box<dyn FnOnce(&Socket) -> Result<(), Error> + Send>;

static BIG: [u8; 64 << 10] = [7u8; 64 << 10];

/// A counter of callback runs per operation: every id must be seen exactly once.
#[derive(Default)]
struct Runs(Mutex<Vec<usize>>);

impl Runs {
    fn record(&self, id: usize) {
        self.0.lock().unwrap().push(id);
    }
    fn snapshot(&self) -> Vec<usize> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_unstable();
        v
    }
}

// ---- close racing with begin_* ------------------------------------------------------

/// Threads begin operations of every kind on one socket while another thread closes
/// it: each begin either fails with `Disposed` or succeeds, and every success
/// completes (its callback runs exactly once, its end returns its own result or
/// `Disposed`); nothing hangs or vanishes.
#[test]
fn close_racing_with_begins_from_many_threads_loses_no_operation() {
    bounded(secs(60), || {
        for round in 0..20 {
            let (ours, theirs) = tcp_to_std();
            ours.as_socket2().set_send_buffer_size(4096).unwrap();
            let runs = Arc::new(Runs::default());
            let next_id = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(5));
            let stop = Arc::new(AtomicBool::new(false));
            let mut workers = Vec::new();
            for t in 0..4 {
                let (s, runs, next_id, start, stop) = (
                    ours.clone(),
                    runs.clone(),
                    next_id.clone(),
                    start.clone(),
                    stop.clone(),
                );
                workers.push(thread::spawn(move || {
                    let mut begun: Vec<(usize, Check)> = Vec::new();
                    start.wait();
                    let mut i = 0usize;
                    loop {
                        let id = next_id.fetch_add(1, Ordering::SeqCst);
                        let r = runs.clone();
                        let closed_before = s.is_closed();
                        let outcome: Result<Check, Error> = match (t + i) % 4 {
                            0 => s
                                .begin_receive(
                                    Vec::with_capacity(16),
                                    SocketFlags::NONE,
                                    callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                                        r.record(id)
                                    }),
                                    None,
                                )
                                .map(|ar| {
                                    let s = s.clone();
                                    Box::new(move || {
                                        if !ar.wait_timeout(secs(10)) {
                                            return Err("receive never completed".into());
                                        }
                                        match s.end_receive(&ar) {
                                            Ok(_) | Err(Error::Disposed) => Ok(()),
                                            Err(e) => Err(format!("receive: {e:?}")),
                                        }
                                    }) as Check
                                }),
                            1 => s
                                .begin_send(
                                    &BIG,
                                    SocketFlags::NONE,
                                    callback(move |_ar: AsyncResult<usize>| r.record(id)),
                                    None,
                                )
                                .map(|ar| {
                                    let s = s.clone();
                                    Box::new(move || {
                                        if !ar.wait_timeout(secs(10)) {
                                            return Err("send never completed".into());
                                        }
                                        match s.end_send(&ar) {
                                            Ok(n) if n == 64 << 10 => Ok(()),
                                            Err(Error::Disposed) => Ok(()),
                                            // The reset of the close may reach a send
                                            // that was running at that moment.
                                            Err(e)
                                                if matches!(
                                                    e.error_code(),
                                                    Some(libc::EPIPE | libc::ECONNRESET)
                                                ) =>
                                            {
                                                Ok(())
                                            }
                                            other => Err(format!("send: {other:?}")),
                                        }
                                    }) as Check
                                }),
                            2 => s
                                .begin_send_vectored(
                                    vec![vec![1u8; 1000], vec![2u8; 3000]],
                                    SocketFlags::NONE,
                                    callback(move |_ar: AsyncResult<usize>| r.record(id)),
                                    None,
                                )
                                .map(|ar| {
                                    let s = s.clone();
                                    Box::new(move || {
                                        if !ar.wait_timeout(secs(10)) {
                                            return Err("vectored never completed".into());
                                        }
                                        match s.end_send(&ar) {
                                            Ok(4000) | Err(Error::Disposed) => Ok(()),
                                            Err(e)
                                                if matches!(
                                                    e.error_code(),
                                                    Some(libc::EPIPE | libc::ECONNRESET)
                                                ) =>
                                            {
                                                Ok(())
                                            }
                                            other => Err(format!("vectored: {other:?}")),
                                        }
                                    }) as Check
                                }),
                            _ => s
                                .begin_receive(
                                    Vec::new(),
                                    SocketFlags::NONE,
                                    callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                                        r.record(id)
                                    }),
                                    None,
                                )
                                .map(|ar| {
                                    let s = s.clone();
                                    Box::new(move || {
                                        if !ar.wait_timeout(secs(10)) {
                                            return Err("probe never completed".into());
                                        }
                                        match s.end_receive(&ar) {
                                            Ok(_) | Err(Error::Disposed) => Ok(()),
                                            Err(e) => Err(format!("probe: {e:?}")),
                                        }
                                    }) as Check
                                }),
                        };
                        match outcome {
                            Ok(check) => {
                                assert!(!closed_before, "a begin after close succeeded");
                                begun.push((id, check));
                            }
                            Err(Error::Disposed) => break,
                            Err(e) => panic!("begin failed with {e:?}"),
                        }
                        i += 1;
                        // Enough begun: wait for the close, then begin once more.
                        while i > 300 && !stop.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                    }
                    let mut ids = Vec::new();
                    for (id, check) in begun {
                        check().unwrap_or_else(|e| panic!("round {round}: {e}"));
                        ids.push(id);
                    }
                    ids
                }));
            }
            start.wait();
            // Let some operations start, then close.
            for _ in 0..(round * 10) {
                thread::yield_now();
            }
            ours.close();
            stop.store(true, Ordering::SeqCst);
            let mut ids: Vec<usize> = Vec::new();
            for w in workers {
                ids.extend(w.join().unwrap());
            }
            ids.sort_unstable();
            // Every callback runs; wait for them (bounded), then exactly once each.
            assert!(
                eventually(secs(10), || runs.snapshot().len() >= ids.len()),
                "round {round}: {} of {} callbacks ran",
                runs.snapshot().len(),
                ids.len()
            );
            thread::sleep(Duration::from_millis(20));
            assert_eq!(
                runs.snapshot(),
                ids,
                "round {round}: callbacks not exactly once"
            );
            drop(theirs);
        }
    });
}

// ---- close from many threads, and from callbacks ------------------------------------

/// Eight threads close one socket at once while operations of every direction are
/// pending: each operation completes exactly once with `Disposed`, and as soon as any
/// `close` call has returned, `begin_*` fails with `Disposed`.
#[test]
fn concurrent_closes_complete_every_pending_operation_once() {
    bounded(secs(60), || {
        for _ in 0..50 {
            let (ours, _theirs) = tcp_to_std();
            ours.as_socket2().set_send_buffer_size(4096).unwrap();
            let runs = Arc::new(Runs::default());
            let mut results = Vec::new();
            for id in 0..6 {
                let r = runs.clone();
                if id % 2 == 0 {
                    let ar = ours
                        .begin_receive(
                            Vec::with_capacity(8),
                            SocketFlags::NONE,
                            callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| r.record(id)),
                            None,
                        )
                        .unwrap();
                    results.push((
                        true,
                        ar.is_completed(),
                        Box::new(move |s: &Socket| s.end_receive(&ar).map(|_| ())) as Ender,
                    ));
                } else {
                    let ar = ours
                        .begin_send(
                            vec![0u8; 4 << 20],
                            SocketFlags::NONE,
                            callback(move |_ar: AsyncResult<usize>| r.record(id)),
                            None,
                        )
                        .unwrap();
                    results.push((
                        false,
                        ar.is_completed(),
                        Box::new(move |s: &Socket| s.end_send(&ar).map(|_| ())) as Ender,
                    ));
                }
            }
            let barrier = Arc::new(Barrier::new(8));
            let closers: Vec<_> = (0..8)
                .map(|_| {
                    let (s, b) = (ours.clone(), barrier.clone());
                    thread::spawn(move || {
                        b.wait();
                        s.close();
                        assert!(s.is_closed());
                        assert!(matches!(
                            s.begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None),
                            Err(Error::Disposed)
                        ));
                        assert!(matches!(
                            s.begin_send(&b"x"[..], SocketFlags::NONE, None, None),
                            Err(Error::Disposed)
                        ));
                    })
                })
                .collect();
            for c in closers {
                c.join().unwrap();
            }
            for (_, done_before, end) in results {
                assert!(!done_before);
                assert!(matches!(end(&ours), Err(Error::Disposed)));
            }
            assert!(eventually(secs(5), || runs.snapshot().len() >= 6));
            thread::sleep(Duration::from_millis(10));
            assert_eq!(runs.snapshot(), (0..6).collect::<Vec<_>>());
        }
    });
}

/// A callback of the socket closes it (the receive's, when data arrives) while a send
/// is pending behind full buffers: the send completes once with `Disposed`, its
/// callback runs, end_* inside it works, and the peer sees a reset.
#[test]
fn close_from_inside_a_callback_of_the_same_socket() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.as_socket2().set_send_buffer_size(4096).unwrap();
        let (tx, rx) = mpsc::channel::<(&'static str, Result<usize, Error>)>();
        let (s, t) = (ours.clone(), tx.clone());
        let send = ours
            .begin_send(
                vec![9u8; 8 << 20],
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    t.send(("send", s.end_send(&ar))).unwrap();
                }),
                None,
            )
            .unwrap();
        assert!(!send.is_completed());
        let s = ours.clone();
        ours.begin_receive(
            Vec::with_capacity(8),
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                let got = s.end_receive(&ar).map(|(n, _)| n);
                s.close();
                s.close();
                // Begins from inside the callback after close fail at once.
                assert!(matches!(
                    s.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None),
                    Err(Error::Disposed)
                ));
                tx.send(("receive", got)).unwrap();
            }),
            None,
        )
        .unwrap();
        theirs.write_all(b"go").unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.push(rx.recv_timeout(secs(5)).expect("both callbacks run"));
        }
        seen.sort_by_key(|(k, _)| *k);
        assert!(matches!(seen[0], ("receive", Ok(2))), "{seen:?}");
        assert!(
            matches!(seen[1], ("send", Err(Error::Disposed))),
            "{seen:?}"
        );
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        // The peer sees a reset (the pending send was aborted), after what was in flight.
        theirs.set_read_timeout(Some(secs(5))).unwrap();
        let mut sink = vec![0u8; 1 << 16];
        let end = loop {
            match theirs.read(&mut sink) {
                Ok(0) => break Ok(0),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        let err = end.expect_err("a reset, not a FIN");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET), "{err:?}");
    });
}

// ---- cancel ------------------------------------------------------------------------------

/// A receive cancelled while the peer's byte arrives: exactly one outcome. If the
/// cancel won, the result is `Aborted` and the byte is still in the socket for the next
/// receive; else the receive has the byte and cancel returned `false`. Over many rounds
/// no byte is lost or duplicated, and every callback runs exactly once.
#[test]
fn cancel_racing_with_completion_loses_no_byte() {
    bounded(secs(60), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.set_nodelay(true).unwrap();
        theirs.set_nodelay(true).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut got = Vec::new();
        let (mut cancelled_n, mut completed_n) = (0, 0);
        for i in 0..2000u32 {
            let c = calls.clone();
            let ar = ours
                .begin_receive(
                    Vec::with_capacity(1),
                    SocketFlags::NONE,
                    callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                        c.fetch_add(1, Ordering::SeqCst);
                    }),
                    None,
                )
                .unwrap();
            let byte = (i % 251) as u8;
            let canceller = {
                let ar = ar.clone();
                thread::spawn(move || ar.cancel())
            };
            theirs.write_all(&[byte]).unwrap();
            let cancelled = canceller.join().unwrap();
            assert!(!ar.cancel(), "second cancel");
            match ours.end_receive(&ar) {
                Ok((1, buf)) => {
                    assert!(!cancelled, "round {i}: cancelled and completed");
                    completed_n += 1;
                    got.push(buf[0]);
                }
                Err(Error::Aborted) => {
                    assert!(cancelled, "round {i}: Aborted but cancel said false");
                    cancelled_n += 1;
                    let r = ours
                        .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
                        .unwrap();
                    let (n, buf) = ours.end_receive(&r).unwrap();
                    assert_eq!(n, 1);
                    got.push(buf[0]);
                }
                other => panic!("round {i}: {other:?}"),
            }
            assert_eq!(got.last(), Some(&byte), "round {i}: wrong byte");
        }
        assert!(eventually(secs(5), || calls.load(Ordering::SeqCst) >= 2000));
        thread::sleep(Duration::from_millis(20));
        assert_eq!(calls.load(Ordering::SeqCst), 2000);
        eprintln!("cancelled {cancelled_n}, completed {completed_n}");
    });
}

/// cancel and close racing on one pending operation: exactly one outcome (`Aborted`
/// if cancel returned true, else `Disposed`), callback once.
#[test]
fn cancel_racing_with_close_has_one_outcome() {
    bounded(secs(60), || {
        for i in 0..300 {
            let (ours, _theirs) = tcp_to_std();
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let ar = ours
                .begin_receive(
                    Vec::with_capacity(4),
                    SocketFlags::NONE,
                    callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| {
                        c.fetch_add(1, Ordering::SeqCst);
                    }),
                    None,
                )
                .unwrap();
            let b = Arc::new(Barrier::new(2));
            let closer = {
                let (s, b) = (ours.clone(), b.clone());
                thread::spawn(move || {
                    b.wait();
                    s.close();
                })
            };
            b.wait();
            let cancelled = ar.cancel();
            closer.join().unwrap();
            match ours.end_receive(&ar) {
                Err(Error::Aborted) => assert!(cancelled, "round {i}"),
                Err(Error::Disposed) => assert!(!cancelled, "round {i}"),
                other => panic!("round {i}: {other:?}"),
            }
            assert!(eventually(secs(5), || calls.load(Ordering::SeqCst) >= 1));
            assert!(!ar.cancel());
            thread::sleep(Duration::from_millis(1));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    });
}

/// A cancelled receive leaves the socket usable: a cancel in the middle of three queued
/// receives removes only that one; the others complete in order with the data.
#[test]
fn cancelling_a_middle_receive_keeps_the_others_in_order() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let a = ours
            .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
            .unwrap();
        let b = ours
            .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
            .unwrap();
        let c = ours
            .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(b.cancel());
        assert!(!b.cancel());
        theirs.write_all(b"xy").unwrap();
        assert_eq!(&ours.end_receive(&a).unwrap().1[..], b"x");
        assert_eq!(&ours.end_receive(&c).unwrap().1[..], b"y");
        assert!(matches!(ours.end_receive(&b), Err(Error::Aborted)));
    });
}

/// A stream send cancelled after part of it went out shuts the send side: the sends
/// queued behind it, and new ones, fail with EPIPE; the peer reads a prefix of the
/// cancelled send and then end of stream (never bytes of a later send); receives keep
/// working.
#[test]
fn a_torn_send_cancel_fails_queued_and_later_sends_with_epipe() {
    bounded(secs(30), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.as_socket2().set_send_buffer_size(4096).unwrap();
        let first = ours
            .begin_send(pattern(4 << 20, 3), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!first.is_completed());
        let (tx, rx) = mpsc::channel();
        let s = ours.clone();
        let queued = ours
            .begin_send(
                vec![0xEEu8; 1000],
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| tx.send(s.end_send(&ar)).unwrap()),
                None,
            )
            .unwrap();
        assert!(first.cancel());
        let err = rx.recv_timeout(secs(5)).unwrap().unwrap_err();
        assert_eq!(err.error_code(), Some(libc::EPIPE), "{err:?}");
        assert!(queued.is_completed());
        let later = ours
            .begin_send(&b"late"[..], SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(
            ours.end_send(&later).unwrap_err().error_code(),
            Some(libc::EPIPE)
        );
        assert!(matches!(ours.end_send(&first), Err(Error::Aborted)));
        // The peer: a prefix of the first send, then end of stream.
        let mut all = Vec::new();
        theirs.set_read_timeout(Some(secs(5))).unwrap();
        theirs.read_to_end(&mut all).unwrap();
        assert!(!all.is_empty() && all.len() < 4 << 20);
        assert_eq!(all, pattern(4 << 20, 3)[..all.len()]);
        // Receives keep working.
        theirs.write_all(b"back").unwrap();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(&ours.end_receive(&r).unwrap().1[..], b"back");
    });
}

/// A send queued behind another (no byte of it sent) cancels cleanly: the socket stays
/// usable for sends, and the stream on the wire is the first send, then the next one.
#[test]
fn cancelling_a_send_that_has_not_started_keeps_the_stream_whole() {
    bounded(secs(30), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.as_socket2().set_send_buffer_size(4096).unwrap();
        let len = 2 << 20;
        let first = ours
            .begin_send(pattern(len, 5), SocketFlags::NONE, None, None)
            .unwrap();
        let second = ours
            .begin_send(vec![0xAAu8; 4096], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(second.cancel());
        let third = ours
            .begin_send(&b"tail"[..], SocketFlags::NONE, None, None)
            .unwrap();
        let reader = thread::spawn(move || {
            let mut got = vec![0u8; len + 4];
            theirs.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(ours.end_send(&first).unwrap(), len);
        assert!(matches!(ours.end_send(&second), Err(Error::Aborted)));
        assert_eq!(ours.end_send(&third).unwrap(), 4);
        let got = reader.join().unwrap();
        assert_eq!(&got[..len], &pattern(len, 5)[..]);
        assert_eq!(&got[len..], b"tail");
    });
}

// ---- end_* -----------------------------------------------------------------------------

/// end_* blocked on another thread while the operation is pending returns its outcome
/// once the operation completes; a concurrent end_* on a clone gets `AlreadyEnded`
/// (exactly one of the two gets the result).
#[test]
fn two_threads_ending_one_result_get_one_outcome() {
    bounded(secs(30), || {
        for _ in 0..100 {
            let (ours, mut theirs) = tcp_to_std();
            let ar = ours
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            let enders: Vec<_> = (0..2)
                .map(|_| {
                    let (s, ar) = (ours.clone(), ar.clone());
                    thread::spawn(move || s.end_receive(&ar).map(|(n, _)| n))
                })
                .collect();
            theirs.write_all(b"abc").unwrap();
            let outs: Vec<_> = enders.into_iter().map(|h| h.join().unwrap()).collect();
            let ok = outs.iter().filter(|o| matches!(o, Ok(3))).count();
            let again = outs
                .iter()
                .filter(|o| matches!(o, Err(Error::AlreadyEnded)))
                .count();
            assert_eq!((ok, again), (1, 1), "{outs:?}");
            assert!(ar.is_ended());
            assert!(matches!(ours.end_receive(&ar), Err(Error::AlreadyEnded)));
        }
    });
}

/// end_* on a thread blocked on a pending receive returns `Disposed` when another
/// thread closes the socket; its callback ends nothing more (AlreadyEnded there).
#[test]
fn a_blocked_end_returns_disposed_when_another_thread_closes() {
    bounded(secs(10), || {
        let (ours, _theirs) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let s = ours.clone();
        let ar = ours
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    // Either this or the blocked end_* gets the outcome.
                    tx.send(s.end_receive(&ar).map(|(n, _)| n)).unwrap();
                }),
                None,
            )
            .unwrap();
        let ender = {
            let (s, ar) = (ours.clone(), ar.clone());
            thread::spawn(move || s.end_receive(&ar).map(|(n, _)| n))
        };
        assert!(!ar.wait_timeout(Duration::from_millis(50)));
        assert!(!ar.wait_timeout(Duration::ZERO));
        ours.close();
        let blocked = ender.join().unwrap();
        let in_callback = rx.recv_timeout(secs(5)).unwrap();
        let outs = [blocked, in_callback];
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, Err(Error::Disposed)))
                .count(),
            1,
            "{outs:?}"
        );
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, Err(Error::AlreadyEnded)))
                .count(),
            1,
            "{outs:?}"
        );
        assert!(ar.wait_timeout(Duration::MAX));
    });
}

/// An operation that completed before close keeps its own result (receive with data,
/// accept with a connection), even when end_* is called after close.
#[test]
fn results_completed_before_close_survive_it() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        theirs.write_all(b"kept").unwrap();
        assert!(r.wait_timeout(secs(5)));
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let a = l.begin_accept(None, None).unwrap();
        let c = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        assert!(a.wait_timeout(secs(5)));
        ours.close();
        l.close();
        assert_eq!(&ours.end_receive(&r).unwrap().1[..], b"kept");
        let accepted = l.end_accept(&a).unwrap();
        // The accepted socket is its own: alive after its listener's close.
        accepted
            .end_send(
                &accepted
                    .begin_send(&b"hi"[..], SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let got = c
            .end_receive(
                &c.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&got.1[..], b"hi");
    });
}

// ---- descriptors -------------------------------------------------------------------------

#[test]
fn descriptors_are_released_once_everything_is_gone() {
    child_ok("child_descriptors_released");
}

/// In a fresh process: operations of every kind left pending, handles and results
/// dropped in every order, sockets kept in an AsyncState or a callback; once all is
/// gone, the descriptor count is back to where it was.
#[test]
#[ignore = "run in a child process by descriptors_are_released_once_everything_is_gone"]
fn child_descriptors_released() {
    bounded(secs(60), || {
        // Start the engine (its own descriptors) before the baseline.
        let warm = Socket::bind_udp(localhost()).unwrap();
        drop(warm);
        thread::sleep(Duration::from_millis(50));
        let base = fd_count();

        // 1. Every kind pending, AsyncResults dropped unfinished, then the handles.
        {
            let (ours, theirs) = tcp_to_std();
            ours.as_socket2().set_send_buffer_size(4096).unwrap();
            let r = ours
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            let s = ours
                .begin_send(vec![0u8; 4 << 20], SocketFlags::NONE, None, None)
                .unwrap();
            let v = ours
                .begin_send_vectored(vec![vec![1u8; 10]; 3], SocketFlags::NONE, None, None)
                .unwrap();
            drop((r, s, v));
            let l = Socket::listen_tcp(localhost(), 4).unwrap();
            let a = l.begin_accept(None, None).unwrap();
            drop(a);
            let u = Socket::bind_udp(localhost()).unwrap();
            let f = u
                .begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            drop(f);
            drop((ours, l, u, theirs));
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 1: {} descriptors, base {base}",
            fd_count()
        );

        // 2. Handles dropped first, results kept, then dropped.
        {
            let (ours, theirs) = tcp_to_std();
            let r = ours
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            drop(ours);
            assert!(r.wait_timeout(secs(5)), "dropping the last handle closes");
            drop((r, theirs));
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 2: {} descriptors, base {base}",
            fd_count()
        );

        // 3. The seed's pattern: the socket in the AsyncState of a pending receive; the
        // user's handle dropped. The socket stays open while the receive is pending,
        // then goes with the result.
        {
            let (ours, mut theirs) = tcp_to_std();
            let (tx, rx) = mpsc::channel();
            let ar = ours
                .begin_receive(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        let s = ar.state::<Socket>().unwrap();
                        tx.send(s.end_receive(&ar).map(|(n, _)| n)).unwrap();
                    }),
                    state(ours.clone()),
                )
                .unwrap();
            let fd = ours.as_socket2().as_raw_fd();
            drop(ours);
            assert!(!ar.is_completed(), "the state's handle keeps it open");
            theirs.write_all(b"seed").unwrap();
            assert_eq!(rx.recv_timeout(secs(5)).unwrap().unwrap(), 4);
            // The result still holds the state (and the socket): the fd is still ours.
            let st = ar.state::<Socket>().unwrap();
            assert_eq!(st.as_socket2().as_raw_fd(), fd);
            assert!(!st.is_closed());
            drop(ar);
            drop(theirs);
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 3: {} descriptors, base {base}",
            fd_count()
        );

        // 4. A callback that holds the socket, then close: the callback runs, and with
        // it the last handle goes.
        {
            let (ours, theirs) = tcp_to_std();
            let (tx, rx) = mpsc::channel();
            let held = ours.clone();
            ours.begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(held.end_receive(&ar).map(|(n, _)| n)).unwrap();
                }),
                None,
            )
            .unwrap();
            ours.close();
            assert!(matches!(
                rx.recv_timeout(secs(5)).unwrap(),
                Err(Error::Disposed)
            ));
            drop((ours, theirs));
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 4: {} descriptors, base {base}",
            fd_count()
        );

        // 5. After close the descriptor stays ours (shut down, not closed) while a
        // handle lives: its number is not reused by a new socket, and as_socket2 works.
        {
            let (ours, theirs) = tcp_to_std();
            let fd = ours.as_socket2().as_raw_fd();
            ours.close();
            let others: Vec<_> = (0..8)
                .map(|_| std::net::UdpSocket::bind(localhost()).unwrap())
                .collect();
            assert!(others.iter().all(|o| o.as_raw_fd() != fd));
            assert_eq!(ours.as_socket2().as_raw_fd(), fd);
            assert!(ours.as_socket2().r#type().is_ok(), "the fd is still open");
            drop((ours, theirs, others));
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 5: {} descriptors, base {base}",
            fd_count()
        );

        // 6. Pending connect, then last handle dropped.
        {
            let full = Socket::listen_tcp(localhost(), 0).unwrap();
            let addr = full.local_addr().unwrap();
            let mut fillers = Vec::new();
            loop {
                let k = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                let ar = k.begin_connect(addr, None, None).unwrap();
                if !ar.wait_timeout(Duration::from_millis(100)) {
                    drop(k);
                    assert!(ar.wait_timeout(secs(5)), "dropping closes the connect");
                    assert!(matches!(
                        Socket::new(Domain::IPV4, Type::STREAM, None)
                            .unwrap()
                            .end_connect(&ar),
                        Err(Error::ForeignResult)
                    ));
                    break;
                }
                fillers.push(k);
                assert!(fillers.len() < 64);
            }
            drop((fillers, full));
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 6: {} descriptors, base {base}",
            fd_count()
        );

        // 7. UDP: a pending receive_from whose callback holds the socket; dropped
        // handle without close keeps it (documented); a datagram completes it and frees
        // everything.
        {
            let u = Socket::bind_udp(localhost()).unwrap();
            let to: SocketAddr = u.local_addr().unwrap();
            let held = u.clone();
            let (tx, rx) = mpsc::channel();
            u.begin_receive_from(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| {
                    tx.send(held.end_receive_from(&ar).map(|(n, _, _)| n))
                        .unwrap();
                }),
                None,
            )
            .unwrap();
            drop(u);
            std::net::UdpSocket::bind(localhost())
                .unwrap()
                .send_to(b"dgram", to)
                .unwrap();
            assert_eq!(rx.recv_timeout(secs(5)).unwrap().unwrap(), 5);
        }
        assert!(
            eventually(secs(5), || fd_count() <= base),
            "case 7: {} descriptors, base {base}",
            fd_count()
        );
    });
}

// ---- close from user code that the engine runs ----------------------------------------------

/// A send buffer that closes its own connection when it is dropped ("the last frame
/// hangs up"): an explicit `close()`, not a dropped last handle.
struct ClosingFrame {
    data: Vec<u8>,
    conn: Socket,
    dropped: mpsc::Sender<()>,
}

impl IoBuf for ClosingFrame {
    fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for ClosingFrame {
    fn drop(&mut self) {
        self.conn.close();
        let _ = self.dropped.send(());
    }
}

#[test]
fn a_buffer_that_closes_its_socket_when_dropped_from_the_queue() {
    child_ok("child_buffer_closes_its_socket_from_the_queue");
}

/// The frame's send waits in the queue behind a stalled send, then completes from an
/// edge: the frame is dropped where the engine completes it, and closes the socket.
/// Nothing may wedge: the frame's callback runs, the socket is closed, and the engine
/// still serves other sockets.
#[test]
#[ignore = "run in a child process by a_buffer_that_closes_its_socket_when_dropped_from_the_queue"]
fn child_buffer_closes_its_socket_from_the_queue() {
    bounded(secs(20), || {
        let (ours, mut theirs, _filler) = stalled_sender();
        let (dropped, frame_dropped) = mpsc::channel();
        let frame = ClosingFrame {
            data: vec![1u8; 100],
            conn: ours.clone(),
            dropped,
        };
        let (ran, callback_ran) = mpsc::channel();
        ours.begin_send(
            frame,
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<usize>| {
                let _ = ran.send(ar.is_completed());
            }),
            None,
        )
        .unwrap();
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = theirs.read_to_end(&mut all);
            all.len()
        });
        frame_dropped.recv_timeout(secs(10)).expect("frame dropped");
        assert!(callback_ran.recv_timeout(secs(10)).expect("callback ran"));
        assert!(ours.is_closed());
        assert_eq!(reader.join().unwrap(), (4 << 20) + 100);
        // The engine still serves other sockets.
        let (a, mut b) = tcp_to_std();
        let r = a
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        b.write_all(b"ok").unwrap();
        assert!(r.wait_timeout(secs(5)), "the engine is wedged");
    });
}

// ---- shutdown with operations pending ----------------------------------------------------

/// `shutdown(Write)` while sends wait behind full buffers: they complete at once with
/// EPIPE (as `Socket::shutdown` documents), and receives keep working.
#[test]
fn shutdown_write_completes_pending_sends_with_epipe() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.as_socket2().set_send_buffer_size(4096).unwrap();
        let first = ours
            .begin_send(vec![1u8; 8 << 20], SocketFlags::NONE, None, None)
            .unwrap();
        let second = ours
            .begin_send(vec![2u8; 1000], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!first.is_completed() && !second.is_completed());
        ours.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(
            first.wait_timeout(secs(5)),
            "the pending send never completed"
        );
        assert!(
            second.wait_timeout(secs(5)),
            "the queued send never completed"
        );
        for ar in [&first, &second] {
            let e = ours.end_send(ar).unwrap_err();
            assert_eq!(e.error_code(), Some(libc::EPIPE), "{e:?}");
        }
        theirs.write_all(b"still").unwrap();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(&ours.end_receive(&r).unwrap().1[..], b"still");
    });
}

/// `shutdown(Read)` while a receive waits: it completes at once with 0, and stays 0.
#[test]
fn shutdown_read_completes_a_pending_receive_with_zero() {
    bounded(secs(20), || {
        let (ours, _theirs) = tcp_to_std();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!r.wait_timeout(Duration::from_millis(20)));
        ours.shutdown(std::net::Shutdown::Read).unwrap();
        assert!(
            r.wait_timeout(secs(5)),
            "the pending receive never completed"
        );
        assert_eq!(ours.end_receive(&r).unwrap().0, 0);
        let again = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(ours.end_receive(&again).unwrap().0, 0);
    });
}

#[test]
fn a_send_queued_behind_a_buffer_that_closes_its_socket() {
    child_ok("child_send_behind_a_closing_buffer");
}

/// A send queued behind the frame that closes its socket when dropped: it is still
/// pending when `close()` is called (from the frame's Drop), so it completes with
/// `Disposed` (semantics §7) rather than go out after the close. The peer stops reading
/// once it has the filler and the frame, so the tail (larger than the kernel's buffers)
/// cannot finish before the frame is dropped.
#[test]
#[ignore = "run in a child process by a_send_queued_behind_a_buffer_that_closes_its_socket"]
fn child_send_behind_a_closing_buffer() {
    bounded(secs(20), || {
        let (ours, mut theirs, _filler) = stalled_sender();
        let (dropped, frame_dropped) = mpsc::channel();
        let frame = ClosingFrame {
            data: vec![1u8; 100],
            conn: ours.clone(),
            dropped,
        };
        let framed = ours
            .begin_send(frame, SocketFlags::NONE, None, None)
            .unwrap();
        let tail = ours
            .begin_send(vec![2u8; 32 << 20], SocketFlags::NONE, None, None)
            .unwrap();
        let (go_on, resume) = mpsc::channel::<()>();
        let reader = thread::spawn(move || {
            let mut head = vec![0u8; (4 << 20) + 100];
            theirs.read_exact(&mut head).unwrap();
            // Nothing more is read until the frame has gone: the tail stalls.
            let _ = resume.recv();
            let mut rest = Vec::new();
            let _ = theirs.read_to_end(&mut rest);
            (head, rest.len())
        });
        frame_dropped.recv_timeout(secs(10)).expect("frame dropped");
        go_on.send(()).unwrap();
        assert!(tail.wait_timeout(secs(10)));
        assert_eq!(ours.end_send(&framed).unwrap(), 100);
        let tail_result = ours.end_send(&tail);
        let (head, rest) = reader.join().unwrap();
        assert!(head[..4 << 20].iter().all(|&b| b == 0) && head[4 << 20..].iter().all(|&b| b == 1));
        assert!(
            matches!(tail_result, Err(Error::Disposed)),
            "a send pending at close went out after it: {tail_result:?}, peer read {rest} \
             bytes after the frame"
        );
        assert!(rest < 32 << 20, "the whole tail went out after the close");
    });
}
