//! The runtime adapters in hostile processes: signals without `SA_RESTART` raining on
//! every thread of a tokio or smol program, descriptors that run out before the engine
//! exists, a `fork()` after a runtime drove the engine, and an exit while runtimes
//! and operations are alive. Each scenario runs in a child process of its own, killed
//! if it does not finish in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_conformance::{loopback, pattern, tokio_runtime};

fn run_child_bounded(name: &str, limit: Duration) -> std::process::ExitStatus {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(limit) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (its waiter still waits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child scenario {name} did not finish within {limit:?} (hang)");
        }
    }
}

fn child_ok(name: &str) {
    let status = run_child_bounded(name, Duration::from_secs(120));
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

// ---------------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------------

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// SIGUSR1 with a handler installed *without* `SA_RESTART`, sent to every other thread
/// of the process over and over until dropped.
struct SignalStorm {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SignalStorm {
    fn start() -> SignalStorm {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = count_signal as *const () as usize;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            // SAFETY: plain getters.
            let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
            while !stop2.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                    let Some(tid) = entry
                        .file_name()
                        .to_str()
                        .and_then(|s| s.parse::<libc::pid_t>().ok())
                    else {
                        continue;
                    };
                    if tid != me {
                        // SAFETY: tgkill to a thread of this process (ESRCH if gone).
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                    }
                }
                thread::yield_now();
            }
        });
        SignalStorm {
            stop,
            thread: Some(thread),
        }
    }
}

/// Signals the storm must have delivered for a run to count as one under a storm.
const STORM_SIGNALS: usize = 1000;

impl SignalStorm {
    /// Runs `traffic`, then again until the storm has delivered [`STORM_SIGNALS`]
    /// (bounded: 30 s), so that whether the traffic ran under a storm does not depend on
    /// how fast it went.
    fn hit(&self, mut traffic: impl FnMut()) {
        let start = Instant::now();
        loop {
            traffic();
            if SIGNALS.load(Ordering::Relaxed) > STORM_SIGNALS
                || start.elapsed() > Duration::from_secs(30)
            {
                return;
            }
        }
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let delivered = SIGNALS.load(Ordering::Relaxed);
        eprintln!("signals delivered: {delivered}");
        assert!(
            delivered > STORM_SIGNALS,
            "the storm hardly happened: {delivered}"
        );
    }
}

/// Connections made and accepted, a ping-pong and a bulk transfer, on a tokio runtime
/// of each flavour, while every thread is hit by interrupting signals.
#[test]
fn tokio_under_a_storm_of_interrupting_signals() {
    child_ok("child_tokio_signal_storm");
}

async fn tokio_traffic() {
    use asyncresult_tokio::{TcpListener, TcpStream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..100 {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    }
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
    let echo = tokio::spawn(async move {
        for _ in 0..1000 {
            let (n, v) = server.receive(Vec::with_capacity(8)).await.unwrap();
            assert_eq!(&v[..n], b"ping");
            server.send(b"pong").await.unwrap();
        }
        server
    });
    for _ in 0..1000 {
        client.send(b"ping").await.unwrap();
        let (n, v) = client.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&v[..n], b"pong");
    }
    let mut server = echo.await.unwrap();
    let mut client = client;
    let data = pattern(4 << 20, 5);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == expected, "bulk data corrupted");
    // A timed receive is neither cut short nor lost.
    let start = Instant::now();
    let r = server
        .receive_timeout(Vec::with_capacity(1), Duration::from_millis(100))
        .await;
    assert!(matches!(r, Ok((0, _))), "{:?}", r.map(|(n, _)| n));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
#[ignore = "child scenario"]
fn child_tokio_signal_storm() {
    let storm = SignalStorm::start();
    storm.hit(|| {
        tokio_runtime(true).unwrap().block_on(tokio_traffic());
        tokio_runtime(false).unwrap().block_on(tokio_traffic());
    });
    drop(storm);
}

/// The same for smol.
#[test]
fn smol_under_a_storm_of_interrupting_signals() {
    child_ok("child_smol_signal_storm");
}

