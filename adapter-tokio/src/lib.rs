//! asyncresult for tokio: sockets whose operations are futures, plus
//! `tokio::io::{AsyncRead, AsyncWrite}`, over the runtime-free asyncresult engine.
//!
//! The same engine serves the callback adapter (.NET's Begin/End) and the smol
//! adapter, in one process if you like: a socket made in one can be handed to another
//! through [`Socket`] (`into_inner()` / `From<Socket>`).
//!
//! | type | operations |
//! |---|---|
//! | [`TcpStream`] | `connect`, `send` (whole buffer), `receive`, `AsyncRead`, `AsyncWrite`, `into_split` |
//! | [`TcpListener`] | `bind`, `accept` |
//! | [`UdpSocket`] | `bind`, `connect`, `send`, `receive`, `send_to`, `receive_from` |
//!
//! Every future is `Send`, works on the current-thread and the multi-thread runtime,
//! and documents its cancel safety. Receives and accepts are cancel safe; a dropped
//! send still goes out whole, before any later send. Each operation that waits has a
//! `*_timeout` form bounded by tokio's timer, which cancels the core operation at
//! expiry ([`Error::Aborted`]).
//!
//! Receives, accepts, `AsyncRead` and `AsyncWrite` wait for readiness and then try
//! again, so that a dropped future loses nothing (`send` is a queued operation of the
//! core). A receive, `receive_from` or accept future still has its place in the
//! socket's order from its first poll: a `begin_*` on the same socket and direction
//! begun after that runs after it (a future kept but not polled holds it up), and
//! dropping the future gives the place up. Futures are not ordered among themselves,
//! as with the runtime's own sockets: one polled while another waits may take the data
//! first. `AsyncRead` and `AsyncWrite` keep no place (a stream's reads outlive the
//! futures that poll them): a `begin_*` begun while they wait may go first, so mix
//! those with `begin_*` on one direction only where that order does not matter.
//!
//! How it is fast: the engine's poller descriptor is registered once with each
//! runtime's reactor, and a driver task drains it on the runtime's threads, so a
//! completion wakes its future without any cross-thread hand-off; a future that is
//! about to wait also drains once inline, which on loopback usually finds the peer's
//! reply already there.
//!
//! # Runtime
//!
//! Build the runtime with I/O enabled (`enable_io` or `enable_all`, as
//! `#[tokio::main]` does): that is what lets it drive the engine. On a runtime without
//! I/O the futures still complete, woken by the engine's own threads (slower; tokio
//! refuses the registration once per runtime with a panic that is caught, or that
//! aborts under `panic = "abort"`, as tokio's own I/O types do there). The
//! `*_timeout` forms use tokio's timer, so, like `tokio::time::sleep`, they need a
//! runtime with time enabled and panic outside one; the others also run outside any
//! runtime (under `futures::executor::block_on`, say).
//!
//! A runtime that has run the adapter's futures drives the engine for the whole
//! process while it lives. Kept but not driven (a current-thread runtime between two
//! `block_on` calls), it leaves the events of every socket, the callback adapter's
//! too, to the engine's monitor thread, which serves them a look at a time (every
//! 2–64 ms) and, after 8 such looks, hands polling back to the engine's own threads
//! until the runtime drains again. So code that alternates `block_on` with callback
//! operations sees those operations take milliseconds; run the runtime on a thread
//! of its own, or drop it when done.
//!
//! # Which adapter?
//!
//! | you run on | depend on | you get |
//! |---|---|---|
//! | plain threads, callbacks | `asyncresult-callback` | the .NET APM surface (`begin_*`/`end_*`, `AsyncCallback`, `AsyncState`) |
//! | tokio | `asyncresult-tokio` | futures, `tokio::io::{AsyncRead, AsyncWrite}` |
//! | smol / async-io / any executor | `asyncresult-smol` | futures, `futures_io::{AsyncRead, AsyncWrite}` |
//!
//! All three share one engine per process; a socket made through one can be handed to
//! another as a [`Socket`].
//!
//! # Example
//!
//! ```
//! use asyncresult_tokio::{TcpListener, TcpStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), asyncresult_tokio::Error> {
//! let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move {
//!     let (stream, _) = listener.accept().await?;
//!     let (n, buf) = stream.receive(Vec::with_capacity(64)).await?;
//!     stream.send(buf).await?; // echo
//!     Ok::<usize, asyncresult_tokio::Error>(n)
//! });
//!
//! let client = TcpStream::connect(addr).await?;
//! client.set_nodelay(true)?;
//! assert_eq!(client.send(b"ping").await?, 4);
//! let (n, reply) = client.receive(Vec::with_capacity(64)).await?;
//! assert_eq!(&reply[..n], b"ping");
//! assert_eq!(server.await.unwrap()?, 4);
//! # Ok(()) }
//! ```

#![deny(missing_docs, missing_debug_implementations)]

mod driver;
mod net;

pub use asyncresult_core::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, Type,
};
pub use net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream, UdpSocket};

/// This adapter's [`Runtime`](asyncresult_core::future::Runtime): futures that are
/// about to wait make sure the current tokio runtime drives the engine.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl asyncresult_core::future::Runtime for Tokio {
    type Sleep = tokio::time::Sleep;

    fn will_wait() {
        driver::ensure();
    }

    fn sleep(duration: std::time::Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    /// tokio's `coop` unit: given back when dropped unspent (the poll was `Pending`).
    type Budget = tokio::task::coop::RestoreOnPending;

    fn poll_budget(cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Budget> {
        tokio::task::coop::poll_proceed(cx)
    }

    fn made_progress(budget: Self::Budget) {
        budget.made_progress();
    }
}
