//! `Socket`, the user's handle, and `SocketCore`, the state that the engine and the
//! operations share.
//!
//! Two reference counts keep the promises of disposal apart:
//!
//! - `Socket` is an `Arc` of a handle; when the last handle goes (every clone, and every
//!   copy kept in an `AsyncState`), the socket is disposed exactly as by
//!   [`Socket::close`].
//! - `SocketCore` is shared by the handles, the engine's registry (until close) and
//!   operations being served; the file descriptor is released only when the last of
//!   them goes, so no operation and no `as_socket2()` borrow ever sees a closed or
//!   reused descriptor number.

use std::fmt;
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, SockRef, Type};

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::drain_proof::{DrainProof, ReadDrain};
use crate::engine::EngineShared;
use crate::error::Error;
use crate::op::{OpContext, OpKind, Task, TaskSink, Work};
use crate::ops::nonblocking;
use crate::queue::{Completed, OpQueue, Started};
use crate::reported_once::ReportedOnce;
use crate::sys;
use crate::transport::Transport;
use crate::user_drop;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The shared state of one socket.
pub(crate) struct SocketCore {
    id: u64,
    key: usize,
    fd: socket2::Socket,
    engine: Arc<EngineShared>,
    transport: Transport,
    send: OpQueue<SocketCore>,
    recv: OpQueue<SocketCore>,
    closed: AtomicBool,
    /// What this socket's reads know about proving the receive queue empty (TCP).
    drain_proof: DrainProof,
    /// The poller reported the peer's FIN (or another end of the receive side), an
    /// error or urgent data: from then on no read proves the receive queue empty (a
    /// short one may have passed the FIN, after which no edge comes, or stopped at the
    /// urgent mark).
    reads_prove_nothing: AtomicBool,
    /// A datagram socket's read side was shut down ([`Socket::shutdown`]): once its
    /// queue is empty a receive finds end of input (0), as a blocking one would, rather
    /// than wait for a datagram that can no longer come (a non-blocking one gets
    /// `EAGAIN` from the kernel, and no edge follows).
    datagram_read_shut: AtomicBool,
    /// What this stream's syscalls took of the failures the kernel reports once (a
    /// reset, a refused handshake), kept for the syscall that reports it.
    failures: ReportedOnce,
}

impl SocketCore {
    pub(crate) fn new(
        key: usize,
        fd: socket2::Socket,
        engine: Arc<EngineShared>,
        transport: Transport,
    ) -> SocketCore {
        SocketCore {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            key,
            fd,
            engine,
            transport,
            send: OpQueue::default(),
            recv: OpQueue::default(),
            closed: AtomicBool::new(false),
            drain_proof: DrainProof::default(),
            reads_prove_nothing: AtomicBool::new(false),
            datagram_read_shut: AtomicBool::new(false),
            failures: ReportedOnce::default(),
        }
    }

    /// What this stream's syscalls took of the failures the kernel reports once.
    pub(crate) fn failures(&self) -> &ReportedOnce {
        &self.failures
    }

    /// A process-unique id (results remember it to detect foreign ends).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The poller key.
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    pub(crate) fn fd(&self) -> &socket2::Socket {
        &self.fd
    }

    pub(crate) fn engine_arc(&self) -> &Arc<EngineShared> {
        &self.engine
    }

    /// Whether this is a byte-stream socket (sends must go out whole).
    pub(crate) fn is_stream(&self) -> bool {
        self.transport.is_stream()
    }

    /// The socket's kind (accepted sockets take their listener's).
    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    /// Refuses an operation that reports a peer's address on a socket whose addresses
    /// a `SocketAddr` cannot hold (a Unix socket, ...), before it takes anything from
    /// the kernel: `EAFNOSUPPORT`.
    pub(crate) fn check_ip_addresses(&self) -> Result<(), Error> {
        if self.transport.has_ip_addresses() {
            Ok(())
        } else {
            Err(Error::os(libc::EAFNOSUPPORT))
        }
    }

