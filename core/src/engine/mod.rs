//! The engine: one `polling::Poller` (an epoll set) that every socket joins once,
//! edge-triggered for both directions, and the threads and hooks that drain it.
//!
//! Draining means taking ready events off the set and, for each, running the socket's
//! queued operations of the ready direction(s) until they would block
//! ([`SocketCore::on_ready`]). Completions are notified on the draining thread, after
//! every lock is released. Any thread may drain, and several may at once (the kernel
//! hands each event to one of them):
//!
//! - the engine's workers (see [`workers`]): one *leader* blocks in `epoll_wait` and
//!   runs the callbacks it completes itself; a monitor hands polling to another worker
//!   when the leader is stuck in user code;
//! - a runtime's thread, through [`Driver`](crate::driver::Driver): an adapter
//!   registers the epoll descriptor with its runtime's reactor and drains when it is
//!   readable, so futures complete on the runtime's own threads with no cross-thread
//!   wake. While a driver is attached the workers stop polling (a blocked worker would
//!   win every event) and only watch for a runtime that stopped draining.

pub(crate) mod monitor;
pub(crate) mod registry;
pub(crate) mod wait_gate;
pub(crate) mod workers;

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use polling::{Event, PollMode, Poller};

use crate::error::Error;
use crate::op::{Task, TaskSink};
use crate::queue::Completed;
use crate::socket::SocketCore;
use crate::sys::{self, EventBuffer, EventFd};
use crate::transport::Transport;

use registry::{Registry, WAKE_KEY};
use wait_gate::WaitGate;
use workers::Workers;

/// What [`EngineShared::enroll`] does.
#[derive(Clone, Copy)]
enum Enroll {
    /// A first registration.
    Add,
    /// The same registration again (`EPOLL_CTL_MOD`).
    Again,
}

/// Events taken off the poller per `epoll_wait`.
pub(crate) const EVENTS_PER_WAIT: usize = 256;

/// State shared by everything that belongs to one engine.
pub(crate) struct EngineShared {
    poller: Poller,
    wake: EventFd,
    registry: Registry,
    workers: Workers,
    drivers: AtomicUsize,
    drains: AtomicU64,
    /// Drivers are attached but none drained while events waited (say the only one
    /// is a current-thread runtime that nobody is blocking on): the workers poll
    /// until a driver drains again (see [`stall_drivers`](Self::stall_drivers)).
    drivers_stalled: AtomicBool,
    /// Drains the monitor made for drivers that did not (diagnostics and tests).
    monitor_drains: AtomicU64,
    /// The count of waits, and the gated driver's state (see [`wait_gate`]).
    wait_gate: WaitGate,
}

impl TaskSink for EngineShared {
    /// Hands a callback to the worker pool.
    fn post(&self, task: Arc<dyn Task>) {
        self.workers.post(task, &self.wake);
    }

    /// Hands several callbacks to the worker pool at once (one lock, one wake).
    fn post_all(&self, tasks: Vec<Arc<dyn Task>>) {
        self.workers.post_all(tasks, &self.wake);
    }

    /// Hands callbacks to the leader (the pool if there is none).
    fn give_to_leader(&self, tasks: Vec<Arc<dyn Task>>) {
        self.workers.give_to_leader(tasks, &self.wake);
    }
}

impl crate::context::Pool for EngineShared {
    /// Hands polling to another worker if worker `id` leads (it is about to block).
    fn step_aside(self: Arc<Self>, id: u64) {
        if self.workers.leader() == id {
            self.workers.replace_leader(&self, id);
        }
    }
}

impl std::fmt::Debug for EngineShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("epoll_fd", &self.poller.as_raw_fd())
            .field("registry", &self.registry)
            .field("drivers", &self.drivers.load(Ordering::Relaxed))
            .finish()
    }
}

static GLOBAL: OnceLock<Arc<EngineShared>> = OnceLock::new();
static GLOBAL_INIT: Mutex<()> = Mutex::new(());

/// Set in a child process forked after the engine started (a `pthread_atfork` child
/// handler): the engine's threads do not exist there, and its epoll set is the
/// parent's own (a forked descriptor shares it), so the child must neither wait on it
/// nor take events off it (each would be the parent's, lost to the parent).
static FORKED: AtomicBool = AtomicBool::new(false);

