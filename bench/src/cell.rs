//! One cell — one contender running one workload once — in a child process of its
//! own, so that no cell inherits another's process-wide state (asyncresult's engine
//! and the runtime drivers attached to it, async-io's reactor thread, tokio's worker
//! threads, the allocator counter), and so that a hung cell can be abandoned cleanly.
//!
//! The child runs the cell on a helper thread and waits for it at most the cell's
//! time limit; then it prints one line, `RESULT ok key=value …`, `RESULT error …` or
//! `RESULT timeout`, and exits (which also ends a hung helper thread). The parent
//! waits a little longer than that limit before it kills the child itself.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use crate::alloc;
use crate::contenders::Contender;
use crate::scale::Scale;
use crate::workload::{Metric, Values, Workload};

/// How one run of a cell ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It measured these values.
    Measured(Values),
    /// It did not finish within the cell time limit.
    Timeout,
    /// It failed (a verification, an I/O error, a panic), with what went wrong.
    Failed(String),
}

/// How much longer than the cell limit the parent waits before killing the child.
const GRACE: Duration = Duration::from_secs(15);

const PREFIX: &str = "RESULT ";

/// Runs one cell in a child process of this binary (parent side).
pub fn run_in_child(contender: Contender, workload: Workload, scale: &Scale) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Outcome::Failed(format!("cannot find the bench binary: {e}")),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["--cell", contender.key(), workload.key()]);
    if scale.quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot start a cell process: {e}")),
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::Builder::new()
        .name("bench-cell-wait".into())
        .spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
    if let Err(e) = waiter {
        return Outcome::Failed(format!("cannot wait for the cell process: {e}"));
    }
    match rx.recv_timeout(scale.cell_timeout + GRACE) {
        Ok(Ok(output)) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            match stdout.lines().rev().find_map(|l| l.strip_prefix(PREFIX)) {
                Some(line) => parse(line),
                None => Outcome::Failed(format!("the cell process ended with {}", output.status)),
            }
        }
        Ok(Err(e)) => Outcome::Failed(format!("waiting for the cell process: {e}")),
        Err(_) => {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own
                // child, not yet reaped (its waiter thread has not returned).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            Outcome::Timeout
        }
    }
}

/// Parses a result line (after its prefix).
fn parse(line: &str) -> Outcome {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "timeout" => Outcome::Timeout,
        "error" => Outcome::Failed(rest.to_string()),
        "ok" => {
            let mut values = Values::default();
            for pair in rest.split_whitespace() {
                let parsed = pair
                    .split_once('=')
                    .and_then(|(k, v)| Some((Metric::from_key(k)?, v.parse::<f64>().ok()?)));
                match parsed {
                    Some((metric, value)) => values = values.with(metric, value),
                    None => return Outcome::Failed(format!("bad result field `{pair}`")),
                }
            }
            Outcome::Measured(values)
        }
        other => Outcome::Failed(format!("bad result line `{other} {rest}`")),
    }
}

/// Formats an outcome as the child's result line (after its prefix).
fn format(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Timeout => "timeout".into(),
        Outcome::Failed(message) => format!("error {}", message.replace(['\n', '\r'], " ")),
        Outcome::Measured(values) => {
            let mut line = String::from("ok");
            for (metric, value) in &values.0 {
                line.push_str(&format!(" {}={value}", metric.key()));
            }
            line
        }
    }
}

/// Runs one cell in this process (child side): on a helper thread, bounded by the
/// cell time limit; prints the result line.
pub fn child_main(contender: Contender, workload: Workload, scale: Scale) {
    if workload == Workload::Memory {
        alloc::enable();
    }
    let (tx, rx) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name(format!("bench-{contender}-{workload}"))
        .spawn(move || {
            let _ = tx.send(contender.run(workload, &scale));
        });
    let outcome = match spawned {
        Err(e) => Outcome::Failed(format!("cannot start the cell thread: {e}")),
        Ok(_) => match rx.recv_timeout(scale.cell_timeout) {
            Ok(Ok(values)) => Outcome::Measured(values),
            Ok(Err(message)) => Outcome::Failed(message),
            Err(RecvTimeoutError::Timeout) => Outcome::Timeout,
            Err(RecvTimeoutError::Disconnected) => Outcome::Failed("the cell panicked".into()),
        },
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{PREFIX}{}", format(&outcome));
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let outcomes = [
            Outcome::Timeout,
            Outcome::Failed("it broke".into()),
            Outcome::Measured(
                Values::default()
                    .with(Metric::P50Micros, 12.5)
                    .with(Metric::P99Micros, 40.0),
            ),
        ];
        for outcome in outcomes {
            assert_eq!(parse(&format(&outcome)), outcome);
        }
    }
}
