//! The one error type of every operation, mirroring the exceptions that .NET's
//! `Socket.EndSend` documents: `SocketException` (with its `ErrorCode`),
//! `ObjectDisposedException`, `InvalidOperationException` (ended twice) and
//! `ArgumentException` (a result that this call did not start), plus `Aborted`
//! for a cancelled operation.

use std::fmt;
use std::io;

/// What went wrong with a socket or an operation.
///
/// | .NET | here |
/// |---|---|
/// | `SocketException` + `ErrorCode` | [`Error::Socket`] + [`Error::error_code`] |
/// | `ObjectDisposedException` | [`Error::Disposed`] |
/// | `InvalidOperationException` (EndSend called twice) | [`Error::AlreadyEnded`] |
/// | `ArgumentException` (not returned by BeginSend) | [`Error::ForeignResult`] |
/// | (cancellation) | [`Error::Aborted`] |
///
/// # Examples
///
/// ```
/// use asyncresult_core::Error;
///
/// let refused = Error::from(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
/// assert_eq!(refused.error_code(), Some(libc::ECONNREFUSED));
/// assert_eq!(Error::Disposed.error_code(), None);
///
/// // Every variant converts to `std::io::Error` and back without losing which it was.
/// let io: std::io::Error = Error::AlreadyEnded.into();
/// assert!(matches!(Error::from(io), Error::AlreadyEnded));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an error (`SocketException`); [`Error::error_code`]
    /// gives its errno.
    Socket(io::Error),
    /// The socket has been closed (`ObjectDisposedException`).
    Disposed,
    /// `end_*` was already called for this result, or for a clone of it
    /// (`InvalidOperationException`).
    AlreadyEnded,
    /// The result was not returned by the matching `begin_*` on this socket
    /// (`ArgumentException`).
    ForeignResult,
    /// The operation was cancelled, by [`AsyncResult::cancel`](crate::AsyncResult::cancel)
    /// or by an adapter's timeout.
    Aborted,
}

impl Error {
    /// The OS error code (errno) of a [`Error::Socket`], as .NET's
    /// `SocketException.ErrorCode`; `None` for every other variant, and for a socket error
    /// that did not come from the OS.
    pub fn error_code(&self) -> Option<i32> {
        match self {
            Error::Socket(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this error means the operation was cancelled.
    pub fn is_aborted(&self) -> bool {
        matches!(self, Error::Aborted)
    }

    /// Whether this error means the socket has been closed.
    pub fn is_disposed(&self) -> bool {
        matches!(self, Error::Disposed)
    }

    /// An [`Error::Socket`] made from a raw OS error code.
    pub(crate) fn os(code: i32) -> Error {
        Error::Socket(io::Error::from_raw_os_error(code))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Socket(e) => write!(f, "socket error: {e}"),
            Error::Disposed => f.write_str("the socket has been closed"),
            Error::AlreadyEnded => {
                f.write_str("end was already called for this asynchronous operation")
            }
            Error::ForeignResult => f.write_str(
                "the AsyncResult was not returned by the matching begin call on this socket",
            ),
            Error::Aborted => f.write_str("the operation was cancelled"),
        }
    }
}

impl std::error::Error for Error {
    /// For [`Error::Socket`], the source of the OS error, not the OS error itself: the
    /// message already shows it, and an error reporter that prints the chain would
    /// show it twice ("socket error: Broken pipe (os error 32): Broken pipe (os error
    /// 32)"). Match on the variant to get the `io::Error`.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Socket(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// Wraps an OS error as [`Error::Socket`]; an `io::Error` that was made from an
    /// `Error` (see `From<Error> for io::Error`) turns back into that variant.
    fn from(e: io::Error) -> Error {
        if e.raw_os_error().is_none() && e.get_ref().is_some_and(|inner| inner.is::<Marker>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(marker) = inner.downcast::<Marker>() {
                    return marker.0.into_error();
                }
            }
            // Unreachable in practice: `is::<Marker>()` was checked above.
            return Error::Socket(io::Error::other("asyncresult error"));
        }
        Error::Socket(e)
    }
}

impl From<Error> for io::Error {
    /// `Socket(e)` gives `e` back unchanged; `Disposed` becomes
    /// [`NotConnected`](io::ErrorKind::NotConnected); `AlreadyEnded` and `ForeignResult`
    /// become [`InvalidInput`](io::ErrorKind::InvalidInput); `Aborted` becomes
    /// [`TimedOut`](io::ErrorKind::TimedOut), a kind that I/O utilities never retry
    /// (unlike `Interrupted` or `WouldBlock`).
    fn from(e: Error) -> io::Error {
        let (kind, tag) = match e {
            Error::Socket(e) => return e,
            Error::Disposed => (io::ErrorKind::NotConnected, Tag::Disposed),
            Error::AlreadyEnded => (io::ErrorKind::InvalidInput, Tag::AlreadyEnded),
            Error::ForeignResult => (io::ErrorKind::InvalidInput, Tag::ForeignResult),
            Error::Aborted => (io::ErrorKind::TimedOut, Tag::Aborted),
        };
        io::Error::new(kind, Marker(tag))
    }
}

/// The non-OS variants, carried inside an `io::Error` so the conversion round-trips.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Disposed,
    AlreadyEnded,
    ForeignResult,
    Aborted,
}

impl Tag {
    fn into_error(self) -> Error {
        match self {
            Tag::Disposed => Error::Disposed,
            Tag::AlreadyEnded => Error::AlreadyEnded,
            Tag::ForeignResult => Error::ForeignResult,
            Tag::Aborted => Error::Aborted,
        }
    }
}

/// The payload of an `io::Error` made from an [`Error`]; displays as that error.
#[derive(Debug)]
struct Marker(Tag);

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.into_error(), f)
    }
}

impl std::error::Error for Marker {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_every_variant() {
        for e in [
            Error::Disposed,
            Error::AlreadyEnded,
            Error::ForeignResult,
            Error::Aborted,
        ] {
            let shown = e.to_string();
            let io: io::Error = e.into();
            assert_eq!(io.to_string(), shown);
            let back = Error::from(io);
            assert_eq!(back.to_string(), shown);
        }
        let io: io::Error = Error::os(libc::EPIPE).into();
        assert_eq!(io.raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn kinds_match_the_contract() {
        let kind = |e: Error| io::Error::from(e).kind();
        assert_eq!(kind(Error::Disposed), io::ErrorKind::NotConnected);
        assert_eq!(kind(Error::AlreadyEnded), io::ErrorKind::InvalidInput);
        assert_eq!(kind(Error::ForeignResult), io::ErrorKind::InvalidInput);
        let aborted = kind(Error::Aborted);
        assert_ne!(aborted, io::ErrorKind::Interrupted);
        assert_ne!(aborted, io::ErrorKind::WouldBlock);
    }

    #[test]
    fn error_code_is_the_errno() {
        assert_eq!(
            Error::os(libc::ECONNRESET).error_code(),
            Some(libc::ECONNRESET)
        );
        assert_eq!(Error::Aborted.error_code(), None);
    }

    /// An error reporter walking the chain shows the OS error once.
    #[test]
    fn the_chain_shows_the_os_error_once() {
        use std::error::Error as _;
        let e = Error::os(libc::EPIPE);
        let mut chain = e.to_string();
        let mut next = e.source();
        while let Some(inner) = next {
            chain.push_str(&format!(": {inner}"));
            next = inner.source();
        }
        let shown = io::Error::from_raw_os_error(libc::EPIPE).to_string();
        assert_eq!(chain.matches(&shown).count(), 1, "{chain}");
    }
}
