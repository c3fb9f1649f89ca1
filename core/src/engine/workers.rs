//! The engine's worker threads: pollers and callback threads in one pool
//! (leader/follower).
//!
//! One worker at a time is the *leader*: it blocks in `epoll_wait`, runs the
//! operations that the events unblock and then, with no lock held, the callbacks of
//! what completed, and goes back to `epoll_wait`. Running its own completions keeps a
//! request/response exchange on one thread: the reply's event is usually already in
//! the epoll set when the leader returns to it, so nothing sleeps and nothing is
//! handed across threads. The other workers (*followers*) sleep on a condition
//! variable and run callbacks posted from outside the pool (a `begin_*` that completed
//! synchronously on a user thread, completions found by a runtime driver, `close`,
//! `cancel`) and those the leader hands over. A follower gives the few cheap callbacks
//! left after its budget to the leader (see [`context`]).
//!
//! The leader runs a budget of callbacks per round, then polls again, without blocking
//! while callbacks wait; it keeps a few of those for its next round (so that the two
//! ends of a stream keep sharing one thread) and hands the rest to the followers (see
//! [`context`] for the order and the numbers). When it stops leading, whatever it kept
//! goes to the pool.
//!
//! While events come close together, the leader polls without blocking for a moment
//! ([`SPIN`]) before it blocks: a stream of events (a bulk transfer, say) is then
//! served without the leader sleeping and the sender's `send` paying to wake it for
//! each bit of data. A spin that finds nothing turns spinning off until events come
//! close together again, so sparse traffic pays for one spin at most.
//!
//! A callback that blocks or runs long must not stall every other socket: the
//! [`monitor`](super::monitor) sees a leader that has made no progress for a period and
//! hands polling to a follower (starting one if none is idle), and moves the callbacks
//! queued behind a stuck worker to the pool. The stuck leader, back from user code,
//! finds it is no longer the leader and becomes a follower. The pool starts
//! [`BASE_WORKERS`] threads and grows only when a worker looks stuck, up to
//! [`MAX_WORKERS`]; while it holds more than its base, a follower idle for
//! [`IDLE_RETIRE`] retires, whichever thread it is (one of the first or one added), so
//! that once idle the pool is back to exactly its base: the leader, whichever thread
//! leads, never has to give polling up for that. Sockets
//! never add threads. "Looks stuck" is all the monitor can see: a callback that
//! blocks, but also, on a machine with more runnable threads than cores, a worker that
//! got no CPU for a whole period or waited that long for a lock whose holder got none.
//! So a load that saturates the cores (a thousand connections' callbacks on two, say)
//! can grow the pool well past the base until the load ends (tens of threads in the
//! bench's callback fan-in).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{EngineShared, EVENTS_PER_WAIT};
use crate::context::{self, WorkerSlot};
use crate::op::Task;
use crate::queue::Completed;
use crate::socket::SocketCore;
use crate::sys::{EventBuffer, EventFd};

/// Workers started with the engine: a leader and one follower for posted callbacks. The
/// pool never retires below this count.
pub(crate) const BASE_WORKERS: usize = 2;
/// The most workers the pool grows to when callbacks block.
pub(crate) const MAX_WORKERS: usize = 128;
/// How long a follower stays idle before it retires while the pool holds more than
/// [`BASE_WORKERS`].
pub(crate) const IDLE_RETIRE: Duration = Duration::from_secs(10);
/// How long the leader keeps polling without blocking after a round that found events,
/// while events come closer together than this. Blocking and being woken again costs
/// the thread whose send wakes the leader (and the leader) about as much as 25 µs of
/// polling on a small VM, so a stream of events is served without either paying it;
/// a spin that finds nothing stops the spinning until a blocking wait is again woken
/// within this time, so sparse events cost one spin at most.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

struct PoolState {
    tasks: VecDeque<Arc<dyn Task>>,
    /// Callbacks given to the leader (cheap chains gather on its thread; see
    /// `context`), taken by it at its next round, or moved to `tasks` when it stops
    /// leading.
    for_leader: Vec<Arc<dyn Task>>,
    idle: usize,
    workers: usize,
    next_id: u64,
}