    /// A read into `area` that takes no sender address (a stream's receive, or any
    /// socket's `read`), with the receive queue held for the attempt. On TCP,
    /// a read that proves the kernel's receive queue empty (see [`DrainProof`]) notes
    /// it, so that the next receive waits for an edge rather than try a syscall that
    /// could only say `EAGAIN` (see [`OpQueue::note_drained`]).
    ///
    /// End of stream after a connection failure that a send, a peek or the connect took
    /// is reported as that failure, once (see [`ReportedOnce`]).
    pub(crate) fn read_stream(
        &self,
        area: &mut [MaybeUninit<u8>],
        flags: libc::c_int,
    ) -> Result<Option<usize>, Error> {
        let peek = flags & libc::MSG_PEEK != 0;
        let window = self.failures.read();
        let kept = |e: Error| window.failed(e, peek);
        if self.transport != Transport::Tcp {
            let read = nonblocking(|| self.fd.recv_with_flags(area, flags)).map_err(kept)?;
            return Ok(read.or_else(|| self.datagram_end()));
        }
        let Some((n, proved_empty)) = self.drain_proof.read(&self.fd, area, flags).map_err(kept)?
        else {
            return Ok(None);
        };
        if n == 0 && !area.is_empty() {
            window.end_of_stream(peek, || self.wait_for_sends())?;
        }
        if proved_empty
            && n > 0
            && flags & (libc::MSG_PEEK | libc::MSG_OOB) == 0
            && !self.reads_prove_nothing.load(Ordering::Acquire)
        {
            self.recv.note_drained();
        }
        Ok(Some(n))
    }

    /// Sets which reads prove the receive queue empty (TCP only; see [`ReadDrain`]).
    pub(crate) fn set_read_drain(&self, rule: ReadDrain) {
        self.drain_proof.set_rule(rule);
    }

