//! What each end of a round saw: the outcome of every send ([`Sent`], with its error
//! classified as a [`Fail`]), how the received stream ended ([`End`]), the senders' and
//! receivers' logs, and which errors each end's [`Role`] allows.

use std::sync::atomic::Ordering::Relaxed;

use asyncresult_callback::prelude::Error;

use super::lanes::Shared;
use super::plan::{Role, SendSpec};
use super::record::HEADER;
use crate::harness::Res;

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    NotStarted,
    Ok,
    /// Its result or future was dropped: outcome unknown.
    Forgotten,
    /// Still under way when the test gave up on it (a hang, reported as such).
    Pending,
    Failed(Fail, String),
}

/// The errors the checks tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fail {
    Aborted,
    Disposed,
    Reset,
    Pipe,
    NotConnected,
    Other,
}

pub(super) fn classify(e: &Error) -> Fail {
    match e {
        Error::Aborted => Fail::Aborted,
        Error::Disposed => Fail::Disposed,
        other => match other.error_code() {
            Some(libc::ECONNRESET) => Fail::Reset,
            Some(libc::EPIPE) => Fail::Pipe,
            Some(libc::ENOTCONN) => Fail::NotConnected,
            _ => Fail::Other,
        },
    }
}

impl Sent {
    /// A failure that ends the stream (anything but a cancel).
    pub(super) fn is_hard_failure(&self) -> bool {
        matches!(self, Sent::Failed(fail, _) if *fail != Fail::Aborted)
    }
}

/// What a sender saw.
#[derive(Debug)]
pub(super) struct SendLog {
    pub(super) outcomes: Vec<Sent>,
    pub(super) shutdown: Option<Result<(), String>>,
    pub(super) failures: Vec<String>,
}

/// How a receiver's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum End {
    Eof,
    Failed(Fail, String),
    /// Stopped by a failure of the test itself (a hang, a deadline).
    Cut,
}

/// What a receiver saw.
#[derive(Debug)]
pub(super) struct RecvLog {
    pub(super) data: Vec<u8>,
    pub(super) end: End,
    pub(super) failures: Vec<String>,
}

impl SendLog {
    pub(super) fn set(&mut self, sh: &Shared, spec: &SendSpec, seq: usize, out: Res<usize>) {
        self.outcomes[seq] = match out {
            Ok(n) if n == HEADER + spec.sizes[seq] => Sent::Ok,
            Ok(n) => {
                self.failures.push(format!(
                    "send of record {seq} reported {n} bytes of {}",
                    HEADER + spec.sizes[seq]
                ));
                Sent::Ok
            }
            Err(e) => {
                let fail = classify(&e);
                if fail == Fail::Aborted {
                    sh.cancels.fetch_add(1, Relaxed);
                }
                Sent::Failed(fail, format!("{e:?}"))
            }
        }
    }
}

/// Which errors a role allows on sends and at the end of a received stream.
pub(super) fn send_error_allowed(role: Role, fail: Fail) -> bool {
    match role {
        Role::Clean => false,
        Role::Actor => matches!(fail, Fail::Disposed | Fail::Pipe | Fail::Reset),
        Role::Witness => matches!(fail, Fail::Pipe | Fail::Reset),
    }
}

pub(super) fn end_allowed(role: Role, end: &End) -> bool {
    match (role, end) {
        (_, End::Eof) => true,
        (Role::Actor, End::Failed(fail, _)) => matches!(fail, Fail::Disposed | Fail::Reset),
        (Role::Witness, End::Failed(fail, _)) => *fail == Fail::Reset,
        _ => false,
    }
}
