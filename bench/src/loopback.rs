//! Plain-std plumbing shared by the contenders: loopback listeners and pairs, the
//! draining sink of the overhead workload, and the file-descriptor limit.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use crate::payload::{Pattern, Verifier};
use crate::scale::Scale;

/// The only address the bench binds: loopback, any port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A std listener on a fresh loopback port.
pub fn listener() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(any_port())?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Connects to `listener`, at `addr`, and accepts: a (client, server) pair, blocking.
fn connect_accept(listener: &TcpListener, addr: SocketAddr) -> io::Result<(TcpStream, TcpStream)> {
    let client = TcpStream::connect(addr)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// One connected std pair (client, server), blocking.
pub fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let (listener, addr) = listener()?;
    connect_accept(&listener, addr)
}

/// `count` connected std pairs (client, server), blocking.
pub fn pairs(count: usize) -> io::Result<Vec<(TcpStream, TcpStream)>> {
    let (listener, addr) = listener()?;
    (0..count)
        .map(|_| connect_accept(&listener, addr))
        .collect()
}

/// Both ends of `count` connected std pairs, as one list (client, server, client,
/// …): the idle sockets of the memory workload.
pub fn sockets(count: usize) -> io::Result<Vec<TcpStream>> {
    Ok(pairs(count)?
        .into_iter()
        .flat_map(|(client, server)| [client, server])
        .collect())
}

/// A [`sink`] thread: it returns how many bytes it read.
pub type Sink = JoinHandle<Result<u64, String>>;

/// The peer of the overhead workload: a thread that accepts one connection on a fresh
/// port and reads `sends` small sends of the returned pattern from it, then returns how
/// many bytes it read. The contender connects to the returned address.
pub fn sink(sends: u64) -> io::Result<(SocketAddr, Sink, Pattern)> {
    const SEED: u64 = 3;
    let total = sends * Scale::SMALL_SEND as u64;
    let (listener, addr) = listener()?;
    let handle = thread::Builder::new()
        .name("bench-sink".into())
        .spawn(move || {
            let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            let mut verifier = Verifier::new(SEED, total);
            let mut buf = vec![0u8; 256 * 1024];
            while !verifier.done() {
                let n = stream
                    .read(&mut buf)
                    .map_err(|e| format!("sink read: {e}"))?;
                verifier.take(&buf[..n])?;
            }
            Ok(verifier.received())
        })?;
    Ok((addr, handle, Pattern::new(Scale::SMALL_SEND, SEED)))
}

/// Waits for a [`sink`] thread and checks it read everything.
pub fn join_sink(handle: Sink) -> Result<(), String> {
    handle
        .join()
        .map_err(|_| "sink thread panicked".to_string())?
        .map(drop)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the fan-in and memory
/// workloads hold thousands of sockets); returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid `rlimit` whose soft limit does not exceed its hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}
