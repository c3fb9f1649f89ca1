//! The two threads of each end of a round: the [`sender`], which carries out its
//! [`SendSpec`]'s steps and then shuts the write side, and the [`receiver`], which
//! receives until EOF or an error; either may inject the round's fault at its
//! trigger.

use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;

use asyncresult_callback::prelude::Error;

use super::net::{check_cancel, describe, finish, Bound, Net};
use super::outcome::{classify, send_error_allowed, End, Fail, RecvLog, SendLog, Sent};
use super::plan::{short_bound, SendSpec, Step, Trigger};
use super::rng::Rng;
use super::round::RoundCtx;

/// Sends no bytes, after record `seq`: it must complete with 0, in order, or fail as
/// the end's role allows. `false` if the sender should stop.
fn empty_send<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    log: &mut SendLog,
    seq: usize,
    inject: bool,
) -> bool {
    ctx.sh.sends.fetch_add(1, Relaxed);
    let started = net.send(stream, Vec::new(), Bound::Wait);
    if let (true, Some((kind, _))) = (inject, ctx.trigger_of(end)) {
        ctx.inject(kind, &net.socket(stream));
    }
    let role = ctx.role(end);
    let aborted_before = log
        .outcomes
        .iter()
        .any(|s| matches!(s, Sent::Failed(Fail::Aborted, _)));
    match finish(started, Bound::Wait, ctx.sh.config.op_limit) {
        Ok(Ok(0)) => true,
        Ok(Ok(n)) => {
            log.failures
                .push(format!("{} empty send reported {n} bytes", net.name()));
            true
        }
        Ok(Err(e)) => {
            let fail = classify(&e);
            // After a cancel that tore the stream, sends fail with EPIPE.
            let torn = fail == Fail::Pipe && aborted_before;
            if !(torn || send_error_allowed(role, fail)) {
                log.failures.push(format!(
                    "{} empty send after record {seq} ended with {e:?} ({role:?} end)",
                    net.name()
                ));
            }
            false
        }
        Err(trouble) => {
            log.failures.push(format!(
                "{} empty send after record {seq} ({role:?} end) {trouble}",
                net.name()
            ));
            false
        }
    }
}

/// One end's sending thread: the steps of `spec`, then `shutdown(Write)`.
pub(super) fn sender<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    spec: &SendSpec,
) -> SendLog {
    let (sh, limit) = (ctx.sh, ctx.sh.config.op_limit);
    let socket = net.socket(stream);
    let trigger = ctx.trigger_of(end);
    let mut log = SendLog {
        outcomes: vec![Sent::NotStarted; spec.sizes.len()],
        shutdown: None,
        failures: Vec::new(),
    };
    let mut seq = 0;
    'steps: for (k, &step) in spec.steps.iter().enumerate() {
        if ctx.overdue() {
            log.failures.push(format!(
                "{} sender passed the round's time limit",
                net.name()
            ));
            break;
        }
        if let Some((kind, Trigger::BeforeStep(at))) = trigger {
            if at == k {
                ctx.inject(kind, &socket);
            }
        }
        let during = matches!(trigger, Some((_, Trigger::DuringStep(at))) if at == k);
        let first = seq;
        match step {
            Step::Batch(n, cancel) => {
                sh.sends.fetch_add(n as u64, Relaxed);
                let bufs = (seq..seq + n).map(|q| spec.record(q)).collect();
                let mut started = net.send_batch(stream, bufs, cancel);
                // The callback adapter's member is cancelled once all are begun.
                let cancelled = cancel
                    .and_then(|i| started.get_mut(i))
                    .and_then(|member| member.cancel.take())
                    .map(|cancel| cancel());
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                for (i, member) in started.into_iter().enumerate() {
                    let out = member.waiter.wait(limit).and_then(|out| {
                        let cancelled = cancelled.filter(|_| cancel == Some(i));
                        check_cancel(out, cancelled, |won, ended| {
                            format!(
                                "(cancelled in a batch) ended with {ended} although cancel() \
                                 returned {won}"
                            )
                        })
                    });
                    match out {
                        Ok(out) => log.set(sh, spec, seq, out),
                        Err(trouble) => {
                            log.failures.push(format!(
                                "{} send of record {seq} (batched; {:?} end) {trouble}",
                                net.name(),
                                ctx.role(end)
                            ));
                            log.outcomes[seq..first + n].fill(Sent::Pending);
                            break 'steps;
                        }
                    }
                    seq += 1;
                }
            }
            Step::Forget => {
                sh.sends.fetch_add(1, Relaxed);
                let waiter = net.forget_send(stream, spec.record(seq));
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                match waiter.wait(limit) {
                    Ok(Some(out)) => log.set(sh, spec, seq, out),
                    Ok(None) => log.outcomes[seq] = Sent::Forgotten,
                    Err(trouble) => {
                        log.failures.push(format!(
                            "{} dropped send of record {seq} ({:?} end) {trouble}",
                            net.name(),
                            ctx.role(end)
                        ));
                        log.outcomes[seq] = Sent::Pending;
                        break 'steps;
                    }
                }
                seq += 1;
            }
            Step::Empty => {
                if !empty_send(ctx, end, net, stream, &mut log, seq, during) {
                    break 'steps;
                }
            }
            Step::Bounded(bound) => {
                sh.sends.fetch_add(1, Relaxed);
                let started = net.send(stream, spec.record(seq), bound);
                if let (true, Some((kind, _))) = (during, trigger) {
                    ctx.inject(kind, &socket);
                }
                match finish(started, bound, limit) {
                    Ok(out) => log.set(sh, spec, seq, out),
                    Err(trouble) => {
                        log.failures.push(format!(
                            "{} send of record {seq} ({bound:?}; {:?} end) {trouble}",
                            net.name(),
                            ctx.role(end)
                        ));
                        log.outcomes[seq] = Sent::Pending;
                        break 'steps;
                    }
                }
                seq += 1;
            }
        }
        if log.outcomes[first..seq].iter().any(Sent::is_hard_failure) {
            break;
        }
    }
    // Sends are in order, so an empty one completes after every send before it,
    // dropped ones included: only then may the write side be shut.
    if log.failures.is_empty() && !log.outcomes.iter().any(Sent::is_hard_failure) {
        empty_send(ctx, end, net, stream, &mut log, seq, false);
    }
    // A fault of this sender that never got its turn comes now.
    if let Some((kind, _)) = trigger {
        ctx.inject(kind, &socket);
    }
    log.shutdown = Some(
        socket
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("{e:?}")),
    );
    log
}

