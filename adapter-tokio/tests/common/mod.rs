//! Helpers the tokio adapter's test files share: loopback addresses, byte patterns
//! and connected pairs.
#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../core/tests/common/ipv6.rs"]
mod ipv6;
#[allow(unused_imports)] // Not every test file asks.
pub use ipv6::{assert_v6_to_v4_send_failed, ipv6_loopback, no_ipv6, no_ipv6_for};
#[path = "../../../core/tests/common/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::refusing_port;
#[path = "../../../core/tests/common/timeouts.rs"]
mod timeouts;
#[allow(unused_imports)]
pub use timeouts::timeouts;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use asyncresult_tokio::{TcpListener, TcpStream};

/// 127.0.0.1, any port.
pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// `len` bytes that differ from byte to byte and from seed to seed.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A connected pair of our streams.
pub async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Our stream on one end, a plain blocking std stream on the other.
pub async fn pair_with_std() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Runs `f` on its own thread under a hard limit (a blocked runtime fails too).
pub fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {limit:?}"),
    }
}

/// A minimal executor with no tokio context: polls `f` on this thread, parks between
/// wakes.
pub fn park_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
