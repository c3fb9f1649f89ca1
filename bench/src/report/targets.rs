//! Which adapter is compared with which native peer, and the targets from the issue
//! (printed as PASS/MISS; the bench measures, it does not tune).

use crate::contenders::Contender;
use crate::workload::{Metric, Workload};

/// Each adapter and its native peer, with the workloads the pairing covers.
pub const PAIRINGS: [(Contender, Contender, &[Workload]); 5] = [
    (
        Contender::TokioAdapterCt,
        Contender::TokioCt,
        &Workload::ALL,
    ),
    (
        Contender::TokioAdapterMt,
        Contender::TokioMt,
        &Workload::ALL,
    ),
    (Contender::SmolAdapter, Contender::AsyncIo, &Workload::ALL),
    (Contender::Callback, Contender::PollingLoop, &Workload::ALL),
    // The begin/end overhead is also asked against std's blocking write.
    (
        Contender::Callback,
        Contender::StdThreads,
        &[Workload::Overhead],
    ),
];

/// A bound on a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
}

impl Bound {
    /// Whether `value` is within the bound.
    pub fn holds(self, value: f64) -> bool {
        match self {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
        }
    }

    /// The limit.
    pub fn limit(self) -> f64 {
        match self {
            Bound::AtMost(limit) | Bound::AtLeast(limit) => limit,
        }
    }
}

/// A target for one row of the ratio table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// On the ratio adapter ÷ peer.
    Ratio(Bound),
    /// On the adapter's own value (memory).
    Absolute(Bound),
}

impl Target {
    /// How the target reads in the table.
    pub fn describe(self, metric: Metric) -> String {
        let (sign, limit, unit) = match self {
            Target::Ratio(b) => (b, b.limit(), "×"),
            Target::Absolute(b) => (
                b,
                b.limit(),
                if metric == Metric::BytesPerOp {
                    " B"
                } else {
                    ""
                },
            ),
        };
        let op = match sign {
            Bound::AtMost(_) => "≤",
            Bound::AtLeast(_) => "≥",
        };
        match self {
            Target::Ratio(_) => format!("{op} {limit:.2}{unit}"),
            Target::Absolute(_) => format!("{op} {limit:.0}{unit}"),
        }
    }
}

/// The target for `adapter` on `workload`'s `metric`, if any.
pub fn target(
    adapter: Contender,
    peer: Contender,
    workload: Workload,
    metric: Metric,
) -> Option<Target> {
    use Contender as C;
    use Metric as M;
    use Workload as W;
    if metric == M::BytesPerOp && adapter.is_asyncresult() {
        return Some(Target::Absolute(Bound::AtMost(256.0)));
    }
    let bulk = matches!(workload, W::Bulk64K | W::Bulk1K);
    let bound = match (adapter, peer) {
        (C::TokioAdapterCt | C::TokioAdapterMt, _) => match (workload, metric) {
            (W::PingPong, M::P50Micros) => Bound::AtMost(1.0),
            (_, M::GibPerSec) if bulk => Bound::AtLeast(1.0),
            // The issue sets the fan-in target on the multi-thread runtime.
            (W::FanIn, M::MsgsPerSec) if adapter == C::TokioAdapterMt => Bound::AtLeast(1.0),
            _ => return None,
        },
        (C::SmolAdapter, _) => match metric {
            M::P50Micros => Bound::AtMost(1.0),
            M::GibPerSec | M::MsgsPerSec | M::SendsPerSec => Bound::AtLeast(1.0),
            _ => return None,
        },
        (C::Callback, C::PollingLoop) => match (workload, metric) {
            (W::PingPong, M::P50Micros) => Bound::AtMost(1.2),
            (_, M::GibPerSec) if bulk => Bound::AtLeast(0.95),
            (W::FanIn, M::MsgsPerSec) => Bound::AtLeast(1.0),
            _ => return None,
        },
        _ => return None,
    };
    Some(Target::Ratio(bound))
}
