//! The three adapters behind the [`Harness`] trait: the callback adapter (Begin/End
//! with callbacks), and the tokio and smol adapters (futures on their runtimes).
//!
//! The two async harnesses share one implementation, [`AsyncHarness`], over a
//! [`Flavor`] that says how to spawn on the runtime and how to make the adapter's own
//! socket types; everything else goes through the methods the adapters expose.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use asyncresult_callback::prelude::*;
use asyncresult_core::future::Runtime;
use asyncresult_core::net;

use crate::exec::Exec;
use crate::harness::{Harness, Pending, Res};

// ---- callbacks ------------------------------------------------------------------

/// The callback adapter: every operation a `begin_*` whose callback calls `end_*`.
#[derive(Debug, Default)]
pub struct Callbacks;

/// A callback that ends the operation with `end` and reports the outcome.
fn reporting<T: Send + 'static, U: Send + 'static>(
    tx: Sender<Res<U>>,
    end: impl FnOnce(&AsyncResult<T>) -> Res<U> + Send + 'static,
) -> Option<AsyncCallback<T>> {
    callback(move |ar: AsyncResult<T>| {
        let _ = tx.send(end(&ar));
    })
}

/// Reports the error of a `begin_*` that failed (its callback will never run);
/// whether it began.
fn began<T, U>(tx: &Sender<Res<U>>, begin: Res<T>) -> bool {
    match begin {
        Ok(_) => true,
        Err(e) => {
            let _ = tx.send(Err(e));
            false
        }
    }
}

impl Harness for Callbacks {
    type Stream = Socket;
    type Listener = Socket;
    type Udp = Socket;

    fn listen(&self, addr: SocketAddr) -> Res<Socket> {
        Socket::listen_tcp(addr, 128)
    }

    fn listener_socket(&self, l: &Socket) -> Socket {
        l.clone()
    }

    fn connect(&self, addr: SocketAddr) -> Res<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        let (tx, pending) = Pending::channel();
        let s2 = s.clone();
        s.begin_connect(addr, reporting(tx, move |ar| s2.end_connect(ar)), None)?;
        pending.outcome()?;
        Ok(s)
    }

    fn start_accept(&self, l: &Socket) -> Pending<Res<Socket>> {
        let (tx, pending) = Pending::channel();
        let l2 = l.clone();
        began(
            &tx,
            l.begin_accept(reporting(tx.clone(), move |ar| l2.end_accept(ar)), None),
        );
        pending
    }

    fn socket(&self, s: &Socket) -> Socket {
        s.clone()
    }

    fn start_sends(&self, s: &Socket, bufs: Vec<Vec<u8>>) -> Pending<Res<Vec<usize>>> {
        let (tx, pending) = Pending::channel();
        let total = bufs.len();
        let results = Arc::new(Mutex::new((
            (0..total)
                .map(|_| None)
                .collect::<Vec<Option<Res<usize>>>>(),
            0usize,
        )));
        for (i, buf) in bufs.into_iter().enumerate() {
            let (s2, results, done) = (s.clone(), results.clone(), tx.clone());
            let begun = s.begin_send(
                buf,
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    let outcome = s2.end_send(&ar);
                    let Ok(mut r) = results.lock() else { return };
                    r.0[i] = Some(outcome);
                    r.1 += 1;
                    if r.1 == total {
                        let all: Res<Vec<usize>> =
                            r.0.iter_mut().filter_map(Option::take).collect();
                        let _ = done.send(all);
                    }
                }),
                None,
            );
            if !began(&tx, begun) {
                break;
            }
        }
        if total == 0 {
            let _ = tx.send(Ok(Vec::new()));
        }
        pending
    }

    fn start_receive(&self, s: &Socket, capacity: usize) -> Pending<Res<Vec<u8>>> {
        let (tx, pending) = Pending::channel();
        let s2 = s.clone();
        let begun = s.begin_receive(
            Vec::with_capacity(capacity),
            SocketFlags::NONE,
            reporting(tx.clone(), move |ar| s2.end_receive(ar).map(|(_, buf)| buf)),
            None,
        );
        began(&tx, begun);
        pending
    }

    fn send_timeout(&self, s: &Socket, buf: Vec<u8>, limit: Duration) -> Res<usize> {
        let ar = s.begin_send(buf, SocketFlags::NONE, None, None)?;
        if !ar.wait_timeout(limit) {
            ar.cancel();
        }
        s.end_send(&ar)
    }

    fn receive_timeout(&self, s: &Socket, capacity: usize, limit: Duration) -> Res<Vec<u8>> {
        let ar = s.begin_receive(Vec::with_capacity(capacity), SocketFlags::NONE, None, None)?;
        if !ar.wait_timeout(limit) {
            ar.cancel();
        }
        s.end_receive(&ar).map(|(_, buf)| buf)
    }

    fn send_and_forget(&self, s: &Socket, buf: Vec<u8>) {
        let _ = s.begin_send(buf, SocketFlags::NONE, None, None);
    }

    fn udp_bind(&self, addr: SocketAddr) -> Res<Socket> {
        Socket::bind_udp(addr)
    }

    fn udp_socket(&self, u: &Socket) -> Socket {
        u.clone()
    }

    fn udp_connect(&self, u: &Socket, to: SocketAddr) -> Res<()> {
        u.end_connect(&u.begin_connect(to, None, None)?)
    }

    fn udp_send(&self, u: &Socket, buf: Vec<u8>) -> Res<usize> {
        u.end_send(&u.begin_send(buf, SocketFlags::NONE, None, None)?)
    }

    fn udp_send_to(&self, u: &Socket, buf: Vec<u8>, to: SocketAddr) -> Res<usize> {
        u.end_send_to(&u.begin_send_to(buf, SocketFlags::NONE, to, None, None)?)
    }

    fn start_receive_from(
        &self,
        u: &Socket,
        capacity: usize,
    ) -> Pending<Res<(usize, Vec<u8>, SocketAddr)>> {
        let (tx, pending) = Pending::channel();
        let u2 = u.clone();
        let begun = u.begin_receive_from(
            Vec::with_capacity(capacity),
            SocketFlags::NONE,
            reporting(tx.clone(), move |ar| u2.end_receive_from(ar)),
            None,
        );
        began(&tx, begun);
        pending
    }
}