fn receive_capacity(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=29 => rng.range(1, 64),
        30..=69 => rng.range(64, 4096),
        _ => rng.range(4096, 64 << 10),
    }
}

/// One end's receiving thread: receives until EOF or an error.
pub(super) fn receiver<N: Net>(
    ctx: &RoundCtx<'_>,
    end: usize,
    net: &N,
    stream: &N::Stream,
    mut rng: Rng,
) -> RecvLog {
    let (sh, limit) = (ctx.sh, ctx.sh.config.op_limit);
    let socket = net.socket(stream);
    let trigger = match ctx.trigger_of(end) {
        Some((kind, Trigger::AfterBytes(at))) => Some((kind, at)),
        _ => None,
    };
    let mut log = RecvLog {
        data: Vec::new(),
        end: End::Cut,
        failures: Vec::new(),
    };
    loop {
        if let Some((kind, at)) = trigger {
            if log.data.len() >= at {
                ctx.inject(kind, &socket);
            }
        }
        if ctx.overdue() {
            log.failures.push(format!(
                "{} receiver passed the round's time limit",
                net.name()
            ));
            break;
        }
        sh.receives.fetch_add(1, Relaxed);
        let roll = rng.below(100);
        let capacity = if roll < 2 {
            0
        } else {
            receive_capacity(&mut rng)
        };
        let bound = if (6..12).contains(&roll) {
            short_bound(&mut rng, 3000)
        } else {
            Bound::Wait
        };
        // Receive futures dropped after one poll, where the adapter's are cancel safe.
        let once = if (2..6).contains(&roll) {
            net.receive_once(stream, capacity)
        } else {
            None
        };
        let got = match once {
            Some(waiter) => waiter.wait(limit),
            None => finish(net.receive(stream, capacity, bound), bound, limit).map(Some),
        };
        let out = match got {
            Err(trouble) => {
                log.failures.push(format!(
                    "{} receive ({capacity} bytes, {bound:?}; {:?} end) {trouble}",
                    net.name(),
                    ctx.role(end)
                ));
                break;
            }
            // A receive future dropped before it was ready: it took nothing.
            Ok(None) => continue,
            Ok(Some(out)) => out,
        };
        match out {
            Ok(buf) if capacity == 0 => {
                if !buf.is_empty() {
                    log.failures
                        .push(format!("{} probe returned {} bytes", net.name(), buf.len()));
                }
            }
            Ok(buf) if buf.is_empty() => {
                log.end = End::Eof;
                if ctx.fault.is_none() && rng.percent(30) {
                    sh.receives.fetch_add(1, Relaxed);
                    match finish(net.receive(stream, 64, Bound::Wait), Bound::Wait, limit) {
                        Ok(Ok(again)) if again.is_empty() => {}
                        other => log.failures.push(format!(
                            "{} receive after EOF did not return 0 again: {}",
                            net.name(),
                            match other {
                                Ok(out) => describe(&out),
                                Err(trouble) => trouble.to_string(),
                            }
                        )),
                    }
                }
                break;
            }
            Ok(buf) => log.data.extend_from_slice(&buf),
            Err(Error::Aborted) if bound != Bound::Wait => {
                sh.cancels.fetch_add(1, Relaxed);
            }
            Err(e) => {
                if matches!(e, Error::Aborted) {
                    log.failures
                        .push(format!("{} unbounded receive ended Aborted", net.name()));
                }
                log.end = End::Failed(classify(&e), format!("{e:?}"));
                break;
            }
        }
    }
    if let Some((kind, _)) = trigger {
        ctx.inject(kind, &socket);
    }
    log
}
