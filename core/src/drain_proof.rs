//! How a TCP read proves that it left the kernel's receive queue empty, so that the
//! socket's next receive can wait for an edge instead of trying a `recv` that could
//! only say `EAGAIN` (see [`crate::queue`]).
//!
//! A short read proves it for free (see [`crate::transport`]). A read that fills its
//! buffer proves nothing by itself: a protocol that reads exactly the message it
//! expects (a 64-byte request into 64 bytes) would pay the `EAGAIN` on every message.
//! For those, the kernel can say how many bytes are left after each read (`TCP_INQ`,
//! Linux 4.18+, a control message of `recvmsg`). That costs about 140 ns more per read
//! than a plain `recv` on this machine, about what the `EAGAIN` it saves costs, so a
//! socket asks only where asking pays: after a full read, and only once a full read
//! was followed by an `EAGAIN` (the case the count would have saved) or the last count
//! said nothing was left. A stream whose reads keep filling their buffer with more
//! behind (fan-in, bulk) stops asking after one count that says so (in a quick run of
//! the bench's fan-in on smol, 600 of 800 reads asked before this rule, none after).
//! The option is turned on the first time a socket asks; a kernel that refuses it
//! leaves the socket with short reads as its only proof.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::error::Error;
use crate::ops::nonblocking;
use crate::sys;

/// [`DrainProof::inq`]: `TCP_INQ` not asked for yet.
const INQ_OFF: u8 = 0;
/// [`DrainProof::inq`]: `TCP_INQ` is on.
const INQ_ON: u8 = 1;
/// [`DrainProof::inq`]: the kernel refused `TCP_INQ`.
const INQ_REFUSED: u8 = 2;

/// What one TCP socket's reads know about proving the receive queue empty. Used only
/// by reads, which run one at a time (under the receive queue's lock), so relaxed
/// atomics suffice.
#[derive(Debug, Default)]
pub(crate) struct DrainProof {
    inq: AtomicU8,
    /// The last read filled its buffer.
    last_full: AtomicBool,
    /// Asking pays: a full read was followed by an `EAGAIN`, or the last count said
    /// nothing was left.
    asking_pays: AtomicBool,
}

impl DrainProof {
    /// Reads from the TCP socket `fd` into `area` with `flags`; returns the count and
    /// whether the read proved the receive queue empty.
    pub(crate) fn read(
        &self,
        fd: &socket2::Socket,
        area: &mut [MaybeUninit<u8>],
        flags: libc::c_int,
    ) -> Result<Option<(usize, bool)>, Error> {
        let capacity = area.len();
        let last_full = self.last_full.load(Ordering::Relaxed);
        let read = if last_full && self.asking_pays.load(Ordering::Relaxed) && self.ask_inq(fd) {
            nonblocking(|| sys::recv_with_inq(fd.as_raw_fd(), area, flags))?.map(|(n, left)| {
                let none_left = left == Some(0);
                self.asking_pays.store(none_left, Ordering::Relaxed);
                (n, n < capacity || none_left)
            })
        } else {
            nonblocking(|| fd.recv_with_flags(area, flags))?.map(|n| (n, n < capacity))
        };
        match read {
            Some((n, _)) => self.last_full.store(n == capacity, Ordering::Relaxed),
            // A full read, then nothing: the count would have saved this syscall.
            None if last_full => self.asking_pays.store(true, Ordering::Relaxed),
            None => {}
        }
        Ok(read)
    }

    /// Whether reads may ask for `TCP_INQ` (turning it on the first time).
    fn ask_inq(&self, fd: &socket2::Socket) -> bool {
        match self.inq.load(Ordering::Relaxed) {
            INQ_ON => true,
            INQ_OFF => {
                let on = sys::enable_tcp_inq(fd.as_raw_fd()).is_ok();
                let state = if on { INQ_ON } else { INQ_REFUSED };
                self.inq.store(state, Ordering::Relaxed);
                on
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn uninit(n: usize) -> Vec<MaybeUninit<u8>> {
        vec![MaybeUninit::uninit(); n]
    }

    /// A short read proves the queue empty; a full one does not, until the kernel's
    /// count says so (asked for only after a full read, once asking pays).
    #[test]
    fn full_reads_ask_the_kernel_and_short_reads_need_not() -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut peer = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (ours, _) = listener.accept()?;
        ours.set_nonblocking(true)?;
        let ours = socket2::Socket::from(ours);
        let proof = DrainProof::default();
        // Loopback delivers within the peer's write: the bytes are there at once.
        let read = |area: &mut [MaybeUninit<u8>]| {
            let got = proof.read(&ours, area, 0).map_err(std::io::Error::from)?;
            Ok::<_, std::io::Error>(got.expect("loopback delivers within the write"))
        };
        peer.write_all(&[1; 10])?;
        assert_eq!(read(&mut uninit(64))?, (10, true), "short: proved");
        peer.write_all(&[2; 16])?;
        assert_eq!(read(&mut uninit(8))?, (8, false), "full: not proved");
        assert_eq!(
            read(&mut uninit(8))?,
            (8, false),
            "full again, not asked yet"
        );
        assert_eq!(proof.inq.load(Ordering::Relaxed), INQ_OFF);
        let again = proof
            .read(&ours, &mut uninit(8), 0)
            .map_err(std::io::Error::from)?;
        assert_eq!(again, None, "the EAGAIN that asking would have saved");
        peer.write_all(&[3; 12])?;
        assert_eq!(read(&mut uninit(8))?, (8, false), "asked: 4 bytes left");
        assert_eq!(proof.inq.load(Ordering::Relaxed), INQ_ON);
        assert_eq!(
            read(&mut uninit(4))?,
            (4, false),
            "not asked: it did not pay"
        );
        peer.write_all(&[4; 8])?;
        assert!(proof.read(&ours, &mut uninit(8), 0).is_ok());
        assert_eq!(proof.read(&ours, &mut uninit(8), 0).ok(), Some(None));
        peer.write_all(&[5; 8])?;
        assert_eq!(read(&mut uninit(8))?, (8, true), "asked again: none left");
        Ok(())
    }
}
