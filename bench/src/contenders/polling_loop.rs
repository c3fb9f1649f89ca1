//! Contender 7: a minimal hand-written event loop on `polling` — the floor for any
//! design built on it. One thread drives both ends of every connection: each socket
//! is registered once, edge-triggered for read and write, and every event runs the
//! socket's reads (or writes) until the kernel says `WouldBlock`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::time::Instant;

use polling::{Event, Events, PollMode, Poller};

use super::failed;
use crate::alloc;
use crate::loopback;
use crate::payload::{self, Pattern, Verifier};
use crate::scale::Scale;
use crate::workload::{
    bulk_values, fan_in_values, latency_values, overhead_values, Metric, Values,
};

/// A non-blocking stream registered with a poller; deleted from it before it closes.
struct Registered<'p> {
    poller: &'p Poller,
    stream: TcpStream,
}

impl<'p> Registered<'p> {
    fn new(poller: &'p Poller, stream: TcpStream, key: usize) -> Result<Self, String> {
        stream
            .set_nonblocking(true)
            .map_err(failed("nonblocking"))?;
        // SAFETY: the descriptor stays open while registered: `Registered` owns the
        // stream and deletes it from the poller in `drop`, before the stream closes.
        unsafe { poller.add_with_mode(stream.as_raw_fd(), Event::all(key), PollMode::Edge) }
            .map_err(failed("poller add"))?;
        Ok(Registered { poller, stream })
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let _ = self.poller.delete(&self.stream);
    }
}

fn events() -> Events {
    Events::with_capacity(NonZeroUsize::new(1024).expect("1024 is not zero"))
}

fn wait(poller: &Poller, events: &mut Events) -> Result<(), String> {
    events.clear();
    poller.wait(events, None).map_err(failed("poller wait"))?;
    Ok(())
}

/// Writes what the kernel takes of `data` (0 when it would block).
fn write_some(mut stream: &TcpStream, data: &[u8]) -> Result<usize, String> {
    loop {
        match stream.write(data) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
}

/// Reads into `buf`: `Some(n)` (0 at end of stream), `None` when it would block.
fn read_some(mut stream: &TcpStream, buf: &mut [u8]) -> Result<Option<usize>, String> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The send side of a patterned stream: sends chunk after chunk until it would block.
struct PatternSender {
    pattern: Pattern,
    next: u64,
    offset: usize,
    count: u64,
}

impl PatternSender {
    fn new(pattern: Pattern, count: u64) -> Self {
        PatternSender {
            pattern,
            next: 0,
            offset: 0,
            count,
        }
    }

    fn pump(&mut self, stream: &TcpStream) -> Result<(), String> {
        while self.next < self.count {
            let chunk = self.pattern.chunk(self.next);
            let n = write_some(stream, &chunk[self.offset..])?;
            if n == 0 {
                break;
            }
            self.offset += n;
            if self.offset == chunk.len() {
                self.next += 1;
                self.offset = 0;
            }
        }
        Ok(())
    }
}

/// Reads and verifies until the stream would block.
fn drain(stream: &TcpStream, verifier: &mut Verifier, buf: &mut [u8]) -> Result<(), String> {
    while let Some(n) = read_some(stream, buf)? {
        verifier.take(&buf[..n])?;
    }
    Ok(())
}

/// Bulk transfer, both ends on this thread.
pub fn bulk(scale: &Scale, chunk: usize) -> Result<Values, String> {
    let total = scale.bulk_bytes;
    let (client, server) = loopback::pair().map_err(failed("pair"))?;
    let poller = Poller::new().map_err(failed("poller"))?;
    let mut events = events();
    let tx = Registered::new(&poller, client, 0)?;
    let rx = Registered::new(&poller, server, 1)?;
    let mut sender = PatternSender::new(Pattern::new(chunk, 1), total / chunk as u64);
    let mut verifier = Verifier::new(1, total);
    let mut buf = vec![0u8; Scale::BULK_READ];
    let start = Instant::now();
    sender.pump(&tx.stream)?;
    while !verifier.done() {
        wait(&poller, &mut events)?;
        for event in events.iter() {
            match event.key {
                0 => sender.pump(&tx.stream)?,
                1 => drain(&rx.stream, &mut verifier, &mut buf)?,
                _ => {}
            }
        }
    }
    let elapsed = start.elapsed();
    Ok(bulk_values(total, elapsed))
}

/// One end of the ping-pong: an outbox for what the kernel did not take yet, and
/// the message being received.
struct End<'p> {
    registered: Registered<'p>,
    outbox: Vec<u8>,
    inbox: [u8; Scale::PING],
    filled: usize,
}

