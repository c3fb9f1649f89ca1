//! The callback adapter's public surface exactly as API.md writes it: the crate root's
//! and the prelude's re-exports, the Begin/End signatures, and the README's example.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};

use common::{bounded, localhost, secs};

/// Every item API.md lists is at the crate root, and is the core's.
#[test]
fn crate_root_reexports() {
    use asyncresult_callback as ar;
    fn same<T>(_: fn(T) -> T) {}
    same::<ar::Socket>(|s: asyncresult_core::Socket| s);
    same::<ar::AsyncResult<usize>>(|r: asyncresult_core::AsyncResult<usize>| r);
    same::<ar::AsyncState>(|s: asyncresult_core::AsyncState| s);
    same::<ar::AsyncCallback<()>>(|c: asyncresult_core::AsyncCallback<()>| c);
    same::<ar::Error>(|e: asyncresult_core::Error| e);
    same::<ar::SocketFlags>(|f: asyncresult_core::SocketFlags| f);
    same::<ar::Domain>(|d: socket2::Domain| d);
    same::<ar::Type>(|t: socket2::Type| t);
    same::<ar::Protocol>(|p: socket2::Protocol| p);
    fn io_buf<B: ar::IoBuf + asyncresult_core::IoBuf>() {}
    fn io_buf_mut<B: ar::IoBufMut + asyncresult_core::IoBufMut>() {}
    io_buf::<Vec<u8>>();
    io_buf_mut::<Box<[u8]>>();
}

mod through_the_prelude {
    use super::*;
    use asyncresult_callback::prelude::*;

    type Cb<T> = Option<AsyncCallback<T>>;
    type St = Option<AsyncState>;

    /// The prelude alone brings every type and every Begin/End method, with the exact
    /// signatures of API.md.
    #[test]
    fn prelude_signatures() {
        let _: fn(Domain, Type, Option<Protocol>) -> Result<Socket, Error> = Socket::new;
        fn generic<B: IoBuf, M: IoBufMut>() {
            let _: fn(&Socket, B, SocketFlags, Cb<usize>, St) -> Result<AsyncResult<usize>, Error> =
                Socket::begin_send::<B>;
            let _: fn(&Socket, &AsyncResult<usize>) -> Result<usize, Error> = Socket::end_send;
            let _: fn(
                &Socket,
                B,
                SocketFlags,
                SocketAddr,
                Cb<usize>,
                St,
            ) -> Result<AsyncResult<usize>, Error> = Socket::begin_send_to::<B>;
            let _: fn(&Socket, &AsyncResult<usize>) -> Result<usize, Error> = Socket::end_send_to;
            let _: fn(
                &Socket,
                M,
                SocketFlags,
                Cb<(usize, M)>,
                St,
            ) -> Result<AsyncResult<(usize, M)>, Error> = Socket::begin_receive::<M>;
            let _: fn(&Socket, &AsyncResult<(usize, M)>) -> Result<(usize, M), Error> =
                Socket::end_receive::<M>;
            let _: fn(
                &Socket,
                M,
                SocketFlags,
                Cb<(usize, M, SocketAddr)>,
                St,
            ) -> Result<AsyncResult<(usize, M, SocketAddr)>, Error> =
                Socket::begin_receive_from::<M>;
            let _: fn(
                &Socket,
                &AsyncResult<(usize, M, SocketAddr)>,
            ) -> Result<(usize, M, SocketAddr), Error> = Socket::end_receive_from::<M>;
            let _: fn(
                &Socket,
                Vec<B>,
                SocketFlags,
                Cb<usize>,
                St,
            ) -> Result<AsyncResult<usize>, Error> = Socket::begin_send_vectored::<B>;
        }
        generic::<&'static [u8], Vec<u8>>();
        let _: fn(&Socket, SocketAddr, Cb<()>, St) -> Result<AsyncResult<()>, Error> =
            Socket::begin_connect;
        let _: fn(&Socket, &AsyncResult<()>) -> Result<(), Error> = Socket::end_connect;
        let _: fn(&Socket, Cb<Socket>, St) -> Result<AsyncResult<Socket>, Error> =
            Socket::begin_accept;
        let _: fn(&Socket, &AsyncResult<Socket>) -> Result<Socket, Error> = Socket::end_accept;
        // The helpers.
        let cb: Option<AsyncCallback<usize>> = callback(|_ar: AsyncResult<usize>| {});
        assert!(cb.is_some());
        let st: Option<AsyncState> = state(5u8);
        assert_eq!(st.unwrap().downcast_ref::<u8>(), Some(&5));
    }

    struct StateObject {
        work_socket: Socket,
        done: mpsc::Sender<usize>,
    }

    fn send_callback(ar: AsyncResult<usize>) {
        let so = ar
            .state::<StateObject>()
            .expect("the state passed to begin_send");
        let send = so.work_socket.end_send(&ar).expect("send");
        let _ = so.done.send(send);
    }

    /// The README's example, against a loopback listener.
    #[test]
    fn readme_example_runs() {
        bounded(secs(10), || {
            let listener = std::net::TcpListener::bind(localhost()).unwrap();
            let s = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
            s.set_nodelay(true).unwrap();
            let (done, callback_ran) = mpsc::channel();
            s.begin_send(
                b"Hello",
                SocketFlags::NONE,
                callback(send_callback),
                state(StateObject {
                    work_socket: s.clone(),
                    done,
                }),
            )
            .unwrap();
            assert_eq!(callback_ran.recv_timeout(secs(5)).unwrap(), 5);
            // The state's clone of the socket keeps it alive until the result is gone.
            let (peer, _) = listener.accept().unwrap();
            drop(peer);
        });
    }

    /// A state that is an `Arc` already shared by the caller: `async_state()` is the
    /// same allocation.
    #[test]
    fn shared_state_is_the_same_object() {
        bounded(secs(10), || {
            let (client, _server) = common::tcp_pair();
            let shared: AsyncState = Arc::new(String::from("shared"));
            let ar = client
                .begin_send(b"x", SocketFlags::NONE, None, Some(Arc::clone(&shared)))
                .unwrap();
            assert!(Arc::ptr_eq(ar.async_state().unwrap(), &shared));
            assert_eq!(ar.state::<String>().unwrap(), "shared");
            client.end_send(&ar).unwrap();
        });
    }
}

/// `bytes::Bytes` (the `bytes` feature) as a send buffer, alone and gathered.
#[test]
fn bytes_send_buffers() {
    use asyncresult_callback::prelude::*;
    use std::io::Read;
    bounded(secs(10), || {
        let (ours, mut theirs) = common::tcp_to_std();
        let ar = ours
            .begin_send(
                bytes::Bytes::from_static(b"one "),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        assert_eq!(ours.end_send(&ar).unwrap(), 4);
        let parts = vec![
            bytes::Bytes::from(vec![b't'; 3]),
            bytes::Bytes::from_static(b"wo"),
        ];
        let ar = ours
            .begin_send_vectored(parts, SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(ours.end_send(&ar).unwrap(), 5);
        let mut got = [0u8; 9];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one tttwo");
    });
}
