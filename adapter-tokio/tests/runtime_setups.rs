//! The tokio adapter under runtime set-ups other than the plain one: a runtime without
//! time, paused time (auto-advance) compared with tokio's own sockets, `LocalSet`,
//! `block_in_place` / `spawn_blocking` around core's blocking `end_*`, many runtimes in
//! sequence and at once (threads, descriptors and driver registrations come back), and
//! runtimes dropped while their driver is busy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use asyncresult_tokio::{Error, SocketFlags, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{bounded, loopback, park_block_on};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn is_child() -> bool {
    std::env::var_os("ASYNCRESULT_CHILD").is_some()
}

/// Runs the `#[ignore]`d test `name` of this binary alone in a child process.
fn child_ok(name: &str) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("ASYNCRESULT_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

/// `rounds` one-byte round trips between two tasks of the current runtime; returns the
/// slowest.
async fn ping_pong(client: &TcpStream, server: TcpStream, rounds: usize) -> Duration {
    let echo = tokio::spawn(async move {
        loop {
            let (n, buf) = server.receive(Vec::with_capacity(16)).await?;
            if n == 0 {
                return Ok::<_, Error>(());
            }
            server.send(buf).await?;
        }
    });
    let mut worst = Duration::ZERO;
    for i in 0..rounds {
        let start = Instant::now();
        client.send(vec![i as u8]).await.unwrap();
        let (n, buf) = client.receive(Vec::with_capacity(16)).await.unwrap();
        assert_eq!((n, buf[0]), (1, i as u8));
        worst = worst.max(start.elapsed());
    }
    client.socket().shutdown(std::net::Shutdown::Write).unwrap();
    echo.await.unwrap().unwrap();
    worst
}

/// A runtime with I/O but no time: the plain operations work; a `*_timeout` panics
/// with tokio's own message (as documented), and that panic loses no byte: the data
/// is still there for the next receive, and the socket still works.
#[test]
fn a_runtime_without_time_serves_io_and_its_timeouts_panic_as_documented() {
    bounded(Duration::from_secs(30), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let (client, server) = rt.block_on(pair());
        let worst = rt.block_on(async {
            let (c2, s2) = pair().await;
            ping_pong(&c2, s2, 50).await
        });
        assert!(
            worst < Duration::from_secs(1),
            "slowest round trip {worst:?}"
        );
        rt.block_on(client.send(&b"kept"[..])).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(server.receive_timeout(Vec::with_capacity(8), Duration::from_secs(1)))
        }));
        let message = match panicked {
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
            Ok(r) => panic!("a timeout without a timer did not panic: {r:?}"),
        };
        assert!(message.contains("timers are disabled"), "{message}");
        let (n, buf) = rt.block_on(server.receive(Vec::with_capacity(8))).unwrap();
        assert_eq!(&buf[..n], b"kept");
        rt.block_on(async {
            client.send(&b"more"[..]).await.unwrap();
            let (n, buf) = server.receive(Vec::with_capacity(8)).await.unwrap();
            assert_eq!(&buf[..n], b"more");
        });
    });
}

/// Paused time, peers in the same runtime: auto-advance must not fire a timeout while
/// the other task can still make progress over loopback. tokio's own TcpStream is the
/// baseline; the adapter must do as well.
#[tokio::test(start_paused = true)]
async fn paused_time_round_trips_do_not_time_out_native_baseline() {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            server.write_all(&buf[..n]).await.unwrap();
        }
    });
    for i in 0..200u8 {
        client.write_all(&[i]).await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(100), client.read_exact(&mut b))
            .await
            .expect("native round trip timed out under paused time")
            .unwrap();
        assert_eq!(b[0], i);
    }
    drop(client);
    echo.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn paused_time_round_trips_do_not_time_out() {
    let (client, server) = pair().await;
    let echo = tokio::spawn(async move {
        loop {
            let (n, buf) = server.receive(Vec::with_capacity(64)).await?;
            if n == 0 {
                return Ok::<_, Error>(());
            }
            server.send(buf).await?;
        }
    });
    for i in 0..200u8 {
        client.send(vec![i]).await.unwrap();
        let (n, buf) = tokio::time::timeout(
            Duration::from_millis(100),
            client.receive(Vec::with_capacity(8)),
        )
        .await
        .unwrap_or_else(|_| panic!("round trip {i} timed out under paused time"))
        .unwrap();
        assert_eq!((n, buf[0]), (1, i));
        // The adapter's own timer-bound form too.
        client.send(vec![i]).await.unwrap();
        let (n, buf) = client
            .receive_timeout(Vec::with_capacity(8), Duration::from_millis(100))
            .await
            .unwrap_or_else(|e| panic!("receive_timeout {i}: {e:?}"));
        assert_eq!((n, buf[0]), (1, i));
    }
    client.socket().shutdown(std::net::Shutdown::Write).unwrap();
    echo.await.unwrap().unwrap();
}

