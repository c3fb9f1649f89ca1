//! What kind of socket a core drives, as far as its operations care: datagrams, a
//! byte stream, or TCP, whose short reads prove the receive queue empty; and whether
//! its addresses are IP ones, the only kind this API can report (`SocketAddr`).
//!
//! That last fact lets a receive skip the syscall that would only say `EAGAIN` (tokio
//! and nginx rely on it the same way): Linux's `tcp_recvmsg` copies until the buffer
//! is full or the receive queue (and its backlog) is empty, so a read that returns
//! fewer bytes than asked for, and at least one, left no data behind. Two exceptions,
//! which the engine watches for (`EPOLLRDHUP`, `EPOLLERR`, `EPOLLPRI`; after any of
//! them the socket's short reads prove nothing): a read also passes the peer's FIN
//! (or stops before a pending error), after which no edge ever comes; and it stops
//! short at the urgent mark. Other streams do not promise even that much: a Unix
//! stream read stops early at a message that carries descriptors or credentials, with
//! data still queued behind it.

use socket2::{Domain, Protocol, Type};

/// The kind of a registered socket.
///
/// `ip` says whether the socket's addresses are IP ones (`AF_INET`, `AF_INET6`). The
/// operations that report a peer's address (`receive_from`, `accept`) refuse any other
/// family (a Unix socket, ...) before they take anything from the kernel: the address
/// could not be given as a `SocketAddr`, and the datagram or connection would be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Datagrams (UDP, ...): a receive takes one message.
    Datagram {
        /// The addresses are IP ones.
        ip: bool,
    },
    /// Messages on a connection (a Unix `SOCK_SEQPACKET` socket): received as datagrams
    /// are, but the connection ends for the peer at close, as a stream's does.
    SeqPacket {
        /// The addresses are IP ones.
        ip: bool,
    },
    /// A byte stream other than TCP (a Unix stream, ...).
    Stream {
        /// The addresses are IP ones.
        ip: bool,
    },
    /// TCP: a byte stream whose short reads prove the receive queue empty.
    Tcp,
}

impl Transport {
    /// UDP.
    #[cfg(test)]
    pub(crate) const UDP: Transport = Transport::Datagram { ip: true };

    /// The kind of a socket about to be created with these arguments (no syscall).
    pub(crate) fn for_new(domain: Domain, ty: Type, protocol: Option<Protocol>) -> Transport {
        let ip = domain == Domain::IPV4 || domain == Domain::IPV6;
        if is_type(ty, libc::SOCK_SEQPACKET) {
            Transport::SeqPacket { ip }
        } else if !is_type(ty, libc::SOCK_STREAM) {
            Transport::Datagram { ip }
        } else if ip && protocol.is_none_or(|p| p == Protocol::TCP) {
            Transport::Tcp
        } else {
            Transport::Stream { ip }
        }
    }

    /// The kind of an existing socket, as the OS reports it (`SO_TYPE`, then
    /// `SO_PROTOCOL` for a stream; the family of its `getsockname` address). A stream
    /// whose protocol cannot be read counts as a plain stream: it only loses the
    /// skipped syscall.
    pub(crate) fn of(fd: &socket2::Socket) -> std::io::Result<Transport> {
        let ip = fd.local_addr().is_ok_and(|addr| addr.as_socket().is_some());
        let ty = fd.r#type()?;
        if is_type(ty, libc::SOCK_SEQPACKET) {
            return Ok(Transport::SeqPacket { ip });
        }
        if !is_type(ty, libc::SOCK_STREAM) {
            return Ok(Transport::Datagram { ip });
        }
        Ok(match fd.protocol() {
            Ok(Some(Protocol::TCP)) if ip => Transport::Tcp,
            _ => Transport::Stream { ip },
        })
    }

    /// Whether this is a byte stream (sends go out whole, 0 means end of stream).
    pub(crate) fn is_stream(self) -> bool {
        matches!(self, Transport::Stream { .. } | Transport::Tcp)
    }

    /// Whether closing the socket ends a connection for its peer (a stream's, or a
    /// `SOCK_SEQPACKET` one's).
    pub(crate) fn is_connection(self) -> bool {
        self.is_stream() || matches!(self, Transport::SeqPacket { .. })
    }

    /// Whether the socket's addresses are IP ones, which a `SocketAddr` can hold.
    pub(crate) fn has_ip_addresses(self) -> bool {
        match self {
            Transport::Datagram { ip } | Transport::SeqPacket { ip } | Transport::Stream { ip } => {
                ip
            }
            Transport::Tcp => true,
        }
    }
}

/// Whether `ty` (with any `SOCK_*` flags or'ed in) is the socket type `base`.
fn is_type(ty: Type, base: libc::c_int) -> bool {
    (libc::c_int::from(ty) & 0xf) == base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sockets_are_classified_without_syscalls() {
        let tcp = Transport::for_new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP));
        assert_eq!(tcp, Transport::Tcp);
        let default_stream = Transport::for_new(Domain::IPV4, Type::STREAM, None);
        assert_eq!(default_stream, Transport::Tcp);
        let unix = Transport::for_new(Domain::UNIX, Type::STREAM, None);
        assert_eq!(unix, Transport::Stream { ip: false });
        let udp = Transport::for_new(Domain::IPV4, Type::DGRAM, None);
        assert_eq!(udp, Transport::UDP);
        assert!(unix.is_stream() && tcp.is_stream() && !udp.is_stream());
        let unix_datagrams = Transport::for_new(Domain::UNIX, Type::DGRAM, None);
        assert!(!unix_datagrams.has_ip_addresses() && !unix.has_ip_addresses());
        assert!(udp.has_ip_addresses() && tcp.has_ip_addresses());
    }

    #[test]
    fn existing_sockets_are_classified_by_the_os() -> std::io::Result<()> {
        let tcp = socket2::Socket::new(Domain::IPV4, Type::STREAM, None)?;
        assert_eq!(Transport::of(&tcp)?, Transport::Tcp);
        let (unix, _peer) = socket2::Socket::pair(Domain::UNIX, Type::STREAM, None)?;
        assert_eq!(Transport::of(&unix)?, Transport::Stream { ip: false });
        let udp = socket2::Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        assert_eq!(Transport::of(&udp)?, Transport::UDP);
        let (unix, _peer) = socket2::Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
        assert_eq!(Transport::of(&unix)?, Transport::Datagram { ip: false });
        Ok(())
    }
}
