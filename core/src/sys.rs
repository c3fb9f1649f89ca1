//! The few raw system calls that neither `polling` nor `socket2` offer: draining the
//! poller's epoll set without `Poller::wait`'s per-call bookkeeping, the eventfd that
//! wakes an engine thread, the flags every send carries, and the stream send of the
//! fast path as a direct system call.
//!
//! Why bypass `Poller::wait` on Linux: it costs five syscalls per call
//! (`timerfd_settime`, two `epoll_ctl` re-arms, `epoll_pwait`, an eventfd `read`)
//! whether the timeout is zero or infinite, and only one thread may be inside it. A
//! plain `epoll_wait` on the same epoll descriptor is one syscall and may run on
//! several threads at once (the kernel hands each ready event to one of them). What
//! this relies on, pinned by the tests below: `polling::Poller` on Linux is an epoll
//! instance whose `as_raw_fd()` is the epoll descriptor, its keys travel as
//! `epoll_event.u64`, and its own notifier and timer use the key `usize::MAX`, which
//! this crate never registers, never arms (no `Poller::wait`/`notify` calls) and skips
//! when it reads events.

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!(
    "asyncresult-core drains its poller with epoll directly and supports Linux and Android \
     only for now"
);

use crate::error::Error;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Flags added to every send: never raise SIGPIPE on a closed peer.
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// The key `polling` reserves for its own notifier and timer.
pub(crate) const POLLING_RESERVED_KEY: usize = usize::MAX;

/// Readiness flags that mean "try the receive side".
const READ_FLAGS: u32 = (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLHUP | libc::EPOLLERR) as u32
    | libc::EPOLLRDHUP as u32;
/// Readiness flags that mean "try the send side".
const WRITE_FLAGS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// Readiness flags after which a short read proves nothing (see `crate::transport`):
/// the peer's FIN or any other end of the receive side (`EPOLLRDHUP`) and errors
/// (reads never block again), or urgent data (`EPOLLPRI`: a read stops short at the
/// urgent mark). Not `EPOLLHUP` alone: a TCP socket not connected yet reports it.
const EXCEPTIONAL_FLAGS: u32 = (libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;
/// What a TCP socket is registered for: polling's edge-triggered interest in both
/// directions, plus `EPOLLRDHUP` (see [`add_tcp`]).
const TCP_INTEREST: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLHUP
    | libc::EPOLLERR
    | libc::EPOLLRDHUP
    | libc::EPOLLET) as u32;

/// One readiness report taken off the epoll set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    /// The key the source was registered with (polling's keys are `usize`, carried in
    /// the 64-bit `epoll_event.u64`).
    pub(crate) key: usize,
    /// The receive side may make progress (data, EOF, error or hang-up).
    pub(crate) readable: bool,
    /// The send side may make progress (room, error or hang-up).
    pub(crate) writable: bool,
    /// The end of the receive side (the peer's FIN, a reset), an error or urgent data.
    pub(crate) exceptional: bool,
}

/// A reusable buffer of raw epoll events.
pub(crate) struct EventBuffer {
    events: Vec<libc::epoll_event>,
}

impl std::fmt::Debug for EventBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBuffer")
            .field("capacity", &self.events.capacity())
            .finish()
    }
}

impl EventBuffer {
    /// A buffer for up to `capacity` events per wait.
    pub(crate) fn new(capacity: usize) -> EventBuffer {
        EventBuffer {
            events: Vec::with_capacity(capacity.max(1)),
        }
    }

    /// Waits up to `timeout_ms` (-1: forever, 0: just look) for ready events on the
    /// epoll set `epfd` and returns how many arrived. `EINTR` counts as zero events.
    pub(crate) fn wait(&mut self, epfd: RawFd, timeout_ms: i32) -> io::Result<usize> {
        self.events.clear();
        let cap = i32::try_from(self.events.capacity()).unwrap_or(i32::MAX);
        // SAFETY: the pointer and capacity describe the Vec's allocation; the kernel
        // writes at most `cap` initialized `epoll_event`s there and returns how many.
        let n = unsafe { libc::epoll_wait(epfd, self.events.as_mut_ptr(), cap, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        // SAFETY: the kernel initialized the first `n` entries, `n <= capacity`.
        unsafe { self.events.set_len(n) };
        Ok(n)
    }

    /// The events of the last wait.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Readiness> + '_ {
        self.events.iter().map(|ev| {
            let flags = ev.events;
            Readiness {
                key: ev.u64 as usize,
                readable: flags & READ_FLAGS != 0,
                writable: flags & WRITE_FLAGS != 0,
                exceptional: flags & EXCEPTIONAL_FLAGS != 0,
            }
        })
    }
}

/// Registers the TCP socket `fd` in the epoll set `epfd` with `key`: what polling's
/// `add_with_mode(fd, Event::all(key), PollMode::Edge)` registers, plus `EPOLLRDHUP`,
/// in one `epoll_ctl`. polling's read interest lacks `EPOLLRDHUP`, so a peer's FIN
/// would be reported as plain `EPOLLIN`, like data; the engine needs to tell them
/// apart (a short read may have passed the FIN, see `crate::transport`). The
/// registration is polling's in all but the flags: `Poller::delete` removes it.
///
/// # Safety
///
/// As for polling's `add`: `fd` must be deleted from the set before it is closed.
pub(crate) unsafe fn add_tcp(epfd: RawFd, fd: RawFd, key: usize) -> io::Result<()> {
    // SAFETY: the caller's contract.
    unsafe { ctl_tcp(epfd, libc::EPOLL_CTL_ADD, fd, key) }
}

/// Registers the TCP socket `fd`, already in the epoll set `epfd` under `key`, again
/// with the same interest ([`add_tcp`]'s): the kernel queues its events afresh for
/// whatever of them holds now (as for a new registration), so that events taken off
/// the set and not served come back.
///
/// # Safety
///
/// As for [`add_tcp`].
pub(crate) unsafe fn rearm_tcp(epfd: RawFd, fd: RawFd, key: usize) -> io::Result<()> {
    // SAFETY: the caller's contract.
    unsafe { ctl_tcp(epfd, libc::EPOLL_CTL_MOD, fd, key) }
}

/// `epoll_ctl` with [`TCP_INTEREST`].
///
/// # Safety
///
/// As for [`add_tcp`].
unsafe fn ctl_tcp(epfd: RawFd, op: libc::c_int, fd: RawFd, key: usize) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: TCP_INTEREST,
        u64: key as u64,
    };
    // SAFETY: `event` is a valid epoll_event for the duration of the call; the kernel
    // only reads it. A bad descriptor is reported as an error, not undefined behaviour.
    let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the epoll set `epfd` has ready events, without taking them.
