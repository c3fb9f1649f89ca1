//! Every workload, written once for the async contenders over [`Stack`], [`Conn`]
//! and [`Exec`]. Both ends of every connection are tasks of the same executor; the
//! clock starts once the connections are set up and stops when the last receiver has
//! verified its last byte.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_lite::future::zip;

use super::failed;
use super::stack::{Conn, Exec, Stack};
use crate::alloc;
use crate::loopback;
use crate::payload::{self, Pattern, Verifier};
use crate::scale::Scale;
use crate::workload::{
    bulk_values, fan_in_values, latency_values, overhead_values, Metric, Values,
};

/// A connected (client, server) pair of stack `S`, with its listener.
async fn pair<S: Stack>() -> Result<(S::Listener, S::Conn, S::Conn), String> {
    let (listener, addr) = S::listen().await.map_err(failed("listen"))?;
    let client = S::connect(addr).await.map_err(failed("connect"))?;
    let server = S::accept(&listener).await.map_err(failed("accept"))?;
    Ok((listener, client, server))
}

/// Reads the pattern for `seed` until `total` bytes have arrived; returns the stream
/// and when its last byte arrived.
async fn receive_all<C: Conn>(
    mut conn: C,
    seed: u64,
    total: u64,
    buf_len: usize,
) -> Result<(C, Instant), String> {
    let mut verifier = Verifier::new(seed, total);
    let mut buf = vec![0u8; buf_len];
    while !verifier.done() {
        let n = conn.read(&mut buf).await.map_err(failed("read"))?;
        verifier.take(&buf[..n])?;
    }
    Ok((conn, Instant::now()))
}

/// Sends `count` chunks of `pattern`; returns the stream (kept open until the
/// receiver is done).
async fn send_all<C: Conn>(mut conn: C, pattern: Pattern, count: u64) -> Result<C, String> {
    for j in 0..count {
        conn.write_static(pattern.chunk(j))
            .await
            .map_err(failed("send"))?;
    }
    Ok(conn)
}

/// Bulk transfer: `scale.bulk_bytes` in `chunk`-byte sends → GiB/s.
pub fn bulk<S: Stack, E: Exec>(exec: &E, scale: &Scale, chunk: usize) -> Result<Values, String> {
    let total = scale.bulk_bytes;
    let ex = exec.clone();
    exec.block_on(async move {
        let (_listener, client, server) = pair::<S>().await?;
        let pattern = Pattern::new(chunk, 1);
        let start = Instant::now();
        let receiver = ex.spawn(receive_all(server, 1, total, Scale::BULK_READ));
        let sender = ex.spawn(send_all(client, pattern, total / chunk as u64));
        let (received, sent) = zip(receiver, sender).await;
        let _client = sent?;
        let (_server, end) = received?;
        Ok(bulk_values(total, end.duration_since(start)))
    })
}

/// Reads exactly `out.len()` bytes, through `scratch` (made as `vec![0; out.len()]`).
async fn read_exact<C: Conn>(
    conn: &mut C,
    scratch: &mut Vec<u8>,
    out: &mut [u8],
) -> Result<(), String> {
    let mut filled = 0;
    while filled < out.len() {
        let n = conn.read(scratch).await.map_err(failed("read"))?;
        if n == 0 {
            return Err("the peer closed mid-message".into());
        }
        let end = filled + n;
        if end > out.len() {
            return Err(format!("read {end} bytes of a {}-byte message", out.len()));
        }
        out[filled..end].copy_from_slice(&scratch[..n]);
        filled = end;
    }
    Ok(())
}

