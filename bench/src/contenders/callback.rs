//! Contender 1: the callback adapter, .NET's APM shape on plain threads.
//!
//! Written the way the seed writes it: every receive is a `begin_receive` whose
//! callback ends it, handles the bytes and begins the next one; bulk and fan-in
//! sends are chained the same way through their callbacks. In the ping-pong a reply
//! (or the next request) is sent from inside the receive callback with `begin_send`
//! followed at once by `end_send`, which returns immediately when the send completed
//! synchronously, so no extra callback hop sits on the latency path. Callbacks report
//! to the measuring thread over a channel.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Instant;

use asyncresult_callback::prelude::*;

use super::failed;
use crate::alloc;
use crate::loopback;
use crate::payload::{self, Pattern, Verifier};
use crate::scale::Scale;
use crate::workload::{
    bulk_values, fan_in_values, latency_values, overhead_values, Metric, Values,
};

/// What a callback chain reports.
enum Event {
    /// A sender chain sent everything.
    Sent,
    /// A receiver chain received and verified everything, at this instant.
    Received(Instant),
    /// The ping side finished, with its round-trip times.
    Latencies(Vec<u64>),
    /// The echo side answered every request.
    Echoed,
}

type Report = mpsc::Sender<Result<Event, String>>;

/// A chain's line to the measuring thread: it reports once. A chain dropped before it
/// reported (its callback dropped unrun, as when `begin_*` fails) reports that itself,
/// so a chain needs no copy of the channel per operation to report a failed begin
/// (those copies cost a contended read-modify-write per operation on a shared counter
/// that the other contenders' harnesses do not pay).
struct Reporter {
    report: Report,
    reported: bool,
}

impl Reporter {
    fn new(report: Report) -> Self {
        Reporter {
            report,
            reported: false,
        }
    }

    fn send(&mut self, event: Result<Event, String>) {
        if !self.reported {
            self.reported = true;
            // The measuring thread may have given up already; nothing else to tell.
            let _ = self.report.send(event);
        }
    }

    fn fail(&mut self, message: String) {
        self.send(Err(message));
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.fail("a callback chain was dropped before it finished (a begin failed)".into());
    }
}

/// Reports a failed `begin_*`: its callback, and the chain's reporter with it, was
/// dropped, which already told the measuring thread; this adds the reason.
fn begin_failed(what: &str, e: Error) {
    eprintln!("callback contender: {what}: {e}");
}

/// A listening socket on a fresh loopback port.
fn listen() -> Result<(Socket, SocketAddr), String> {
    let listener = Socket::listen_tcp(loopback::any_port(), 1024).map_err(failed("listen"))?;
    let addr = listener.local_addr().map_err(failed("local_addr"))?;
    Ok((listener, addr))
}

/// A connected (client, server) pair: a blocking connect and a Begin/End accept.
fn pair(listener: &Socket, addr: SocketAddr) -> Result<(Socket, Socket), String> {
    let client = Socket::connect_tcp(addr).map_err(failed("connect"))?;
    let ar = listener
        .begin_accept(None, None)
        .map_err(failed("begin_accept"))?;
    let server = listener.end_accept(&ar).map_err(failed("end_accept"))?;
    Ok((client, server))
}

/// A chain of whole sends of a pattern, each begun from the previous one's callback.
struct SendChain {
    socket: Socket,
    pattern: Pattern,
    next: u64,
    count: u64,
    report: Reporter,
}

fn send_next(mut chain: SendChain) {
    if chain.next == chain.count {
        chain.report.send(Ok(Event::Sent));
        return;
    }
    let chunk = chain.pattern.chunk(chain.next);
    chain.next += 1;
    let socket = chain.socket.clone();
    let begun = socket.begin_send(
        chunk,
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<usize>| {
            let mut chain = chain;
            match chain.socket.end_send(&ar) {
                Ok(n) if n == chunk.len() => send_next(chain),
                Ok(n) => chain.report.fail(format!("short send: {n} bytes")),
                Err(e) => chain.report.fail(format!("end_send: {e}")),
            }
        }),
        None,
    );
    if let Err(e) = begun {
        begin_failed("begin_send", e);
    }
}

