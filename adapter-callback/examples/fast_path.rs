//! What the fast path costs: small sends on an idle connection, each begun and ended
//! on the calling thread. Run it under `strace -f -c` to count syscalls per send.
//!
//! ```text
//! cargo run --release -p asyncresult-callback --example fast_path -- 100000
//! strace -f -c target/release/examples/fast_path 100000
//! ```

use std::io::Read;
use std::net::TcpListener;
use std::thread;
use std::time::Instant;

use asyncresult_callback::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sends: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // The peer is a plain std socket, so only the sender's work shows in the counts.
    let reader = thread::spawn(move || -> std::io::Result<usize> {
        let (mut conn, _) = listener.accept()?;
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    });

    let s = Socket::connect_tcp(addr)?;
    s.set_nodelay(true)?;
    let message: &'static [u8] = b"0123456789abcdef";
    let mut synchronous = 0;
    let started = Instant::now();
    for _ in 0..sends {
        let ar = s.begin_send(message, SocketFlags::NONE, None, None)?;
        if ar.completed_synchronously() {
            synchronous += 1;
        }
        s.end_send(&ar)?;
    }
    let took = started.elapsed();
    s.close();
    let received = reader.join().map_err(|_| "reader panicked")??;
    println!(
        "{sends} sends of {} bytes in {took:?}: {:.0} ns per begin_send + end_send, \
         {synchronous} completed synchronously; the peer received {received} bytes",
        message.len(),
        took.as_nanos() as f64 / sends as f64
    );
    Ok(())
}