/// How long a forked child tries a lock of the engine that a thread of the parent may
/// have held at the fork (held for good, then) before it does without.
const FORKED_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// The `pthread_atfork` child handler: async-signal-safe (one atomic store).
extern "C" fn forked_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Whether this process was forked from the one that started the engine.
#[inline]
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// The error of a forked child that uses the library (see [`FORKED`]).
pub(crate) fn forked_error() -> Error {
    Error::Socket(io::Error::new(
        io::ErrorKind::Unsupported,
        "this process was forked after its parent started the asyncresult engine; \
         the engine (its threads and epoll set) belongs to the parent and cannot be used here",
    ))
}

thread_local! {
    /// Buffers for drains by threads that are not workers (runtime threads).
    static SCRATCH: RefCell<Option<(EventBuffer, Completed<SocketCore>)>> =
        const { RefCell::new(None) };
}

impl EngineShared {
    /// The process-wide engine, started on first use.
    ///
    /// In a child forked after the engine started: an error (see [`FORKED`]).
    pub(crate) fn global() -> Result<Arc<EngineShared>, Error> {
        if let Some(engine) = GLOBAL.get() {
            if forked() {
                return Err(forked_error());
            }
            return Ok(Arc::clone(engine));
        }
        let _guard = GLOBAL_INIT.lock();
        if let Some(engine) = GLOBAL.get() {
            return Ok(Arc::clone(engine));
        }
        let engine = EngineShared::start()?;
        // Once per process (the engine starts once): a child forked from now on
        // knows that the engine is not its own.
        // SAFETY: registers an async-signal-safe child handler (one atomic store).
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        let _ = GLOBAL.set(Arc::clone(&engine));
        Ok(engine)
    }

