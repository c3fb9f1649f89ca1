//! The public types and conversions of the core, as API.md writes them: every
//! signature pinned at compile time, every promised trait, every conversion and every
//! buffer kind, and the `Socket` methods' edge cases (adopting blocking std sockets,
//! shut-down directions, options).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod common;

use std::any::Any;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use asyncresult_core::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, Type,
};
use common::{bounded, localhost, secs, tcp_pair, tcp_to_std};

fn assert_handle<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
fn assert_error<
    T: Send + Sync + 'static + std::fmt::Debug + std::fmt::Display + std::error::Error,
>() {
}
fn assert_flags<
    T: Clone
        + Copy
        + PartialEq
        + Eq
        + std::hash::Hash
        + std::fmt::Debug
        + Default
        + std::ops::BitOr<Output = T>,
>() {
}

/// Every name and signature of API.md's core types, as written there: a renamed item or
/// a changed signature fails to compile.
#[test]
fn core_signatures_are_as_documented() {
    assert_handle::<Socket>();
    assert_handle::<AsyncResult<usize>>();
    assert_handle::<AsyncResult<()>>();
    assert_handle::<AsyncResult<Socket>>();
    assert_handle::<AsyncResult<(usize, Vec<u8>)>>();
    assert_handle::<AsyncResult<(usize, Box<[u8]>, SocketAddr)>>();
    assert_error::<Error>();
    assert_flags::<SocketFlags>();

    // The aliases are exactly what API.md says.
    let _: fn(AsyncState) -> Arc<dyn Any + Send + Sync> = |s| s;
    let _: fn(AsyncCallback<usize>) -> Box<dyn FnOnce(AsyncResult<usize>) + Send + 'static> = |c| c;

    // Socket.
    let _: fn(Domain, Type, Option<Protocol>) -> Result<Socket, Error> = Socket::new;
    let _: fn(SocketAddr) -> Result<Socket, Error> = Socket::connect_tcp;
    let _: fn(SocketAddr) -> Result<Socket, Error> = Socket::bind_udp;
    let _: fn(SocketAddr, i32) -> Result<Socket, Error> = Socket::listen_tcp;
    let _: fn(&Socket, SocketAddr) -> Result<(), Error> = Socket::connect;
    let _: fn(&Socket, bool) -> Result<(), Error> = Socket::set_nodelay;
    let _: fn(&Socket) -> Result<bool, Error> = Socket::nodelay;
    let _: fn(&Socket) -> Result<SocketAddr, Error> = Socket::local_addr;
    let _: fn(&Socket) -> Result<SocketAddr, Error> = Socket::peer_addr;
    let _: fn(&Socket, Shutdown) -> Result<(), Error> = Socket::shutdown;
    let _: fn(&Socket) = Socket::close;
    let _: fn(&Socket) -> bool = Socket::is_closed;
    let _: for<'a> fn(&'a Socket) -> socket2::SockRef<'a> = Socket::as_socket2;
    fn try_from<S>()
    where
        Socket: TryFrom<S, Error = Error>,
    {
    }
    try_from::<std::net::TcpStream>();
    try_from::<std::net::UdpSocket>();
    try_from::<std::net::TcpListener>();
    try_from::<socket2::Socket>();

    // The Begin/End family, with the callback adapter's signatures.
    type Cb<T> = Option<AsyncCallback<T>>;
    type St = Option<AsyncState>;
    let _: fn(&Socket, Vec<u8>, SocketFlags, Cb<usize>, St) -> Result<AsyncResult<usize>, Error> =
        Socket::begin_send::<Vec<u8>>;
    let _: fn(&Socket, &AsyncResult<usize>) -> Result<usize, Error> = Socket::end_send;
    let _: fn(
        &Socket,
        &'static str,
        SocketFlags,
        SocketAddr,
        Cb<usize>,
        St,
    ) -> Result<AsyncResult<usize>, Error> = Socket::begin_send_to::<&'static str>;
    let _: fn(&Socket, &AsyncResult<usize>) -> Result<usize, Error> = Socket::end_send_to;
    let _: fn(
        &Socket,
        Vec<u8>,
        SocketFlags,
        Cb<(usize, Vec<u8>)>,
        St,
    ) -> Result<AsyncResult<(usize, Vec<u8>)>, Error> = Socket::begin_receive::<Vec<u8>>;
    let _: fn(&Socket, &AsyncResult<(usize, Box<[u8]>)>) -> Result<(usize, Box<[u8]>), Error> =
        Socket::end_receive::<Box<[u8]>>;
    let _: fn(
        &Socket,
        Box<[u8]>,
        SocketFlags,
        Cb<(usize, Box<[u8]>, SocketAddr)>,
        St,
    ) -> Result<AsyncResult<(usize, Box<[u8]>, SocketAddr)>, Error> =
        Socket::begin_receive_from::<Box<[u8]>>;
    let _: fn(
        &Socket,
        &AsyncResult<(usize, Vec<u8>, SocketAddr)>,
    ) -> Result<(usize, Vec<u8>, SocketAddr), Error> = Socket::end_receive_from::<Vec<u8>>;
    let _: fn(&Socket, SocketAddr, Cb<()>, St) -> Result<AsyncResult<()>, Error> =
        Socket::begin_connect;
    let _: fn(&Socket, &AsyncResult<()>) -> Result<(), Error> = Socket::end_connect;
    let _: fn(&Socket, Cb<Socket>, St) -> Result<AsyncResult<Socket>, Error> = Socket::begin_accept;
    let _: fn(&Socket, &AsyncResult<Socket>) -> Result<Socket, Error> = Socket::end_accept;
    let _: fn(
        &Socket,
        Vec<Arc<[u8]>>,
        SocketFlags,
        Cb<usize>,
        St,
    ) -> Result<AsyncResult<usize>, Error> = Socket::begin_send_vectored::<Arc<[u8]>>;

    // AsyncResult.
    let _: fn(&AsyncResult<usize>) -> bool = AsyncResult::is_completed;
    let _: fn(&AsyncResult<usize>) -> bool = AsyncResult::completed_synchronously;
    let _: for<'a> fn(&'a AsyncResult<usize>) -> Option<&'a AsyncState> = AsyncResult::async_state;
    let _: for<'a> fn(&'a AsyncResult<usize>) -> Option<&'a String> = AsyncResult::state::<String>;
    let _: fn(&AsyncResult<usize>) = AsyncResult::wait;
    let _: fn(&AsyncResult<usize>, Duration) -> bool = AsyncResult::wait_timeout;
    let _: fn(&AsyncResult<usize>) -> bool = AsyncResult::cancel;

    // Error.
    let _: fn(&Error) -> Option<i32> = Error::error_code;
    let _: fn(Error) -> io::Error = io::Error::from;
    let _: fn(io::Error) -> Error = Error::from;
    // Exhaustive over the documented variants (non_exhaustive is not enforced inside
    // no crate but the defining one, so a wildcard is needed; the names must exist).
    let _ = |e: Error| match e {
        Error::Socket(_)
        | Error::Disposed
        | Error::AlreadyEnded
        | Error::ForeignResult
        | Error::Aborted => (),
        _ => (),
    };

    // SocketFlags.
    let _: [SocketFlags; 4] = [
        SocketFlags::NONE,
        SocketFlags::OUT_OF_BAND,
        SocketFlags::PEEK,
        SocketFlags::DONT_ROUTE,
    ];

    // IoBuf / IoBufMut impls.
    fn send_buf<B: IoBuf>() {}
    fn recv_buf<B: IoBufMut>() {}
    send_buf::<Vec<u8>>();
    send_buf::<Box<[u8]>>();
    send_buf::<&'static [u8]>();
    send_buf::<&'static [u8; 7]>();
    send_buf::<&'static str>();
    send_buf::<String>();
    send_buf::<Arc<[u8]>>();
    #[cfg(feature = "bytes")]
    send_buf::<bytes::Bytes>();
    recv_buf::<Vec<u8>>();
    recv_buf::<Box<[u8]>>();
    fn io_buf_mut_is_io_buf<B: IoBufMut>(b: B) -> impl IoBuf {
        b
    }
    let _ = io_buf_mut_is_io_buf::<Vec<u8>>;
}

