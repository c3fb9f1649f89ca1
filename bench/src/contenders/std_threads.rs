//! Contender 6: blocking std sockets, one thread per connection end — what a user
//! without any async stack writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::failed;
use crate::loopback;
use crate::payload::{self, Pattern, Verifier};
use crate::scale::Scale;
use crate::workload::{bulk_values, fan_in_values, latency_values, overhead_values, Values};

/// Stack size of the fan-in's threads (thousands of them; they hold little).
const SMALL_STACK: usize = 128 * 1024;

fn spawn<T: Send + 'static>(
    name: &str,
    stack: Option<usize>,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<JoinHandle<Result<T, String>>, String> {
    let mut builder = thread::Builder::new().name(name.into());
    if let Some(size) = stack {
        builder = builder.stack_size(size);
    }
    builder.spawn(f).map_err(failed("spawn"))
}

fn join<T>(handle: JoinHandle<Result<T, String>>) -> Result<T, String> {
    handle.join().map_err(|_| "a thread panicked".to_string())?
}

fn receive_all(
    stream: &mut TcpStream,
    verifier: &mut Verifier,
    buf: &mut [u8],
) -> Result<(), String> {
    while !verifier.done() {
        let n = stream.read(buf).map_err(failed("read"))?;
        verifier.take(&buf[..n])?;
    }
    Ok(())
}

fn send_all(stream: &mut TcpStream, pattern: Pattern, count: u64) -> Result<(), String> {
    for j in 0..count {
        stream
            .write_all(pattern.chunk(j))
            .map_err(failed("write"))?;
    }
    Ok(())
}

/// Bulk transfer: a sender thread, the receiver on this thread.
pub fn bulk(scale: &Scale, chunk: usize) -> Result<Values, String> {
    let total = scale.bulk_bytes;
    let (mut client, mut server) = loopback::pair().map_err(failed("pair"))?;
    let pattern = Pattern::new(chunk, 1);
    let start = Instant::now();
    let sender = spawn("bench-send", None, move || {
        send_all(&mut client, pattern, total / chunk as u64)?;
        Ok(client)
    })?;
    let mut buf = vec![0u8; Scale::BULK_READ];
    receive_all(&mut server, &mut Verifier::new(1, total), &mut buf)?;
    let elapsed = start.elapsed();
    join(sender)?;
    Ok(bulk_values(total, elapsed))
}

/// Ping-pong: an echo thread, the pinging end on this thread.
pub fn ping_pong(scale: &Scale) -> Result<Values, String> {
    let warm = scale.warmup_round_trips as u64;
    let total = warm + scale.round_trips as u64;
    let (mut client, mut server) = loopback::pair().map_err(failed("pair"))?;
    client.set_nodelay(true).map_err(failed("nodelay"))?;
    server.set_nodelay(true).map_err(failed("nodelay"))?;
    let echo = spawn("bench-echo", None, move || {
        let mut request = [0u8; Scale::PING];
        for _ in 0..total {
            server.read_exact(&mut request).map_err(failed("read"))?;
            server.write_all(&request).map_err(failed("echo"))?;
        }
        Ok(server)
    })?;
    let mut nanos = Vec::with_capacity(scale.round_trips);
    let mut reply = [0u8; Scale::PING];
    for i in 0..total {
        let request = payload::ping(i);
        let start = Instant::now();
        client.write_all(&request).map_err(failed("send"))?;
        client.read_exact(&mut reply).map_err(failed("read"))?;
        let round_trip = start.elapsed();
        payload::check_echo(i, &reply)?;
        if i >= warm {
            nanos.push(round_trip.as_nanos() as u64);
        }
    }
    join(echo)?;
    latency_values(nanos)
}

/// Fan-in: a sender thread and a receiver thread per connection, released together
/// by a barrier; Nagle off, as for every contender. The clock starts when the first sender starts (the measuring thread
/// itself may get the CPU back only long after the barrier released everyone).
pub fn fan_in(scale: &Scale) -> Result<Values, String> {
    let conns = scale.fanin_conns;
    let msgs = scale.fanin_msgs as u64;
    let per_conn = msgs * Scale::FANIN_MESSAGE as u64;
    let pairs = loopback::pairs(conns).map_err(failed("pairs"))?;
    let go = Arc::new(Barrier::new(2 * conns + 1));
    let mut receivers = Vec::with_capacity(conns);
    let mut senders = Vec::with_capacity(conns);
    for (i, (mut client, mut server)) in pairs.into_iter().enumerate() {
        client.set_nodelay(true).map_err(failed("nodelay"))?;
        server.set_nodelay(true).map_err(failed("nodelay"))?;
        let pattern = Pattern::new(Scale::FANIN_MESSAGE, i as u64);
        let ready = Arc::clone(&go);
        receivers.push(spawn("bench-recv", Some(SMALL_STACK), move || {
            let mut buf = vec![0u8; Scale::FANIN_READ];
            ready.wait();
            receive_all(
                &mut server,
                &mut Verifier::new(i as u64, per_conn),
                &mut buf,
            )?;
            Ok((server, Instant::now()))
        })?);
        let ready = Arc::clone(&go);
        senders.push(spawn("bench-send", Some(SMALL_STACK), move || {
            ready.wait();
            let started = Instant::now();
            send_all(&mut client, pattern, msgs)?;
            Ok((client, started))
        })?);
    }
    go.wait();
    let mut start: Option<Instant> = None;
    for sender in senders {
        let started = join(sender)?.1;
        start = Some(start.map_or(started, |s| s.min(started)));
    }
    let start = start.ok_or("no senders")?;
    let mut end = start;
    for receiver in receivers {
        end = end.max(join(receiver)?.1);
    }
    Ok(fan_in_values(conns, msgs, end.duration_since(start)))
}

/// Begin/end overhead's baseline: `write_all` of 16 bytes on a blocking socket.
pub fn overhead(scale: &Scale) -> Result<Values, String> {
    let sends = scale.overhead_sends as u64;
    let (addr, sink, pattern) = loopback::sink(sends).map_err(failed("sink"))?;
    let mut stream = TcpStream::connect(addr).map_err(failed("connect"))?;
    let start = Instant::now();
    send_all(&mut stream, pattern, sends)?;
    let elapsed = start.elapsed();
    loopback::join_sink(sink)?;
    Ok(overhead_values(sends, elapsed))
}