// ---- tokio and smol ---------------------------------------------------------------

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How an async adapter differs from another: its runtime, spawning, and its own
/// socket types.
pub trait Flavor: Send + Sync + 'static {
    /// The adapter's runtime plug.
    type Rt: Runtime;
    /// The adapter's stream type.
    type Stream: Deref<Target = net::TcpStream<Self::Rt>> + Send + Sync + 'static;
    /// The adapter's listener type.
    type Listener: Send + Sync + 'static;
    /// The adapter's UDP type.
    type Udp: Deref<Target = net::UdpSocket<Self::Rt>> + Send + Sync + 'static;

    /// Connects with the adapter's `connect`.
    fn connect(addr: SocketAddr) -> BoxFuture<Res<Self::Stream>>;
    /// Binds a listener with the adapter's `bind`.
    fn bind(addr: SocketAddr) -> BoxFuture<Res<Self::Listener>>;
    /// Accepts with the adapter's `accept`.
    fn accept(l: Arc<Self::Listener>) -> BoxFuture<Res<Self::Stream>>;
    /// The listener's core socket.
    fn listener_socket(l: &Self::Listener) -> Socket;
    /// Binds a UDP socket with the adapter's `bind`.
    fn udp_bind(addr: SocketAddr) -> BoxFuture<Res<Self::Udp>>;
}

/// Polls a list of futures in index order until all are done: their first polls
/// happen in order, so operations they begin are begun in order.
pub(crate) struct InOrder<F: Future> {
    futures: Vec<Option<Pin<Box<F>>>>,
    outputs: Vec<Option<F::Output>>,
}

impl<F: Future> InOrder<F> {
    /// All of `futures`, to be polled in this order.
    pub(crate) fn new(futures: impl IntoIterator<Item = F>) -> InOrder<F> {
        let futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
        let outputs = futures.iter().map(|_| None).collect();
        InOrder { futures, outputs }
    }
}

impl<F: Future> Future for InOrder<F>
where
    F::Output: Unpin,
{
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for (slot, out) in this.futures.iter_mut().zip(this.outputs.iter_mut()) {
            if let Some(f) = slot {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                    *slot = None;
                }
            }
        }
        if this.futures.iter().all(Option::is_none) {
            Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    }
}

