//! The stress mix (`asyncresult_conformance::stress`): `stress` runs it to 200,000
//! operations over 64+ sockets through every adapter with random closes, resets and
//! cancels; `soak` (ignored; `cargo xtask soak --minutes N`) runs it for N minutes and
//! also fails if descriptors or RSS keep growing. The seed is printed; set
//! `ASYNCRESULT_STRESS_SEED` to replay one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use asyncresult_conformance::bounded;
use asyncresult_conformance::stress::{self, Config, Report};

/// Writes past libtest's output capture, so the line shows in every run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs the mix on a thread of its own, failing the test if it outlives `limit` (the
/// mix bounds its own waits; this is the last line of defence).
fn run_bounded(config: Config, limit: Duration) -> Report {
    let hung = format!(
        "the stress run (seed {:#x}) hung: no report after {limit:?}",
        config.seed
    );
    bounded(limit, &hung, move || stress::run(&config))
}

fn seed() -> u64 {
    let seed = stress::seed_from_env().expect("seed");
    say(&format!(
        "stress seed {seed:#x} (replay with {}={seed:#x})",
        stress::SEED_ENV
    ));
    seed
}

#[test]
fn stress() {
    let seed = seed();
    let report = run_bounded(Config::test(seed), Duration::from_secs(600));
    say(&report.summary());
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "stress run failed (seed {seed:#x}, replay with {}={seed:#x}):\n  {}",
        stress::SEED_ENV,
        problems.join("\n  ")
    );
}

#[test]
#[ignore = "long: run by `cargo xtask soak --minutes N`"]
fn soak() {
    let minutes = match std::env::var(stress::SOAK_MINUTES_ENV) {
        Ok(text) => text.trim().parse::<u64>().expect("minutes"),
        Err(_) => 1,
    };
    assert!(
        minutes > 0,
        "{} must be at least 1",
        stress::SOAK_MINUTES_ENV
    );
    let seed = seed();
    say(&format!("soak: {minutes} minute(s)"));
    let limit = Duration::from_secs(minutes * 60 + 600);
    let report = run_bounded(Config::soak(seed, minutes), limit);
    say(&report.summary());
    let mut problems = report.problems();
    problems.extend(report.growth_problems());
    assert!(
        problems.is_empty(),
        "soak failed (seed {seed:#x}, replay with {}={seed:#x}):\n  {}",
        stress::SEED_ENV,
        problems.join("\n  ")
    );
}
