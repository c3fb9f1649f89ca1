//! Accounting: every operation reports exactly once. [`op`] counts a start on an
//! adapter's [`Tally`] and makes the operation's reporter ([`Done`], carried by the
//! callback or the future) and its [`Waiter`]; a reporter dropped without reporting
//! counts a lost completion, and a wait that ends without the outcome says why
//! ([`Trouble`]).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lock;
use super::report::AdapterCount;

/// Operation counts of one adapter, kept by the operations' reporters.
#[derive(Debug, Default)]
pub(super) struct Tally {
    started: AtomicU64,
    completed: AtomicU64,
    abandoned: AtomicU64,
    lost: AtomicU64,
    anomalies: Mutex<Vec<String>>,
}

impl Tally {
    pub(super) fn anomaly(&self, what: String) {
        let mut list = lock(&self.anomalies);
        if list.len() < 20 {
            list.push(what);
        }
    }

    pub(super) fn settled(&self) -> bool {
        let started = self.started.load(Relaxed);
        let ended = self.completed.load(Relaxed) + self.abandoned.load(Relaxed);
        started == ended + self.lost.load(Relaxed)
    }

    pub(super) fn count(&self, name: &'static str) -> AdapterCount {
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
pub(super) struct Done<T> {
    tx: Option<mpsc::Sender<T>>,
    tally: Arc<Tally>,
}

impl<T> Done<T> {
    pub(super) fn report(mut self, value: T) {
        self.tally.completed.fetch_add(1, Relaxed);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(value);
        }
    }

    /// The future was dropped on purpose before completing; `value` says so.
    pub(super) fn abandon(mut self, value: T) {
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
pub(super) enum Trouble {
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
pub(super) struct Waiter<T> {
    pub(super) rx: mpsc::Receiver<T>,
}

impl<T> Waiter<T> {
    pub(super) fn wait(&self, limit: Duration) -> Result<T, Trouble> {
        self.rx.recv_timeout(limit).map_err(|e| match e {
            RecvTimeoutError::Timeout => Trouble::Hung(limit),
            RecvTimeoutError::Disconnected => Trouble::Lost,
        })
    }

    /// A waiter that already holds its outcome.
    pub(super) fn ready(value: T) -> Waiter<T> {
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(value);
        Waiter { rx }
    }
}

/// Counts a start and makes the operation's reporter and waiter.
pub(super) fn op<T>(tally: &Arc<Tally>) -> (Done<T>, Waiter<T>) {
    tally.started.fetch_add(1, Relaxed);
    let (tx, rx) = mpsc::channel();
    let done = Done {
        tx: Some(tx),
        tally: Arc::clone(tally),
    };
    (done, Waiter { rx })
}