/// The pool's shared state.
pub(crate) struct Workers {
    state: Mutex<PoolState>,
    cond: Condvar,
    /// Tasks queued in `state.tasks` (readable without the lock).
    posted: AtomicUsize,
    /// Tasks taken from the queue so far (the monitor's sign of life of the pool).
    taken: AtomicU64,
    /// Tasks in `state.for_leader` (readable without the lock).
    for_leader: AtomicUsize,
    /// The id of the leader, 0 if none.
    leader: AtomicU64,
    /// How many workers are (about to be) blocked in `epoll_wait`: the leader, and
    /// for a moment perhaps a leader the monitor replaced while it went back to wait
    /// (it read the leader busy, and took polling away once it had finished its round).
    /// A count, not a flag: with a flag, the replaced leader woken from its wait cleared
    /// it while the new leader still slept in its own, and what was then given to the
    /// new leader woke nobody (a chain of callbacks stalled until an unrelated event).
    waiting_pollers: AtomicUsize,
    /// Every running worker's slot, by id, for the monitor.
    slots: Mutex<Vec<(u64, Arc<WorkerSlot>)>>,
    /// The monitor thread and whether it sleeps without a timeout.
    monitor: Mutex<Option<Thread>>,
    monitor_parked: AtomicBool,
    /// Set when the engine could not start all of its threads: the workers already
    /// started leave (see [`Workers::stop`]).
    stopped: AtomicBool,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Workers")
            .field("workers", &state.workers)
            .field("idle", &state.idle)
            .field("posted", &state.tasks.len())
            .finish()
    }
}

impl Workers {
    pub(crate) fn new() -> Workers {
        Workers {
            state: Mutex::new(PoolState {
                tasks: VecDeque::new(),
                for_leader: Vec::new(),
                idle: 0,
                workers: 0,
                next_id: 1,
            }),
            cond: Condvar::new(),
            posted: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            for_leader: AtomicUsize::new(0),
            leader: AtomicU64::new(0),
            waiting_pollers: AtomicUsize::new(0),
            slots: Mutex::new(Vec::new()),
            monitor: Mutex::new(None),
            monitor_parked: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        }
    }

    /// Tells every worker to leave: the followers are woken, the leader is kicked out
    /// of `epoll_wait` (through `wake`). For an engine whose start failed part-way, so
    /// that the threads it did start do not outlive it (with its descriptors).
    pub(crate) fn stop(&self, wake: &EventFd) {
        self.stopped.store(true, Ordering::SeqCst);
        {
            // Under the lock: a follower checks the flag under it before it waits.
            let _state = self.state.lock();
            self.cond.notify_all();
        }
        wake.notify();
    }

