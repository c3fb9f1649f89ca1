//! The engine's count of waits, and the gate that lets a runtime's driver stop
//! listening for the engine's events while nothing waits for one.
//!
//! A wait is a direction of a socket with something in its queue: a pending
//! operation, or a parked waker (a stream half's, a future's place). Each queue
//! reports its own changes, under its lock (see `queue::Held`), so the count is exact:
//! it is the number of queues that hold something, whatever completed, cancelled or
//! closed them.
//!
//! An idle engine still has events: every byte that arrives on a socket whose reader
//! is not waiting (a stream read back to back, which never meets `EAGAIN`) raises
//! one. A driver that listens for the engine's descriptor all the time is woken for
//! each, though its drain serves nobody. With async-io, whose reactor is often turned
//! by its own thread on the other CPU, that is a cross-CPU wake-up and a reactor turn
//! per event. A *gated* driver ([`Driver::gate`](crate::driver::Driver::gate)) asks,
//! after each drain, whether anything waits ([`WaitGate::disarm_if_idle`]); if not, it
//! stops listening, and the first queue that starts to wait re-arms it through the
//! hook it gave. Events that come meanwhile stay in the epoll set, and the first drain
//! after the re-arm serves them.
//!
//! No wait is left unserved: the count and whether the driver listens are one atomic
//! word. The driver stops listening with a compare-exchange that succeeds only on a
//! count of 0; a queue that starts to wait adds to the count in one read-modify-write,
//! which also tells it whether the driver had stopped listening. Operations on one
//! word are totally ordered, so either the driver sees the wait, or the wait sees the
//! driver deaf and makes it listen (only one wait does: the one that clears the flag).

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

// loom's under `--cfg loom`: the queue's models check the protocol (see `queue::model`).
use crate::sync::AtomicUsize;

/// [`WaitGate::word`]: the gated driver does not listen.
const DEAF: usize = 1;
/// [`WaitGate::word`]: one wait (the count is the word above the flag).
const ONE_WAIT: usize = 2;

/// The count of waits, and whether the gated driver listens (see the module docs).
#[derive(Debug)]
pub(crate) struct WaitGate {
    /// The count of queues that hold something, times [`ONE_WAIT`], plus [`DEAF`]
    /// while the gated driver does not listen.
    word: AtomicUsize,
    /// The gated driver's hook: makes it listen again.
    rearm: OnceLock<fn()>,
}

impl Default for WaitGate {
    fn default() -> Self {
        WaitGate {
            word: AtomicUsize::new(0),
            rearm: OnceLock::new(),
        }
    }
}

impl WaitGate {
    /// A queue started to wait (called under its lock). Returns the hook to call once
    /// the lock is released if the gated driver must listen again.
    #[inline]
    pub(crate) fn began(&self) -> Option<fn()> {
        let before = self.word.fetch_add(ONE_WAIT, Ordering::AcqRel);
        if before & DEAF == 0 {
            return None;
        }
        // Only the wait that clears the flag calls the hook.
        if self.word.fetch_and(!DEAF, Ordering::AcqRel) & DEAF == 0 {
            return None;
        }
        self.rearm.get().copied()
    }

    /// A queue stopped waiting (called under its lock).
    #[inline]
    pub(crate) fn ended(&self) {
        self.word.fetch_sub(ONE_WAIT, Ordering::AcqRel);
    }

    /// How many queues wait.
    pub(crate) fn waits(&self) -> usize {
        self.word.load(Ordering::Acquire) / ONE_WAIT
    }

    /// Gates the driver whose hook is `rearm`; `false` if a driver is gated already
    /// (one per engine).
    pub(crate) fn gate(&self, rearm: fn()) -> bool {
        self.rearm.set(rearm).is_ok()
    }

    /// Whether the gated driver has stopped listening.
    pub(crate) fn is_deaf(&self) -> bool {
        self.word.load(Ordering::Acquire) & DEAF != 0
    }

    /// Whether a driver is gated.
    pub(crate) fn is_gated(&self) -> bool {
        self.rearm.get().is_some()
    }

    /// For the gated driver, after a drain: stops listening if nothing waits (`true`:
    /// the driver must not register for the next event; the first wait calls its
    /// hook). `false`: something waits, listen on.
    pub(crate) fn disarm_if_idle(&self) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word < ONE_WAIT).then_some(DEAF)
            })
            .is_ok()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static REARMS: AtomicUsize = AtomicUsize::new(0);

    fn rearm() {
        REARMS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn an_ungated_engine_only_counts() {
        let gate = WaitGate::default();
        assert!(gate.began().is_none());
        assert_eq!(gate.waits(), 1);
        gate.ended();
        assert_eq!(gate.waits(), 0);
        assert!(!gate.is_gated());
    }

    #[test]
    fn the_first_wait_after_a_disarm_rearms_once() {
        let gate = WaitGate::default();
        assert!(gate.gate(rearm));
        assert!(!gate.gate(rearm), "one gated driver per engine");
        // Armed from the start: a wait needs no hook.
        assert!(gate.began().is_none());
        assert!(!gate.disarm_if_idle(), "a wait is pending: listen on");
        gate.ended();
        assert!(gate.disarm_if_idle());
        match gate.began() {
            Some(hook) => hook(),
            None => panic!("the first wait re-arms"),
        }
        assert_eq!(REARMS.load(Ordering::SeqCst), 1);
        assert!(gate.began().is_none(), "armed again: no second hook");
        gate.ended();
        gate.ended();
        assert_eq!(gate.waits(), 0);
    }
}
