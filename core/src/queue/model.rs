//! Model checks of the lifecycle with loom: every interleaving of readiness edges,
//! `begin_*`, cancel, close and `end_*` on one queue. Run by `cargo xtask test`
//! (`RUSTFLAGS="--cfg loom" cargo test -p asyncresult-core --lib model`).
#![cfg(all(test, loom))]

use std::sync::Arc;

use super::*;
use crate::engine::wait_gate::WaitGate;
use crate::op::{OpContext, Produces, Task, TaskSink};

/// Runs `f` on the model `m` in a new model thread.
fn spawn_on<T: 'static>(m: &Arc<Model>, f: fn(&Arc<Model>) -> T) -> loom::thread::JoinHandle<T> {
    let m = Arc::clone(m);
    loom::thread::spawn(move || f(&m))
}

/// Runs `f` on this model thread while a delivery (a unit of data, then its edge)
/// races it on another; returns what `f` returned once the delivery is over.
fn racing_a_delivery<T>(m: &Arc<Model>, f: impl FnOnce(&Arc<Model>) -> T) -> T {
    let kernel = spawn_on(m, Model::deliver);
    let out = f(m);
    join(kernel);
    out
}

/// The wait of a try that found nothing; panics with `why` if it took something.
fn waiting(attempt: TryIo<()>, why: &str) -> AsyncResult<()> {
    match attempt {
        TryIo::WouldBlock(ready) => ready,
        TryIo::Done(()) => panic!("{why}"),
    }
}

/// Joins a model thread, re-raising its panic (with its own message) if it had one.
fn join<T>(handle: loom::thread::JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Runs `body` on a fresh model in every interleaving loom explores, then checks that
/// the engine's count of waits has settled with the queue ([`Model::settled`]).
fn check(body: impl Fn(&Arc<Model>) + Send + Sync + 'static) {
    loom::model(move || {
        let m = Model::new();
        body(&m);
        m.settled();
    });
}

/// A socket reduced to what the queue relies on: data the "kernel" holds, and the
/// rule that a readiness edge (an `edge` call) follows every arrival.
struct Model {
    queue: OpQueue<Model>,
    /// The kernel's receive queue: under a lock, as in the kernel, so a syscall
    /// never reads a stale count.
    data: loom::sync::Mutex<usize>,
    /// Closed: set before the queue is stopped, as `SocketCore` does.
    closed: loom::sync::atomic::AtomicBool,
    sink: Sink,
    /// The engine's count of waits, with a gated driver (see `engine::wait_gate`).
    gate: WaitGate,
}

struct Sink;

impl TaskSink for Sink {
    fn post(&self, task: Arc<dyn Task>) {
        task.run();
    }
}

impl OpContext for Model {
    fn id(&self) -> u64 {
        1
    }
    fn sink(&self) -> &dyn TaskSink {
        &self.sink
    }
    fn is_closed(&self) -> bool {
        // A point where another thread may run while this one holds the queue.
        loom::thread::yield_now();
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
    fn cancel(&self, _kind: OpKind, addr: *const ()) -> bool {
        let mut completed = Completed::new();
        // As `SocketCore::cancel_op` does (the queue serves itself after a cancel).
        let cancelled = self.queue.cancel(self, addr, &mut completed, || {});
        completed.notify(&self.sink);
        cancelled
    }
    fn wait_began(&self) -> Option<fn()> {
        self.gate.began()
    }
    fn wait_ended(&self) {
        self.gate.ended();
    }
}

/// The gated driver's hook: re-arming is the gate's own state here (`is_deaf`).
fn rearm() {}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            queue: OpQueue::default(),
            data: loom::sync::Mutex::new(0),
            closed: loom::sync::atomic::AtomicBool::new(false),
            sink: Sink,
            gate: {
                let gate = WaitGate::default();
                gate.gate(rearm);
                gate
            },
        })
    }

    /// Once every model thread is joined: the engine counts this queue as waiting
    /// exactly when it holds something, and a gated driver listens then.
    fn settled(&self) {
        let holds = {
            let inner = self.queue.inner.lock();
            !inner.ops.is_empty() || inner.parked.is_some()
        };
        assert_eq!(
            self.gate.waits(),
            usize::from(holds),
            "the count of waits is off"
        );
        if holds {
            assert!(!self.gate.is_deaf(), "a wait with the driver not listening");
        }
    }

    /// The gated driver's drain: an edge, then it stops listening if nothing waits.
    fn drive(self: &Arc<Self>) {
        self.edge();
        self.gate.disarm_if_idle();
    }

    /// The kernel's receive queue, locked.
    fn data(&self) -> loom::sync::MutexGuard<'_, usize> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel delivers one unit of data, then the poller reports the edge.
    fn deliver(self: &Arc<Self>) {
        *self.data() += 1;
        self.edge();
    }

    /// A readiness edge, as a poller serves it: the queue runs its operations
    /// unless another thread holds it for an attempt (which then serves it for
    /// the edge).
    fn edge(self: &Arc<Self>) {
        let mut completed = Completed::new();
        self.queue.edge(self, &mut completed);
        completed.notify(&self.sink);
    }

    /// Close: the queue stops and its operations complete with `Disposed`; returns
    /// how many it aborted.
    fn close(self: &Arc<Self>) -> usize {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        let mut completed = Completed::new();
        let stopped = self.queue.stop(self, &mut completed);
        completed.notify(&self.sink);
        stopped.aborted
    }

    /// Takes one unit if the kernel has one (a receive syscall).
    fn take(&self) -> bool {
        let mut data = self.data();
        let had = *data > 0;
        if had {
            *data -= 1;
        }
        had
    }

    /// Takes every unit the kernel has (a short TCP read); if it took any, the
    /// queue is noted drained, as `SocketCore::read_stream` does.
    fn take_all(&self) -> usize {
        let took = std::mem::take(&mut *self.data());
        if took > 0 {
            self.queue.note_drained();
        }
        took
    }

    /// Units the kernel still holds.
    fn unread(&self) -> usize {
        *self.data()
    }

    /// `begin_*` of a receive doing `work`.
    fn start<W: Work<Model>>(self: &Arc<Self>, work: W) -> AsyncResult<W::Output> {
        match self.queue.start(self, OpKind::Receive, work, None, None) {
            Ok(ar) => ar,
            Err(e) => panic!("begin failed: {e}"),
        }
    }

    /// A receive attempt (`try_now`) in `turn`: what `now` takes, or a
    /// readiness wait.
    fn try_now<T>(self: &Arc<Self>, turn: Turn<'_>, now: fn(&Model) -> Option<T>) -> TryIo<T> {
        match self
            .queue
            .try_now(self, OpKind::ReceiveReady, turn, false, |m| Ok(now(m)))
        {
            Ok(attempt) => attempt,
            Err(e) => panic!("try_now failed: {e}"),
        }
    }

    /// A future's attempt to take one unit in `turn`, with its error (`Disposed`
    /// once the queue is stopped) handed back rather than raised.
    fn try_in(self: &Arc<Self>, turn: Turn<'_>) -> Result<TryIo<()>, Error> {
        self.queue
            .try_now(self, OpKind::ReceiveReady, turn, false, |m| {
                Ok(m.take().then_some(()))
            })
    }

    /// A place taken without a try (a future whose first poll the budget put off),
    /// on the open queue.
    fn hold(self: &Arc<Self>) -> AsyncResult<()> {
        match self.try_in(Turn(TurnKind::Hold)) {
            Ok(attempt) => waiting(attempt, "a held place does not try"),
            Err(e) => panic!("the queue is open, yet {e}"),
        }
    }

    fn receive(self: &Arc<Self>) -> AsyncResult<()> {
        self.start(Take)
    }

    /// A future's first attempt to take one unit.
    fn try_receive(self: &Arc<Self>) -> TryIo<()> {
        self.try_now(Turn(TurnKind::Future), |m| m.take().then_some(()))
    }

    /// A future's attempt to take one unit after its wait `reached` completed.
    fn retry_receive(self: &Arc<Self>, reached: &AsyncResult<()>) -> TryIo<()> {
        self.try_now(Turn(TurnKind::Reached(reached)), |m| m.take().then_some(()))
    }

    /// A receive that takes all there is.
    fn receive_all(self: &Arc<Self>) -> AsyncResult<usize> {
        self.start(TakeAll)
    }

    /// A future's attempt to take all there is.
    fn try_receive_all(self: &Arc<Self>) -> TryIo<usize> {
        self.try_now(Turn(TurnKind::Future), |m| {
            Some(m.take_all()).filter(|&took| took > 0)
        })
    }
}

