//! Running cargo and friends: from the workspace root, with a time limit, echoing
//! output while keeping it for parsing.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo` as the one running us.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// What a finished command produced.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub timed_out: bool,
}

/// Runs `cmd`, echoing its stdout (and letting stderr through) as it goes, killing it
/// after `limit`.
pub fn echo(cmd: Command, limit: Duration) -> Result<Output, String> {
    echo_some(cmd, limit, |_| true)
}

/// [`echo`], showing only the stdout lines that `show` accepts (all are kept).
pub fn echo_some(
    mut cmd: Command,
    limit: Duration,
    show: fn(&str) -> bool,
) -> Result<Output, String> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if show(&line) {
                println!("{line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            // Polling a child process for exit (not test synchronization).
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    let _ = reader.join();
    let stdout: Vec<String> = rx.try_iter().collect();
    Ok(Output {
        success: !timed_out && status.is_some_and(|s| s.success()),
        stdout: stdout.join("\n"),
        timed_out,
    })
}
