//! The contenders: asyncresult's three adapters, and what users would otherwise
//! pick. Each module implements every workload for one stack; the async stacks share
//! their workloads through [`stack`] and [`async_workloads`].

mod async_workloads;
mod callback;
mod polling_loop;
mod smol_stacks;
mod stack;
mod std_threads;
mod tokio_stacks;

use std::fmt::{self, Display};

use crate::scale::Scale;
use crate::workload::{Values, Workload};
use smol_stacks::{AsyncIoNative, SmolAdapter, SmolExec};
use stack::{Exec, Stack};
use tokio_stacks::{TokioAdapter, TokioExec, TokioNative};

/// One side-by-side entry of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// asyncresult-callback: Begin/End with callbacks.
    Callback,
    /// asyncresult-tokio on a current-thread runtime.
    TokioAdapterCt,
    /// asyncresult-tokio on a multi-thread runtime.
    TokioAdapterMt,
    /// asyncresult-smol under an async-executor.
    SmolAdapter,
    /// tokio's `TcpStream` on a current-thread runtime.
    TokioCt,
    /// tokio's `TcpStream` on a multi-thread runtime.
    TokioMt,
    /// async-io's `Async<TcpStream>` (smol's) under an async-executor.
    AsyncIo,
    /// Blocking std sockets and threads.
    StdThreads,
    /// A hand-written `polling` event loop on one thread.
    PollingLoop,
}

impl Contender {
    /// Every contender, in table order (adapters first).
    pub const ALL: [Contender; 9] = [
        Contender::Callback,
        Contender::TokioAdapterCt,
        Contender::TokioAdapterMt,
        Contender::SmolAdapter,
        Contender::TokioCt,
        Contender::TokioMt,
        Contender::AsyncIo,
        Contender::StdThreads,
        Contender::PollingLoop,
    ];

    /// The name on the command line, in the child protocol and in the tables.
    pub fn key(self) -> &'static str {
        match self {
            Contender::Callback => "callback",
            Contender::TokioAdapterCt => "tokio-adapter-ct",
            Contender::TokioAdapterMt => "tokio-adapter-mt",
            Contender::SmolAdapter => "smol-adapter",
            Contender::TokioCt => "tokio-ct",
            Contender::TokioMt => "tokio-mt",
            Contender::AsyncIo => "async-io",
            Contender::StdThreads => "std-threads",
            Contender::PollingLoop => "polling-loop",
        }
    }

    /// What it is, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Contender::Callback => "asyncresult-callback: begin_*/end_* with callbacks",
            Contender::TokioAdapterCt => {
                "asyncresult-tokio TcpStream send/receive, current-thread runtime"
            }
            Contender::TokioAdapterMt => {
                "asyncresult-tokio TcpStream send/receive, multi-thread runtime (one worker per core)"
            }
            Contender::SmolAdapter => {
                "asyncresult-smol TcpStream send/receive, async-executor under smol::block_on"
            }
            Contender::TokioCt => "tokio::net::TcpStream write_all/read, current-thread runtime",
            Contender::TokioMt => {
                "tokio::net::TcpStream write_all/read, multi-thread runtime (one worker per core)"
            }
            Contender::AsyncIo => {
                "async_io::Async<TcpStream> write_all/read, async-executor under smol::block_on"
            }
            Contender::StdThreads => "std::net::TcpStream, blocking, a thread per connection end",
            Contender::PollingLoop => {
                "hand-written polling 3 loop, edge-triggered, one thread for both ends"
            }
        }
    }

    /// The contender named `key`.
    pub fn from_key(key: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.key() == key)
    }

    /// Whether this contender is one of asyncresult's adapters.
    pub fn is_asyncresult(self) -> bool {
        matches!(
            self,
            Contender::Callback
                | Contender::TokioAdapterCt
                | Contender::TokioAdapterMt
                | Contender::SmolAdapter
        )
    }

    /// Whether `workload` makes sense for this contender. Memory is measured once per
    /// stack (the runtime flavour does not change what a socket or a pending read
    /// holds), and not for blocking threads, which have no pending operations.
    pub fn runs(self, workload: Workload) -> bool {
        workload != Workload::Memory
            || !matches!(
                self,
                Contender::TokioAdapterMt | Contender::TokioMt | Contender::StdThreads
            )
    }

    /// Runs `workload` once at `scale`, on this thread.
    pub fn run(self, workload: Workload, scale: &Scale) -> Result<Values, String> {
        let tokio_ct = || TokioExec::current_thread().map_err(|e| format!("runtime: {e}"));
        let tokio_mt = || TokioExec::multi_thread().map_err(|e| format!("runtime: {e}"));
        match self {
            Contender::Callback => match workload {
                Workload::Bulk64K => callback::bulk(scale, 64 * 1024),
                Workload::Bulk1K => callback::bulk(scale, 1024),
                Workload::PingPong => callback::ping_pong(scale),
                Workload::FanIn => callback::fan_in(scale),
                Workload::Overhead => callback::overhead(scale),
                Workload::Memory => callback::memory(scale),
            },
            Contender::StdThreads => match workload {
                Workload::Bulk64K => std_threads::bulk(scale, 64 * 1024),
                Workload::Bulk1K => std_threads::bulk(scale, 1024),
                Workload::PingPong => std_threads::ping_pong(scale),
                Workload::FanIn => std_threads::fan_in(scale),
                Workload::Overhead => std_threads::overhead(scale),
                Workload::Memory => Err("not measured for blocking threads".into()),
            },
            Contender::PollingLoop => match workload {
                Workload::Bulk64K => polling_loop::bulk(scale, 64 * 1024),
                Workload::Bulk1K => polling_loop::bulk(scale, 1024),
                Workload::PingPong => polling_loop::ping_pong(scale),
                Workload::FanIn => polling_loop::fan_in(scale),
                Workload::Overhead => polling_loop::overhead(scale),
                Workload::Memory => polling_loop::memory(scale),
            },
            Contender::TokioAdapterCt => {
                run_async::<TokioAdapter, _>(&tokio_ct()?, workload, scale)
            }
            Contender::TokioAdapterMt => {
                run_async::<TokioAdapter, _>(&tokio_mt()?, workload, scale)
            }
            Contender::TokioCt => run_async::<TokioNative, _>(&tokio_ct()?, workload, scale),
            Contender::TokioMt => run_async::<TokioNative, _>(&tokio_mt()?, workload, scale),
            Contender::SmolAdapter => {
                run_async::<SmolAdapter, _>(&SmolExec::default(), workload, scale)
            }
            Contender::AsyncIo => {
                run_async::<AsyncIoNative, _>(&SmolExec::default(), workload, scale)
            }
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.key())
    }
}

/// Maps an error to a message that says what failed.
fn failed<E: Display>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn run_async<S: Stack, E: Exec>(
    exec: &E,
    workload: Workload,
    scale: &Scale,
) -> Result<Values, String> {
    match workload {
        Workload::Bulk64K => async_workloads::bulk::<S, E>(exec, scale, 64 * 1024),
        Workload::Bulk1K => async_workloads::bulk::<S, E>(exec, scale, 1024),
        Workload::PingPong => async_workloads::ping_pong::<S, E>(exec, scale),
        Workload::FanIn => async_workloads::fan_in::<S, E>(exec, scale),
        Workload::Overhead => async_workloads::overhead::<S, E>(exec, scale),
        Workload::Memory => async_workloads::memory::<S, E>(exec, scale),
    }
}
