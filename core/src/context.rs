//! Where a completed operation's callback runs.
//!
//! A callback runs on a callback thread (an engine worker), never inside the `begin_*`
//! that started its operation and never while any engine lock is held. Completions
//! found by a worker are queued on that worker (thread-local) and run as soon as it has
//! released its locks: no hand-off to another thread, which is what keeps a
//! request/response loop fast (a cross-thread wake costs tens of microseconds on a
//! small VM). A completion found anywhere else (a user thread whose `begin_*` finished
//! synchronously, a runtime thread draining the poller, `close`, `cancel`) is posted to
//! the worker pool.
//!
//! Callbacks queued on a worker run in a loop, not recursively, so a chain of
//! synchronous completions cannot grow the stack; after a budget the rest go to the
//! pool so that polling keeps its turn.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::engine::EngineShared;
use crate::op::Task;

/// How many queued callbacks a worker runs in a row before handing the rest to the pool.
const LOCAL_BUDGET: usize = 256;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
    static LOCAL: RefCell<VecDeque<Arc<dyn Task>>> = const { RefCell::new(VecDeque::new()) };
}

/// Marks the current thread as an engine worker (a callback thread).
pub(crate) fn enter_worker() {
    IS_WORKER.with(|w| w.set(true));
}

/// Whether the current thread is an engine worker.
pub(crate) fn is_worker() -> bool {
    IS_WORKER.with(|w| w.get())
}

/// Arranges for `task` (a completed operation's callback) to run on a callback thread.
pub(crate) fn deliver(task: Arc<dyn Task>, engine: &EngineShared) {
    if is_worker() {
        LOCAL.with(|q| q.borrow_mut().push_back(task));
    } else {
        engine.post(task);
    }
}

/// Runs the callbacks queued on this worker; returns how many ran. Call with no lock
/// held. `on_each` is told after every callback (the engine's progress mark).
pub(crate) fn run_local(engine: &EngineShared, on_each: &dyn Fn()) -> usize {
    let mut ran = 0;
    loop {
        let next = LOCAL.with(|q| q.borrow_mut().pop_front());
        let Some(task) = next else {
            return ran;
        };
        if ran == LOCAL_BUDGET {
            // Let the pool share the rest so this worker returns to polling.
            engine.post(task);
            while let Some(task) = LOCAL.with(|q| q.borrow_mut().pop_front()) {
                engine.post(task);
            }
            return ran;
        }
        run_task(task);
        ran += 1;
        on_each();
    }
}

/// Runs one task; a panic (in the callback or in a destructor it triggers) is contained.
pub(crate) fn run_task(task: Arc<dyn Task>) {
    let _ = catch_unwind(AssertUnwindSafe(move || task.run()));
}