#[test]
fn socket_flags_behave_as_flags() {
    assert_eq!(SocketFlags::default(), SocketFlags::NONE);
    let all = SocketFlags::OUT_OF_BAND | SocketFlags::PEEK | SocketFlags::DONT_ROUTE;
    let mut built = SocketFlags::NONE;
    built |= SocketFlags::PEEK;
    built |= SocketFlags::OUT_OF_BAND;
    built |= SocketFlags::DONT_ROUTE;
    assert_eq!(built, all);
    assert!(all.contains(SocketFlags::PEEK) && all.contains(SocketFlags::NONE));
    assert!(!SocketFlags::PEEK.contains(SocketFlags::DONT_ROUTE));
    let set: HashSet<SocketFlags> = [
        SocketFlags::NONE,
        SocketFlags::PEEK,
        SocketFlags::PEEK | SocketFlags::NONE,
        SocketFlags::OUT_OF_BAND,
    ]
    .into_iter()
    .collect();
    assert_eq!(set.len(), 3);
    assert_eq!(format!("{:?}", SocketFlags::NONE), "SocketFlags(NONE)");
    assert!(format!("{:?}", SocketFlags::PEEK).contains("PEEK"));
}

#[test]
fn error_codes_kinds_and_texts() {
    let os = io::Error::from_raw_os_error(libc::ECONNRESET);
    let e = Error::from(os);
    assert!(matches!(e, Error::Socket(_)));
    assert_eq!(e.error_code(), Some(libc::ECONNRESET));
    for (e, kind) in [
        (Error::Disposed, io::ErrorKind::NotConnected),
        (Error::AlreadyEnded, io::ErrorKind::InvalidInput),
        (Error::ForeignResult, io::ErrorKind::InvalidInput),
    ] {
        assert_eq!(e.error_code(), None);
        assert!(!e.to_string().is_empty());
        assert_eq!(io::Error::from(e).kind(), kind);
    }
    assert_eq!(Error::Aborted.error_code(), None);
    let aborted = io::Error::from(Error::Aborted).kind();
    assert!(
        !matches!(
            aborted,
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        ),
        "{aborted:?}"
    );
    // No io::Error derived from one of ours reports an errno.
    assert_eq!(io::Error::from(Error::Disposed).raw_os_error(), None);

    // Socket(e) -> e, unchanged: the errno, and a non-OS error's kind and payload.
    let io: io::Error = Error::Socket(io::Error::from_raw_os_error(libc::EPIPE)).into();
    assert_eq!(io.raw_os_error(), Some(libc::EPIPE));
    assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
    let custom = io::Error::new(io::ErrorKind::UnexpectedEof, "short");
    let e = Error::from(custom);
    assert_eq!(e.error_code(), None, "a non-OS socket error has no errno");
    let back: io::Error = e.into();
    assert_eq!(back.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(back.to_string(), "short");
    // A plain io::Error of each kind we produce is a socket error, not one of our tags.
    let plain = Error::from(io::Error::new(io::ErrorKind::NotConnected, "plain"));
    assert!(matches!(plain, Error::Socket(_)));
    // Display of Socket mentions the OS text.
    let shown = Error::from(io::Error::from_raw_os_error(libc::ECONNREFUSED)).to_string();
    assert!(
        shown.contains(&io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string()),
        "{shown}"
    );
    // Box<dyn Error + Send + Sync> works with `?`.
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err(Error::Aborted)?
    }
    assert!(boxed().unwrap_err().downcast_ref::<Error>().is_some());
}