/// Ping-pong: 64-byte requests echoed back, one at a time → p50 and p99 in µs.
pub fn ping_pong<S: Stack, E: Exec>(exec: &E, scale: &Scale) -> Result<Values, String> {
    let warm = scale.warmup_round_trips as u64;
    let measured = scale.round_trips as u64;
    let ex = exec.clone();
    exec.block_on(async move {
        let (_listener, mut client, mut server) = pair::<S>().await?;
        client.set_nodelay().map_err(failed("nodelay"))?;
        server.set_nodelay().map_err(failed("nodelay"))?;
        let echo = ex.spawn(async move {
            let mut scratch = vec![0u8; Scale::PING];
            let mut request = [0u8; Scale::PING];
            for _ in 0..warm + measured {
                read_exact(&mut server, &mut scratch, &mut request).await?;
                server
                    .write_vec(request.to_vec())
                    .await
                    .map_err(failed("echo"))?;
            }
            Ok::<_, String>(server)
        });
        let ping = ex.spawn(async move {
            let mut nanos = Vec::with_capacity(measured as usize);
            let mut scratch = vec![0u8; Scale::PING];
            let mut reply = [0u8; Scale::PING];
            for i in 0..warm + measured {
                let request = payload::ping(i);
                let start = Instant::now();
                client
                    .write_vec(request.to_vec())
                    .await
                    .map_err(failed("send"))?;
                read_exact(&mut client, &mut scratch, &mut reply).await?;
                let round_trip = start.elapsed();
                payload::check_echo(i, &reply)?;
                if i >= warm {
                    nanos.push(round_trip.as_nanos() as u64);
                }
            }
            Ok::<_, String>((client, nanos))
        });
        let (pinged, echoed) = zip(ping, echo).await;
        let (_client, nanos) = pinged?;
        let _server = echoed?;
        latency_values(nanos)
    })
}

/// Fan-in: many connections, each sending 1 KiB messages, all received by tasks of
/// the same executor → messages/s. Nagle is off: with it on, the result depends on
/// which connections happen to stall on a 40 ms delayed ACK, not on the stack.
pub fn fan_in<S: Stack, E: Exec>(exec: &E, scale: &Scale) -> Result<Values, String> {
    let conns = scale.fanin_conns;
    let msgs = scale.fanin_msgs as u64;
    let per_conn = msgs * Scale::FANIN_MESSAGE as u64;
    let ex = exec.clone();
    exec.block_on(async move {
        let (listener, addr) = S::listen().await.map_err(failed("listen"))?;
        let mut streams = Vec::with_capacity(conns);
        for i in 0..conns {
            let client = S::connect(addr).await.map_err(failed("connect"))?;
            let server = S::accept(&listener).await.map_err(failed("accept"))?;
            client.set_nodelay().map_err(failed("nodelay"))?;
            server.set_nodelay().map_err(failed("nodelay"))?;
            let pattern = Pattern::new(Scale::FANIN_MESSAGE, i as u64);
            streams.push((client, server, pattern));
        }
        let start = Instant::now();
        let mut receivers = Vec::with_capacity(conns);
        let mut senders = Vec::with_capacity(conns);
        for (i, (client, server, pattern)) in streams.into_iter().enumerate() {
            receivers.push(ex.spawn(receive_all(server, i as u64, per_conn, Scale::FANIN_READ)));
            senders.push(ex.spawn(send_all(client, pattern, msgs)));
        }
        let mut end = start;
        let mut keep = Vec::with_capacity(conns * 2);
        for receiver in receivers {
            let (server, done) = receiver.await?;
            end = end.max(done);
            keep.push(server);
        }
        for sender in senders {
            keep.push(sender.await?);
        }
        Ok(fan_in_values(conns, msgs, end.duration_since(start)))
    })
}

/// Begin/end overhead: 16-byte sends that complete at once (a std thread drains the
/// peer), on one task → sends/s. Nagle stays on, for every contender: each send then
/// only appends to the socket's queue, so the stack's own cost per send weighs most.
pub fn overhead<S: Stack, E: Exec>(exec: &E, scale: &Scale) -> Result<Values, String> {
    let sends = scale.overhead_sends as u64;
    let (addr, sink, pattern) = loopback::sink(sends).map_err(failed("sink"))?;
    let ex = exec.clone();
    let (conn, elapsed) = exec.block_on(async move {
        let mut conn = S::connect(addr).await.map_err(failed("connect"))?;
        ex.spawn(async move {
            let start = Instant::now();
            for j in 0..sends {
                conn.write_static(pattern.chunk(j))
                    .await
                    .map_err(failed("send"))?;
            }
            Ok::<_, String>((conn, start.elapsed()))
        })
        .await
    })?;
    loopback::join_sink(sink)?;
    drop(conn);
    Ok(overhead_values(sends, elapsed))
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    future.poll(&mut cx)
}