#[test]
#[ignore = "child scenario"]
fn child_smol_signal_storm() {
    use asyncresult_smol::{TcpListener, TcpStream};
    use futures::{AsyncReadExt, AsyncWriteExt};
    let storm = SignalStorm::start();
    storm.hit(|| {
        smol::block_on(async {
            let listener = TcpListener::bind(loopback()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            for _ in 0..100 {
                let (client, accepted) =
                    futures::join!(TcpStream::connect(addr), listener.accept());
                let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
                assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
            }
            let (client, accepted) = futures::join!(TcpStream::connect(addr), listener.accept());
            let (mut client, (mut server, _)) = (client.unwrap(), accepted.unwrap());
            let ping_pong = async {
                for _ in 0..1000 {
                    client.send(b"ping").await.unwrap();
                    let (n, v) = client.receive(Vec::with_capacity(8)).await.unwrap();
                    assert_eq!(&v[..n], b"pong");
                }
            };
            let echo = async {
                for _ in 0..1000 {
                    let (n, v) = server.receive(Vec::with_capacity(8)).await.unwrap();
                    assert_eq!(&v[..n], b"ping");
                    server.send(b"pong").await.unwrap();
                }
            };
            futures::join!(ping_pong, echo);
            let data = pattern(4 << 20, 6);
            let write = async {
                client.write_all(&data).await.unwrap();
                client.close().await.unwrap();
            };
            let mut got = Vec::new();
            let read = server.read_to_end(&mut got);
            let ((), r) = futures::join!(write, read);
            r.unwrap();
            assert!(got == data, "bulk data corrupted");
        })
    });
    drop(storm);
}

// ---------------------------------------------------------------------------------
// Descriptors run out before the engine exists.
// ---------------------------------------------------------------------------------

/// tokio and smol futures whose first use of the engine meets `EMFILE` part-way
/// (after the runtime's own descriptors exist) fail with that error, and work once
/// descriptors are free; nothing panics, nothing is left open.
#[test]
fn adapters_at_emfile_on_first_use_fail_and_recover() {
    child_ok("child_adapters_at_emfile_on_first_use");
}

#[test]
#[ignore = "child scenario"]
fn child_adapters_at_emfile_on_first_use() {
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = tokio_runtime(false).unwrap();
    // smol's reactor exists before the limit comes down.
    smol::block_on(async { smol::Timer::after(Duration::from_millis(1)).await });
    let ceiling = common::fd_ceiling();
    let fds = common::fd_count();
    let mut started = None;
    for spare in 0..12 {
        common::set_fd_limit(ceiling + spare);
        let tokio_r = rt.block_on(asyncresult_tokio::TcpStream::connect(addr));
        let smol_r = smol::block_on(asyncresult_smol::TcpStream::connect(addr));
        common::set_fd_limit(1 << 16);
        match (tokio_r, smol_r) {
            (Ok(_), _) | (_, Ok(_)) => {
                started = Some(spare);
                break;
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.error_code(), Some(libc::EMFILE), "{spare}: {a:?}");
                assert_eq!(b.error_code(), Some(libc::EMFILE), "{spare}: {b:?}");
                assert_eq!(
                    common::fd_count(),
                    fds,
                    "{spare} to spare: descriptors left"
                );
            }
        }
    }
    let spare = started.expect("the engine never started");
    eprintln!("the engine started with {spare} descriptors to spare");
    // Both adapters work now.
    rt.block_on(async {
        let s = asyncresult_tokio::TcpStream::connect(addr).await.unwrap();
        s.send(b"tokio").await.unwrap();
    });
    smol::block_on(async {
        let s = asyncresult_smol::TcpStream::connect(addr).await.unwrap();
        s.send(b"smol").await.unwrap();
    });
}

// ---------------------------------------------------------------------------------
// fork() after a runtime drove the engine.
// ---------------------------------------------------------------------------------

/// A server forks a worker after its tokio runtime drove the engine (pre-fork
/// servers do), and the worker starts a runtime of its own and uses the library. The
/// parent's connection must not lose a byte to the child, nor the child hang.
#[test]
fn a_forked_tokio_child_does_not_steal_the_parents_events() {
    child_ok("child_tokio_fork");
}

const FORK_WORKED: i32 = 10;
const FORK_ERROR: i32 = 11;