/// Sends `buf` from our end and reads exactly `want` on a std peer.
fn sends_through<B: IoBuf>(buf: B, want: &[u8]) {
    let (ours, mut theirs) = tcp_to_std();
    let ar = ours.begin_send(buf, SocketFlags::NONE, None, None).unwrap();
    assert_eq!(ours.end_send(&ar).unwrap(), want.len());
    let mut got = vec![0u8; want.len()];
    theirs.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
}

#[test]
fn every_send_buffer_kind_sends_its_bytes() {
    bounded(secs(20), || {
        sends_through(b"vec".to_vec(), b"vec");
        sends_through(b"boxed".to_vec().into_boxed_slice(), b"boxed");
        sends_through(&b"slice"[..], b"slice");
        sends_through(b"array", b"array");
        sends_through("str", b"str");
        sends_through(String::from("string"), b"string");
        sends_through(Arc::<[u8]>::from(&b"arc"[..]), b"arc");
        #[cfg(feature = "bytes")]
        sends_through(bytes::Bytes::from_static(b"bytes"), b"bytes");
        // And through send_to and vectored sends too.
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = std::net::UdpSocket::bind(localhost()).unwrap();
        let to = b.local_addr().unwrap();
        a.end_send_to(
            &a.begin_send_to("dgram", SocketFlags::NONE, to, None, None)
                .unwrap(),
        )
        .unwrap();
        let mut got = [0u8; 16];
        let (n, _) = b.recv_from(&mut got).unwrap();
        assert_eq!(&got[..n], b"dgram");
        let (ours, mut theirs) = tcp_to_std();
        let parts: Vec<&'static str> = vec!["a", "", "bc", "def"];
        let ar = ours
            .begin_send_vectored(parts, SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(ours.end_send(&ar).unwrap(), 6);
        let mut got = [0u8; 6];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcdef");
    });
}

#[test]
fn vec_receive_discards_old_contents_and_fills_to_capacity() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        // A Vec with old contents: they are discarded, data lands at index 0.
        let mut old = Vec::with_capacity(64);
        old.extend_from_slice(b"OLD CONTENTS THAT MUST GO");
        let cap = old.capacity();
        theirs.write_all(b"new").unwrap();
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(old, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, &buf[..]), (3, &b"new"[..]));
        assert_eq!(buf.capacity(), cap, "the same allocation comes back");

        // Filled up to capacity(), not len(): a full Vec (len == capacity) can take it all.
        let full = vec![0u8; 8];
        let cap = full.capacity();
        theirs.write_all(&[7u8; 100]).unwrap();
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(full, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, cap.min(100));
        assert_eq!(buf.len(), n);
        // Drain the rest.
        let mut left = 100 - n;
        while left > 0 {
            let (n, _) = ours
                .end_receive(
                    &ours
                        .begin_receive(Vec::with_capacity(256), SocketFlags::NONE, None, None)
                        .unwrap(),
                )
                .unwrap();
            left -= n;
        }

        // A Vec whose capacity exceeds what was asked takes up to the capacity.
        let mut big = Vec::<u8>::with_capacity(3);
        big.reserve_exact(0);
        let cap = big.capacity();
        theirs.write_all(&vec![9u8; cap + 10]).unwrap();
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(big, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert!(n <= cap && n >= 1);
        assert_eq!(buf.len(), n);
    });
}

