//! One engine for every runtime: a tokio program and a smol program share it in one
//! process, concurrently, and a socket made under one is handed to the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use asyncresult_conformance::adapters::{Flavor, SmolFlavor, TokioFlavor};
use asyncresult_conformance::{bounded, loopback};
use asyncresult_core::Socket;

/// How long a test may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Over a connection made with `F`'s adapter, 2000 four-byte records (`encode(i)`),
/// each received whole before the next is sent: from the client to the server, or
/// from the server to the client if `server_sends`.
async fn exchange<F: Flavor>(server_sends: bool, encode: fn(u32) -> [u8; 4]) {
    let l = Arc::new(F::bind(loopback()).await.unwrap());
    let c = F::connect(F::listener_socket(&l).local_addr().unwrap())
        .await
        .unwrap();
    let s = F::accept(Arc::clone(&l)).await.unwrap();
    let (from, to) = if server_sends { (&s, &c) } else { (&c, &s) };
    for i in 0..2000u32 {
        from.send(encode(i).to_vec()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            let (n, b) = to.receive(Vec::with_capacity(4 - got.len())).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b);
        }
        assert_eq!(got, encode(i));
    }
}

#[test]
fn tokio_and_smol_run_side_by_side_on_one_engine() {
    bounded(LIMIT, "hung", || {
        let tokio_side = thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(exchange::<TokioFlavor>(false, u32::to_le_bytes));
        });
        let smol_side = thread::spawn(|| {
            smol::block_on(exchange::<SmolFlavor>(true, u32::to_be_bytes));
        });
        tokio_side.join().unwrap();
        smol_side.join().unwrap();
    });
}

#[test]
fn a_socket_made_under_tokio_is_handed_to_smol_and_back() {
    bounded(LIMIT, "hung", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Made under tokio.
        let (client, server): (Socket, Socket) = rt.block_on(async {
            let l = asyncresult_tokio::TcpListener::bind(loopback())
                .await
                .unwrap();
            let c = asyncresult_tokio::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap();
            let (s, _) = l.accept().await.unwrap();
            c.send(b"from tokio").await.unwrap();
            (c.into_inner(), s.into_inner())
        });
        // Used under smol, while the tokio runtime is still alive.
        let server = smol::block_on(async move {
            let s = asyncresult_smol::TcpStream::from(server);
            let (n, buf) = s.receive(Vec::with_capacity(64)).await.unwrap();
            assert_eq!(&buf[..n], b"from tokio");
            s.send(b"from smol").await.unwrap();
            s.into_inner()
        });
        // And back under tokio, with the same sockets.
        rt.block_on(async move {
            let c = asyncresult_tokio::TcpStream::from(client);
            let (n, buf) = c.receive(Vec::with_capacity(64)).await.unwrap();
            assert_eq!(&buf[..n], b"from smol");
            let s = asyncresult_tokio::TcpStream::from(server);
            // The receive is polled first and must wait, so this runtime starts its
            // driver (the exchanges above may all have completed synchronously).
            let (received, sent) =
                tokio::join!(s.receive(Vec::with_capacity(64)), c.send(b"round trip"));
            sent.unwrap();
            let (n, buf) = received.unwrap();
            assert_eq!(&buf[..n], b"round trip");
        });
        // The callback world sees the same engine: begin/end on a socket of either.
        let stats = asyncresult_core::driver::engine_stats().unwrap();
        assert!(
            stats.drivers >= 1,
            "a runtime drives the shared engine: {stats:?}"
        );
    });
}
