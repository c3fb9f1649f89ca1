//! The engine under user code that misbehaves: callbacks that block, on the polling
//! thread itself or behind each other, must not stall other sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use asyncresult_core::{AsyncResult, SocketFlags};
use common::*;

#[test]
fn a_callback_blocking_the_polling_thread_does_not_stall_other_sockets() {
    bounded(secs(30), || {
        // This receive completes from a readiness event, so its callback runs on the
        // worker that polled: the leader. It blocks until the end of the test.
        let (stuck, mut stuck_peer) = tcp_to_std();
        let (release, released) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel();
        stuck
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                Some(Box::new(move |_| {
                    entered_tx.send(()).unwrap();
                    let _ = released.recv_timeout(Duration::from_secs(20));
                })),
                None,
            )
            .unwrap();
        stuck_peer.write_all(b"x").unwrap();
        entered
            .recv_timeout(secs(5))
            .expect("blocking callback started");

        // Meanwhile, other sockets' events must still be served.
        for round in 0..20u8 {
            let (ours, mut theirs) = tcp_to_std();
            let (tx, rx) = mpsc::channel();
            let s = ours.clone();
            ours.begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(s.end_receive(&ar).map(|(_, b)| b)).unwrap();
                })),
                None,
            )
            .unwrap();
            theirs.write_all(&[round]).unwrap();
            let got = rx
                .recv_timeout(secs(5))
                .expect("served while the leader is stuck");
            assert_eq!(got.unwrap(), vec![round]);
        }
        release.send(()).unwrap();
    });
}

#[test]
fn blocking_end_calls_from_many_threads_all_complete() {
    bounded(secs(30), || {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                std::thread::spawn(move || {
                    let (a, b) = tcp_pair();
                    for round in 0..200u32 {
                        let r = b
                            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                            .unwrap();
                        let msg = (i * 1000 + round).to_le_bytes().to_vec();
                        a.end_send(
                            &a.begin_send(msg.clone(), SocketFlags::NONE, None, None)
                                .unwrap(),
                        )
                        .unwrap();
                        let (_, got) = b.end_receive(&r).unwrap();
                        assert_eq!(got, msg);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_blocking_callback_neither_stalls_other_sockets_nor_strands_queued_callbacks() {
    bounded(secs(30), || {
        let (a, _ta) = tcp_to_std();
        let (b, theirs_b) = tcp_to_std();
        let reader = read_all_in_background(theirs_b);
        // A callback that waits for a later callback, which completes on this same
        // worker: it is queued behind the one that waits for it.
        let (inner_tx, inner_rx) = mpsc::channel::<()>();
        let (outer_tx, outer_rx) = mpsc::channel::<bool>();
        let a2 = a.clone();
        a.begin_send(
            b"outer",
            SocketFlags::NONE,
            Some(Box::new(move |_| {
                a2.begin_send(
                    b"inner",
                    SocketFlags::NONE,
                    Some(Box::new(move |_| inner_tx.send(()).unwrap())),
                    None,
                )
                .unwrap();
                outer_tx
                    .send(inner_rx.recv_timeout(secs(10)).is_ok())
                    .unwrap();
            })),
            None,
        )
        .unwrap();
        // Meanwhile another socket keeps working.
        let (tx, rx) = mpsc::channel();
        for i in 0..50u8 {
            let tx = tx.clone();
            b.begin_send(
                vec![i; 100],
                SocketFlags::NONE,
                Some(Box::new(move |_| tx.send(()).unwrap())),
                None,
            )
            .unwrap();
        }
        for _ in 0..50 {
            rx.recv_timeout(secs(10))
                .expect("other callbacks keep running");
        }
        assert!(
            outer_rx.recv_timeout(secs(15)).unwrap(),
            "inner callback stranded"
        );
        b.close();
        assert_eq!(reader.join().unwrap().len(), 5000);
    });
}

#[test]
fn a_panicking_waker_does_not_kill_the_engine() {
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    struct Panicky;
    impl Wake for Panicky {
        fn wake(self: Arc<Self>) {
            panic!("waker panics on purpose");
        }
    }
    bounded(secs(20), || {
        let waker = Waker::from(Arc::new(Panicky));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..5 {
            let (ours, mut theirs) = tcp_to_std();
            let ar = ours
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            assert!(ar.poll_completed(&mut cx).is_pending());
            theirs.write_all(b"go").unwrap();
            assert!(
                ar.wait_timeout(secs(5)),
                "completion despite the panicking waker"
            );
            assert_eq!(ours.end_receive(&ar).unwrap().0, 2);
        }
        // The engine still serves everyone else.
        let (a, b) = tcp_pair();
        let r = b
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        a.end_send(&a.begin_send(b"ok", SocketFlags::NONE, None, None).unwrap())
            .unwrap();
        assert_eq!(b.end_receive(&r).unwrap().1, b"ok");
    });
}

#[test]
fn dropping_every_handle_with_operations_in_flight_completes_them() {
    bounded(secs(20), || {
        let (tx, rx) = mpsc::channel();
        let mut results = Vec::new();
        for _ in 0..20 {
            let (ours, _theirs) = tcp_to_std();
            let tx1 = tx.clone();
            results.push(
                ours.begin_receive(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        tx1.send(ar.is_completed()).unwrap();
                    })),
                    None,
                )
                .unwrap(),
            );
            // `ours` (the last handle) goes here, with the receive in flight.
        }
        for _ in 0..20 {
            assert!(rx.recv_timeout(secs(5)).expect("callback after last drop"));
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "exactly once"
        );
        assert!(results.iter().all(AsyncResult::is_completed));
    });
}