#[test]
fn boxed_receive_fills_from_zero_up_to_its_length() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        theirs.write_all(b"abc").unwrap();
        let boxed: Box<[u8]> = vec![b'-'; 8].into_boxed_slice();
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(boxed, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(&buf[..], b"abc-----", "only the first n bytes are new");

        // A datagram longer than the box: its head, and the full count.
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        a.end_send_to(
            &a.begin_send_to(
                b"0123456789",
                SocketFlags::NONE,
                b.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap(),
        )
        .unwrap();
        let boxed: Box<[u8]> = vec![0u8; 4].into_boxed_slice();
        let (n, head) = b
            .end_receive(
                &b.begin_receive(boxed, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, &head[..]), (10, &b"0123"[..]));
    });
}

#[test]
fn zero_capacity_vec_is_a_readiness_probe() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        // A zero-capacity Vec that once held data: len 0 and capacity 0.
        let probe: Vec<u8> = Vec::new();
        let ar = ours
            .begin_receive(probe, SocketFlags::NONE, None, None)
            .unwrap();
        assert!(
            !ar.wait_timeout(Duration::from_millis(50)),
            "nothing is there yet"
        );
        theirs.write_all(b"xyz").unwrap();
        let (n, buf) = ours.end_receive(&ar).unwrap();
        assert_eq!((n, buf.len()), (0, 0));
        // Nothing was consumed.
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"xyz");
        // An empty box is a probe too.
        let ar = ours
            .begin_receive(Box::<[u8]>::default(), SocketFlags::NONE, None, None)
            .unwrap();
        theirs.write_all(b"q").unwrap();
        assert_eq!(ours.end_receive(&ar).unwrap().0, 0);
    });
}

