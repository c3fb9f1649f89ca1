//! Unix domain sockets adopted into the core and wrapped in the smol adapter's types:
//! a Unix stream as a `TcpStream` (its futures-io traits, `&TcpStream`), a Unix
//! datagram socket as a `UdpSocket`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use asyncresult_smol::{Domain, Error, Socket, TcpStream, Type, UdpSocket};
use futures::io::{AsyncReadExt, AsyncWriteExt};

fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(async {
        let limit = async_io::Timer::after(Duration::from_secs(30));
        match futures::future::select(Box::pin(f), Box::pin(limit)).await {
            futures::future::Either::Left((value, _)) => value,
            futures::future::Either::Right(_) => panic!("test hung"),
        }
    })
}

fn pair(ty: Type) -> (Socket, Socket) {
    let (a, b) = socket2::Socket::pair(Domain::UNIX, ty, None).unwrap();
    (Socket::try_from(a).unwrap(), Socket::try_from(b).unwrap())
}

#[test]
fn unix_stream_as_tcp_stream_io_traits() {
    bounded(async {
        let (a, b) = pair(Type::STREAM);
        let (mut a, b) = (TcpStream::from(a), TcpStream::from(b));
        assert!(a.peer_addr().is_err() && a.local_addr().is_err());
        const N: u32 = 20_000;
        let writer = smol::spawn(async move {
            for i in 0..N {
                a.write_all(&i.to_le_bytes()).await.unwrap();
            }
            a.close().await.unwrap();
            a
        });
        let mut r = &b;
        for i in 0..N {
            let mut four = [0u8; 4];
            r.read_exact(&mut four).await.unwrap();
            assert_eq!(u32::from_le_bytes(four), i);
        }
        assert_eq!(r.read(&mut [0u8; 4]).await.unwrap(), 0);
        assert_eq!(
            r.read(&mut [0u8; 4]).await.unwrap(),
            0,
            "end of stream stays"
        );
        let a = writer.await;
        (&b).write_all(b"back").await.unwrap();
        let (n, buf) = a.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn unix_datagram_as_udp_socket() {
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
        drop(b);
        let r = a.send(b"late".to_vec()).await;
        assert!(matches!(r, Err(Error::Socket(_))), "{r:?}");
    });
}
