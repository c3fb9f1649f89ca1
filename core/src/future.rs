//! Futures over the engine's operations, for runtime adapters. Plain `std::future`:
//! no runtime here; an adapter plugs its runtime in through [`Runtime`].
//!
//! Two kinds of futures, after what dropping one must mean:
//!
//! - [`OperationFuture`] awaits an operation begun with `begin_*`. Dropping it does
//!   **not** cancel the operation: a dropped send still goes out, whole, before any
//!   later send. Used for sends and connects.
//! - [`ReadinessFuture`] loops over a `try_*` attempt ([`TryAttempt`]) and waits on
//!   readiness between tries. It takes data only when it returns it, so dropping it
//!   loses nothing: **cancel safe**. It keeps its place in the socket's order from its
//!   first poll; while it waits, that place is its task's waker parked in the socket's
//!   queue (no allocation), or a readiness operation where the queue cannot park it.
//!   Used for receives and accepts.
//!
//! Both implement [`Cancel`], which [`Timeout`] uses to bound them with any runtime's
//! timer: at expiry the pending core operation is cancelled (as
//! [`AsyncResult::cancel`](crate::AsyncResult::cancel) does) and the future resolves
//! to [`Error::Aborted`] (or to the result it reached first).
//!
//! How a pending future gets woken fast: before it returns `Pending` it drains the
//! engine once on its own thread ([`driver::drain_if_driven`]): on loopback the peer's
//! event is usually already there, and the futures it completes are woken on this
//! runtime thread. Then [`Runtime::will_wait`] makes sure the runtime itself drains the
//! engine when its descriptor becomes readable.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::async_result::AsyncResult;
use crate::buf::{take_filled, IoBuf, IoBufMut};
pub use crate::drain_proof::ReadDrain;
use crate::driver;
use crate::error::Error;
use crate::flags::SocketFlags;
pub use crate::ops::try_io::Turn;
use crate::ops::try_io::{TryIo, TurnKind};
use crate::queue::{InPlace, Parking, Started};
use crate::socket::Socket;

/// What a runtime adapter plugs into these futures.
pub trait Runtime: 'static {
    /// The runtime's timer future (for the `*_timeout` operations).
    type Sleep: Future + Send;

    /// Called when a future returns `Pending` on a wait it has just begun (once per
    /// wait, not on every poll of it): make sure
    /// the runtime will drain the engine when the engine's descriptor becomes readable
    /// (for example, by starting its driver the first time). Should be cheap when it
    /// already does; only speed depends on it, as the engine's own workers serve every
    /// event when no runtime drains.
    fn will_wait();

    /// A timer that completes after `duration`.
    fn sleep(duration: Duration) -> Self::Sleep;

    /// One unit of the runtime's cooperative budget, held for the length of one poll
    /// (`()` for a runtime without a budget).
    type Budget;

    /// Takes one unit of the runtime's cooperative budget for an I/O attempt (tokio's
    /// `coop`), or says the task must yield first (`Pending`, with the waker registered
    /// to run it again). The unit is spent only if the poll makes progress
    /// ([`made_progress`](Runtime::made_progress)); a poll that returns `Pending` drops
    /// it unspent and it goes back, as with the runtime's own I/O. Without a budget, a
    /// sender whose sends all complete inline would never yield, fill every kernel
    /// buffer on the way, and starve its peer on the same thread. A runtime without one
    /// returns `Ready(())`.
    fn poll_budget(cx: &mut Context<'_>) -> Poll<Self::Budget>;

    /// The poll that took `budget` made progress (it returns `Ready`): the unit stays
    /// spent.
    fn made_progress(budget: Self::Budget);

    /// Which reads prove a TCP socket's receive queue empty, for the sockets of this
    /// runtime's [`TcpStream`](crate::net::TcpStream)s (see [`ReadDrain`]). The
    /// default is tokio's rule, a short read.
    const READ_DRAIN: ReadDrain = ReadDrain::ShortRead;
}

