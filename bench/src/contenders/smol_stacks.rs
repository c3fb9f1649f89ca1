//! Contenders on smol: the asyncresult-smol adapter and async-io's
//! `Async<std::net::TcpStream>` (what `smol::net` wraps), both run by an
//! `async_executor::Executor` under `async_io::block_on` on one thread.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use async_executor::Executor;
use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::stack::{adapter_stack, Conn, Exec, Stack};
use crate::loopback::any_port;

/// An `async_executor::Executor` run by `async_io::block_on` (smol's `block_on`).
#[derive(Debug, Clone, Default)]
pub struct SmolExec {
    executor: Arc<Executor<'static>>,
}

impl Exec for SmolExec {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_io::block_on(self.executor.run(future))
    }

    fn spawn<F>(&self, future: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(future)
    }
}

adapter_stack!(
    /// asyncresult-smol: `asyncresult_smol::{TcpListener, TcpStream}`.
    SmolAdapter,
    asyncresult_smol,
    futures_lite::AsyncReadExt
);

/// async-io's `Async<std::net::TcpStream>`.
#[derive(Debug)]
pub struct AsyncIoNative;

impl Stack for AsyncIoNative {
    type Conn = Async<TcpStream>;
    type Listener = Async<TcpListener>;

    async fn listen() -> io::Result<(Self::Listener, SocketAddr)> {
        let listener = Async::<TcpListener>::bind(any_port())?;
        let addr = listener.get_ref().local_addr()?;
        Ok((listener, addr))
    }

    async fn connect(addr: SocketAddr) -> io::Result<Self::Conn> {
        Async::<TcpStream>::connect(addr).await
    }

    async fn accept(listener: &Self::Listener) -> io::Result<Self::Conn> {
        Ok(listener.accept().await?.0)
    }

    fn adopt(stream: TcpStream) -> io::Result<Self::Conn> {
        Async::new(stream)
    }
}

impl Conn for Async<TcpStream> {
    fn set_nodelay(&self) -> io::Result<()> {
        self.get_ref().set_nodelay(true)
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