impl<'p> End<'p> {
    fn new(registered: Registered<'p>) -> Self {
        End {
            registered,
            outbox: Vec::new(),
            inbox: [0; Scale::PING],
            filled: 0,
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.outbox.extend_from_slice(msg);
        self.flush()
    }

    fn flush(&mut self) -> Result<(), String> {
        while !self.outbox.is_empty() {
            let n = write_some(&self.registered.stream, &self.outbox)?;
            if n == 0 {
                break;
            }
            self.outbox.drain(..n);
        }
        Ok(())
    }

    /// The next whole message, or `None` once the stream would block.
    fn next_message(&mut self) -> Result<Option<[u8; Scale::PING]>, String> {
        loop {
            match read_some(&self.registered.stream, &mut self.inbox[self.filled..])? {
                None => return Ok(None),
                Some(0) => return Err("the peer closed".into()),
                Some(n) => {
                    self.filled += n;
                    if self.filled == Scale::PING {
                        self.filled = 0;
                        return Ok(Some(self.inbox));
                    }
                }
            }
        }
    }
}

/// Ping-pong, both ends on this thread.
pub fn ping_pong(scale: &Scale) -> Result<Values, String> {
    let warm = scale.warmup_round_trips as u64;
    let total = warm + scale.round_trips as u64;
    let (client, server) = loopback::pair().map_err(failed("pair"))?;
    client.set_nodelay(true).map_err(failed("nodelay"))?;
    server.set_nodelay(true).map_err(failed("nodelay"))?;
    let poller = Poller::new().map_err(failed("poller"))?;
    let mut events = events();
    let mut ends = [
        End::new(Registered::new(&poller, client, 0)?),
        End::new(Registered::new(&poller, server, 1)?),
    ];
    let mut nanos = Vec::with_capacity(scale.round_trips);
    let mut i = 0;
    let mut started = Instant::now();
    ends[0].send(&payload::ping(0))?;
    while i < total {
        wait(&poller, &mut events)?;
        for event in events.iter() {
            let Some(end) = ends.get_mut(event.key) else {
                continue;
            };
            end.flush()?;
            while let Some(msg) = ends[event.key].next_message()? {
                if event.key == 1 {
                    ends[1].send(&msg)?;
                    continue;
                }
                let round_trip = started.elapsed();
                payload::check_echo(i, &msg)?;
                if i >= warm {
                    nanos.push(round_trip.as_nanos() as u64);
                }
                i += 1;
                if i < total {
                    started = Instant::now();
                    ends[0].send(&payload::ping(i))?;
                }
            }
        }
    }
    latency_values(nanos)
}

/// Fan-in: every sender and receiver on this thread (Nagle off, as for every
/// contender).
pub fn fan_in(scale: &Scale) -> Result<Values, String> {
    let conns = scale.fanin_conns;
    let msgs = scale.fanin_msgs as u64;
    let per_conn = msgs * Scale::FANIN_MESSAGE as u64;
    let pairs = loopback::pairs(conns).map_err(failed("pairs"))?;
    let poller = Poller::new().map_err(failed("poller"))?;
    let mut events = events();
    let mut senders = Vec::with_capacity(conns);
    let mut receivers = Vec::with_capacity(conns);
    for (i, (client, server)) in pairs.into_iter().enumerate() {
        client.set_nodelay(true).map_err(failed("nodelay"))?;
        server.set_nodelay(true).map_err(failed("nodelay"))?;
        let pattern = Pattern::new(Scale::FANIN_MESSAGE, i as u64);
        senders.push((
            Registered::new(&poller, client, 2 * i)?,
            PatternSender::new(pattern, msgs),
        ));
        receivers.push((
            Registered::new(&poller, server, 2 * i + 1)?,
            Verifier::new(i as u64, per_conn),
        ));
    }
    let mut buf = vec![0u8; Scale::FANIN_READ];
    let start = Instant::now();
    for (registered, sender) in &mut senders {
        sender.pump(&registered.stream)?;
    }
    let mut done = 0;
    while done < conns {
        wait(&poller, &mut events)?;
        for event in events.iter() {
            let i = event.key / 2;
            if event.key % 2 == 0 {
                if let Some((registered, sender)) = senders.get_mut(i) {
                    sender.pump(&registered.stream)?;
                }
            } else if let Some((registered, verifier)) = receivers.get_mut(i) {
                if !verifier.done() {
                    drain(&registered.stream, verifier, &mut buf)?;
                    if verifier.done() {
                        done += 1;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    Ok(fan_in_values(conns, msgs, elapsed))
}

/// Begin/end overhead's floor: a non-blocking `send` of 16 bytes (waiting on the
/// poller only if the kernel has no room).
pub fn overhead(scale: &Scale) -> Result<Values, String> {
    let sends = scale.overhead_sends as u64;
    let (addr, sink, pattern) = loopback::sink(sends).map_err(failed("sink"))?;
    let stream = TcpStream::connect(addr).map_err(failed("connect"))?;
    let poller = Poller::new().map_err(failed("poller"))?;
    let mut events = events();
    let registered = Registered::new(&poller, stream, 0)?;
    let start = Instant::now();
    for j in 0..sends {
        let chunk = pattern.chunk(j);
        let mut offset = 0;
        while offset < chunk.len() {
            let n = write_some(&registered.stream, &chunk[offset..])?;
            if n == 0 {
                wait(&poller, &mut events)?;
            }
            offset += n;
        }
    }
    let elapsed = start.elapsed();
    loopback::join_sink(sink)?;
    Ok(overhead_values(sends, elapsed))
}

/// Memory: heap bytes per socket registered with the poller (the kernel's epoll
/// entry is not heap and not counted). A hand-written loop has no per-operation
/// object, so there is no bytes/op figure.
pub fn memory(scale: &Scale) -> Result<Values, String> {
    let mut streams = loopback::sockets(scale.memory_pairs).map_err(failed("pairs"))?;
    let count = streams.len();
    let poller = Poller::new().map_err(failed("poller"))?;
    let mut registered = Vec::with_capacity(count);
    let before = alloc::live();
    for (key, stream) in streams.drain(..).enumerate() {
        registered.push(Registered::new(&poller, stream, key)?);
    }
    let after = alloc::live();
    Ok(Values::default().with(
        Metric::BytesPerSocket,
        (after - before) as f64 / count as f64,
    ))
}
