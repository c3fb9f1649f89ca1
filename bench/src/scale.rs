//! How big each workload is: the full scale the issue asks for, and the `--quick`
//! scale that keeps a whole run under a minute on two cores.

use std::time::Duration;

/// Sizes of every workload, and the time limit of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Whether this is the `--quick` scale.
    pub quick: bool,
    /// Bytes moved by each bulk transfer.
    pub bulk_bytes: u64,
    /// Measured round trips of the ping-pong.
    pub round_trips: usize,
    /// Round trips before measuring (connection and engine warm-up).
    pub warmup_round_trips: usize,
    /// Connections of the fan-in.
    pub fanin_conns: usize,
    /// Messages per fan-in connection.
    pub fanin_msgs: usize,
    /// Sends of the begin/end overhead workload.
    pub overhead_sends: usize,
    /// Connected pairs of the memory workload (each end holds one pending receive).
    pub memory_pairs: usize,
    /// How long one cell may run before it is reported as a timeout.
    pub cell_timeout: Duration,
}

impl Scale {
    /// The sizes: 1 GiB bulk, 100k round trips, 1,000 × 1,000 fan-in.
    pub const FULL: Scale = Scale {
        quick: false,
        bulk_bytes: 1 << 30,
        round_trips: 100_000,
        warmup_round_trips: 2_000,
        fanin_conns: 1_000,
        fanin_msgs: 1_000,
        overhead_sends: 1_000_000,
        memory_pairs: 5_000,
        cell_timeout: Duration::from_secs(60),
    };

    /// Scaled down so that `--quick` finishes in under a minute.
    pub const QUICK: Scale = Scale {
        quick: true,
        bulk_bytes: 64 << 20,
        round_trips: 10_000,
        warmup_round_trips: 500,
        fanin_conns: 100,
        fanin_msgs: 100,
        overhead_sends: 100_000,
        memory_pairs: 1_000,
        cell_timeout: Duration::from_secs(20),
    };

    /// The scale for `quick`.
    pub fn new(quick: bool) -> Scale {
        if quick {
            Scale::QUICK
        } else {
            Scale::FULL
        }
    }

    /// Bytes per fan-in message.
    pub const FANIN_MESSAGE: usize = 1024;
    /// Bytes per ping-pong message.
    pub const PING: usize = 64;
    /// Bytes per send of the begin/end overhead workload.
    pub const SMALL_SEND: usize = 16;
    /// Receive buffer of the bulk receivers.
    pub const BULK_READ: usize = 64 * 1024;
    /// Receive buffer of each fan-in receiver.
    pub const FANIN_READ: usize = 16 * 1024;
    /// Receive buffer of each pending receive of the memory workload (not counted).
    pub const MEMORY_READ: usize = 64;
}