/// A chain of receives that verifies a pattern until it has all of it.
struct ReceiveChain {
    socket: Socket,
    verifier: Verifier,
    report: Reporter,
}

fn receive_next(chain: ReceiveChain, buf: Vec<u8>) {
    let socket = chain.socket.clone();
    let begun = socket.begin_receive(
        buf,
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
            let mut chain = chain;
            match chain.socket.end_receive(&ar) {
                Ok((n, buf)) => match chain.verifier.take(&buf[..n]) {
                    Err(e) => chain.report.fail(e),
                    Ok(()) if chain.verifier.done() => {
                        chain.report.send(Ok(Event::Received(Instant::now())));
                    }
                    Ok(()) => receive_next(chain, buf),
                },
                Err(e) => chain.report.fail(format!("end_receive: {e}")),
            }
        }),
        None,
    );
    if let Err(e) = begun {
        begin_failed("begin_receive", e);
    }
}

/// Waits for `senders` `Sent` and `receivers` `Received` events; returns the last
/// receive instant.
fn collect(
    events: &mpsc::Receiver<Result<Event, String>>,
    senders: usize,
    receivers: usize,
) -> Result<Instant, String> {
    let (mut sent, mut received) = (0, 0);
    let mut last = None;
    while sent < senders || received < receivers {
        match events.recv() {
            Ok(Ok(Event::Sent)) => sent += 1,
            Ok(Ok(Event::Received(at))) => {
                received += 1;
                last = Some(last.map_or(at, |l: Instant| l.max(at)));
            }
            Ok(Ok(_)) => return Err("unexpected event".into()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a callback chain stopped without reporting".into()),
        }
    }
    last.ok_or_else(|| "nothing received".into())
}

/// Bulk transfer through chained callbacks.
pub fn bulk(scale: &Scale, chunk: usize) -> Result<Values, String> {
    let total = scale.bulk_bytes;
    let (listener, addr) = listen()?;
    let (client, server) = pair(&listener, addr)?;
    let pattern = Pattern::new(chunk, 1);
    let (report, events) = mpsc::channel();
    let start = Instant::now();
    receive_next(
        ReceiveChain {
            socket: server.clone(),
            verifier: Verifier::new(1, total),
            report: Reporter::new(report.clone()),
        },
        Vec::with_capacity(Scale::BULK_READ),
    );
    send_next(SendChain {
        socket: client.clone(),
        pattern,
        next: 0,
        count: total / chunk as u64,
        report: Reporter::new(report),
    });
    let end = collect(&events, 1, 1)?;
    Ok(bulk_values(total, end.duration_since(start)))
}

/// Begins a send of `msg` and ends it at once (it completes synchronously when the
/// kernel has room, which it always has here).
fn send_now(socket: &Socket, msg: [u8; Scale::PING]) -> Result<(), String> {
    let ar = socket
        .begin_send(msg.to_vec(), SocketFlags::NONE, None, None)
        .map_err(failed("begin_send"))?;
    match socket.end_send(&ar) {
        Ok(Scale::PING) => Ok(()),
        Ok(n) => Err(format!("short send: {n} bytes")),
        Err(e) => Err(format!("end_send: {e}")),
    }
}

/// One end of the ping-pong: receives 64-byte messages and reacts to each.
struct PingPongEnd {
    socket: Socket,
    message: [u8; Scale::PING],
    filled: usize,
    /// Round trips done (ping side) or requests answered (echo side).
    done: u64,
    warm: u64,
    total: u64,
    started: Instant,
    nanos: Vec<u64>,
    is_ping: bool,
    report: Reporter,
}

/// Sends request number `end.done` (ping side) and waits for its echo.
fn ping_next(mut end: PingPongEnd, buf: Vec<u8>) {
    if end.done == end.total {
        let nanos = std::mem::take(&mut end.nanos);
        end.report.send(Ok(Event::Latencies(nanos)));
        return;
    }
    end.started = Instant::now();
    if let Err(e) = send_now(&end.socket, payload::ping(end.done)) {
        return end.report.fail(e);
    }
    receive_message(end, buf);
}

/// Receives until a whole 64-byte message is in, then handles it.
fn receive_message(end: PingPongEnd, buf: Vec<u8>) {
    let socket = end.socket.clone();
    let begun = socket.begin_receive(
        buf,
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
            let mut end = end;
            let (n, buf) = match end.socket.end_receive(&ar) {
                Ok((0, _)) => return end.report.fail("the peer closed".into()),
                Ok(received) => received,
                Err(e) => return end.report.fail(format!("end_receive: {e}")),
            };
            let filled = end.filled + n;
            if filled > Scale::PING {
                return end.report.fail(format!("{filled} bytes for one message"));
            }
            end.message[end.filled..filled].copy_from_slice(&buf[..n]);
            end.filled = filled;
            if filled < Scale::PING {
                return receive_message(end, buf);
            }
            end.filled = 0;
            if end.is_ping {
                let round_trip = end.started.elapsed();
                if let Err(e) = payload::check_echo(end.done, &end.message) {
                    return end.report.fail(e);
                }
                if end.done >= end.warm {
                    end.nanos.push(round_trip.as_nanos() as u64);
                }
                end.done += 1;
                ping_next(end, buf);
            } else {
                if let Err(e) = send_now(&end.socket, end.message) {
                    return end.report.fail(e);
                }
                end.done += 1;
                if end.done == end.total {
                    end.report.send(Ok(Event::Echoed));
                } else {
                    receive_message(end, buf);
                }
            }
        }),
        None,
    );
    if let Err(e) = begun {
        begin_failed("begin_receive", e);
    }
}

