//! Failures the kernel reports once, and how a stream's syscalls hand them on.
//!
//! A TCP socket's pending error (a reset, a refused handshake) goes to whichever
//! syscall comes first: a send, a peek, `SO_ERROR`, a read, a connect. After it, reads
//! find end of stream. So a failure that a send, a peek or the connect took is kept for
//! the next read, which reports it once instead of a clean end of a connection that
//! failed (or never was); and a handshake's failure that a read took is kept for the
//! connect, which would otherwise find only `ECONNABORTED`.
//!
//! The connect and a read run under their two directions' separate locks, so while a
//! connect is under way they also share a small lock, the *handshake* lock: the
//! connect's syscalls and a read's each run under it together with the keeping of what
//! they took, so neither looks while the other has taken a failure and not yet kept
//! it. Reads take no lock while no connect is under way. A read that began before the
//! connect's syscall takes the lock only if it finds end of stream (it then waits for
//! the connect to keep what it took); were such a read's syscall delayed for a whole
//! handshake and then to take the refusal, the connect could look before the read
//! keeps it and say `ECONNABORTED`.

use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::error::Error;

/// [`ReportedOnce::unreported`]: a read has reported end of stream, which stays.
const EOF_REPORTED: u8 = u8::MAX;

/// [`ReportedOnce::connect`]: no connect is under way.
const NO_CONNECT: u8 = 0;
/// [`ReportedOnce::connect`]: a connect is under way and no read took its failure.
const CONNECTING: u8 = u8::MAX;

/// Errors the kernel reports once for a whole connection (its pending socket error):
/// whichever syscall comes first takes it, and after it reads find end of stream.
fn is_connection_failure(code: i32) -> bool {
    matches!(
        code,
        libc::ECONNRESET
            | libc::ECONNABORTED
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENETDOWN
    )
}

/// Errors a read reports of its own call, never the socket's pending error (which a
/// failed handshake leaves): `ENOTCONN` from a read that ran before the connect's
/// syscall (or between the two of a retried connect, see `ConnectWork::attempt`),
/// `EINVAL` from an urgent-data read with no urgent byte, and the like. Such a read did
/// not take the handshake's failure, so [`ReadWindow::failed`] keeps nothing for the
/// connect, which would otherwise report it in place of the refusal a later read takes.
fn is_read_call_error(code: i32) -> bool {
    matches!(
        code,
        libc::ENOTCONN | libc::EINVAL | libc::EFAULT | libc::EBADF | libc::ENOTSOCK
    )
}

/// What one socket's syscalls took of the failures the kernel reports once. Only a
/// stream's reads find end of stream after a failure and ask what was kept (and only a
/// stream's connect takes time), so on a datagram socket this keeps what nobody asks
/// for. Three bytes: errno values are kept as bytes (Linux's are below 134; a larger
/// one is not kept).
#[derive(Debug, Default)]
pub(crate) struct ReportedOnce {
    /// The connect under way, and what a read took from it: [`NO_CONNECT`] when none
    /// is, [`CONNECTING`] from its syscall until its outcome is taken, and then the
    /// errno of its failure if a read took that first.
    connect: AtomicU8,
    /// The errno of a connection failure (a reset, a timeout, a refusal) that a send, a
    /// peek or the connect took first and that no read has reported yet; 0 if none;
    /// [`EOF_REPORTED`] once a read has reported end of stream, after which there is
    /// nothing to keep.
    unreported: AtomicU8,
    /// Held by the connect's syscalls, and by a read's while a connect is under way,
    /// each with the keeping of what it took (see the module docs).
    handshake: Mutex<()>,
}

impl ReportedOnce {
    /// Passes on the error of a send or a peek, keeping a connection failure for the
    /// next read: the kernel reports a reset once, to whichever syscall comes first, and
    /// if that is a send or a peek (which changes nothing), the next read would find a
    /// plain end of stream (as if the peer had shut down cleanly). That read reports the
    /// failure instead (see [`ReadWindow::end_of_stream`]), as it would have had it
    /// come first.
    pub(crate) fn keep_connection_failure(&self, e: Error) -> Error {
        if let Some(code) = e.error_code().filter(|&c| is_connection_failure(c)) {
            self.keep_for_next_read(code);
        }
        e
    }

