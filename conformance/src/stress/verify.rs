//! The checks of one direction of a round once it is over: the sender's outcomes
//! against what its role allows, the end of the received stream, and every received
//! byte against the records that were sent.

use std::sync::atomic::Ordering::Relaxed;

use super::lanes::Shared;
use super::outcome::{end_allowed, send_error_allowed, End, Fail, RecvLog, SendLog, Sent};
use super::plan::{Role, SendSpec};
use super::record::{parse, HEADER};

/// One direction of a round, for checking.
pub(super) struct Direction<'a> {
    pub(super) what: String,
    pub(super) spec: &'a SendSpec,
    pub(super) sent: &'a SendLog,
    pub(super) got: &'a RecvLog,
    pub(super) sender: Role,
    pub(super) receiver: Role,
}

/// Checks one direction: the sender's outcomes, the receiver's end, and every byte.
pub(super) fn verify(sh: &Shared, d: &Direction<'_>) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let (sent, spec) = (&d.sent.outcomes, d.spec);
    problems.extend(d.sent.failures.iter().cloned());
    problems.extend(d.got.failures.iter().cloned());
    let first_abort = sent
        .iter()
        .position(|s| matches!(s, Sent::Failed(Fail::Aborted, _)));
    for (seq, outcome) in sent.iter().enumerate() {
        let Sent::Failed(fail, text) = outcome else {
            continue;
        };
        let allowed = match fail {
            Fail::Aborted => spec.bounded[seq],
            // After a cancel that tore the stream, later sends fail with EPIPE.
            Fail::Pipe if first_abort.is_some_and(|a| a < seq) => true,
            other => send_error_allowed(d.sender, *other),
        };
        if !allowed {
            problems.push(format!(
                "send of record {seq} ended with {text} ({:?} end)",
                d.sender
            ));
        }
    }
    if d.sender == Role::Clean && first_abort.is_none() {
        if let Some(Err(e)) = &d.sent.shutdown {
            problems.push(format!("shutdown(Write) after the last send failed: {e}"));
        }
    }
    if d.got.end != End::Cut && !end_allowed(d.receiver, &d.got.end) {
        problems.push(format!(
            "the received stream ended with {:?} ({:?} end)",
            d.got.end, d.receiver
        ));
    }
    let seen = match parse(spec.id, &spec.sizes, &d.got.data) {
        Ok(seen) => seen,
        Err(e) => {
            problems.push(format!("received data: {e}"));
            return prefixed(&d.what, problems);
        }
    };
    sh.bytes_checked.fetch_add(d.got.data.len() as u64, Relaxed);
    sh.records_checked.fetch_add(seen.len() as u64, Relaxed);
    // A receiver cut short by a failure (a hang) cannot vouch for what it missed.
    let clean = d.sender == Role::Clean && d.got.end != End::Cut;
    let mut whole = vec![false; sent.len()];
    let (mut torn_at, mut next) = (None, 0);
    for record in &seen {
        match (record.seq, record.whole) {
            (Some(seq), true) => {
                whole[seq] = true;
                next = seq + 1;
                match &sent[seq] {
                    Sent::Ok | Sent::Forgotten | Sent::Pending => {}
                    Sent::NotStarted => {
                        problems.push(format!("record {seq} arrived but was never sent"))
                    }
                    Sent::Failed(_, text) => problems.push(format!(
                        "record {seq} arrived whole, yet its send ended with {text}"
                    )),
                }
            }
            (seq, _) => {
                // A torn header may end before its sequence number: then it is one of
                // the records after the last whole one.
                torn_at = Some(seq.unwrap_or(next));
                if clean {
                    // Only a cancelled send may leave a torn record behind.
                    let aborted = |s: &Sent| matches!(s, Sent::Failed(Fail::Aborted, _));
                    let ok = match seq {
                        Some(seq) => aborted(&sent[seq]),
                        None => sent.iter().skip(next).any(aborted),
                    };
                    if !ok {
                        let outcome = seq.map(|seq| &sent[seq]);
                        problems.push(format!(
                            "a record ({seq:?}, its send: {outcome:?}) arrived torn although no \
                             send was cancelled mid-way"
                        ));
                    }
                } else if let Some(seq) = seq {
                    if sent[seq] == Sent::NotStarted {
                        problems.push(format!("record {seq} arrived (in part) but was never sent"));
                    }
                }
            }
        }
    }
    let last = seen.iter().filter_map(|r| r.seq).max();
    for (seq, outcome) in sent.iter().enumerate() {
        let must = matches!(outcome, Sent::Ok | Sent::Forgotten);
        if !must || whole[seq] {
            continue;
        }
        if last.is_some_and(|last| seq < last) {
            problems.push(format!(
                "record {seq} (sent: {outcome:?}) is missing before record {last:?}"
            ));
        } else if clean && (*outcome == Sent::Ok || torn_at.is_none_or(|t| t > seq)) {
            problems.push(format!("record {seq} (sent: {outcome:?}) never arrived"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "(sender's steps: {:?}; outcomes: {}; {} bytes received, ending {:?})",
            spec.steps,
            outcomes(sent, spec),
            d.got.data.len(),
            d.got.end
        ));
    }
    prefixed(&d.what, problems)
}

/// The sends of a direction, compactly: `seq:len=outcome`.
fn outcomes(sent: &[Sent], spec: &SendSpec) -> String {
    let shown: Vec<String> = sent
        .iter()
        .enumerate()
        .map(|(seq, outcome)| {
            let what = match outcome {
                Sent::NotStarted => "-".to_string(),
                Sent::Ok => "ok".into(),
                Sent::Forgotten => "dropped".into(),
                Sent::Pending => "pending".into(),
                Sent::Failed(fail, _) => format!("{fail:?}"),
            };
            format!("{seq}:{}={what}", HEADER + spec.sizes[seq])
        })
        .collect();
    shown.join(" ")
}

fn prefixed(what: &str, problems: Vec<String>) -> Vec<String> {
    problems
        .into_iter()
        .map(|p| format!("{what}: {p}"))
        .collect()
}
