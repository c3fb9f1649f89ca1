//! The smol adapter in the futures-io world: its I/O traits with `futures::io`
//! utilities, `&TcpStream` I/O, cancel safety, timeouts, executors, Send futures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use asyncresult_smol::{Error, TcpListener, TcpStream, UdpSocket};
use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair, pattern};

/// Runs a test body under `smol::block_on` with a hard time limit.
fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(async {
        let limit = async_io::Timer::after(Duration::from_secs(30));
        match futures::future::select(Box::pin(f), Box::pin(limit)).await {
            futures::future::Either::Left((value, _)) => value,
            futures::future::Either::Right(_) => panic!("test hung"),
        }
    })
}

#[test]
fn copy_write_all_and_read_to_end_work_unchanged() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let data = pattern(3 << 20, 7);
        let to_send = data.clone();
        let writer = smol::spawn(async move {
            client.write_all(&to_send).await.unwrap();
            client.close().await.unwrap();
            client
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        writer.await;

        // futures::io::copy between two of ours, through &TcpStream.
        let (a, b) = pair().await;
        let (c, d) = pair().await;
        let payload = pattern(1 << 20, 9);
        let p2 = payload.clone();
        smol::spawn(async move {
            (&a).write_all(&p2).await.unwrap();
            (&a).close().await.unwrap();
        })
        .detach();
        let relay = smol::spawn(async move {
            let n = futures::io::copy(&b, &mut &c).await.unwrap();
            (&c).close().await.unwrap();
            n
        });
        let mut out = Vec::new();
        (&d).read_to_end(&mut out).await.unwrap();
        assert_eq!(relay.await, payload.len() as u64);
        assert_eq!(out, payload);
    });
}

#[test]
fn reads_are_cancel_safe_under_timeouts() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let data = pattern(200_000, 3);
        let to_send = data.clone();
        smol::spawn(async move {
            for chunk in to_send.chunks(5_000) {
                client.write_all(chunk).await.unwrap();
                async_io::Timer::after(Duration::from_millis(1)).await;
            }
            client.close().await.unwrap();
        })
        .detach();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut timeouts = 0;
        loop {
            let read = server.read(&mut buf);
            let timer = async_io::Timer::after(Duration::from_micros(300));
            match futures::future::select(read, timer).await {
                futures::future::Either::Left((Ok(0), _)) => break,
                futures::future::Either::Left((Ok(n), _)) => got.extend_from_slice(&buf[..n]),
                futures::future::Either::Left((Err(e), _)) => panic!("{e}"),
                futures::future::Either::Right(_) => timeouts += 1,
            }
        }
        assert_eq!(got, data, "bytes lost or reordered across dropped reads");
        assert!(timeouts > 0, "the test did not exercise a dropped read");
    });
}

#[test]
fn close_shuts_the_write_half_and_reads_keep_working() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"request").await.unwrap();
        client.close().await.unwrap();
        let mut req = Vec::new();
        server.read_to_end(&mut req).await.unwrap();
        assert_eq!(req, b"request");
        server.write_all(b"response").await.unwrap();
        let mut resp = [0u8; 8];
        client.read_exact(&mut resp).await.unwrap();
        assert_eq!(&resp, b"response");
    });
}

/// A write left waiting for room (the peer reads nothing) accepted nothing, so it
/// holds no flush or close up: with no send queued both are ready at once, as with
/// async-io's stream, and the peer then reads every accepted byte and end of stream.
#[test]
fn a_write_left_waiting_holds_up_no_flush_or_close() {
    bounded(async {
        let (mut client, mut server) = pair().await;
        let chunk = vec![0xA5u8; 256 << 10];
        let mut accepted = 0;
        loop {
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::pin::Pin::new(&mut client).poll_write(cx, &chunk))
            })
            .await;
            match polled {
                std::task::Poll::Ready(written) => accepted += written.unwrap(),
                std::task::Poll::Pending => break,
            }
        }
        let within = |what: &'static str| {
            let limit = async_io::Timer::after(Duration::from_secs(5));
            async move {
                limit.await;
                panic!("{what} waited for the peer to read")
            }
        };
        futures::future::select(Box::pin(client.flush()), Box::pin(within("flush")))
            .await
            .factor_first()
            .0
            .unwrap();
        futures::future::select(Box::pin(client.close()), Box::pin(within("close")))
            .await
            .factor_first()
            .0
            .unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), accepted);
    });
}

