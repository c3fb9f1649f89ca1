//! The stress mix that `tests/stress.rs` runs for about a minute and `cargo xtask
//! soak` runs for as long as asked: many connections through every adapter at once,
//! faults injected at random from a seed, and every outcome accounted for.
//!
//! # The mix
//!
//! *Lanes* run in parallel, each on a thread of its own, each with a client adapter
//! and a server adapter: callback↔callback, tokio-ct↔tokio-ct, tokio-mt↔tokio-mt,
//! smol↔smol, and the mixed pairs callback→tokio-mt, tokio-mt→smol, smol→tokio-ct and
//! tokio-ct→callback, all on the one engine. A lane keeps a listener and runs
//! *rounds*: an accept and a connect, then both ends send a stream of self-describing
//! records while receiving the other end's stream. Each end sends on one thread and
//! receives on another, so four threads work one connection.
//!
//! - Sends: pipelined batches (one member sometimes cancelled right after it begins:
//!   while queued, if a large send is under way); sends whose result or future is
//!   dropped at once; sends bounded by a short timeout or cancelled at once; sends of
//!   no bytes; a final empty send (it completes after every send before it) before
//!   `shutdown(Write)`.
//! - Receives: random capacities; zero-capacity readiness probes; receives bounded by
//!   a timeout or cancelled at once; receive futures dropped after one poll (tokio,
//!   smol: their receives are cancel safe).
//!
//! A seeded PRNG ([`Rng`]) decides, per round, whether one end closes its socket or
//! resets the connection (`SO_LINGER` 0, then close) at a random point of its sending
//! or receiving; whether one end sends a large record (256 KiB to 2 MiB) under a short
//! timeout (a cancel that tears the stream) or at the head of a batch whose later
//! member is cancelled (a cancel of a queued send); whether the socket buffers are cut
//! to 32–128 KiB (so that large sends wait in the engine's queues instead of finishing
//! inline); and whether the listener is closed under a pending accept.
//!
//! # What is checked
//!
//! - **Exactly once.** Each operation is counted when started, per adapter, and its
//!   reporter (carried by the callback or the future) counts its completion. A
//!   reporter dropped without reporting counts as a *lost* completion. At the end,
//!   started = completed + abandoned (futures dropped on purpose) for every adapter,
//!   and nothing is lost. Inside callbacks: the operation is complete, a second
//!   `end_*` gives `AlreadyEnded`; `cancel()` returning `true` means the outcome is
//!   `Aborted` and `false` means it is not.
//! - **No hang.** Every wait is bounded ([`Config::op_limit`] per operation,
//!   [`Config::round_limit`] per round); a monitor reports a mix that stops starting
//!   operations, with what every lane was doing.
//! - **Data.** Records carry lane, round, direction, sequence number, length and a
//!   check word, and a position-dependent body: the receiver's bytes must parse as
//!   records of its own connection and direction, in order, intact, with no record
//!   missing whose send succeeded before a later one arrived, and only the last one
//!   cut short. In rounds without close or reset, every successful send arrives, the
//!   stream ends with EOF, and only a cancelled send may be absent or torn.
//! - **Outcomes.** Each end's errors must be among those its role allows (e.g. the end
//!   that closed sees `Disposed`, its peer EOF, `ECONNRESET` or `EPIPE`; `Aborted` only
//!   for bounded operations).
//! - **Resources.** Open descriptors (`/proc/self/fd`) return to their baseline after
//!   everything is dropped, and RSS (`/proc/self/statm`) grows by less than
//!   [`Config::rss_growth_limit`]. The baselines are taken after a warm-up run of the
//!   same mix ([`Config::warm_up_ops`]): what the process keeps for good once it has
//!   run the mix (engine threads, async-io's reactor, allocator arenas, cached thread
//!   stacks) is not growth. The soak also samples both over time and fails if they
//!   keep rising ([`Report::growth_problems`]).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use asyncresult_callback::prelude::*;
use futures::channel::oneshot;

use crate::adapters::{BoxFuture, Flavor, SmolFlavor, TokioFlavor};
use crate::harness::Res;
use crate::loopback;

/// The environment variable that fixes the seed (decimal, or hexadecimal with `0x`).
pub const SEED_ENV: &str = "ASYNCRESULT_STRESS_SEED";

/// The environment variable that sets the soak's length in minutes.
pub const SOAK_MINUTES_ENV: &str = "ASYNCRESULT_SOAK_MINUTES";

const MIB: u64 = 1 << 20;

// ---- the PRNG and the seed ---------------------------------------------------------

/// A small seeded PRNG (xorshift64*, seeded through splitmix64), so that a run's
/// choices can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) as u64) as usize
    }

    /// `true` with a probability of `percent` in 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An independent generator drawn from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// The seed from [`SEED_ENV`], or a fresh one (from the clock and the process id).
///
/// # Errors
///
/// The variable is set but is not a number.
pub fn seed_from_env() -> Result<u64, String> {
    match std::env::var(SEED_ENV) {
        Ok(text) => parse_seed(&text).ok_or_else(|| format!("{SEED_ENV}={text:?} is not a number")),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            Ok(nanos ^ (u64::from(std::process::id()) << 32))
        }
    }
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

// ---- process probes ----------------------------------------------------------------

/// The number of open file descriptors of this process (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// The resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size)
        .ok()
        .filter(|&size| size > 0)
        .unwrap_or(4096)
}

fn sockets_registered() -> usize {
    asyncresult_core::driver::engine_stats().map_or(0, |stats| stats.sockets)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `done` until it holds or `limit` passes. For what finishes in the
/// background with nothing to wait on but the count itself (descriptors released by
/// the last handle, callbacks of abandoned results); the pause only paces the polls.
fn settle(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

// ---- accounting: every operation reports once ----------------------------------------

/// Operation counts of one adapter, kept by the operations' reporters.
#[derive(Debug, Default)]
struct Tally {
    started: AtomicU64,
    completed: AtomicU64,
    abandoned: AtomicU64,
    lost: AtomicU64,
    anomalies: Mutex<Vec<String>>,
}

impl Tally {
    fn anomaly(&self, what: String) {
        let mut list = lock(&self.anomalies);
        if list.len() < 20 {
            list.push(what);
        }
    }

    fn settled(&self) -> bool {
        let started = self.started.load(Relaxed);
        let ended = self.completed.load(Relaxed) + self.abandoned.load(Relaxed);
        started == ended + self.lost.load(Relaxed)
    }

    fn count(&self, name: &'static str) -> AdapterCount {
        AdapterCount {
            name,
            started: self.started.load(Relaxed),
            completed: self.completed.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            lost: self.lost.load(Relaxed),
            anomalies: lock(&self.anomalies).clone(),
        }
    }
}

/// The reporter of one operation: reports its outcome exactly once (it is consumed
/// doing so); dropped without reporting, it counts a lost completion.
struct Done<T> {
    tx: Option<mpsc::Sender<T>>,
    tally: Arc<Tally>,
}

impl<T> Done<T> {
    fn report(mut self, value: T) {
        self.tally.completed.fetch_add(1, Relaxed);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(value);
        }
    }

    /// The future was dropped on purpose before completing; `value` says so.
    fn abandon(mut self, value: T) {
        self.tally.abandoned.fetch_add(1, Relaxed);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(value);
        }
    }
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        if self.tx.take().is_some() {
            self.tally.lost.fetch_add(1, Relaxed);
        }
    }
}

/// Why a wait ended without the outcome.
#[derive(Debug)]
enum Trouble {
    Hung(Duration),
    Lost,
    Cancel(String),
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Hung(limit) => write!(f, "did not complete within {limit:?} (hang)"),
            Trouble::Lost => f.write_str("was dropped without reporting (lost completion)"),
            Trouble::Cancel(what) => f.write_str(what),
        }
    }
}

/// The waiting side of one operation.
struct Waiter<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> Waiter<T> {
    fn wait(&self, limit: Duration) -> Result<T, Trouble> {
        self.rx.recv_timeout(limit).map_err(|e| match e {
            RecvTimeoutError::Timeout => Trouble::Hung(limit),
            RecvTimeoutError::Disconnected => Trouble::Lost,
        })
    }

    /// A waiter that already holds its outcome.
    fn ready(value: T) -> Waiter<T> {
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(value);
        Waiter { rx }
    }
}

/// Counts a start and makes the operation's reporter and waiter.
fn op<T>(tally: &Arc<Tally>) -> (Done<T>, Waiter<T>) {
    tally.started.fetch_add(1, Relaxed);
    let (tx, rx) = mpsc::channel();
    let done = Done {
        tx: Some(tx),
        tally: Arc::clone(tally),
    };
    (done, Waiter { rx })
}

// ---- the adapters, instrumented ----------------------------------------------------------

/// How an operation is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Waited for (up to the operation limit).
    Wait,
    /// Cancelled when it takes longer: `wait_timeout` + `cancel()` (callbacks), the
    /// adapter's `*_timeout` (tokio, smol).
    Timeout(Duration),
    /// Cancelled right after it starts (a zero timeout for the async adapters).
    CancelNow,
}

type Cancel = Box<dyn FnOnce() -> bool + Send>;

/// An operation under way: its outcome, and (callbacks) what cancels it.
struct Started<T> {
    waiter: Waiter<T>,
    cancel: Option<Cancel>,
}

/// Waits for `started` as `bound` says; checks that what `cancel()` said agrees with
/// the outcome.
fn finish<U>(started: Started<Res<U>>, bound: Bound, limit: Duration) -> Result<Res<U>, Trouble> {
    let Started { waiter, cancel } = started;
    let mut cancelled = None;
    let mut extra = Duration::ZERO;
    match (bound, cancel) {
        (Bound::CancelNow, Some(cancel)) => cancelled = Some(cancel()),
        (Bound::Timeout(after), Some(cancel)) => match waiter.rx.recv_timeout(after) {
            Ok(out) => return Ok(out),
            Err(RecvTimeoutError::Disconnected) => return Err(Trouble::Lost),
            Err(RecvTimeoutError::Timeout) => cancelled = Some(cancel()),
        },
        (Bound::Timeout(after), None) => extra = after,
        _ => {}
    }
    let out = waiter.wait(limit + extra)?;
    let aborted = matches!(out, Err(Error::Aborted));
    match cancelled {
        Some(true) if !aborted => Err(Trouble::Cancel(format!(
            "cancel() returned true but the operation ended with {}",
            describe(&out)
        ))),
        Some(false) if aborted => Err(Trouble::Cancel(
            "cancel() returned false but the operation ended Aborted".into(),
        )),
        _ => Ok(out),
    }
}

