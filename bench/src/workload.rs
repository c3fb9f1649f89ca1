//! The workloads, the metrics they report, and the values one cell produced.

use std::fmt;
use std::time::Duration;

use crate::scale::Scale;
use crate::stats;

/// One thing the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// One connection, one direction, 64 KiB sends.
    Bulk64K,
    /// One connection, one direction, 1 KiB sends.
    Bulk1K,
    /// 64-byte request, 64-byte echo, Nagle off.
    PingPong,
    /// Many connections sending 1 KiB messages to one receiving side.
    FanIn,
    /// Synchronously completing 16-byte sends on one thread.
    Overhead,
    /// Heap bytes per registered socket and per pending receive.
    Memory,
}

impl Workload {
    /// Every workload, in the order they run and are shown.
    pub const ALL: [Workload; 6] = [
        Workload::Bulk64K,
        Workload::Bulk1K,
        Workload::PingPong,
        Workload::FanIn,
        Workload::Overhead,
        Workload::Memory,
    ];

    /// The name used on the command line and in the child protocol.
    pub fn key(self) -> &'static str {
        match self {
            Workload::Bulk64K => "bulk-64k",
            Workload::Bulk1K => "bulk-1k",
            Workload::PingPong => "ping-pong",
            Workload::FanIn => "fan-in",
            Workload::Overhead => "overhead",
            Workload::Memory => "memory",
        }
    }

    /// The workload named `key`.
    pub fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }

    /// What the workload does at `scale`, for the report.
    pub fn describe(self, scale: &Scale) -> String {
        let mib = scale.bulk_bytes >> 20;
        match self {
            Workload::Bulk64K => format!("{mib} MiB in 64 KiB sends, 64 KiB reads"),
            Workload::Bulk1K => format!("{mib} MiB in 1 KiB sends, 64 KiB reads"),
            Workload::PingPong => format!(
                "{} round trips of 64 B (after {} unmeasured), nodelay",
                scale.round_trips, scale.warmup_round_trips
            ),
            Workload::FanIn => format!(
                "{} connections × {} messages of 1 KiB, 16 KiB reads, nodelay \
                 (with Nagle on, 40 ms delayed-ACK stalls dominate)",
                scale.fanin_conns, scale.fanin_msgs
            ),
            Workload::Overhead => format!(
                "{} sends of 16 B on one thread, completing synchronously, Nagle on \
                 (sends only append to the socket's queue); a std thread drains the peer",
                scale.overhead_sends
            ),
            Workload::Memory => format!(
                "{} idle sockets: on half of them one pending 64 B receive each (buffer \
                 not counted; for async stacks B/op includes the boxed future, whose size \
                 is B/future), on the other half one pending `AsyncRead` read into a 64 B \
                 slice each (B/read, boxed future included)",
                scale.memory_pairs * 2
            ),
        }
    }

    /// The metrics this workload reports.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Workload::Bulk64K | Workload::Bulk1K => &[Metric::GibPerSec],
            Workload::PingPong => &[Metric::P50Micros, Metric::P99Micros],
            Workload::FanIn => &[Metric::MsgsPerSec],
            Workload::Overhead => &[Metric::SendsPerSec],
            Workload::Memory => &[
                Metric::BytesPerOp,
                Metric::BytesPerRead,
                Metric::BytesPerSocket,
                Metric::FutureBytes,
            ],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.key())
    }
}