/// A receive of all there is: takes it if there is any, else would block.
struct TakeAll;

impl Produces for TakeAll {
    type Output = usize;
    type Spent = ();

    fn spend(self) -> Option<()> {
        None
    }
}

impl Work<Model> for TakeAll {
    fn attempt(&mut self, m: &Model) -> Attempt<usize> {
        match m.take_all() {
            0 => Attempt::WouldBlock,
            took => Attempt::Done(Ok(took)),
        }
    }
}

/// A receive of one unit: takes it if the kernel has one, else would block.
struct Take;

impl Produces for Take {
    type Output = ();
    type Spent = ();

    fn spend(self) -> Option<()> {
        None
    }
}

impl Work<Model> for Take {
    fn attempt(&mut self, m: &Model) -> Attempt<()> {
        if m.take() {
            Attempt::Done(Ok(()))
        } else {
            Attempt::WouldBlock
        }
    }
}

/// An edge racing with `begin`: data that arrives is never left unclaimed by a
/// waiting operation (no lost wake-up).
#[test]
fn no_lost_wake_up() {
    check(|m| {
        let ar = racing_a_delivery(m, Model::receive);
        assert!(
            ar.is_completed(),
            "data arrived but the receive still waits"
        );
    });
}

/// A gated driver drains (an edge) and stops listening if nothing waits, racing a
/// receive that starts to wait: whatever the order, the waiting receive is counted and
/// the driver listens for it (the wait re-armed it, or the driver saw it and listened
/// on), so the data that comes next is served.
#[test]
fn a_wait_never_finds_the_gated_driver_deaf() {
    check(|m| {
        let driver = spawn_on(m, Model::drive);
        let receive = m.receive();
        join(driver);
        m.settled();
        m.deliver();
        assert!(receive.is_completed(), "the drain after the data serves it");
    });
}

