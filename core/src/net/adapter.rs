//! The methods the tokio and smol adapters' socket types share, written once.
//!
//! Each adapter wraps the runtime-generic types of [`net`](crate::net) in newtypes of
//! its own (so that it can implement its runtime's I/O traits on them), and the
//! contract (`API.md`) names `send`, `receive`, `local_addr`, … as those types' own
//! methods. These macros generate the delegating methods, with their docs and cancel
//! safety, into an adapter's `impl` block: `$rt` is the adapter's
//! [`Runtime`](crate::future::Runtime), `$timer` names its timer in the docs, and the
//! listener's `$stream` is the adapter's stream type. Not a public interface of this
//! crate.

/// The shared methods of an adapter's `TcpStream(net::TcpStream<$rt>)`.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_tcp_stream_methods {
    ($rt:ty, $timer:literal) => {
        /// Opens a TCP connection to `addr`.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] with the OS's error (`ECONNREFUSED`, …).
        ///
        /// # Cancel safety
        ///
        /// Dropping the future closes the half-made socket.
        pub async fn connect(
            addr: ::std::net::SocketAddr,
        ) -> ::core::result::Result<Self, $crate::Error> {
            $crate::net::TcpStream::connect(addr).await.map(Self)
        }

        #[doc = concat!(" [`connect`](TcpStream::connect), bounded by ", $timer, ": at expiry the")]
        /// connect is cancelled and the result is [`Error::Aborted`].
        ///
        /// # Errors
        ///
        /// As [`connect`](TcpStream::connect), plus [`Error::Aborted`] on timeout.
        ///
        /// # Cancel safety
        ///
        /// Dropping the future closes the half-made socket, as with
        /// [`connect`](TcpStream::connect). Expiry closes it too.
        pub async fn connect_timeout(
            addr: ::std::net::SocketAddr,
            timeout: ::std::time::Duration,
        ) -> ::core::result::Result<Self, $crate::Error> {
            $crate::net::TcpStream::connect_timeout(addr, timeout)
                .await
                .map(Self)
        }

        /// Sends the whole buffer: completes when every byte is in the kernel, with the full
        /// length ([`net::TcpStream::send`] has the details).
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`EPIPE`, `ECONNRESET`, …), [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Not cancelled by dropping: once polled, the send is under way, and its bytes
        /// still go out whole, before any later send. `send_timeout` stops it at expiry.
        pub async fn send<B: $crate::IoBuf>(
            &self,
            buf: B,
        ) -> ::core::result::Result<usize, $crate::Error> {
            self.0.send(buf).await
        }

        /// Receives into `buf` from index 0: at least one byte, or 0 once the peer has shut
        /// down ([`net::TcpStream::receive`] has the details).
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`ECONNRESET`, …), [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: bytes are taken only in the poll that returns them.
        ///
        /// # Order
        ///
        /// From its first poll the receive has its place: operations begun after it
        /// (`begin_receive`) take the stream after it. Two receive futures waiting at
        /// once on one socket race for the data, as two reads of tokio's or async-io's
        /// sockets do.
        pub fn receive<B: $crate::IoBufMut>(
            &self,
            buf: B,
        ) -> $crate::future::ReadinessFuture<$crate::future::ReceiveAttempt<B>, $rt> {
            self.0.receive(buf)
        }

        /// Turns Nagle's algorithm off (`true`) or back on (.NET's `NoDelay`).
        ///
        /// # Errors
        ///
        /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
        pub fn set_nodelay(&self, on: bool) -> ::core::result::Result<(), $crate::Error> {
            self.0.set_nodelay(on)
        }

        /// The local address.
        ///
        /// # Errors
        ///
        /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
        pub fn local_addr(&self) -> ::core::result::Result<::std::net::SocketAddr, $crate::Error> {
            self.0.local_addr()
        }

        /// The peer's address.
        ///
        /// # Errors
        ///
        /// [`Error::Disposed`] after close; [`Error::Socket`] (`ENOTCONN`) from the OS.
        pub fn peer_addr(&self) -> ::core::result::Result<::std::net::SocketAddr, $crate::Error> {
            self.0.peer_addr()
        }

        /// Hands back the core socket. The stream never holds received bytes of its own
        /// (reads go straight from the kernel to the caller's buffer), so every byte not
        /// yet read is still in the socket, to be read through it.
        pub fn into_inner(self) -> $crate::Socket {
            self.0.into_inner()
        }
    };
}

