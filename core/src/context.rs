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
//! synchronous completions cannot grow the stack. The queue is shared with the
//! monitor, which moves it to the pool if its worker is stuck in a callback (say, one
//! that waits for another callback queued behind it). A callback that blocks in
//! `end_*` or `wait` moves it to the pool itself, at once ([`before_blocking`]): the
//! operation it waits for may be one that only a callback queued behind it completes
//! (its own continuation sends the request whose reply it waits for), and the monitor
//! would take a period or two to see the worker stuck.
//!
//! # Order: chains run depth-first, a budget at a time
//!
//! A completion that a running callback causes (typically its own next `begin_*`,
//! finished by the fast path) is its *continuation*: it runs next, ahead of older
//! queued callbacks, and a callback's continuations keep the order in which they were
//! begun. After [`CHAIN_BUDGET`] continuations in a row, the next one goes to the back
//! of the queue, so that chains sharing a worker take turns. A send chain thus hands
//! the kernel a burst of sends before the receiving chain drains them in large reads,
//! as tokio's per-task budget does for a task. (Measured with both ends of a 1 KiB
//! bulk transfer on one worker: taking turns one callback at a time, the receiver
//! read each send on its own and the kernel acknowledged each one, 0.2 GiB/s; with
//! this order, 1.2 GiB/s.)
//!
//! # Where callbacks run
//!
//! The worker that polls (the leader) runs the callbacks of the events it finds, and
//! after [`LOCAL_BUDGET`] of them polls again (without blocking while callbacks wait).
//! It keeps the first [`KEEP_LOCAL`] waiting callbacks and hands the rest to the pool
//! for the other workers: a few chains that talk to each other (the two ends of a
//! stream) stay on one thread, where their data stays in its cache and no lock or
//! socket structure bounces between CPUs, while a real backlog (many connections) is
//! shared. It keeps none if the budget took more CPU time than [`LONG_ROUND`]:
//! callbacks that do that much work run in parallel on the other workers instead. Any
//! other worker whose budget runs out gives what is left to the leader if that is at
//! most [`KEEP_LOCAL`] callbacks and the budget was cheap (so a chain begun from a
//! user thread, which starts on a follower, joins the other end of its stream on the
//! leader), and otherwise hands it to the pool.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::op::{Task, TaskSink};
use crate::sys;

/// How many queued callbacks a worker runs in a row before it polls again (the
/// leader) or hands the rest to the pool (any other worker).
const LOCAL_BUDGET: usize = 256;

/// How many continuations in a row run ahead of older callbacks (see the module docs).
const CHAIN_BUDGET: u32 = 64;

/// How many waiting callbacks the leader keeps when its budget runs out (see the
/// module docs).
pub(crate) const KEEP_LOCAL: usize = 4;

/// A budget of callbacks that took more CPU time than this is CPU work, better spread
/// over the workers than kept on one (see the module docs).
const LONG_ROUND: Duration = Duration::from_millis(5);

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

    /// Moves every queued callback of this worker to the pool (the worker is stuck, or
    /// stops polling).
    pub(crate) fn hand_over(&self, sink: &dyn TaskSink) {
        let _ = self.hand_over_after(0, sink);
    }

    /// Moves the queued callbacks of this worker past the first `keep` to the pool;
    /// whether any remain here.
    fn hand_over_after(&self, keep: usize, sink: &dyn TaskSink) -> bool {
        let tasks: Vec<_> = {
            let mut local = self.local.lock();
            if local.len() <= keep {
                return !local.is_empty();
            }
            let tasks = local.drain(keep..).collect();
            trim(&mut local);
            tasks
        };
        sink.post_all(tasks);
        keep > 0
    }

    /// Takes every queued callback of this worker if there are at most `most`.
    fn take_if_few(&self, most: usize) -> Option<Vec<Arc<dyn Task>>> {
        let mut local = self.local.lock();
        let tasks = (local.len() <= most).then(|| local.drain(..).collect());
        trim(&mut local);
        tasks
    }

    /// Queues `tasks` on this worker, behind those already there.
    pub(crate) fn queue_all(&self, tasks: Vec<Arc<dyn Task>>) {
        self.local.lock().extend(tasks);
    }
}

/// What the current worker thread is running, for [`deliver`].
#[derive(Clone, Copy)]
struct Running {
    /// A callback runs (so a completion now is its continuation).
    in_callback: bool,
    /// Continuations the running callback queued so far (they go to the front of the
    /// queue, in this order).
    continuations: usize,
    /// Callbacks run in a row as continuations.
    chain: u32,
}

/// Slots a queue of callbacks keeps once it empties (16 KiB): a burst (thousands of
/// operations completing at once) grows it, and what it grew to beyond this is given
/// back when the burst is over.
pub(crate) const KEPT_TASK_CAPACITY: usize = 1024;

/// Takes the oldest task from `queue`; when that empties a queue a burst has grown,
/// gives the memory back (down to [`KEPT_TASK_CAPACITY`]).
pub(crate) fn pop_trimmed(queue: &mut VecDeque<Arc<dyn Task>>) -> Option<Arc<dyn Task>> {
    let task = queue.pop_front();
    trim(queue);
    task
}

/// Gives back what a burst grew an emptied `queue` to, down to [`KEPT_TASK_CAPACITY`]
/// (a worker's queue handed to the pool in one go empties without a pop).
fn trim(queue: &mut VecDeque<Arc<dyn Task>>) {
    if queue.is_empty() && queue.capacity() > KEPT_TASK_CAPACITY {
        queue.shrink_to(KEPT_TASK_CAPACITY);
    }
}

