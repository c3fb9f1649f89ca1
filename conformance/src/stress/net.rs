//! The adapter interface as the mix drives it: the [`Net`] trait that the callback
//! adapter ([`super::callback`]) and the async adapters ([`super::async_net`]) implement,
//! how an operation is bounded ([`Bound`]), an operation under way ([`Started`]) and
//! [`finish`], which waits for it and checks what `cancel()` said ([`check_cancel`]);
//! and [`Nets`], the four adapters of a run.

use std::net::SocketAddr;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use asyncresult_callback::prelude::{Error, Socket};

use super::async_net::AsyncNet;
use super::callback::CallbackNet;
use super::tally::{Tally, Trouble, Waiter};
use crate::adapters::{SmolFlavor, TokioFlavor};
use crate::exec::Exec;
use crate::harness::Res;

/// How an operation is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
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
pub(super) struct Started<T> {
    pub(super) waiter: Waiter<T>,
    pub(super) cancel: Option<Cancel>,
}

/// Waits for `started` as `bound` says; checks that what `cancel()` said agrees with
/// the outcome.
pub(super) fn finish<U>(
    started: Started<Res<U>>,
    bound: Bound,
    limit: Duration,
) -> Result<Res<U>, Trouble> {
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
    check_cancel(out, cancelled, |won, ended| {
        if won {
            format!("cancel() returned true but the operation ended with {ended}")
        } else {
            "cancel() returned false but the operation ended Aborted".into()
        }
    })
}

/// Checks that what `cancel()` returned (`cancelled`, if it was called) agrees with
/// the outcome: `true` if and only if the operation ended `Aborted`. If not, the
/// trouble is worded by `mismatch`, from what `cancel()` returned and how the
/// operation ended ([`describe`]).
pub(super) fn check_cancel<U>(
    out: Res<U>,
    cancelled: Option<bool>,
    mismatch: impl FnOnce(bool, String) -> String,
) -> Result<Res<U>, Trouble> {
    let aborted = matches!(out, Err(Error::Aborted));
    match cancelled {
        Some(won) if won != aborted => Err(Trouble::Cancel(mismatch(won, describe(&out)))),
        _ => Ok(out),
    }
}

pub(super) fn describe<T>(out: &Res<T>) -> String {
    match out {
        Ok(_) => "success".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// One adapter, as the mix drives it. Every operation method counts one start on the
/// adapter's tally and reports through a `Done`.
pub(super) trait Net: Send + Sync + 'static {
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

/// The four adapters of a run, each with its tally.
pub(super) struct Nets {
    pub(super) callback: Arc<CallbackNet>,
    pub(super) tokio_ct: Arc<AsyncNet<TokioFlavor>>,
    pub(super) tokio_mt: Arc<AsyncNet<TokioFlavor>>,
    pub(super) smol: Arc<AsyncNet<SmolFlavor>>,
}

impl Nets {
    pub(super) fn new() -> Result<Nets, String> {
        let tally = || Arc::new(Tally::default());
        Ok(Nets {
            callback: Arc::new(CallbackNet { tally: tally() }),
            tokio_ct: Arc::new(AsyncNet::new("tokio-ct", Exec::tokio(false)?, tally())),
            tokio_mt: Arc::new(AsyncNet::new("tokio-mt", Exec::tokio(true)?, tally())),
            smol: Arc::new(AsyncNet::new("smol", Exec::smol(), tally())),
        })
    }

    /// Stops the runtimes; what did not stop.
    pub(super) fn shut_down(&self) -> Vec<String> {
        let limit = crate::exec::DROP_LIMIT;
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

    pub(super) fn tallies(&self) -> Vec<(&'static str, Arc<Tally>)> {
        vec![
            (self.callback.name(), Arc::clone(&self.callback.tally)),
            (self.tokio_ct.name, Arc::clone(&self.tokio_ct.tally)),
            (self.tokio_mt.name, Arc::clone(&self.tokio_mt.tally)),
            (self.smol.name, Arc::clone(&self.smol.tally)),
        ]
    }
}