/// A future's receive attempt races a delivery and its edge: the edge that finds
/// the queue held for the attempt is served by the attempt's thread, so either the
/// attempt takes the unit or its readiness wait completes.
#[test]
fn an_edge_during_an_attempt_is_served_by_the_attempt() {
    check(|m| {
        let attempt = racing_a_delivery(m, Model::try_receive);
        if let TryIo::WouldBlock(ready) = attempt {
            assert!(ready.is_completed(), "data arrived but the attempt waits");
        }
    });
}

/// A future's readiness wait, once reached, keeps its place: a receive begun behind
/// it while the data arrives does not take the unit the future was woken for; the
/// future's next try does, and the receive gets the next unit.
#[test]
fn a_reached_wait_keeps_its_place_for_the_futures_try() {
    check(|m| {
        let ready = waiting(m.try_receive(), "nothing has arrived yet");
        let behind = racing_a_delivery(m, Model::receive);
        assert!(ready.is_completed(), "the unit arrived but the wait waits");
        assert!(
            !behind.is_completed(),
            "the receive begun later took the unit"
        );
        assert!(
            matches!(m.retry_receive(&ready), TryIo::Done(())),
            "the future's try found nothing"
        );
        assert!(!behind.is_completed(), "only one unit arrived");
        m.deliver();
        assert!(behind.is_completed(), "the next unit went to nobody");
    });
}

/// A future's try that finds nothing in its place (the unit went elsewhere) waits
/// at the head again: the next unit, whenever its edge comes, is still the
/// future's, not the receive's begun behind it.
#[test]
fn a_try_that_finds_nothing_keeps_the_head() {
    check(|m| {
        let ready = reached_place(m);
        let behind = m.receive();
        assert!(m.take(), "another reader takes the unit");
        let again = waiting(m.retry_receive(&ready), "the unit is gone");
        drop(ready);
        racing_a_delivery(m, |_| ());
        assert!(again.is_completed(), "the unit arrived but the wait waits");
        assert!(
            !behind.is_completed(),
            "the receive begun later took the unit"
        );
        assert!(matches!(m.retry_receive(&again), TryIo::Done(())));
        m.deliver();
        assert!(behind.is_completed(), "the next unit went to nobody");
    });
}

/// Another future's try is not held up by a reached wait (tries are not ordered
/// among themselves): it takes the unit; the woken future's try finds nothing and
/// waits at the head again, still ahead of a receive begun after it, racing the
/// next delivery.
#[test]
fn a_try_is_not_held_up_by_another_futures_wait() {
    check(|m| {
        let ready = reached_place(m);
        assert!(ready.is_completed());
        assert!(
            matches!(m.try_receive(), TryIo::Done(())),
            "another future's try waited behind the reached wait"
        );
        let again = waiting(m.retry_receive(&ready), "the unit was taken");
        let behind = racing_a_delivery(m, Model::receive);
        assert!(again.is_completed(), "the unit arrived but the wait waits");
        assert!(
            !behind.is_completed(),
            "the receive begun later took the unit"
        );
        assert!(matches!(m.retry_receive(&again), TryIo::Done(())));
        m.deliver();
        assert!(behind.is_completed());
    });
}

/// A future kept but not polled (its wait reached, its try not coming) holds no
/// other future up: a later future's wait, queued behind it before the data
/// arrives, is woken by the same edge, racing it, and its try takes the unit. A
/// receive begun after both waits for the kept one's turn, and a try begun after
/// the receive waits behind it; giving the kept place up lets both go on.
#[test]
fn a_wait_behind_a_reached_one_is_woken_too() {
    check(|m| {
        let kept = waiting(m.try_receive(), "nothing has arrived yet");
        let later = waiting(m.try_receive(), "nothing has arrived yet");
        let behind = m.receive();
        m.deliver();
        assert!(kept.is_completed(), "the unit arrived but the first waits");
        assert!(later.is_completed(), "the second wait was not woken");
        assert!(matches!(m.retry_receive(&later), TryIo::Done(())));
        m.deliver();
        assert!(!behind.is_completed(), "went ahead of the kept future");
        let last = waiting(
            m.try_receive(),
            "a try went ahead of the receive begun before it",
        );
        let giver = loom::thread::spawn(move || kept.cancel());
        m.deliver();
        join(giver);
        assert!(behind.is_completed(), "the kept place was given up");
        assert!(last.is_completed(), "the next unit's try was not woken");
        assert!(matches!(m.retry_receive(&last), TryIo::Done(())));
    });
}