/// Ping-pong, both ends driven by receive callbacks.
pub fn ping_pong(scale: &Scale) -> Result<Values, String> {
    let warm = scale.warmup_round_trips as u64;
    let total = warm + scale.round_trips as u64;
    let (listener, addr) = listen()?;
    let (client, server) = pair(&listener, addr)?;
    client.set_nodelay(true).map_err(failed("nodelay"))?;
    server.set_nodelay(true).map_err(failed("nodelay"))?;
    let (report, events) = mpsc::channel();
    let end = |socket: &Socket, is_ping: bool, report: Report| PingPongEnd {
        socket: socket.clone(),
        message: [0; Scale::PING],
        filled: 0,
        done: 0,
        warm,
        total,
        started: Instant::now(),
        nanos: Vec::with_capacity(if is_ping { scale.round_trips } else { 0 }),
        is_ping,
        report: Reporter::new(report),
    };
    receive_message(
        end(&server, false, report.clone()),
        Vec::with_capacity(Scale::PING),
    );
    ping_next(end(&client, true, report), Vec::with_capacity(Scale::PING));
    let (mut nanos, mut echoed) = (None, false);
    while nanos.is_none() || !echoed {
        match events.recv() {
            Ok(Ok(Event::Latencies(n))) => nanos = Some(n),
            Ok(Ok(Event::Echoed)) => echoed = true,
            Ok(Ok(_)) => return Err("unexpected event".into()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a callback chain stopped without reporting".into()),
        }
    }
    latency_values(nanos.unwrap_or_default())
}

/// Fan-in: every connection's sends and receives chained through callbacks (Nagle
/// off, as for every contender).
pub fn fan_in(scale: &Scale) -> Result<Values, String> {
    let conns = scale.fanin_conns;
    let msgs = scale.fanin_msgs as u64;
    let per_conn = msgs * Scale::FANIN_MESSAGE as u64;
    let (listener, addr) = listen()?;
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let (client, server) = pair(&listener, addr)?;
        client.set_nodelay(true).map_err(failed("nodelay"))?;
        server.set_nodelay(true).map_err(failed("nodelay"))?;
        streams.push((client, server, Pattern::new(Scale::FANIN_MESSAGE, i as u64)));
    }
    let (report, events) = mpsc::channel();
    let start = Instant::now();
    for (i, (client, server, pattern)) in streams.iter().enumerate() {
        receive_next(
            ReceiveChain {
                socket: server.clone(),
                verifier: Verifier::new(i as u64, per_conn),
                report: Reporter::new(report.clone()),
            },
            Vec::with_capacity(Scale::FANIN_READ),
        );
        send_next(SendChain {
            socket: client.clone(),
            pattern: *pattern,
            next: 0,
            count: msgs,
            report: Reporter::new(report.clone()),
        });
    }
    drop(report);
    let end = collect(&events, conns, conns)?;
    Ok(fan_in_values(conns, msgs, end.duration_since(start)))
}