#[test]
fn async_result_state_and_status() {
    bounded(secs(20), || {
        let (client, server) = tcp_pair();
        // Fast path with a state.
        let ar = client
            .begin_send(
                b"hi",
                SocketFlags::NONE,
                None,
                Some(Arc::new(String::from("s"))),
            )
            .unwrap();
        assert!(ar.is_completed());
        assert!(ar.completed_synchronously());
        assert_eq!(ar.state::<String>().map(String::as_str), Some("s"));
        assert_eq!(
            ar.state::<&str>(),
            None,
            "the wrong type is None, not a panic"
        );
        assert_eq!(ar.state::<u32>(), None);
        assert!(ar.async_state().is_some());
        let clone = ar.clone();
        assert_eq!(client.end_send(&clone).unwrap(), 2);
        assert!(matches!(client.end_send(&ar), Err(Error::AlreadyEnded)));
        // The state stays readable after end.
        assert_eq!(ar.state::<String>().map(String::as_str), Some("s"));
        let _ = format!("{ar:?}");

        // Queued: not synchronous, no state.
        let _ = server
            .end_receive(
                &server
                    .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let pending = server
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(pending.async_state().is_none());
        assert_eq!(pending.state::<String>(), None);
        assert!(!pending.is_completed());
        assert!(!pending.wait_timeout(Duration::ZERO));
        assert!(!pending.wait_timeout(Duration::from_nanos(1)));
        let shown = format!("{pending:?} {server:?}");
        assert!(shown.contains("pending"), "{shown}");
        let c = client.clone();
        let t = thread::spawn(move || {
            // Only makes the huge waits below likely to start while the receive is
            // pending; nothing depends on it.
            thread::sleep(Duration::from_millis(20));
            c.end_send(&c.begin_send(b"x", SocketFlags::NONE, None, None).unwrap())
                .unwrap();
        });
        // Huge timeouts must not panic or overflow.
        assert!(pending.wait_timeout(Duration::MAX));
        assert!(pending.wait_timeout(Duration::MAX));
        assert!(pending.wait_timeout(Duration::ZERO));
        assert!(pending.wait_timeout(Duration::from_secs(u64::MAX / 2)));
        pending.wait();
        assert!(!pending.completed_synchronously());
        t.join().unwrap();
        assert_eq!(server.end_receive(&pending).unwrap().0, 1);

        // State of a queued receive with a state.
        let st: AsyncState = Arc::new(7u64);
        let ar = server
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                None,
                Some(st.clone()),
            )
            .unwrap();
        assert!(Arc::ptr_eq(ar.async_state().unwrap(), &st));
        assert_eq!(ar.state::<u64>(), Some(&7));
        assert!(ar.cancel());
        assert!(matches!(server.end_receive(&ar), Err(Error::Aborted)));
    });
}

/// Debug of a result and of its socket from inside the operation's own callback, and
/// while it is pending: no deadlock, no panic.
#[test]
fn debug_from_inside_the_callback() {
    bounded(secs(20), || {
        let (client, server) = tcp_pair();
        let (tx, rx) = mpsc::channel();
        let s = server.clone();
        let ar = server
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    let shown = format!("{ar:?} {s:?}");
                    let ended = s.end_receive(&ar).map(|(n, _)| n);
                    let after = format!("{ar:?} {s:?}");
                    tx.send((shown, ended, after)).unwrap();
                })),
                None,
            )
            .unwrap();
        let _ = format!("{ar:?} {server:?}");
        client
            .end_send(
                &client
                    .begin_send(b"abc", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let (shown, ended, after) = rx.recv_timeout(secs(10)).unwrap();
        assert_eq!(ended.unwrap(), 3);
        assert!(!shown.is_empty() && after.contains("ended"), "{after}");
    });
}

#[test]
fn new_accepts_sensible_kinds_and_refuses_nonsense() {
    for (domain, ty, proto) in [
        (Domain::IPV4, Type::STREAM, None),
        (Domain::IPV4, Type::STREAM, Some(Protocol::TCP)),
        (Domain::IPV6, Type::STREAM, Some(Protocol::TCP)),
        (Domain::IPV4, Type::DGRAM, None),
        (Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)),
        (Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)),
        (Domain::UNIX, Type::STREAM, None),
        (Domain::UNIX, Type::DGRAM, None),
    ] {
        let s = Socket::new(domain, ty, proto)
            .unwrap_or_else(|e| panic!("{domain:?} {ty:?} {proto:?}: {e}"));
        assert!(!s.is_closed());
        assert_eq!(s.is_stream(), ty == Type::STREAM);
        s.close();
        assert!(s.is_closed());
    }
    for (domain, ty, proto) in [
        (Domain::IPV4, Type::DGRAM, Some(Protocol::TCP)),
        (Domain::IPV4, Type::STREAM, Some(Protocol::UDP)),
        (Domain::UNIX, Type::STREAM, Some(Protocol::TCP)),
        (Domain::from(12345), Type::STREAM, None),
        (Domain::IPV4, Type::from(77), None),
    ] {
        let r = Socket::new(domain, ty, proto);
        assert!(
            matches!(r, Err(Error::Socket(_))),
            "{domain:?} {ty:?} {proto:?}: {r:?}"
        );
        assert!(r.unwrap_err().error_code().is_some());
    }
}

