//! One engine for every runtime: a tokio program and a smol program share it in one
//! process, concurrently, and a socket made under one is handed to the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use asyncresult_core::Socket;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => handle.join().expect("body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung"),
    }
}

#[test]
fn tokio_and_smol_run_side_by_side_on_one_engine() {
    bounded(|| {
        let tokio_side = thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let l = asyncresult_tokio::TcpListener::bind(loopback())
                    .await
                    .unwrap();
                let c = asyncresult_tokio::TcpStream::connect(l.local_addr().unwrap())
                    .await
                    .unwrap();
                let (s, _) = l.accept().await.unwrap();
                for i in 0..2000u32 {
                    c.send(i.to_le_bytes().to_vec()).await.unwrap();
                    let mut got = Vec::new();
                    while got.len() < 4 {
                        let (n, b) = s.receive(Vec::with_capacity(4 - got.len())).await.unwrap();
                        assert!(n > 0);
                        got.extend_from_slice(&b);
                    }
                    assert_eq!(got, i.to_le_bytes());
                }
            });
        });
        let smol_side = thread::spawn(|| {
            smol::block_on(async {
                let l = asyncresult_smol::TcpListener::bind(loopback())
                    .await
                    .unwrap();
                let c = asyncresult_smol::TcpStream::connect(l.local_addr().unwrap())
                    .await
                    .unwrap();
                let (s, _) = l.accept().await.unwrap();
                for i in 0..2000u32 {
                    s.send(i.to_be_bytes().to_vec()).await.unwrap();
                    let mut got = Vec::new();
                    while got.len() < 4 {
                        let (n, b) = c.receive(Vec::with_capacity(4 - got.len())).await.unwrap();
                        assert!(n > 0);
                        got.extend_from_slice(&b);
                    }
                    assert_eq!(got, i.to_be_bytes());
                }
            });
        });
        tokio_side.join().unwrap();
        smol_side.join().unwrap();
    });
}

#[test]
fn a_socket_made_under_tokio_is_handed_to_smol_and_back() {
    bounded(|| {
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
            c.send(b"round trip").await.unwrap();
            let (n, buf) = s.receive(Vec::with_capacity(64)).await.unwrap();
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
