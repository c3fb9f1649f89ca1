//! `cargo xtask demo`: runs each adapter's loopback demonstration, in release mode.

use std::time::Duration;

use crate::run::{cargo, echo};

/// Examples that `cargo xtask test` runs to completion: (package, example).
pub const EXAMPLES: &[(&str, &str)] = &[
    ("asyncresult-callback", "send_callback"),
    ("asyncresult-callback", "demo"),
];

/// The demonstrations, in the order shown.
const DEMOS: &[(&str, &str)] = &[("asyncresult-callback", "demo")];

pub fn run(args: pico_args::Arguments) -> Result<bool, String> {
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    let mut ok = true;
    for (package, example) in DEMOS {
        let mut cmd = cargo();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "-p",
            package,
            "--example",
            example,
        ]);
        ok &= echo(cmd, Duration::from_secs(600))?.success;
    }
    Ok(ok)
}
