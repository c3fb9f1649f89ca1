//! `cargo xtask publish`: checks that every publishable crate is ready for crates.io,
//! then a dry run of `cargo publish --workspace` (the default), or with `--execute`
//! (and `CARGO_REGISTRY_TOKEN` set) a real publish in dependency order, waiting until
//! each version is visible in the index before publishing the next.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{cargo, echo, metadata, target_dir};

/// Publishable crates in dependency order (the core first).
const ORDER: &[&str] = &[
    "asyncresult-core",
    "asyncresult-callback",
    "asyncresult-tokio",
    "asyncresult-smol",
];

/// Fields crates.io and docs.rs users rely on.
const REQUIRED: &[&str] = &[
    "description",
    "license",
    "repository",
    "readme",
    "keywords",
    "categories",
    "rust_version",
];

/// Files that have no business in a package.
const JUNK: &[&str] = &[
    "target/",
    ".orig",
    ".rej",
    ".swp",
    "~",
    ".DS_Store",
    ".profraw",
    "perf.data",
    ".log",
];

/// Files cargo itself adds to every package (never junk).
const CARGO_GENERATED: &[&str] = &["Cargo.toml.orig", ".cargo_vcs_info.json", "Cargo.lock"];

/// Files every package must carry: the licence texts its `license` field names, and
/// the README its `readme` field names.
const REQUIRED_FILES: &[&str] = &["LICENSE-MIT", "LICENSE-APACHE", "README.md"];

