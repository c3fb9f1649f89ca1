//! One round of a lane: a listener (sometimes closed under a pending accept), an
//! accept and a connect, the round's plan, the four threads that exchange the two
//! streams ([`RoundCtx`] is what they share), and the checks of both directions.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_callback::prelude::{Error, Socket};

use super::ends::{receiver, sender};
use super::lanes::Shared;
use super::net::{describe, finish, Bound, Net};
use super::outcome::{End, RecvLog, SendLog};
use super::plan::{pick_fault, Fault, FaultKind, Role, SendSpec, Trigger};
use super::record::StreamId;
use super::rng::Rng;
use super::verify::{verify, Direction};

/// Shared by the four threads of one round.
pub(super) struct RoundCtx<'a> {
    pub(super) sh: &'a Shared,
    names: [&'static str; 2],
    pub(super) fault: Option<Fault>,
    fired: AtomicBool,
    deadline: Instant,
}

impl RoundCtx<'_> {
    pub(super) fn role(&self, end: usize) -> Role {
        match self.fault {
            None => Role::Clean,
            Some(fault) if fault.actor == end => Role::Actor,
            Some(_) => Role::Witness,
        }
    }

    /// Closes or resets `socket`, once per round.
    pub(super) fn inject(&self, kind: FaultKind, socket: &Socket) {
        if self.fired.swap(true, Relaxed) {
            return;
        }
        match kind {
            FaultKind::Close => {
                self.sh.closes.fetch_add(1, Relaxed);
            }
            FaultKind::Reset => {
                let _ = socket.as_socket2().set_linger(Some(Duration::ZERO));
                self.sh.resets.fetch_add(1, Relaxed);
            }
        }
        socket.close();
    }

    pub(super) fn trigger_of(&self, end: usize) -> Option<(FaultKind, Trigger)> {
        self.fault
            .filter(|fault| fault.actor == end)
            .map(|fault| (fault.kind, fault.trigger))
    }

    pub(super) fn overdue(&self) -> bool {
        Instant::now() > self.deadline
    }
}

/// A lane's place: which lane, which round.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) lane: usize,
    pub(super) round: u32,
}