    /// Which reads prove the receive queue empty.
    #[cfg(test)]
    pub(crate) fn read_drain(&self) -> ReadDrain {
        self.drain_proof.rule()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until no send of this socket is attempting its syscall (see
    /// [`OpQueue::wait_for_attempts`]); for a read at end of stream, which holds the
    /// receive queue's lock (see [`ReadWindow::end_of_stream`]).
    ///
    /// [`ReadWindow::end_of_stream`]: crate::reported_once::ReadWindow::end_of_stream
    pub(crate) fn wait_for_sends(&self) {
        self.send.wait_for_attempts();
    }

    /// What a receive on a datagram socket that found nothing (`EAGAIN`) reports: `0`
    /// once its read side was shut down (as a blocking `recv` returns 0 then: no
    /// datagram can come, and the kernel's `EAGAIN` would leave it waiting for good),
    /// else nothing yet. Queued datagrams are still received first: only an empty
    /// queue says `EAGAIN`.
    pub(crate) fn datagram_end(&self) -> Option<usize> {
        self.datagram_read_shut.load(Ordering::Acquire).then_some(0)
    }

    /// The queue of the direction that operations of `kind` wait on.
    pub(crate) fn queue(&self, kind: OpKind) -> &OpQueue<SocketCore> {
        if kind.is_send_side() {
            &self.send
        } else {
            &self.recv
        }
    }

    /// Starts an operation of `kind` on its direction's queue.
    pub(crate) fn start<W: Work<SocketCore>>(
        self: &Arc<Self>,
        kind: OpKind,
        work: W,
        callback: Option<AsyncCallback<W::Output>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<W::Output>, Error> {
        self.queue(kind).start(self, kind, work, callback, state)
    }

    /// [`start`](SocketCore::start) without a result handle when the fast path
    /// finishes it (for futures).
    pub(crate) fn start_inline<W: Work<SocketCore>>(
        self: &Arc<Self>,
        kind: OpKind,
        work: W,
    ) -> Result<Started<W::Output>, Error> {
        self.queue(kind).start_inline(self, kind, work)
    }

    /// Serves the directions that the poller reported ready.
    pub(crate) fn on_ready(&self, ready: sys::Readiness, completed: &mut Completed<SocketCore>) {
        if ready.exceptional {
            // Before the edge: a hold that starts after it sees the flag (see
            // `read_stream`), and one already running finds the edge missed.
            self.reads_prove_nothing.store(true, Ordering::Release);
        }
        if ready.readable {
            self.recv.edge(self, completed);
        }
        if ready.writable {
            self.send.edge(self, completed);
        }
    }

    /// Cancels the pending operation at `addr` (see `AsyncResult::cancel`).
    fn cancel_op(&self, kind: OpKind, addr: *const ()) -> bool {
        let queue = self.queue(kind);
        let mut completed: Completed<SocketCore> = Completed::new();
        // An operation cancelled after it acted on the socket (`Work::has_progress`)
        // leaves it torn. A stream send with part of its bytes on the wire: shut the send
        // side, so no later send splices in. A connect the kernel is running: shut both
        // sides, which during the handshake dissolves it (Linux disconnects a socket in
        // `SYN_SENT` on `shutdown`), so the peer never gets the connection and later
        // operations fail at once (ECONNRESET, then EPIPE) instead of waiting for the
        // handshake; if it had just connected, the peer reads end of stream.
        let how = match kind {
            OpKind::Connect => Shutdown::Both,
            _ => Shutdown::Write,
        };
        // The queue is served before the lock goes, so the next operations see the new
        // state now (after a torn send they fail with EPIPE), not at the next edge.
        let cancelled = queue.cancel(self, addr, &mut completed, || {
            let _ = self.fd.shutdown(how);
        });
        completed.notify(&*self.engine);
        cancelled
    }

    /// Disposes the socket (idempotent): stops both queues, completing every pending
    /// operation with `Disposed`; leaves the poller; shuts a connected stream down (an
    /// RST instead of a FIN when sends were aborted or received data was left unread,
    /// as `close(2)` and .NET do). The descriptor stays open until the last reference to
    /// this core goes.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.dispose();
    }

    /// [`close`](SocketCore::close) from user code that the engine may run under one of
    /// this socket's queue locks (an operation's buffer being dropped, see `user_drop`),
    /// which closing takes: the socket is closed at once (every later `begin_*` fails
    /// with `Disposed`), and the rest (stopping the queues, completing what waits in
    /// them with `Disposed`, leaving the poller, the shutdown) is left to a worker.
    pub(crate) fn close_deferred(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if crate::engine::forked() {
            // No worker runs in a forked child, and its dispose takes no queue lock.
            self.dispose();
            return;
        }
        self.engine.post(Arc::new(DisposeLater(Arc::clone(self))));
    }

    /// The work of a close, once `closed` is set.
    fn dispose(&self) {
        if crate::engine::forked() {
            // In a child forked after the engine started, the socket is the parent's
            // too (one open socket, two descriptors): disposing the child's copy lets go
            // of its descriptor only (once the last reference to this core goes), as
            // dropping a std socket would, and leaves the parent's connection up. The
            // queues are left as they are: their locks may have been held at the fork
            // by the parent's threads, which do not exist here (held for good, then),
            // and nothing in the child would run what completing their operations
            // hands on. They go with this core.
            self.engine.deregister(self);
            return;
        }
        let mut completed: Completed<SocketCore> = Completed::new();
        let sends = self.send.stop(self, &mut completed);
        self.recv.stop(self, &mut completed);
        self.engine.deregister(self);
        if self.transport.is_connection() {
            // Reset (as close(2) and .NET do) when sends were aborted, when received
            // bytes were never read (a FIN would leave the peer's sends stuck behind a
            // full window until the last handle goes), or when SO_LINGER asks for it.
            let aborts =
                sends.aborted > 0 || sys::has_unread_bytes(&self.fd) || sys::lingers_zero(&self.fd);
            // A connection without a reset (a Unix one, which refuses the disconnect) is
            // shut down instead: its peer must see the end now, not when the last handle
            // goes (a `SOCK_SEQPACKET` peer reads 0).
            if !aborts || !sys::abort_connection(&self.fd) {
                // Sends a FIN on a connection and stops a listener from accepting.
                let _ = self.fd.shutdown(Shutdown::Both);
            }
        }
        completed.notify(&*self.engine);
    }
}

impl OpContext for SocketCore {
    fn id(&self) -> u64 {
        self.id
    }

    fn sink(&self) -> &dyn TaskSink {
        &*self.engine
    }

    fn is_closed(&self) -> bool {
        SocketCore::is_closed(self)
    }

    fn cancel(&self, kind: OpKind, addr: *const ()) -> bool {
        self.cancel_op(kind, addr)
    }

    fn stops_serving(&self) -> bool {
        SocketCore::is_closed(self)
    }

    fn unusable_here(&self) -> Option<Error> {
        crate::engine::forked().then(crate::engine::forked_error)
    }

    #[inline]
    fn wait_began(&self) -> Option<fn()> {
        self.engine.wait_gate().began()
    }

    #[inline]
    fn wait_ended(&self) {
        self.engine.wait_gate().ended();
    }
}

impl fmt::Debug for SocketCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("fd", &self.fd.as_raw_fd())
            .field("kind", &self.transport)
            .field("closed", &self.is_closed())
            .field("send", &self.send)
            .field("receive", &self.recv)
            .finish()
    }
}

