//! The order in which a worker runs callbacks: what a running callback causes (its
//! continuations, such as its own next `begin_*` finished by the fast path) runs next
//! and in the order it was begun, and a chain of them takes turns with the other
//! callbacks waiting on that worker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use asyncresult_core::{AsyncResult, Socket, SocketFlags};
use common::*;

/// A chain of sends of `payload` on `socket`: each send's callback ends it, then calls
/// `step`, and begins the next send while `step` returns `true`.
fn send_chain<F>(socket: Socket, payload: &'static [u8], mut step: F)
where
    F: FnMut() -> bool + Send + 'static,
{
    let next = socket.clone();
    socket
        .begin_send(
            payload,
            SocketFlags::NONE,
            Some(Box::new(move |ar: AsyncResult<usize>| {
                next.end_send(&ar).unwrap();
                if step() {
                    send_chain(next, payload, step);
                }
            })),
            None,
        )
        .unwrap();
}

/// Runs `body` inside a callback on an engine worker (the callback of a one-byte send
/// that completes at once).
fn in_callback(socket: &Socket, body: impl FnOnce() + Send + 'static) {
    let mut body = Some(body);
    send_chain(socket.clone(), b"x", move || {
        if let Some(body) = body.take() {
            body();
        }
        false
    });
}

#[test]
fn a_callbacks_continuations_run_in_the_order_they_were_begun() {
    bounded(secs(30), || {
        let (a, theirs) = tcp_to_std();
        let reader = read_all_in_background(theirs);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let (a2, order2) = (a.clone(), order.clone());
        in_callback(&a, move || {
            for i in 0..20u8 {
                let (order, done_tx) = (order2.clone(), done_tx.clone());
                a2.begin_send(
                    vec![i; 10],
                    SocketFlags::NONE,
                    Some(Box::new(move |_| {
                        order.lock().unwrap().push((std::thread::current().id(), i));
                        done_tx.send(()).unwrap();
                    })),
                    None,
                )
                .unwrap();
            }
        });
        for _ in 0..20 {
            done_rx.recv_timeout(secs(10)).expect("every callback runs");
        }
        // Each thread ran its callbacks in begin order. (They all run on the worker
        // that ran the first callback, unless the engine's monitor moved that worker's
        // queue to the pool because the worker was descheduled for a whole period; the
        // pool hands them out in order, so each thread's share is still in order.)
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 20);
        let mut last = std::collections::HashMap::new();
        for (thread, i) in order.iter() {
            if let Some(before) = last.insert(*thread, *i) {
                assert!(before < *i, "callback {i} ran after {before}: {order:?}");
            }
        }
        a.close();
        assert_eq!(reader.join().unwrap().len(), 1 + 20 * 10);
    });
}

/// A chain of 5-byte sends that goes on until told to stop (or 10,000 steps), counting
/// its steps, and then says so on `stopped`.
fn stoppable_chain(
    socket: Socket,
    steps: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    stopped: mpsc::Sender<()>,
) {
    send_chain(socket, b"chain", move || {
        let step = steps.fetch_add(1, Ordering::SeqCst) + 1;
        let go_on = !stop.load(Ordering::SeqCst) && step < 10_000;
        if !go_on {
            stopped.send(()).unwrap();
        }
        go_on
    });
}

/// One run of the scenario below: how many steps a send chain had taken when an older
/// callback waiting on the same worker got its turn.
fn steps_before_the_other_callback_ran() -> usize {
    let (a, theirs_a) = tcp_to_std();
    let reader = read_all_in_background(theirs_a);
    let (b, mut theirs_b) = tcp_to_std();
    // Data waits on `b` before the receive begins, so the receive completes at once: it
    // is a continuation too, queued right behind the chain's first send.
    theirs_b.write_all(b"ready").unwrap();
    let steps = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen_rx) = mpsc::channel();
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let (a2, b2) = (a.clone(), b.clone());
    let (steps2, stop2) = (steps.clone(), stop.clone());
    in_callback(&a, move || {
        stoppable_chain(a2, steps2.clone(), stop2.clone(), stopped_tx);
        let b3 = b2.clone();
        b2.begin_receive(
            Vec::with_capacity(16),
            SocketFlags::NONE,
            Some(Box::new(move |ar| {
                let (n, _) = b3.end_receive(&ar).unwrap();
                assert_eq!(n, 5);
                seen_tx.send(steps2.load(Ordering::SeqCst)).unwrap();
                stop2.store(true, Ordering::SeqCst);
            })),
            None,
        )
        .unwrap();
    });
    let seen = seen_rx
        .recv_timeout(secs(10))
        .expect("the receive's callback runs");
    // Every send the chain began has run its callback once it stops.
    stopped_rx.recv_timeout(secs(10)).expect("the chain stops");
    a.close();
    b.close();
    let sent = reader.join().unwrap().len();
    assert_eq!(sent, 1 + 5 * steps.load(Ordering::SeqCst));
    seen
}

