//! The report as markdown: what ran, the results table (medians), the adapter ÷
//! native peer table with targets, and what went wrong.

use std::fmt::Write;

use super::{Paired, Report};
use crate::contenders::Contender;
use crate::workload::{Metric, Workload};

/// The share of busy CPU time before the run from which the report warns of noise.
const BUSY_WARNING: f64 = 0.2;

/// The columns of the results table.
const COLUMNS: [(Workload, Metric); 10] = [
    (Workload::Bulk64K, Metric::GibPerSec),
    (Workload::Bulk1K, Metric::GibPerSec),
    (Workload::PingPong, Metric::P50Micros),
    (Workload::PingPong, Metric::P99Micros),
    (Workload::FanIn, Metric::MsgsPerSec),
    (Workload::Overhead, Metric::SendsPerSec),
    (Workload::Memory, Metric::BytesPerOp),
    (Workload::Memory, Metric::BytesPerRead),
    (Workload::Memory, Metric::BytesPerSocket),
    (Workload::Memory, Metric::FutureBytes),
];

fn arrow(metric: Metric) -> &'static str {
    if metric.higher_is_better() {
        "↑"
    } else {
        "↓"
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{cpus} CPUs, Linux {kernel}")
}

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let plan = &report.plan;
    let scale = &plan.scale;
    let mut out = String::new();
    let mode = if scale.quick { "--quick" } else { "full" };
    let runs = if plan.runs == 1 {
        "1 run per cell (no median: one sample each)".to_string()
    } else {
        format!("{} runs per cell, each value the median", plan.runs)
    };
    let _ = writeln!(out, "# asyncresult bench ({mode})\n");
    let _ = writeln!(
        out,
        "{runs}; contenders interleaved run by run, their order rotated by one place each \
         run; every cell in a fresh process, limited to {} s. {}; loopback 127.0.0.1 \
         only. Wall time {:.0} s.\n",
        scale.cell_timeout.as_secs(),
        machine(),
        report.seconds
    );
    if scale.quick {
        let _ = writeln!(
            out,
            "**Quick mode:** small sizes and few runs, to check that everything runs. Its \
             verdicts are rough (short cells are noisier); judge the targets on a full \
             run (`cargo xtask bench`).\n"
        );
    }

    if let Some(busy) = report.busy_before {
        let _ = writeln!(
            out,
            "Other processes kept {:.0}% of the CPU time busy in the half second before \
             the run.{}\n",
            busy * 100.0,
            if busy >= BUSY_WARNING {
                " **The machine was busy when the bench started: other processes \
                 competed for the CPUs, so expect noise (see Noisy cells).**"
            } else {
                ""
            }
        );
    }

    let _ = writeln!(out, "## Workloads\n\n| workload | what |\n|---|---|");
    for w in &plan.workloads {
        let _ = writeln!(out, "| {w} | {} |", w.describe(scale));
    }
    let _ = writeln!(out, "\n## Contenders\n\n| contender | what |\n|---|---|");
    for c in &plan.contenders {
        let _ = writeln!(out, "| {c} | {} |", c.describe());
    }

    results_table(&mut out, report);
    ratio_table(&mut out, report);
    noisy(&mut out, report);
    problems(&mut out, report);
    out
}

/// Cells whose runs disagree by more than this factor (max ÷ min) are listed.
const NOISY: f64 = 1.2;