/// `is_nonblocking` through fcntl.
fn nonblocking(s: &Socket) -> bool {
    use std::os::fd::AsRawFd;
    let fd = s.as_socket2().as_raw_fd();
    // SAFETY: fcntl F_GETFL on a valid descriptor borrowed for the call.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn adopted_blocking_stream_with_unread_data() {
    bounded(secs(20), || {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let std_client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"already here").unwrap();
        // Make sure the bytes are in our kernel buffer before adoption.
        let mut seen = [0u8; 12];
        assert_eq!(std_client.peek(&mut seen).unwrap(), 12);
        assert!(std_client.take_error().unwrap().is_none());
        let ours = Socket::try_from(std_client).unwrap();
        assert!(
            nonblocking(&ours),
            "the adopted socket must be non-blocking"
        );
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"already here");
        // Nothing more: the next receive must wait, not block the caller in begin.
        let ar = ours
            .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.is_completed());
        peer.write_all(b"later").unwrap();
        let (n, buf) = ours.end_receive(&ar).unwrap();
        assert_eq!(&buf[..n], b"later");
        assert_eq!(ours.peer_addr().unwrap(), peer.local_addr().unwrap());
        // Sends of a big buffer do not block the begin either.
        let big = vec![1u8; 8 << 20];
        let ar = ours.begin_send(big, SocketFlags::NONE, None, None).unwrap();
        let reader = thread::spawn(move || {
            let mut got = vec![0u8; 8 << 20];
            peer.read_exact(&mut got).unwrap();
        });
        assert_eq!(ours.end_send(&ar).unwrap(), 8 << 20);
        reader.join().unwrap();
    });
}

#[test]
fn adopted_socket2_blocking_with_unread_data() {
    bounded(secs(20), || {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let raw = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        raw.connect(&listener.local_addr().unwrap().into()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"s2").unwrap();
        let mut seen = [std::mem::MaybeUninit::new(0u8); 2];
        assert_eq!(raw.peek(&mut seen).unwrap(), 2);
        let ours = Socket::try_from(raw).unwrap();
        assert!(nonblocking(&ours));
        assert!(ours.is_stream());
        let (n, buf) = ours
            .end_receive(
                &ours
                    .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"s2");
        let ar = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        drop(peer);
        assert_eq!(ours.end_receive(&ar).unwrap().0, 0, "end of stream");
        // A socket2 UDP socket and a Unix pair.
        let udp = socket2::Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        udp.bind(&localhost().into()).unwrap();
        let udp = Socket::try_from(udp).unwrap();
        assert!(!udp.is_stream() && nonblocking(&udp));
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        let (a, b) = (Socket::try_from(a).unwrap(), Socket::try_from(b).unwrap());
        a.end_send(
            &a.begin_send(b"unix", SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
        let (n, buf) = b
            .end_receive(
                &b.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"unix");
        assert!(
            matches!(a.local_addr(), Err(Error::Socket(_))),
            "a Unix address is no SocketAddr"
        );
    });
}

#[test]
fn adopted_blocking_listener_with_queued_connections() {
    bounded(secs(20), || {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(&[i]).unwrap();
                c
            })
            .collect();
        let ours = Socket::try_from(listener).unwrap();
        assert!(nonblocking(&ours));
        let mut seen = Vec::new();
        for _ in 0..3 {
            let s = ours
                .end_accept(&ours.begin_accept(None, None).unwrap())
                .unwrap();
            assert!(nonblocking(&s), "an accepted socket is non-blocking");
            let (n, buf) = s
                .end_receive(
                    &s.begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
                        .unwrap(),
                )
                .unwrap();
            assert_eq!(n, 1);
            seen.push(buf[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        // The queue is now empty: the next accept waits and does not block begin.
        let ar = ours.begin_accept(None, None).unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        let _late = std::net::TcpStream::connect(addr).unwrap();
        ours.end_accept(&ar).unwrap();
        drop(clients);
    });
}

#[test]
fn adopted_blocking_udp_with_a_queued_datagram() {
    bounded(secs(20), || {
        let std_udp = std::net::UdpSocket::bind(localhost()).unwrap();
        let sender = std::net::UdpSocket::bind(localhost()).unwrap();
        sender
            .send_to(b"queued", std_udp.local_addr().unwrap())
            .unwrap();
        let mut seen = [0u8; 8];
        assert_eq!(std_udp.peek(&mut seen).unwrap(), 6);
        let ours = Socket::try_from(std_udp).unwrap();
        assert!(nonblocking(&ours));
        let (n, buf, from) = ours
            .end_receive_from(
                &ours
                    .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"queued"[..], sender.local_addr().unwrap())
        );
        let ar = ours
            .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        sender.send_to(b"next", ours.local_addr().unwrap()).unwrap();
        assert_eq!(ours.end_receive_from(&ar).unwrap().0, 4);
    });
}

#[test]
fn options_addresses_and_shutdown() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.set_nodelay(true).unwrap();
        assert!(ours.nodelay().unwrap());
        ours.set_nodelay(false).unwrap();
        assert!(!ours.nodelay().unwrap());
        assert_eq!(ours.local_addr().unwrap(), theirs.peer_addr().unwrap());
        assert_eq!(ours.peer_addr().unwrap(), theirs.local_addr().unwrap());
        // Other options through socket2, without re-wrapping.
        ours.as_socket2().set_keepalive(true).unwrap();
        assert!(ours.as_socket2().keepalive().unwrap());
        ours.as_socket2().set_send_buffer_size(1 << 16).unwrap();
        assert!(ours.as_socket2().send_buffer_size().unwrap() >= 1 << 16);

        // nodelay on UDP: a socket error, not a panic.
        let udp = Socket::bind_udp(localhost()).unwrap();
        assert!(matches!(udp.set_nodelay(true), Err(Error::Socket(_))));
        assert!(matches!(udp.nodelay(), Err(Error::Socket(_))));
        // peer_addr unconnected: ENOTCONN.
        assert_eq!(
            udp.peer_addr().unwrap_err().error_code(),
            Some(libc::ENOTCONN)
        );
        let fresh = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert_eq!(
            fresh.peer_addr().unwrap_err().error_code(),
            Some(libc::ENOTCONN)
        );
        assert!(
            fresh.local_addr().is_ok(),
            "an unbound socket has 0.0.0.0:0"
        );
        assert_eq!(
            fresh.shutdown(Shutdown::Both).unwrap_err().error_code(),
            Some(libc::ENOTCONN)
        );

        // Shutdown(Read): a pending receive sees 0.
        let pending = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        ours.shutdown(Shutdown::Read).unwrap();
        assert!(
            pending.wait_timeout(secs(5)),
            "shutdown(Read) completes a pending receive"
        );
        assert_eq!(ours.end_receive(&pending).unwrap().0, 0);
        // Shutdown(Write): the peer reads end of stream, a later send fails with EPIPE.
        ours.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let e = ours
            .end_send(
                &ours
                    .begin_send(b"x", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.error_code(), Some(libc::EPIPE));
        ours.shutdown(Shutdown::Both).unwrap();

        // After close: Disposed everywhere, and close stays idempotent.
        let clone = ours.clone();
        ours.close();
        ours.close();
        assert!(clone.is_closed());
        assert!(matches!(clone.local_addr(), Err(Error::Disposed)));
        assert!(matches!(clone.peer_addr(), Err(Error::Disposed)));
        assert!(matches!(clone.set_nodelay(true), Err(Error::Disposed)));
        assert!(matches!(clone.nodelay(), Err(Error::Disposed)));
        assert!(matches!(
            clone.shutdown(Shutdown::Both),
            Err(Error::Disposed)
        ));
        // as_socket2 is still a valid borrow.
        let _ = clone.as_socket2().r#type();
    });
}