/// Paused time, a bulk transfer: the sender waits for room (its send is a queued core
/// operation), the reader reads under a per-read timeout. Native baseline first.
#[tokio::test(start_paused = true)]
async fn paused_time_bulk_transfer_native_baseline() {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    const LEN: usize = 8 << 20;
    let writer = tokio::spawn(async move {
        client.write_all(&vec![7u8; LEN]).await.unwrap();
    });
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    while got < LEN {
        let n = tokio::time::timeout(Duration::from_millis(100), server.read(&mut buf))
            .await
            .expect("native read timed out under paused time")
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn paused_time_bulk_transfer() {
    let (client, mut server) = pair().await;
    const LEN: usize = 8 << 20;
    let writer = tokio::spawn(async move {
        client
            .send_timeout(vec![7u8; LEN], Duration::from_millis(100))
            .await
            .expect("a whole send timed out under paused time");
        client
    });
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    while got < LEN {
        let n = tokio::time::timeout(Duration::from_millis(100), server.read(&mut buf))
            .await
            .expect("read timed out under paused time")
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    writer.await.unwrap();
}

/// `LocalSet` and `spawn_local`: futures polled from local tasks are served by the
/// runtime's driver like any other.
#[test]
fn local_set_and_spawn_local() {
    bounded(Duration::from_secs(30), || {
        let rt = current();
        let local = tokio::task::LocalSet::new();
        let worst = local.block_on(&rt, async {
            let (client, server) = pair().await;
            let echo = tokio::task::spawn_local(async move {
                let (mut r, mut w) = server.into_split();
                tokio::io::copy(&mut r, &mut w).await
            });
            let mut worst = Duration::ZERO;
            let (mut cr, mut cw) = client.into_split();
            for i in 0..200u8 {
                let start = Instant::now();
                cw.write_all(&[i, i]).await.unwrap();
                let mut b = [0u8; 2];
                cr.read_exact(&mut b).await.unwrap();
                assert_eq!(b, [i, i]);
                worst = worst.max(start.elapsed());
            }
            drop(cw);
            assert_eq!(echo.await.unwrap().unwrap(), 400);
            worst
        });
        assert!(
            worst < Duration::from_secs(1),
            "slowest round trip {worst:?}"
        );
        // A LocalSet run inside a multi-thread runtime's block_on.
        let rt = multi(2);
        local.block_on(&rt, async {
            let (client, server) = pair().await;
            let w = ping_pong(&client, server, 100).await;
            assert!(w < Duration::from_secs(1), "slowest round trip {w:?}");
        });
    });
}

/// `block_in_place` and `spawn_blocking` calling core's blocking `end_*` while the
/// peer is an adapter future of the same runtime.
#[test]
fn block_in_place_and_spawn_blocking_around_blocking_ends() {
    bounded(Duration::from_secs(60), || {
        for workers in [1, 2] {
            let rt = multi(workers);
            rt.block_on(async {
                let (client, server) = pair().await;
                let (client_sock, server_sock) = (client.socket().clone(), server.socket().clone());
                // block_in_place on this task's worker: a receive ended there, its data
                // sent by a task that needs the runtime (and its driver) to progress.
                for round in 0..20u8 {
                    let pending = server_sock
                        .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                        .unwrap();
                    let sender = tokio::spawn({
                        let c = client_sock.clone();
                        async move {
                            let c = TcpStream::from(c);
                            tokio::task::yield_now().await;
                            c.send(vec![round; 3]).await.unwrap();
                            c.into_inner()
                        }
                    });
                    let start = Instant::now();
                    let (n, buf) =
                        tokio::task::block_in_place(|| server_sock.end_receive(&pending)).unwrap();
                    assert!(start.elapsed() < Duration::from_secs(2));
                    assert!(n > 0 && buf.iter().all(|&b| b == round));
                    sender.await.unwrap();
                    // Read the rest, if the 3 bytes came in two pieces.
                    let mut left = 3 - n;
                    while left > 0 {
                        let (m, _) = server.receive(Vec::with_capacity(8)).await.unwrap();
                        left -= m;
                    }
                }
                // spawn_blocking: a big send ended on a blocking thread while the
                // runtime reads it through AsyncRead.
                const LEN: usize = 4 << 20;
                let sent = client_sock
                    .begin_send(vec![9u8; LEN], SocketFlags::NONE, None, None)
                    .unwrap();
                let c = client_sock.clone();
                let ended = tokio::task::spawn_blocking(move || c.end_send(&sent));
                let mut server = server;
                let mut got = 0;
                let mut buf = vec![0u8; 1 << 16];
                while got < LEN {
                    let n = server.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    got += n;
                }
                assert_eq!(ended.await.unwrap().unwrap(), LEN);
                drop(client);
            });
        }
    });
}

/// Many runtimes, one after another and eight at once, each running adapter traffic:
/// no thread, descriptor or driver registration is left behind, and round trips stay
/// fast on every one. In a child, so that other tests' threads and sockets do not count.
#[test]
fn many_runtimes_leave_nothing_behind() {
    child_ok("child_many_runtimes");
}

#[test]
#[ignore = "child scenario of many_runtimes_leave_nothing_behind"]
fn child_many_runtimes() {
    if !is_child() {
        return;
    }
    bounded(Duration::from_secs(120), || {
        // Warm up: start the engine and its workers.
        {
            let rt = current();
            rt.block_on(async {
                let (c, s) = pair().await;
                ping_pong(&c, s, 10).await;
            });
        }
        let stats0 = asyncresult_core::driver::engine_stats().unwrap();
        assert_eq!(stats0.drivers, 0, "a dropped runtime left its driver");
        let (fds0, threads0) = (fd_count(), thread_count());
        let mut worst_all = Duration::ZERO;
        for i in 0..50 {
            let rt = if i % 2 == 0 { current() } else { multi(2) };
            let worst = rt.block_on(async {
                let (c, s) = pair().await;
                ping_pong(&c, s, 20).await
            });
            let monitor = asyncresult_core::driver::engine_stats()
                .unwrap()
                .monitor_drains;
            if worst > Duration::from_millis(20) {
                eprintln!(
                    "runtime {i} ({}): slowest round trip {worst:?}, monitor drains {monitor}",
                    if i % 2 == 0 { "current" } else { "multi" }
                );
            }
            worst_all = worst_all.max(worst);
            drop(rt);
            let stats = asyncresult_core::driver::engine_stats().unwrap();
            assert_eq!(stats.drivers, 0, "runtime {i} left its driver attached");
        }
        assert!(
            worst_all < Duration::from_secs(2),
            "slowest round trip over 50 runtimes {worst_all:?}"
        );
        // Eight at once, on eight threads, each dropped while its driver is busy with
        // a bulk transfer.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
        let mut threads = Vec::new();
        for t in 0..8 {
            let go = go_rx.clone();
            threads.push(std::thread::spawn(move || {
                let rt = if t % 2 == 0 { current() } else { multi(2) };
                let worst = rt.block_on(async {
                    let (c, s) = pair().await;
                    ping_pong(&c, s, 50).await
                });
                // A bulk transfer in flight, then the runtime goes.
                let (c, s) = rt.block_on(pair());
                let (c_sock, s_sock) = (c.socket().clone(), s.socket().clone());
                rt.spawn(async move {
                    let _ = c.send(vec![1u8; 8 << 20]).await;
                });
                rt.spawn(async move {
                    let mut s = s;
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
                rt.block_on(tokio::task::yield_now());
                let _ = go.lock().unwrap().recv_timeout(Duration::from_millis(1));
                drop(rt);
                c_sock.close();
                s_sock.close();
                worst
            }));
        }
        drop(go_tx);
        for t in threads {
            let worst = t.join().unwrap();
            assert!(worst < Duration::from_secs(2), "slowest {worst:?}");
        }
        let stats = asyncresult_core::driver::engine_stats().unwrap();
        assert_eq!(stats.drivers, 0, "dropped runtimes left drivers attached");
        // The closed sockets' descriptors go when their last operation does: wait for
        // the counts to settle, bounded.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (fds, threads) = (fd_count(), thread_count());
            let stats = asyncresult_core::driver::engine_stats().unwrap();
            if fds <= fds0 && threads <= threads0 + stats.workers.saturating_sub(stats0.workers) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left behind: fds {fds0} -> {fds}, threads {threads0} -> {threads}, \
                 engine {stats0:?} -> {stats:?}"
            );
            std::thread::yield_now();
        }
        // The engine still serves blocking users at once.
        let l = asyncresult_tokio::Socket::listen_tcp(loopback(), 4).unwrap();
        let c = asyncresult_tokio::Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        let s = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
        let r = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        c.end_send(
            &c.begin_send(b"ping", SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
        assert!(r.wait_timeout(Duration::from_secs(5)));
    });
}

/// Runtimes without I/O, created, used and dropped one after another, must not leave
/// anything behind per runtime: measured as the bytes the process keeps allocated.
#[test]
fn runtimes_without_io_leave_nothing_behind() {
    child_ok("child_runtimes_without_io");
}

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    pub static LIVE: AtomicIsize = AtomicIsize::new(0);

    pub struct Counting;

    // SAFETY: forwards to the system allocator, only counting.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            // SAFETY: the caller's contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            // SAFETY: the caller's contract.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

#[test]
#[ignore = "child scenario of runtimes_without_io_leave_nothing_behind"]
fn child_runtimes_without_io() {
    if !is_child() {
        return;
    }
    // tokio's refusal of the registration is a caught panic: keep it quiet.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("IO is disabled") {
            previous(info);
        }
    }));
    bounded(Duration::from_secs(120), || {
        let (client, server) = {
            let rt = current();
            rt.block_on(async {
                let (c, s) = pair().await;
                (c.into_inner(), s.into_inner())
            })
        };
        let (client, server) = (TcpStream::from(client), TcpStream::from(server));
        let round = |client: &TcpStream, server: &TcpStream, io: bool| {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_time();
            if io {
                builder.enable_io();
            }
            let rt = builder.build().unwrap();
            rt.block_on(async {
                // The receive waits (so the runtime is told), then the send lands.
                let receive = server.receive(Vec::with_capacity(8));
                let send = async {
                    tokio::task::yield_now().await;
                    client.send(&b"x"[..]).await.unwrap();
                };
                let (got, ()) = tokio::join!(receive, send);
                assert_eq!(got.unwrap().0, 1);
            });
        };
        let live = || counting::LIVE.load(std::sync::atomic::Ordering::SeqCst);
        let mut grown = [0; 2];
        for io in [true, false] {
            for _ in 0..200 {
                round(&client, &server, io);
            }
            let before = live();
            for _ in 0..2000 {
                round(&client, &server, io);
            }
            grown[usize::from(io)] = live() - before;
        }
        // With I/O (the control: the measure sees no growth) and without.
        assert!(
            grown[1] < 16 * 1024,
            "2000 runtimes with I/O left {} bytes",
            grown[1]
        );
        assert!(
            grown[0] < 16 * 1024,
            "2000 runtimes without I/O left {} bytes allocated",
            grown[0]
        );
    });
}

/// A blocking echo peer on a plain thread.
fn std_echo() -> (SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (addr, h)
}

/// Paused time with the peer on another thread (outside the runtime): auto-advance
/// fires a timeout whenever the runtime finds nothing to do before the reply lands.
/// tokio's own sockets and the adapter's are compared: the counts of such spurious
/// timeouts, printed, are the same kind of race for both (not asserted).
#[test]
fn paused_time_with_a_peer_on_another_thread_compared() {
    bounded(Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let (addr, h) = std_echo();
        let native = rt.block_on(async {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            let mut timeouts = 0;
            for i in 0..200u8 {
                c.write_all(&[i]).await.unwrap();
                let mut b = [0u8; 1];
                loop {
                    match tokio::time::timeout(Duration::from_millis(100), c.read_exact(&mut b))
                        .await
                    {
                        Ok(r) => {
                            r.unwrap();
                            break;
                        }
                        Err(_) => timeouts += 1,
                    }
                }
                assert_eq!(b[0], i);
            }
            timeouts
        });
        h.join().unwrap();
        let (addr, h) = std_echo();
        let adapter = rt.block_on(async {
            let c = TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            let mut timeouts = 0;
            for i in 0..200u8 {
                c.send(vec![i]).await.unwrap();
                loop {
                    match tokio::time::timeout(
                        Duration::from_millis(100),
                        c.receive(Vec::with_capacity(1)),
                    )
                    .await
                    {
                        Ok(r) => {
                            assert_eq!(r.unwrap().1, [i]);
                            break;
                        }
                        Err(_) => timeouts += 1,
                    }
                }
            }
            timeouts
        });
        h.join().unwrap();
        eprintln!("spurious timeouts over 200 round trips: native {native}, adapter {adapter}");
    });
}

