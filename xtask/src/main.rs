//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: tidy, formatting, clippy, docs, every crate's tests and doctests, the
//!   loom model checks, the examples; ends with the line `N passed, M failed`.
//! - `demo`: a loopback demonstration of the adapters, with visible output.
//! - `bench`: the adapters side by side with native tokio, smol/async-io, std and a
//!   hand-written `polling` loop; a markdown table of ratios and an SVG chart.
//! - `soak`: the stress mix for N minutes, watching RSS and descriptors.
//! - `valgrind`: the core and callback suites under memcheck.
//! - `publish`: release checks and a dry run (or, with `--execute`, the release).

mod bench;
mod demo;
mod publish;
mod run;
mod soak;
mod test;
mod tidy;
mod valgrind;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  test     tidy, formatting, clippy, docs, all tests and doctests, loom model
           checks, examples (last line: N passed, M failed; --no-lints skips
           formatting, clippy and docs)
  demo     a loopback demonstration of every adapter
  bench    adapters vs native tokio, smol/async-io, std and a polling loop
           (release build); report on stdout and in target/bench/results.md
           and target/bench/chart.svg
             --quick            small sizes, under a minute
             --runs N           runs per cell (default 5; 3 with --quick)
             --out DIR          where results.md and chart.svg go
             --contenders a,b   callback, tokio-adapter-ct, tokio-adapter-mt,
                                smol-adapter, tokio-ct, tokio-mt, async-io,
                                std-threads, polling-loop
             --workloads x,y    bulk-64k, bulk-1k, ping-pong, fan-in, overhead,
                                memory
  soak     the stress mix, printing RSS and fds
             --minutes N        how long (default 1)
             --seed S           replay a run's choices (decimal or 0x hex)
  valgrind the core and callback suites under valgrind memcheck
  publish  release checks + cargo publish --workspace --dry-run
             --allow-dirty      package uncommitted changes too
             --execute          publish, in dependency order (needs
                                CARGO_REGISTRY_TOKEN)
";

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    let task = args.subcommand().ok().flatten();
    // `cargo xtask --help`, or `cargo xtask <task> --help` (or -h): the usage, whatever
    // the task (the README sends a new user to `cargo xtask --help`).
    if args.contains("--help") || args.contains("-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match task.as_deref() {
        Some("test") => test::run(args),
        Some("demo") => demo::run(args),
        Some("bench") => bench::run(args),
        Some("soak") => soak::run(args),
        Some("valgrind") => valgrind::run(args),
        Some("publish") => publish::run(args),
        Some("help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        None => Err(format!("which task?\n\n{USAGE}")),
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