pub(crate) fn has_ready_events(epfd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: epfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// CPU time the calling thread has used so far (user and system), or `None` if the
/// clock is unavailable. A system call, not a vDSO read: for occasional use.
pub(crate) fn thread_cpu_time() -> Option<std::time::Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(std::time::Duration::new(secs, nanos))
}

/// An eventfd used to wake a thread blocked in `epoll_wait` on the engine's set.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd.
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Makes the eventfd readable (wakes one waiter of an edge-triggered registration).
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own descriptor. A full counter
        // (EAGAIN) already means "readable", so the result needs no handling.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Resets the counter so the next `notify` is a fresh edge; whether it had been
    /// notified since the last drain (EAGAIN: it had not).
    pub(crate) fn drain(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking descriptor;
        // EAGAIN (already drained) is fine.
        let read = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        read == 8 && value > 0
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether a connected stream socket holds received bytes nobody has read (`FIONREAD`);
/// `false` for sockets where the question does not apply (listeners, unconnected).
pub(crate) fn has_unread_bytes(socket: &socket2::Socket) -> bool {
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid.
    let r = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut unread) };
    r == 0 && unread > 0
}

/// Whether the socket asks for an abortive close (`SO_LINGER` on with a zero timeout).
pub(crate) fn lingers_zero(socket: &socket2::Socket) -> bool {
    matches!(socket.linger(), Ok(Some(d)) if d.is_zero())
}

/// Aborts a TCP connection with a reset while keeping the descriptor open: `SO_LINGER`
/// of zero, then `connect(AF_UNSPEC)`, which Linux turns into `tcp_disconnect` (an RST
/// for a connection that has one). Returns whether the kernel took the disconnect: other
/// streams (a Unix one) refuse it (`EINVAL`), and have no reset to send.
pub(crate) fn abort_connection(socket: &socket2::Socket) -> bool {
    let _ = socket.set_linger(Some(std::time::Duration::ZERO));
    let addr = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid sockaddr of the given size on our own descriptor.
    let r = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    r == 0
}

/// `send(2)` on `fd`, as a direct system call (rustix, already in the tree through
/// `polling`), not through libc's wrapper, which brackets every call with the
/// bookkeeping of a thread-cancellation point that no Rust thread uses: about 40
/// instructions less per send, 2–3% more synchronous sends per second.
///
/// Non-blocking like [`nonblocking`](crate::ops::nonblocking): `Ok(Some(n))` sent,
/// `Ok(None)` would block, retried on `EINTR`; it matches rustix's error code itself
/// rather than build an `io::Error` for every call.
pub(crate) fn send(
    fd: &socket2::Socket,
    buf: &[u8],
    flags: libc::c_int,
) -> Result<Option<usize>, Error> {
    let flags = rustix::net::SendFlags::from_bits_retain(flags as u32);
    loop {
        match rustix::net::send(fd, buf, flags) {
            Ok(n) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(Error::Socket(io::Error::from(e))),
        }
    }
}

