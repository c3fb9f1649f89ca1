//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: formatting, clippy, docs, every crate's tests and doctests, the examples;
//!   ends with the line `N passed, M failed`.
//! - `demo`: a loopback demonstration of the adapters, with visible output.

mod demo;
mod run;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  test     formatting, clippy, docs, all tests and doctests, examples
           (last line: N passed, M failed)
  demo     a loopback demonstration of every adapter
";

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    let task = args.subcommand().ok().flatten();
    let result = match task.as_deref() {
        Some("test") => test::run(args),
        Some("demo") => demo::run(args),
        Some("help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
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
