//! The tokio and smol adapters, instrumented ([`AsyncNet`]): every operation a future
//! spawned on the adapter's runtime that reports its output through the operation's
//! `Done`; batches of sends polled in order by one task ([`InOrder`]), and send and
//! receive futures dropped after one poll ([`AsyncNet::poll_once`]).

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use asyncresult_callback::prelude::Socket;

use super::net::{Bound, Net, Started};
use super::tally::{op, Tally, Waiter};
use crate::adapters::{Flavor, InOrder};
use crate::exec::Exec;
use crate::harness::Res;
use crate::loopback;

/// The tokio or smol adapter: every operation a future spawned on the runtime.
pub(super) struct AsyncNet<F> {
    pub(super) name: &'static str,
    pub(super) tally: Arc<Tally>,
    pub(super) exec: Exec,
    _flavor: PhantomData<fn() -> F>,
}

impl<F: Flavor> AsyncNet<F> {
    pub(super) fn new(name: &'static str, exec: Exec, tally: Arc<Tally>) -> AsyncNet<F> {
        AsyncNet {
            name,
            tally,
            exec,
            _flavor: PhantomData,
        }
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.exec.spawn(Box::pin(fut));
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

    /// Polls `fut` once, in a task: reports its output if it is ready, else drops it
    /// (mid-flight) and then reports the operation abandoned.
    fn poll_once<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Waiter<Option<T>> {
        let (done, waiter) = op(&self.tally);
        self.spawn(async move {
            let mut fut = Box::pin(fut);
            match futures::poll!(fut.as_mut()) {
                Poll::Ready(out) => done.report(Some(out)),
                Poll::Pending => {
                    drop(fut);
                    done.abandon(None);
                }
            }
        });
        waiter
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
            dones.push(done);
            started.push(Started {
                waiter,
                cancel: None,
            });
        }
        // Each send reports as soon as it completes; one task polls them in index
        // order, so they begin in that order.
        let sends = bufs
            .into_iter()
            .zip(dones)
            .enumerate()
            .map(|(i, (buf, done))| {
                let s = Arc::clone(s);
                async move {
                    let out = if cancel == Some(i) {
                        s.send_timeout(buf, Duration::ZERO).await
                    } else {
                        s.send(buf).await
                    };
                    done.report(out);
                }
            });
        let batch = InOrder::new(sends);
        self.spawn(async move {
            batch.await;
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
        let s = Arc::clone(s);
        self.poll_once(async move { s.send(buf).await })
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
        let s = Arc::clone(s);
        Some(self.poll_once(async move {
            let out = s.receive(Vec::with_capacity(capacity)).await;
            out.map(|(_, buf)| buf)
        }))
    }
}
