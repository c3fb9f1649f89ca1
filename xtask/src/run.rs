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

/// `cargo metadata` of the workspace's own packages.
pub fn metadata() -> Result<serde_json::Value, String> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}

/// The target directory of `meta` (`cargo metadata`), else `CARGO_TARGET_DIR`, else
/// `<root>/target`.
pub fn target_dir(meta: Option<&serde_json::Value>) -> PathBuf {
    meta.and_then(|m| m["target_directory"].as_str())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root().join("target"))
}

/// Sums libtest's `test result: ok. 3 passed; 1 failed; 2 ignored; ...` lines: (passed,
/// failed, ignored, how many result lines, one per test binary).
pub fn count_tests(stdout: &str) -> (usize, usize, usize, usize) {
    let mut totals = (0, 0, 0, 0);
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        totals.3 += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = count.trim_end_matches('.').parse::<usize>() else {
                continue;
            };
            match label {
                "passed" => totals.0 += n,
                "failed" => totals.1 += n,
                "ignored" => totals.2 += n,
                _ => {}
            }
        }
    }
    totals
}

/// What a finished command produced.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub timed_out: bool,
}

/// The processes descended from `root` (children, grandchildren, ...), from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Kills `child` and everything it started (cargo's test binaries, valgrind): a
/// survivor would keep the stdout pipe open and the reader waiting for ever.
fn kill_tree(child: &mut std::process::Child) {
    let pids: Vec<String> = descendants(child.id()).iter().map(u32::to_string).collect();
    let _ = child.kill();
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `cmd`, echoing its stdout (and letting stderr through) as it goes, killing it
/// and everything it started after `limit`.
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
                kill_tree(&mut child);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A timed-out command's grandchildren die with it (they would hold the pipe).
    #[test]
    fn kill_tree_takes_grandchildren_down() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60 & wait"])
            .spawn()
            .expect("sh");
        // Wait (bounded) until both sleeps exist.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = descendants(child.id());
        while found.len() < 2 && Instant::now() < deadline {
            thread::yield_now();
            found = descendants(child.id());
        }
        assert_eq!(found.len(), 2, "two sleeps under sh: {found:?}");
        kill_tree(&mut child);
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        };
        while found.iter().any(alive) && Instant::now() < deadline {
            thread::yield_now();
        }
        assert!(!found.iter().any(alive), "survivors: {found:?}");
    }
}