/// A future that goes away after its wait was reached gives its place up, racing
/// the next delivery: the receive behind it takes the unit the future left, and
/// nothing is lost or stuck.
#[test]
fn a_reached_wait_given_up_lets_the_queue_go_on() {
    check(|m| {
        let ready = reached_place(m);
        let (first, second) = (m.receive(), m.receive());
        assert!(ready.is_completed() && !first.is_completed());
        let giver = loom::thread::spawn(move || ready.cancel());
        m.deliver();
        assert!(!join(giver), "a reached wait has nothing to cancel");
        assert!(first.is_completed(), "the unit left is the first receive's");
        assert!(second.is_completed(), "the next unit went to nobody");
        assert_eq!(m.unread(), 0);
    });
}

/// A second poller's edge (with no data) races a delivery and a `begin`: whichever
/// threads hold the queue when the edges come, the delivered unit is never left
/// unclaimed while the first receive waits.
#[test]
fn an_edge_that_finds_the_queue_held_is_not_lost() {
    check(|m| {
        let first = m.receive();
        let kernel = spawn_on(m, Model::deliver);
        let poller = spawn_on(m, Model::edge);
        let second = m.receive();
        join(kernel);
        join(poller);
        assert!(
            first.is_completed(),
            "data arrived but the first receive waits"
        );
        assert!(!second.is_completed(), "only one unit arrived");
    });
}

/// A receive served after a wait that drained the kernel's queue lets the next one
/// wait without trying; a delivery racing the next one (its edge at any point) is
/// never left unread while it waits.
#[test]
fn a_receive_after_a_draining_one_loses_no_data() {
    check(|m| {
        let first = m.receive_all();
        m.deliver();
        assert!(first.is_completed(), "the edge serves the first receive");
        let second = racing_a_delivery(m, Model::receive_all);
        assert!(
            second.is_completed(),
            "data arrived but the second receive waits"
        );
    });
}

/// A delivery whose edge comes while the draining read's hold is on: that read may
/// have left the new unit behind, so the note goes, and the next receive tries.
#[test]
fn a_delivery_during_the_draining_read_is_not_hidden() {
    check(|m| {
        let first = m.receive_all();
        let kernel = spawn_on(m, Model::deliver);
        m.deliver();
        join(kernel);
        assert!(first.is_completed(), "the edges serve the first receive");
        let second = m.receive_all();
        assert!(
            second.is_completed() || m.unread() == 0,
            "data is there but the second receive waits"
        );
    });
}

/// The same for a future's attempts: after one that drained the queue, the next
/// one's readiness wait completes if data arrives.
#[test]
fn an_attempt_after_a_draining_one_loses_no_data() {
    check(|m| {
        m.deliver();
        let (first, second) = racing_a_delivery(m, |m| (m.try_receive_all(), m.try_receive_all()));
        assert!(matches!(first, TryIo::Done(_)), "a unit was there before");
        if let TryIo::WouldBlock(ready) = second {
            assert!(
                ready.is_completed() || m.unread() == 0,
                "data arrived but the attempt waits"
            );
        }
    });
}

/// Operations complete in the order they were begun, whatever the interleaving.
#[test]
fn fifo_under_concurrent_edges() {
    check(|m| {
        let (first, second) = racing_a_delivery(m, |m| (m.receive(), m.receive()));
        assert!(
            first.is_completed(),
            "the first receive gets the first unit"
        );
        assert!(!second.is_completed(), "only one unit arrived");
        m.deliver();
        assert!(second.is_completed());
    });
}

/// Completion, cancel and close race: the operation completes exactly once, with
/// the outcome of whichever won, and `cancel` says whether it won.
#[test]
fn complete_cancel_and_close_race() {
    check(|m| {
        let ar = m.receive();
        let kernel = spawn_on(m, Model::deliver);
        let canceller = {
            let ar = ar.clone();
            loom::thread::spawn(move || ar.cancel())
        };
        m.close();
        join(kernel);
        let cancelled = join(canceller);
        assert!(ar.is_completed());
        let outcome = ar.finish();
        match &outcome {
            Ok(()) => assert!(!cancelled),
            Err(Error::Aborted) => assert!(cancelled),
            Err(Error::Disposed) => assert!(!cancelled),
            Err(e) => panic!("unexpected outcome {e}"),
        }
        assert!(matches!(ar.finish(), Err(Error::AlreadyEnded)));
    });
}

/// `end` blocks until completion and takes the result once, even when two threads
/// end the same result at the same time.
#[test]
fn end_waits_and_takes_once() {
    check(|m| {
        let ar = m.receive();
        let kernel = spawn_on(m, Model::deliver);
        let other = {
            let ar = ar.clone();
            loom::thread::spawn(move || ar.finish())
        };
        let mine = ar.finish();
        let theirs = join(other);
        join(kernel);
        let oks = [&mine, &theirs].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "exactly one end takes the result");
        assert!(
            matches!(mine, Err(Error::AlreadyEnded)) || matches!(theirs, Err(Error::AlreadyEnded))
        );
    });
}

/// A future's wait, reached: its try found nothing, then a unit arrived.
fn reached_place(m: &Arc<Model>) -> AsyncResult<()> {
    let ready = waiting(m.try_receive(), "nothing has arrived yet");
    m.deliver();
    ready
}