/// Outside any runtime: the plain futures complete (the engine's workers wake them),
/// and a `*_timeout` panics as documented, losing no byte.
#[test]
fn outside_any_runtime_timeouts_panic_and_lose_nothing() {
    bounded(Duration::from_secs(30), || {
        let (client, server) = current().block_on(async {
            let (c, s) = pair().await;
            (c.into_inner(), s.into_inner())
        });
        let (client, server) = (TcpStream::from(client), TcpStream::from(server));
        park_block_on(client.send(&b"kept"[..])).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            park_block_on(server.receive_timeout(Vec::with_capacity(8), Duration::from_secs(1)))
        }));
        assert!(
            panicked.is_err(),
            "a timeout outside any runtime did not panic"
        );
        let (n, buf) = park_block_on(server.receive(Vec::with_capacity(8))).unwrap();
        assert_eq!(&buf[..n], b"kept");
    });
}

/// `Handle::block_on` on a current-thread runtime that nobody runs (tokio's own I/O
/// would hang there): the adapter's futures complete, served by the engine's monitor
/// and then its workers, as the crate docs say ("Kept but not driven"). Printed: how
/// long 20 round trips take.
#[test]
fn handle_block_on_of_an_undriven_current_thread_runtime() {
    bounded(Duration::from_secs(60), || {
        let rt = current();
        let handle = rt.handle().clone();
        let start = Instant::now();
        let worst = std::thread::spawn(move || {
            handle.block_on(async {
                let (c, s) = pair().await;
                let s = std::sync::Arc::new(s);
                let s2 = s.clone();
                // The echo on a plain thread: no task of this runtime ever runs.
                let echo = std::thread::spawn(move || loop {
                    let ar = s2
                        .socket()
                        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                        .unwrap();
                    let (n, buf) = s2.socket().end_receive(&ar).unwrap();
                    if n == 0 {
                        return;
                    }
                    let sent = s2
                        .socket()
                        .begin_send(buf, SocketFlags::NONE, None, None)
                        .unwrap();
                    s2.socket().end_send(&sent).unwrap();
                });
                let mut worst = Duration::ZERO;
                for i in 0..20u8 {
                    let t = Instant::now();
                    c.send(vec![i]).await.unwrap();
                    let (n, buf) = c.receive(Vec::with_capacity(4)).await.unwrap();
                    assert_eq!((n, buf[0]), (1, i));
                    worst = worst.max(t.elapsed());
                }
                c.socket().shutdown(std::net::Shutdown::Write).unwrap();
                echo.join().unwrap();
                worst
            })
        })
        .join()
        .unwrap();
        eprintln!(
            "undriven runtime: 20 round trips in {:?}, slowest {worst:?}",
            start.elapsed()
        );
        drop(rt);
    });
}