fn field_missing(package: &Value, field: &str) -> bool {
    match package.get(field) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// Checks the manifests; returns the problems found.
fn check_manifests(meta: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let publishable: Vec<&Value> = packages
        .iter()
        .filter(|p| ORDER.contains(&p["name"].as_str().unwrap_or_default()))
        .collect();
    if publishable.len() != ORDER.len() {
        problems.push(format!("expected the crates {ORDER:?} in the workspace"));
    }
    let versions: Vec<&str> = publishable
        .iter()
        .filter_map(|p| p["version"].as_str())
        .collect();
    if versions.windows(2).any(|w| w[0] != w[1]) {
        problems.push(format!(
            "versions disagree across the workspace: {versions:?}"
        ));
    }
    for package in &publishable {
        let name = package["name"].as_str().unwrap_or("?");
        for field in REQUIRED {
            if field_missing(package, field) {
                problems.push(format!("{name}: `{field}` is missing"));
            }
        }
        if package["license"].as_str() != Some("MIT OR Apache-2.0") {
            problems.push(format!("{name}: license must be `MIT OR Apache-2.0`"));
        }
        let version = package["version"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !ORDER.contains(&dep_name) {
                continue;
            }
            let req = dep["req"].as_str().unwrap_or("*");
            let matches = req.trim_start_matches(['^', '=', '~']) == version;
            if !matches {
                problems.push(format!(
                    "{name}: internal dependency {dep_name} has requirement `{req}`, not {version}"
                ));
            }
        }
    }
    problems
}

/// Lists each crate's package contents; returns (crate, files, problems: junk that
/// would ship, or a required file that would not).
fn check_package_lists(allow_dirty: bool) -> Result<Vec<(String, usize, Vec<String>)>, String> {
    let mut results = Vec::new();
    for name in ORDER {
        let mut cmd = cargo();
        cmd.args(["package", "--list", "-p", name]);
        if allow_dirty {
            cmd.arg("--allow-dirty");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cargo package --list: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo package --list -p {name} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let files: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let mut junk: Vec<String> = files
            .iter()
            .filter(|f| !CARGO_GENERATED.contains(&f.as_str()))
            .filter(|f| JUNK.iter().any(|j| f.contains(j)))
            .cloned()
            .collect();
        for required in REQUIRED_FILES {
            if !files.iter().any(|f| f == required) {
                junk.push(format!("missing {required}"));
            }
        }
        results.push((name.to_string(), files.len(), junk));
    }
    Ok(results)
}

/// Whether `name@version` is in the crates.io index yet.
fn visible(name: &str, version: &str) -> bool {
    cargo()
        .args([
            "info",
            &format!("{name}@{version}"),
            "--registry",
            "crates-io",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes the dry run verify today's sources. It checks each crate against the others
/// as packaged now, offered as if from crates.io under their unpublished version; but
/// cargo takes a registry crate's name and version to mean fixed contents, so it would
/// reuse sources that an earlier dry run extracted into `$CARGO_HOME/registry/src` and
/// builds of them, and verify a crate against old code. So those extracted copies of
/// our own crates go (cargo extracts them again from the packages), and the dry run
/// builds in a target directory of its own, emptied first.
fn forget_earlier_dry_runs(meta: &Value, check_dir: &Path) {
    let _ = std::fs::remove_dir_all(check_dir);
    let Some(version) = version_of(meta, ORDER[0]) else {
        return;
    };
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(sources) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return;
    };
    for registry in registries.flatten() {
        for name in ORDER {
            let stale = registry.path().join(format!("{name}-{version}"));
            if stale.is_dir() && std::fs::remove_dir_all(&stale).is_ok() {
                println!("  removed {} (an earlier dry run's copy)", stale.display());
            }
        }
    }
}

pub fn run(mut args: pico_args::Arguments) -> Result<bool, String> {
    let execute = args.contains("--execute");
    let allow_dirty = args.contains("--allow-dirty");
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    let meta = metadata()?;
    println!("==> manifests");
    let problems = check_manifests(&meta);
    for p in &problems {
        println!("  problem: {p}");
    }
    if problems.is_empty() {
        println!("  every crate has description, license, repository, readme, keywords, categories, rust-version; versions agree");
    }

    println!("\n==> package contents");
    let lists = check_package_lists(allow_dirty)?;
    let mut junk_found = false;
    for (name, count, junk) in &lists {
        println!(
            "  {name}: {count} files{}",
            if junk.is_empty() {
                String::new()
            } else {
                format!(", problems: {junk:?}")
            }
        );
        junk_found |= !junk.is_empty();
    }

    println!("\n==> cargo publish --workspace --dry-run");
    let check_dir = target_dir(Some(&meta)).join("publish-check");
    forget_earlier_dry_runs(&meta, &check_dir);
    let mut dry = cargo();
    dry.args(["publish", "--workspace", "--dry-run"])
        .env("CARGO_TARGET_DIR", &check_dir);
    if allow_dirty {
        dry.arg("--allow-dirty");
    }
    let dry_ok = echo(dry, Duration::from_secs(1800))?.success;
    let sizes = package_sizes(&meta, &check_dir);
    for (name, size) in &sizes {
        println!("  {name}: {size}");
    }
    let ready = problems.is_empty() && !junk_found && dry_ok;
    if !execute {
        println!(
            "\n{}",
            if ready {
                "dry run passed: ready to publish (`cargo xtask publish --execute` with CARGO_REGISTRY_TOKEN set)"
            } else {
                "dry run FAILED"
            }
        );
        return Ok(ready);
    }
    if !ready {
        return Err("not publishing: the checks failed".into());
    }
    if std::env::var_os("CARGO_REGISTRY_TOKEN").is_none() {
        return Err("--execute needs CARGO_REGISTRY_TOKEN in the environment".into());
    }
    let version = version_of(&meta, ORDER[0])
        .ok_or("no version for asyncresult-core")?
        .to_string();
    for name in ORDER {
        if visible(name, &version) {
            println!("{name} {version} is already published; skipping");
            continue;
        }
        println!("\n==> publishing {name} {version}");
        let mut publish = cargo();
        publish.args(["publish", "-p", name]);
        if !echo(publish, Duration::from_secs(1800))?.success {
            return Err(format!("publishing {name} failed"));
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while !visible(name, &version) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} {version} did not appear in the index in 10 minutes"
                ));
            }
            println!("  waiting for {name} {version} in the index…");
            // Polling a remote index (not test synchronization).
            thread::sleep(Duration::from_secs(10));
        }
        println!("  {name} {version} is visible");
    }
    Ok(true)
}

/// The version of workspace package `name`, from `cargo metadata`.
fn version_of<'m>(meta: &'m Value, name: &str) -> Option<&'m str> {
    meta["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["version"]
        .as_str()
}

/// The packaged (compressed) size of each crate's `<name>-<version>.crate`.
fn package_sizes(meta: &Value, check_dir: &std::path::Path) -> Vec<(String, String)> {
    let dir = check_dir.join("package");
    let mut sizes = Vec::new();
    for name in ORDER {
        let Some(version) = version_of(meta, name) else {
            continue;
        };
        let crate_file = format!("{name}-{version}.crate");
        // `cargo package` writes it in `package/`; `cargo publish --workspace` in
        // `package/tmp-crate/`.
        let found = [
            dir.join(&crate_file),
            dir.join("tmp-crate").join(&crate_file),
        ]
        .into_iter()
        .find_map(|path| std::fs::metadata(path).ok());
        if let Some(file) = found {
            sizes.push((
                name.to_string(),
                format!("{:.1} KiB packaged", file.len() as f64 / 1024.0),
            ));
        }
    }
    sizes
}