/// The shared methods of an adapter's `TcpListener(net::TcpListener<_>)`, whose
/// accepts hand out `$stream`s.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_tcp_listener_methods {
    ($timer:literal, $stream:ident) => {
        /// Binds to `addr` and listens (backlog 1024, `SO_REUSEADDR`).
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] if the address cannot be bound.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the future never waits; its first poll binds, listens and
        /// completes. Dropped before that poll, it has bound nothing.
        pub async fn bind(
            addr: ::std::net::SocketAddr,
        ) -> ::core::result::Result<Self, $crate::Error> {
            $crate::net::TcpListener::bind(addr).await.map(Self)
        }

        /// Accepts a connection.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`EMFILE`, …), [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: a connection is taken from the kernel only when the future
        /// returns it.
        pub async fn accept(
            &self,
        ) -> ::core::result::Result<($stream, ::std::net::SocketAddr), $crate::Error> {
            let (socket, peer) = self.0.accept().await?;
            Ok(($stream::from(socket), peer))
        }

        #[doc = concat!(" [`accept`](TcpListener::accept), bounded by ", $timer)]
        /// ([`Error::Aborted`] at expiry; no connection is lost).
        ///
        /// # Errors
        ///
        /// As [`accept`](TcpListener::accept), plus [`Error::Aborted`] on timeout.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: a connection is taken from the kernel only when the future
        /// returns it. Dropping the future, like expiry, loses no connection.
        pub async fn accept_timeout(
            &self,
            timeout: ::std::time::Duration,
        ) -> ::core::result::Result<($stream, ::std::net::SocketAddr), $crate::Error> {
            let (socket, peer) = self.0.accept_timeout(timeout).await?;
            Ok(($stream::from(socket), peer))
        }

        /// The local address (the port the OS picked for port 0).
        ///
        /// # Errors
        ///
        /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
        pub fn local_addr(&self) -> ::core::result::Result<::std::net::SocketAddr, $crate::Error> {
            self.0.local_addr()
        }

        /// Hands back the core socket.
        pub fn into_inner(self) -> $crate::Socket {
            self.0.into_inner()
        }
    };
}

/// The shared methods of an adapter's `UdpSocket(net::UdpSocket<$rt>)`.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_udp_socket_methods {
    ($rt:ty) => {
        /// A UDP socket bound to `addr` (port 0 picks one).
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] if the address cannot be bound.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the future never waits; its first poll binds and completes.
        /// Dropped before that poll, it has bound nothing.
        pub async fn bind(
            addr: ::std::net::SocketAddr,
        ) -> ::core::result::Result<Self, $crate::Error> {
            $crate::net::UdpSocket::bind(addr).await.map(Self)
        }

        /// Sets the default peer for `send` and `receive` (and filters what arrives to it).
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] from the OS, [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// The connect completes in its first poll; dropped before it, it has set nothing.
        pub async fn connect(
            &self,
            addr: ::std::net::SocketAddr,
        ) -> ::core::result::Result<(), $crate::Error> {
            self.0.connect(addr).await
        }

        /// Sends `buf` as one datagram to the connected peer.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`EMSGSIZE`, `EDESTADDRREQ` if not connected, …),
        /// [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Dropping the future after its first poll does not stop the datagram.
        pub async fn send<B: $crate::IoBuf>(
            &self,
            buf: B,
        ) -> ::core::result::Result<usize, $crate::Error> {
            self.0.send(buf).await
        }

        /// Receives one datagram from the connected peer; one longer than `buf` is
        /// truncated, and the count is its full length.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`ECONNREFUSED`, …), [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: a datagram is taken only in the poll that returns it.
        ///
        /// # Order
        ///
        /// From its first poll the receive has its place: operations begun after it
        /// take datagrams after it. Receive futures waiting at once on one socket race
        /// for the datagrams, as reads of tokio's or async-io's sockets do.
        pub fn receive<B: $crate::IoBufMut>(
            &self,
            buf: B,
        ) -> $crate::future::ReadinessFuture<$crate::future::ReceiveAttempt<B>, $rt> {
            self.0.receive(buf)
        }

        /// Sends `buf` as one datagram to `to`.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`] (`EMSGSIZE`, `EAFNOSUPPORT`, …), [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Dropping the future after its first poll does not stop the datagram.
        pub async fn send_to<B: $crate::IoBuf>(
            &self,
            buf: B,
            to: ::std::net::SocketAddr,
        ) -> ::core::result::Result<usize, $crate::Error> {
            self.0.send_to(buf, to).await
        }

        /// Receives one datagram and its sender; one longer than `buf` is truncated, and
        /// the count is its full length.
        ///
        /// # Errors
        ///
        /// [`Error::Socket`], [`Error::Disposed`].
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: a datagram is taken only in the poll that returns it.
        ///
        /// # Order
        ///
        /// From its first poll the receive has its place: operations begun after it
        /// take datagrams after it. Receive futures waiting at once on one socket race
        /// for the datagrams, as reads of tokio's or async-io's sockets do.
        pub fn receive_from<B: $crate::IoBufMut>(
            &self,
            buf: B,
        ) -> $crate::future::ReadinessFuture<$crate::future::ReceiveFromAttempt<B>, $rt> {
            self.0.receive_from(buf)
        }

        /// The local address (the port the OS picked for port 0).
        ///
        /// # Errors
        ///
        /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
        pub fn local_addr(&self) -> ::core::result::Result<::std::net::SocketAddr, $crate::Error> {
            self.0.local_addr()
        }

        /// Hands back the core socket.
        pub fn into_inner(self) -> $crate::Socket {
            self.0.into_inner()
        }
    };
}
