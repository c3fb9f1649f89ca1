//! Where a completed operation's callback runs.
//!
//! A callback runs on a callback thread (an engine worker), never inside the `begin_*`
//! that started its operation and never while any engine lock is held. Completions
//! found by a worker are queued on that worker's own [`WorkerSlot`] and run as soon as
//! it has released its locks: no hand-off to another thread, which is what keeps a
//! request/response loop fast (a cross-thread wake costs tens of microseconds on a
//! small VM). A completion found anywhere else (a user thread whose `begin_*` finished
//! synchronously, a runtime thread draining the poller, `close`, `cancel`) is posted to
//! the worker pool.
//!
//! Callbacks queued on a worker run in a loop, not recursively, so a chain of
//! synchronous completions cannot grow the stack; after a budget the rest go to the
//! pool so that polling keeps its turn. The queue is shared with the monitor, which
//! moves it to the pool if its worker is stuck in a callback (say, one that waits for
//! another callback queued behind it).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::op::{Task, TaskSink};

/// How many queued callbacks a worker runs in a row before handing the rest to the pool.
const LOCAL_BUDGET: usize = 256;

/// One worker's view shared with the monitor: its callback queue and its pulse.
#[derive(Default)]
pub(crate) struct WorkerSlot {
    local: Mutex<VecDeque<Arc<dyn Task>>>,
    /// Set while the worker runs events or user code (not while it sleeps or polls).
    busy: AtomicBool,
    /// Bumped for every socket served and every callback run.
    progress: AtomicU64,
}

impl std::fmt::Debug for WorkerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSlot")
            .field("queued", &self.local.lock().len())
            .field("busy", &self.is_busy())
            .field("progress", &self.progress())
            .finish()
    }
}

impl WorkerSlot {
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Counts progress. Only the slot's own worker calls it, so a load and a store do
    /// (no read-modify-write on every callback); the monitor only reads.
    pub(crate) fn tick(&self) {
        let now = self.progress.load(Ordering::Relaxed);
        self.progress.store(now.wrapping_add(1), Ordering::Relaxed);
    }

    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Moves every queued callback of this worker to the pool (the worker is stuck).
    pub(crate) fn hand_over(&self, sink: &dyn TaskSink) {
        let tasks: Vec<_> = self.local.lock().drain(..).collect();
        if !tasks.is_empty() {
            sink.post_all(tasks);
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<WorkerSlot>>> = const { RefCell::new(None) };
}

/// Makes the current thread an engine worker (a callback thread) with `slot`.
pub(crate) fn enter_worker(slot: Arc<WorkerSlot>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(slot));
}

/// Arranges for `task` (a completed operation's callback) to run on a callback thread.
pub(crate) fn deliver(task: Arc<dyn Task>, sink: &dyn TaskSink) {
    let not_a_worker = CURRENT.with(|current| match &*current.borrow() {
        Some(slot) => {
            slot.local.lock().push_back(task);
            None
        }
        None => Some(task),
    });
    if let Some(task) = not_a_worker {
        sink.post(task);
    }
}

/// Runs the callbacks queued on worker `slot` (up to a budget). Call with no lock held.
pub(crate) fn run_local(slot: &WorkerSlot, sink: &dyn TaskSink) {
    for _ in 0..LOCAL_BUDGET {
        let Some(task) = slot.local.lock().pop_front() else {
            return;
        };
        run_task(task);
        slot.tick();
    }
    // Budget spent: let the pool share the rest (if any) so this worker returns to
    // polling.
    slot.hand_over(sink);
}

/// Runs one task; a panic (in the callback or in a destructor it triggers) is contained.
pub(crate) fn run_task(task: Arc<dyn Task>) {
    let _ = catch_unwind(AssertUnwindSafe(move || task.run()));
}