fn describe<T>(out: &Res<T>) -> String {
    match out {
        Ok(_) => "success".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// One adapter, as the mix drives it. Every operation method counts one start on the
/// adapter's tally and reports through a `Done`.
trait Net: Send + Sync + 'static {
    type Stream: Send + Sync + 'static;
    type Listener: Send + Sync + 'static;

    fn name(&self) -> &'static str;
    fn listen(&self) -> Result<Self::Listener, String>;
    fn listener_socket(&self, l: &Self::Listener) -> Socket;
    fn accept(&self, l: &Self::Listener) -> Started<Res<Self::Stream>>;
    fn connect(&self, to: SocketAddr) -> Started<Res<Self::Stream>>;
    fn socket(&self, s: &Self::Stream) -> Socket;
    /// Begins the sends in this order; one outcome each. The member at `cancel` is to
    /// be cancelled right after it begins: by the async adapters with a zero timeout;
    /// the callback adapter hands back its canceller for the caller to use.
    fn send_batch(
        &self,
        s: &Self::Stream,
        bufs: Vec<Vec<u8>>,
        cancel: Option<usize>,
    ) -> Vec<Started<Res<usize>>>;
    fn send(&self, s: &Self::Stream, buf: Vec<u8>, bound: Bound) -> Started<Res<usize>>;
    /// Begins a send and drops its result or future at once. The waiter reports once
    /// the send has begun, with its outcome if it was already known.
    fn forget_send(&self, s: &Self::Stream, buf: Vec<u8>) -> Waiter<Option<Res<usize>>>;
    fn receive(&self, s: &Self::Stream, capacity: usize, bound: Bound) -> Started<Res<Vec<u8>>>;
    /// Polls a receive once and drops it if it is not ready (`None` if the adapter
    /// has no cancel-safe receive to drop: a callback receive takes its bytes when it
    /// completes, whoever waits for it).
    fn receive_once(
        &self,
        s: &Self::Stream,
        capacity: usize,
    ) -> Option<Waiter<Option<Res<Vec<u8>>>>>;
}

/// The callback adapter: `begin_*` with a callback that calls `end_*` and reports.
#[derive(Debug)]
struct CallbackNet {
    tally: Arc<Tally>,
}

type Slot<U> = Arc<Mutex<Option<Done<U>>>>;

fn take<U>(slot: &Slot<U>) -> Option<Done<U>> {
    lock(slot).take()
}

/// A callback that ends its operation with `end`, checks what a callback may check,
/// and reports through `slot`.
fn reporting<T, U>(
    slot: &Slot<Res<U>>,
    tally: &Arc<Tally>,
    end: impl Fn(&AsyncResult<T>) -> Res<U> + Send + 'static,
) -> Option<AsyncCallback<T>>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let (slot, tally) = (Arc::clone(slot), Arc::clone(tally));
    callback(move |ar: AsyncResult<T>| {
        if !ar.is_completed() {
            tally.anomaly("a callback ran before its operation completed".into());
        }
        let out = end(&ar);
        match end(&ar) {
            Err(Error::AlreadyEnded) => {}
            again => tally.anomaly(format!(
                "a second end_* gave {} instead of AlreadyEnded",
                describe(&again)
            )),
        }
        match take(&slot) {
            Some(done) => done.report(out),
            None => tally.anomaly("a callback ran for an operation whose begin failed".into()),
        }
    })
}

/// What a `begin_*` returned: the started operation, or its error reported at once
/// (no callback will run for it).
fn begun<T: Send + 'static, U>(
    tally: &Tally,
    slot: Slot<Res<U>>,
    waiter: Waiter<Res<U>>,
    begin: Res<AsyncResult<T>>,
) -> Started<Res<U>> {
    match begin {
        Ok(ar) => Started {
            waiter,
            cancel: Some(Box::new(move || ar.cancel())),
        },
        Err(e) => {
            match take(&slot) {
                Some(done) => done.report(Err(e)),
                None => tally.anomaly(format!("begin_* failed ({e:?}) but its callback ran")),
            }
            Started {
                waiter,
                cancel: None,
            }
        }
    }
}

impl CallbackNet {
    fn op<U>(&self) -> (Slot<U>, Waiter<U>) {
        let (done, waiter) = op(&self.tally);
        (Arc::new(Mutex::new(Some(done))), waiter)
    }
}

impl Net for CallbackNet {
    type Stream = Socket;
    type Listener = Socket;

    fn name(&self) -> &'static str {
        "callback"
    }

    fn listen(&self) -> Result<Socket, String> {
        Socket::listen_tcp(loopback(), 128).map_err(|e| format!("listen: {e}"))
    }

    fn listener_socket(&self, l: &Socket) -> Socket {
        l.clone()
    }

    fn accept(&self, l: &Socket) -> Started<Res<Socket>> {
        let (slot, waiter) = self.op();
        let l2 = l.clone();
        let cb = reporting(&slot, &self.tally, move |ar| l2.end_accept(ar));
        begun(&self.tally, slot, waiter, l.begin_accept(cb, None))
    }

    fn connect(&self, to: SocketAddr) -> Started<Res<Socket>> {
        let (slot, waiter) = self.op();
        let socket = match Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)) {
            Ok(socket) => socket,
            Err(e) => return begun::<(), _>(&self.tally, slot, waiter, Err(e)),
        };
        let s2 = socket.clone();
        let cb = reporting(&slot, &self.tally, move |ar| {
            s2.end_connect(ar).map(|()| s2.clone())
        });
        begun(
            &self.tally,
            slot,
            waiter,
            socket.begin_connect(to, cb, None),
        )
    }

    fn socket(&self, s: &Socket) -> Socket {
        s.clone()
    }

    fn send_batch(
        &self,
        s: &Socket,
        bufs: Vec<Vec<u8>>,
        _cancel: Option<usize>,
    ) -> Vec<Started<Res<usize>>> {
        bufs.into_iter()
            .map(|buf| self.send(s, buf, Bound::Wait))
            .collect()
    }

    fn send(&self, s: &Socket, buf: Vec<u8>, _bound: Bound) -> Started<Res<usize>> {
        let (slot, waiter) = self.op();
        let s2 = s.clone();
        let cb = reporting(&slot, &self.tally, move |ar| s2.end_send(ar));
        begun(
            &self.tally,
            slot,
            waiter,
            s.begin_send(buf, SocketFlags::NONE, cb, None),
        )
    }

    fn forget_send(&self, s: &Socket, buf: Vec<u8>) -> Waiter<Option<Res<usize>>> {
        // The result is dropped here; the callback still reports (to nobody).
        let started = self.send(s, buf, Bound::Wait);
        match started.cancel {
            Some(_) => Waiter::ready(None),
            None => Waiter::ready(started.waiter.rx.try_recv().ok()),
        }
    }

    fn receive(&self, s: &Socket, capacity: usize, _bound: Bound) -> Started<Res<Vec<u8>>> {
        let (slot, waiter) = self.op();
        let (s2, tally) = (s.clone(), Arc::clone(&self.tally));
        let cb = reporting(&slot, &self.tally, move |ar| {
            s2.end_receive::<Vec<u8>>(ar).map(|(n, buf)| {
                if n != buf.len() {
                    tally.anomaly(format!("a receive reported {n} bytes in {}", buf.len()));
                }
                buf
            })
        });
        let begin = s.begin_receive(Vec::with_capacity(capacity), SocketFlags::NONE, cb, None);
        begun(&self.tally, slot, waiter, begin)
    }

    fn receive_once(&self, _: &Socket, _: usize) -> Option<Waiter<Option<Res<Vec<u8>>>>> {
        None
    }
}

/// An async runtime on threads of its own, to spawn the adapters' futures on.
struct Exec {
    spawn: Spawner,
    running: Mutex<Option<Running>>,
}

type Spawner = Box<dyn Fn(BoxFuture<()>) + Send + Sync>;

/// What stops a runtime; its thread, and the channel on which that thread reports that
/// the runtime is gone.
type Running = (oneshot::Sender<()>, JoinHandle<()>, mpsc::Receiver<()>);

impl Exec {
    /// Runs `body` (which runs the runtime until `stopped` fires, then drops it) on a
    /// thread of its own.
    fn start(spawn: Spawner, body: impl FnOnce(oneshot::Receiver<()>) + Send + 'static) -> Exec {
        let (stop, stopped) = oneshot::channel::<()>();
        let (finished_tx, finished) = mpsc::channel();
        let thread = thread::spawn(move || {
            body(stopped);
            let _ = finished_tx.send(());
        });
        Exec {
            spawn,
            running: Mutex::new(Some((stop, thread, finished))),
        }
    }