/// A tokio or smol adapter with its runtime running on a thread of its own; dropping
/// it stops the runtime, waiting for that up to 10 s.
pub struct AsyncHarness<F: Flavor> {
    name: &'static str,
    exec: Exec,
    _flavor: std::marker::PhantomData<fn() -> F>,
}

/// A scenario whose runtime does not stop (a task stuck in a poll) fails, rather than
/// passing with the runtime's thread left behind.
impl<F: Flavor> Drop for AsyncHarness<F> {
    fn drop(&mut self) {
        let stopped = self.exec.shut_down(crate::exec::DROP_LIMIT);
        if !stopped && !std::thread::panicking() {
            panic!(
                "{}: the runtime did not stop within {:?}",
                self.name,
                crate::exec::DROP_LIMIT
            );
        }
    }
}

impl<F: Flavor> std::fmt::Debug for AsyncHarness<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHarness")
            .field("name", &self.name)
            .finish()
    }
}

impl<F: Flavor> AsyncHarness<F> {
    fn new(name: &'static str, exec: Exec) -> AsyncHarness<F> {
        AsyncHarness {
            name,
            exec,
            _flavor: std::marker::PhantomData,
        }
    }

    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Pending<T> {
        let (tx, pending) = Pending::channel();
        self.exec.spawn(Box::pin(async move {
            let _ = tx.send(fut.await);
        }));
        pending
    }

    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Res<T>> + Send + 'static,
    ) -> Res<T> {
        self.run(fut).outcome()
    }
}

/// The tokio adapter.
#[derive(Debug)]
pub struct TokioFlavor;

impl Flavor for TokioFlavor {
    type Rt = asyncresult_tokio::Tokio;
    type Stream = asyncresult_tokio::TcpStream;
    type Listener = asyncresult_tokio::TcpListener;
    type Udp = asyncresult_tokio::UdpSocket;

    fn connect(addr: SocketAddr) -> BoxFuture<Res<Self::Stream>> {
        Box::pin(asyncresult_tokio::TcpStream::connect(addr))
    }
    fn bind(addr: SocketAddr) -> BoxFuture<Res<Self::Listener>> {
        Box::pin(asyncresult_tokio::TcpListener::bind(addr))
    }
    fn accept(l: Arc<Self::Listener>) -> BoxFuture<Res<Self::Stream>> {
        Box::pin(async move { l.accept().await.map(|(s, _)| s) })
    }
    fn listener_socket(l: &Self::Listener) -> Socket {
        l.socket().clone()
    }
    fn udp_bind(addr: SocketAddr) -> BoxFuture<Res<Self::Udp>> {
        Box::pin(asyncresult_tokio::UdpSocket::bind(addr))
    }
}

/// The smol adapter.
#[derive(Debug)]
pub struct SmolFlavor;

impl Flavor for SmolFlavor {
    type Rt = asyncresult_smol::Smol;
    type Stream = asyncresult_smol::TcpStream;
    type Listener = asyncresult_smol::TcpListener;
    type Udp = asyncresult_smol::UdpSocket;

    fn connect(addr: SocketAddr) -> BoxFuture<Res<Self::Stream>> {
        Box::pin(asyncresult_smol::TcpStream::connect(addr))
    }
    fn bind(addr: SocketAddr) -> BoxFuture<Res<Self::Listener>> {
        Box::pin(asyncresult_smol::TcpListener::bind(addr))
    }
    fn accept(l: Arc<Self::Listener>) -> BoxFuture<Res<Self::Stream>> {
        Box::pin(async move { l.accept().await.map(|(s, _)| s) })
    }
    fn listener_socket(l: &Self::Listener) -> Socket {
        l.socket().clone()
    }
    fn udp_bind(addr: SocketAddr) -> BoxFuture<Res<Self::Udp>> {
        Box::pin(asyncresult_smol::UdpSocket::bind(addr))
    }
}

/// The tokio adapter on a current-thread runtime.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn tokio_current_thread() -> AsyncHarness<TokioFlavor> {
    tokio_harness("tokio-ct", false)
}

/// The tokio adapter on a multi-thread runtime (2 workers).
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn tokio_multi_thread() -> AsyncHarness<TokioFlavor> {
    tokio_harness("tokio-mt", true)
}

