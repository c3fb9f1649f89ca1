//! Timeouts made certain, for the tests where timed-out operations race with data (the
//! tokio and smol tests' helpers include this file by its path).
//!
//! Such a test needs some of its operations to time out. A writer that merely sleeps as
//! long as the reader's timeout does not ensure that: its sleep began first, so on a
//! quiet machine it can end first every time, and no read ever times out. So the
//! reader reports each timeout, and the writer, every so often, stops until one is
//! reported: with nothing sent meanwhile, the reader's wait can only time out.

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;

/// The reader's end: reports each timeout.
#[derive(Debug, Clone)]
pub struct TimedOut(UnboundedSender<()>);

impl TimedOut {
    /// Reports a timeout (nobody listening any more is fine).
    pub fn report(&self) {
        let _ = self.0.unbounded_send(());
    }
}

/// The writer's end.
#[derive(Debug)]
pub struct Timeouts(UnboundedReceiver<()>);

impl Timeouts {
    /// Waits for a timeout reported after this call (reports from before it are
    /// dropped first), or for the reader to be gone.
    pub async fn next(&mut self) {
        while self.0.try_recv().is_ok() {}
        let _ = self.0.next().await;
    }

    /// [`next`](Self::next), for a writer on a thread of its own.
    pub fn next_blocking(&mut self) {
        futures::executor::block_on(self.next());
    }
}

/// A reader's reports and a writer's waits for them.
pub fn timeouts() -> (TimedOut, Timeouts) {
    let (reports, waits) = unbounded();
    (TimedOut(reports), Timeouts(waits))
}
