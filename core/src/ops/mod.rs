//! The operation family, one module per kind: each defines the [`Work`](crate::op::Work)
//! that runs its syscall and the `begin_*`/`end_*` pair on [`Socket`](crate::Socket).

pub(crate) mod accept;
pub(crate) mod connect;
pub(crate) mod receive;
pub(crate) mod send;
pub(crate) mod try_io;

use std::io;

use crate::error::Error;
use crate::flags::SocketFlags;
use crate::op::Attempt;
use crate::sys;

/// The most buffers one `sendmsg` takes (Linux's `UIO_MAXIOV`).
pub(crate) const MAX_IOV: usize = 1024;

/// The `send*` flags of `flags`, plus those every send carries (`MSG_NOSIGNAL`).
pub(crate) fn send_flags(flags: SocketFlags) -> libc::c_int {
    flags.to_msg_flags() | sys::SEND_FLAGS
}

/// Runs a non-blocking syscall, retrying on `EINTR`: `Ok(Some)` on success,
/// `Ok(None)` if it would block, `Err` for any other error.
pub(crate) fn nonblocking<T>(mut call: impl FnMut() -> io::Result<T>) -> Result<Option<T>, Error> {
    loop {
        match call() {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(Error::Socket(e)),
        }
    }
}

/// The attempt that a failed syscall ends with.
pub(crate) fn failed<T>(e: Error) -> Attempt<T> {
    Attempt::Done(Err(e))
}