fn tokio_harness(name: &'static str, multi_thread: bool) -> AsyncHarness<TokioFlavor> {
    match Exec::tokio(multi_thread) {
        Ok(exec) => AsyncHarness::new(name, exec),
        Err(e) => panic!("{e}"),
    }
}

/// The smol adapter on an `async_executor::Executor` run by `smol::block_on`.
pub fn smol_executor() -> AsyncHarness<SmolFlavor> {
    AsyncHarness::new("smol", Exec::smol())
}

impl<F: Flavor> Harness for AsyncHarness<F> {
    type Stream = Arc<F::Stream>;
    type Listener = Arc<F::Listener>;
    type Udp = Arc<F::Udp>;

    fn listen(&self, addr: SocketAddr) -> Res<Self::Listener> {
        self.block(F::bind(addr)).map(Arc::new)
    }

    fn listener_socket(&self, l: &Self::Listener) -> Socket {
        F::listener_socket(l)
    }

    fn connect(&self, addr: SocketAddr) -> Res<Self::Stream> {
        self.block(F::connect(addr)).map(Arc::new)
    }

    fn start_accept(&self, l: &Self::Listener) -> Pending<Res<Self::Stream>> {
        let l = l.clone();
        self.run(async move { F::accept(l).await.map(Arc::new) })
    }

    fn socket(&self, s: &Self::Stream) -> Socket {
        s.socket().clone()
    }

    fn start_sends(&self, s: &Self::Stream, bufs: Vec<Vec<u8>>) -> Pending<Res<Vec<usize>>> {
        let s = s.clone();
        self.run(async move {
            let sends = bufs.into_iter().map(|buf| {
                let s = s.clone();
                async move { s.send(buf).await }
            });
            InOrder::new(sends).await.into_iter().collect()
        })
    }

    fn start_receive(&self, s: &Self::Stream, capacity: usize) -> Pending<Res<Vec<u8>>> {
        let s = s.clone();
        self.run(async move {
            s.receive(Vec::with_capacity(capacity))
                .await
                .map(|(_, buf)| buf)
        })
    }

    fn send_timeout(&self, s: &Self::Stream, buf: Vec<u8>, limit: Duration) -> Res<usize> {
        let s = s.clone();
        self.block(async move { s.send_timeout(buf, limit).await })
    }

    fn receive_timeout(&self, s: &Self::Stream, capacity: usize, limit: Duration) -> Res<Vec<u8>> {
        let s = s.clone();
        self.block(async move {
            s.receive_timeout(Vec::with_capacity(capacity), limit)
                .await
                .map(|(_, buf)| buf)
        })
    }

    fn send_and_forget(&self, s: &Self::Stream, buf: Vec<u8>) {
        let s = s.clone();
        // Poll the send once (it begins), then drop the future mid-flight.
        let dropped = self.run(async move {
            let mut send = Box::pin(s.send(buf));
            let _ = futures::poll!(send.as_mut());
            drop(send);
        });
        let _ = dropped.wait(crate::harness::WAIT);
    }

    fn udp_bind(&self, addr: SocketAddr) -> Res<Self::Udp> {
        self.block(F::udp_bind(addr)).map(Arc::new)
    }

    fn udp_socket(&self, u: &Self::Udp) -> Socket {
        u.socket().clone()
    }

    fn udp_connect(&self, u: &Self::Udp, to: SocketAddr) -> Res<()> {
        let u = u.clone();
        self.block(async move { u.connect(to).await })
    }

    fn udp_send(&self, u: &Self::Udp, buf: Vec<u8>) -> Res<usize> {
        let u = u.clone();
        self.block(async move { u.send(buf).await })
    }

    fn udp_send_to(&self, u: &Self::Udp, buf: Vec<u8>, to: SocketAddr) -> Res<usize> {
        let u = u.clone();
        self.block(async move { u.send_to(buf, to).await })
    }

    fn start_receive_from(
        &self,
        u: &Self::Udp,
        capacity: usize,
    ) -> Pending<Res<(usize, Vec<u8>, SocketAddr)>> {
        let u = u.clone();
        self.run(async move { u.receive_from(Vec::with_capacity(capacity)).await })
    }
}