    fn tokio(multi_thread: bool) -> Result<Exec, String> {
        let mut builder = if multi_thread {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        let runtime = builder
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let spawn: Spawner = Box::new(move |fut| {
            handle.spawn(fut);
        });
        Ok(Exec::start(spawn, move |stopped| {
            runtime.block_on(async move {
                let _ = stopped.await;
            });
            drop(runtime);
        }))
    }

    fn smol() -> Exec {
        let executor = Arc::new(async_executor::Executor::new());
        let runner = Arc::clone(&executor);
        let spawn: Spawner = Box::new(move |fut| executor.spawn(fut).detach());
        Exec::start(spawn, move |stopped| {
            smol::block_on(runner.run(async move {
                let _ = stopped.await;
            }));
            drop(runner);
        })
    }

    /// Stops the runtime and joins its thread; `false` if the thread did not finish
    /// within `limit` (a task stuck in a poll): it is then left behind.
    fn shut_down(&self, limit: Duration) -> bool {
        let Some((stop, thread, finished)) = lock(&self.running).take() else {
            return true;
        };
        let _ = stop.send(());
        match finished.recv_timeout(limit) {
            Err(RecvTimeoutError::Timeout) => false,
            _ => {
                let _ = thread.join();
                true
            }
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        self.shut_down(Duration::from_secs(10));
    }
}

/// A send future of an async adapter, boxed (plain and bounded ones side by side).
type SendFuture<'a> = Pin<Box<dyn Future<Output = Res<usize>> + Send + 'a>>;

/// The tokio or smol adapter: every operation a future spawned on the runtime.
struct AsyncNet<F> {
    name: &'static str,
    tally: Arc<Tally>,
    exec: Exec,
    _flavor: PhantomData<fn() -> F>,
}

impl<F: Flavor> AsyncNet<F> {
    fn new(name: &'static str, exec: Exec, tally: Arc<Tally>) -> AsyncNet<F> {
        AsyncNet {
            name,
            tally,
            exec,
            _flavor: PhantomData,
        }
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        (self.exec.spawn)(Box::pin(fut));
    }

    fn start<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Started<T> {
        let (done, waiter) = op(&self.tally);
        self.spawn(async move { done.report(fut.await) });
        Started {
            waiter,
            cancel: None,
        }
    }
}

impl<F: Flavor> Net for AsyncNet<F> {
    type Stream = Arc<F::Stream>;
    type Listener = Arc<F::Listener>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn listen(&self) -> Result<Self::Listener, String> {
        let (tx, rx) = mpsc::channel();
        self.spawn(async move {
            let _ = tx.send(F::bind(loopback()).await);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(listener)) => Ok(Arc::new(listener)),
            Ok(Err(e)) => Err(format!("listen: {e}")),
            Err(_) => Err("listen: the runtime did not run the bind within 20 s".into()),
        }
    }

    fn listener_socket(&self, l: &Self::Listener) -> Socket {
        F::listener_socket(l)
    }

    fn accept(&self, l: &Self::Listener) -> Started<Res<Self::Stream>> {
        let l = Arc::clone(l);
        self.start(async move { F::accept(l).await.map(Arc::new) })
    }

    fn connect(&self, to: SocketAddr) -> Started<Res<Self::Stream>> {
        self.start(async move { F::connect(to).await.map(Arc::new) })
    }

    fn socket(&self, s: &Self::Stream) -> Socket {
        s.socket().clone()
    }

    fn send_batch(
        &self,
        s: &Self::Stream,
        bufs: Vec<Vec<u8>>,
        cancel: Option<usize>,
    ) -> Vec<Started<Res<usize>>> {
        let (mut dones, mut started) = (Vec::new(), Vec::new());
        for _ in &bufs {
            let (done, waiter) = op(&self.tally);
            dones.push(Some(done));
            started.push(Started {
                waiter,
                cancel: None,
            });
        }
        let s = Arc::clone(s);
        // One task polls the sends in index order, so they begin in that order.
        self.spawn(async move {
            let s = &s;
            let mut sends: Vec<Option<SendFuture<'_>>> = bufs
                .into_iter()
                .enumerate()
                .map(|(i, buf)| -> Option<SendFuture<'_>> {
                    if cancel == Some(i) {
                        Some(Box::pin(s.send_timeout(buf, Duration::ZERO)))
                    } else {
                        Some(Box::pin(s.send(buf)))
                    }
                })
                .collect();
            futures::future::poll_fn(|cx| {
                let mut pending = false;
                for (send, done) in sends.iter_mut().zip(dones.iter_mut()) {
                    if let Some(fut) = send {
                        match fut.as_mut().poll(cx) {
                            Poll::Ready(out) => {
                                *send = None;
                                if let Some(done) = done.take() {
                                    done.report(out);
                                }
                            }
                            Poll::Pending => pending = true,
                        }
                    }
                }
                if pending {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
        });
        started
    }

    fn send(&self, s: &Self::Stream, buf: Vec<u8>, bound: Bound) -> Started<Res<usize>> {
        let s = Arc::clone(s);
        self.start(async move {
            match bound {
                Bound::Wait => s.send(buf).await,
                Bound::Timeout(after) => s.send_timeout(buf, after).await,
                Bound::CancelNow => s.send_timeout(buf, Duration::ZERO).await,
            }
        })
    }

    fn forget_send(&self, s: &Self::Stream, buf: Vec<u8>) -> Waiter<Option<Res<usize>>> {
        let (done, waiter) = op(&self.tally);
        let s = Arc::clone(s);
        self.spawn(async move {
            let mut send = Box::pin(s.send(buf));
            match futures::poll!(send.as_mut()) {
                Poll::Ready(out) => done.report(Some(out)),
                Poll::Pending => {
                    drop(send);
                    done.abandon(None);
                }
            }
        });
        waiter
    }

    fn receive(&self, s: &Self::Stream, capacity: usize, bound: Bound) -> Started<Res<Vec<u8>>> {
        let (s, tally) = (Arc::clone(s), Arc::clone(&self.tally));
        self.start(async move {
            let buf = Vec::with_capacity(capacity);
            let out = match bound {
                Bound::Wait => s.receive(buf).await,
                Bound::Timeout(after) => s.receive_timeout(buf, after).await,
                Bound::CancelNow => s.receive_timeout(buf, Duration::ZERO).await,
            };
            out.map(|(n, buf)| {
                if n != buf.len() {
                    tally.anomaly(format!("a receive reported {n} bytes in {}", buf.len()));
                }
                buf
            })
        })
    }

    fn receive_once(
        &self,
        s: &Self::Stream,
        capacity: usize,
    ) -> Option<Waiter<Option<Res<Vec<u8>>>>> {
        let (done, waiter) = op(&self.tally);
        let s = Arc::clone(s);
        self.spawn(async move {
            let mut receive = Box::pin(s.receive(Vec::with_capacity(capacity)));
            match futures::poll!(receive.as_mut()) {
                Poll::Ready(out) => done.report(Some(out.map(|(_, buf)| buf))),
                Poll::Pending => {
                    drop(receive);
                    done.abandon(None);
                }
            }
        });
        Some(waiter)
    }
}

/// The four adapters of a run, each with its tally.
struct Nets {
    callback: Arc<CallbackNet>,
    tokio_ct: Arc<AsyncNet<TokioFlavor>>,
    tokio_mt: Arc<AsyncNet<TokioFlavor>>,
    smol: Arc<AsyncNet<SmolFlavor>>,
}

impl Nets {
    fn new() -> Result<Nets, String> {
        let tally = || Arc::new(Tally::default());
        Ok(Nets {
            callback: Arc::new(CallbackNet { tally: tally() }),
            tokio_ct: Arc::new(AsyncNet::new("tokio-ct", Exec::tokio(false)?, tally())),
            tokio_mt: Arc::new(AsyncNet::new("tokio-mt", Exec::tokio(true)?, tally())),
            smol: Arc::new(AsyncNet::new("smol", Exec::smol(), tally())),
        })
    }

    /// Stops the runtimes; what did not stop.
    fn shut_down(&self) -> Vec<String> {
        let limit = Duration::from_secs(10);
        [
            (self.tokio_ct.name, &self.tokio_ct.exec),
            (self.tokio_mt.name, &self.tokio_mt.exec),
            (self.smol.name, &self.smol.exec),
        ]
        .into_iter()
        .filter(|(_, exec)| !exec.shut_down(limit))
        .map(|(name, _)| format!("the {name} runtime did not stop within {limit:?}"))
        .collect()
    }

    fn tallies(&self) -> Vec<(&'static str, Arc<Tally>)> {
        vec![
            ("callback", Arc::clone(&self.callback.tally)),
            ("tokio-ct", Arc::clone(&self.tokio_ct.tally)),
            ("tokio-mt", Arc::clone(&self.tokio_mt.tally)),
            ("smol", Arc::clone(&self.smol.tally)),
        ]
    }
}

// ---- records -------------------------------------------------------------------------

const MAGIC: u32 = 0x5354_524D;
/// magic, lane, tag, seq, len, check: six little-endian words.
const HEADER: usize = 24;

/// One direction of one connection: `tag` is the round times two plus the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamId {
    lane: u32,
    tag: u32,
}

fn check_word(id: StreamId, seq: u32, len: u32) -> u32 {
    (MAGIC ^ id.lane ^ id.tag.rotate_left(8) ^ seq.rotate_left(16) ^ len.rotate_left(24))
        .wrapping_mul(0x9E37_79B1)
}

fn body_key(id: StreamId, seq: u32) -> u32 {
    id.lane.wrapping_mul(0x85EB_CA6B)
        ^ id.tag.wrapping_mul(0xC2B2_AE35)
        ^ seq.wrapping_mul(0x27D4_EB2F)
}

/// Four body bytes: position-dependent, so a shifted, repeated or foreign chunk shows.
fn body_word(key: u32, word: u32) -> [u8; 4] {
    ((word ^ key).wrapping_mul(0x9E37_79B1) ^ word.rotate_left(16)).to_le_bytes()
}

fn record(id: StreamId, seq: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + len);
    let (seq, len32) = (seq as u32, len as u32);
    for word in [
        MAGIC,
        id.lane,
        id.tag,
        seq,
        len32,
        check_word(id, seq, len32),
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let key = body_key(id, seq);
    let words = len / 4;
    for word in 0..words {
        out.extend_from_slice(&body_word(key, word as u32));
    }
    out.extend_from_slice(&body_word(key, words as u32)[..len % 4]);
    out
}

/// Where `body` first differs from the body of its record, if anywhere.
fn body_mismatch(key: u32, body: &[u8]) -> Option<usize> {
    body.chunks(4)
        .enumerate()
        .find(|(word, chunk)| **chunk != body_word(key, *word as u32)[..chunk.len()])
        .map(|(word, _)| word * 4)
}

/// A record found in a received stream.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// `None` for a header cut short before its sequence number.
    seq: Option<usize>,
    whole: bool,
}

/// Parses a received stream into the records of `id`, checking every byte.
fn parse(id: StreamId, sizes: &[usize], data: &[u8]) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let (mut at, mut next) = (0, 0usize);
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < 16 {
            // A header cut short: what there is must begin a header of this stream.
            let mut expect = Vec::new();
            for word in [MAGIC, id.lane, id.tag] {
                expect.extend_from_slice(&word.to_le_bytes());
            }
            let n = rest.len().min(expect.len());
            if rest[..n] != expect[..n] {
                return Err(format!("garbage at byte {at}: {:02x?}", &rest[..n]));
            }
            seen.push(Seen {
                seq: None,
                whole: false,
            });
            break;
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                rest[4 * i],
                rest[4 * i + 1],
                rest[4 * i + 2],
                rest[4 * i + 3],
            ])
        };
        let (magic, lane, tag, seq) = (word(0), word(1), word(2), word(3));
        if magic != MAGIC {
            let after = match next {
                0 => "at the start".to_string(),
                n => format!("after record {}", n - 1),
            };
            return Err(format!(
                "garbage at byte {at} ({after}): {:02x?}",
                &rest[..16]
            ));
        }
        if (lane, tag) != (id.lane, id.tag) {
            return Err(format!(
                "byte {at}: a record of another stream (lane {lane}, tag {tag}, seq {seq}) \
                 in lane {}, tag {}",
                id.lane, id.tag
            ));
        }
        let seq = seq as usize;
        if seq < next {
            return Err(format!(
                "byte {at}: record {seq} after record {}: duplicated or out of order",
                next - 1
            ));
        }
        let Some(&len) = sizes.get(seq) else {
            return Err(format!(
                "byte {at}: record {seq} was never part of the stream"
            ));
        };
        if rest.len() >= HEADER
            && (word(4), word(5)) != (len as u32, check_word(id, seq as u32, len as u32))
        {
            return Err(format!("byte {at}: record {seq} has a corrupt header"));
        }
        let end = rest.len().min(HEADER + len);
        let body = rest.get(HEADER..end).unwrap_or(&[]);
        if let Some(bad) = body_mismatch(body_key(id, seq as u32), body) {
            return Err(format!(
                "record {seq} corrupt at its body byte {bad} (stream byte {})",
                at + HEADER + bad
            ));
        }
        seen.push(Seen {
            seq: Some(seq),
            whole: end == HEADER + len,
        });
        at += end;
        next = seq + 1;
    }
    Ok(seen)
}

