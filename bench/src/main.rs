//! `cargo xtask bench`: asyncresult's adapters side by side with what users would
//! otherwise pick — native tokio, native smol/async-io, blocking std threads and a
//! hand-written `polling` loop — over loopback TCP, in one run.
//!
//! Workloads: bulk transfer (64 KiB and 1 KiB sends), 64-byte ping-pong latency,
//! fan-in of many connections, the cost of a synchronously completing send, and heap
//! bytes per socket and per pending operation. Each cell (contender × workload) runs
//! in a fresh child process of this binary, bounded in time; contenders are
//! interleaved run by run, their order rotated by one place each run, and each value
//! is the median of the runs; each adapter ÷ peer ratio also says in how many runs,
//! paired by pass, the adapter did better. Every workload verifies the bytes it moved.
//!
//! Progress goes to stderr; the report (markdown) to stdout and, with the chart, to
//! `<out>/results.md` and `<out>/chart.svg`.
//!
//! ```text
//! asyncresult-bench [--quick] [--runs N] [--out DIR]
//!                   [--contenders a,b,…] [--workloads x,y,…]
//! ```

mod alloc;
mod cell;
mod contenders;
mod loopback;
mod payload;
mod report;
mod runner;
mod scale;
mod stats;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use contenders::Contender;
use report::Report;
use runner::Plan;
use scale::Scale;
use workload::Workload;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const USAGE: &str = "\
usage: asyncresult-bench [--quick] [--runs N] [--out DIR]
                         [--contenders a,b,...] [--workloads x,y,...]

  --quick        small sizes: finishes in under a minute
  --runs N       runs per cell (default 5; 3 with --quick)
  --out DIR      where results.md and chart.svg go (default <target>/bench)
  --contenders   callback, tokio-adapter-ct, tokio-adapter-mt, smol-adapter,
                 tokio-ct, tokio-mt, async-io, std-threads, polling-loop
  --workloads    bulk-64k, bulk-1k, ping-pong, fan-in, overhead, memory
";

/// Parsed command line.
#[derive(Debug)]
enum Mode {
    /// Run the plan and report.
    Bench { plan: Plan, out: PathBuf },
    /// Run one cell (internal: the parent starts these).
    Cell(Contender, Workload, Scale),
    /// Print usage.
    Help,
}

fn list<T: PartialEq>(arg: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    let mut items = Vec::new();
    for key in arg.split(',') {
        let item = parse(key.trim()).ok_or_else(|| format!("unknown name `{key}`\n\n{USAGE}"))?;
        // A name given twice runs once.
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

/// The default output directory: `$CARGO_TARGET_DIR/bench`, else the workspace's
/// `target/bench`.
fn default_out() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest
                .parent()
                .map_or_else(|| manifest.join("target"), |root| root.join("target"))
        });
    target.join("bench")
}

fn parse(args: Vec<String>) -> Result<Mode, String> {
    let mut quick = false;
    let mut runs = None;
    let mut out = None;
    let mut contenders = Contender::ALL.to_vec();
    let mut workloads = Workload::ALL.to_vec();
    let mut cell = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--runs" => {
                let n = value()?;
                runs = Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("bad --runs `{n}`"))?,
                );
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--contenders" => contenders = list(&value()?, Contender::from_key)?,
            "--workloads" => workloads = list(&value()?, Workload::from_key)?,
            "--cell" => {
                let c = value()?;
                let w = value()?;
                cell = Some((
                    Contender::from_key(&c).ok_or_else(|| format!("unknown contender `{c}`"))?,
                    Workload::from_key(&w).ok_or_else(|| format!("unknown workload `{w}`"))?,
                ));
            }
            "-h" | "--help" => return Ok(Mode::Help),
            other => return Err(format!("unexpected argument `{other}`\n\n{USAGE}")),
        }
    }
    let scale = Scale::new(quick);
    if let Some((contender, workload)) = cell {
        return Ok(Mode::Cell(contender, workload, scale));
    }
    Ok(Mode::Bench {
        plan: Plan {
            scale,
            runs: runs.unwrap_or(if quick { 3 } else { 5 }),
            contenders,
            workloads,
        },
        out: out.unwrap_or_else(default_out),
    })
}

/// How long the bench watches the CPUs before it starts (see `report::busy_share`).
const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

fn bench(plan: &Plan, out: &std::path::Path) -> Result<(), String> {
    let started = Instant::now();
    eprintln!(
        "asyncresult bench: {} contenders × {} workloads × {} run(s), {} scale, results in {}",
        plan.contenders.len(),
        plan.workloads.len(),
        plan.runs,
        if plan.scale.quick { "quick" } else { "full" },
        out.display()
    );
    // Fail now, not after minutes of running, if the results cannot be written.
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let busy_before = report::busy_share(BUSY_WINDOW);
    let results = runner::run(plan);
    let report = Report::new(plan, &results, started.elapsed().as_secs_f64(), busy_before);
    let markdown = report::markdown::render(&report);
    print!("{markdown}");
    let md_path = out.join("results.md");
    let svg_path = out.join("chart.svg");
    std::fs::write(&md_path, &markdown)
        .map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, report::svg::render(&report))
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        md_path.display(),
        svg_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = loopback::raise_fd_limit() {
        eprintln!("asyncresult-bench: cannot raise the file-descriptor limit: {e}");
    }
    match parse(std::env::args().skip(1).collect()) {
        Ok(Mode::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Mode::Cell(contender, workload, scale)) => {
            cell::child_main(contender, workload, scale);
            // Exiting here also ends a cell thread that is still hung.
            std::process::exit(0)
        }
        Ok(Mode::Bench { plan, out }) => match bench(&plan, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("asyncresult-bench: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("asyncresult-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
