//! What a scenario can ask of an adapter: the [`Harness`] trait, in plain blocking
//! calls and [`Pending`] handles, so that one scenario drives callbacks, tokio and smol
//! alike.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use asyncresult_core::{Error, Socket};

/// The result of a harness call.
pub type Res<T> = Result<T, Error>;

/// An operation started in the background; its outcome arrives exactly once.
#[derive(Debug)]
pub struct Pending<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> Pending<T> {
    /// A handle and the sender its operation reports to.
    pub fn channel() -> (mpsc::Sender<T>, Pending<T>) {
        let (tx, rx) = mpsc::channel();
        (tx, Pending { rx })
    }

    /// Waits up to `limit` for the outcome.
    pub fn wait(&self, limit: Duration) -> Option<T> {
        self.rx.recv_timeout(limit).ok()
    }

    /// Whether a second outcome ever arrives within `limit` (it must not).
    pub fn reports_again(&self, limit: Duration) -> bool {
        self.rx.recv_timeout(limit).is_ok()
    }
}

impl<T> Pending<Res<T>> {
    /// Waits up to [`WAIT`] for the outcome; `Aborted` if none comes.
    pub fn outcome(&self) -> Res<T> {
        self.wait(WAIT).unwrap_or(Err(Error::Aborted))
    }
}

/// One adapter, as the scenarios see it.
pub trait Harness: Send + Sync + 'static {
    /// A connected TCP stream.
    type Stream: Send + Sync + 'static;
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;
    /// A UDP socket.
    type Udp: Send + Sync + 'static;

    /// Listens on `addr`.
    fn listen(&self, addr: SocketAddr) -> Res<Self::Listener>;
    /// The core socket of a listener (address, close).
    fn listener_socket(&self, l: &Self::Listener) -> Socket;
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> Res<Self::Stream>;
    /// Starts an accept.
    fn start_accept(&self, l: &Self::Listener) -> Pending<Res<Self::Stream>>;
    /// The core socket of a stream (close, shutdown, options).
    fn socket(&self, s: &Self::Stream) -> Socket;

    /// Starts whole sends of `bufs`, begun in this order.
    fn start_sends(&self, s: &Self::Stream, bufs: Vec<Vec<u8>>) -> Pending<Res<Vec<usize>>>;
    /// Starts one receive into a buffer of `capacity` (the result's len is the count).
    fn start_receive(&self, s: &Self::Stream, capacity: usize) -> Pending<Res<Vec<u8>>>;
    /// A send bounded by `limit`: cancelled at expiry.
    fn send_timeout(&self, s: &Self::Stream, buf: Vec<u8>, limit: Duration) -> Res<usize>;
    /// A receive bounded by `limit`: cancelled at expiry, taking nothing.
    fn receive_timeout(&self, s: &Self::Stream, capacity: usize, limit: Duration) -> Res<Vec<u8>>;
    /// Starts a send and abandons it at once (drops the future or the result).
    fn send_and_forget(&self, s: &Self::Stream, buf: Vec<u8>);

    /// Binds a UDP socket.
    fn udp_bind(&self, addr: SocketAddr) -> Res<Self::Udp>;
    /// The core socket of a UDP socket.
    fn udp_socket(&self, u: &Self::Udp) -> Socket;
    /// Sets the default peer.
    fn udp_connect(&self, u: &Self::Udp, to: SocketAddr) -> Res<()>;
    /// One datagram to the default peer.
    fn udp_send(&self, u: &Self::Udp, buf: Vec<u8>) -> Res<usize>;
    /// One datagram to `to`.
    fn udp_send_to(&self, u: &Self::Udp, buf: Vec<u8>, to: SocketAddr) -> Res<usize>;
    /// Starts a receive of one datagram and its sender.
    fn start_receive_from(
        &self,
        u: &Self::Udp,
        capacity: usize,
    ) -> Pending<Res<(usize, Vec<u8>, SocketAddr)>>;
}

/// How long a scenario waits for an outcome that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// Blocking helpers on top of the trait.
pub trait HarnessExt: Harness {
    /// Accepts one connection.
    fn accept(&self, l: &Self::Listener) -> Res<Self::Stream> {
        self.start_accept(l).outcome()
    }
    /// A whole send.
    fn send(&self, s: &Self::Stream, buf: Vec<u8>) -> Res<usize> {
        self.start_sends(s, vec![buf])
            .outcome()
            .map(|counts| counts.iter().sum())
    }
    /// One receive.
    fn receive(&self, s: &Self::Stream, capacity: usize) -> Res<Vec<u8>> {
        self.start_receive(s, capacity).outcome()
    }
    /// Receives exactly `len` bytes (several receives).
    fn receive_exact(&self, s: &Self::Stream, len: usize) -> Res<Vec<u8>> {
        let mut all = Vec::with_capacity(len);
        while all.len() < len {
            let got = self.receive(s, (len - all.len()).min(1 << 16))?;
            if got.is_empty() {
                return Err(Error::Socket(std::io::ErrorKind::UnexpectedEof.into()));
            }
            all.extend_from_slice(&got);
        }
        Ok(all)
    }
    /// A connected pair: (client, server).
    fn pair(&self) -> Res<(Self::Stream, Self::Stream)> {
        let l = self.listen(crate::loopback())?;
        let addr = self.listener_socket(&l).local_addr()?;
        let accepting = self.start_accept(&l);
        let client = self.connect(addr)?;
        let server = accepting.outcome()?;
        Ok((client, server))
    }
}

impl<H: Harness> HarnessExt for H {}