// ---- a round: one connection, both ways ------------------------------------------------

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    NotStarted,
    Ok,
    /// Its result or future was dropped: outcome unknown.
    Forgotten,
    /// Still under way when the test gave up on it (a hang, reported as such).
    Pending,
    Failed(Fail, String),
}

/// The errors the checks tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Aborted,
    Disposed,
    Reset,
    Pipe,
    NotConnected,
    Other,
}

fn classify(e: &Error) -> Fail {
    match e {
        Error::Aborted => Fail::Aborted,
        Error::Disposed => Fail::Disposed,
        other => match other.error_code() {
            Some(libc::ECONNRESET) => Fail::Reset,
            Some(libc::EPIPE) => Fail::Pipe,
            Some(libc::ENOTCONN) => Fail::NotConnected,
            _ => Fail::Other,
        },
    }
}

/// One end's part in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Nobody closes or resets this round.
    Clean,
    /// This end closes or resets.
    Actor,
    /// The peer of the actor.
    Witness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Close,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The sender, before its step `n`.
    BeforeStep(usize),
    /// The sender, right after starting its step `n`.
    DuringStep(usize),
    /// The receiver, once it holds this many bytes (or at its end).
    AfterBytes(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    kind: FaultKind,
    /// 0: the client end, 1: the server end.
    actor: usize,
    trigger: Trigger,
}

/// One step of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Records begun back to back, then waited for; the member at the index, if any,
    /// is cancelled once begun (likely while queued behind the others).
    Batch(usize, Option<usize>),
    /// A record whose result or future is dropped at once.
    Forget,
    /// A record sent under a timeout, or cancelled at once.
    Bounded(Bound),
    /// A send of no bytes (no record): completes with 0.
    Empty,
}

/// What one end sends in a round.
#[derive(Debug)]
struct SendSpec {
    id: StreamId,
    sizes: Vec<usize>,
    bounded: Vec<bool>,
    steps: Vec<Step>,
}

fn record_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=64 => rng.range(0, 256),
        65..=94 => rng.range(256, 4096),
        _ => rng.range(4096, 32 << 10),
    }
}

fn short_bound(rng: &mut Rng, max_us: usize) -> Bound {
    if rng.percent(30) {
        Bound::CancelNow
    } else {
        Bound::Timeout(Duration::from_micros(rng.range(0, max_us) as u64))
    }
}

impl SendSpec {
    fn new(rng: &mut Rng, id: StreamId, big: bool) -> SendSpec {
        let records = rng.range(4, 40);
        let big_at = big.then(|| rng.range(0, records));
        let mut spec = SendSpec {
            id,
            sizes: Vec::new(),
            bounded: Vec::new(),
            steps: Vec::new(),
        };
        while spec.sizes.len() < records {
            let len = spec.sizes.len();
            if big_at == Some(len) {
                let big = rng.range(256 << 10, 2 << 20);
                let n = rng.range(2, 6).min(records - len);
                if n >= 2 && rng.percent(50) {
                    // The large send fills the kernel's buffers and stays pending: the
                    // member cancelled behind it is cancelled while queued.
                    let cancel = rng.range(1, n);
                    spec.steps.push(Step::Batch(n, Some(cancel)));
                    for i in 0..n {
                        spec.sizes.push(if i == 0 { big } else { record_len(rng) });
                        spec.bounded.push(i == cancel);
                    }
                } else {
                    // Cancelled while under way: it tears the stream.
                    let bound = short_bound(rng, 4000);
                    spec.push(Step::Bounded(bound), big);
                }
                continue;
            }
            match rng.below(100) {
                0..=4 => spec.push(Step::Forget, record_len(rng)),
                5..=7 => {
                    let bound = short_bound(rng, 2000);
                    spec.push(Step::Bounded(bound), record_len(rng));
                }
                8..=9 => spec.steps.push(Step::Empty),
                _ => {
                    let room = match big_at {
                        Some(at) if at > len => at - len,
                        _ => records - len,
                    };
                    let n = rng.range(1, 9).min(room);
                    let cancel = (n >= 2 && rng.percent(15)).then(|| rng.range(1, n));
                    spec.steps.push(Step::Batch(n, cancel));
                    for i in 0..n {
                        spec.sizes.push(record_len(rng));
                        spec.bounded.push(cancel == Some(i));
                    }
                }
            }
        }
        spec
    }

    fn push(&mut self, step: Step, len: usize) {
        self.steps.push(step);
        self.sizes.push(len);
        self.bounded.push(matches!(step, Step::Bounded(_)));
    }

    fn record(&self, seq: usize) -> Vec<u8> {
        record(self.id, seq, self.sizes[seq])
    }

    fn total_bytes(&self) -> usize {
        self.sizes.iter().map(|len| HEADER + len).sum()
    }
}

fn pick_fault(rng: &mut Rng, specs: &[SendSpec; 2]) -> Option<Fault> {
    let kind = match rng.below(100) {
        0..=59 => return None,
        60..=79 => FaultKind::Close,
        _ => FaultKind::Reset,
    };
    let actor = rng.below(2) as usize;
    let steps = specs[actor].steps.len();
    let trigger = match rng.below(3) {
        0 => Trigger::BeforeStep(rng.range(0, steps)),
        1 => Trigger::DuringStep(rng.range(0, steps)),
        _ => Trigger::AfterBytes(rng.range(0, specs[1 - actor].total_bytes() + 1)),
    };
    Some(Fault {
        kind,
        actor,
        trigger,
    })
}

/// What a sender saw.
#[derive(Debug)]
struct SendLog {
    outcomes: Vec<Sent>,
    shutdown: Option<Result<(), String>>,
    failures: Vec<String>,
}

/// How a receiver's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Eof,
    Failed(Fail, String),
    /// Stopped by a failure of the test itself (a hang, a deadline).
    Cut,
}

/// What a receiver saw.
#[derive(Debug)]
struct RecvLog {
    data: Vec<u8>,
    end: End,
    failures: Vec<String>,
}

/// Shared by the four threads of one round.
struct RoundCtx<'a> {
    sh: &'a Shared,
    names: [&'static str; 2],
    fault: Option<Fault>,
    fired: AtomicBool,
    deadline: Instant,
}

impl RoundCtx<'_> {
    fn role(&self, end: usize) -> Role {
        match self.fault {
            None => Role::Clean,
            Some(fault) if fault.actor == end => Role::Actor,
            Some(_) => Role::Witness,
        }
    }

    /// Closes or resets `socket`, once per round.
    fn inject(&self, kind: FaultKind, socket: &Socket) {
        if self.fired.swap(true, Relaxed) {
            return;
        }
        match kind {
            FaultKind::Close => {
                self.sh.closes.fetch_add(1, Relaxed);
            }
            FaultKind::Reset => {
                let _ = socket.as_socket2().set_linger(Some(Duration::ZERO));
                self.sh.resets.fetch_add(1, Relaxed);
            }
        }
        socket.close();
    }

    fn trigger_of(&self, end: usize) -> Option<(FaultKind, Trigger)> {
        self.fault
            .filter(|fault| fault.actor == end)
            .map(|fault| (fault.kind, fault.trigger))
    }

    fn overdue(&self) -> bool {
        Instant::now() > self.deadline
    }
}

impl Sent {
    /// A failure that ends the stream (anything but a cancel).
    fn is_hard_failure(&self) -> bool {
        matches!(self, Sent::Failed(fail, _) if *fail != Fail::Aborted)
    }
}

/// Sends no bytes, after record `seq`: it must complete with 0, in order, or fail as
/// the end's role allows. `false` if the sender should stop.
fn empty_send<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    log: &mut SendLog,
    seq: usize,
    inject: bool,
) -> bool {
    ctx.sh.sends.fetch_add(1, Relaxed);
    let started = net.send(stream, Vec::new(), Bound::Wait);
    if let (true, Some((kind, _))) = (inject, ctx.trigger_of(end)) {
        ctx.inject(kind, &net.socket(stream));
    }
    let role = ctx.role(end);
    let aborted_before = log
        .outcomes
        .iter()
        .any(|s| matches!(s, Sent::Failed(Fail::Aborted, _)));
    match finish(started, Bound::Wait, ctx.sh.config.op_limit) {
        Ok(Ok(0)) => true,
        Ok(Ok(n)) => {
            log.failures
                .push(format!("{} empty send reported {n} bytes", net.name()));
            true
        }
        Ok(Err(e)) => {
            let fail = classify(&e);
            // After a cancel that tore the stream, sends fail with EPIPE.
            let torn = fail == Fail::Pipe && aborted_before;
            if !(torn || send_error_allowed(role, fail)) {
                log.failures.push(format!(
                    "{} empty send after record {seq} ended with {e:?} ({role:?} end)",
                    net.name()
                ));
            }
            false
        }
        Err(trouble) => {
            log.failures.push(format!(
                "{} empty send after record {seq} ({role:?} end) {trouble}",
                net.name()
            ));
            false
        }
    }
}

impl SendLog {
    fn set(&mut self, sh: &Shared, spec: &SendSpec, seq: usize, out: Res<usize>) {
        self.outcomes[seq] = match out {
            Ok(n) if n == HEADER + spec.sizes[seq] => Sent::Ok,
            Ok(n) => {
                self.failures.push(format!(
                    "send of record {seq} reported {n} bytes of {}",
                    HEADER + spec.sizes[seq]
                ));
                Sent::Ok
            }
            Err(e) => {
                let fail = classify(&e);
                if fail == Fail::Aborted {
                    sh.cancels.fetch_add(1, Relaxed);
                }
                Sent::Failed(fail, format!("{e:?}"))
            }
        }
    }
}

