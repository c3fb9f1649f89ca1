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
//!
//! A short read can be wrong in one case, and the runtime decides what to do about it
//! ([`ReadDrain`]). A receive queue that outlasts a full read may have filled the
//! window the socket advertised; a read that drains it reopens the window. Linux sends
//! that window update as the read ends, and on loopback the peer's queued bytes arrive
//! within the same call, after the copy stopped: the read returns short, with bytes
//! behind it. The count, taken after the read let go of the socket, includes them.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::error::Error;
use crate::ops::nonblocking;
use crate::sys;

/// Under [`ReadDrain::KernelCount`], a buffer at least this large asks for the count
/// after every full read, whether or not asking paid before: its copy dwarfs the
/// count's 140 ns.
const COUNT_ALWAYS_PAYS: usize = 4096;

/// Which reads prove a TCP socket's receive queue empty, so that its next receive
/// waits for an edge instead of trying its syscall: a runtime's choice
/// ([`Runtime::READ_DRAIN`](crate::future::Runtime::READ_DRAIN)), set on the sockets
/// of its [`TcpStream`](crate::net::TcpStream)s. Either way nothing is lost: data that
/// arrives after a read raises an edge. The rules differ in when a receive waits for
/// that edge rather than read at once, and so in how the peer's bytes batch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadDrain {
    /// Any short read proves it, as tokio's own reads assume. A burst of full reads
    /// that ends short may have bytes behind it (those the read pulled in by reopening
    /// the window, see the module docs), and the receive waits for their edge; on a
    /// multi-thread runtime the bytes batch up meanwhile, and the next read takes more
    /// of them (the bench's fan-in on tokio's multi-thread runtime is 11% faster with
    /// this rule than with `KernelCount`).
    #[default]
    ShortRead,
    /// A short read proves it, unless it ends a burst of full reads: then only the
    /// kernel's count does (`TCP_INQ`, asked for with that read when the buffer holds
    /// at least 4 KiB), or, without it, the next read's `EAGAIN`. So a receive never
    /// waits with bytes behind it, as with async-io, whose reads go on until `EAGAIN`.
    /// The bench's fan-in on smol (one executor thread, 1,000 senders) makes 2.4 times
    /// fewer zero-window advertisements with this rule, the same count as async-io.
    KernelCount,
}

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
    /// The socket's rule is [`ReadDrain::KernelCount`].
    counts_burst_ends: AtomicBool,
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
        // Under `KernelCount`, a read that may end a burst is not proof by being short.
        let burst_end_unproved = last_full && self.counts_burst_ends.load(Ordering::Relaxed);
        let short_proves = |n: usize| n < capacity && !burst_end_unproved;
        // Only a read after a full one asks, so the common short-read hop loads nothing
        // more than `last_full`.
        let asks = last_full
            && (self.asking_pays.load(Ordering::Relaxed)
                || (burst_end_unproved && capacity >= COUNT_ALWAYS_PAYS));
        let read = if asks && self.ask_inq(fd) {
            nonblocking(|| sys::recv_with_inq(fd.as_raw_fd(), area, flags))?.map(|(n, left)| {
                let none_left = left == Some(0);
                self.asking_pays.store(none_left, Ordering::Relaxed);
                // The count is taken after the read let go of the socket, so it covers
                // what the read itself pulled in.
                (n, none_left || short_proves(n))
            })
        } else {
            nonblocking(|| fd.recv_with_flags(area, flags))?.map(|n| (n, short_proves(n)))
        };
        match read {
            Some((n, _)) => self.last_full.store(n == capacity, Ordering::Relaxed),
            // A full read, then nothing: the count would have saved this syscall.
            None if last_full => self.asking_pays.store(true, Ordering::Relaxed),
            None => {}
        }
        Ok(read)
    }

    /// Sets the socket's rule (see [`ReadDrain`]).
    pub(crate) fn set_rule(&self, rule: ReadDrain) {
        let counts = rule == ReadDrain::KernelCount;
        self.counts_burst_ends.store(counts, Ordering::Relaxed);
    }

    /// The socket's rule.
    #[cfg(test)]
    pub(crate) fn rule(&self) -> ReadDrain {
        if self.counts_burst_ends.load(Ordering::Relaxed) {
            ReadDrain::KernelCount
        } else {
            ReadDrain::ShortRead
        }
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
        let (mut peer, ours) = pair()?;
        let proof = DrainProof::default();
        let read = |area: &mut [MaybeUninit<u8>]| read_into(&proof, &ours, area.len());
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

    /// A connected pair: the peer (blocking) and our end (non-blocking).
    fn pair() -> std::io::Result<(std::net::TcpStream, socket2::Socket)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let peer = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (ours, _) = listener.accept()?;
        ours.set_nonblocking(true)?;
        Ok((peer, socket2::Socket::from(ours)))
    }

    /// Reads into `len` bytes; loopback delivers within the peer's write, so a read
    /// always finds what was written.
    fn read_into(
        proof: &DrainProof,
        ours: &socket2::Socket,
        len: usize,
    ) -> std::io::Result<(usize, bool)> {
        let got = proof
            .read(ours, &mut uninit(len), 0)
            .map_err(std::io::Error::from)?;
        Ok(got.expect("loopback delivers within the write"))
    }

    /// Reads `len` bytes, asserting that the read is full (and proves nothing), then
    /// reads again into `len` bytes: the read that may end a burst.
    fn read_after_a_full_one(
        proof: &DrainProof,
        ours: &socket2::Socket,
        len: usize,
    ) -> std::io::Result<(usize, bool)> {
        assert_eq!(read_into(proof, ours, len)?, (len, false), "full");
        read_into(proof, ours, len)
    }

    /// Sends 4,196 bytes, an urgent byte, then 50 more: a 4 KiB read is full, the next
    /// stops short at the urgent mark with bytes behind it.
    fn burst_with_urgent_mark(peer: &mut std::net::TcpStream) -> std::io::Result<()> {
        peer.write_all(&[2; 4096 + 100])?;
        socket2::SockRef::from(&*peer).send_out_of_band(b"!")?;
        peer.write_all(&[3; 50])
    }

    /// Under `KernelCount`, a short read that ends a burst of full reads proves the
    /// queue empty only if the kernel's count says so. Bytes behind a short read are
    /// made here by urgent data: a read stops short at the urgent mark (the case in the
    /// wild is the window update a draining read sends, whose bytes loopback delivers
    /// after the copy stopped, which no test can time).
    #[test]
    fn under_kernel_count_a_short_read_after_a_full_one_proves_only_by_the_count(
    ) -> std::io::Result<()> {
        let (mut peer, ours) = pair()?;
        let proof = DrainProof::default();
        proof.set_rule(ReadDrain::KernelCount);

        peer.write_all(&[1; 4096 + 100])?;
        assert_eq!(
            read_after_a_full_one(&proof, &ours, 4096)?,
            (100, true),
            "short after full: asked, and the count says none left"
        );
        assert_eq!(proof.inq.load(Ordering::Relaxed), INQ_ON);

        burst_with_urgent_mark(&mut peer)?;
        assert_eq!(
            read_after_a_full_one(&proof, &ours, 4096)?,
            (100, false),
            "short at the urgent mark, bytes behind: not proved"
        );
        assert_eq!(
            read_into(&proof, &ours, 4096)?,
            (50, true),
            "short, not after full"
        );

        // A small buffer does not ask unless asking paid: then the next read's EAGAIN
        // is the proof, and a short read after a full one proves nothing.
        peer.write_all(&[4; 64 + 10])?;
        assert_eq!(
            read_after_a_full_one(&proof, &ours, 64)?,
            (10, false),
            "short after full"
        );
        Ok(())
    }

    /// Under `ShortRead` (the default), the same short read at the urgent mark counts
    /// as proof: the rule tokio's own reads follow (the socket's reads prove nothing
    /// after urgent data anyway, see `SocketCore`, but this proof does not know that).
    #[test]
    fn under_short_read_a_short_read_after_a_full_one_proves_it() -> std::io::Result<()> {
        let (mut peer, ours) = pair()?;
        let proof = DrainProof::default();
        burst_with_urgent_mark(&mut peer)?;
        assert_eq!(
            read_after_a_full_one(&proof, &ours, 4096)?,
            (100, true),
            "short: proved"
        );
        assert_eq!(proof.inq.load(Ordering::Relaxed), INQ_OFF, "never asked");
        Ok(())
    }
}