/// One round of a lane (see the module docs).
pub(super) fn one_round<C: Net, S: Net>(
    sh: &Shared,
    at: At,
    rng: &mut Rng,
    (client, server): (&C, &S),
    listener: &mut Option<S::Listener>,
) -> Result<(), String> {
    let limit = sh.config.op_limit;
    sh.status(at.lane, format!("round {}: accept + connect", at.round));
    if listener.is_none() || rng.percent(2) {
        *listener = Some(server.listen()?);
    }
    if rng.percent(3) {
        if let Some(old) = listener.take() {
            sh.accepts.fetch_add(1, Relaxed);
            let pending = server.accept(&old);
            server.listener_socket(&old).close();
            sh.closes.fetch_add(1, Relaxed);
            sh.listener_closes.fetch_add(1, Relaxed);
            match finish(pending, Bound::Wait, limit) {
                Ok(Err(Error::Disposed)) => {}
                Ok(other) => {
                    return Err(format!(
                        "{} accept pending when its listener closed ended with {}, not Disposed",
                        server.name(),
                        describe(&other)
                    ))
                }
                Err(trouble) => {
                    return Err(format!(
                        "{} accept pending when its listener closed {trouble}",
                        server.name()
                    ))
                }
            }
        }
        *listener = Some(server.listen()?);
    }
    let l = listener.as_ref().ok_or("no listener")?;
    let addr = server
        .listener_socket(l)
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    sh.accepts.fetch_add(1, Relaxed);
    let accepting = server.accept(l);
    sh.connects.fetch_add(1, Relaxed);
    let connecting = client.connect(addr);
    let c = finish(connecting, Bound::Wait, limit)
        .map_err(|t| format!("{} connect {t}", client.name()))?
        .map_err(|e| format!("{} connect: {e:?}", client.name()))?;
    let s = finish(accepting, Bound::Wait, limit)
        .map_err(|t| format!("{} accept {t}", server.name()))?
        .map_err(|e| format!("{} accept: {e:?}", server.name()))?;

    let big = rng.percent(15).then(|| rng.below(2) as usize);
    let (lane, tag) = (at.lane as u32, at.round.wrapping_mul(2));
    let specs = [
        SendSpec::new(rng, StreamId { lane, tag }, big == Some(0)),
        SendSpec::new(rng, StreamId { lane, tag: tag + 1 }, big == Some(1)),
    ];
    let fault = pick_fault(rng, &specs);
    if rng.percent(50) {
        let _ = client.socket(&c).set_nodelay(true);
        let _ = server.socket(&s).set_nodelay(true);
    }
    // Loopback buffers hold megabytes, so most sends finish inline on the fast path;
    // smaller buffers make large sends wait in the engine's queues (and cancels meet
    // them there, queued or under way). Not below 32 KiB: with less, Linux's delayed
    // ACKs slow loopback TCP itself to a crawl (1 MiB takes seconds with 8 KiB).
    let small_buffers = rng.percent(30);
    if small_buffers {
        for socket in [client.socket(&c), server.socket(&s)] {
            let socket = socket.as_socket2();
            let _ = socket.set_send_buffer_size(rng.range(32 << 10, 128 << 10));
            let _ = socket.set_recv_buffer_size(rng.range(32 << 10, 128 << 10));
        }
    }
    let ctx = RoundCtx {
        sh,
        names: [client.name(), server.name()],
        fault,
        fired: AtomicBool::new(false),
        deadline: Instant::now() + sh.config.round_limit,
    };
    sh.status(
        at.lane,
        format!(
            "round {}: exchanging (fault {fault:?}, big send by {big:?}, small buffers \
             {small_buffers})",
            at.round
        ),
    );
    let (r0, r1) = (rng.fork(), rng.fork());
    let (sent, got) = thread::scope(|scope| {
        let (ctx, c, s, specs) = (&ctx, &c, &s, &specs);
        let sends = [
            scope.spawn(move || sender(ctx, 0, client, c, &specs[0])),
            scope.spawn(move || sender(ctx, 1, server, s, &specs[1])),
        ];
        let receives = [
            scope.spawn(move || receiver(ctx, 0, client, c, r0)),
            scope.spawn(move || receiver(ctx, 1, server, s, r1)),
        ];
        (
            sends.map(|h| {
                h.join().unwrap_or_else(|_| SendLog {
                    outcomes: Vec::new(),
                    shutdown: None,
                    failures: vec!["the sending thread panicked".into()],
                })
            }),
            receives.map(|h| {
                h.join().unwrap_or_else(|_| RecvLog {
                    data: Vec::new(),
                    end: End::Cut,
                    failures: vec!["the receiving thread panicked".into()],
                })
            }),
        )
    });
    drop((c, s));
    sh.status(at.lane, format!("round {}: checking", at.round));
    let mut problems = Vec::new();
    for from in 0..2 {
        let to = 1 - from;
        if sent[from].outcomes.len() != specs[from].sizes.len() {
            problems.extend(sent[from].failures.iter().cloned());
            continue;
        }
        problems.extend(verify(
            sh,
            &Direction {
                what: format!(
                    "{}({}) -> {}({})",
                    ["client", "server"][from],
                    ctx.names[from],
                    ["client", "server"][to],
                    ctx.names[to]
                ),
                spec: &specs[from],
                sent: &sent[from],
                got: &got[to],
                sender: ctx.role(from),
                receiver: ctx.role(to),
            },
        ));
    }
    sh.rounds.fetch_add(1, Relaxed);
    if fault.is_none() {
        sh.clean_rounds.fetch_add(1, Relaxed);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fault {fault:?}, big send by end {big:?}, small buffers {small_buffers}:\n    {}",
            problems.join("\n    ")
        ))
    }
}