/// Runs `poll` with one unit of `R`'s budget, spent only if `poll` returns `Ready`.
#[inline]
fn with_budget<R: Runtime, T>(
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let Poll::Ready(budget) = R::poll_budget(cx) else {
        return Poll::Pending;
    };
    let polled = poll(cx);
    if polled.is_ready() {
        R::made_progress(budget);
    }
    polled
}

/// Futures that can be cancelled in place (see [`Timeout`]).
pub trait Cancel {
    /// Cancels the pending core operation, if any; the future then resolves to
    /// [`Error::Aborted`] (or to the result it had already reached).
    fn cancel(&mut self);
}

/// Polls `ar` for completion as adapter futures do: drains ready events inline once,
/// then registers the waker and tells the runtime it will wait.
pub fn poll_completed<R: Runtime, T>(ar: &AsyncResult<T>, cx: &mut Context<'_>) -> Poll<()> {
    let polled = poll_completed_quietly(ar, cx);
    if polled.is_pending() {
        R::will_wait();
    }
    polled
}

/// [`poll_completed`] without telling the runtime: for a wait that it was already
/// told about when the wait began.
fn poll_completed_quietly<T>(ar: &AsyncResult<T>, cx: &mut Context<'_>) -> Poll<()> {
    if ar.is_completed() {
        return Poll::Ready(());
    }
    driver::drain_if_driven();
    ar.poll_completed(cx)
}

type EndFn<T> = fn(&Socket, &AsyncResult<T>) -> Result<T, Error>;

/// A future for an operation begun with `begin_*`; resolves to what `end_*` returns.
///
/// # Cancel safety
///
/// Dropping it does not cancel the operation: it completes in the background (a send's
/// bytes still go out, in order) and its result is discarded. To stop the operation,
/// [`Cancel::cancel`] it or bound it with [`Timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct OperationFuture<T, R> {
    state: OpState<T>,
    end: EndFn<T>,
    _runtime: PhantomData<fn() -> R>,
}

/// Where an [`OperationFuture`] stands.
enum OpState<T> {
    /// Waiting in the socket's queue (the socket is needed to end it), and whether the
    /// runtime was told that this future waits.
    Queued(Socket, AsyncResult<T>, bool),
    /// Finished when it was begun (the fast path), or failed to begin; taken once.
    Finished(Option<Result<T, Error>>),
}

impl<T, R> std::fmt::Debug for OperationFuture<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationFuture")
            .field("queued", &self.async_result())
            .finish()
    }
}

impl<T, R> OperationFuture<T, R> {
    /// The operation's result handle, if it waits in the queue. It wakes one waker:
    /// polling a clone of it from another task while this future lives takes the
    /// wake-up from one of the two (see [`AsyncResult::poll_completed`]).
    pub fn async_result(&self) -> Option<&AsyncResult<T>> {
        match &self.state {
            OpState::Queued(_, ar, _) => Some(ar),
            OpState::Finished(_) => None,
        }
    }
}

impl<T, R: Runtime> OperationFuture<T, R> {
    /// A future for `begun` (the result of a `begin_*` on `socket`), finished by `end`.
    pub fn new(socket: &Socket, begun: Result<AsyncResult<T>, Error>, end: EndFn<T>) -> Self {
        Self::started(socket, begun.map(Started::Queued), end)
    }

    /// A future for an operation that may have finished inside its start.
    #[inline]
    fn started(socket: &Socket, started: Result<Started<T>, Error>, end: EndFn<T>) -> Self {
        let state = match started {
            Ok(Started::Queued(ar)) => OpState::Queued(socket.clone(), ar, false),
            Ok(Started::Finished(result)) => OpState::Finished(Some(result)),
            Err(e) => OpState::Finished(Some(Err(e))),
        };
        OperationFuture {
            state,
            end,
            _runtime: PhantomData,
        }
    }
}