#[test]
fn a_chain_of_synchronous_completions_runs_ahead_then_takes_turns() {
    bounded(secs(60), || {
        let seen: Vec<usize> = (0..3)
            .map(|_| steps_before_the_other_callback_ran())
            .collect();
        // Taking turns: never until the chain ends (at 10,000 steps). A turn comes
        // after 64 steps; a run where the monitor moved the chain to another worker
        // while the other callback's thread waited for a CPU can see more, so one run
        // in three must show the turn, and none may come near the chain's end.
        assert!(
            seen.iter().any(|&s| s <= 128) && seen.iter().all(|&s| s < 1_000),
            "the other callback waited too long for its turn: {seen:?} chain steps"
        );
        // Depth-first: the chain's next sends ran before the older callback. (The
        // engine's monitor may hand a worker's queue to another worker if the worker
        // is descheduled for a whole period, which lets the other callback run
        // early; so one run of three is enough.)
        assert!(
            seen.iter().any(|&s| s >= 2),
            "the chain never ran ahead: {seen:?} chain steps"
        );
    });
}

/// This thread's CPU time.
fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "thread CPU clock");
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Spins until this thread has used `work` more CPU time (wall time would count time
/// spent descheduled on a busy machine).
fn burn_cpu(work: std::time::Duration) {
    let until = thread_cpu_time() + work;
    while thread_cpu_time() < until {
        std::hint::spin_loop();
    }
}

/// A chain of `steps` sends whose callbacks each do `work` of CPU work, recording the
/// thread that ran each one, and then say so on `done`.
fn busy_chain(
    socket: Socket,
    work: std::time::Duration,
    mut steps: usize,
    threads: Arc<Mutex<HashSet<std::thread::ThreadId>>>,
    done: mpsc::Sender<()>,
) {
    send_chain(socket, b"busy", move || {
        threads.lock().unwrap().insert(std::thread::current().id());
        burn_cpu(work);
        steps -= 1;
        if steps == 0 {
            done.send(()).unwrap();
        }
        steps > 0
    });
}

#[test]
fn chains_that_keep_the_cpu_busy_spread_over_the_workers() {
    bounded(secs(60), || {
        let (a, theirs_a) = tcp_to_std();
        let reader_a = read_all_in_background(theirs_a);
        let (b, theirs_b) = tcp_to_std();
        let reader_b = read_all_in_background(theirs_b);
        let (c, mut theirs_c) = tcp_to_std();
        // Two chains of callbacks with 150 µs of CPU work each, started from the
        // callback of a receive that an event completes: that callback, and so both
        // chains, begin on the worker that polls.
        let threads = Arc::new(Mutex::new(HashSet::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let (threads2, c2) = (threads.clone(), c.clone());
        c.begin_receive(
            Vec::with_capacity(16),
            SocketFlags::NONE,
            Some(Box::new(move |ar| {
                c2.end_receive(&ar).unwrap();
                let work = std::time::Duration::from_micros(150);
                busy_chain(a, work, 600, threads2.clone(), done_tx.clone());
                busy_chain(b, work, 600, threads2, done_tx);
            })),
            None,
        )
        .unwrap();
        theirs_c.write_all(b"go").unwrap();
        for _ in 0..2 {
            done_rx.recv_timeout(secs(30)).expect("both chains finish");
        }
        // Each budget of 256 callbacks takes over 38 ms of CPU here: the worker that
        // polls does not keep such chains to itself.
        let used = threads.lock().unwrap().len();
        assert!(used >= 2, "CPU-heavy chains ran on {used} thread(s)");
        c.close();
        drop((reader_a, reader_b));
    });
}