/// A pending receive completes when the peer sends after shutdown(Write) on our side
/// (the directions are independent).
#[test]
fn shutdown_write_keeps_reads() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        let pending = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        ours.shutdown(Shutdown::Write).unwrap();
        let mut eof = [0u8; 1];
        assert_eq!(theirs.read(&mut eof).unwrap(), 0);
        theirs.write_all(b"still").unwrap();
        let (n, buf) = ours.end_receive(&pending).unwrap();
        assert_eq!(&buf[..n], b"still");
    });
}

/// A socket2 socket adopted in the middle of a non-blocking connect: operations begun
/// at once wait for the handshake instead of failing, and a refused connect comes
/// through the result.
#[test]
fn adopted_socket_with_a_connect_in_progress() {
    bounded(secs(20), || {
        let listener = std::net::TcpListener::bind(localhost()).unwrap();
        let raw = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        raw.set_nonblocking(true).unwrap();
        match raw.connect(&listener.local_addr().unwrap().into()) {
            Ok(()) => {}
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINPROGRESS)),
        }
        let ours = Socket::try_from(raw).unwrap();
        let send = ours
            .begin_send(b"early", SocketFlags::NONE, None, None)
            .unwrap();
        let receive = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        assert_eq!(ours.end_send(&send).unwrap(), 5);
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"early");
        peer.write_all(b"back").unwrap();
        let (n, buf) = ours.end_receive(&receive).unwrap();
        assert_eq!(&buf[..n], b"back");

        // Refused: a port held, bound but not listening (so that no other socket, nor
        // this connect as its own port, can take it meanwhile).
        let closed = common::refusing_port(localhost());
        let raw = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        raw.set_nonblocking(true).unwrap();
        let _ = raw.connect(&closed.into());
        let ours = Socket::try_from(raw).unwrap();
        let receive = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(
            receive.wait_timeout(secs(5)),
            "the refusal completes the receive"
        );
        let e = ours.end_receive(&receive).unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ECONNREFUSED), "{e:?}");
    });
}