#[test]
fn works_on_a_multi_threaded_executor() {
    let ex = Arc::new(async_executor::Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let ex = ex.clone();
            let stopped = stopped.clone();
            std::thread::spawn(move || smol::block_on(ex.run(stopped.recv())))
        })
        .collect();
    let result = bounded(ex.spawn(async {
        let (client, server) = pair().await;
        let echo = smol::spawn(async move {
            loop {
                let (n, buf) = server.receive(Vec::with_capacity(4096)).await.unwrap();
                if n == 0 {
                    return;
                }
                server.send(buf).await.unwrap();
            }
        });
        for round in 0..200usize {
            let req = pattern(1 + round * 13 % 900, round as u8);
            client.send(req.clone()).await.unwrap();
            let mut got = Vec::new();
            while got.len() < req.len() {
                let (n, buf) = client.receive(Vec::with_capacity(4096)).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, req);
        }
        client.socket().shutdown(std::net::Shutdown::Write).unwrap();
        echo.await;
        true
    }));
    assert!(result);
    drop(stop);
    for t in threads {
        let _ = t.join().unwrap();
    }
}

#[test]
fn timeouts_cancel_the_core_operation() {
    bounded(async {
        let (client, server) = pair().await;
        let r = server
            .receive_timeout(Vec::with_capacity(16), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
        client.send(b"later").await.unwrap();
        let (n, buf) = server.receive(Vec::with_capacity(16)).await.unwrap();
        assert_eq!(&buf[..n], b"later");

        let listener = TcpListener::bind(loopback()).await.unwrap();
        let r = listener.accept_timeout(Duration::from_millis(50)).await;
        assert!(matches!(r, Err(Error::Aborted)));

        let udp = UdpSocket::bind(loopback()).await.unwrap();
        let r = udp
            .receive_from_timeout(Vec::with_capacity(16), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::Aborted)));
    });
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    bounded(async {
        let (client, _server) = pair().await;
        assert_send(&client.send(b"x"));
        assert_send(&client.receive(Vec::with_capacity(1)));
        assert_send(&TcpStream::connect(loopback()));
        let udp = UdpSocket::bind(loopback()).await.unwrap();
        assert_send(&udp.receive_from(Vec::with_capacity(1)));
    });
}

/// Awaits `fut`, telling `pending` the first time a poll of it returns `Pending`: by
/// then the future waits on the stream's shared readiness.
async fn signal_first_pending<F: std::future::Future>(
    fut: F,
    pending: smol::channel::Sender<()>,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut told = false;
    std::future::poll_fn(|cx| {
        let polled = fut.as_mut().poll(cx);
        if polled.is_pending() && !told {
            told = true;
            let _ = pending.try_send(());
        }
        polled
    })
    .await
}

/// Two tasks reading one `&TcpStream` at once: the second one's wait takes the
/// stream's readiness over, and the first must still be woken, not left waiting.
#[test]
fn two_tasks_reading_one_stream_are_both_served() {
    bounded(async {
        let (client, server) = pair().await;
        let client = Arc::new(client);
        let (pending, waiting) = smol::channel::unbounded();
        let (done, results) = smol::channel::unbounded();
        let reader = |client: Arc<TcpStream>| {
            let (pending, done) = (pending.clone(), done.clone());
            smol::spawn(async move {
                let mut byte = [0u8; 1];
                let mut stream: &TcpStream = &client;
                let n = signal_first_pending(stream.read(&mut byte), pending)
                    .await
                    .unwrap();
                done.send((n, byte[0])).await.unwrap();
            })
        };
        let first = reader(client.clone());
        waiting.recv().await.unwrap();
        let second = reader(client.clone());
        waiting.recv().await.unwrap();
        // Both wait; one byte serves one of them, the next byte the other.
        server.send(&b"a"[..]).await.unwrap();
        let one = results.recv().await.unwrap();
        server.send(&b"b"[..]).await.unwrap();
        let other = results.recv().await.unwrap();
        let mut got = [one, other];
        got.sort();
        assert_eq!(got, [(1, b'a'), (1, b'b')]);
        first.await;
        second.await;
    });
}

