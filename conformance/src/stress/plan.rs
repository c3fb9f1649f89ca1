//! The plan of a round, drawn from the PRNG before it starts: what each end sends
//! ([`SendSpec`]: record sizes and the [`Step`]s that send them) and the fault, if any
//! ([`Fault`]: a close or reset by one end, and when), from which each end's [`Role`]
//! follows.

use std::time::Duration;

use super::net::Bound;
use super::record::{record, StreamId, HEADER};
use super::rng::Rng;

/// One end's part in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Nobody closes or resets this round.
    Clean,
    /// This end closes or resets.
    Actor,
    /// The peer of the actor.
    Witness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultKind {
    Close,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The sender, before its step `n`.
    BeforeStep(usize),
    /// The sender, right after starting its step `n`.
    DuringStep(usize),
    /// The receiver, once it holds this many bytes (or at its end).
    AfterBytes(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fault {
    pub(super) kind: FaultKind,
    /// 0: the client end, 1: the server end.
    pub(super) actor: usize,
    pub(super) trigger: Trigger,
}

/// One step of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Records begun back to back, then waited for; the member at the index, if any,
    /// is cancelled once begun (likely while queued behind the others).
    Batch(usize, Option<usize>),
    /// A record whose result or future is dropped at once.
    Forget,
    /// A record sent under a timeout, or cancelled at once.
    Bounded(Bound),
    /// A send of no bytes (no record): completes with 0.
    Empty,
}

/// What one end sends in a round.
#[derive(Debug)]
pub(super) struct SendSpec {
    pub(super) id: StreamId,
    pub(super) sizes: Vec<usize>,
    pub(super) bounded: Vec<bool>,
    pub(super) steps: Vec<Step>,
}

fn record_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=64 => rng.range(0, 256),
        65..=94 => rng.range(256, 4096),
        _ => rng.range(4096, 32 << 10),
    }
}

pub(super) fn short_bound(rng: &mut Rng, max_us: usize) -> Bound {
    if rng.percent(30) {
        Bound::CancelNow
    } else {
        Bound::Timeout(Duration::from_micros(rng.range(0, max_us) as u64))
    }
}

impl SendSpec {
    pub(super) fn new(rng: &mut Rng, id: StreamId, big: bool) -> SendSpec {
        let records = rng.range(4, 40);
        let big_at = big.then(|| rng.range(0, records));
        let mut spec = SendSpec {
            id,
            sizes: Vec::new(),
            bounded: Vec::new(),
            steps: Vec::new(),
        };
        while spec.sizes.len() < records {
            let len = spec.sizes.len();
            if big_at == Some(len) {
                let big = rng.range(256 << 10, 2 << 20);
                let n = rng.range(2, 6).min(records - len);
                if n >= 2 && rng.percent(50) {
                    // The large send fills the kernel's buffers and stays pending: the
                    // member cancelled behind it is cancelled while queued.
                    let cancel = rng.range(1, n);
                    spec.steps.push(Step::Batch(n, Some(cancel)));
                    for i in 0..n {
                        spec.sizes.push(if i == 0 { big } else { record_len(rng) });
                        spec.bounded.push(i == cancel);
                    }
                } else {
                    // Cancelled while under way: it tears the stream.
                    let bound = short_bound(rng, 4000);
                    spec.push(Step::Bounded(bound), big);
                }
                continue;
            }
            match rng.below(100) {
                0..=4 => spec.push(Step::Forget, record_len(rng)),
                5..=7 => {
                    let bound = short_bound(rng, 2000);
                    spec.push(Step::Bounded(bound), record_len(rng));
                }
                8..=9 => spec.steps.push(Step::Empty),
                _ => {
                    let room = match big_at {
                        Some(at) if at > len => at - len,
                        _ => records - len,
                    };
                    let n = rng.range(1, 9).min(room);
                    let cancel = (n >= 2 && rng.percent(15)).then(|| rng.range(1, n));
                    spec.steps.push(Step::Batch(n, cancel));
                    for i in 0..n {
                        spec.sizes.push(record_len(rng));
                        spec.bounded.push(cancel == Some(i));
                    }
                }
            }
        }
        spec
    }

    fn push(&mut self, step: Step, len: usize) {
        self.steps.push(step);
        self.sizes.push(len);
        self.bounded.push(matches!(step, Step::Bounded(_)));
    }

    pub(super) fn record(&self, seq: usize) -> Vec<u8> {
        record(self.id, seq, self.sizes[seq])
    }

    fn total_bytes(&self) -> usize {
        self.sizes.iter().map(|len| HEADER + len).sum()
    }
}

pub(super) fn pick_fault(rng: &mut Rng, specs: &[SendSpec; 2]) -> Option<Fault> {
    let kind = match rng.below(100) {
        0..=59 => return None,
        60..=79 => FaultKind::Close,
        _ => FaultKind::Reset,
    };
    let actor = rng.below(2) as usize;
    let steps = specs[actor].steps.len();
    let trigger = match rng.below(3) {
        0 => Trigger::BeforeStep(rng.range(0, steps)),
        1 => Trigger::DuringStep(rng.range(0, steps)),
        _ => Trigger::AfterBytes(rng.range(0, specs[1 - actor].total_bytes() + 1)),
    };
    Some(Fault {
        kind,
        actor,
        trigger,
    })
}
