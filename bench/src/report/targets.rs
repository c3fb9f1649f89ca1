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
    // For reference, without a target: the begin/end overhead against std's blocking
    // write, what a user of plain threads would call instead.
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
                if matches!(metric, Metric::BytesPerOp | Metric::BytesPerRead) {
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

/// The issue's targets for `adapter` on `workload`'s `metric` (none, one, or two:
/// memory per operation has the absolute ≤ 256 B for every adapter, and smol's "≥ 1.0×
/// on every workload" besides).
pub fn targets(
    adapter: Contender,
    peer: Contender,
    workload: Workload,
    metric: Metric,
) -> Vec<Target> {
    let mut targets = Vec::new();
    if matches!(metric, Metric::BytesPerOp | Metric::BytesPerRead) && adapter.is_asyncresult() {
        targets.push(Target::Absolute(Bound::AtMost(256.0)));
    }
    if let Some(bound) = ratio_bound(adapter, peer, workload, metric) {
        targets.push(Target::Ratio(bound));
    }
    targets
}

/// The issue's target on the ratio adapter ÷ peer, if any.
fn ratio_bound(
    adapter: Contender,
    peer: Contender,
    workload: Workload,
    metric: Metric,
) -> Option<Bound> {
    use Contender as C;
    use Metric as M;
    use Workload as W;
    let bulk = matches!(workload, W::Bulk64K | W::Bulk1K);
    let bound = match (adapter, peer) {
        (C::TokioAdapterCt | C::TokioAdapterMt, _) => match (workload, metric) {
            (W::PingPong, M::P50Micros) => Bound::AtMost(1.0),
            (_, M::GibPerSec) if bulk => Bound::AtLeast(1.0),
            // The issue sets the fan-in target on the multi-thread runtime.
            (W::FanIn, M::MsgsPerSec) if adapter == C::TokioAdapterMt => Bound::AtLeast(1.0),
            _ => return None,
        },
        // "≥ 1.0× on every workload": at least as fast, at most as slow or as big.
        (C::SmolAdapter, _) => match metric {
            M::P50Micros | M::P99Micros | M::BytesPerOp | M::BytesPerRead | M::BytesPerSocket => {
                Bound::AtMost(1.0)
            }
            M::GibPerSec | M::MsgsPerSec | M::SendsPerSec => Bound::AtLeast(1.0),
            // A part of bytes per operation, shown for detail.
            M::FutureBytes => return None,
        },
        (C::Callback, C::PollingLoop) => match (workload, metric) {
            (W::PingPong, M::P50Micros) => Bound::AtMost(1.2),
            (_, M::GibPerSec) if bulk => Bound::AtLeast(0.95),
            (W::FanIn, M::MsgsPerSec) => Bound::AtLeast(1.0),
            _ => return None,
        },
        _ => return None,
    };
    Some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_issue() {
        use Contender as C;
        use Metric as M;
        use Workload as W;
        // smol: "≥ 1.0× on every workload", memory included, beside the 256 B bound.
        assert_eq!(
            targets(C::SmolAdapter, C::AsyncIo, W::Memory, M::BytesPerOp),
            vec![
                Target::Absolute(Bound::AtMost(256.0)),
                Target::Ratio(Bound::AtMost(1.0))
            ]
        );
        assert_eq!(
            targets(C::SmolAdapter, C::AsyncIo, W::Memory, M::BytesPerRead),
            vec![
                Target::Absolute(Bound::AtMost(256.0)),
                Target::Ratio(Bound::AtMost(1.0))
            ]
        );
        assert_eq!(
            targets(C::SmolAdapter, C::AsyncIo, W::PingPong, M::P99Micros),
            vec![Target::Ratio(Bound::AtMost(1.0))]
        );
        // tokio: fan-in only on the multi-thread runtime; p99 has no target.
        assert!(targets(C::TokioAdapterCt, C::TokioCt, W::FanIn, M::MsgsPerSec).is_empty());
        assert!(targets(C::TokioAdapterMt, C::TokioMt, W::PingPong, M::P99Micros).is_empty());
        // The pairing with std is for reference only.
        assert!(targets(C::Callback, C::StdThreads, W::Overhead, M::SendsPerSec).is_empty());
        assert_eq!(
            targets(C::Callback, C::PollingLoop, W::PingPong, M::P50Micros),
            vec![Target::Ratio(Bound::AtMost(1.2))]
        );
    }
}