impl<T, R: Runtime> Future for OperationFuture<T, R> {
    type Output = Result<T, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        with_budget::<R, _>(cx, |cx| match &mut this.state {
            OpState::Finished(result) => {
                Poll::Ready(result.take().unwrap_or(Err(Error::AlreadyEnded)))
            }
            OpState::Queued(socket, ar, told) => match poll_completed_quietly(ar, cx) {
                Poll::Pending => {
                    // Once per wait, as readiness futures do (see `poll_try`).
                    if !*told {
                        *told = true;
                        R::will_wait();
                    }
                    Poll::Pending
                }
                Poll::Ready(()) => Poll::Ready((this.end)(socket, ar)),
            },
        })
    }
}

impl<T, R> Cancel for OperationFuture<T, R> {
    fn cancel(&mut self) {
        if let OpState::Queued(_, ar, _) = &self.state {
            ar.cancel();
        }
    }
}

// The result is moved out, never pinned.
impl<T, R> Unpin for OperationFuture<T, R> {}

impl<T, R> Drop for OperationFuture<T, R> {
    /// The operation goes on in the background, but nothing will poll this future
    /// again: the waker it registered goes now. Kept, it would hold the task that
    /// polled (with an executor's `join_all` or a cancelled task, the whole allocation
    /// of that task's future) until the operation completes, which behind a peer that
    /// does not read may be never.
    fn drop(&mut self) {
        if let OpState::Queued(_, ar, _) = &self.state {
            if !ar.is_completed() {
                ar.forget_waker();
            }
        }
    }
}

/// One non-blocking try, repeated by a [`ReadinessFuture`] until it is done.
pub trait TryAttempt {
    /// What the future resolves to on success.
    type Output;
    /// Tries once, without blocking, in `turn` (where the future stands in its
    /// socket's queue: pass it on to the `try_*`).
    ///
    /// # Errors
    ///
    /// Whatever the underlying `try_*` reports; the future resolves to it.
    fn try_once(&mut self, turn: Turn<'_>) -> Result<TryIo<Self::Output>, Error>;

    /// The same try for a future that keeps its place in the socket's queue by parking
    /// its task's waker there, when it would block, instead of a readiness operation
    /// (no allocation while it waits). `None`, the default: this attempt does not park,
    /// and the future waits with readiness operations ([`try_once`](Self::try_once)).
    /// Only the core's own attempts park (a [`Placed`] is not made elsewhere).
    ///
    /// # Errors
    ///
    /// As [`try_once`](Self::try_once).
    fn try_in_place(&mut self, place: Place<'_>) -> Option<Result<Placed<Self::Output>, Error>> {
        let _ = place;
        None
    }

    /// Whether the place that [`try_in_place`](Self::try_in_place) parked still waits
    /// for an edge (`false` by default).
    fn place_waits(&self) -> bool {
        false
    }

    /// Gives up the place that [`try_in_place`](Self::try_in_place) parked: the future
    /// is going away, or was cancelled. Nothing by default.
    fn leave_place(&mut self) {}
}

/// Where a future's try that may park stands (see [`TryAttempt::try_in_place`]): its
/// task's waker, and whether it holds the place it parked last time. Made by
/// [`ReadinessFuture`].
#[derive(Clone, Copy, Debug)]
pub struct Place<'a>(InPlace<'a>);

/// How a [`TryAttempt::try_in_place`] went; read by [`ReadinessFuture`].
#[derive(Debug)]
pub struct Placed<T>(Parking<T>);

impl<T> Placed<T> {
    fn new(parking: Result<Parking<T>, Error>) -> Option<Result<Self, Error>> {
        Some(parking.map(Placed))
    }
}

/// Drives `attempt` with readiness waits in between, holding the wait in `waiting`
/// (so that a caller that polls again after dropping a future reuses it). The
/// readiness operations of these tries give their place up once they complete (see
/// [`TryIo`]): nothing obliges the caller to poll again.
pub fn poll_try<R: Runtime, T>(
    waiting: &mut Option<AsyncResult<()>>,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> Result<TryIo<T>, Error>,
) -> Poll<Result<T, Error>> {
    poll_tries::<R, T>(waiting, cx, None, |_| attempt())
}

