//! The runtimes the async adapters spawn their futures on, for the matrix's
//! [`AsyncHarness`](crate::adapters::AsyncHarness) and for the stress mix alike: a
//! tokio runtime (current-thread or multi-thread) or an async-executor driven by
//! smol, each run on a thread of its own ([`Exec`]) and stopped, with a bound, when
//! it is shut down or dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use futures::channel::oneshot;

use crate::adapters::BoxFuture;
use crate::lock;

/// How long dropping an [`Exec`] waits for its runtime to stop.
pub(crate) const DROP_LIMIT: Duration = Duration::from_secs(10);

/// An async runtime on threads of its own, to spawn the adapters' futures on.
pub(crate) struct Exec {
    spawner: Spawner,
    running: Mutex<Option<Running>>,
}

type Spawner = Box<dyn Fn(BoxFuture<()>) + Send + Sync>;

/// What stops a runtime; its thread, and the channel on which that thread reports that
/// the runtime is gone.
type Running = (oneshot::Sender<()>, JoinHandle<()>, mpsc::Receiver<()>);

impl Exec {
    /// Runs `body` (which runs the runtime until `stopped` fires, then drops it) on a
    /// thread of its own.
    fn start(spawner: Spawner, body: impl FnOnce(oneshot::Receiver<()>) + Send + 'static) -> Exec {
        let (stop, stopped) = oneshot::channel::<()>();
        let (finished_tx, finished) = mpsc::channel();
        let thread = thread::spawn(move || {
            body(stopped);
            let _ = finished_tx.send(());
        });
        Exec {
            spawner,
            running: Mutex::new(Some((stop, thread, finished))),
        }
    }

    /// A tokio runtime: multi-thread with 2 workers, or current-thread.
    pub(crate) fn tokio(multi_thread: bool) -> Result<Exec, String> {
        let runtime =
            crate::tokio_runtime(multi_thread).map_err(|e| format!("tokio runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let spawner: Spawner = Box::new(move |fut| {
            handle.spawn(fut);
        });
        Ok(Exec::start(spawner, move |stopped| {
            runtime.block_on(async move {
                let _ = stopped.await;
            });
            drop(runtime);
        }))
    }

    /// An `async_executor::Executor` run by `smol::block_on`.
    pub(crate) fn smol() -> Exec {
        let executor = Arc::new(async_executor::Executor::new());
        let runner = Arc::clone(&executor);
        let spawner: Spawner = Box::new(move |fut| executor.spawn(fut).detach());
        Exec::start(spawner, move |stopped| {
            smol::block_on(runner.run(async move {
                let _ = stopped.await;
            }));
            drop(runner);
        })
    }

    /// Spawns `fut` on the runtime.
    pub(crate) fn spawn(&self, fut: BoxFuture<()>) {
        (self.spawner)(fut);
    }

    /// Stops the runtime and joins its thread; `false` if the thread did not finish
    /// within `limit` (a task stuck in a poll): it is then left behind.
    pub(crate) fn shut_down(&self, limit: Duration) -> bool {
        let running = lock(&self.running).take();
        let Some((stop, thread, finished)) = running else {
            return true;
        };
        let _ = stop.send(());
        match finished.recv_timeout(limit) {
            Err(RecvTimeoutError::Timeout) => false,
            _ => {
                let _ = thread.join();
                true
            }
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        self.shut_down(DROP_LIMIT);
    }
}