    /// Takes worker `id` off the pool's books: it leaves (retired, stopped, or
    /// unwound).
    fn off_the_books(&self, state: &mut PoolState, id: u64) {
        state.workers -= 1;
        self.slots.lock().retain(|(slot_id, _)| *slot_id != id);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Queues a callback for a worker. Wakes an idle follower; failing that, the
    /// leader (through the engine's eventfd) and the monitor, which adds a worker if
    /// the queue does not move.
    pub(crate) fn post(&self, task: Arc<dyn Task>, wake: &EventFd) {
        self.post_all([task], wake);
    }

    /// [`post`](Workers::post) for several tasks, in order, under one lock and with one
    /// wake (a woken follower wakes the next while tasks remain).
    pub(crate) fn post_all(&self, tasks: impl IntoIterator<Item = Arc<dyn Task>>, wake: &EventFd) {
        let mut state = self.state.lock();
        let before = state.tasks.len();
        state.tasks.extend(tasks);
        let added = state.tasks.len() - before;
        if added == 0 {
            return;
        }
        self.posted.fetch_add(added, Ordering::SeqCst);
        if state.idle > 0 {
            self.cond.notify_one();
            return;
        }
        drop(state);
        if self.leader_waits() {
            wake.notify();
        }
        self.wake_monitor();
    }

    /// Gives `tasks` to the leader, waking it if it sleeps in `epoll_wait`; posts them
    /// to the pool if no worker leads (a runtime driver polls, or the leader was
    /// replaced). Checked under the pool's lock, which a leader also takes when it
    /// stops leading (after giving up the role) to move what it was given to the pool:
    /// nothing given is stranded.
    pub(crate) fn give_to_leader(&self, tasks: Vec<Arc<dyn Task>>, wake: &EventFd) {
        let mut state = self.state.lock();
        if self.leader.load(Ordering::SeqCst) == 0 {
            drop(state);
            self.post_all(tasks, wake);
            return;
        }
        state.for_leader.extend(tasks);
        self.for_leader
            .store(state.for_leader.len(), Ordering::SeqCst);
        drop(state);
        if self.leader_waits() {
            wake.notify();
        }
    }

    /// A leader is about to block in `epoll_wait` (then it looks for work once more).
    fn enter_wait(&self) {
        self.waiting_pollers.fetch_add(1, Ordering::SeqCst);
    }

    /// A leader is back from `epoll_wait`.
    fn leave_wait(&self) {
        self.waiting_pollers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a leader is (about to be) blocked in `epoll_wait`, so that work for it
    /// needs a wake through the eventfd.
    fn leader_waits(&self) -> bool {
        self.waiting_pollers.load(Ordering::SeqCst) > 0
    }

    /// Whether callbacks wait for the leader: posted to the pool (it takes one per
    /// round) or given to it.
    fn work_for_leader(&self) -> bool {
        self.posted.load(Ordering::SeqCst) > 0 || self.for_leader.load(Ordering::SeqCst) > 0
    }

    /// The leader's turn to take what it was given (nothing to lock when empty).
    fn take_for_leader(&self) -> Vec<Arc<dyn Task>> {
        if self.for_leader.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.drain_for_leader(&mut self.state.lock())
    }

    /// Empties what was given to the leader (the caller holds the pool's lock).
    fn drain_for_leader(&self, state: &mut PoolState) -> Vec<Arc<dyn Task>> {
        self.for_leader.store(0, Ordering::SeqCst);
        std::mem::take(&mut state.for_leader)
    }

    /// A worker that stopped leading posts what was given to the leader to the pool
    /// (a new leader finds nothing of it; any worker may run it).
    fn release_for_leader(&self, wake: &EventFd) {
        // Under the lock, even when nothing seems given: see `give_to_leader`.
        let given = self.drain_for_leader(&mut self.state.lock());
        self.post_all(given, wake);
    }

    /// Takes one posted task, if any.
    fn pop_task(&self) -> Option<Arc<dyn Task>> {
        if self.posted.load(Ordering::SeqCst) == 0 {
            return None;
        }
        self.take_locked(&mut self.state.lock())
    }

    /// Takes one posted task from the locked `state`, keeping the counters in step.
    fn take_locked(&self, state: &mut PoolState) -> Option<Arc<dyn Task>> {
        let task = context::pop_trimmed(&mut state.tasks);
        if task.is_some() {
            self.posted.fetch_sub(1, Ordering::SeqCst);
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        task
    }

    pub(crate) fn posted(&self) -> usize {
        self.posted.load(Ordering::SeqCst)
    }

    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    pub(crate) fn leader(&self) -> u64 {
        self.leader.load(Ordering::SeqCst)
    }

    /// Every worker's slot, for the monitor.
    pub(crate) fn slots(&self) -> Vec<(u64, Arc<WorkerSlot>)> {
        self.slots.lock().clone()
    }

    /// Whether any worker is busy (serving events or running user code).
    pub(crate) fn any_busy(&self) -> bool {
        self.slots.lock().iter().any(|(_, slot)| slot.is_busy())
    }

    /// How many workers are running.
    pub(crate) fn count(&self) -> usize {
        self.state.lock().workers
    }

    /// Takes polling away from leader `id` (stuck in user code) and gives it to an
    /// idle follower, or to a new worker if none is idle.
    pub(crate) fn replace_leader(&self, engine: &Arc<EngineShared>, id: u64) {
        if self
            .leader
            .compare_exchange(id, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let _ = self.add_worker_unless_idle(engine);
        }
    }

    /// Wakes an idle worker, or starts one (up to [`MAX_WORKERS`]) if none is idle;
    /// `false` if neither could be done (every worker busy at the cap, or no thread
    /// could be started).
    pub(crate) fn add_worker_unless_idle(&self, engine: &Arc<EngineShared>) -> bool {
        let mut state = self.state.lock();
        if state.idle > 0 {
            self.cond.notify_one();
            true
        } else if state.workers < MAX_WORKERS {
            // Detached: a worker retires on its own. Started only with no follower
            // idle, so none waits without a timeout while the pool is above its base.
            spawn(engine, &mut state).is_ok()
        } else {
            false
        }
    }

    /// Called when the last runtime driver detaches: a follower takes up polling.
    pub(crate) fn resume_polling(&self) {
        let _state = self.state.lock();
        self.cond.notify_one();
    }

    pub(crate) fn set_monitor(&self, thread: Thread) {
        *self.monitor.lock() = Some(thread);
    }

    /// Wakes the monitor if it sleeps without a timeout.
    pub(crate) fn wake_monitor(&self) {
        if self.monitor_parked.load(Ordering::SeqCst) {
            if let Some(thread) = self.monitor.lock().as_ref() {
                thread.unpark();
            }
        }
    }

    /// The monitor's "I am going to sleep without a timeout" flag.
    pub(crate) fn set_monitor_parked(&self, parked: bool) {
        self.monitor_parked.store(parked, Ordering::SeqCst);
    }
}

/// Starts the base workers; their threads, to be [stopped](Workers::stop) and joined if
/// the engine's start fails later. If one cannot be started, those already started are
/// stopped and joined before the error returns.
pub(crate) fn start(engine: &Arc<EngineShared>) -> io::Result<Vec<JoinHandle<()>>> {
    let mut started = Vec::with_capacity(BASE_WORKERS);
    let mut state = engine.workers.state.lock();
    for _ in 0..BASE_WORKERS {
        match spawn(engine, &mut state) {
            Ok(handle) => started.push(handle),
            Err(e) => {
                drop(state);
                stop_and_join(engine, started);
                return Err(e);
            }
        }
    }
    Ok(started)
}

/// Stops the workers of an engine whose start failed and waits until their threads
/// have let go of it.
pub(crate) fn stop_and_join(engine: &EngineShared, started: Vec<JoinHandle<()>>) {
    engine.workers.stop(&engine.wake);
    for handle in started {
        let _ = handle.join();
    }
}

fn spawn(engine: &Arc<EngineShared>, state: &mut PoolState) -> io::Result<JoinHandle<()>> {
    let id = state.next_id;
    let slot = Arc::new(WorkerSlot::default());
    let worker = Worker {
        engine: Arc::clone(engine),
        slot: Arc::clone(&slot),
        id,
    };
    let handle = std::thread::Builder::new()
        .name(format!("asyncresult-worker-{id}"))
        .spawn(move || worker.run())?;
    engine.workers.slots.lock().push((id, slot));
    state.next_id += 1;
    state.workers += 1;
    Ok(handle)
}

/// One worker thread.
struct Worker {
    engine: Arc<EngineShared>,
    slot: Arc<WorkerSlot>,
    id: u64,
}

/// Takes a worker that unwinds off the pool's books (user code runs under
/// `catch_unwind`, so only a bug of the engine's own gets here): its slot goes, the
/// count drops, and if it led, polling goes to another worker.
struct OffTheBooksOnUnwind<'a>(&'a Worker);

impl Drop for OffTheBooksOnUnwind<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let worker = self.0;
        let workers = &worker.engine.workers;
        workers.off_the_books(&mut workers.state.lock(), worker.id);
        workers.replace_leader(&worker.engine, worker.id);
    }
}