/// [`poll_try`] for a future that tries in its own turn (`place`: `Some`, see
/// [`Turn`]), or not (`None`). A future's turn: its readiness wait, once reached,
/// keeps its place in the queue until the retry here; if the future goes
/// away instead, dropping its [`ReadyWait`] gives the place up. `place` holds whether
/// the future took its place without a try (its first poll was put off by the
/// runtime's budget), so that its next poll tries in that place.
fn poll_tries<R: Runtime, T>(
    waiting: &mut Option<AsyncResult<()>>,
    cx: &mut Context<'_>,
    mut place: Option<&mut bool>,
    mut attempt: impl FnMut(Turn<'_>) -> Result<TryIo<T>, Error>,
) -> Poll<Result<T, Error>> {
    let Poll::Ready(budget) = R::poll_budget(cx) else {
        // Put off by the runtime's budget (the task runs again soon). A future's first
        // poll takes its place all the same, without a try, so that what is begun
        // after this poll runs after the future.
        if let Some(untried) = place {
            if waiting.is_none() {
                match attempt(Turn(TurnKind::Hold)) {
                    Ok(TryIo::WouldBlock(ready)) => {
                        *waiting = Some(ready);
                        *untried = true;
                    }
                    Ok(TryIo::Done(value)) => return Poll::Ready(Ok(value)),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        return Poll::Pending;
    };
    let keeps_place = place.is_some();
    let first = if keeps_place {
        Turn(TurnKind::Future)
    } else {
        Turn::ONCE
    };
    // The runtime is told once per wait, when it begins (`Runtime::will_wait` need not
    // be free: tokio's looks the runtime up), not on every poll of it.
    let mut began = false;
    let polled = loop {
        // The reached wait is held for the try, in a guard that gives its place up
        // should the try unwind (a panicking buffer).
        let mut reached = ReadyWait(None);
        if let Some(ready) = waiting.as_ref() {
            let untried = place.as_deref_mut().is_some_and(std::mem::take);
            if !untried && poll_completed_quietly(ready, cx).is_pending() {
                if began {
                    R::will_wait();
                }
                break Poll::Pending;
            }
            // Readiness reached, or the wait was cancelled or disposed (the next try
            // reports a closed socket itself); or a place taken without a try.
            if ready.is_completed() && matches!(ready.take_ready_result(), Err(Error::Aborted)) {
                *waiting = None;
                break Poll::Ready(Err(Error::Aborted));
            }
            reached.0 = waiting.take();
        }
        let turn = match &reached.0 {
            Some(ready) if keeps_place => Turn(TurnKind::Reached(ready)),
            _ => first,
        };
        let tried = attempt(turn);
        // Taken or kept by the try: nothing to give up.
        reached.0 = None;
        match tried {
            Ok(TryIo::Done(value)) => break Poll::Ready(Ok(value)),
            Ok(TryIo::WouldBlock(ready)) => {
                *waiting = Some(ready);
                began = true;
            }
            Err(e) => break Poll::Ready(Err(e)),
        }
    };
    if polled.is_ready() {
        R::made_progress(budget);
    }
    polled
}

/// The readiness wait a [`poll_try`] loop holds between polls. Dropping it cancels the
/// wait (it holds no data), so that no stale wait stays in the socket's queue.
#[derive(Debug, Default)]
pub(crate) struct ReadyWait(pub(crate) Option<AsyncResult<()>>);

impl ReadyWait {
    /// Cancels the wait, if any.
    pub(crate) fn cancel(&mut self) {
        if let Some(ready) = self.0.take() {
            ready.cancel();
        }
    }
}

impl Drop for ReadyWait {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A future that retries a [`TryAttempt`] on readiness, in its own turn: from its first
/// poll it has a place in its socket's order, which it keeps while it waits and after
/// it is woken, until its try takes something (see [`Turn`]). An operation begun after
/// that first poll runs after it; kept but not polled, the future holds such
/// operations up. Other futures' tries are not held up: tries race, as with tokio's
/// and async-io's sockets.
///
/// A wait costs no allocation when the future's place can be its task's waker, parked
/// in the socket's queue ([`TryAttempt::try_in_place`]: the core's receives and
/// accepts, when no other wait is parked on that direction and no `begin_*` is queued
/// ahead); otherwise it is a readiness operation, reused across waits.
///
/// # Cancel safety
///
/// Cancel safe: data is taken only in the poll that returns it, so dropping the
/// future (in `select!`, on a timeout) loses nothing; its readiness wait is cancelled
/// and its place given up, so what was begun behind it goes on.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct ReadinessFuture<A: TryAttempt, R> {
    attempt: A,
    waiting: ReadyWait,
    /// Its wait is a place taken without a try (see `poll_tries`).
    untried: bool,
    /// Its place is its waker, parked in the socket's queue (see
    /// [`TryAttempt::try_in_place`]).
    parked: bool,
    cancelled: bool,
    _runtime: PhantomData<fn() -> R>,
}

impl<A: TryAttempt, R: Runtime> ReadinessFuture<A, R> {
    /// A future that drives `attempt`.
    pub fn new(attempt: A) -> Self {
        ReadinessFuture {
            attempt,
            waiting: ReadyWait::default(),
            untried: false,
            parked: false,
            cancelled: false,
            _runtime: PhantomData,
        }
    }

    /// A poll that waits, if it must, by parking the task's waker as the future's place
    /// (as a stream half parks, see `stream_io`); `None` if the attempt does not park or
    /// the queue could not take the place (the wait is then a readiness operation, in
    /// `waiting`, for [`poll_tries`]), or if the runtime's budget put a first poll off
    /// (`poll_tries` then takes a place without a try).
    fn poll_in_place(&mut self, cx: &mut Context<'_>) -> Option<Poll<Result<A::Output, Error>>> {
        let Poll::Ready(budget) = R::poll_budget(cx) else {
            // A parked place is kept meanwhile: the next poll tries in it.
            return self.parked.then_some(Poll::Pending);
        };
        let mut drained = false;
        let polled = loop {
            let place = Place(InPlace {
                waker: cx.waker(),
                holds: self.parked,
            });
            let tried = self.attempt.try_in_place(place)?;
            self.parked = false;
            match tried.map(|placed| placed.0) {
                Err(e) => break Poll::Ready(Err(e)),
                Ok(Parking::Done(value)) => break Poll::Ready(Ok(value)),
                Ok(Parking::Queued(ready)) => {
                    // A wait that began: `poll_tries` waits on it (and tells nobody).
                    self.waiting.0 = Some(ready);
                    R::will_wait();
                    return None;
                }
                // No edge since it parked (the runtime told already): nothing to try.
                Ok(Parking::StillParked) => {
                    self.parked = true;
                    break Poll::Pending;
                }
                Ok(Parking::Parked) => {
                    self.parked = true;
                    if !drained {
                        // As a waiting future does: the peer's edge may be there for
                        // this thread to drain; if the drain reached the place, try in
                        // it at once.
                        drained = true;
                        driver::drain_if_driven();
                        if !self.attempt.place_waits() {
                            continue;
                        }
                    }
                    R::will_wait();
                    break Poll::Pending;
                }
            }
        };
        if polled.is_ready() {
            R::made_progress(budget);
        }
        Some(polled)
    }
}

impl<A: TryAttempt + Unpin, R: Runtime> Future for ReadinessFuture<A, R> {
    type Output = Result<A::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.cancelled {
            return Poll::Ready(Err(Error::Aborted));
        }
        if this.waiting.0.is_none() {
            if let Some(polled) = this.poll_in_place(cx) {
                return polled;
            }
        }
        let attempt = &mut this.attempt;
        poll_tries::<R, _>(&mut this.waiting.0, cx, Some(&mut this.untried), |turn| {
            attempt.try_once(turn)
        })
    }
}

impl<A: TryAttempt, R> ReadinessFuture<A, R> {
    /// Gives up the place parked in the socket's queue, if any.
    fn leave_place(&mut self) {
        if std::mem::take(&mut self.parked) {
            self.attempt.leave_place();
        }
    }
}

impl<A: TryAttempt, R> Cancel for ReadinessFuture<A, R> {
    fn cancel(&mut self) {
        self.cancelled = true;
        self.waiting.cancel();
        self.leave_place();
    }
}

impl<A: TryAttempt, R> Drop for ReadinessFuture<A, R> {
    /// Gives the future's place up: what was begun behind it goes on.
    fn drop(&mut self) {
        self.leave_place();
    }
}

/// Bounds a [`Cancel`] future with a timer future `S` (any runtime's sleep): when the
/// timer fires first, the future is cancelled and then polled to its end, which is
/// [`Error::Aborted`] unless it completed in the meantime.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Timeout<F, S> {
    future: F,
    timer: Option<Pin<Box<S>>>,
}

impl<F, S> Timeout<F, S> {
    /// `future`, cancelled when `timer` completes.
    pub fn new(future: F, timer: S) -> Self {
        Timeout {
            future,
            timer: Some(Box::pin(timer)),
        }
    }
}

impl<F, S> Future for Timeout<F, S>
where
    F: Future + Cancel + Unpin,
    S: Future,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(out) = Pin::new(&mut this.future).poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(timer) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                this.timer = None;
                this.future.cancel();
                return Pin::new(&mut this.future).poll(cx);
            }
        }
        Poll::Pending
    }
}