/// A number a workload reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Throughput in GiB/s.
    GibPerSec,
    /// Median round trip in µs.
    P50Micros,
    /// 99th percentile round trip in µs.
    P99Micros,
    /// Messages per second.
    MsgsPerSec,
    /// Sends per second.
    SendsPerSec,
    /// Heap bytes per pending operation, beside its buffer (the contender's own
    /// receive: an adapter's takes an owned buffer).
    BytesPerOp,
    /// Heap bytes per pending `AsyncRead` read into a borrowed slice, beside the slice
    /// (async contenders: the same call on every stack).
    BytesPerRead,
    /// Heap bytes per registered socket.
    BytesPerSocket,
    /// Size of one pending receive's future (async contenders; part of bytes/op).
    FutureBytes,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 9] = [
        Metric::GibPerSec,
        Metric::P50Micros,
        Metric::P99Micros,
        Metric::MsgsPerSec,
        Metric::SendsPerSec,
        Metric::BytesPerOp,
        Metric::BytesPerRead,
        Metric::BytesPerSocket,
        Metric::FutureBytes,
    ];

    /// The name in the child protocol.
    pub fn key(self) -> &'static str {
        match self {
            Metric::GibPerSec => "gib_per_s",
            Metric::P50Micros => "p50_us",
            Metric::P99Micros => "p99_us",
            Metric::MsgsPerSec => "msgs_per_s",
            Metric::SendsPerSec => "sends_per_s",
            Metric::BytesPerOp => "bytes_per_op",
            Metric::BytesPerRead => "bytes_per_read",
            Metric::BytesPerSocket => "bytes_per_socket",
            Metric::FutureBytes => "future_bytes",
        }
    }

    /// The metric named `key`.
    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }

    /// Whether a larger value is better (throughput) or worse (latency, memory).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::GibPerSec | Metric::MsgsPerSec | Metric::SendsPerSec
        )
    }

    /// A short label with its unit, for table headers.
    pub fn label(self) -> &'static str {
        match self {
            Metric::GibPerSec => "GiB/s",
            Metric::P50Micros => "p50 µs",
            Metric::P99Micros => "p99 µs",
            Metric::MsgsPerSec => "M msg/s",
            Metric::SendsPerSec => "M sends/s",
            Metric::BytesPerOp => "B/op",
            Metric::BytesPerRead => "B/read",
            Metric::BytesPerSocket => "B/socket",
            Metric::FutureBytes => "B/future",
        }
    }

    /// `value` formatted in this metric's display unit.
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::GibPerSec => format!("{value:.2}"),
            Metric::P50Micros | Metric::P99Micros => format!("{value:.1}"),
            Metric::MsgsPerSec | Metric::SendsPerSec => format!("{:.3}", value / 1e6),
            Metric::BytesPerOp
            | Metric::BytesPerRead
            | Metric::BytesPerSocket
            | Metric::FutureBytes => {
                format!("{value:.0}")
            }
        }
    }
}

/// The values one cell measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(pub Vec<(Metric, f64)>);

impl Values {
    /// Adds `value` for `metric`.
    pub fn with(mut self, metric: Metric, value: f64) -> Values {
        self.0.push((metric, value));
        self
    }

    /// The value of `metric`, if measured.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.0.iter().find(|(m, _)| *m == metric).map(|(_, v)| *v)
    }
}

/// The bulk result: `bytes` in `elapsed`, as GiB/s.
pub fn bulk_values(bytes: u64, elapsed: Duration) -> Values {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    Values::default().with(Metric::GibPerSec, gib / elapsed.as_secs_f64())
}

/// The fan-in result: `conns` × `msgs` messages in `elapsed`.
pub fn fan_in_values(conns: usize, msgs: u64, elapsed: Duration) -> Values {
    let messages = conns as f64 * msgs as f64;
    Values::default().with(Metric::MsgsPerSec, messages / elapsed.as_secs_f64())
}

/// The overhead result: `sends` sends in `elapsed`.
pub fn overhead_values(sends: u64, elapsed: Duration) -> Values {
    Values::default().with(Metric::SendsPerSec, sends as f64 / elapsed.as_secs_f64())
}

/// p50 and p99 values from round-trip times.
pub fn latency_values(nanos: Vec<u64>) -> Result<Values, String> {
    let (p50, p99) = stats::latency_micros(nanos).ok_or("no round trips measured")?;
    Ok(Values::default()
        .with(Metric::P50Micros, p50)
        .with(Metric::P99Micros, p99))
}