/// One end's sending thread: the steps of `spec`, then `shutdown(Write)`.
fn sender<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    spec: &SendSpec,
) -> SendLog {
    let (sh, limit) = (ctx.sh, ctx.sh.config.op_limit);
    let socket = net.socket(stream);
    let trigger = ctx.trigger_of(end);
    let mut log = SendLog {
        outcomes: vec![Sent::NotStarted; spec.sizes.len()],
        shutdown: None,
        failures: Vec::new(),
    };
    let mut seq = 0;
    'steps: for (k, &step) in spec.steps.iter().enumerate() {
        if ctx.overdue() {
            log.failures.push(format!(
                "{} sender passed the round's time limit",
                net.name()
            ));
            break;
        }
        if let Some((kind, Trigger::BeforeStep(at))) = trigger {
            if at == k {
                ctx.inject(kind, &socket);
            }
        }
        let during = matches!(trigger, Some((_, Trigger::DuringStep(at))) if at == k);
        let first = seq;
        match step {
            Step::Batch(n, cancel) => {
                sh.sends.fetch_add(n as u64, Relaxed);
                let bufs = (seq..seq + n).map(|q| spec.record(q)).collect();
                let mut started = net.send_batch(stream, bufs, cancel);
                // The callback adapter's member is cancelled once all are begun.
                let cancelled = cancel
                    .and_then(|i| started.get_mut(i))
                    .and_then(|member| member.cancel.take())
                    .map(|cancel| cancel());
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                for (i, member) in started.into_iter().enumerate() {
                    let out = member.waiter.wait(limit).and_then(|out| {
                        let aborted = matches!(out, Err(Error::Aborted));
                        match cancelled.filter(|_| cancel == Some(i)) {
                            Some(won) if won != aborted => Err(Trouble::Cancel(format!(
                                "(cancelled in a batch) ended with {} although cancel() \
                                 returned {won}",
                                describe(&out)
                            ))),
                            _ => Ok(out),
                        }
                    });
                    match out {
                        Ok(out) => log.set(sh, spec, seq, out),
                        Err(trouble) => {
                            log.failures.push(format!(
                                "{} send of record {seq} (batched; {:?} end) {trouble}",
                                net.name(),
                                ctx.role(end)
                            ));
                            log.outcomes[seq..first + n].fill(Sent::Pending);
                            break 'steps;
                        }
                    }
                    seq += 1;
                }
            }
            Step::Forget => {
                sh.sends.fetch_add(1, Relaxed);
                let waiter = net.forget_send(stream, spec.record(seq));
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                match waiter.wait(limit) {
                    Ok(Some(out)) => log.set(sh, spec, seq, out),
                    Ok(None) => log.outcomes[seq] = Sent::Forgotten,
                    Err(trouble) => {
                        log.failures.push(format!(
                            "{} dropped send of record {seq} ({:?} end) {trouble}",
                            net.name(),
                            ctx.role(end)
                        ));
                        log.outcomes[seq] = Sent::Pending;
                        break 'steps;
                    }
                }
                seq += 1;
            }
            Step::Empty => {
                if !empty_send(ctx, end, net, stream, &mut log, seq, during) {
                    break 'steps;
                }
            }
            Step::Bounded(bound) => {
                sh.sends.fetch_add(1, Relaxed);
                let started = net.send(stream, spec.record(seq), bound);
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                match finish(started, bound, limit) {
                    Ok(out) => log.set(sh, spec, seq, out),
                    Err(trouble) => {
                        log.failures.push(format!(
                            "{} send of record {seq} ({bound:?}; {:?} end) {trouble}",
                            net.name(),
                            ctx.role(end)
                        ));
                        log.outcomes[seq] = Sent::Pending;
                        break 'steps;
                    }
                }
                seq += 1;
            }
        }
        if log.outcomes[first..seq].iter().any(Sent::is_hard_failure) {
            break;
        }
    }
    // Sends are in order, so an empty one completes after every send before it,
    // dropped ones included: only then may the write side be shut.
    if log.failures.is_empty() && !log.outcomes.iter().any(Sent::is_hard_failure) {
        empty_send(ctx, end, net, stream, &mut log, seq, false);
    }
    // A fault of this sender that never got its turn comes now.
    if let Some((kind, _)) = trigger {
        ctx.inject(kind, &socket);
    }
    log.shutdown = Some(
        socket
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("{e:?}")),
    );
    log
}

fn receive_capacity(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=29 => rng.range(1, 64),
        30..=69 => rng.range(64, 4096),
        _ => rng.range(4096, 64 << 10),
    }
}

/// One end's receiving thread: receives until EOF or an error.
fn receiver<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    mut rng: Rng,
) -> RecvLog {
    let (sh, limit) = (ctx.sh, ctx.sh.config.op_limit);
    let socket = net.socket(stream);
    let trigger = match ctx.trigger_of(end) {
        Some((kind, Trigger::AfterBytes(at))) => Some((kind, at)),
        _ => None,
    };
    let mut log = RecvLog {
        data: Vec::new(),
        end: End::Cut,
        failures: Vec::new(),
    };
    loop {
        if let Some((kind, at)) = trigger {
            if log.data.len() >= at {
                ctx.inject(kind, &socket);
            }
        }
        if ctx.overdue() {
            log.failures.push(format!(
                "{} receiver passed the round's time limit",
                net.name()
            ));
            break;
        }
        sh.receives.fetch_add(1, Relaxed);
        let roll = rng.below(100);
        let capacity = if roll < 2 {
            0
        } else {
            receive_capacity(&mut rng)
        };
        let bound = if (6..12).contains(&roll) {
            short_bound(&mut rng, 3000)
        } else {
            Bound::Wait
        };
        // Receive futures dropped after one poll, where the adapter's are cancel safe.
        let once = if (2..6).contains(&roll) {
            net.receive_once(stream, capacity)
        } else {
            None
        };
        let got = match once {
            Some(waiter) => waiter.wait(limit),
            None => finish(net.receive(stream, capacity, bound), bound, limit).map(Some),
        };
        let out = match got {
            Err(trouble) => {
                log.failures.push(format!(
                    "{} receive ({capacity} bytes, {bound:?}; {:?} end) {trouble}",
                    net.name(),
                    ctx.role(end)
                ));
                break;
            }
            // A receive future dropped before it was ready: it took nothing.
            Ok(None) => continue,
            Ok(Some(out)) => out,
        };
        match out {
            Ok(buf) if capacity == 0 => {
                if !buf.is_empty() {
                    log.failures
                        .push(format!("{} probe returned {} bytes", net.name(), buf.len()));
                }
            }
            Ok(buf) if buf.is_empty() => {
                log.end = End::Eof;
                if ctx.fault.is_none() && rng.percent(30) {
                    sh.receives.fetch_add(1, Relaxed);
                    match finish(net.receive(stream, 64, Bound::Wait), Bound::Wait, limit) {
                        Ok(Ok(again)) if again.is_empty() => {}
                        other => log.failures.push(format!(
                            "{} receive after EOF did not return 0 again: {}",
                            net.name(),
                            match other {
                                Ok(out) => describe(&out),
                                Err(trouble) => trouble.to_string(),
                            }
                        )),
                    }
                }
                break;
            }
            Ok(buf) => log.data.extend_from_slice(&buf),
            Err(Error::Aborted) if bound != Bound::Wait => {
                sh.cancels.fetch_add(1, Relaxed);
            }
            Err(e) => {
                if matches!(e, Error::Aborted) {
                    log.failures
                        .push(format!("{} unbounded receive ended Aborted", net.name()));
                }
                log.end = End::Failed(classify(&e), format!("{e:?}"));
                break;
            }
        }
    }
    if let Some((kind, _)) = trigger {
        ctx.inject(kind, &socket);
    }
    log
}

/// Which errors a role allows on sends and at the end of a received stream.
fn send_error_allowed(role: Role, fail: Fail) -> bool {
    match role {
        Role::Clean => false,
        Role::Actor => matches!(fail, Fail::Disposed | Fail::Pipe | Fail::Reset),
        Role::Witness => matches!(fail, Fail::Pipe | Fail::Reset),
    }
}

fn end_allowed(role: Role, end: &End) -> bool {
    match (role, end) {
        (_, End::Eof) => true,
        (Role::Actor, End::Failed(fail, _)) => matches!(fail, Fail::Disposed | Fail::Reset),
        (Role::Witness, End::Failed(fail, _)) => *fail == Fail::Reset,
        _ => false,
    }
}

/// One direction of a round, for checking.
struct Direction<'a> {
    what: String,
    spec: &'a SendSpec,
    sent: &'a SendLog,
    got: &'a RecvLog,
    sender: Role,
    receiver: Role,
}

