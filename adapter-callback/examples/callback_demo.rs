//! A loopback tour of the callback adapter: accept, connect, sends that complete
//! synchronously and asynchronously, receives, a UDP round trip, and a timed
//! request/response exchange, all through Begin/End calls and callbacks.
//!
//! ```text
//! cargo run --release -p asyncresult-callback --example callback_demo
//! ```

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_callback::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

fn thread_name() -> String {
    thread::current().name().unwrap_or("unnamed").to_string()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// What a callback saw, reported back to `main`.
struct Seen<T> {
    result: Result<T, Error>,
    sync: bool,
    thread: String,
}

/// A callback that ends the operation with `end` and reports what it saw.
fn report<T: Send + 'static>(
    tx: mpsc::Sender<Seen<T>>,
    end: impl FnOnce(&AsyncResult<T>) -> Result<T, Error> + Send + 'static,
) -> Option<AsyncCallback<T>> {
    callback(move |ar: AsyncResult<T>| {
        let result = end(&ar);
        let _ = tx.send(Seen {
            result,
            sync: ar.completed_synchronously(),
            thread: thread_name(),
        });
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("asyncresult: the callback adapter on loopback");
    println!("caller thread: {}\n", thread_name());

    // --- accept + connect -------------------------------------------------------
    let listener = Socket::listen_tcp(loopback(), 64)?;
    let addr = listener.local_addr()?;
    let (acc_tx, acc_rx) = mpsc::channel();
    let l = listener.clone();
    listener.begin_accept(report(acc_tx, move |ar| l.end_accept(ar)), None)?;

    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    let (con_tx, con_rx) = mpsc::channel();
    let c = client.clone();
    let started = Instant::now();
    client.begin_connect(addr, report(con_tx, move |ar| c.end_connect(ar)), None)?;
    let connected = con_rx.recv_timeout(WAIT)?;
    connected.result?;
    let accepted = acc_rx.recv_timeout(WAIT)?;
    let server = accepted.result?;
    let took = started.elapsed();
    println!(
        "[tcp] connect + accept to {addr} in {took:?} (callbacks on {} and {})",
        connected.thread, accepted.thread
    );
    println!("RESULT connect_us={:.3}", took.as_secs_f64() * 1e6);
    client.set_nodelay(true)?;

    // --- the server receives everything, chaining begin_receive in callbacks ----
    let (rx_done_tx, rx_done) = mpsc::channel::<(usize, u32)>();
    fn receive_loop(s: Socket, total: usize, checksum: u32, done: mpsc::Sender<(usize, u32)>) {
        let s2 = s.clone();
        let started = s.begin_receive(
            Vec::with_capacity(64 * 1024),
            SocketFlags::NONE,
            callback(
                move |ar: AsyncResult<(usize, Vec<u8>)>| match s2.end_receive(&ar) {
                    Ok((0, _)) => {
                        let _ = done.send((total, checksum));
                    }
                    Ok((n, buf)) => {
                        let sum = buf
                            .iter()
                            .fold(checksum, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32));
                        receive_loop(s2, total + n, sum, done);
                    }
                    Err(e) => {
                        eprintln!("receive failed: {e}");
                        let _ = done.send((total, checksum));
                    }
                },
            ),
            None,
        );
        if let Err(e) = started {
            eprintln!("begin_receive failed: {e}");
        }
    }
    // Started just before the large send: the small sends wait in the kernel until
    // then, so their timings show `begin_send` alone, as in the tokio and smol demos.
    let mut receiver = Some(rx_done_tx);

    // --- sends ------------------------------------------------------------------
    const SMALL: &[u8] = b"hello over loopback";
    let mut expected: Vec<u8> = Vec::new();
    for (label, payload) in [
        ("small", SMALL.to_vec()),
        (
            "large",
            (0..8 << 20)
                .map(|i: u32| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
    ] {
        expected.extend_from_slice(&payload);
        if label == "large" {
            if let Some(done) = receiver.take() {
                receive_loop(server.clone(), 0, 0, done);
            }
        }
        let (tx, done) = mpsc::channel();
        let c = client.clone();
        let len = payload.len();
        let t = Instant::now();
        let ar = client.begin_send(
            payload,
            SocketFlags::NONE,
            report(tx, move |ar| c.end_send(ar)),
            None,
        )?;
        let returned_after = t.elapsed();
        let seen = done.recv_timeout(WAIT)?;
        let sent = seen.result?;
        let reported_after = t.elapsed();
        println!(
            "[tcp] {label:>5} send: {sent} of {len} bytes, completed {}; begin_send returned \
             in {returned_after:?}, the callback reported after {:?} on {}",
            if seen.sync {
                "synchronously"
            } else {
                "asynchronously"
            },
            reported_after,
            seen.thread
        );
        assert!(ar.is_completed() && seen.sync == ar.completed_synchronously());
        if label == "small" {
            // Then many more, without callbacks: each finished by the fast path (one
            // `send` syscall) before `begin_send` returns.
            const MORE: usize = 1000;
            let mut times = Vec::with_capacity(MORE);
            for _ in 0..MORE {
                let t = Instant::now();
                let ar = client.begin_send(SMALL, SocketFlags::NONE, None, None)?;
                times.push(t.elapsed());
                client.end_send(&ar)?;
                expected.extend_from_slice(SMALL);
            }
            times.sort();
            let (fastest, median) = (times[0], times[MORE / 2]);
            println!(
                "[tcp] {MORE} more small sends: begin_send returned in {fastest:?} at \
                 fastest, {median:?} at the median (the kernel sends each at once or \
                 corks it behind the last)"
            );
            println!("RESULT small_send_us={:.3}", fastest.as_secs_f64() * 1e6);
        } else {
            println!(
                "RESULT large_send_ms={:.3}",
                reported_after.as_secs_f64() * 1e3
            );
        }
    }
    client.shutdown(std::net::Shutdown::Write)?;
    let (received, checksum) = rx_done.recv_timeout(WAIT)?;
    let want = expected
        .iter()
        .fold(0u32, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32));
    println!(
        "[tcp] server received {received} bytes through chained begin_receive callbacks, then 0 (FIN); \
         checksum {}",
        if checksum == want && received == expected.len() { "matches" } else { "DIFFERS" }
    );

    // --- UDP round trip ---------------------------------------------------------
    let a = Socket::bind_udp(loopback())?;
    let b = Socket::bind_udp(loopback())?;
    let (echo_tx, echo_done) = mpsc::channel();
    let b2 = b.clone();
    b.begin_receive_from(
        Vec::with_capacity(2048),
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| {
            let Ok((n, buf, from)) = b2.end_receive_from(&ar) else {
                return;
            };
            let _ = echo_tx.send((n, from));
            // Echo it back from the callback.
            let _ = b2.begin_send_to(buf, SocketFlags::NONE, from, None, None);
        }),
        None,
    )?;
    let t = Instant::now();
    let reply = a.begin_receive_from(Vec::with_capacity(2048), SocketFlags::NONE, None, None)?;
    let sent = a.end_send_to(&a.begin_send_to(
        &b"datagram ping"[..],
        SocketFlags::NONE,
        b.local_addr()?,
        None,
        None,
    )?)?;
    let (n, buf, from) = a.end_receive_from(&reply)?;
    let (echoed, echo_from) = echo_done.recv_timeout(WAIT)?;
    let udp_took = t.elapsed();
    println!(
        "[udp] sent {sent} bytes to {}, peer got {echoed} from {echo_from}, echo of {n} bytes back from {from} \
         ({:?}): {:?}",
        b.local_addr()?,
        udp_took,
        String::from_utf8_lossy(&buf)
    );
    println!(
        "RESULT udp_round_trip_us={:.3}",
        udp_took.as_secs_f64() * 1e6
    );

    // --- request/response: callbacks driving 10,000 round trips -----------------
    let rounds = 10_000;
    let (c2, s2) = {
        let l = Socket::listen_tcp(loopback(), 8)?;
        let c = Socket::connect_tcp(l.local_addr()?)?;
        let s = l.end_accept(&l.begin_accept(None, None)?)?;
        c.set_nodelay(true)?;
        s.set_nodelay(true)?;
        (c, s)
    };
    // Server: echo each 64-byte request.
    fn serve(s: Socket) {
        let s2 = s.clone();
        let _ = s.begin_receive(
            vec![0u8; 64].into_boxed_slice(),
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<(usize, Box<[u8]>)>| {
                if let Ok((n, buf)) = s2.end_receive(&ar) {
                    if n > 0 {
                        let _ = s2.begin_send(buf[..n].to_vec(), SocketFlags::NONE, None, None);
                        serve(s2);
                    }
                }
            }),
            None,
        );
    }
    serve(s2.clone());
    let (pp_tx, pp_done) = mpsc::channel();
    fn ping(c: Socket, left: usize, done: mpsc::Sender<Duration>, t0: Instant) {
        if left == 0 {
            let _ = done.send(t0.elapsed());
            return;
        }
        let _ = c.begin_send(vec![7u8; 64], SocketFlags::NONE, None, None);
        let c2 = c.clone();
        let _ = c.begin_receive(
            Vec::with_capacity(64),
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                if let Ok((n, _)) = c2.end_receive(&ar) {
                    if n == 64 {
                        ping(c2, left - 1, done, t0);
                    } else {
                        // A short read would need reassembly; the demo's 64-byte
                        // messages on loopback arrive whole.
                        let _ = done.send(Duration::ZERO);
                    }
                }
            }),
            None,
        );
    }
    ping(c2.clone(), rounds, pp_tx, Instant::now());
    let took = pp_done.recv_timeout(WAIT)?;
    println!(
        "[tcp] {rounds} request/response round trips of 64 bytes driven by callbacks: {:?} \
         ({:.0} round trips/s, {:.1} µs each)",
        took,
        rounds as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / rounds as f64
    );
    println!(
        "RESULT round_trip_us={:.3}",
        took.as_secs_f64() * 1e6 / rounds as f64
    );

    // --- misuse, as .NET reports it ---------------------------------------------
    let late = client
        .begin_send(&b"late"[..], SocketFlags::NONE, None, None)
        .and_then(|ar| client.end_send(&ar));
    println!(
        "\n[misuse] send after shutdown(Write): {}",
        outcome(late.map(|n| format!("sent {n} bytes")))
    );
    let x = a.begin_send_to(&b"x"[..], SocketFlags::NONE, b.local_addr()?, None, None)?;
    println!(
        "[misuse] end_send of a send_to result: {}",
        outcome(a.end_send(&x).map(|n| n.to_string()))
    );
    println!(
        "[misuse] end_send_to twice: {}, then {}",
        outcome(a.end_send_to(&x).map(|n| n.to_string())),
        outcome(a.end_send_to(&x).map(|n| n.to_string()))
    );
    a.close();
    println!(
        "[misuse] begin_send_to after close: {}",
        outcome(
            a.begin_send_to(&b"x"[..], SocketFlags::NONE, b.local_addr()?, None, None)
                .map(|_| "begun".to_string())
        )
    );
    println!("\ndone.");
    Ok(())
}

/// An outcome as the demo prints it: `Ok(what)`, or the error's `Error` variant, its
/// message and, for a socket error, its errno (.NET's `SocketException.ErrorCode`).
fn outcome(result: Result<String, Error>) -> String {
    match result {
        Ok(what) => format!("Ok({what})"),
        Err(e) => match e.error_code() {
            Some(code) => format!("Err: {e} (error_code() = {code})"),
            None => format!("Err({e:?}): {e}"),
        },
    }
}
