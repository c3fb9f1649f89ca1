//! `cargo xtask soak [--minutes N] [--seed S]`: the stress mix of the conformance suite
//! (`asyncresult_conformance::stress`) for N minutes (default 1), release build.
//!
//! The workload lives in the conformance crate, so this task runs its ignored `soak`
//! test: `cargo test --release -p asyncresult-conformance --test stress -- --ignored
//! --exact soak --nocapture`, with the minutes (and the seed, if given) in the
//! environment. The test prints a line with operations, descriptors and RSS every
//! five seconds, then the run's summary; it fails if any operation did not complete
//! exactly once, if data arrived damaged, if anything hung, if descriptors did not
//! return to their baseline, or if descriptors or RSS kept growing (the last third of
//! the samples against the first third).

use std::time::Duration;

use crate::run::{cargo, count_tests, echo};

/// The soak's length, read by the test (`asyncresult_conformance::stress::
/// SOAK_MINUTES_ENV`; xtask depends on no workspace crate, so it is spelled here).
const MINUTES_ENV: &str = "ASYNCRESULT_SOAK_MINUTES";
/// The seed, read by the test (`asyncresult_conformance::stress::SEED_ENV`).
const SEED_ENV: &str = "ASYNCRESULT_STRESS_SEED";

/// Time for the release build and for the run's own warm-up and shutdown, on top of
/// the minutes asked for.
const SLACK: Duration = Duration::from_secs(1200);

/// Runs the soak; `Ok(true)` if it passed.
pub fn run(mut args: pico_args::Arguments) -> Result<bool, String> {
    let minutes: u64 = args
        .opt_value_from_str("--minutes")
        .map_err(|e| format!("--minutes: {e}"))?
        .unwrap_or(1);
    let seed: Option<String> = args
        .opt_value_from_str("--seed")
        .map_err(|e| format!("--seed: {e}"))?;
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    if minutes == 0 {
        return Err("--minutes must be at least 1".into());
    }
    if let Some(seed) = &seed {
        if parse_seed(seed).is_none() {
            return Err(format!(
                "--seed: `{seed}` is not a number (decimal, or hexadecimal with 0x)"
            ));
        }
    }
    println!("==> soak: the stress mix for {minutes} minute(s), release build");
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "asyncresult-conformance",
        "--test",
        "stress",
        "--",
        "--ignored",
        "--exact",
        "soak",
        "--nocapture",
    ])
    .env(MINUTES_ENV, minutes.to_string());
    if let Some(seed) = seed {
        cmd.env(SEED_ENV, seed);
    }
    let out = echo(cmd, Duration::from_secs(minutes * 60) + SLACK)?;
    // Exactly the one test must have run and passed (a filter that matched nothing
    // would pass too).
    let (passed_tests, failed_tests, _, binaries) = count_tests(&out.stdout);
    let ran = passed_tests == 1 && failed_tests == 0 && binaries == 1;
    let passed = out.success && ran;
    println!(
        "\nsoak: {}",
        match (passed, out.timed_out) {
            (true, _) => "passed",
            (false, true) => "FAILED (timed out)",
            (false, false) => "FAILED",
        }
    );
    Ok(passed)
}

/// The seed as the test reads it (decimal, or hexadecimal with `0x`), to refuse a bad
/// one here rather than after the release build.
fn parse_seed(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seed;

    #[test]
    fn seeds_are_decimal_or_hexadecimal() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("zz"), None);
        assert_eq!(parse_seed(""), None);
    }
}
