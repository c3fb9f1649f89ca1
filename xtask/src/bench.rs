//! `cargo xtask bench`: builds and runs the `asyncresult-bench` binary in release
//! mode. Progress goes to stderr; the report goes to stdout and, with a bar chart of
//! the ratios, to `<target>/bench/results.md` and `<target>/bench/chart.svg`.
//!
//! `--quick` scales the workloads down so that the run (after the build) takes under
//! a minute on two cores; `--runs`, `--contenders` and `--workloads` pass through.

use std::time::Duration;

use crate::run::{cargo, echo, metadata, target_dir};

pub fn run(mut args: pico_args::Arguments) -> Result<bool, String> {
    let quick = args.contains("--quick");
    let mut pass: Vec<String> = Vec::new();
    for flag in ["--runs", "--contenders", "--workloads", "--out"] {
        let value: Option<String> = args
            .opt_value_from_str(flag)
            .map_err(|e| format!("{flag}: {e}"))?;
        if let Some(value) = value {
            pass.push(flag.into());
            pass.push(value);
        }
    }
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    if !pass.iter().any(|a| a == "--out") {
        pass.push("--out".into());
        let meta = metadata().ok();
        pass.push(
            target_dir(meta.as_ref())
                .join("bench")
                .display()
                .to_string(),
        );
    }
    if quick {
        pass.push("--quick".into());
    }
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "asyncresult-bench",
        "--",
    ]);
    cmd.args(&pass);
    // The bench bounds each of its cells itself; this only guards against a stuck
    // build or bench process.
    let limit = Duration::from_secs(if quick { 600 } else { 3600 });
    let output = echo(cmd, limit)?;
    if output.timed_out {
        eprintln!(
            "xtask: the bench did not finish within {} s",
            limit.as_secs()
        );
    }
    Ok(output.success)
}