/// One user handle; the last one to go disposes the socket.
struct Handle {
    core: Arc<SocketCore>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if user_drop::closes_deferred() {
            // Dropped with an operation's buffer (see `user_drop`): the rest of the
            // close goes to a worker.
            self.core.close_deferred();
        } else {
            self.core.close();
        }
    }
}

/// The rest of a close left to a worker (see [`SocketCore::close_deferred`]).
struct DisposeLater(Arc<SocketCore>);

impl Task for DisposeLater {
    fn run(self: Arc<Self>) {
        self.0.dispose();
    }
}

/// A socket driven by the asyncresult engine (.NET's `System.Net.Sockets.Socket`).
///
/// `Socket` is a cheap handle, like a .NET reference: clones are the same socket, and
/// it is `Send + Sync`. Dropping the last handle disposes the socket exactly as
/// [`close`](Socket::close) does; a `Socket` kept in an operation's
/// [`AsyncState`] is a handle too, so the seed's pattern keeps the
/// socket alive until that operation's result is dropped.
///
/// While that operation is pending, the operation itself holds its state and its
/// callback: it needs them to complete, even when every `AsyncResult` of it is
/// dropped. So a socket held there (in the state, or captured by the callback) stays
/// open until the operation completes — on a quiet peer, possibly never. As in .NET,
/// where a pending operation roots its socket, [`close`](Socket::close) such a socket
/// (or [`cancel`](AsyncResult::cancel) its operations) before dropping your last
/// handle: the operations then complete, and the socket goes with their results.
///
/// Operations come in `begin_*`/`end_*` pairs (see the crate docs); the socket is
/// non-blocking underneath and registered once with the engine.
///
/// # Examples
///
/// ```
/// use asyncresult_core::{Socket, SocketFlags};
///
/// # fn main() -> Result<(), asyncresult_core::Error> {
/// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
/// let client = Socket::connect_tcp(listener.local_addr()?)?;
/// client.set_nodelay(true)?;
/// let server = listener.end_accept(&listener.begin_accept(None, None)?)?;
///
/// let sent = client.end_send(&client.begin_send(b"ping", SocketFlags::NONE, None, None)?)?;
/// let (n, buf) = server.end_receive(&server.begin_receive(
///     Vec::with_capacity(64), SocketFlags::NONE, None, None)?)?;
/// assert_eq!((sent, n, &buf[..]), (4, 4, &b"ping"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Socket {
    handle: Arc<Handle>,
}

fn to_socket_addr(addr: SockAddr) -> Result<SocketAddr, Error> {
    addr.as_socket()
        .ok_or_else(|| Error::os(libc::EAFNOSUPPORT))
}

impl Socket {
    /// Creates a socket and registers it with the engine (.NET's
    /// `new Socket(AddressFamily, SocketType, ProtocolType)`).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the OS refuses the socket or the engine cannot take it.
    pub fn new(domain: Domain, ty: Type, protocol: Option<Protocol>) -> Result<Socket, Error> {
        let fd = socket2::Socket::new(domain, ty, protocol)?;
        Socket::adopt(fd, Transport::for_new(domain, ty, protocol))
    }

    /// Takes ownership of `fd` and registers it with the engine.
    pub(crate) fn adopt(fd: socket2::Socket, transport: Transport) -> Result<Socket, Error> {
        let engine = EngineShared::global()?;
        Ok(Socket::from_core(engine.register(fd, transport)?))
    }

    pub(crate) fn from_core(core: Arc<SocketCore>) -> Socket {
        Socket {
            handle: Arc::new(Handle { core }),
        }
    }