fn noisy(out: &mut String, report: &Report) {
    let mut lines = Vec::new();
    for (&(w, c), summary) in &report.summaries {
        for &m in w.metrics() {
            let Some(spread) = summary.spread(m).filter(|s| *s > NOISY) else {
                continue;
            };
            let runs: Vec<String> = summary.samples[&m].iter().map(|v| m.format(*v)).collect();
            lines.push(format!(
                "| {w} | {c} | {} | {} | {spread:.2}× |",
                m.label(),
                runs.join(", ")
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "\n## Noisy cells\n\nCells whose runs differ by more than {NOISY}× (max ÷ min); \
             their medians, and ratios built on them, deserve less trust.\n\n\
             | workload | contender | metric | runs | max ÷ min |\n|---|---|---|---|---:|\n{}",
            lines.join("\n")
        );
    }
}

fn results_table(out: &mut String, report: &Report) {
    let plan = &report.plan;
    let columns: Vec<_> = COLUMNS
        .iter()
        .filter(|(w, _)| plan.workloads.contains(w))
        .collect();
    let _ = writeln!(
        out,
        "\n## Results{}\n\n↑ higher is better, ↓ lower is better; `*` some runs failed \
         (see Problems); `—` not applicable.\n",
        if plan.runs > 1 {
            format!(" (median of {} runs)", plan.runs)
        } else {
            String::new()
        }
    );
    let mut header = String::from("| contender |");
    let mut rule = String::from("|---|");
    for (w, m) in &columns {
        let _ = write!(header, " {w} {} {} |", m.label(), arrow(*m));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for &c in &plan.contenders {
        let mut row = format!("| {c} |");
        for &&(w, m) in &columns {
            let _ = write!(row, " {} |", report.cell(w, c, m));
        }
        let _ = writeln!(out, "{row}");
    }
}

fn ratio_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "\n## Adapters ÷ native peers\n\n\
         ratio = adapter ÷ peer. **Throughput (↑): a ratio > 1 is better** (the adapter \
         is faster). **Latency and memory (↓): a ratio < 1 is better.** Memory bytes/op \
         and bytes/read have an absolute target (and, for smol, a ratio target too: two \
         rows each). B/op compares the adapter's receive, which takes an owned buffer, \
         with the native stack's read into a borrowed slice; B/read compares the same \
         `AsyncRead` read on both. A verdict \
         marked *(runs overlap)* compares medians of runs whose ranges overlap: that \
         difference is within this machine's noise, and another run may turn it (see \
         Noisy cells). *Runs ahead* pairs the adapter's run *r* with its peer's run *r*, \
         measured in the same pass a few cells apart, and counts the pairs where the adapter \
         did better: a drift of the machine moves both sides of a pair, where it can move \
         one median and not the other.\n"
    );
    if report.ratios.is_empty() {
        let _ = writeln!(
            out,
            "No ratios: this run has no adapter together with its native peer on a \
             workload (pairs: tokio-adapter-ct with tokio-ct, tokio-adapter-mt with \
             tokio-mt, smol-adapter with async-io, callback with polling-loop).\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "| adapter | peer | workload | metric | adapter value | peer value | ratio | runs ahead | target | verdict |\n\
         |---|---|---|---|---:|---:|---:|---:|---|---|"
    );
    for r in &report.ratios {
        let ratio = r
            .ratio
            .map_or_else(|| "—".to_string(), |x| format!("{x:.2}×"));
        let target = r
            .target
            .map_or_else(|| "—".to_string(), |t| t.describe(r.metric));
        let verdict = match r.verdict() {
            Some((word, overlap)) => {
                let word = if word == "MISS" { "**MISS**" } else { word };
                let overlap = if overlap { " *(runs overlap)*" } else { "" };
                format!("{word}{overlap}")
            }
            None if r.target.is_some() => "n/a".into(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} | {} | {ratio} | {} | {target} | {verdict} |",
            r.adapter,
            r.peer,
            r.workload,
            r.metric.label(),
            arrow(r.metric),
            report.cell(r.workload, r.adapter, r.metric),
            report.cell(r.workload, r.peer, r.metric),
            runs_ahead(r.paired),
        );
    }
}

/// "3 of 5", with the level pairs said when there are any: "0 of 5 (5 level)".
fn runs_ahead(paired: Option<Paired>) -> String {
    match paired {
        None => "—".into(),
        Some(p) if p.level > 0 => format!("{} of {} ({} level)", p.ahead, p.pairs(), p.level),
        Some(p) => format!("{} of {}", p.ahead, p.pairs()),
    }
}

fn problems(out: &mut String, report: &Report) {
    let mut lines = Vec::new();
    for (&(w, c), summary) in &report.summaries {
        let c: Contender = c;
        for problem in &summary.problems {
            lines.push(format!("- {w} / {c}: {problem}"));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "\n## Problems\n\n{}", lines.join("\n"));
    }
}