// ---- ready-made futures for every operation --------------------------------------

/// A whole send of `buf` (`begin_send`), as a future. When the fast path finishes it
/// at once, no operation is allocated.
#[inline]
pub fn send<R: Runtime, B: IoBuf>(socket: &Socket, buf: B) -> OperationFuture<usize, R> {
    OperationFuture::started(socket, socket.start_send(buf), Socket::end_send)
}

/// One datagram to `to` (`begin_send_to`), as a future.
pub fn send_to<R: Runtime, B: IoBuf>(
    socket: &Socket,
    buf: B,
    to: SocketAddr,
) -> OperationFuture<usize, R> {
    OperationFuture::started(socket, socket.start_send_to(buf, to), Socket::end_send_to)
}

/// A connect (`begin_connect`), as a future.
pub fn connect<R: Runtime>(socket: &Socket, to: SocketAddr) -> OperationFuture<(), R> {
    OperationFuture::new(
        socket,
        socket.begin_connect(to, None, None),
        Socket::end_connect,
    )
}

/// The [`TryAttempt`] of a receive into an owned buffer.
#[derive(Debug)]
pub struct ReceiveAttempt<B> {
    socket: Socket,
    buf: Option<B>,
}

// The buffer is moved, never pinned.
impl<B> Unpin for ReceiveAttempt<B> {}

