//! The stress mix that `tests/stress.rs` runs for about a minute and `cargo xtask
//! soak` runs for as long as asked: many connections through every adapter at once,
//! faults injected at random from a seed, and every outcome accounted for.
//!
//! # The mix
//!
//! *Lanes* run in parallel, each on a thread of its own, each with a client adapter
//! and a server adapter: callback↔callback, tokio-ct↔tokio-ct, tokio-mt↔tokio-mt,
//! smol↔smol, and the mixed pairs callback→tokio-mt, tokio-mt→smol, smol→tokio-ct and
//! tokio-ct→callback, all on the one engine. A lane keeps a listener and runs
//! *rounds*: an accept and a connect, then both ends send a stream of self-describing
//! records while receiving the other end's stream. Each end sends on one thread and
//! receives on another, so four threads work one connection.
//!
//! - Sends: pipelined batches (one member sometimes cancelled right after it begins:
//!   while queued, if a large send is under way); sends whose result or future is
//!   dropped at once; sends bounded by a short timeout or cancelled at once; sends of
//!   no bytes; a final empty send (it completes after every send before it) before
//!   `shutdown(Write)`.
//! - Receives: random capacities; zero-capacity readiness probes; receives bounded by
//!   a timeout or cancelled at once; receive futures dropped after one poll (tokio,
//!   smol: their receives are cancel safe).
//!
//! A seeded PRNG ([`Rng`]) decides, per round, whether one end closes its socket or
//! resets the connection (`SO_LINGER` 0, then close) at a random point of its sending
//! or receiving; whether one end sends a large record (256 KiB to 2 MiB) under a short
//! timeout (a cancel that tears the stream) or at the head of a batch whose later
//! member is cancelled (a cancel of a queued send); whether the socket buffers are cut
//! to 32–128 KiB (so that large sends wait in the engine's queues instead of finishing
//! inline); and whether the listener is closed under a pending accept.
//!
//! # What is checked
//!
//! - **Exactly once.** Each operation is counted when started, per adapter, and its
//!   reporter (carried by the callback or the future) counts its completion. A
//!   reporter dropped without reporting counts as a *lost* completion. At the end,
//!   started = completed + abandoned (futures dropped on purpose) for every adapter,
//!   and nothing is lost. Inside callbacks: the operation is complete, a second
//!   `end_*` gives `AlreadyEnded`; `cancel()` returning `true` means the outcome is
//!   `Aborted` and `false` means it is not.
//! - **No hang.** Every wait is bounded ([`Config::op_limit`] per operation,
//!   [`Config::round_limit`] per round); a monitor reports a mix that stops starting
//!   operations, with what every lane was doing.
//! - **Data.** Records carry lane, round, direction, sequence number, length and a
//!   check word, and a position-dependent body: the receiver's bytes must parse as
//!   records of its own connection and direction, in order, intact, with no record
//!   missing whose send succeeded before a later one arrived, and only the last one
//!   cut short. In rounds without close or reset, every successful send arrives, the
//!   stream ends with EOF, and only a cancelled send may be absent or torn.
//! - **Outcomes.** Each end's errors must be among those its role allows (e.g. the end
//!   that closed sees `Disposed`, its peer EOF, `ECONNRESET` or `EPIPE`; `Aborted` only
//!   for bounded operations).
//! - **Resources.** Open descriptors (`/proc/self/fd`) return to their baseline after
//!   everything is dropped, and RSS (`/proc/self/statm`) grows by less than
//!   [`Config::rss_growth_limit`]. The baselines are taken after a warm-up run of the
//!   same mix ([`Config::warm_up_ops`]): what the process keeps for good once it has
//!   run the mix (engine threads, async-io's reactor, allocator arenas, cached thread
//!   stacks) is not growth. The soak also samples both over time and fails if they
//!   keep rising ([`Report::growth_problems`]).
//!
//! # Layout
//!
//! One file per part: `rng` (the PRNG and the seed), `probes` (descriptors, RSS),
//! `tally` (the accounting of every operation), `net` (the adapter interface as the
//! mix drives it), `callback` and `async_net` (the adapters, instrumented; the async
//! ones run on the runtimes of the crate's `exec`, as the matrix's do), `record` (the
//! records and their parsing), `plan` (a round's random plan), `ends` (the sending
//! and receiving threads), `outcome` (what the ends saw), `verify` (the checks of a
//! direction), `round` (one round), `lanes` (the lane threads and their shared
//! counters), `monitor`, `config`, `report` and `run`.

mod async_net;
mod callback;
mod config;
mod ends;
mod lanes;
mod monitor;
mod net;
mod outcome;
mod plan;
mod probes;
mod record;
mod report;
mod rng;
mod round;
mod run;
mod tally;
mod verify;

pub use config::{Budget, Config, PAIRS, SOAK_MINUTES_ENV};
pub use probes::{open_fds, rss_bytes};
pub use report::{AdapterCount, Report, Sample};
pub use rng::{seed_from_env, Rng, SEED_ENV};
pub use run::run;

const MIB: u64 = 1 << 20;

use crate::lock;