/// What a worker thread needs of its pool when it is about to block in user code.
pub(crate) trait Pool: TaskSink + Send + Sync {
    /// Worker `id` is about to block: if it polls (leads), polling goes to another
    /// worker now, as the monitor would once it saw the worker stuck.
    fn step_aside(self: Arc<Self>, id: u64);
}

/// A worker thread's own view: its slot, its pool, its id.
struct WorkerView {
    slot: Arc<WorkerSlot>,
    pool: Arc<dyn Pool>,
    id: u64,
}

thread_local! {
    /// This thread's view, if it is an engine worker.
    static CURRENT: RefCell<Option<WorkerView>> = const { RefCell::new(None) };
    static RUNNING: Cell<Running> = const {
        Cell::new(Running { in_callback: false, continuations: 0, chain: 0 })
    };
}

/// Makes the current thread engine worker `id` (a callback thread) with `slot`, whose
/// callbacks go to `pool` when it hands them over.
pub(crate) fn enter_worker(slot: Arc<WorkerSlot>, pool: Arc<dyn Pool>, id: u64) {
    CURRENT.with(|c| *c.borrow_mut() = Some(WorkerView { slot, pool, id }));
}

/// This thread is about to block until an operation completes (`end_*`, `wait`). If it
/// is an engine worker, what the monitor would do once it saw the worker stuck (a
/// period or two later: milliseconds) is done now: the callbacks queued behind the one
/// it runs (typically that callback's own continuations) go to the pool, and if it
/// polls, polling goes to another worker. The operation waited for may be one that only
/// those callbacks complete (a callback that sends the request whose reply this one
/// waits for), and its completion, an event, needs a worker that polls.
pub(crate) fn before_blocking() {
    let view = CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .map(|view| (Arc::clone(&view.slot), Arc::clone(&view.pool), view.id))
    });
    if let Some((slot, pool, id)) = view {
        slot.hand_over(&*pool);
        pool.step_aside(id);
    }
}

/// Arranges for `task` (a completed operation's callback) to run on a callback thread:
/// on this one if it is a worker (next, if a callback running here caused it; see the
/// module docs), else on the pool.
pub(crate) fn deliver(task: Arc<dyn Task>, sink: &dyn TaskSink) {
    let not_a_worker = CURRENT.with(|current| match &*current.borrow() {
        Some(WorkerView { slot, .. }) => {
            let mut running = RUNNING.get();
            let mut local = slot.local.lock();
            if running.in_callback && running.chain < CHAIN_BUDGET {
                // Behind this callback's earlier continuations. They are all still
                // there unless the monitor moved the queue to the pool meanwhile; then
                // this one goes first.
                let at = running.continuations.min(local.len());
                local.insert(at, task);
                running.continuations = at + 1;
                RUNNING.set(running);
            } else {
                local.push_back(task);
            }
            None
        }
        None => Some(task),
    });
    if let Some(task) = not_a_worker {
        sink.post(task);
    }
}

/// Runs the callbacks queued on worker `slot`, up to a budget; if it runs out, deals
/// with those left as `leftover` says (see the module docs). Returns whether callbacks
/// remain on this worker. Call with no lock held.
pub(crate) fn run_local(slot: &WorkerSlot, sink: &dyn TaskSink, leftover: Leftover) -> bool {
    // This thread's CPU time when the second callback starts (a round of one, the usual
    // case, reads no clock). CPU time, not wall time: a round that was merely
    // descheduled on a busy machine is still cheap.
    let mut started = None;
    for run in 0..LOCAL_BUDGET {
        let Some(task) = pop_trimmed(&mut slot.local.lock()) else {
            return false;
        };
        if run == 1 {
            started = sys::thread_cpu_time();
        }
        run_task(task);
        slot.tick();
    }
    let cheap = match (started, sys::thread_cpu_time()) {
        (Some(start), Some(end)) => end.saturating_sub(start) < LONG_ROUND,
        _ => false,
    };
    match leftover {
        Leftover::Keep if cheap => return slot.hand_over_after(KEEP_LOCAL, sink),
        Leftover::ToLeader if cheap => match slot.take_if_few(KEEP_LOCAL) {
            Some(tasks) if !tasks.is_empty() => sink.give_to_leader(tasks),
            Some(_) => {}
            None => slot.hand_over(sink),
        },
        _ => slot.hand_over(sink),
    }
    false
}

/// What a worker does with the callbacks left when its budget runs out (see the module
/// docs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leftover {
    /// The leader: keeps the first [`KEEP_LOCAL`] if the budget was cheap, hands the
    /// rest to the pool.
    Keep,
    /// Any other worker: gives them to the leader if they are few and the budget was
    /// cheap, else hands them to the pool.
    ToLeader,
}

/// Runs one task; a panic (in the callback or in a destructor it triggers) is contained.
/// Completions it causes on a worker are its continuations (see [`deliver`]).
pub(crate) fn run_task(task: Arc<dyn Task>) {
    let chain = RUNNING.get().chain;
    RUNNING.set(Running {
        in_callback: true,
        continuations: 0,
        chain,
    });
    let _ = catch_unwind(AssertUnwindSafe(move || task.run()));
    let ran = RUNNING.get();
    // The next callback to run is a continuation of this one if it queued any.
    let chain = if ran.continuations > 0 {
        ran.chain.saturating_add(1)
    } else {
        0
    };
    RUNNING.set(Running {
        in_callback: false,
        continuations: 0,
        chain,
    });
}
