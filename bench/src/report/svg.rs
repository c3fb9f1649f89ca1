//! The ratio table as a hand-written SVG bar chart. Each bar is an adapter's speed
//! relative to its native peer with **higher always better**: throughput ratios as
//! they are, latency ratios inverted (peer ÷ adapter). A dashed line marks parity, a
//! black tick the target; bars are green (PASS), red (MISS) or grey (no target), and
//! each is labelled with the ratio as printed in the table. Memory rows are left out:
//! they measure size, not speed (the table has them, with their targets).

use std::fmt::Write;

use super::targets::{Bound, Target};
use super::{RatioRow, Report};
use crate::workload::Workload;

const WIDTH: f64 = 960.0;
const LABEL: f64 = 330.0;
const PLOT: f64 = 470.0;
const ROW: f64 = 22.0;
const TOP: f64 = 56.0;

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where the target sits on the "higher is better" scale.
fn target_score(row: &RatioRow) -> Option<f64> {
    let Some(Target::Ratio(bound)) = row.target else {
        return None;
    };
    let limit = bound.limit();
    match bound {
        Bound::AtLeast(_) => Some(limit),
        Bound::AtMost(_) if limit > 0.0 => Some(1.0 / limit),
        Bound::AtMost(_) => None,
    }
}

/// Renders the chart.
pub fn render(report: &Report) -> String {
    let rows: Vec<&RatioRow> = report
        .ratios
        .iter()
        .filter(|r| r.workload != Workload::Memory)
        .collect();
    let max_score = rows
        .iter()
        .filter_map(|r| match (r.score(), target_score(r)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
        .fold(1.5_f64, f64::max)
        * 1.1;
    let x = |score: f64| LABEL + PLOT * (score / max_score).min(1.0);
    let height = TOP + ROW * rows.len() as f64 + 40.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let mode = if report.plan.scale.quick {
        "--quick"
    } else {
        "full"
    };
    let _ = writeln!(
        svg,
        r##"<text x="10" y="20" font-size="15" font-weight="bold">asyncresult adapters vs native peers ({mode}, {} run(s) per cell)</text>"##,
        report.plan.runs
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="38" fill="#444">bar = speed relative to the peer, higher is better (latency ratios inverted); label = ratio as in the table; tick = target</text>"##
    );

    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        if i % 2 == 0 {
            let _ = writeln!(
                svg,
                r##"<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="#f4f4f4"/>"##
            );
        }
        let text_y = y + 15.0;
        let label = format!(
            "{} ÷ {} · {} {}",
            row.adapter,
            row.peer,
            row.workload,
            row.metric.label()
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{text_y}" text-anchor="end">{}</text>"##,
            LABEL - 8.0,
            escape(&label)
        );
        let colour = match row.pass {
            Some(true) => "#2e7d32",
            Some(false) => "#c62828",
            None => "#8a8a8a",
        };
        match row.score() {
            Some(score) => {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{LABEL}" y="{}" width="{:.1}" height="{}" fill="{colour}"/>"##,
                    y + 4.0,
                    x(score) - LABEL,
                    ROW - 8.0
                );
            }
            None => {
                let why = format!(
                    "no ratio (adapter {}, peer {})",
                    report.cell(row.workload, row.adapter, row.metric),
                    report.cell(row.workload, row.peer, row.metric)
                );
                let _ = writeln!(
                    svg,
                    r##"<text x="{}" y="{text_y}" fill="{colour}">{}</text>"##,
                    LABEL + 6.0,
                    escape(&why)
                );
            }
        }
        if let Some(t) = target_score(row) {
            let tx = x(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="black" stroke-width="2"/>"##,
                y + 1.0,
                y + ROW - 1.0
            );
        }
        let verdict = match row.verdict() {
            Some((word, true)) => format!(" {word} (runs overlap)"),
            Some((word, false)) => format!(" {word}"),
            None => String::new(),
        };
        let ratio = row.ratio.map_or_else(String::new, |r| format!("{r:.2}×"));
        let better = if row.metric.higher_is_better() {
            "(higher better)"
        } else {
            "(lower better)"
        };
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{text_y}">{ratio} {better}{verdict}</text>"##,
            LABEL + PLOT + 10.0
        );
    }

    let bottom = TOP + ROW * rows.len() as f64;
    let parity = x(1.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{parity:.1}" y1="{}" x2="{parity:.1}" y2="{bottom}" stroke="#333" stroke-dasharray="4 3"/>"##,
        TOP - 4.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{LABEL}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>"##,
        LABEL + PLOT
    );
    let mut tick = 0.0;
    while tick <= max_score + 1e-9 {
        let tx = x(tick);
        let _ = writeln!(
            svg,
            r##"<text x="{tx:.1}" y="{}" text-anchor="middle" fill="#444">{tick:.1}×</text>"##,
            bottom + 16.0
        );
        tick += if max_score > 4.0 { 1.0 } else { 0.5 };
    }
    let _ = writeln!(
        svg,
        r##"<text x="{parity:.1}" y="{}" text-anchor="middle" fill="#333">parity</text>"##,
        bottom + 32.0
    );
    svg.push_str("</svg>\n");
    svg
}