/// Checks one direction: the sender's outcomes, the receiver's end, and every byte.
fn verify(sh: &Shared, d: &Direction<'_>) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let (sent, spec) = (&d.sent.outcomes, d.spec);
    problems.extend(d.sent.failures.iter().cloned());
    problems.extend(d.got.failures.iter().cloned());
    let first_abort = sent
        .iter()
        .position(|s| matches!(s, Sent::Failed(Fail::Aborted, _)));
    for (seq, outcome) in sent.iter().enumerate() {
        let Sent::Failed(fail, text) = outcome else {
            continue;
        };
        let allowed = match fail {
            Fail::Aborted => spec.bounded[seq],
            // After a cancel that tore the stream, later sends fail with EPIPE.
            Fail::Pipe if first_abort.is_some_and(|a| a < seq) => true,
            other => send_error_allowed(d.sender, *other),
        };
        if !allowed {
            problems.push(format!(
                "send of record {seq} ended with {text} ({:?} end)",
                d.sender
            ));
        }
    }
    if d.sender == Role::Clean && first_abort.is_none() {
        if let Some(Err(e)) = &d.sent.shutdown {
            problems.push(format!("shutdown(Write) after the last send failed: {e}"));
        }
    }
    if d.got.end != End::Cut && !end_allowed(d.receiver, &d.got.end) {
        problems.push(format!(
            "the received stream ended with {:?} ({:?} end)",
            d.got.end, d.receiver
        ));
    }
    let seen = match parse(spec.id, &spec.sizes, &d.got.data) {
        Ok(seen) => seen,
        Err(e) => {
            problems.push(format!("received data: {e}"));
            return prefixed(&d.what, problems);
        }
    };
    sh.bytes_checked.fetch_add(d.got.data.len() as u64, Relaxed);
    sh.records_checked.fetch_add(seen.len() as u64, Relaxed);
    // A receiver cut short by a failure (a hang) cannot vouch for what it missed.
    let clean = d.sender == Role::Clean && d.got.end != End::Cut;
    let mut whole = vec![false; sent.len()];
    let (mut torn_at, mut next) = (None, 0);
    for record in &seen {
        match (record.seq, record.whole) {
            (Some(seq), true) => {
                whole[seq] = true;
                next = seq + 1;
                match &sent[seq] {
                    Sent::Ok | Sent::Forgotten | Sent::Pending => {}
                    Sent::NotStarted => {
                        problems.push(format!("record {seq} arrived but was never sent"))
                    }
                    Sent::Failed(_, text) => problems.push(format!(
                        "record {seq} arrived whole, yet its send ended with {text}"
                    )),
                }
            }
            (seq, _) => {
                // A torn header may end before its sequence number: then it is one of
                // the records after the last whole one.
                torn_at = Some(seq.unwrap_or(next));
                if clean {
                    // Only a cancelled send may leave a torn record behind.
                    let aborted = |s: &Sent| matches!(s, Sent::Failed(Fail::Aborted, _));
                    let ok = match seq {
                        Some(seq) => aborted(&sent[seq]),
                        None => sent.iter().skip(next).any(aborted),
                    };
                    if !ok {
                        let outcome = seq.map(|seq| &sent[seq]);
                        problems.push(format!(
                            "a record ({seq:?}, its send: {outcome:?}) arrived torn although no \
                             send was cancelled mid-way"
                        ));
                    }
                } else if let Some(seq) = seq {
                    if sent[seq] == Sent::NotStarted {
                        problems.push(format!("record {seq} arrived (in part) but was never sent"));
                    }
                }
            }
        }
    }
    let last = seen.iter().filter_map(|r| r.seq).max();
    for (seq, outcome) in sent.iter().enumerate() {
        let must = matches!(outcome, Sent::Ok | Sent::Forgotten);
        if !must || whole[seq] {
            continue;
        }
        if last.is_some_and(|last| seq < last) {
            problems.push(format!(
                "record {seq} (sent: {outcome:?}) is missing before record {last:?}"
            ));
        } else if clean && (*outcome == Sent::Ok || torn_at.is_none_or(|t| t > seq)) {
            problems.push(format!("record {seq} (sent: {outcome:?}) never arrived"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "(sender's steps: {:?}; outcomes: {}; {} bytes received, ending {:?})",
            spec.steps,
            outcomes(sent, spec),
            d.got.data.len(),
            d.got.end
        ));
    }
    prefixed(&d.what, problems)
}

/// The sends of a direction, compactly: `seq:len=outcome`.
fn outcomes(sent: &[Sent], spec: &SendSpec) -> String {
    let shown: Vec<String> = sent
        .iter()
        .enumerate()
        .map(|(seq, outcome)| {
            let what = match outcome {
                Sent::NotStarted => "-".to_string(),
                Sent::Ok => "ok".into(),
                Sent::Forgotten => "dropped".into(),
                Sent::Pending => "pending".into(),
                Sent::Failed(fail, _) => format!("{fail:?}"),
            };
            format!("{seq}:{}={what}", HEADER + spec.sizes[seq])
        })
        .collect();
    shown.join(" ")
}

fn prefixed(what: &str, problems: Vec<String>) -> Vec<String> {
    problems
        .into_iter()
        .map(|p| format!("{what}: {p}"))
        .collect()
}

/// A lane's place: which lane, which round.
#[derive(Debug, Clone, Copy)]
struct At {
    lane: usize,
    round: u32,
}

/// One round of a lane (see the module docs).
fn one_round<C: Net, S: Net>(
    sh: &Shared,
    at: At,
    rng: &mut Rng,
    (client, server): (&C, &S),
    listener: &mut Option<S::Listener>,
) -> Result<(), String> {
    let limit = sh.config.op_limit;
    sh.status(at.lane, format!("round {}: accept + connect", at.round));
    if listener.is_none() || rng.percent(2) {
        *listener = Some(server.listen()?);
    }
    if rng.percent(3) {
        if let Some(old) = listener.take() {
            sh.accepts.fetch_add(1, Relaxed);
            let pending = server.accept(&old);
            server.listener_socket(&old).close();
            sh.closes.fetch_add(1, Relaxed);
            sh.listener_closes.fetch_add(1, Relaxed);
            match finish(pending, Bound::Wait, limit) {
                Ok(Err(Error::Disposed)) => {}
                Ok(other) => {
                    return Err(format!(
                        "{} accept pending when its listener closed ended with {}, not Disposed",
                        server.name(),
                        describe(&other)
                    ))
                }
                Err(trouble) => {
                    return Err(format!(
                        "{} accept pending when its listener closed {trouble}",
                        server.name()
                    ))
                }
            }
        }
        *listener = Some(server.listen()?);
    }
    let l = listener.as_ref().ok_or("no listener")?;
    let addr = server
        .listener_socket(l)
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    sh.accepts.fetch_add(1, Relaxed);
    let accepting = server.accept(l);
    sh.connects.fetch_add(1, Relaxed);
    let connecting = client.connect(addr);
    let c = finish(connecting, Bound::Wait, limit)
        .map_err(|t| format!("{} connect {t}", client.name()))?
        .map_err(|e| format!("{} connect: {e:?}", client.name()))?;
    let s = finish(accepting, Bound::Wait, limit)
        .map_err(|t| format!("{} accept {t}", server.name()))?
        .map_err(|e| format!("{} accept: {e:?}", server.name()))?;

    let big = rng.percent(15).then(|| rng.below(2) as usize);
    let (lane, tag) = (at.lane as u32, at.round.wrapping_mul(2));
    let specs = [
        SendSpec::new(rng, StreamId { lane, tag }, big == Some(0)),
        SendSpec::new(rng, StreamId { lane, tag: tag + 1 }, big == Some(1)),
    ];
    let fault = pick_fault(rng, &specs);
    if rng.percent(50) {
        let _ = client.socket(&c).set_nodelay(true);
        let _ = server.socket(&s).set_nodelay(true);
    }
    // Loopback buffers hold megabytes, so most sends finish inline on the fast path;
    // smaller buffers make large sends wait in the engine's queues (and cancels meet
    // them there, queued or under way). Not below 32 KiB: with less, Linux's delayed
    // ACKs slow loopback TCP itself to a crawl (1 MiB takes seconds with 8 KiB).
    let small_buffers = rng.percent(30);
    if small_buffers {
        for socket in [client.socket(&c), server.socket(&s)] {
            let socket = socket.as_socket2();
            let _ = socket.set_send_buffer_size(rng.range(32 << 10, 128 << 10));
            let _ = socket.set_recv_buffer_size(rng.range(32 << 10, 128 << 10));
        }
    }
    let ctx = RoundCtx {
        sh,
        names: [client.name(), server.name()],
        fault,
        fired: AtomicBool::new(false),
        deadline: Instant::now() + sh.config.round_limit,
    };
    sh.status(
        at.lane,
        format!(
            "round {}: exchanging (fault {fault:?}, big send by {big:?}, small buffers \
             {small_buffers})",
            at.round
        ),
    );
    let (r0, r1) = (rng.fork(), rng.fork());
    let (sent, got) = thread::scope(|scope| {
        let (ctx, c, s, specs) = (&ctx, &c, &s, &specs);
        let sends = [
            scope.spawn(move || sender(ctx, 0, client, c, &specs[0])),
            scope.spawn(move || sender(ctx, 1, server, s, &specs[1])),
        ];
        let receives = [
            scope.spawn(move || receiver(ctx, 0, client, c, r0)),
            scope.spawn(move || receiver(ctx, 1, server, s, r1)),
        ];
        (
            sends.map(|h| {
                h.join().unwrap_or_else(|_| SendLog {
                    outcomes: Vec::new(),
                    shutdown: None,
                    failures: vec!["the sending thread panicked".into()],
                })
            }),
            receives.map(|h| {
                h.join().unwrap_or_else(|_| RecvLog {
                    data: Vec::new(),
                    end: End::Cut,
                    failures: vec!["the receiving thread panicked".into()],
                })
            }),
        )
    });
    drop((c, s));
    sh.status(at.lane, format!("round {}: checking", at.round));
    let mut problems = Vec::new();
    for from in 0..2 {
        let to = 1 - from;
        if sent[from].outcomes.len() != specs[from].sizes.len() {
            problems.extend(sent[from].failures.iter().cloned());
            continue;
        }
        problems.extend(verify(
            sh,
            &Direction {
                what: format!(
                    "{}({}) -> {}({})",
                    ["client", "server"][from],
                    ctx.names[from],
                    ["client", "server"][to],
                    ctx.names[to]
                ),
                spec: &specs[from],
                sent: &sent[from],
                got: &got[to],
                sender: ctx.role(from),
                receiver: ctx.role(to),
            },
        ));
    }
    sh.rounds.fetch_add(1, Relaxed);
    if fault.is_none() {
        sh.clean_rounds.fetch_add(1, Relaxed);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fault {fault:?}, big send by end {big:?}, small buffers {small_buffers}:\n    {}",
            problems.join("\n    ")
        ))
    }
}

// ---- lanes, the monitor, the run ----------------------------------------------------------

/// How long the mix runs: until it has started at least `ops` operations *and* run
/// for at least `time` (then the rounds under way finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Operations to start, at least.
    pub ops: u64,
    /// Time to run, at least.
    pub time: Duration,
}

/// The knobs of a run, and the bounds its report is held to.
#[derive(Debug, Clone)]
pub struct Config {
    /// The seed of every random choice.
    pub seed: u64,
    /// Lanes per adapter pair (there are eight pairs); each lane holds a listener and
    /// a connection at a time.
    pub lanes_per_pair: usize,
    /// How long to run.
    pub budget: Budget,
    /// Operations of the same mix run first, before the descriptor and RSS baselines
    /// are taken, so that what the process keeps for good once it has run the mix
    /// (the engine and its threads, async-io's reactor, allocator arenas, cached
    /// thread stacks) is not mistaken for growth. Its outcomes are checked too.
    pub warm_up_ops: u64,
    /// The longest wait for any one operation before it counts as hung.
    pub op_limit: Duration,
    /// The longest a round may take.
    pub round_limit: Duration,
    /// How often the monitor samples descriptors, RSS and progress.
    pub sample_every: Duration,
    /// How often to print a progress line (the soak), if at all.
    pub print_every: Option<Duration>,
    /// At least this many operations must run.
    pub min_ops: u64,
    /// At least this many sockets must be open at once (registered with the engine).
    pub min_sockets: usize,
    /// RSS after the run may exceed RSS before it (after the warm-up) by at most this
    /// many bytes. Both are read after glibc's `malloc_trim`.
    pub rss_growth_limit: u64,
}

/// The adapter pairs of the lanes: (client, server).
pub const PAIRS: [(&str, &str); 8] = [
    ("callback", "callback"),
    ("tokio-ct", "tokio-ct"),
    ("tokio-mt", "tokio-mt"),
    ("smol", "smol"),
    ("callback", "tokio-mt"),
    ("tokio-mt", "smol"),
    ("smol", "tokio-ct"),
    ("tokio-ct", "callback"),
];

