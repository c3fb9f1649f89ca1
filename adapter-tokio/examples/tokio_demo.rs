//! The demo's exchange through the tokio adapter: accept + connect, a small and a
//! large whole send, receives until FIN, a UDP round trip, and 10,000 request/response
//! round trips, on a current-thread runtime.
//!
//! ```text
//! cargo run --release -p asyncresult-tokio --example tokio_demo
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use asyncresult_tokio::{Error, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32))
}

/// Prints one line of the demo and a machine-readable result for `cargo xtask demo`.
fn report(key: &str, value: f64, line: String) {
    println!("{line}");
    println!("RESULT {key}={value:.3}");
}

async fn demo() -> Result<(), Error> {
    let listener = TcpListener::bind(loopback()).await?;
    let addr = listener.local_addr()?;
    let t = Instant::now();
    let (client, (server, _)) = tokio::try_join!(TcpStream::connect(addr), listener.accept())?;
    let took = t.elapsed();
    report(
        "connect_us",
        took.as_secs_f64() * 1e6,
        format!("[tcp] connect + accept to {addr} in {:?}", took),
    );
    client.set_nodelay(true)?;

    let receiver = tokio::spawn(async move {
        let mut all = Vec::new();
        loop {
            let (n, buf) = server.receive(Vec::with_capacity(64 * 1024)).await?;
            if n == 0 {
                return Ok::<_, Error>((all.len(), checksum(&all)));
            }
            all.extend_from_slice(&buf);
        }
    });
    // A small send: the first on the connection, then many more, each finished by the
    // fast path (one `send` syscall). The fastest is the library's own cost; the median
    // also depends on whether the kernel sends each at once or corks it behind the last.
    const SMALL: &[u8] = b"hello over loopback";
    const MORE: usize = 1000;
    let large: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut expected = SMALL.repeat(1 + MORE);
    expected.extend_from_slice(&large);
    let t = Instant::now();
    let n = client.send(SMALL).await?;
    let first = t.elapsed();
    let mut times = Vec::with_capacity(MORE);
    for _ in 0..MORE {
        let t = Instant::now();
        client.send(SMALL).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let (fastest, median) = (times[0], times[MORE / 2]);
    report(
        "small_send_us",
        fastest.as_secs_f64() * 1e6,
        format!(
            "[tcp] small send: {n} bytes; the first in {first:?}, then {MORE} more: \
             fastest {fastest:?}, median {median:?}"
        ),
    );
    let t = Instant::now();
    let n = client.send(large).await?;
    let took = t.elapsed();
    report(
        "large_send_ms",
        took.as_secs_f64() * 1e3,
        format!("[tcp] large send: {n} bytes, whole, in {:?}", took),
    );
    client.socket().shutdown(std::net::Shutdown::Write)?;
    let (received, sum) = receiver.await.map_err(|_| Error::Aborted)??;
    println!(
        "[tcp] server received {received} bytes with receive() until 0 (FIN); checksum {}",
        if sum == checksum(&expected) && received == expected.len() {
            "matches"
        } else {
            "DIFFERS"
        }
    );

    let a = UdpSocket::bind(loopback()).await?;
    let b = UdpSocket::bind(loopback()).await?;
    let t = Instant::now();
    a.send_to(&b"datagram ping"[..], b.local_addr()?).await?;
    let (n, buf, from) = b.receive_from(Vec::with_capacity(2048)).await?;
    b.send_to(buf, from).await?;
    let (m, echo, _) = a.receive_from(Vec::with_capacity(2048)).await?;
    let took = t.elapsed();
    report(
        "udp_round_trip_us",
        took.as_secs_f64() * 1e6,
        format!(
            "[udp] {n} bytes out, {m} back ({:?}): {:?}",
            took,
            String::from_utf8_lossy(&echo)
        ),
    );

    // 10,000 round trips through AsyncRead/AsyncWrite.
    let listener = TcpListener::bind(loopback()).await?;
    let (mut c, (mut s, _)) = tokio::try_join!(
        TcpStream::connect(listener.local_addr()?),
        listener.accept()
    )?;
    c.set_nodelay(true)?;
    s.set_nodelay(true)?;
    let rounds = 10_000;
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            s.read_exact(&mut buf).await?;
            s.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(s)
    });
    let mut buf = [7u8; 64];
    let t = Instant::now();
    for _ in 0..rounds {
        c.write_all(&buf).await?;
        c.read_exact(&mut buf).await?;
    }
    let took = t.elapsed();
    let _peer = echo.await.map_err(|_| Error::Aborted)??;
    report(
        "round_trip_us",
        took.as_secs_f64() * 1e6 / rounds as f64,
        format!(
            "[tcp] {rounds} round trips of 64 bytes with write_all/read_exact: {took:?} ({:.1} µs each)",
            took.as_secs_f64() * 1e6 / rounds as f64
        ),
    );

    // A receive bounded by tokio's timer.
    let t = Instant::now();
    let idle = c
        .receive_timeout(Vec::with_capacity(8), Duration::from_millis(20))
        .await;
    println!(
        "[tcp] receive_timeout(20 ms) on an idle stream: {idle:?} after {:?}",
        t.elapsed()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("asyncresult: the tokio adapter on loopback (current-thread runtime)\n");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(demo())?;
    println!("\ndone.");
    Ok(())
}