#[test]
#[ignore = "child scenario"]
fn child_tokio_fork() {
    use asyncresult_tokio::{TcpListener as ArListener, TcpStream as ArStream};
    let rt = tokio_runtime(true).unwrap();
    // The parent's connection: ours (driven by the runtime) and a plain std peer, so
    // that each message arrives while our receive is pending (an event, not data
    // already there when the receive starts).
    let (mut peer, server) = rt.block_on(async {
        let l = ArListener::bind(loopback()).await.unwrap();
        let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (peer, l.accept().await.unwrap().0)
    });
    let server = Arc::new(server);
    let std_listener = TcpListener::bind(loopback()).unwrap();
    let addr: SocketAddr = std_listener.local_addr().unwrap();
    // A receive pending across the fork (the child has a copy of its queue). The
    // receives' timeouts only end a lost wake-up: generous, for a loaded machine.
    let before_fork = {
        let s = Arc::clone(&server);
        let _enter = rt.enter();
        let r = tokio::spawn(async move {
            s.receive_timeout(Vec::with_capacity(64), Duration::from_secs(10))
                .await
        });
        r
    };
    // Let it start.
    rt.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });

    // The child says on this pipe when its connect is done (either way).
    let mut pipe = [0; 2];
    // SAFETY: pipe(2) into a valid array.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let (pipe_r, pipe_w) = (pipe[0], pipe[1]);

    // SAFETY: fork(); the child runs the scenario below and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: alarm(2): a hang ends the child.
        unsafe { libc::alarm(20) };
        let code = std::panic::catch_unwind(|| {
            let rt = tokio_runtime(false).unwrap();
            rt.block_on(async {
                let connected = ArStream::connect(addr).await;
                // SAFETY: one byte to the pipe's write end.
                unsafe { libc::write(pipe_w, [1u8].as_ptr().cast(), 1) };
                let s = connected?;
                // Keep this runtime driving for a while.
                let _ = s
                    .receive_timeout(Vec::with_capacity(8), Duration::from_secs(2))
                    .await;
                Ok::<_, asyncresult_tokio::Error>(())
            })
        });
        let code = match code {
            Ok(Ok(())) => FORK_WORKED,
            Ok(Err(_)) => FORK_ERROR,
            Err(_) => 12,
        };
        // SAFETY: leave without the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    // The parent: wait until the child connected (it drives its runtime from now on,
    // for two seconds), then take messages on its own connection meanwhile, each sent
    // while a receive waits for it (one of them begun before the fork). Every byte
    // must arrive, and every receive must be woken by its data.
    // SAFETY: closing our copy of the write end; reading one byte (EOF if the child
    // died first).
    unsafe {
        libc::close(pipe_w);
        let mut byte = 0u8;
        libc::read(pipe_r, (&mut byte as *mut u8).cast(), 1);
        libc::close(pipe_r);
    }
    let (mut stalls, mut received, mut expected) = (0, Vec::new(), Vec::new());
    {
        rt.block_on(async {
            let receive_pending = |s: Arc<asyncresult_tokio::TcpStream>| {
                tokio::spawn(async move {
                    s.receive_timeout(Vec::with_capacity(64), Duration::from_secs(5))
                        .await
                })
            };
            let mut pending = Some(before_fork);
            let deadline = Instant::now() + Duration::from_millis(1500);
            let mut i = 0u32;
            while Instant::now() < deadline {
                let receive = match pending.take() {
                    Some(r) => r,
                    None => receive_pending(Arc::clone(&server)),
                };
                // Let the receive start (and find nothing) first.
                tokio::task::yield_now().await;
                std::io::Write::write_all(&mut peer, &i.to_be_bytes()).unwrap();
                expected.extend_from_slice(&i.to_be_bytes());
                match receive.await.unwrap() {
                    Ok((n, v)) => received.extend_from_slice(&v[..n]),
                    Err(_) => stalls += 1,
                }
                i += 1;
            }
            // Whatever is still to come.
            while received.len() < expected.len() {
                match receive_pending(Arc::clone(&server)).await.unwrap() {
                    Ok((n, v)) => received.extend_from_slice(&v[..n]),
                    Err(_) => break,
                }
            }
            eprintln!("{i} messages, {stalls} receive(s) not woken by their data");
        });
    }
    drop(std_listener);
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let outcome = if libc::WIFEXITED(status) {
        format!("exited with {}", libc::WEXITSTATUS(status))
    } else {
        format!("killed by signal {}", libc::WTERMSIG(status))
    };
    eprintln!("the forked child {outcome}");
    assert!(
        received == expected,
        "the parent lost {} of {} bytes to its forked child",
        expected.len() - received.len().min(expected.len()),
        expected.len()
    );
    assert_eq!(
        stalls, 0,
        "{stalls} receive(s) of the parent were not woken"
    );
    assert!(
        libc::WIFEXITED(status) && [FORK_WORKED, FORK_ERROR].contains(&libc::WEXITSTATUS(status)),
        "the forked child {outcome}"
    );
}

// ---------------------------------------------------------------------------------
// Exit while runtimes and operations are alive.
// ---------------------------------------------------------------------------------

/// `std::process::exit` from a tokio task while the runtime, a smol reactor and
/// futures waiting on the engine are alive: the process exits with its code.
#[test]
fn exit_with_runtimes_and_futures_alive() {
    let status = run_child_bounded("child_exit_with_runtimes_alive", Duration::from_secs(30));
    assert_eq!(status.code(), Some(5), "{status:?}");
}

#[test]
#[ignore = "child scenario"]
fn child_exit_with_runtimes_alive() {
    use asyncresult_tokio::{TcpListener as ArListener, TcpStream as ArStream};
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    // A smol future waiting on the engine, on a thread of its own.
    thread::spawn(move || {
        smol::block_on(async {
            let s = asyncresult_smol::TcpStream::connect(addr).await.unwrap();
            let _ = s.receive(Vec::with_capacity(8)).await;
        });
    });
    let rt = tokio_runtime(true).unwrap();
    rt.block_on(async {
        let l = ArListener::bind(loopback()).await.unwrap();
        let (c, a) = tokio::join!(ArStream::connect(l.local_addr().unwrap()), l.accept());
        let (c, (s, _)) = (c.unwrap(), a.unwrap());
        let waiting = tokio::spawn(async move { s.receive(Vec::with_capacity(8)).await });
        tokio::spawn(async move {
            let _keep = c;
            tokio::task::yield_now().await;
            std::process::exit(5);
        });
        let _ = waiting.await;
    });
    unreachable!("the process exited");
}
