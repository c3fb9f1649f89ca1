//! One suite of scenarios, written once and run through every asyncresult adapter:
//! the callback adapter, the tokio adapter (current-thread and multi-thread runtimes)
//! and the smol adapter. `cargo xtask test` prints the scenario × adapter matrix.
//!
//! - [`harness`]: what a scenario may ask of an adapter;
//! - [`adapters`]: the adapters behind that interface;
//! - [`scenarios`]: the behaviours, each a function generic over the harness.

pub mod adapters;
pub mod harness;
pub mod scenarios;
pub mod stress;

use std::net::SocketAddr;

/// A loopback address with a free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Bytes with a recognisable pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