impl Config {
    /// The stress test: 48 lanes (96 connected sockets and 48 listeners at a time),
    /// at least 200,000 operations and at least 30 seconds, after a warm-up of 60,000.
    pub fn test(seed: u64) -> Config {
        Config {
            seed,
            lanes_per_pair: 6,
            budget: Budget {
                ops: 200_000,
                time: Duration::from_secs(30),
            },
            warm_up_ops: 60_000,
            op_limit: Duration::from_secs(10),
            round_limit: Duration::from_secs(60),
            sample_every: Duration::from_millis(250),
            print_every: None,
            min_ops: 200_000,
            min_sockets: 64,
            rss_growth_limit: 96 * MIB,
        }
    }

    /// The soak: the same mix for `minutes`, with a progress line every 5 seconds.
    pub fn soak(seed: u64, minutes: u64) -> Config {
        Config {
            budget: Budget {
                ops: 0,
                time: Duration::from_secs(minutes * 60),
            },
            sample_every: Duration::from_secs(1),
            print_every: Some(Duration::from_secs(5)),
            min_ops: 0,
            ..Config::test(seed)
        }
    }
}

/// Counters shared by the lanes and the monitor.
struct Shared {
    config: Config,
    started: Instant,
    stop: AtomicBool,
    sends: AtomicU64,
    receives: AtomicU64,
    accepts: AtomicU64,
    connects: AtomicU64,
    rounds: AtomicU64,
    clean_rounds: AtomicU64,
    closes: AtomicU64,
    listener_closes: AtomicU64,
    resets: AtomicU64,
    cancels: AtomicU64,
    records_checked: AtomicU64,
    bytes_checked: AtomicU64,
    failures: Mutex<Vec<String>>,
    statuses: Vec<Mutex<String>>,
}

impl Shared {
    fn new(config: Config, lanes: usize) -> Shared {
        Shared {
            config,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            sends: AtomicU64::new(0),
            receives: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            clean_rounds: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            listener_closes: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            records_checked: AtomicU64::new(0),
            bytes_checked: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            statuses: (0..lanes).map(|_| Mutex::new(String::new())).collect(),
        }
    }

    fn ops(&self) -> u64 {
        [&self.sends, &self.receives, &self.accepts, &self.connects]
            .iter()
            .map(|n| n.load(Relaxed))
            .sum()
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Relaxed)
            || (self.ops() >= self.config.budget.ops
                && self.started.elapsed() >= self.config.budget.time)
    }

    fn fail(&self, what: String) {
        let mut failures = lock(&self.failures);
        if failures.len() < 40 {
            failures.push(what);
        }
        self.stop.store(true, Relaxed);
    }

    fn status(&self, lane: usize, what: String) {
        if let Some(status) = self.statuses.get(lane) {
            *lock(status) = what;
        }
    }
}

/// Tells the monitor a lane ended, however it ended.
struct LaneEnded(mpsc::Sender<usize>, usize);

impl Drop for LaneEnded {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

fn spawn_lane<C: Net, S: Net>(
    sh: &Arc<Shared>,
    lane: usize,
    (client, server): (&Arc<C>, &Arc<S>),
    ended: &mpsc::Sender<usize>,
) -> Result<JoinHandle<()>, String> {
    let (sh, client, server) = (Arc::clone(sh), Arc::clone(client), Arc::clone(server));
    let ended = LaneEnded(ended.clone(), lane);
    thread::Builder::new()
        .name(format!("stress-lane-{lane}"))
        .spawn(move || {
            let _ended = ended;
            let mut rng =
                Rng::new(sh.config.seed ^ (lane as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut listener = None;
            let mut round = 0u32;
            while !sh.should_stop() {
                round += 1;
                let at = At { lane, round };
                if let Err(e) = one_round(&sh, at, &mut rng, (&*client, &*server), &mut listener) {
                    sh.fail(format!(
                        "lane {lane} ({} -> {}), round {round}: {e}",
                        client.name(),
                        server.name()
                    ));
                    break;
                }
            }
            sh.status(lane, format!("ended after {round} rounds"));
        })
        .map_err(|e| format!("cannot start lane {lane}: {e}"))
}

fn spawn_lanes(
    sh: &Arc<Shared>,
    nets: &Nets,
    ended: &mpsc::Sender<usize>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut lanes = Vec::new();
    for _ in 0..sh.config.lanes_per_pair {
        let n = nets;
        let id = lanes.len();
        // In the order of PAIRS.
        lanes.push(spawn_lane(sh, id, (&n.callback, &n.callback), ended)?);
        lanes.push(spawn_lane(sh, id + 1, (&n.tokio_ct, &n.tokio_ct), ended)?);
        lanes.push(spawn_lane(sh, id + 2, (&n.tokio_mt, &n.tokio_mt), ended)?);
        lanes.push(spawn_lane(sh, id + 3, (&n.smol, &n.smol), ended)?);
        lanes.push(spawn_lane(sh, id + 4, (&n.callback, &n.tokio_mt), ended)?);
        lanes.push(spawn_lane(sh, id + 5, (&n.tokio_mt, &n.smol), ended)?);
        lanes.push(spawn_lane(sh, id + 6, (&n.smol, &n.tokio_ct), ended)?);
        lanes.push(spawn_lane(sh, id + 7, (&n.tokio_ct, &n.callback), ended)?);
    }
    Ok(lanes)
}

/// One look at the process during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time since the run started.
    pub at: Duration,
    /// Operations started so far.
    pub ops: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Resident set size, bytes.
    pub rss: u64,
    /// Sockets registered with the engine.
    pub sockets: usize,
}

/// Completions of one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterCount {
    /// The adapter (and its runtime).
    pub name: &'static str,
    /// Operations started through it.
    pub started: u64,
    /// Completions reported: callbacks run, futures resolved.
    pub completed: u64,
    /// Futures dropped on purpose before they completed (their operations go on).
    pub abandoned: u64,
    /// Completions lost: a callback or a future dropped without reporting.
    pub lost: u64,
    /// Contract breaches seen inside callbacks and futures.
    pub anomalies: Vec<String>,
}

impl AdapterCount {
    /// Completions expected: every start but the futures dropped on purpose.
    pub fn expected(&self) -> u64 {
        self.started.saturating_sub(self.abandoned)
    }
}

/// What a run did and saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What this reports on: `"mix"`, or `"warm-up"` if the warm-up failed (the mix
    /// proper then did not run).
    pub stage: &'static str,
    /// The seed (replay with [`SEED_ENV`]).
    pub seed: u64,
    /// Operations of the warm-up run before the baselines (not counted below).
    pub warm_up_ops: u64,
    /// How long the mix ran.
    pub elapsed: Duration,
    /// Sends started (batched, dropped, bounded).
    pub sends: u64,
    /// Receives started (probes, bounded, dropped futures included).
    pub receives: u64,
    /// Accepts started.
    pub accepts: u64,
    /// Connects started.
    pub connects: u64,
    /// Rounds (connections) run.
    pub rounds: u64,
    /// Rounds without a close or reset.
    pub clean_rounds: u64,
    /// Sockets closed under pending operations (listeners included).
    pub closes: u64,
    /// Of `closes`, listeners closed under a pending accept.
    pub listener_closes: u64,
    /// Connections reset (`SO_LINGER` 0, then close).
    pub resets: u64,
    /// Operations that ended `Aborted` (timeouts and `cancel()`).
    pub cancels: u64,
    /// Records parsed and checked.
    pub records_checked: u64,
    /// Bytes received and checked.
    pub bytes_checked: u64,
    /// Completions per adapter.
    pub adapters: Vec<AdapterCount>,
    /// Open descriptors before the run (after a warm-up).
    pub fds_before: usize,
    /// Open descriptors after everything was dropped.
    pub fds_after: usize,
    /// The most descriptors seen open.
    pub fds_peak: usize,
    /// RSS before the run, bytes.
    pub rss_before: u64,
    /// RSS after everything was dropped, bytes.
    pub rss_after: u64,
    /// The highest RSS seen, bytes.
    pub rss_peak: u64,
    /// The most sockets registered with the engine at once.
    pub sockets_peak: usize,
    /// The monitor's samples.
    pub samples: Vec<Sample>,
    /// Whether the mix hung (then descriptors and RSS were not measured after it).
    pub hung: bool,
    /// What went wrong.
    pub failures: Vec<String>,
    /// The bounds the run is held to: minimum operations, minimum sockets, RSS growth.
    pub bounds: (u64, usize, u64),
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

impl Report {
    /// Operations started, all kinds.
    pub fn ops(&self) -> u64 {
        self.sends + self.receives + self.accepts + self.connects
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let adapters: Vec<String> = self
            .adapters
            .iter()
            .map(|a| format!("{} {}/{}", a.name, a.expected(), a.completed))
            .collect();
        let abandoned: u64 = self.adapters.iter().map(|a| a.abandoned).sum();
        let lost: u64 = self.adapters.iter().map(|a| a.lost).sum();
        format!(
            "stress summary ({}): seed {:#x}; {:.1} s (after a warm-up of {} operations); \
             {} operations (sends {}, receives {}, accepts {}, connects {}) in {} rounds ({} without close/reset); faults injected: \
             {} closes ({} of listeners), {} resets, {} cancels; completions expected/seen: {} \
             (futures dropped on purpose {}, lost {}); fds before/after {}/{} (peak {}); \
             RSS before/after {:.1}/{:.1} MiB (peak {:.1}, bound +{:.0} MiB); sockets peak {}; \
             {} records, {:.1} MiB checked; {} failures",
            self.stage,
            self.seed,
            self.elapsed.as_secs_f64(),
            self.warm_up_ops,
            self.ops(),
            self.sends,
            self.receives,
            self.accepts,
            self.connects,
            self.rounds,
            self.clean_rounds,
            self.closes,
            self.listener_closes,
            self.resets,
            self.cancels,
            adapters.join(", "),
            abandoned,
            lost,
            self.fds_before,
            self.fds_after,
            self.fds_peak,
            mib(self.rss_before),
            mib(self.rss_after),
            mib(self.rss_peak),
            mib(self.bounds.2),
            self.sockets_peak,
            self.records_checked,
            mib(self.bytes_checked),
            self.failures.len(),
        )
    }

    /// Failures, and adapters whose completions do not add up.
    pub fn accounting_problems(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for a in &self.adapters {
            if a.completed != a.expected() || a.lost > 0 {
                out.push(format!(
                    "{}: {} completions expected, {} seen, {} lost",
                    a.name,
                    a.expected(),
                    a.completed,
                    a.lost
                ));
            }
            out.extend(a.anomalies.iter().map(|x| format!("{}: {x}", a.name)));
        }
        out
    }