/// Ends `receive`, which a close (that aborted `aborted` operations) raced: 1 if it
/// took a unit, 0 if the close disposed it (and counted it).
fn units_taken_before_close(receive: &AsyncResult<()>, aborted: usize) -> usize {
    match receive.finish() {
        Ok(()) => {
            assert_eq!(aborted, 0, "close counted a receive that completed");
            1
        }
        Err(Error::Disposed) => {
            assert_eq!(aborted, 1, "close disposed the receive without counting it");
            0
        }
        Err(e) => panic!("unexpected outcome {e}"),
    }
}

/// Runs `ar.cancel()` on a new model thread.
fn cancelling<T: 'static>(ar: &AsyncResult<T>) -> loom::thread::JoinHandle<bool> {
    let ar = ar.clone();
    loom::thread::spawn(move || ar.cancel())
}

/// A receive begun behind a reached place, with a later future's wait queued behind
/// the receive, is cancelled while the kept future takes its turn; two units are
/// there. The later wait was not woken by the edges (the receive held it up); once
/// the receive is gone it stands right behind the kept place, so when the kept
/// future's try takes one unit and its place goes, the unit left must still reach
/// the later future (its wait woken, or the receive took it).
#[test]
fn a_receive_cancelled_behind_a_reached_place_strands_no_wait() {
    check(|m| {
        let kept = reached_place(m);
        let behind = m.receive();
        let later = waiting(
            m.try_receive(),
            "a try went ahead of the receive begun before it",
        );
        m.deliver();
        assert!(kept.is_completed() && !behind.is_completed() && !later.is_completed());
        let canceller = cancelling(&behind);
        let took = m.retry_receive(&kept);
        let cancelled = join(canceller);
        assert!(
            matches!(took, TryIo::Done(())),
            "the kept future's try found nothing"
        );
        if cancelled {
            assert!(
                later.is_completed() || m.unread() == 0,
                "a unit is left but the later future's wait was not woken"
            );
        } else {
            assert!(
                behind.is_completed(),
                "cancel said no, yet the receive waits"
            );
            assert_eq!(m.unread(), 0);
        }
    });
}

/// Close races a reached place's try and a delivery, with a receive queued behind
/// the place: the try takes the unit or fails `Disposed`; the receive completes
/// exactly once (a unit or `Disposed`), and close counts it as aborted iff it
/// disposed it; the reached wait's own result stays what it was; no unit is taken
/// twice or by nobody.
#[test]
fn close_races_a_reached_place_and_its_try() {
    check(|m| {
        let ready = reached_place(m);
        let behind = m.receive();
        let closer = spawn_on(m, Model::close);
        let kernel = spawn_on(m, Model::deliver);
        let tried = m.try_in(Turn(TurnKind::Reached(&ready)));
        let aborted = join(closer);
        join(kernel);
        let by_try = match tried {
            Ok(TryIo::Done(())) => 1,
            Err(Error::Disposed) => 0,
            Ok(TryIo::WouldBlock(_)) => panic!("the reached place's try found nothing"),
            Err(e) => panic!("unexpected error {e}"),
        };
        assert!(behind.is_completed(), "close left the receive waiting");
        let by_receive = units_taken_before_close(&behind, aborted);
        assert!(matches!(behind.finish(), Err(Error::AlreadyEnded)));
        assert_eq!(
            by_try + by_receive + m.unread(),
            2,
            "a unit taken twice or lost"
        );
        assert!(
            matches!(ready.take_ready_result(), Ok(())),
            "the reached wait changed"
        );
    });
}

/// A kept future gives its place up (its reached wait cancelled) while a second
/// unit arrives and another future makes its first try, a receive queued behind the
/// place: the receive, first in line once the place goes, gets a unit; the other
/// future gets the second unit or waits with nothing left to take.
#[test]
fn giving_up_a_place_races_an_edge_and_another_try() {
    check(|m| {
        let kept = reached_place(m);
        let behind = m.receive();
        let giver = cancelling(&kept);
        let kernel = spawn_on(m, Model::deliver);
        let other = m.try_receive();
        assert!(!join(giver), "a reached wait has nothing to cancel");
        join(kernel);
        assert!(
            behind.is_completed(),
            "the place went but the receive waits"
        );
        assert!(behind.finish().is_ok());
        let by_other = match other {
            TryIo::Done(()) => 1,
            TryIo::WouldBlock(ready) => {
                assert!(
                    ready.is_completed() || m.unread() == 0,
                    "a unit is left but the other future's wait waits"
                );
                0
            }
        };
        assert_eq!(1 + by_other + m.unread(), 2, "a unit taken twice or lost");
    });
}

/// A place taken without a try (`Hold`, the first poll put off by the budget) races
/// close and a delivery while its future tries in it: the try takes the unit, or
/// fails `Disposed`, or waits; a wait it leaves is completed by close (or the edge),
/// never left pending.
#[test]
fn a_held_place_races_close_and_an_edge() {
    check(|m| {
        let held = m.hold();
        let closer = spawn_on(m, Model::close);
        let kernel = spawn_on(m, Model::deliver);
        let tried = m.try_in(Turn(TurnKind::Reached(&held)));
        let aborted = join(closer);
        join(kernel);
        assert!(aborted <= 1, "one wait at most to dispose");
        match tried {
            Ok(TryIo::Done(())) => assert_eq!(m.unread(), 0),
            Ok(TryIo::WouldBlock(again)) => {
                assert!(again.is_completed(), "close left the wait pending");
            }
            Err(Error::Disposed) => assert!(held.is_completed(), "close left the place pending"),
            Err(e) => panic!("unexpected error {e}"),
        }
    });
}

