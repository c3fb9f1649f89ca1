//! The shape shared by the six async contenders (the tokio and smol adapters, native
//! tokio on both runtime flavours, native async-io), so that every async workload is
//! written once and each contender differs only in its stream type and executor.
//!
//! An adapter's [`Conn`] uses asyncresult's own operations — `send` of an owned
//! buffer (whole), `receive` into an owned buffer — which is what the adapters are
//! for; a native [`Conn`] uses its runtime's `write_all` and `read`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// An executor: runs a top-level future on the calling thread, and spawns tasks.
pub trait Exec: Clone + Send + Sync + 'static {
    /// Runs `future` to completion on this thread (the executor runs meanwhile).
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// Spawns `future` as a task; the returned future resolves to its output (a
    /// panicking task panics the awaiting one).
    fn spawn<F>(&self, future: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// A TCP stack: how to listen, connect, accept and adopt a std socket.
pub trait Stack: 'static {
    /// A connected stream.
    type Conn: Conn;
    /// A listening socket.
    type Listener: Send + Sync + 'static;

    /// Listens on a fresh loopback port.
    fn listen() -> impl Future<Output = io::Result<(Self::Listener, SocketAddr)>> + Send;

    /// Connects to `addr`.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Conn>> + Send;

    /// Accepts one connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<Self::Conn>> + Send + '_;

    /// Registers a connected std stream with this stack (inside the executor's
    /// context), as the memory workload does.
    fn adopt(stream: std::net::TcpStream) -> io::Result<Self::Conn>;
}

/// A connected stream of some stack.
pub trait Conn: Send + 'static {
    /// Turns Nagle's algorithm off.
    fn set_nodelay(&self) -> io::Result<()>;

    /// Sends all of `data`.
    fn write_static(
        &mut self,
        data: &'static [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Sends all of `data`, an owned buffer.
    fn write_vec(&mut self, data: Vec<u8>) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Reads at least one byte into `buf`, which was made as `vec![0; capacity]`;
    /// returns the count (the bytes are `buf[..count]`), 0 at end of stream.
    fn read<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Reads at least one byte into `buf` through the stack's `AsyncRead`
    /// (`read(&mut [u8])`, the same call on every stack); 0 at end of stream.
    fn read_slice<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// Checks that a whole-buffer send reported the whole buffer.
pub fn whole(sent: usize, len: usize) -> io::Result<()> {
    if sent == len {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "short send: {sent} of {len} bytes"
        )))
    }
}

/// Declares `$name`, the [`Stack`] of the asyncresult adapter crate `$adapter`, and
/// implements [`Conn`] for its `TcpStream`. The tokio and smol adapters' types are
/// newtypes over `asyncresult_core::net`'s, whose methods they share through
/// `Deref`, so the two differ only in these names and in their runtime's `AsyncRead`
/// extension trait (`$read_ext`).
macro_rules! adapter_stack {
    ($(#[$doc:meta])* $name:ident, $adapter:ident, $read_ext:path) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl $crate::contenders::stack::Stack for $name {
            type Conn = $adapter::TcpStream;
            type Listener = $adapter::TcpListener;

            async fn listen() -> std::io::Result<(Self::Listener, std::net::SocketAddr)> {
                let listener = $adapter::TcpListener::bind($crate::loopback::any_port()).await?;
                let addr = listener.local_addr()?;
                Ok((listener, addr))
            }

            async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self::Conn> {
                Ok($adapter::TcpStream::connect(addr).await?)
            }

            async fn accept(listener: &Self::Listener) -> std::io::Result<Self::Conn> {
                Ok(listener.accept().await?.0)
            }

            fn adopt(stream: std::net::TcpStream) -> std::io::Result<Self::Conn> {
                Ok($adapter::TcpStream::from($adapter::Socket::try_from(stream)?))
            }
        }

        impl $crate::contenders::stack::Conn for $adapter::TcpStream {
            fn set_nodelay(&self) -> std::io::Result<()> {
                Ok((**self).set_nodelay(true)?)
            }

            async fn write_static(&mut self, data: &'static [u8]) -> std::io::Result<()> {
                $crate::contenders::stack::whole(self.send(data).await?, data.len())
            }

            async fn write_vec(&mut self, data: Vec<u8>) -> std::io::Result<()> {
                let len = data.len();
                $crate::contenders::stack::whole(self.send(data).await?, len)
            }

            async fn read<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> std::io::Result<usize> {
                let (n, back) = self.receive(std::mem::take(buf)).await?;
                *buf = back;
                Ok(n)
            }

            async fn read_slice<'a>(&'a mut self, buf: &'a mut [u8]) -> std::io::Result<usize> {
                <Self as $read_ext>::read(self, buf).await
            }
        }
    };
}

pub(crate) use adapter_stack;