    /// Everything that is wrong with the run (empty if it passed): the accounting,
    /// descriptors back to their baseline, RSS growth within its bound, and (if nothing
    /// failed) the size of the run and that every fault kind was injected.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.accounting_problems();
        if self.hung {
            // Descriptors and RSS were not measured: operations are still stuck.
            return out;
        }
        let (min_ops, min_sockets, rss_growth) = self.bounds;
        if self.fds_after > self.fds_before {
            out.push(format!(
                "open descriptors did not return to their baseline: {} before, {} after",
                self.fds_before, self.fds_after
            ));
        }
        if self.rss_after > self.rss_before + rss_growth {
            out.push(format!(
                "RSS grew from {:.1} MiB to {:.1} MiB (bound +{:.0} MiB)",
                mib(self.rss_before),
                mib(self.rss_after),
                mib(rss_growth)
            ));
        }
        if !self.failures.is_empty() {
            // The mix stopped at the first failure: its size says nothing more.
            return out;
        }
        if self.ops() < min_ops {
            out.push(format!(
                "only {} operations ran (at least {min_ops})",
                self.ops()
            ));
        }
        if self.sockets_peak < min_sockets {
            out.push(format!(
                "at most {} sockets were open at once (at least {min_sockets})",
                self.sockets_peak
            ));
        }
        if self.closes == 0 || self.resets == 0 || self.cancels == 0 {
            out.push(format!(
                "a fault kind was never injected: {} closes, {} resets, {} cancels",
                self.closes, self.resets, self.cancels
            ));
        }
        out
    }

    /// The soak's trend check: the median descriptor count and RSS of the last third
    /// of the samples against those of the first third. Descriptors may rise by 16
    /// (connections in flight vary), RSS by a quarter or 32 MiB, whichever is more.
    pub fn growth_problems(&self) -> Vec<String> {
        let n = self.samples.len();
        if n < 6 {
            return Vec::new();
        }
        let third = n / 3;
        let median = |samples: &[Sample], key: fn(&Sample) -> u64| {
            let mut values: Vec<u64> = samples.iter().map(key).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let (first, last) = (&self.samples[..third], &self.samples[n - third..]);
        let mut out = Vec::new();
        let fds = |s: &Sample| s.fds as u64;
        let (fds_first, fds_last) = (median(first, fds), median(last, fds));
        if fds_last > fds_first + 16 {
            out.push(format!(
                "the descriptor count kept growing: median {fds_first} in the first third, \
                 {fds_last} in the last"
            ));
        }
        let rss = |s: &Sample| s.rss;
        let (rss_first, rss_last) = (median(first, rss), median(last, rss));
        if rss_last > rss_first + (rss_first / 4).max(32 * MIB) {
            out.push(format!(
                "RSS kept growing: median {:.1} MiB in the first third, {:.1} MiB in the last",
                mib(rss_first),
                mib(rss_last)
            ));
        }
        out
    }
}

/// Samples until every lane has ended; `true` if the mix hung.
fn monitor(
    sh: &Shared,
    tallies: &[(&'static str, Arc<Tally>)],
    ended: &mpsc::Receiver<usize>,
    report: &mut Report,
) -> bool {
    let mut remaining = sh.statuses.len();
    let config = &sh.config;
    let mut next_sample = Instant::now();
    let mut next_print = config.print_every.map(|every| Instant::now() + every);
    let (mut last_ops, mut last_progress) = (u64::MAX, Instant::now());
    let stall = config.op_limit * 2;
    while remaining > 0 {
        match ended.recv_timeout(next_sample.saturating_duration_since(Instant::now())) {
            Ok(_) => {
                remaining -= 1;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        next_sample = (next_sample + config.sample_every).max(now);
        let sample = Sample {
            at: sh.started.elapsed(),
            ops: sh.ops(),
            fds: open_fds(),
            rss: rss_bytes(),
            sockets: sockets_registered(),
        };
        report.fds_peak = report.fds_peak.max(sample.fds);
        report.rss_peak = report.rss_peak.max(sample.rss);
        report.sockets_peak = report.sockets_peak.max(sample.sockets);
        report.samples.push(sample);
        if let (Some(at), Some(every)) = (next_print, config.print_every) {
            if now >= at {
                next_print = Some(at + every);
                println!(
                    "soak {:>6.0} s  ops {:>10}  rounds {:>8}  fds {:>5}  rss {:>7.1} MiB  \
                     sockets {:>4}  closes {} resets {} cancels {}",
                    sample.at.as_secs_f64(),
                    sample.ops,
                    sh.rounds.load(Relaxed),
                    sample.fds,
                    mib(sample.rss),
                    sample.sockets,
                    sh.closes.load(Relaxed),
                    sh.resets.load(Relaxed),
                    sh.cancels.load(Relaxed),
                );
            }
        }
        if sample.ops != last_ops {
            (last_ops, last_progress) = (sample.ops, now);
            continue;
        }
        if now.duration_since(last_progress) < stall {
            continue;
        }
        let lanes: Vec<String> = sh
            .statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "    lane {i} ({} -> {}): {}",
                    PAIRS[i % 8].0,
                    PAIRS[i % 8].1,
                    lock(s)
                )
            })
            .collect();
        let counts: Vec<String> = tallies
            .iter()
            .map(|(name, t)| {
                let c = t.count(name);
                format!(
                    "{name} started {} completed {} abandoned {} lost {}",
                    c.started, c.completed, c.abandoned, c.lost
                )
            })
            .collect();
        sh.fail(format!(
            "hang: no operation started for {stall:?}\n  lanes:\n{}\n  adapters: {}",
            lanes.join("\n"),
            counts.join("; ")
        ));
        // The lanes' own bounded waits end them soon after the stop flag; wait that long.
        let grace = Instant::now() + config.op_limit + Duration::from_secs(5);
        while remaining > 0 {
            match ended.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                Ok(_) => remaining -= 1,
                Err(_) => break,
            }
        }
        return remaining > 0;
    }
    false
}

/// RSS after handing the allocator's free memory back to the system (glibc's
/// `malloc_trim`), so that it measures memory in use rather than what the allocator
/// keeps cached from the busiest moment of the run.
fn trimmed_rss() -> u64 {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim only returns free heap pages to the system; it has no
        // preconditions and is thread safe.
        unsafe { libc::malloc_trim(0) };
    }
    rss_bytes()
}

/// The descriptor count once it has stopped changing (for up to two seconds).
fn steady_fds() -> usize {
    let (mut last, mut same) = (open_fds(), 0);
    settle(Duration::from_secs(2), || {
        let now = open_fds();
        (same, last) = if now == last {
            (same + 1, now)
        } else {
            (0, now)
        };
        same >= 5
    });
    last
}

/// Runs the mix as `config` says and reports what it saw: first a warm-up of
/// [`Config::warm_up_ops`] operations, then the baselines, then the mix itself.
pub fn run(config: &Config) -> Report {
    let mut report = Report {
        stage: "mix",
        seed: config.seed,
        bounds: (config.min_ops, config.min_sockets, config.rss_growth_limit),
        ..Report::default()
    };
    let warm = Config {
        budget: Budget {
            ops: config.warm_up_ops,
            time: Duration::ZERO,
        },
        print_every: None,
        seed: config.seed ^ 0x5741_524D,
        ..config.clone()
    };
    let mut warmed = Report {
        stage: "warm-up",
        ..report.clone()
    };
    mix(&warm, &mut warmed, None);
    let trouble = warmed.accounting_problems();
    if warmed.hung || !trouble.is_empty() {
        // What the warm-up saw is the report: the mix proper never ran.
        warmed.failures = trouble
            .into_iter()
            .map(|t| format!("warm-up: {t}"))
            .collect();
        warmed.adapters.clear();
        return warmed;
    }
    report.warm_up_ops = warmed.ops();
    report.fds_before = steady_fds();
    report.rss_before = trimmed_rss();
    let baseline = report.fds_before;
    mix(config, &mut report, Some(baseline));
    report
}

/// One run of the mix; afterwards (unless it hung), waits for what finishes in the
/// background and for the descriptor count to come down to `fds_baseline`.
fn mix(config: &Config, report: &mut Report, fds_baseline: Option<usize>) {
    let nets = match Nets::new() {
        Ok(nets) => nets,
        Err(e) => {
            report.failures.push(e);
            return;
        }
    };
    let tallies = nets.tallies();
    let sh = Arc::new(Shared::new(
        config.clone(),
        config.lanes_per_pair * PAIRS.len(),
    ));
    let (ended_tx, ended) = mpsc::channel();
    let lanes = spawn_lanes(&sh, &nets, &ended_tx);
    drop(ended_tx);
    let hung = match &lanes {
        Ok(_) => monitor(&sh, &tallies, &ended, report),
        Err(e) => {
            sh.fail(e.clone());
            settle(config.round_limit, || Arc::strong_count(&sh) == 1);
            false
        }
    };
    report.elapsed = sh.started.elapsed();
    report.hung = hung;
    if !hung {
        for lane in lanes.into_iter().flatten() {
            if lane.join().is_err() {
                sh.fail("a lane panicked".into());
            }
        }
        // Stop the runtimes; then wait for what still finishes in the background.
        for stuck in nets.shut_down() {
            sh.fail(stuck);
        }
        drop(nets);
        if !settle(Duration::from_secs(10), || {
            tallies.iter().all(|(_, t)| t.settled())
        }) {
            sh.fail("operations still pending 10 s after the mix ended".into());
        }
        if let Some(baseline) = fds_baseline {
            settle(Duration::from_secs(10), || open_fds() <= baseline);
            report.fds_after = open_fds();
            report.rss_after = trimmed_rss();
        }
    }
    report.sends = sh.sends.load(Relaxed);
    report.receives = sh.receives.load(Relaxed);
    report.accepts = sh.accepts.load(Relaxed);
    report.connects = sh.connects.load(Relaxed);
    report.rounds = sh.rounds.load(Relaxed);
    report.clean_rounds = sh.clean_rounds.load(Relaxed);
    report.closes = sh.closes.load(Relaxed);
    report.listener_closes = sh.listener_closes.load(Relaxed);
    report.resets = sh.resets.load(Relaxed);
    report.cancels = sh.cancels.load(Relaxed);
    report.records_checked = sh.records_checked.load(Relaxed);
    report.bytes_checked = sh.bytes_checked.load(Relaxed);
    report.adapters = tallies.iter().map(|(name, t)| t.count(name)).collect();
    report.failures.extend(lock(&sh.failures).iter().cloned());
}