/// Two futures' waits and a receive behind them are reached by one unit's edge;
/// the first future takes its turn while the second gives its place up and a second
/// unit arrives: the first takes a unit, the receive the other; nothing is left
/// waiting and nothing unread.
#[test]
fn two_places_one_given_up_while_the_other_takes_its_turn() {
    check(|m| {
        let first = waiting(m.try_receive(), "nothing has arrived yet");
        let second = waiting(m.try_receive(), "nothing has arrived yet");
        let behind = m.receive();
        m.deliver();
        assert!(first.is_completed() && second.is_completed() && !behind.is_completed());
        let giver = cancelling(&second);
        let kernel = spawn_on(m, Model::deliver);
        let took = m.retry_receive(&first);
        assert!(!join(giver), "a reached wait has nothing to cancel");
        join(kernel);
        assert!(
            matches!(took, TryIo::Done(())),
            "the first future's try found nothing"
        );
        assert!(behind.is_completed(), "the second unit went to nobody");
        assert!(behind.finish().is_ok());
        assert_eq!(m.unread(), 0);
    });
}

/// A future's try in its reached place races the cancel of that same place (its
/// wait given up from another thread), a receive queued behind: the unit goes to
/// exactly one of them, cancel reports nothing cancelled, and a wait the try leaves
/// (the place already gone) is a fresh one.
#[test]
fn a_try_in_a_place_given_up_meanwhile() {
    check(|m| {
        let ready = reached_place(m);
        let behind = m.receive();
        let giver = cancelling(&ready);
        let tried = m.retry_receive(&ready);
        assert!(!join(giver), "a reached wait has nothing to cancel");
        let by_try = match tried {
            TryIo::Done(()) => 1,
            TryIo::WouldBlock(again) => {
                assert!(!again.is_completed(), "nothing more arrived");
                0
            }
        };
        let by_receive = usize::from(behind.is_completed());
        assert_eq!(by_try + by_receive, 1, "the unit taken twice or by nobody");
        assert_eq!(m.unread(), 0);
    });
}

/// Close races a kept future giving its reached place up and a second unit's
/// delivery, a receive queued behind the place: the receive completes exactly once,
/// with a unit or `Disposed` (and close counts it iff it disposed it); giving the
/// place up cancels nothing; no unit is taken twice.
#[test]
fn close_races_giving_up_a_place() {
    check(|m| {
        let kept = reached_place(m);
        let behind = m.receive();
        let closer = spawn_on(m, Model::close);
        let kernel = spawn_on(m, Model::deliver);
        assert!(!kept.cancel(), "a reached wait has nothing to cancel");
        let aborted = join(closer);
        join(kernel);
        assert!(behind.is_completed(), "the receive was left waiting");
        let by_receive = units_taken_before_close(&behind, aborted);
        assert_eq!(by_receive + m.unread(), 2, "a unit taken twice or lost");
        assert!(
            matches!(kept.take_ready_result(), Ok(())),
            "the reached wait changed"
        );
    });
}

/// A future gives its place up while it is still pending, racing the edge that
/// reaches it, a receive queued behind: `cancel` says `true` exactly when the wait
/// ends `Aborted` (else it was reached first, and its place goes all the same); the
/// receive gets the unit either way.
#[test]
fn giving_up_a_pending_place_races_its_edge() {
    check(|m| {
        let place = waiting(m.try_receive(), "nothing has arrived yet");
        let behind = m.receive();
        let kernel = spawn_on(m, Model::deliver);
        let cancelled = place.cancel();
        join(kernel);
        assert!(place.is_completed());
        match place.take_ready_result() {
            Ok(()) => assert!(!cancelled, "cancel said yes, but the wait was reached"),
            Err(Error::Aborted) => assert!(cancelled, "aborted, but cancel said no"),
            Err(e) => panic!("unexpected outcome {e}"),
        }
        assert!(
            behind.is_completed(),
            "the place went but the receive waits"
        );
        assert!(behind.finish().is_ok());
        assert_eq!(m.unread(), 0);
    });
}

