//! asyncresult for smol and the async-io world: sockets whose operations are
//! futures, plus `futures_io::{AsyncRead, AsyncWrite}`, over the runtime-free
//! asyncresult engine.
//!
//! The futures run under `smol::block_on`, `smol::Executor` / `async_executor`, or
//! any executor, since the engine is driven by async-io's reactor, which runs on its
//! own. The same engine serves the callback adapter (.NET's Begin/End) and the tokio
//! adapter, in one process if you like: a socket made in one can be handed to another
//! through [`Socket`] (`into_inner()` / `From<Socket>`).
//!
//! | type | operations |
//! |---|---|
//! | [`TcpStream`] | `connect`, `send` (whole buffer), `receive`, `AsyncRead`, `AsyncWrite` (also for `&TcpStream`) |
//! | [`TcpListener`] | `bind`, `accept` |
//! | [`UdpSocket`] | `bind`, `connect`, `send`, `receive`, `send_to`, `receive_from` |
//!
//! Every future is `Send` and documents its cancel safety. Receives and accepts are
//! cancel safe; a dropped send still goes out whole, before any later send. Each
//! operation that waits has a `*_timeout` form bounded by async-io's `Timer`, which
//! cancels the core operation at expiry ([`Error::Aborted`]).
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
//! use asyncresult_smol::{TcpListener, TcpStream};
//!
//! # fn main() -> Result<(), asyncresult_smol::Error> {
//! smol::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
//!     let addr = listener.local_addr()?;
//!     let server = smol::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let (n, buf) = stream.receive(Vec::with_capacity(64)).await?;
//!         stream.send(buf).await?; // echo
//!         Ok::<usize, asyncresult_smol::Error>(n)
//!     });
//!
//!     let client = TcpStream::connect(addr).await?;
//!     client.set_nodelay(true)?;
//!     assert_eq!(client.send(b"ping").await?, 4);
//!     let (n, reply) = client.receive(Vec::with_capacity(64)).await?;
//!     assert_eq!(&reply[..n], b"ping");
//!     assert_eq!(server.await?, 4);
//!     Ok(())
//! })
//! # }
//! ```

#![deny(missing_docs, missing_debug_implementations)]

mod driver;
mod net;

pub use asyncresult_core::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, Type,
};
pub use net::{TcpListener, TcpStream, UdpSocket};

/// This adapter's [`Runtime`](asyncresult_core::future::Runtime): async-io's reactor
/// drives the engine, and timeouts use async-io's `Timer`.
#[derive(Debug, Clone, Copy)]
pub struct Smol;

impl asyncresult_core::future::Runtime for Smol {
    type Sleep = async_io::Timer;

    fn will_wait() {
        driver::ensure();
    }

    fn sleep(duration: std::time::Duration) -> Self::Sleep {
        async_io::Timer::after(duration)
    }

    /// async-io and smol's executors keep no budget.
    type Budget = ();

    fn poll_budget(_cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }

    fn made_progress(_budget: ()) {}

    /// async-io's reads go on until `EAGAIN`, so a receive never waits with bytes
    /// behind it; this adapter's do the same, asking the kernel's count where a short
    /// read could be wrong instead of paying the `EAGAIN`. With tokio's rule, the
    /// bench's fan-in (one executor thread, 1,000 senders) made 2.4 times as many
    /// zero-window advertisements as async-io, and took longer to drain.
    const READ_DRAIN: asyncresult_core::future::ReadDrain =
        asyncresult_core::future::ReadDrain::KernelCount;
}
