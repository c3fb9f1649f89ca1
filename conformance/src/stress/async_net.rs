//! The tokio and smol adapters, instrumented ([`AsyncNet`]): every operation a future
//! spawned on the adapter's runtime that reports its output through the operation's
//! `Done`; batches of sends polled in order by one task, and send and receive futures
//! dropped after one poll.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use asyncresult_callback::prelude::Socket;

use super::exec::Exec;
use super::net::{Bound, Net, Started};
use super::tally::{op, Tally, Waiter};
use crate::adapters::Flavor;
use crate::harness::Res;
use crate::loopback;

/// A send future of an async adapter, boxed (plain and bounded ones side by side).
type SendFuture<'a> = Pin<Box<dyn Future<Output = Res<usize>> + Send + 'a>>;

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