/// Memory: heap bytes to register an idle socket, and to hold one pending receive
/// on it (a boxed future, polled once; its 64-byte buffer is allocated beforehand and
/// not counted) on half of the sockets, and one pending `AsyncRead` read into a
/// borrowed 64-byte slice (the same call on every stack) on the other half. The halves
/// are apart so that neither wait finds what the other left (a socket's spare
/// readiness operation, say).
pub fn memory<S: Stack, E: Exec>(exec: &E, scale: &Scale) -> Result<Values, String> {
    let mut streams = loopback::sockets(scale.memory_pairs).map_err(failed("pairs"))?;
    let (warm_client, warm_server) = loopback::pair().map_err(failed("pair"))?;
    let count = streams.len();
    exec.block_on(async move {
        // One pending receive and one pending read before measuring: start drivers and
        // lazy statics.
        let mut warm = S::adopt(warm_client).map_err(failed("adopt"))?;
        let mut warm_buf = vec![0u8; Scale::MEMORY_READ];
        let mut warm_receive = pin!(warm.read(&mut warm_buf));
        let mut warm_other = S::adopt(warm_server).map_err(failed("adopt"))?;
        let mut warm_slice = vec![0u8; Scale::MEMORY_READ];
        let mut warm_read = pin!(warm_other.read_slice(&mut warm_slice));
        if poll_once(warm_receive.as_mut()).is_ready() || poll_once(warm_read.as_mut()).is_ready() {
            return Err("a receive on an idle socket completed".to_string());
        }

        let mut bufs: Vec<Vec<u8>> = (0..count).map(|_| vec![0u8; Scale::MEMORY_READ]).collect();
        let mut conns = Vec::with_capacity(count);
        let mut receives = Vec::with_capacity(count / 2);
        let mut reads = Vec::with_capacity(count - count / 2);
        let mut future_bytes = 0;

        let before = alloc::live();
        // Drained, not consumed: the vector's own buffer is freed after measuring.
        for stream in streams.drain(..) {
            conns.push(S::adopt(stream).map_err(failed("adopt"))?);
        }
        let registered = alloc::live();
        let (receiving, reading) = conns.split_at_mut(count / 2);
        let (receive_bufs, slices) = bufs.split_at_mut(count / 2);
        for (conn, buf) in receiving.iter_mut().zip(receive_bufs.iter_mut()) {
            let mut receive = Box::pin(conn.read(buf));
            future_bytes = std::mem::size_of_val(&*receive);
            if poll_once(receive.as_mut()).is_ready() {
                return Err("a receive on an idle socket completed".to_string());
            }
            receives.push(receive);
        }
        let receiving_live = alloc::live();
        for (conn, slice) in reading.iter_mut().zip(slices.iter_mut()) {
            let mut read = Box::pin(conn.read_slice(&mut slice[..]));
            if poll_once(read.as_mut()).is_ready() {
                return Err("a read on an idle socket completed".to_string());
            }
            reads.push(read);
        }
        let reading_live = alloc::live();

        let per = |bytes: isize, count: usize| bytes as f64 / count as f64;
        Ok(Values::default()
            .with(
                Metric::BytesPerOp,
                per(receiving_live - registered, receives.len()),
            )
            .with(
                Metric::BytesPerRead,
                per(reading_live - receiving_live, reads.len()),
            )
            .with(Metric::BytesPerSocket, per(registered - before, count))
            .with(Metric::FutureBytes, future_bytes as f64))
    })
}