impl Worker {
    fn run(self) {
        let _books = OffTheBooksOnUnwind(&self);
        context::enter_worker(
            Arc::clone(&self.slot),
            Arc::clone(&self.engine) as Arc<dyn context::Pool>,
            self.id,
        );
        let engine = &self.engine;
        let workers = &engine.workers;
        let mut events = EventBuffer::new(EVENTS_PER_WAIT);
        let mut completed: Completed<SocketCore> = Completed::new();
        let mut state = workers.state.lock();
        // Whether this worker's last wait as a follower ran out (see below).
        let mut idled_out = false;
        loop {
            if workers.is_stopped() {
                workers.off_the_books(&mut state, self.id);
                return;
            }
            if let Some(task) = workers.take_locked(&mut state) {
                idled_out = false;
                if !state.tasks.is_empty() && state.idle > 0 {
                    workers.cond.notify_one();
                }
                drop(state);
                self.slot.set_busy(true);
                workers.wake_monitor();
                self.run_posted(task, context::Leftover::ToLeader);
                self.slot.set_busy(false);
                state = workers.state.lock();
                continue;
            }
            if engine.workers_poll()
                && workers
                    .leader
                    .compare_exchange(0, self.id, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                idled_out = false;
                drop(state);
                self.lead(&mut events, &mut completed);
                // No longer polling: callbacks kept for the next round, or given to the
                // leader, go to the pool.
                self.slot.hand_over(&**engine);
                workers.release_for_leader(&engine.wake);
                state = workers.state.lock();
                continue;
            }
            // Idle for a whole `IDLE_RETIRE`, no task queued and no polling to take
            // up (checked above, under the lock held since the wait ended): retire
            // if the pool is still above its base. Any follower may go, started with
            // the engine or added since: the leader need not give up polling to get
            // the pool back to its base, so no moment passes without one.
            if idled_out && state.workers > BASE_WORKERS {
                workers.off_the_books(&mut state, self.id);
                return;
            }
            state.idle += 1;
            // A follower waits for good only at the base count: the pool grows only
            // while no follower is idle (see `add_worker_unless_idle`), so every
            // follower waiting while it is above its base waits with a timeout.
            idled_out = if state.workers > BASE_WORKERS {
                workers.cond.wait_for(&mut state, IDLE_RETIRE).timed_out()
            } else {
                workers.cond.wait(&mut state);
                false
            };
            state.idle -= 1;
        }
    }

