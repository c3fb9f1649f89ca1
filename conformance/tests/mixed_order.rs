//! The order of §2 across the two styles: receive futures of the tokio and smol
//! adapters mixed with `begin_receive`s on one socket run in the order they were
//! started (a future at its first poll). Futures waiting side by side race for the
//! data among themselves, as two reads of tokio's or async-io's sockets do (see
//! `ReadinessFuture`), so consecutive futures take their units in either order; every
//! `begin_receive` takes exactly its own. One check, run through both adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use asyncresult_conformance::{bounded, loopback, tokio_runtime};
use asyncresult_core::{AsyncResult, Error, Socket, SocketFlags};
use futures::io::AsyncWriteExt as _;
use tokio::io::AsyncWriteExt as _;

/// How many receives each mix starts.
const COUNT: u8 = 64;

/// One receive operation of [`receive_in_start_order`]'s mix: a future (polled once,
/// so started) or a `begin_receive`.
enum Started<F> {
    Future(Pin<Box<F>>),
    Begun(AsyncResult<(usize, Vec<u8>)>),
}

/// Starts `count` one-byte (or one-datagram) receives on `socket` in a pseudo-random
/// mix (from `seed`) of receive futures (`future`) and `begin_receive`s, then has
/// `send` deliver units `0..count`, one at a time, and checks that the `i`-th receive
/// started got unit `i` (order, §2), a run of consecutive futures its units in any
/// order among them (they race).
async fn receive_in_start_order<F, S>(
    socket: &Socket,
    count: u8,
    seed: u32,
    mut future: impl FnMut() -> F,
    send: impl FnOnce() -> S,
) where
    F: Future<Output = Result<(usize, Vec<u8>), Error>>,
    S: Future<Output = ()>,
{
    let mut seed = seed;
    let mut started = Vec::new();
    let mut is_future = Vec::new();
    let mut futures = 0;
    for _ in 0..count {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if seed >> 31 == 1 {
            let mut f = Box::pin(future());
            assert!(futures::poll!(f.as_mut()).is_pending(), "nothing sent yet");
            started.push(Started::Future(f));
            is_future.push(true);
            futures += 1;
        } else {
            let ar = socket
                .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
                .unwrap();
            started.push(Started::Begun(ar));
            is_future.push(false);
        }
    }
    assert!(futures > 0 && futures < count, "a mix of both styles");
    send().await;
    let results = futures::future::join_all(started.into_iter().map(|op| async move {
        match op {
            Started::Future(f) => f.await,
            Started::Begun(ar) => {
                std::future::poll_fn(|cx| ar.poll_completed(cx)).await;
                socket.end_receive(&ar)
            }
        }
    }))
    .await;
    let units: Vec<usize> = results
        .into_iter()
        .map(|result| {
            let (n, buf) = result.unwrap();
            assert_eq!(n, 1);
            usize::from(buf[0])
        })
        .collect();
    let mut i = 0;
    while i < units.len() {
        // A begun receive alone, or a run of consecutive futures.
        let end = if is_future[i] {
            (i..units.len())
                .find(|&j| !is_future[j])
                .unwrap_or(units.len())
        } else {
            i + 1
        };
        let mut got = units[i..end].to_vec();
        got.sort_unstable();
        assert_eq!(
            got,
            (i..end).collect::<Vec<_>>(),
            "the receives started {i}th to {}th (futures: {}) got units {:?}",
            end - 1,
            is_future[i],
            &units[i..end]
        );
        i = end;
    }
}

/// tokio, current-thread: receive futures and `begin_receive`s mixed on one stream
/// take the bytes in the order they were started, whichever style each is.
#[test]
fn tokio_stream_receives_take_bytes_in_start_order() {
    use asyncresult_tokio::{TcpListener, TcpStream};
    bounded(Duration::from_secs(30), "test hung", || {
        tokio_runtime(false).unwrap().block_on(async {
            let listener = TcpListener::bind(loopback()).await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let socket = client.socket().clone();
            receive_in_start_order(
                &socket,
                COUNT,
                0x9E37_79B9,
                || client.receive(Vec::with_capacity(1)),
                || async move {
                    for unit in 0..COUNT {
                        server.write_all(&[unit]).await.unwrap();
                    }
                },
            )
            .await;
        });
    });
}

/// tokio, multi-thread: the same for datagrams.
#[test]
fn tokio_datagram_receives_take_datagrams_in_start_order() {
    use asyncresult_tokio::UdpSocket;
    bounded(Duration::from_secs(30), "test hung", || {
        tokio_runtime(true).unwrap().block_on(async {
            let receiver = UdpSocket::bind(loopback()).await.unwrap();
            let sender = UdpSocket::bind(loopback()).await.unwrap();
            let to = receiver.local_addr().unwrap();
            let socket = receiver.socket().clone();
            receive_in_start_order(
                &socket,
                COUNT,
                0x9E37_79B9,
                || receiver.receive(Vec::with_capacity(1)),
                || async move {
                    for unit in 0..COUNT {
                        sender.send_to(vec![unit], to).await.unwrap();
                    }
                },
            )
            .await;
        });
    });
}

/// smol: the same on a stream, under `smol::block_on`.
#[test]
fn smol_stream_receives_take_bytes_in_start_order() {
    use asyncresult_smol::{TcpListener, TcpStream};
    bounded(Duration::from_secs(30), "test hung", || {
        smol::block_on(async {
            let listener = TcpListener::bind(loopback()).await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let socket = client.socket().clone();
            receive_in_start_order(
                &socket,
                COUNT,
                0x2545_F491,
                || client.receive(Vec::with_capacity(1)),
                || async move {
                    for unit in 0..COUNT {
                        server.write_all(&[unit]).await.unwrap();
                    }
                },
            )
            .await;
        });
    });
}