impl<B: IoBufMut> TryAttempt for ReceiveAttempt<B> {
    type Output = (usize, B);

    fn try_once(&mut self, turn: Turn<'_>) -> Result<TryIo<(usize, B)>, Error> {
        let buf = self.buf.as_mut().ok_or(Error::AlreadyEnded)?;
        Ok(
            match self
                .socket
                .try_receive_in_turn(buf, SocketFlags::NONE, turn)?
            {
                TryIo::Done(n) => TryIo::Done((n, take_filled(&mut self.buf)?)),
                TryIo::WouldBlock(ready) => TryIo::WouldBlock(ready),
            },
        )
    }

    fn try_in_place(&mut self, place: Place<'_>) -> Option<Result<Placed<(usize, B)>, Error>> {
        let buf = match self.buf.as_mut().ok_or(Error::AlreadyEnded) {
            Ok(buf) => buf,
            Err(e) => return Some(Err(e)),
        };
        let parking = self
            .socket
            .receive_in_place(buf, SocketFlags::NONE, place.0);
        Placed::new(parking.and_then(|p| p.and_then(|n| Ok((n, take_filled(&mut self.buf)?)))))
    }

    fn place_waits(&self) -> bool {
        self.socket.receive_place_waits()
    }

    fn leave_place(&mut self) {
        self.socket.leave_receive_place();
    }
}

