//! The tidy checks that `cargo xtask test` runs before anything is compiled: every
//! module says what it owns (`//!`), internal dependencies carry versions (so
//! publishing works), library code neither prints nor unwraps.

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::root;

/// Library crates: no printing, no unwrapping outside tests.
const LIBRARIES: &[&str] = &["core", "adapter-callback", "adapter-tokio", "adapter-smol"];
/// Every crate whose modules need a `//!` paragraph.
const ALL_SOURCES: &[&str] = &[
    "core/src",
    "adapter-callback/src",
    "adapter-tokio/src",
    "adapter-smol/src",
    "conformance/src",
    "bench/src",
    "xtask/src",
];
const INTERNAL: &[&str] = &[
    "asyncresult-core",
    "asyncresult-callback",
    "asyncresult-tokio",
    "asyncresult-smol",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One finding: where, and what is wrong.
pub struct Finding {
    pub place: String,
    pub problem: String,
}

fn module_docs(findings: &mut Vec<Finding>) {
    for dir in ALL_SOURCES {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("#!["));
            if !first.is_some_and(|l| l.starts_with("//!")) {
                findings.push(Finding {
                    place: file.display().to_string(),
                    problem: "module has no `//!` paragraph on top".into(),
                });
            }
        }
    }
}

fn internal_versions(findings: &mut Vec<Finding>) {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    for name in INTERNAL {
        let line = manifest
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} =")));
        match line {
            Some(l) if l.contains("path") && l.contains("version") => {}
            _ => findings.push(Finding {
                place: "Cargo.toml [workspace.dependencies]".into(),
                problem: format!("{name} needs both `path` and `version`"),
            }),
        }
    }
}

/// Library code up to the first `#[cfg(test)]` of each file (a whole file of tests
/// says so with an inner `#![cfg(test)]` or `#![cfg(all(test, …))]`).
fn library_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().take_while(|(_, l)| {
        let l = l.replace("#![", "#[");
        !l.contains("#[cfg(test)]") && !l.contains("#[cfg(all(test")
    })
}

fn library_hygiene(findings: &mut Vec<Finding>) {
    for lib in LIBRARIES {
        let mut files = Vec::new();
        rust_files(&root().join(lib).join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in library_lines(&text) {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let place = format!("{}:{}", file.display(), n + 1);
                for printer in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                    if code.contains(printer) {
                        findings.push(Finding {
                            place: place.clone(),
                            problem: format!("`{printer}` in library code"),
                        });
                    }
                }
                if code.contains(".unwrap()") || code.contains(".expect(") {
                    let justified = [n.wrapping_sub(1), n]
                        .iter()
                        .filter_map(|&i| lines.get(i))
                        .any(|l| l.to_lowercase().contains("infallible"));
                    if !justified {
                        findings.push(Finding {
                            place,
                            problem:
                                "unwrap/expect in library code without an `infallible` comment"
                                    .into(),
                        });
                    }
                }
            }
        }
    }
}

/// Runs every check; returns what failed.
pub fn check() -> Vec<Finding> {
    let mut findings = Vec::new();
    module_docs(&mut findings);
    internal_versions(&mut findings);
    library_hygiene(&mut findings);
    findings
}
