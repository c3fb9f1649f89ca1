//! The knobs of a run ([`Config`]: the stress test's and the soak's), how long it runs
//! ([`Budget`]) and the adapter pairs of its lanes ([`PAIRS`]).

use std::time::Duration;

use super::MIB;

/// The environment variable that sets the soak's length in minutes.
pub const SOAK_MINUTES_ENV: &str = "ASYNCRESULT_SOAK_MINUTES";

/// How long the mix runs: until it has started at least `ops` operations *and* run
/// for at least `time` (then the rounds under way finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Operations to start, at least.
    pub ops: u64,
    /// Time to run, at least.
    pub time: Duration,
}

/// The knobs of a run, and the bounds its report is held to.
#[derive(Debug, Clone)]
pub struct Config {
    /// The seed of every random choice.
    pub seed: u64,
    /// Lanes per adapter pair (there are eight pairs); each lane holds a listener and
    /// a connection at a time.
    pub lanes_per_pair: usize,
    /// How long to run.
    pub budget: Budget,
    /// Operations of the same mix run first, before the descriptor and RSS baselines
    /// are taken, so that what the process keeps for good once it has run the mix
    /// (the engine and its threads, async-io's reactor, allocator arenas, cached
    /// thread stacks) is not mistaken for growth. Its outcomes are checked too.
    pub warm_up_ops: u64,
    /// The longest wait for any one operation before it counts as hung.
    pub op_limit: Duration,
    /// The longest a round may take.
    pub round_limit: Duration,
    /// How often the monitor samples descriptors, RSS and progress.
    pub sample_every: Duration,
    /// How often to print a progress line (the soak), if at all.
    pub print_every: Option<Duration>,
    /// At least this many operations must run.
    pub min_ops: u64,
    /// At least this many sockets must be open at once (registered with the engine).
    pub min_sockets: usize,
    /// RSS after the run may exceed RSS before it (after the warm-up) by at most this
    /// many bytes. Both are read after glibc's `malloc_trim`.
    pub rss_growth_limit: u64,
}

/// The adapter pairs of the lanes: (client, server).
pub const PAIRS: [(&str, &str); 8] = [
    ("callback", "callback"),
    ("tokio-ct", "tokio-ct"),
    ("tokio-mt", "tokio-mt"),
    ("smol", "smol"),
    ("callback", "tokio-mt"),
    ("tokio-mt", "smol"),
    ("smol", "tokio-ct"),
    ("tokio-ct", "callback"),
];

impl Config {
    /// The stress test: 48 lanes (96 connected sockets and 48 listeners at a time),
    /// at least 200,000 operations and at least 30 seconds, after a warm-up of 60,000.
    pub fn test(seed: u64) -> Config {
        Config {
            seed,
            lanes_per_pair: 6,
            budget: Budget {
                ops: 200_000,
                time: Duration::from_secs(30),
            },
            warm_up_ops: 60_000,
            op_limit: Duration::from_secs(10),
            round_limit: Duration::from_secs(60),
            sample_every: Duration::from_millis(250),
            print_every: None,
            min_ops: 200_000,
            min_sockets: 64,
            rss_growth_limit: 96 * MIB,
        }
    }

    /// The soak: the same mix for `minutes`, with a progress line every 5 seconds.
    pub fn soak(seed: u64, minutes: u64) -> Config {
        Config {
            budget: Budget {
                ops: 0,
                time: Duration::from_secs(minutes * 60),
            },
            sample_every: Duration::from_secs(1),
            print_every: Some(Duration::from_secs(5)),
            min_ops: 0,
            ..Config::test(seed)
        }
    }
}
