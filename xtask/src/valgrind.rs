//! `cargo xtask valgrind`: the core's and the callback adapter's main test suites
//! (`SUITES`) under valgrind's memcheck, failing on any memory error or any definite
//! leak.
//!
//! Child-process scenarios (ptrace, SIGPIPE) run natively: valgrind does not follow
//! children. The heaviest tests (tens of MiB per send, a thousand connections) are
//! skipped under valgrind's 20–50× slowdown, and the property tests run 6 cases each
//! instead of 48; everything else runs as in `test`.

use std::process::Command;
use std::time::Duration;

use crate::run::{cargo, echo, echo_some, root};

/// Test binaries to run: (package, test target).
const SUITES: &[(&str, &str)] = &[
    ("asyncresult-core", "send"),
    ("asyncresult-core", "engine"),
    ("asyncresult-core", "properties"),
    ("asyncresult-core", "drained"),
    ("asyncresult-core", "misuse"),
    ("asyncresult-core", "receive_edges"),
    ("asyncresult-core", "user_code"),
    ("asyncresult-callback", "operations"),
    ("asyncresult-callback", "lifecycle"),
];

/// Tests too heavy for memcheck's slowdown (by name substring).
const SKIP: &[&str] = &[
    "large_send",
    "thousand",
    "ten_thousand",
    "concurrent_senders",
    "close_completes_every_kind",
    // Traces a child of itself with ptrace, which memcheck cannot host.
    "waits_without_a_syscall",
];

/// The executable cargo built for `package`'s test target `test` (building it; the
/// compiler's messages go to stderr as usual).
fn test_binary(package: &str, test: &str) -> Result<String, String> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json",
        "-p",
        package,
        "--test",
        test,
    ]);
    let out = echo_some(cmd, Duration::from_secs(1800), |_| false)?;
    if !out.success {
        return Err(format!("building {package}/{test} failed"));
    }
    out.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == test)
        .find_map(|m| m["executable"].as_str().map(String::from))
        .ok_or_else(|| format!("no test binary for {package}/{test}"))
}

pub fn run(args: pico_args::Arguments) -> Result<bool, String> {
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("valgrind is not installed (apt-get install valgrind)".into());
    }
    let mut ok = true;
    let mut summaries = Vec::new();
    for (package, test) in SUITES {
        let binary = test_binary(package, test)?;
        println!("\n==> memcheck {package}/{test}");
        let mut cmd = Command::new("valgrind");
        cmd.current_dir(root())
            .args([
                "--tool=memcheck",
                "--error-exitcode=99",
                "--leak-check=full",
                "--show-leak-kinds=definite",
                "--errors-for-leak-kinds=definite",
                "--fair-sched=yes",
                "-q",
            ])
            .arg(&binary)
            .args(["--test-threads=2"])
            // Property cases are random sequences of whole socket lifecycles: a few
            // suffice to exercise every path under memcheck, which is 20-50x slower.
            .env("PROPTEST_CASES", "6");
        for skip in SKIP {
            cmd.args(["--skip", skip]);
        }
        let out = echo(cmd, Duration::from_secs(1800))?;
        let passed = out.success;
        ok &= passed;
        let results: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("test result:"))
            .collect();
        summaries.push(format!(
            "{package}/{test}: {} — {}",
            if passed {
                "no errors, no definite leaks"
            } else {
                "FAILED"
            },
            results.join(" ")
        ));
    }
    println!("\nmemcheck summary:");
    for s in &summaries {
        println!("  {s}");
    }
    Ok(ok)
}