/// A receive into `buf` (conventions of `begin_receive`), as a cancel-safe future.
pub fn receive<R: Runtime, B: IoBufMut>(
    socket: &Socket,
    buf: B,
) -> ReadinessFuture<ReceiveAttempt<B>, R> {
    ReadinessFuture::new(ReceiveAttempt {
        socket: socket.clone(),
        buf: Some(buf),
    })
}

/// The [`TryAttempt`] of a receive of one datagram and its sender.
#[derive(Debug)]
pub struct ReceiveFromAttempt<B> {
    socket: Socket,
    buf: Option<B>,
}

// The buffer is moved, never pinned.
impl<B> Unpin for ReceiveFromAttempt<B> {}

impl<B: IoBufMut> TryAttempt for ReceiveFromAttempt<B> {
    type Output = (usize, B, SocketAddr);

    fn try_once(&mut self, turn: Turn<'_>) -> Result<TryIo<(usize, B, SocketAddr)>, Error> {
        let buf = self.buf.as_mut().ok_or(Error::AlreadyEnded)?;
        Ok(
            match self
                .socket
                .try_receive_from_in_turn(buf, SocketFlags::NONE, turn)?
            {
                TryIo::Done((n, from)) => TryIo::Done((n, take_filled(&mut self.buf)?, from)),
                TryIo::WouldBlock(ready) => TryIo::WouldBlock(ready),
            },
        )
    }

    fn try_in_place(
        &mut self,
        place: Place<'_>,
    ) -> Option<Result<Placed<(usize, B, SocketAddr)>, Error>> {
        let buf = match self.buf.as_mut().ok_or(Error::AlreadyEnded) {
            Ok(buf) => buf,
            Err(e) => return Some(Err(e)),
        };
        let parking = self
            .socket
            .receive_from_in_place(buf, SocketFlags::NONE, place.0);
        Placed::new(
            parking
                .and_then(|p| p.and_then(|(n, from)| Ok((n, take_filled(&mut self.buf)?, from)))),
        )
    }

    fn place_waits(&self) -> bool {
        self.socket.receive_place_waits()
    }

    fn leave_place(&mut self) {
        self.socket.leave_receive_place();
    }
}

/// A receive of one datagram and its sender (conventions of `begin_receive_from`), as
/// a cancel-safe future.
pub fn receive_from<R: Runtime, B: IoBufMut>(
    socket: &Socket,
    buf: B,
) -> ReadinessFuture<ReceiveFromAttempt<B>, R> {
    ReadinessFuture::new(ReceiveFromAttempt {
        socket: socket.clone(),
        buf: Some(buf),
    })
}

/// The [`TryAttempt`] of an accept.
#[derive(Debug)]
pub struct AcceptAttempt {
    socket: Socket,
    /// Whether the socket was checked to be a listener (on the first try only).
    checked: bool,
}

impl TryAttempt for AcceptAttempt {
    type Output = (Socket, SocketAddr);

    fn try_once(&mut self, turn: Turn<'_>) -> Result<TryIo<(Socket, SocketAddr)>, Error> {
        if !self.checked {
            self.socket.check_can_accept()?;
            self.checked = true;
        }
        self.socket.try_accept_in_turn(turn)
    }

    fn try_in_place(
        &mut self,
        place: Place<'_>,
    ) -> Option<Result<Placed<(Socket, SocketAddr)>, Error>> {
        if !self.checked {
            if let Err(e) = self.socket.check_can_accept() {
                return Some(Err(e));
            }
            self.checked = true;
        }
        Placed::new(self.socket.accept_in_place(place.0))
    }

    fn place_waits(&self) -> bool {
        self.socket.receive_place_waits()
    }

    fn leave_place(&mut self) {
        self.socket.leave_receive_place();
    }
}

/// An accept, as a cancel-safe future.
pub fn accept<R: Runtime>(socket: &Socket) -> ReadinessFuture<AcceptAttempt, R> {
    ReadinessFuture::new(AcceptAttempt {
        socket: socket.clone(),
        checked: false,
    })
}