/// Asks the kernel to report, with each `recvmsg` that passes a control buffer, how
/// many bytes the TCP socket `fd` still holds after the read (`TCP_INQ`, Linux 4.18).
pub(crate) fn enable_tcp_inq(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the duration of the call; the kernel reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_INQ,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `recvmsg` of the TCP socket `fd` (with `TCP_INQ` enabled): the count read and
/// how many bytes the kernel still holds (`None` if it did not say). Errors come back
/// as they are, for [`nonblocking`](crate::ops::nonblocking) to sort.
pub(crate) fn recv_with_inq(
    fd: RawFd,
    area: &mut [std::mem::MaybeUninit<u8>],
    flags: libc::c_int,
) -> io::Result<(usize, Option<u32>)> {
    // Room for one `cmsghdr` and its `int`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: area.as_mut_ptr().cast(),
        iov_len: area.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at one iovec over `area` (the kernel writes at most
    // `area.len()` bytes there, initializing them) and at `control`, both alive and
    // exclusively borrowed for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let mut left = None;
    // SAFETY: `msg` was filled by a successful recvmsg; the CMSG macros walk its
    // control buffer within `msg_controllen`, and the `TCP_CM_INQ` message carries one
    // `int` (read unaligned: the buffer gives no stronger promise).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_TCP && (*cmsg).cmsg_type == libc::TCP_CM_INQ {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                left = u32::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polling::{Event, PollMode, Poller};
    use std::os::fd::AsFd;

    /// Registers `fd` with `key` as the engine registers a socket through polling
    /// (edge-triggered, both directions).
    ///
    /// # Safety
    ///
    /// `fd` must be deleted from `poller` before it is closed.
    unsafe fn add_edge(poller: &Poller, fd: impl AsFd, key: usize) {
        // SAFETY: the caller deletes `fd` before closing it.
        unsafe { poller.add_with_mode(fd.as_fd().as_raw_fd(), Event::all(key), PollMode::Edge) }
            .expect("add");
    }

    /// Pins what the raw drain relies on: polling's epoll descriptor reports our keys in
    /// `epoll_event.u64`, with edge-triggered read and write interest.
    #[test]
    fn polling_registrations_are_visible_to_raw_epoll_wait() {
        let poller = Poller::new().expect("poller");
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let key = 0x1234_5678_9abc;
        // SAFETY: `a` is deleted from the poller before it is dropped, below.
        unsafe { add_edge(&poller, &a, key) };
        let mut buf = EventBuffer::new(8);
        // Writable at once.
        assert_eq!(buf.wait(poller.as_raw_fd(), 1000).expect("wait"), 1);
        let ev = buf.iter().next().expect("event");
        assert_eq!(ev.key, key);
        assert!(ev.writable && !ev.readable);
        // Edge-triggered: nothing new until something changes.
        assert_eq!(buf.wait(poller.as_raw_fd(), 0).expect("wait"), 0);
        assert!(!has_ready_events(poller.as_raw_fd()));
        use std::io::Write;
        (&b).write_all(b"x").expect("write");
        assert!(has_ready_events(poller.as_raw_fd()));
        assert_eq!(buf.wait(poller.as_raw_fd(), 1000).expect("wait"), 1);
        assert!(buf.iter().all(|ev| ev.readable && ev.key == key));
        poller.delete(&a).expect("delete");
    }

    /// Pins the FIN report: with polling's own interest a peer's FIN is plain
    /// `EPOLLIN`; registered by `add_tcp` it is reported as exceptional, and data is
    /// not.
    #[test]
    fn a_peers_fin_is_reported_exceptional_once_watched() {
        use std::io::Write;
        let poller = Poller::new().expect("poller");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let wait_one = |buf: &mut EventBuffer| {
            assert_eq!(buf.wait(poller.as_raw_fd(), 1000).expect("wait"), 1);
            buf.iter().next().expect("event")
        };
        let mut buf = EventBuffer::new(8);
        for watched in [false, true] {
            let mut peer = std::net::TcpStream::connect(addr).expect("connect");
            let (ours, _) = listener.accept().expect("accept");
            ours.set_nonblocking(true).expect("nonblocking");
            let key = 7;
            // SAFETY: `ours` is deleted from the poller before it is dropped, below.
            unsafe {
                if watched {
                    add_tcp(poller.as_raw_fd(), ours.as_raw_fd(), key).expect("add");
                } else {
                    add_edge(&poller, &ours, key);
                }
            }
            let first = wait_one(&mut buf);
            assert!(first.writable && !first.exceptional);
            peer.write_all(b"x").expect("write");
            let data = wait_one(&mut buf);
            assert!(data.readable && !data.exceptional);
            peer.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let fin = wait_one(&mut buf);
            assert!(fin.readable);
            assert_eq!(fin.exceptional, watched, "watched: {watched}");
            poller.delete(&ours).expect("delete");
        }
    }

    #[test]
    fn eventfd_wakes_an_edge_triggered_wait_each_time() {
        let poller = Poller::new().expect("poller");
        let efd = EventFd::new().expect("eventfd");
        // SAFETY: the poller is dropped before `efd` (declaration order reversed below).
        unsafe {
            poller
                .add_with_mode(efd.as_raw_fd(), Event::readable(7), PollMode::Edge)
                .expect("add");
        }
        let mut buf = EventBuffer::new(8);
        for _ in 0..3 {
            efd.notify();
            assert_eq!(buf.wait(poller.as_raw_fd(), 1000).expect("wait"), 1);
            efd.drain();
        }
        assert_eq!(buf.wait(poller.as_raw_fd(), 0).expect("wait"), 0);
        poller.delete(&efd.fd).expect("delete");
    }
}
