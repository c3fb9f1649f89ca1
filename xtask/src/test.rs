//! `cargo xtask test`: the whole suite, as CI runs it.
//!
//! Steps: tidy, rustfmt check, clippy with warnings denied on every target, rustdoc with
//! warnings denied, every crate's tests and doctests, the loom model checks of the
//! operation lifecycle, the conformance matrix, then the examples. Tests count
//! one each (from libtest's `test result:` lines); every other step counts as one
//! check. The last line is `N passed, M failed`.

use std::time::{Duration, Instant};

use crate::run::{cargo, count_tests, echo, Output};

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    ignored: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name.to_string());
        }
    }

    /// Adds the libtest results of a `cargo test` run; a run that timed out, did not
    /// complete (a build error, a crash) or ran no test counts as one failed check.
    fn tests(&mut self, label: &str, out: &Output) {
        let (passed, failed, ignored, _) = count_tests(&out.stdout);
        self.passed += passed;
        self.failed += failed;
        self.ignored += ignored;
        if failed > 0 {
            self.failures.push(format!("{failed} test(s) of {label}"));
        }
        if out.timed_out {
            self.check(&format!("{label} (timed out)"), false);
        } else if !out.success && failed == 0 {
            self.check(&format!("{label} (did not complete)"), false);
        } else if passed == 0 {
            self.check(&format!("{label} (ran no test)"), false);
        }
    }
}

/// The conformance suite's adapters, as its test modules name them, and as shown.
const ADAPTERS: &[(&str, &str)] = &[
    ("callback", "callback"),
    ("tokio_ct", "tokio-ct"),
    ("tokio_mt", "tokio-mt"),
    ("smol", "smol"),
];

/// Prints the scenario × adapter matrix from the conformance tests' result lines
/// (`test <adapter>::<scenario> ... ok`); returns whether every cell passed.
fn print_matrix(stdout: &str) -> bool {
    let mut scenarios: Vec<String> = Vec::new();
    let mut cells: Vec<(String, String, bool)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, outcome)) = rest.split_once(" ... ") else {
            continue;
        };
        let Some((adapter, scenario)) = name.split_once("::") else {
            continue;
        };
        if !ADAPTERS.iter().any(|(module, _)| *module == adapter) || scenario.contains("::") {
            continue;
        }
        if !scenarios.iter().any(|s| s == scenario) {
            scenarios.push(scenario.to_string());
        }
        cells.push((
            adapter.to_string(),
            scenario.to_string(),
            outcome.trim() == "ok",
        ));
    }
    if scenarios.is_empty() {
        println!("conformance matrix: no results found");
        return false;
    }
    let width = scenarios.iter().map(String::len).max().unwrap_or(8).max(8);
    print!("{:width$}", "scenario");
    for (_, shown) in ADAPTERS {
        print!("  {shown:>9}");
    }
    println!();
    let mut all = true;
    for scenario in &scenarios {
        print!("{scenario:width$}");
        for (module, _) in ADAPTERS {
            let cell = cells
                .iter()
                .find(|(a, s, _)| a == module && s == scenario)
                .map(|(_, _, ok)| *ok);
            let shown = match cell {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "missing",
            };
            all &= cell == Some(true);
            print!("  {shown:>9}");
        }
        println!();
    }
    all
}

fn banner(title: &str) {
    println!("\n==> {title}");
}

pub fn run(mut args: pico_args::Arguments) -> Result<bool, String> {
    let skip_lints = args.contains("--no-lints");
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    let started = Instant::now();
    let mut tally = Tally::default();

    banner("tidy (module docs, internal versions, no printing or unwrapping in libraries)");
    let findings = crate::tidy::check();
    for f in &findings {
        println!("  {}: {}", f.place, f.problem);
    }
    tally.check("tidy", findings.is_empty());

    if !skip_lints {
        banner("rustfmt --check");
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        tally.check("rustfmt", echo(fmt, Duration::from_secs(120))?.success);

        banner("clippy (all targets, -D warnings)");
        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        tally.check("clippy", echo(clippy, Duration::from_secs(900))?.success);

        banner("rustdoc (-D warnings)");
        let mut doc = cargo();
        doc.args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings");
        tally.check("rustdoc", echo(doc, Duration::from_secs(600))?.success);
    }

    banner("tests and doctests");
    let mut test = cargo();
    test.args(["test", "--workspace", "--no-fail-fast"]);
    let out = echo(test, Duration::from_secs(1200))?;
    tally.tests("cargo test", &out);

    banner("model checking (loom: the operation lifecycle, every interleaving)");
    let mut loom = cargo();
    loom.args([
        "test",
        "--release",
        "-p",
        "asyncresult-core",
        "--lib",
        "model",
    ])
    .env("RUSTFLAGS", "--cfg loom")
    .env("LOOM_MAX_PREEMPTIONS", "3")
    .env(
        "CARGO_TARGET_DIR",
        crate::run::root().join("target").join("loom"),
    );
    let loom_out = echo(loom, Duration::from_secs(900))?;
    tally.tests("loom model checks", &loom_out);

    banner("conformance matrix (scenario x adapter)");
    tally.check("conformance matrix complete", print_matrix(&out.stdout));

    banner("examples");
    for (package, example) in crate::demo::EXAMPLES {
        println!("--- {package} --example {example}");
        let mut cmd = cargo();
        cmd.args(["run", "--quiet", "-p", package, "--example", example]);
        let ok = echo(cmd, Duration::from_secs(300))?.success;
        tally.check(&format!("example {package}/{example}"), ok);
    }

    println!();
    println!(
        "suite finished in {:.0?}; {} ignored (child-process scenarios run by their parent tests, and the soak)",
        started.elapsed(),
        tally.ignored
    );
    if !tally.failures.is_empty() {
        println!("failed: {}", tally.failures.join(", "));
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}

#[cfg(test)]
mod tests {
    use crate::run::count_tests;

    #[test]
    fn counts_libtest_summaries() {
        let out = "running 3 tests\n\
                   test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n\
                   test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.0s\n";
        assert_eq!(count_tests(out), (8, 2, 1, 2));
    }
}