/// Two futures' waits reached by one edge, a receive queued behind both: both
/// futures try in their places while a second unit arrives. Each unit is taken once;
/// a future that found nothing waits in its place and is woken if a unit is left;
/// the receive, behind both places, gets nothing while they are kept.
#[test]
fn two_reached_places_try_racing_an_edge() {
    check(|m| {
        let first = waiting(m.try_receive(), "nothing has arrived yet");
        let second = waiting(m.try_receive(), "nothing has arrived yet");
        let behind = m.receive();
        m.deliver();
        let kernel = spawn_on(m, Model::deliver);
        let other = {
            let m = Arc::clone(m);
            let second = second.clone();
            loom::thread::spawn(move || m.retry_receive(&second))
        };
        let mine = m.retry_receive(&first);
        let theirs = join(other);
        join(kernel);
        let mut taken = 0;
        let mut kept = 0;
        for tried in [mine, theirs] {
            match tried {
                TryIo::Done(()) => taken += 1,
                TryIo::WouldBlock(again) => {
                    kept += 1;
                    assert!(
                        again.is_completed() || m.unread() == 0,
                        "a unit is left but a future's wait waits"
                    );
                }
            }
        }
        assert!(taken >= 1, "the first unit was there for both tries");
        if kept > 0 {
            assert!(
                !behind.is_completed(),
                "the receive went ahead of a kept place"
            );
        }
        assert_eq!(taken + usize::from(behind.is_completed()) + m.unread(), 2);
    });
}

/// A place taken without a try (`Hold`) behind a receive: its future's try in that
/// place races the delivery of one unit. The unit is the receive's (begun first); the
/// try waits, in its place or a fresh one, and never takes it.
#[test]
fn a_held_place_behind_a_receive_waits_its_turn() {
    check(|m| {
        let first = m.receive();
        let held = m.hold();
        let kernel = spawn_on(m, Model::deliver);
        let tried = m.try_in(Turn(TurnKind::Reached(&held)));
        join(kernel);
        assert!(
            matches!(tried, Ok(TryIo::WouldBlock(_))),
            "the held place's try took the unit of the receive begun before it"
        );
        assert!(
            first.is_completed(),
            "the unit arrived but the receive waits"
        );
        assert!(first.finish().is_ok());
        assert_eq!(m.unread(), 0);
    });
}

/// A waker that counts its wakes (a parked half's, in these models).
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A parked half's waker, and whether it has been woken.
fn half_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    (counter, waker)
}