    /// Runs a task taken from the pool, then the callbacks it queued on this worker (up
    /// to a budget; see `context::run_local`); whether callbacks remain on this worker.
    fn run_posted(&self, task: Arc<dyn Task>, leftover: context::Leftover) -> bool {
        context::run_task(task);
        self.slot.tick();
        context::run_local(&self.slot, &*self.engine, leftover)
    }

    /// Polls without blocking for up to [`SPIN`]: what a poll found once it found
    /// events (or failed) or a callback waits for the leader; `None` if the time ran
    /// out first.
    fn spin(&self, events: &mut EventBuffer) -> Option<io::Result<usize>> {
        let workers = &self.engine.workers;
        let until = Instant::now() + SPIN;
        loop {
            let found = events.wait(self.engine.epoll_fd(), 0);
            if !matches!(found, Ok(0)) || workers.work_for_leader() {
                return Some(found);
            }
            if Instant::now() >= until {
                return None;
            }
        }
    }

    /// Polls and serves events while this worker is the leader.
    fn lead(&self, events: &mut EventBuffer, completed: &mut Completed<SocketCore>) {
        let engine = &self.engine;
        let workers = &engine.workers;
        let slot = &self.slot;
        let tick = || slot.tick();
        // Whether the last round found events, and whether recent events came closer
        // together than [`SPIN`] (see there).
        let (mut found_last, mut spin) = (false, false);
        // Whether callbacks wait in this worker's own queue (kept from the last round,
        // or given to it). Only this thread adds to that queue, so this is exact; the
        // monitor may empty it, which costs one needless non-blocking poll.
        let mut kept = false;
        loop {
            if !engine.workers_poll() || workers.is_stopped() {
                // A runtime drains the poller now (or the engine is stopping); step
                // aside.
                let _ =
                    workers
                        .leader
                        .compare_exchange(self.id, 0, Ordering::SeqCst, Ordering::SeqCst);
                return;
            }
            let given = workers.take_for_leader();
            if !given.is_empty() {
                slot.queue_all(given);
                kept = true;
            }
            let spun = if kept {
                // Callbacks kept from the last round wait: look, but do not wait.
                Some(events.wait(engine.epoll_fd(), 0))
            } else if found_last && spin {
                let spun = self.spin(events);
                // Nothing came within the spin: block from now on, until events come
                // close together again.
                spin = spun.is_some();
                spun
            } else {
                None
            };
            // What the spin found (events, or a posted callback to run) is this
            // round's; otherwise block.
            let result = spun.unwrap_or_else(|| {
                workers.enter_wait();
                let timeout = if workers.work_for_leader() { 0 } else { -1 };
                let blocked = Instant::now();
                let result = events.wait(engine.epoll_fd(), timeout);
                workers.leave_wait();
                if matches!(result, Ok(n) if n > 0) && blocked.elapsed() < SPIN {
                    // Spinning would have caught this one: spin after the next round.
                    spin = true;
                }
                result
            });
            if matches!(result, Ok(n) if n > 0) && !engine.workers_poll() {
                // A runtime driver attached while this worker waited (its kick is what
                // woke it): the socket events it took are the runtime's to serve.
                engine.hand_back(events);
                continue;
            }
            found_last = matches!(result, Ok(n) if n > 0);
            slot.set_busy(true);
            workers.wake_monitor();
            if result.is_err() {
                // Not expected for an epoll set we own; do not spin.
                std::thread::yield_now();
            }
            engine.dispatch(events, completed, &tick);
            kept = context::run_local(slot, &**engine, context::Leftover::Keep);
            // One posted callback per round, so steady I/O cannot starve the queue.
            if let Some(task) = workers.pop_task() {
                kept = self.run_posted(task, context::Leftover::Keep);
            }
            slot.set_busy(false);
            tick();
            if workers.leader.load(Ordering::SeqCst) != self.id {
                // The monitor handed polling to another worker while we were busy.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl Task for Nothing {
        fn run(self: Arc<Self>) {}
    }

    /// The monitor may replace a leader that it read busy after that leader went back
    /// to `epoll_wait`: then two workers wait there, the old leader and the new one. The
    /// old one woken (an event) must not hide that the new one still waits: what is
    /// given or posted to the leader then wakes it. (With one shared flag it did not,
    /// and a million-step chain of callbacks stalled until an unrelated event came.)
    #[test]
    fn a_replaced_leader_back_from_its_wait_does_not_hide_the_new_leaders_wait(
    ) -> std::io::Result<()> {
        let workers = Workers::new();
        let wake = EventFd::new()?;
        workers.enter_wait(); // the old leader, 1, blocks again...
        workers.leader.store(2, Ordering::SeqCst); // ...the monitor replaces it by 2...
        workers.enter_wait(); // ...which blocks too;
        workers.leave_wait(); // an event wakes 1, which finds it no longer leads.
        workers.give_to_leader(vec![Arc::new(Nothing)], &wake);
        assert!(
            wake.drain(),
            "what was given to the waiting leader woke nobody"
        );
        workers.post(Arc::new(Nothing), &wake);
        assert!(
            wake.drain(),
            "what was posted (no follower idle) woke nobody"
        );
        workers.leave_wait();
        workers.give_to_leader(vec![Arc::new(Nothing)], &wake);
        assert!(!wake.drain(), "no leader waits: nothing to wake");
        Ok(())
    }

    #[test]
    fn a_burst_gives_back_the_queue_it_grew() -> std::io::Result<()> {
        let workers = Workers::new();
        let wake = EventFd::new()?;
        let burst = (0..20_000).map(|_| Arc::new(Nothing) as Arc<dyn Task>);
        workers.post_all(burst, &wake);
        assert!(workers.state.lock().tasks.capacity() >= 20_000);
        let mut taken = 0;
        while workers.pop_task().is_some() {
            taken += 1;
        }
        assert_eq!(taken, 20_000);
        assert!(workers.state.lock().tasks.capacity() <= context::KEPT_TASK_CAPACITY);
        Ok(())
    }
}
