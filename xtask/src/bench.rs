//! `cargo xtask bench`: builds and runs the `asyncresult-bench` binary in release
//! mode. Progress goes to stderr; the report goes to stdout and, with a bar chart of
//! the ratios, to `<target>/bench/results.md` and `<target>/bench/chart.svg`.
//!
//! `--quick` scales the workloads down so that the run (after the build) takes under
//! a minute on two cores; `--runs`, `--contenders` and `--workloads` pass through.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::{cargo, echo, root};

/// The workspace's target directory: `cargo metadata`'s `target_directory`, else
/// `CARGO_TARGET_DIR`, else `<root>/target`.
fn target_dir() -> PathBuf {
    let mut cmd = cargo();
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let from_metadata = cmd.output().ok().and_then(|out| {
        let json = String::from_utf8(out.stdout).ok()?;
        json_string(&json, "target_directory").map(PathBuf::from)
    });
    from_metadata
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root().join("target"))
}

/// The string value of the first `"key":"…"` in `json` (enough for cargo metadata's
/// flat `target_directory`).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

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
        pass.push(target_dir().join("bench").display().to_string());
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

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn finds_the_target_directory() {
        let json = r#"{"packages":[],"target_directory":"/w/a \"b\"/target","version":1}"#;
        assert_eq!(
            json_string(json, "target_directory").as_deref(),
            Some("/w/a \"b\"/target")
        );
        assert_eq!(json_string(json, "missing"), None);
    }
}