/// A writer blocked on a full send buffer and a flusher on the same `&TcpStream`: the
/// waiting write accepted nothing and no send is queued, so the flush finishes at once
/// (it has its own wait, not the writer's), and the writer still finishes once the
/// peer reads.
#[test]
fn a_writer_and_a_flusher_on_one_stream_both_finish() {
    bounded(async {
        let (client, server) = pair().await;
        let client = Arc::new(client);
        let data = pattern(8 << 20, 3);
        let (pending, waiting) = smol::channel::unbounded();
        let writer = {
            let (client, data) = (client.clone(), data.clone());
            smol::spawn(async move {
                let mut stream: &TcpStream = &client;
                signal_first_pending(stream.write_all(&data), pending)
                    .await
                    .unwrap();
            })
        };
        waiting.recv().await.unwrap();
        let mut stream: &TcpStream = &client;
        stream.flush().await.unwrap();
        // The peer reads everything.
        let mut got = Vec::with_capacity(data.len());
        while got.len() < data.len() {
            let (n, buf) = server.receive(Vec::with_capacity(1 << 16)).await.unwrap();
            assert!(n > 0, "end of stream after {} bytes", got.len());
            got.extend_from_slice(&buf);
        }
        writer.await;
        assert_eq!(got, data);
    });
}

/// A send future dropped while its bytes wait for room, then the stream dropped: the
/// bytes still go out whole, and only then does the peer see end of stream (not a
/// reset that throws away what the kernel held).
#[test]
fn dropping_the_stream_closes_it_behind_queued_sends() {
    bounded(async {
        let (client, mut server) = pair().await;
        let data = pattern(16 << 20, 9);
        let mut send = Box::pin(client.send(data.clone()));
        // The peer reads nothing yet, so 16 MiB cannot all fit in the kernel.
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(send.as_mut(), cx))
        })
        .await;
        assert!(polled.is_pending(), "send still queued");
        drop(send);
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes arrived whole and in order");
    });
}

/// API.md's methods are the adapter types' own (not only reached through `Deref`), so
/// they can be named by path.
#[test]
fn the_contracts_methods_are_the_types_own() {
    let _: fn(&TcpStream, bool) -> Result<(), Error> = TcpStream::set_nodelay;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::local_addr;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::peer_addr;
    let _: fn(&TcpListener) -> Result<SocketAddr, Error> = TcpListener::local_addr;
    let _: fn(&UdpSocket) -> Result<SocketAddr, Error> = UdpSocket::local_addr;
    #[allow(dead_code)]
    async fn by_path(s: &TcpStream, u: &UdpSocket, to: SocketAddr) -> Result<(), Error> {
        let _: usize = TcpStream::send(s, vec![1u8]).await?;
        let _: (usize, Vec<u8>) = TcpStream::receive(s, Vec::new()).await?;
        UdpSocket::connect(u, to).await?;
        let _: usize = UdpSocket::send(u, vec![1u8]).await?;
        let _: (usize, Vec<u8>) = UdpSocket::receive(u, Vec::new()).await?;
        let _: usize = UdpSocket::send_to(u, vec![1u8], to).await?;
        let _: (usize, Vec<u8>, SocketAddr) = UdpSocket::receive_from(u, Vec::new()).await?;
        Ok(())
    }
}

/// A receive future polled once and kept, not polled again, holds up no other reader:
/// a second receive future and a `&TcpStream` read, each waiting before its byte
/// arrives, are woken by it (futures race, as with async-io's own sockets).
#[test]
fn a_kept_but_unpolled_receive_does_not_hold_up_other_readers() {
    bounded(async {
        let (client, mut server) = pair().await;
        let mut kept = Box::pin(client.receive(Vec::with_capacity(1)));
        assert!(
            futures::poll!(kept.as_mut()).is_pending(),
            "nothing sent yet"
        );
        let mut second = Box::pin(client.receive(Vec::with_capacity(1)));
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "nothing sent yet"
        );
        server.write_all(b"a").await.unwrap();
        let (n, buf) = second.await.unwrap();
        assert_eq!(&buf[..n], b"a");
        let mut got = [0u8; 1];
        let mut reader = &client;
        let mut read = Box::pin(reader.read(&mut got));
        assert!(
            futures::poll!(read.as_mut()).is_pending(),
            "nothing sent yet"
        );
        server.write_all(b"b").await.unwrap();
        assert_eq!(read.await.unwrap(), 1);
        assert_eq!(&got, b"b");
        drop(kept);
    });
}
