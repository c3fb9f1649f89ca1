//! Runtime-generic TCP and UDP types: every async operation written once, for any
//! [`Runtime`](crate::future::Runtime). The tokio and smol adapters wrap these with
//! their runtime plugged in and add their runtime's I/O traits.

mod adapter;
mod tcp;
mod udp;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