    pub(crate) fn core(&self) -> &Arc<SocketCore> {
        &self.handle.core
    }

    /// Connects a new TCP socket to `addr`, blocking until connected; the socket is
    /// then used without blocking.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the OS's error, e.g. `ECONNREFUSED`.
    pub fn connect_tcp(addr: SocketAddr) -> Result<Socket, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.connect(addr)?;
        Ok(socket)
    }

    /// A UDP socket bound to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the address cannot be bound.
    pub fn bind_udp(addr: SocketAddr) -> Result<Socket, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.bind(addr)?;
        Ok(socket)
    }

    /// A TCP socket listening on `addr` with the given backlog (`SO_REUSEADDR` set, as
    /// the standard library does).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the address cannot be bound or listened on.
    pub fn listen_tcp(addr: SocketAddr, backlog: i32) -> Result<Socket, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.core().fd().set_reuse_address(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)?;
        Ok(socket)
    }

    fn live(&self) -> Result<&socket2::Socket, Error> {
        if self.core().is_closed() {
            Err(Error::Disposed)
        } else {
            Ok(self.core().fd())
        }
    }

    /// Binds the socket to a local address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn bind(&self, addr: SocketAddr) -> Result<(), Error> {
        Ok(self.live()?.bind(&addr.into())?)
    }

    /// Starts listening for connections (after [`bind`](Socket::bind)).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn listen(&self, backlog: i32) -> Result<(), Error> {
        Ok(self.live()?.listen(backlog)?)
    }

    /// Connects to `addr`, blocking until done (through the engine: the socket stays
    /// non-blocking). On a UDP socket this sets the default peer.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS (`ECONNREFUSED`,
    /// `ETIMEDOUT`, `EISCONN` if a TCP socket is already connected, …). A UDP socket
    /// may connect again: that moves its default peer.
    pub fn connect(&self, addr: SocketAddr) -> Result<(), Error> {
        let ar = self.begin_connect(addr, None, None)?;
        self.end_connect(&ar)
    }

    /// Turns Nagle's algorithm off (`true`) or on (.NET's `SocketOptionName.NoDelay`):
    /// with it off, small sends go out at once instead of waiting to be coalesced.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] on a non-TCP socket.
    pub fn set_nodelay(&self, on: bool) -> Result<(), Error> {
        Ok(self.live()?.set_tcp_nodelay(on)?)
    }

    /// Whether Nagle's algorithm is off.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] on a non-TCP socket.
    pub fn nodelay(&self) -> Result<bool, Error> {
        Ok(self.live()?.tcp_nodelay()?)
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        to_socket_addr(self.live()?.local_addr()?)
    }

    /// The address of the connected peer.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] (`ENOTCONN`) if not connected.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        to_socket_addr(self.live()?.peer_addr()?)
    }

    /// Shuts down one or both directions of a connection. Pending operations of a shut
    /// direction complete as the OS then reports (a receive returns 0, a send fails
    /// with `EPIPE`). On a datagram socket whose read side is shut, receives still take
    /// the datagrams already queued, then return 0 (as a blocking `recv` does); a
    /// `receive_from` then reports the connected peer, or the unspecified address
    /// (port 0) of the socket's family if there is none. Linux shuts an unconnected
    /// datagram socket's read side too, and wakes its receives, while reporting
    /// `ENOTCONN`.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] (`ENOTCONN`) if not connected.
    pub fn shutdown(&self, how: Shutdown) -> Result<(), Error> {
        let fd = self.live()?;
        if how != Shutdown::Write && !self.is_stream() {
            // Before the syscall, whose wake-up (an edge) makes pending receives try
            // again: they then see it. Linux shuts the read side even of an unconnected
            // datagram socket (reporting `ENOTCONN`), to wake its readers.
            self.core()
                .datagram_read_shut
                .store(true, Ordering::Release);
        }
        Ok(fd.shutdown(how)?)
    }

    /// Disposes the socket (.NET's `Close`/`Dispose`); idempotent.
    ///
    /// Afterwards every `begin_*` fails at once with [`Error::Disposed`]; every
    /// operation still pending completes (its callback runs, its future resolves) and
    /// its `end_*` returns `Disposed`; an operation that completed before keeps its own
    /// result. A connected stream is shut down at once: the peer sees a FIN, or an RST
    /// if pending sends were aborted, received data was left unread, or `SO_LINGER` is
    /// set to zero (as `close(2)` does). The socket leaves the poller; the descriptor
    /// itself is released when the last handle and the last operation are gone.
    ///
    /// Called from an operation's buffer being dropped (see [`IoBuf`](crate::IoBuf)),
    /// the socket is closed at once and the pending operations are completed by an
    /// engine worker a moment later.
    pub fn close(&self) {
        if user_drop::closes_deferred() {
            // From an operation's buffer being dropped (a buffer that hangs up when it
            // goes): what the close completes is notified from a worker, not from
            // inside the notification that dropped the buffer (see `user_drop`).
            self.core().close_deferred();
        } else {
            self.core().close();
        }
    }

    /// Whether [`close`](Socket::close) has been called (or the last handle dropped).
    pub fn is_closed(&self) -> bool {
        self.core().is_closed()
    }

    /// The underlying `socket2` socket, for every other option. The borrow is always
    /// valid (the descriptor outlives every handle); after close the socket is shut
    /// down but open.
    ///
    /// Do not change its blocking mode: the engine relies on it being non-blocking.
    pub fn as_socket2(&self) -> SockRef<'_> {
        SockRef::from(self.core().fd())
    }

    /// Whether this is a byte-stream (e.g. TCP) socket rather than a datagram one.
    pub fn is_stream(&self) -> bool {
        self.core().is_stream()
    }

    /// Checks that an `end_*` call got a result of `kind` from this socket.
    pub(crate) fn check_origin<T>(
        &self,
        ar: &AsyncResult<T>,
        kinds: &[OpKind],
    ) -> Result<(), Error> {
        let (kind, socket) = ar.origin();
        if socket != self.core().id() || !kinds.contains(&kind) {
            Err(Error::ForeignResult)
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.core(), f)
    }
}

