//! The classic .NET asynchronous programming model (APM) for Rust sockets:
//! `begin_send`/`end_send` and the rest of the Begin/End family, [`AsyncResult`]
//! (`IAsyncResult`), [`AsyncCallback`] and [`AsyncState`], on plain threads with no
//! async runtime.
//!
//! ```text
//! .NET                                         asyncresult_callback
//! s.BeginSend(buf, 0, n, flags, cb, state)     s.begin_send(buf, flags, cb, state)?
//! int n = s.EndSend(ar)                        let n = s.end_send(&ar)?
//! (StateObject) ar.AsyncState                  ar.state::<StateObject>()
//! ar.AsyncWaitHandle.WaitOne()                 ar.wait()
//! ```
//!
//! What .NET's `Socket.EndSend` documentation (the *seed* these crates follow) promises,
//! and this crate keeps:
//!
//! - a send on a stream completes only when every byte is sent; `end_send` blocks until
//!   then and returns the whole length;
//! - the callback "executes in a separate thread": it runs exactly once on a callback
//!   thread of the engine, never inside `begin_*` and never while the engine holds a
//!   lock, even when the operation completed synchronously (it runs on another thread,
//!   so it may start before `begin_*` has returned to its caller); a callback that
//!   panics harms no other operation;
//! - `end_*` twice gives [`Error::AlreadyEnded`], a result of another socket or another
//!   kind gives [`Error::ForeignResult`], a closed socket gives [`Error::Disposed`], and a
//!   socket error comes as [`Error::Socket`] with its errno in [`Error::error_code`];
//! - [`Socket::set_nodelay`] is `SocketOptionName.NoDelay`.
//!
//! # Callback threads
//!
//! Callbacks run on the engine's pool, which grows as callbacks block (a monitor hands
//! the work of a blocked thread to another) up to 128 threads and shrinks when they are
//! idle. A callback that blocks, even in `end_*` of another pending operation, holds
//! one thread and stops nothing else, as long as fewer than 128 block at once. Past
//! that, further callbacks wait for a thread: callbacks that wait for one another in
//! greater numbers (a barrier of 200 callbacks, say) never all start, as on any bounded
//! pool (.NET's included). Operations without a callback still complete meanwhile (a
//! blocked `end_*`, a future; the monitor serves their events every 2 ms), so
//! callbacks blocked on those come free. Hand long waits to threads of your own.
//!
//! Callbacks of different operations may run in any order, and at once on different
//! threads, as in .NET. The operations keep their order (a socket's sends go out, and
//! its receives take the stream, in the order begun), so with several receives
//! outstanding, place each one's bytes by the order you began them, not by the order
//! their callbacks ran.
//!
//! The Begin/End methods are inherent methods of [`Socket`] (they live in the core, so
//! every adapter shares one operation lifecycle); this crate gives them their .NET
//! setting: the [`prelude`], and [`callback`] and [`state`] to write the arguments
//! without boxing by hand.
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
//! That documentation's own example: the callback finds the socket in its
//! `StateObject` and ends the send there.
//!
//! ```
//! use std::sync::mpsc;
//! use asyncresult_callback::prelude::*;
//!
//! struct StateObject {
//!     work_socket: Socket,
//!     done: mpsc::Sender<()>,
//! }
//!
//! fn send_callback(ar: AsyncResult<usize>) {
//!     let so = ar.state::<StateObject>().expect("the state passed to begin_send");
//!     let s = &so.work_socket;
//!     let send = s.end_send(&ar).expect("send");
//!     println!("The size of the message sent was: {send}");
//!     let _ = so.done.send(());
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = Socket::listen_tcp("127.0.0.1:0".parse()?, 16)?;
//! let s = Socket::connect_tcp(listener.local_addr()?)?;
//! s.set_nodelay(true)?;
//!
//! let (done, callback_ran) = mpsc::channel();
//! s.begin_send(
//!     b"Hello, world",
//!     SocketFlags::NONE,
//!     callback(send_callback),
//!     state(StateObject { work_socket: s.clone(), done }),
//! )?;
//! // The callback runs on a callback thread: wait for it before leaving (`ar.wait()`
//! // would wait for the send only, not for its callback).
//! callback_ran.recv()?;
//! # Ok(()) }
//! ```

#![deny(missing_docs, missing_debug_implementations)]

use std::any::Any;
use std::sync::Arc;

pub use asyncresult_core::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, Type,
};

/// Everything a .NET-style program needs: `use asyncresult_callback::prelude::*;`.
pub mod prelude {
    pub use super::{callback, state};
    pub use asyncresult_core::{
        AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
        SocketFlags, Type,
    };
}

/// Wraps a closure or function as the `callback` argument of a `begin_*` call
/// (.NET's `new AsyncCallback(SendCallback)`).
///
/// # Examples
///
/// ```
/// use asyncresult_callback::prelude::*;
///
/// let cb: Option<AsyncCallback<usize>> = callback(|ar: AsyncResult<usize>| {
///     let _ = ar.is_completed();
/// });
/// assert!(cb.is_some());
/// ```
pub fn callback<T, F>(f: F) -> Option<AsyncCallback<T>>
where
    F: FnOnce(AsyncResult<T>) + Send + 'static,
{
    Some(Box::new(f))
}

/// Wraps a value as the `state` argument of a `begin_*` call (.NET's `object state`),
/// to be found again with [`AsyncResult::state`].
///
/// # Examples
///
/// ```
/// use asyncresult_callback::prelude::*;
///
/// let st = state(42u32).unwrap();
/// assert_eq!(st.downcast_ref::<u32>(), Some(&42));
/// ```
pub fn state<S: Any + Send + Sync>(value: S) -> Option<AsyncState> {
    Some(Arc::new(value))
}
