//! `cargo xtask demo`: runs each adapter's loopback demonstration (release mode), one
//! after the other, then sets their numbers side by side.

use std::time::Duration;

use crate::run::{cargo, echo, echo_some};

/// Examples that `cargo xtask test` runs to completion: (package, example).
pub const EXAMPLES: &[(&str, &str)] = &[
    ("asyncresult-callback", "send_callback"),
    ("asyncresult-callback", "callback_demo"),
    ("asyncresult-callback", "fast_path"),
    ("asyncresult-callback", "callback_echo"),
    ("asyncresult-callback", "udp"),
    ("asyncresult-tokio", "tokio_demo"),
    ("asyncresult-tokio", "tokio_echo"),
    ("asyncresult-smol", "smol_demo"),
    ("asyncresult-smol", "smol_echo"),
    ("asyncresult-conformance", "one_protocol"),
];

/// The demonstrations, in the order shown: (package, example, column title).
const DEMOS: &[(&str, &str, &str)] = &[
    ("asyncresult-callback", "callback_demo", "callback"),
    ("asyncresult-tokio", "tokio_demo", "tokio"),
    ("asyncresult-smol", "smol_demo", "smol"),
];

/// The numbers compared at the end: (key in the demos' `RESULT` lines, label).
const ROWS: &[(&str, &str)] = &[
    ("connect_us", "connect + accept (µs)"),
    ("small_send_us", "small send, fastest (µs)"),
    ("large_send_ms", "8 MiB whole send (ms)"),
    ("udp_round_trip_us", "UDP round trip (µs)"),
    ("round_trip_us", "TCP round trip, 64 B (µs)"),
];

fn is_result(line: &str) -> bool {
    line.starts_with("RESULT ")
}

pub fn run(args: pico_args::Arguments) -> Result<bool, String> {
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    // Build first, with cargo's progress showing: on a cold machine this is the long
    // part, and the runs below are quiet.
    println!("==> building the demonstrations (release; a few minutes the first time)");
    let mut build = cargo();
    build.args(["build", "--release"]);
    for (package, example, _) in DEMOS {
        build.args(["-p", package, "--example", example]);
    }
    if !echo(build, Duration::from_secs(1800))?.success {
        return Ok(false);
    }
    let mut ok = true;
    let mut columns = Vec::new();
    for (package, example, title) in DEMOS {
        println!("\n=== {title} adapter ({package}, example `{example}`) ===\n");
        let mut cmd = cargo();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "-p",
            package,
            "--example",
            example,
        ]);
        let out = echo_some(cmd, Duration::from_secs(600), |line| !is_result(line))?;
        ok &= out.success;
        let values: Vec<(String, String)> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        columns.push((*title, values));
    }
    println!("\n=== side by side (one run each, loopback, this machine) ===\n");
    print!("{:28}", "");
    for (title, _) in &columns {
        print!("{title:>12}");
    }
    println!();
    for (key, label) in ROWS {
        print!("{label:28}");
        for (_, values) in &columns {
            let value = values
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
            print!("{value:>12}");
        }
        println!();
    }
    Ok(ok)
}