    /// Keeps `code` for the next read of a stream, which reports it instead of end of
    /// stream; not after a read reported end of stream: that stays the answer.
    fn keep_for_next_read(&self, code: i32) {
        if let Ok(code) = u8::try_from(code) {
            if code != EOF_REPORTED {
                let _ =
                    self.unreported
                        .compare_exchange(0, code, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// The handshake lock, for the connect's syscalls and the keeping of what they
    /// took (see the module docs).
    pub(crate) fn handshake(&self) -> MutexGuard<'_, ()> {
        self.handshake.lock()
    }

    /// A connect's syscall is about to be issued (the caller holds the handshake lock):
    /// a new handshake, which forgets what an earlier failed one left for the connect
    /// (see also [`connect_accepted`](Self::connect_accepted)).
    pub(crate) fn connect_issued(&self) {
        self.connect.store(CONNECTING, Ordering::Release);
    }

    /// The kernel took a new handshake (the connect's syscall succeeded or is in
    /// progress): what an earlier failed one kept for the next read (its refusal, or
    /// the end of stream a read reported after it) goes with it, so that the new
    /// connection's clean end of stream reads as 0 and its own failures are kept. Not
    /// before the syscall: a connect that fails at once (`EISCONN` on a live
    /// connection) must leave that connection's kept failure alone.
    pub(crate) fn connect_accepted(&self) {
        self.unreported.store(0, Ordering::Release);
    }

    /// The connect took the handshake's failure `e` (the caller holds the handshake
    /// lock): a read that then finds end of stream (the kernel's answer on a socket
    /// whose handshake failed) reports that failure once instead, as it would have had
    /// it come first — never a clean end of a connection that never was. Errors of the
    /// connect's own call (`EISCONN`, `EADDRNOTAVAIL`, ...) are not kept.
    pub(crate) fn keep_connect_failure(&self, e: Error) -> Error {
        if let Some(code) = e
            .error_code()
            .filter(|&c| c == libc::ECONNREFUSED || is_connection_failure(c))
        {
            self.keep_for_next_read(code);
        }
        e
    }

    /// The connect under way has its outcome (the caller holds the handshake lock, and
    /// has kept any failure it took for the next read): returns the handshake's failure
    /// if a read took it first.
    pub(crate) fn connect_ended(&self) -> Option<Error> {
        match self.connect.swap(NO_CONNECT, Ordering::AcqRel) {
            NO_CONNECT | CONNECTING => None,
            code => Some(Error::os(i32::from(code))),
        }
    }

    /// Opens a read (or a peek) of a stream: while a connect is under way, the read's
    /// syscall and the keeping of what it took run under the handshake lock.
    pub(crate) fn read(&self) -> ReadWindow<'_> {
        let handshake =
            (self.connect.load(Ordering::Acquire) != NO_CONNECT).then(|| self.handshake.lock());
        ReadWindow {
            once: self,
            handshake,
        }
    }
}

/// One read of a stream, from before its syscall until what it found is judged (see
/// [`ReportedOnce::read`]).
pub(crate) struct ReadWindow<'a> {
    once: &'a ReportedOnce,
    /// The handshake lock, if a connect was under way when the read began.
    handshake: Option<MutexGuard<'a, ()>>,
}

impl ReadWindow<'_> {
    /// Passes on the error of the read; if a connect is under way, the read took the
    /// handshake's failure (`ECONNREFUSED`, ...), which the kernel reports once: it is
    /// kept for the connect (see [`ReportedOnce::connect_ended`]). A peek's connection
    /// failure is also kept for the next read (see
    /// [`ReportedOnce::keep_connection_failure`]).
    pub(crate) fn failed(&self, e: Error, peek: bool) -> Error {
        let once = self.once;
        let code = e
            .error_code()
            .filter(|&c| !is_read_call_error(c))
            .and_then(|c| u8::try_from(c).ok());
        if let Some(code) = code.filter(|&c| c != NO_CONNECT && c != CONNECTING) {
            let _ = once.connect.compare_exchange(
                CONNECTING,
                code,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        if peek {
            once.keep_connection_failure(e)
        } else {
            e
        }
    }

    /// The read found end of stream: it reports the connection failure that a send, a
    /// peek or the connect took, if any, once; from then on, end of stream. A peek
    /// reports either and changes nothing.
    ///
    /// A read that began with no connect under way waits here for one that is under way
    /// now: its connect may have taken the handshake's failure (which is why the read
    /// found end of stream) and not yet kept it. With no connect under way and nothing
    /// kept, it waits for the sends under way (`wait_for_sends`, which waits for the
    /// send queue's lock; the caller holds the receive queue's, and no thread takes the
    /// two the other way round): a send may have taken a reset (which is why the read
    /// found end of stream) and not yet kept it. Only at end of stream, so a read pays
    /// nothing for it.
    pub(crate) fn end_of_stream(
        &self,
        peek: bool,
        wait_for_sends: impl FnOnce(),
    ) -> Result<(), Error> {
        let once = self.once;
        if self.handshake.is_none() {
            if once.connect.load(Ordering::Acquire) != NO_CONNECT {
                drop(once.handshake.lock());
            } else if once.unreported.load(Ordering::Acquire) == 0 {
                wait_for_sends();
            }
        }
        let kept = once.unreported.load(Ordering::Acquire);
        if kept == EOF_REPORTED {
            return Ok(());
        }
        let code = if peek {
            kept
        } else {
            once.unreported.swap(EOF_REPORTED, Ordering::AcqRel)
        };
        match code {
            0 | EOF_REPORTED => Ok(()),
            code => Err(Error::os(i32::from(code))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<(), Error>) -> Option<i32> {
        r.err().and_then(|e| e.error_code())
    }

    #[test]
    fn a_kept_failure_is_reported_once_then_end_of_stream() {
        let once = ReportedOnce::default();
        once.keep_connection_failure(Error::os(libc::ECONNRESET));
        // A peek reports it and leaves it.
        assert_eq!(
            code(once.read().end_of_stream(true, || {})),
            Some(libc::ECONNRESET)
        );
        assert_eq!(
            code(once.read().end_of_stream(false, || {})),
            Some(libc::ECONNRESET)
        );
        assert_eq!(code(once.read().end_of_stream(false, || {})), None);
        // After end of stream was reported, nothing more is kept.
        once.keep_connection_failure(Error::os(libc::ECONNRESET));
        assert_eq!(code(once.read().end_of_stream(false, || {})), None);
    }

    #[test]
    fn end_of_stream_with_nothing_kept_waits_for_the_sends_under_way() {
        // A send took the reset and keeps it while the read waits for the sends: the
        // read reports it, not a clean end.
        let once = ReportedOnce::default();
        let read = once.read().end_of_stream(false, || {
            once.keep_connection_failure(Error::os(libc::ECONNRESET));
        });
        assert_eq!(code(read), Some(libc::ECONNRESET));
        // Something kept, or end of stream reported: no wait.
        once.keep_connection_failure(Error::os(libc::ECONNRESET));
        let waited = std::cell::Cell::new(false);
        assert_eq!(
            code(once.read().end_of_stream(false, || waited.set(true))),
            None
        );
        assert!(!waited.get());
    }

    #[test]
    fn only_connection_failures_are_kept() {
        let once = ReportedOnce::default();
        once.keep_connection_failure(Error::os(libc::EPIPE));
        once.keep_connect_failure(Error::os(libc::EISCONN));
        assert_eq!(code(once.read().end_of_stream(false, || {})), None);
    }

    #[test]
    fn a_read_that_took_the_handshakes_failure_keeps_it_for_the_connect() {
        let once = ReportedOnce::default();
        once.connect_issued();
        once.connect_accepted();
        let read = once.read();
        assert!(
            read.handshake.is_some(),
            "a read during a connect takes the lock"
        );
        read.failed(Error::os(libc::ENOTCONN), false);
        read.failed(Error::os(libc::ECONNREFUSED), false);
        drop(read);
        assert_eq!(
            once.connect_ended().and_then(|e| e.error_code()),
            Some(libc::ECONNREFUSED)
        );
        assert!(once.read().handshake.is_none(), "no lock once it ended");
    }

    #[test]
    fn a_connect_that_took_the_refusal_keeps_it_for_the_next_read() {
        let once = ReportedOnce::default();
        {
            let _handshake = once.handshake();
            once.connect_issued();
            once.connect_accepted();
            once.keep_connect_failure(Error::os(libc::ECONNREFUSED));
            assert!(once.connect_ended().is_none());
        }
        assert_eq!(
            code(once.read().end_of_stream(false, || {})),
            Some(libc::ECONNREFUSED)
        );
        // A new handshake forgets it.
        once.keep_connection_failure(Error::os(libc::ECONNRESET));
        once.connect_issued();
        once.connect_accepted();
        once.connect_ended();
        assert_eq!(code(once.read().end_of_stream(false, || {})), None);
    }
}