impl CountingWaker {
    fn woken(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

impl Model {
    /// A stream half's try to take one unit (`try_or_park`), parking `waker` if it
    /// would block; its error handed back.
    fn try_or_park(self: &Arc<Self>, waker: &Waker) -> Result<Parking<()>, Error> {
        self.queue.try_or_park(
            self,
            OpKind::ReceiveReady,
            false,
            Park {
                waker,
                parked: false,
            },
            |m| Ok(m.take().then_some(())),
        )
    }
}

/// A stream half's try races a delivery and its edge: either the try takes the unit,
/// or the half is parked and the edge wakes it (never parked and forgotten).
#[test]
fn a_parked_half_is_woken_by_an_edge_that_races_its_park() {
    check(|m| {
        let (counter, waker) = half_waker();
        let tried = racing_a_delivery(m, |m| m.try_or_park(&waker));
        match tried {
            Ok(Parking::Done(())) => {}
            Ok(Parking::Parked) => {
                assert!(counter.woken(), "the unit arrived but the half sleeps");
                assert!(!m.queue.is_parked(m, &waker), "woken, yet still parked");
            }
            other => panic!("a lone half could not park: {other:?}"),
        }
    });
}

/// A parked half and a future's readiness wait: one edge wakes both (tries race), and
/// neither wake takes the unit.
#[test]
fn an_edge_wakes_a_parked_half_beside_a_futures_wait() {
    check(|m| {
        let (counter, waker) = half_waker();
        assert!(matches!(m.try_or_park(&waker), Ok(Parking::Parked)));
        let ready = waiting(m.try_receive(), "nothing has arrived yet");
        let kernel = spawn_on(m, Model::deliver);
        join(kernel);
        assert!(counter.woken(), "the unit arrived but the half sleeps");
        assert!(ready.is_completed(), "the unit arrived but the wait waits");
        assert_eq!(m.unread(), 1, "a wake took the unit");
    });
}

/// A half parked behind nothing, then a receive begun (it keeps no place, so the
/// receive may go first): the edge serves the receive, then wakes the half to find
/// what is left.
#[test]
fn a_receive_begun_while_a_half_is_parked_goes_first() {
    check(|m| {
        let (counter, waker) = half_waker();
        assert!(matches!(m.try_or_park(&waker), Ok(Parking::Parked)));
        let receive = m.receive();
        let kernel = spawn_on(m, Model::deliver);
        join(kernel);
        assert!(
            receive.is_completed(),
            "the unit arrived but the receive waits"
        );
        assert!(counter.woken(), "the queue emptied but the half sleeps");
        assert!(
            matches!(m.try_or_park(&waker), Ok(Parking::Parked)),
            "the receive's unit was taken twice"
        );
    });
}

/// A second half (another task's waker) finds the first parked: it waits with a
/// readiness operation instead, and one edge wakes both.
#[test]
fn a_second_half_waits_with_an_operation() {
    check(|m| {
        let (first, first_waker) = half_waker();
        let (_, second_waker) = half_waker();
        assert!(matches!(m.try_or_park(&first_waker), Ok(Parking::Parked)));
        let Ok(Parking::Queued(ready)) = m.try_or_park(&second_waker) else {
            panic!("the second half did not fall back to an operation");
        };
        let kernel = spawn_on(m, Model::deliver);
        join(kernel);
        assert!(first.woken(), "the unit arrived but the parked half sleeps");
        assert!(
            ready.is_completed(),
            "the unit arrived but the second half waits"
        );
    });
}

/// A close races a half's try: either the try sees the closed socket, or the half is
/// parked and the close wakes it (to find the socket closed at its next try).
#[test]
fn a_close_wakes_a_parked_half() {
    check(|m| {
        let (counter, waker) = half_waker();
        let closing = spawn_on(m, Model::close);
        let tried = m.try_or_park(&waker);
        join(closing);
        match tried {
            Err(Error::Disposed) => {}
            Ok(Parking::Parked) => {
                assert!(counter.woken(), "closed, but the parked half sleeps");
                assert!(matches!(m.try_or_park(&waker), Err(Error::Disposed)));
            }
            other => panic!("unexpected: {other:?}"),
        }
    });
}

impl Model {
    /// A receive future's try to take one unit in place (`try_in_place`), parking
    /// `waker` as its place if it would block; `holds`: it parked there last time.
    fn try_in_place(self: &Arc<Self>, waker: &Waker, holds: bool) -> Result<Parking<()>, Error> {
        self.queue.try_in_place(
            self,
            OpKind::ReceiveReady,
            false,
            InPlace { waker, holds },
            |m| Ok(m.take().then_some(())),
        )
    }
}

/// A future's try in place races a delivery and its edge: either the try takes the
/// unit, or the future parks its place and the edge wakes it, and its next try (in
/// the place it holds) takes the unit.
#[test]
fn a_parked_place_is_reached_by_an_edge_that_races_its_park() {
    check(|m| {
        let (counter, waker) = half_waker();
        let tried = racing_a_delivery(m, |m| m.try_in_place(&waker, false));
        match tried {
            Ok(Parking::Done(())) => {}
            Ok(Parking::Parked) => {
                assert!(counter.woken(), "the unit arrived but the future sleeps");
                assert!(!m.queue.place_waits(m), "woken, yet its place still waits");
                assert!(
                    matches!(m.try_in_place(&waker, true), Ok(Parking::Done(()))),
                    "the try in the reached place did not take the unit"
                );
            }
            other => panic!("a lone future could not park: {other:?}"),
        }
        assert_eq!(m.unread(), 0);
    });
}

/// A receive begun while a future's place is parked queues behind the place: the edge
/// wakes the future, which takes the unit in its place, as the kernel delivers
/// another one for the receive (racing that try).
#[test]
fn a_receive_begun_while_a_place_is_parked_goes_after_it() {
    check(|m| {
        let (counter, waker) = half_waker();
        assert!(matches!(m.try_in_place(&waker, false), Ok(Parking::Parked)));
        let receive = m.receive();
        m.deliver();
        assert!(counter.woken(), "the unit arrived but the future sleeps");
        assert!(
            !receive.is_completed(),
            "the receive begun later went first"
        );
        let kernel = spawn_on(m, Model::deliver);
        let tried = m.try_in_place(&waker, true);
        join(kernel);
        assert!(
            matches!(tried, Ok(Parking::Done(()))),
            "the future lost its unit: {tried:?}"
        );
        assert!(
            receive.is_completed(),
            "the place went and a unit arrived, but the receive waits"
        );
        assert!(receive.finish().is_ok());
        assert_eq!(m.unread(), 0);
    });
}

/// A future woken in its place goes away before its try, racing the next delivery:
/// giving the place up lets the receive behind it take the unit that woke the future,
/// and nothing is held up or lost.
#[test]
fn a_place_given_up_before_its_try_lets_the_receive_behind_it_go() {
    check(|m| {
        let (_, waker) = half_waker();
        assert!(matches!(m.try_in_place(&waker, false), Ok(Parking::Parked)));
        let first = m.receive();
        let second = m.receive();
        m.deliver();
        assert!(!first.is_completed(), "the receive went ahead of the place");
        let kernel = spawn_on(m, Model::deliver);
        m.queue.leave_place(m);
        join(kernel);
        assert!(
            first.is_completed(),
            "the place went, but the receive waits"
        );
        assert!(
            second.is_completed(),
            "two units, but the second receive waits"
        );
        assert!(first.finish().is_ok() && second.finish().is_ok());
        assert_eq!(m.unread(), 0);
    });
}

/// A close races a future's try in place: either the try sees the closed socket, or
/// the place is parked and the close wakes it (to find the socket closed).
#[test]
fn a_close_wakes_a_parked_place() {
    check(|m| {
        let (counter, waker) = half_waker();
        let closing = spawn_on(m, Model::close);
        let tried = m.try_in_place(&waker, false);
        join(closing);
        match tried {
            Err(Error::Disposed) => {}
            Ok(Parking::Parked) => {
                assert!(counter.woken(), "closed, but the parked future sleeps");
                assert!(matches!(m.try_in_place(&waker, true), Err(Error::Disposed)));
            }
            other => panic!("unexpected: {other:?}"),
        }
    });
}