    /// The process-wide engine if it has been started (no reference counting: for hot
    /// paths); `None` in a child forked after it started.
    pub(crate) fn started() -> Option<&'static EngineShared> {
        GLOBAL.get().filter(|_| !forked()).map(|engine| &**engine)
    }

    /// Creates an engine and starts its threads.
    fn start() -> io::Result<Arc<EngineShared>> {
        let poller = Poller::new()?;
        let wake = EventFd::new()?;
        // SAFETY: `wake` lives in the same `EngineShared` as the poller and is declared
        // after it, so the poller (and its epoll set) is dropped first; the kernel drops
        // a registration when either descriptor closes.
        unsafe {
            poller.add_with_mode(wake.as_raw_fd(), Event::readable(WAKE_KEY), PollMode::Edge)?;
        }
        let engine = Arc::new(EngineShared {
            poller,
            wake,
            registry: Registry::new(),
            workers: Workers::new(),
            drivers: AtomicUsize::new(0),
            drains: AtomicU64::new(0),
            drivers_stalled: AtomicBool::new(false),
            monitor_drains: AtomicU64::new(0),
            wait_gate: WaitGate::default(),
        });
        // A start that fails part-way (no thread can be created just now) takes down
        // the threads it started, so that they do not keep this engine (its epoll set
        // and eventfds) alive for good: the next first use tries afresh.
        let started = workers::start(&engine)?;
        if let Err(e) = monitor::start(&engine) {
            workers::stop_and_join(&engine, started);
            return Err(e);
        }
        Ok(engine)
    }

    /// The epoll descriptor that every socket of this engine is registered with.
    pub(crate) fn epoll_fd(&self) -> RawFd {
        self.poller.as_raw_fd()
    }

    pub(crate) fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Makes `socket` non-blocking and registers it, edge-triggered for both directions
    /// (a TCP socket also for the end of its receive side, `EPOLLRDHUP`).
    pub(crate) fn register(
        self: &Arc<Self>,
        socket: socket2::Socket,
        transport: Transport,
    ) -> Result<Arc<SocketCore>, Error> {
        socket.set_nonblocking(true)?;
        let core = self
            .registry
            .insert(|key| Arc::new(SocketCore::new(key, socket, Arc::clone(self), transport)))?;
        // SAFETY: the descriptor is owned by `core` and stays open as long as `core`
        // lives; `SocketCore::close` deletes it from the poller (and the error path
        // below never added it), and `core` cannot be dropped while it is in the
        // registry, which only `close` leaves.
        if let Err(e) = unsafe { self.enroll(&core, Enroll::Add) } {
            self.registry.remove(core.key());
            return Err(e.into());
        }
        Ok(core)
    }

    /// Registers `core` in the poller, edge-triggered for both directions (a TCP
    /// socket also for the end of its receive side, `EPOLLRDHUP`, see `sys::add_tcp`),
    /// or registers it again with that interest ([`Enroll::Again`]), which has the
    /// kernel queue its events afresh for whatever holds now.
    ///
    /// # Safety
    ///
    /// As for polling's `add`: the descriptor must be deleted from the poller before
    /// it is closed.
    unsafe fn enroll(&self, core: &SocketCore, how: Enroll) -> io::Result<()> {
        let (fd, key) = (core.fd(), core.key());
        match (core.transport() == Transport::Tcp, how) {
            // SAFETY: the caller's contract.
            (true, Enroll::Add) => unsafe { sys::add_tcp(self.epoll_fd(), fd.as_raw_fd(), key) },
            // SAFETY: the caller's contract.
            (true, Enroll::Again) => unsafe {
                sys::rearm_tcp(self.epoll_fd(), fd.as_raw_fd(), key)
            },
            // SAFETY: the caller's contract.
            (false, Enroll::Add) => unsafe {
                self.poller
                    .add_with_mode(fd, Event::all(key), PollMode::Edge)
            },
            (false, Enroll::Again) => {
                self.poller
                    .modify_with_mode(fd, Event::all(key), PollMode::Edge)
            }
        }
    }

    /// The registered socket an event is for; `None` for the engine's own wake-up
    /// (drained here) and for a socket closed since.
    fn socket_of(&self, ready: &sys::Readiness) -> Option<Arc<SocketCore>> {
        match ready.key {
            sys::POLLING_RESERVED_KEY => None,
            WAKE_KEY => {
                self.wake.drain();
                None
            }
            key => self.registry.get(key),
        }
    }

    /// Puts the socket events of `events`, taken off the poller but not served, back
    /// into it, for whoever drains next: each socket is registered again with the same
    /// interest, and the kernel queues its events afresh for what holds now (data,
    /// room, a hang-up: all levels the kernel keeps). For a worker that was in
    /// `epoll_wait` when a runtime driver attached: the events it took are the
    /// runtime's to serve on its own thread. A tokio runtime with a paused clock, say,
    /// advances its clock when it finds no I/O ready, and an operation that a worker
    /// completes on another thread meanwhile would lose to the timeout it races.
    pub(crate) fn hand_back(&self, events: &EventBuffer) {
        for ready in events.iter() {
            let Some(socket) = self.socket_of(&ready) else {
                continue;
            };
            // SAFETY: as in `register`: the descriptor stays open while `socket`
            // lives, and it is registered (a closed socket is not in the registry;
            // one closed since is deleted from the poller, and the call then fails).
            if unsafe { self.enroll(&socket, Enroll::Again) }.is_err() {
                // Closed meanwhile (its operations completed with `Disposed`), or not
                // expected: serve the event here, as before.
                let mut completed = Completed::new();
                socket.on_ready(ready, &mut completed);
                completed.notify(self);
            }
        }
    }

    /// Takes `core` out of the poller and the registry. In a forked child (see
    /// [`FORKED`]) only out of the registry: the epoll set is the parent's, and the
    /// registration it holds for this descriptor (the same open socket, under the same
    /// number) is the parent's too. The registry's lock may have been held, at the
    /// instant of the fork, by one of the parent's threads, which do not exist in the
    /// child: there it is only tried (see [`Registry::remove_unless_stuck`]); if it
    /// stays taken, `core` stays in the registry and its descriptor open.
    pub(crate) fn deregister(&self, core: &SocketCore) {
        if forked() {
            let _ = self
                .registry
                .remove_unless_stuck(core.key(), FORKED_LOCK_PATIENCE);
            return;
        }
        let _ = self.poller.delete(core.fd());
        self.registry.remove(core.key());
    }

    /// How many sockets are registered.
    pub(crate) fn socket_count(&self) -> usize {
        self.registry.len()
    }

    /// Wakes a thread blocked in `epoll_wait` on this engine.
    pub(crate) fn kick(&self) {
        self.wake.notify();
    }

    /// The count of waits, and the gated driver's state.
    #[inline]
    pub(crate) fn wait_gate(&self) -> &WaitGate {
        &self.wait_gate
    }

    /// How many runtime drivers are attached.
    pub(crate) fn driver_count(&self) -> usize {
        self.drivers.load(Ordering::SeqCst)
    }

    /// A counter that drains bump (the monitor's sign of life of the drivers; see
    /// [`dispatch`](Self::dispatch)).
    pub(crate) fn drain_count(&self) -> u64 {
        self.drains.load(Ordering::Relaxed)
    }

    /// Whether the workers poll: no runtime driver is attached, or the attached ones
    /// stalled.
    pub(crate) fn workers_poll(&self) -> bool {
        self.driver_count() == 0 || self.drivers_stalled.load(Ordering::SeqCst)
    }

    /// The attached drivers left events waiting for a whole monitor period: the
    /// workers take polling back until a driver drains again ([`Self::driver_drained`]),
    /// so that the sockets of other runtimes and of callbacks do not wait for the
    /// monitor meanwhile.
    pub(crate) fn stall_drivers(&self) {
        if !self.drivers_stalled.swap(true, Ordering::SeqCst) {
            self.workers.resume_polling();
        }
    }

    /// Whether the attached drivers are stalled (see [`Self::stall_drivers`]).
    pub(crate) fn drivers_stalled(&self) -> bool {
        self.drivers_stalled.load(Ordering::SeqCst)
    }

    /// A runtime driver drains: if the workers had taken polling back from stalled
    /// drivers, they hand it over again (the leader is kicked out of `epoll_wait`).
    #[inline]
    pub(crate) fn driver_drained(&self) {
        if self.drivers_stalled.load(Ordering::Relaxed)
            && self.drivers_stalled.swap(false, Ordering::SeqCst)
        {
            self.kick();
        }
    }

    /// Drains once for attached drivers that did not (the monitor's stand-in); returns
    /// how many events it took.
    pub(crate) fn drain_for_drivers(&self) -> usize {
        self.monitor_drains.fetch_add(1, Ordering::Relaxed);
        self.drain(0).map_or(0, |(events, _)| events)
    }

    /// How many times the monitor drained for drivers that did not.
    pub(crate) fn monitor_drains(&self) -> u64 {
        self.monitor_drains.load(Ordering::Relaxed)
    }

    /// Attaches a runtime driver: the workers stop blocking in `epoll_wait`.
    pub(crate) fn attach_driver(&self) {
        let was_stalled = self.drivers_stalled.swap(false, Ordering::SeqCst);
        if self.drivers.fetch_add(1, Ordering::SeqCst) == 0 || was_stalled {
            // Get the leader out of epoll_wait so it hands polling to the driver.
            self.kick();
        }
        self.workers.wake_monitor();
    }

    /// Detaches a runtime driver; the last one gives polling back to the workers.
    pub(crate) fn detach_driver(&self) {
        if self.drivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.workers.resume_polling();
        }
    }

    /// Takes ready events (waiting up to `timeout_ms`: -1 forever, 0 not at all) and
    /// runs the operations they unblock, notifying completions on this thread. Returns
    /// how many events were taken and how many operations they completed.
    pub(crate) fn drain(&self, timeout_ms: i32) -> io::Result<(usize, usize)> {
        if forked() {
            // The epoll set is the parent's: its events are not this process's to take.
            return Err(io::Error::from(forked_error()));
        }
        let mut scratch = SCRATCH
            .with(|s| s.borrow_mut().take())
            .unwrap_or_else(|| (EventBuffer::new(EVENTS_PER_WAIT), Completed::new()));
        let result = scratch.0.wait(self.epoll_fd(), timeout_ms);
        let mut completed = 0;
        if let Ok(n) = result {
            if n > 0 {
                completed = self.dispatch(&scratch.0, &mut scratch.1, &|| {});
            }
        }
        SCRATCH.with(|s| *s.borrow_mut() = Some(scratch));
        result.map(|events| (events, completed))
    }

    /// Runs what the events in `events` unblock; `on_each` is told after each socket.
    /// Returns how many operations completed (and were notified).
    pub(crate) fn dispatch(
        &self,
        events: &EventBuffer,
        completed: &mut Completed<SocketCore>,
        on_each: &dyn Fn(),
    ) -> usize {
        // A sign of life for the monitor, not a count: a load and a store (no
        // read-modify-write per drain). Two drains at once may bump it by one only,
        // and a drain hidden that way costs at most one spare drain by the monitor.
        let drains = self.drains.load(Ordering::Relaxed);
        self.drains.store(drains.wrapping_add(1), Ordering::Relaxed);
        let mut notified = 0;
        for ready in events.iter() {
            let Some(socket) = self.socket_of(&ready) else {
                continue;
            };
            socket.on_ready(ready, completed);
            notified += completed.notify(self);
            on_each();
        }
        // One edge can complete a whole burst (a peer that starts reading after
        // 100,000 sends were queued); the buffer is this thread's for good, so what it
        // grew to beyond the callback queues' share is given back, as they do.
        completed.trim(crate::context::KEPT_TASK_CAPACITY);
        notified
    }
}