impl TryFrom<socket2::Socket> for Socket {
    type Error = Error;
    /// Adopts a socket2 socket (any kind the OS reports).
    fn try_from(fd: socket2::Socket) -> Result<Socket, Error> {
        let transport = Transport::of(&fd)?;
        Socket::adopt(fd, transport)
    }
}

/// Adopts a std socket: it is switched to non-blocking and joins the engine. Its kind
/// is the one the OS reports, as for a `socket2::Socket`: the std type proves nothing
/// (safe code can turn any socket into any of them through `OwnedFd`), and a receive
/// that took a TCP stream for datagrams would ask for `MSG_TRUNC`, with which TCP
/// discards the bytes instead of copying them.
///
/// # Errors
///
/// [`Error::Socket`] if the OS cannot say what the socket is, or the engine cannot take
/// it (the engine fails to start, or the registration fails).
impl TryFrom<std::net::TcpStream> for Socket {
    type Error = Error;
    fn try_from(s: std::net::TcpStream) -> Result<Socket, Error> {
        Socket::try_from(socket2::Socket::from(s))
    }
}

/// Adopts a std socket as the `std::net::TcpStream` conversion does: it is switched
/// to non-blocking and joins the engine, as the kind of socket the OS reports.
///
/// # Errors
///
/// [`Error::Socket`] if the OS cannot say what the socket is, or the engine cannot take
/// it (the engine fails to start, or the registration fails).
impl TryFrom<std::net::TcpListener> for Socket {
    type Error = Error;
    fn try_from(s: std::net::TcpListener) -> Result<Socket, Error> {
        Socket::try_from(socket2::Socket::from(s))
    }
}

/// Adopts a std socket as the `std::net::TcpStream` conversion does: it is switched
/// to non-blocking and joins the engine, as the kind of socket the OS reports.
///
/// # Errors
///
/// [`Error::Socket`] if the OS cannot say what the socket is, or the engine cannot take
/// it (the engine fails to start, or the registration fails).
impl TryFrom<std::net::UdpSocket> for Socket {
    type Error = Error;
    fn try_from(s: std::net::UdpSocket) -> Result<Socket, Error> {
        Socket::try_from(socket2::Socket::from(s))
    }
}
