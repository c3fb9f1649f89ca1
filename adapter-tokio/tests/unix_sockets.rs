//! Unix domain sockets adopted into the core and wrapped in the tokio adapter's types:
//! a Unix stream as a `TcpStream` (its I/O traits, halves), a Unix datagram socket as
//! a `UdpSocket`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use asyncresult_tokio::{Domain, Error, Socket, TcpStream, Type, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test hung")
}

fn pair(ty: Type) -> (Socket, Socket) {
    let (a, b) = socket2::Socket::pair(Domain::UNIX, ty, None).unwrap();
    (Socket::try_from(a).unwrap(), Socket::try_from(b).unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_stream_as_tcp_stream_io_traits() {
    bounded(async {
        let (a, b) = pair(Type::STREAM);
        let (mut a, mut b) = (TcpStream::from(a), TcpStream::from(b));
        assert!(a.peer_addr().is_err() && a.local_addr().is_err());
        let data = pattern(4 << 20, 1);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
            a
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        let a = writer.await.unwrap();
        assert_eq!(
            b.read(&mut [0u8; 8]).await.unwrap(),
            0,
            "end of stream stays"
        );
        // Reads still work on the half-closed side: b -> a.
        b.write_all(b"back").await.unwrap();
        let (n, buf) = a.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn unix_stream_many_small_writes_read_exact() {
    bounded(async {
        let (a, b) = pair(Type::STREAM);
        let (a, b) = (TcpStream::from(a), TcpStream::from(b));
        let (mut r, _w) = b.into_split();
        const N: u32 = 20_000;
        let writer = tokio::spawn(async move {
            let (_r, mut w) = a.into_split();
            for i in 0..N {
                w.write_all(&i.to_le_bytes()).await.unwrap();
            }
            w.flush().await.unwrap();
            drop(w); // shuts the write side down behind the queued bytes
        });
        for i in 0..N {
            let mut four = [0u8; 4];
            r.read_exact(&mut four).await.unwrap();
            assert_eq!(u32::from_le_bytes(four), i);
        }
        writer.await.unwrap();
        assert_eq!(r.read(&mut [0u8; 4]).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn unix_datagram_as_udp_socket() {
    bounded(async {
        let (a, b) = pair(Type::DGRAM);
        let (a, b) = (UdpSocket::from(a), UdpSocket::from(b));
        assert_eq!(a.send(b"one".to_vec()).await.unwrap(), 3);
        let r = b.receive_from(Vec::with_capacity(8)).await;
        assert_eq!(
            r.err().and_then(|e| e.error_code()),
            Some(libc::EAFNOSUPPORT)
        );
        let (n, buf) = b.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"one", "receive_from took nothing");
        let r = a
            .send_to(b"x".to_vec(), "127.0.0.1:9".parse().unwrap())
            .await;
        assert!(matches!(r, Err(Error::Socket(_))), "{r:?}");
        assert!(a.local_addr().is_err());
        // Peer gone: a send fails (ECONNREFUSED), it does not hang. The descriptor
        // closes when the last reference to the socket goes, which an engine thread
        // serving an event of it may hold a moment longer on a loaded machine (a CI-like
        // run beside another suite sent one datagram into that moment): such sends still
        // reach its queue, and once the queue is full (`net.unix.max_dgram_qlen`, 10 by
        // default) a send waits, until the close refuses it.
        drop(b);
        let mut delivered = 0;
        let refused = loop {
            match a.send(b"late".to_vec()).await {
                Ok(n) => {
                    assert_eq!(n, 4);
                    delivered += 1;
                    assert!(delivered < 1_000, "sends to a dropped peer kept succeeding");
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, Error::Socket(_)), "{refused:?}");
    })
    .await;
}
