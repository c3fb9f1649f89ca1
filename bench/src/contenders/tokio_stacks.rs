//! Contenders on tokio: the asyncresult-tokio adapter and tokio's own `TcpStream`,
//! each on a current-thread and on a multi-thread runtime with one worker per core.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

use super::stack::{adapter_stack, Conn, Exec, Stack};
use crate::loopback::any_port;

/// A tokio runtime as an [`Exec`].
#[derive(Debug, Clone)]
pub struct TokioExec {
    runtime: Arc<Runtime>,
}

impl TokioExec {
    /// A current-thread runtime.
    pub fn current_thread() -> io::Result<TokioExec> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        Ok(TokioExec {
            runtime: Arc::new(runtime),
        })
    }

    /// A multi-thread runtime with one worker per core (two if the count is unknown).
    pub fn multi_thread() -> io::Result<TokioExec> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?;
        Ok(TokioExec {
            runtime: Arc::new(runtime),
        })
    }
}

impl Exec for TokioExec {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn spawn<F>(&self, future: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.runtime.spawn(future);
        async move {
            match handle.await {
                Ok(output) => output,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("task failed: {e}"),
            }
        }
    }
}

adapter_stack!(
    /// asyncresult-tokio: `asyncresult_tokio::{TcpListener, TcpStream}`.
    TokioAdapter,
    asyncresult_tokio,
    tokio::io::AsyncReadExt
);

/// tokio's own `tokio::net::{TcpListener, TcpStream}`.
#[derive(Debug)]
pub struct TokioNative;

impl Stack for TokioNative {
    type Conn = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn listen() -> io::Result<(Self::Listener, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(any_port()).await?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    async fn connect(addr: SocketAddr) -> io::Result<Self::Conn> {
        tokio::net::TcpStream::connect(addr).await
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Conn> {
        Ok(listener.accept().await?.0)
    }

    fn adopt(stream: std::net::TcpStream) -> io::Result<Self::Conn> {
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

impl Conn for tokio::net::TcpStream {
    fn set_nodelay(&self) -> io::Result<()> {
        tokio::net::TcpStream::set_nodelay(self, true)
    }

    async fn write_static(&mut self, data: &'static [u8]) -> io::Result<()> {
        self.write_all(data).await
    }

    async fn write_vec(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.write_all(&data).await
    }

    async fn read<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> io::Result<usize> {
        AsyncReadExt::read(self, &mut buf[..]).await
    }

    async fn read_slice<'a>(&'a mut self, buf: &'a mut [u8]) -> io::Result<usize> {
        AsyncReadExt::read(self, buf).await
    }
}
