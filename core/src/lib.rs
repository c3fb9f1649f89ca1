//! The runtime-free core of **asyncresult**: .NET's asynchronous socket model
//! (`BeginSend`/`EndSend`, `IAsyncResult`, `AsyncCallback`, `AsyncState`) for Rust,
//! over [`polling`] and [`socket2`].
//!
//! Every operation is a `begin_*` that starts it and returns an [`AsyncResult`], and an
//! `end_*` that blocks until it is done and returns its outcome once:
//!
//! - **Whole sends.** A send on a stream completes only when every byte is in the
//!   kernel; its count is the whole length. A datagram send is one datagram.
//! - **Order.** Operations of one direction of one socket run in the order they were
//!   begun, from any threads; bytes of two sends never interleave. A receive or
//!   accept future ([`future`]) is begun at its first poll and keeps its place until
//!   it returns or is dropped, so what is begun after it runs after it (a future kept
//!   but not polled holds those up). Futures' tries are not ordered among themselves,
//!   as with tokio's sockets: one polled while another waits may take the data first.
//!   `AsyncRead` and `AsyncWrite` ([`stream_io`]) keep no place: an operation begun
//!   while they wait may go first, so mix them with `begin_*` on one direction only
//!   where that order does not matter.
//! - **Fast path.** When nothing is queued and the kernel has room, `begin_send`
//!   finishes the whole send with one `send` syscall on the calling thread, touches no
//!   poller state, and reports [`AsyncResult::completed_synchronously`].
//! - **Callbacks** ([`AsyncCallback`]) run exactly once, on a callback thread, never
//!   inside `begin_*`; a panicking callback harms nothing else.
//! - **Errors.** `begin_*` fails only with [`Error::Disposed`] or for a role the socket
//!   cannot play; everything met while doing the operation comes through the result,
//!   with its errno in [`Error::error_code`]. No send ever raises `SIGPIPE`.
//!
//! # Which adapter?
//!
//! This crate is what the adapters share; applications usually depend on one adapter:
//!
//! | you run on | depend on | you get |
//! |---|---|---|
//! | plain threads, callbacks | `asyncresult-callback` | the .NET APM surface (`begin_*`/`end_*`, `AsyncCallback`, `AsyncState`) |
//! | tokio | `asyncresult-tokio` | futures, `tokio::io::{AsyncRead, AsyncWrite}` |
//! | smol / async-io / any executor | `asyncresult-smol` | futures, `futures_io::{AsyncRead, AsyncWrite}` |
//!
//! # Example
//!
//! The pattern of .NET's `Socket.EndSend` documentation: a callback that finds its
//! socket in the `AsyncState` and ends the send there.
//!
//! ```
//! use std::sync::{mpsc, Arc};
//! use asyncresult_core::{AsyncResult, Socket, SocketFlags};
//!
//! struct StateObject { work_socket: Socket }
//!
//! # fn main() -> Result<(), asyncresult_core::Error> {
//! let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
//! let client = Socket::connect_tcp(listener.local_addr()?)?;
//! client.set_nodelay(true)?;
//!
//! let (done, sent) = mpsc::channel();
//! let state = Arc::new(StateObject { work_socket: client.clone() });
//! client.begin_send(
//!     b"Hello, world".to_vec(),
//!     SocketFlags::NONE,
//!     Some(Box::new(move |ar: AsyncResult<usize>| {
//!         let so = ar.state::<StateObject>().expect("state");
//!         let send = so.work_socket.end_send(&ar).expect("send");
//!         done.send(send).expect("report");
//!     })),
//!     Some(state),
//! )?;
//! assert_eq!(sent.recv().expect("callback ran"), 12);
//! # Ok(()) }
//! ```
//!
//! # Architecture
//!
//! One engine per process owns an epoll set (a [`polling::Poller`]); every socket joins
//! it once, edge-triggered for both directions. Each socket has a FIFO queue per
//! direction; a `begin_*` whose queue is empty tries its syscall inline, and the rest
//! wait for readiness. Worker threads drain the poller (one leader at a time, running
//! the callbacks it completes itself), or a runtime adapter drains it on its own
//! threads through [`driver::Driver`]. The module docs of the internals (in the
//! repository: `core/src/queue.rs`, `core/src/engine/`) explain why no wake-up is lost
//! and why no completion is handed across threads on the hot path.
//!
//! The engine starts at first use. If it cannot (no thread or descriptor to spare just
//! then), that use fails with [`Error::Socket`] (`EAGAIN`, `EMFILE`) and leaves
//! nothing behind; the next use tries again.
//!
//! # `fork()`
//!
//! The engine belongs to the process that started it. A child forked after that (a
//! pre-fork server's worker, say) cannot use the library: creating a socket or
//! attaching a driver there fails with [`Error::Socket`] of kind
//! [`Unsupported`](std::io::ErrorKind::Unsupported), and nothing in the child takes
//! events off the epoll set it shares with its parent. Sockets inherited across the
//! fork may be dropped or closed in the child, which only lets go of its descriptor:
//! the parent's connection stays up and registered, and operations pending on it (the
//! parent's) are neither completed nor called back in the child. That takes none of
//! the locks the parent's threads, which do not exist in the child, may have held at
//! the fork. `begin_*` and the `try_*` forms on inherited sockets fail there the same
//! way, before they take any lock, and `cancel` does nothing. A child forked before the
//! engine started, or one that `exec`s, starts an engine of its own as usual.
//!
//! Linux and Android only for now: the engine drains its epoll set directly.

#![deny(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod async_result;
mod buf;
mod context;
mod drain_proof;
pub mod driver;
mod engine;
mod error;
mod fifo;
mod flags;
pub mod future;
pub mod net;
mod op;
mod ops;
mod queue;
mod reported_once;
mod socket;
pub mod stream_io;
mod sync;
mod sys;
mod transport;
mod user_drop;

pub use async_result::{AsyncCallback, AsyncResult, AsyncState};
pub use buf::{IoBuf, IoBufMut};
pub use error::Error;
pub use flags::SocketFlags;
pub use ops::try_io::TryIo;
pub use socket::Socket;
pub use socket2::{Domain, Protocol, Type};

/// Re-exported so that users name exactly the `socket2` this crate speaks (0.6).
pub use socket2;
