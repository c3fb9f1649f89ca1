//! The conformance matrix: every scenario through every adapter. Test names are
//! `<adapter>::<scenario>`; `cargo xtask test` prints them as a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use asyncresult_conformance::harness::Harness;
use asyncresult_conformance::{adapters, bounded, scenarios};

/// Runs `scenario` through a fresh harness on its own thread, failing after `limit`
/// (the harness's drop, which stops its runtime, included).
fn run<H: Harness>(make: fn() -> H, scenario: fn(&H), limit: Duration) {
    bounded(limit, &format!("scenario hung for {limit:?}"), move || {
        let harness = make();
        scenario(&harness);
    });
}

macro_rules! adapter {
    ($adapter:ident, $make:expr, [$($scenario:ident),*]) => {
        mod $adapter {
            use super::*;
            $(
                #[test]
                fn $scenario() {
                    run($make, scenarios::$scenario, Duration::from_secs(60));
                }
            )*
        }
    };
}

macro_rules! matrix {
    ($($adapter:ident => $make:expr),* ; $scenarios:tt) => {
        $( adapter!($adapter, $make, $scenarios); )*
    };
}

matrix!(
    callback => || adapters::Callbacks,
    tokio_ct => adapters::tokio_current_thread,
    tokio_mt => adapters::tokio_multi_thread,
    smol => adapters::smol_executor;
    [whole_sends, ordering, close_while_pending, misuse, reset, udp, accept_connect,
    receive_semantics, cancel, dropped_send, echo]
);