/// Begin/end overhead: `begin_send` + `end_send` of 16 bytes on this thread.
pub fn overhead(scale: &Scale) -> Result<Values, String> {
    let sends = scale.overhead_sends as u64;
    let (addr, sink, pattern) = loopback::sink(sends).map_err(failed("sink"))?;
    let socket = Socket::connect_tcp(addr).map_err(failed("connect"))?;
    let start = Instant::now();
    for j in 0..sends {
        let ar = socket
            .begin_send(pattern.chunk(j), SocketFlags::NONE, None, None)
            .map_err(failed("begin_send"))?;
        let n = socket.end_send(&ar).map_err(failed("end_send"))?;
        if n != Scale::SMALL_SEND {
            return Err(format!("short send: {n} bytes"));
        }
    }
    let elapsed = start.elapsed();
    loopback::join_sink(sink)?;
    Ok(overhead_values(sends, elapsed))
}

/// Memory: heap bytes per registered socket (`Socket::try_from`) and per pending
/// `begin_receive` (no callback, no state; the 64-byte buffer is not counted).
pub fn memory(scale: &Scale) -> Result<Values, String> {
    let mut streams = loopback::sockets(scale.memory_pairs).map_err(failed("pairs"))?;
    let (warm_client, _warm_server) = loopback::pair().map_err(failed("pair"))?;
    let warm = Socket::try_from(warm_client).map_err(failed("adopt"))?;
    let _warm_ar = warm
        .begin_receive(
            Vec::with_capacity(Scale::MEMORY_READ),
            SocketFlags::NONE,
            None,
            None,
        )
        .map_err(failed("begin_receive"))?;

    let count = streams.len();
    let mut bufs: Vec<Vec<u8>> = (0..count)
        .map(|_| Vec::with_capacity(Scale::MEMORY_READ))
        .collect();
    let mut sockets = Vec::with_capacity(count);
    let mut pending = Vec::with_capacity(count);

    let before = alloc::live();
    // Drained, not consumed: the vector's own buffer is freed after the measurement.
    for stream in streams.drain(..) {
        sockets.push(Socket::try_from(stream).map_err(failed("adopt"))?);
    }
    let registered = alloc::live();
    for (socket, buf) in sockets.iter().zip(bufs.drain(..)) {
        pending.push(
            socket
                .begin_receive(buf, SocketFlags::NONE, None, None)
                .map_err(failed("begin_receive"))?,
        );
    }
    let after = alloc::live();

    if pending.iter().any(AsyncResult::is_completed) {
        return Err("a receive on an idle socket completed".into());
    }
    let per = |bytes: isize| bytes as f64 / count as f64;
    Ok(Values::default()
        .with(Metric::BytesPerOp, per(after - registered))
        .with(Metric::BytesPerSocket, per(registered - before)))
}