/// Each flag does what its doc says, and misplaced flags fail through the result.
#[test]
fn each_flag_does_what_its_doc_says() {
    bounded(secs(20), || {
        let (client, server) = tcp_pair();
        let recv = |flags: SocketFlags| {
            server.end_receive(
                &server
                    .begin_receive(Vec::with_capacity(16), flags, None, None)
                    .unwrap(),
            )
        };
        // OUT_OF_BAND receive with no urgent byte: EINVAL, through the result.
        let e = recv(SocketFlags::OUT_OF_BAND).unwrap_err();
        assert_eq!(e.error_code(), Some(libc::EINVAL), "{e:?}");
        // DONT_ROUTE send on loopback works.
        client
            .end_send(
                &client
                    .begin_send(b"peek", SocketFlags::DONT_ROUTE, None, None)
                    .unwrap(),
            )
            .unwrap();
        // PEEK does not consume.
        let (n, buf) = recv(SocketFlags::PEEK).unwrap();
        assert_eq!(&buf[..n], b"peek");
        let (n, buf) = recv(SocketFlags::PEEK).unwrap();
        assert_eq!(&buf[..n], b"peek");
        let (n, buf) = recv(SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"peek");
        // An urgent byte: sent with OUT_OF_BAND, taken with OUT_OF_BAND.
        client
            .end_send(
                &client
                    .begin_send(b"a!", SocketFlags::OUT_OF_BAND, None, None)
                    .unwrap(),
            )
            .unwrap();
        let (n, buf) = recv(SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"a", "the ordinary bytes stop at the mark");
        let (n, buf) = recv(SocketFlags::OUT_OF_BAND).unwrap();
        assert_eq!(&buf[..n], b"!");
        // A PEEK send and a DONT_ROUTE receive: whatever the kernel says, through the
        // result, and the socket stays usable.
        let odd = client
            .begin_send(b"x", SocketFlags::PEEK, None, None)
            .unwrap();
        let _ = client.end_send(&odd);
        let _ = recv(SocketFlags::DONT_ROUTE);
        client
            .end_send(
                &client
                    .begin_send(b"ok", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let mut all = Vec::new();
        while all.len() < 2 || !all.ends_with(b"ok") {
            let (n, buf) = recv(SocketFlags::NONE).unwrap();
            all.extend_from_slice(&buf[..n]);
        }
    });
}

/// `shutdown` on a listener with an accept pending completes the accept (with the
/// OS's error) instead of leaving it waiting; `wait_timeout` waits about as long as it
/// is told; `connect` on UDP sets the peer.
#[test]
fn listener_shutdown_wait_timeout_and_udp_connect() {
    bounded(secs(20), || {
        let listener = Socket::listen_tcp(localhost(), 16).unwrap();
        let pending = listener.begin_accept(None, None).unwrap();
        let started = std::time::Instant::now();
        assert!(!pending.wait_timeout(Duration::from_millis(60)));
        assert!(
            started.elapsed() >= Duration::from_millis(60),
            "{:?}",
            started.elapsed()
        );
        match listener.shutdown(Shutdown::Both) {
            Ok(()) => {
                assert!(
                    pending.wait_timeout(secs(5)),
                    "shutdown wakes the pending accept"
                );
                let r = listener.end_accept(&pending);
                assert!(matches!(r, Err(Error::Socket(_))), "{r:?}");
            }
            Err(e) => {
                assert!(e.error_code().is_some());
                assert!(pending.cancel());
            }
        }

        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        a.end_send(
            &a.begin_send(b"to the peer", SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
        let (n, buf, from) = b
            .end_receive_from(
                &b.begin_receive_from(Vec::with_capacity(32), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"to the peer"[..], a.local_addr().unwrap())
        );
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let e = a.connect(v6).unwrap_err();
        assert!(
            matches!(e, Error::Socket(_)) && e.error_code().is_some(),
            "{e:?}"
        );
    });
}
