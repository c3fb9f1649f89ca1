//! The engine in hostile processes: threads that cannot be created, descriptors that
//! run out before the engine exists, signals raining on every thread, a `fork()`
//! after the engine started, tens of thousands of sockets, and a process that exits
//! while callbacks run and operations wait.
//!
//! Every scenario runs in a child process of its own (a fresh process-wide engine, and
//! limits that must not touch the test runner), killed if it does not finish in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_core::driver::engine_stats;
use asyncresult_core::{AsyncResult, Domain, Error, Protocol, Socket, SocketFlags, Type};
use common::*;

/// Runs the `#[ignore]`d child scenario `name` and returns its exit status; kills it
/// and fails if it runs longer than `limit`.
fn run_child_bounded(name: &str, limit: Duration) -> std::process::ExitStatus {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
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
    let status = run_child_bounded(name, secs(120));
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

fn errno(r: Result<impl Sized, Error>) -> Option<i32> {
    match r {
        Ok(_) => None,
        Err(e) => e.error_code(),
    }
}

/// A round trip with callbacks on a fresh pair: the engine makes progress.
fn round_trip_with_callbacks() {
    let (a, b) = tcp_pair();
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    b.begin_receive(
        Vec::with_capacity(16),
        SocketFlags::NONE,
        Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
            let got = b2.end_receive(&ar).map(|(_, v)| v);
            // The last handle goes before the signal, so the caller's counts see it gone.
            drop(b2);
            let _ = tx.send(got);
        })),
        None,
    )
    .unwrap();
    a.begin_send(b"ping", SocketFlags::NONE, None, None)
        .unwrap();
    let got = rx.recv_timeout(secs(10)).expect("the engine made progress");
    assert_eq!(got.unwrap(), b"ping");
}

// ---------------------------------------------------------------------------------
// Threads that cannot be created.
//
// Root ignores RLIMIT_NPROC, so the child first becomes an unprivileged user of its
// own (a uid nobody else uses, so the limit counts this process's threads only) and
// then sets the limit to "this many more threads". Bounded and local to the child.
// ---------------------------------------------------------------------------------

/// Whether this process may switch to another user (the NPROC scenarios need it).
fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

/// Makes this (child) process an unprivileged user of its own; the soft NPROC limit
/// moves both ways below the hard one ([`allow_more_threads`], [`allow_any_threads`]).
fn become_unprivileged() {
    let uid = 200_000 + std::process::id() % 100_000;
    // SAFETY: plain syscalls with valid arguments; results checked.
    unsafe {
        // Refused in some containers (setgroups denied); the groups do not matter here.
        let _ = libc::setgroups(0, std::ptr::null());
        assert_eq!(libc::setresgid(uid, uid, uid), 0);
        assert_eq!(libc::setresuid(uid, uid, uid), 0);
        // A uid change makes the process undumpable, and /proc/self unreadable to it.
        assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
    }
}

/// Sets the soft NPROC limit (the hard one stays).
fn set_nproc(soft: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NPROC, &mut lim), 0);
        lim.rlim_cur = soft.map_or(lim.rlim_max, |s| s.min(lim.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &lim), 0);
    }
}

/// Lets this process create at most `more` threads beyond those it has now (the user
/// has no other task; [`check_thread_allowance`] pins the arithmetic).
fn allow_more_threads(more: usize) {
    let now = thread_count() as u64;
    set_nproc(Some(now + more as u64));
}

fn allow_any_threads() {
    set_nproc(None);
}

/// Pins the arithmetic of [`allow_more_threads`], so a failure below is about the
/// engine and not about the limit.
fn check_thread_allowance() {
    allow_more_threads(0);
    assert!(
        thread::Builder::new().spawn(|| ()).is_err(),
        "allow_more_threads(0) still let a thread start"
    );
    allow_more_threads(1);
    let (tx, rx) = mpsc::channel::<()>();
    let parked = thread::Builder::new()
        .spawn(move || {
            let _ = rx.recv();
        })
        .expect("allow_more_threads(1) let no thread start");
    assert!(
        thread::Builder::new().spawn(|| ()).is_err(),
        "allow_more_threads(1) let two threads start"
    );
    drop(tx);
    parked.join().unwrap();
    allow_any_threads();
}

/// The engine cannot start all of its threads (the first worker, the second, the
/// monitor): creating a socket fails with the OS's error, nothing panics, the threads
/// and descriptors of the failed start are not left behind, and once threads can be
/// created again the engine starts and works.
#[test]
fn engine_start_without_threads_fails_cleanly_and_recovers() {
    if !is_root() {
        eprintln!("skipped: switching to a user of its own needs root");
        return;
    }
    child_ok("child_engine_start_without_threads");
}

#[test]
#[ignore = "child scenario"]
fn child_engine_start_without_threads() {
    become_unprivileged();
    check_thread_allowance();
    let listener = TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut leaks = Vec::new();
    // 0: no worker starts; 1: the second worker does not; 2: the monitor does not.
    for more in 0..3 {
        let (threads, fds) = (thread_count(), fd_count());
        allow_more_threads(more);
        let created = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP));
        let connected = Socket::connect_tcp(addr);
        allow_any_threads();
        match (&created, &connected) {
            (Err(Error::Socket(a)), Err(Error::Socket(b))) => {
                assert_eq!(a.raw_os_error(), Some(libc::EAGAIN), "{a:?}");
                assert_eq!(b.raw_os_error(), Some(libc::EAGAIN), "{b:?}");
            }
            other => panic!("with {more} threads to spare: {other:?}"),
        }
        let (threads_after, fds_after) = (thread_count(), fd_count());
        if threads_after != threads || fds_after != fds {
            leaks.push(format!(
                "{more} thread(s) to spare: {} thread(s) and {} descriptor(s) left behind",
                threads_after as isize - threads as isize,
                fds_after as isize - fds as isize
            ));
        }
    }
    // Threads again: the engine starts (a failed start is not cached) and works.
    round_trip_with_callbacks();
    let s = Socket::connect_tcp(addr).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    s.end_send(
        &s.begin_send(b"hello", SocketFlags::NONE, None, None)
            .unwrap(),
    )
    .unwrap();
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    assert!(leaks.is_empty(), "failed engine starts leaked: {leaks:#?}");
}

/// The pool cannot grow (no thread can be created) while both base workers block in
/// callbacks: operations still complete (the monitor drains when nobody polls), the
/// blocked callbacks get what they wait for, and callbacks posted meanwhile run once a
/// worker is free. Nothing panics.
#[test]
fn a_pool_that_cannot_grow_still_completes_everything() {
    if !is_root() {
        eprintln!("skipped: switching to a user of its own needs root");
        return;
    }
    child_ok("child_a_pool_that_cannot_grow");
}

#[test]
#[ignore = "child scenario"]
fn child_a_pool_that_cannot_grow() {
    become_unprivileged();
    check_thread_allowance();
    round_trip_with_callbacks();
    // The pairs the two blocked callbacks wait on, and one to trigger them.
    let (a1, b1) = tcp_pair();
    let (a2, b2) = tcp_pair();
    let (trigger, _trigger_peer) = tcp_to_std();
    let r1 = b1
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();
    let r2 = b2
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();
    let workers = engine_stats().unwrap().workers;
    allow_more_threads(0);

    let (entered_tx, entered_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    for (b, r) in [(b1.clone(), r1), (b2.clone(), r2)] {
        let entered = entered_tx.clone();
        let got = got_tx.clone();
        trigger
            .begin_send(
                b"x",
                SocketFlags::NONE,
                Some(Box::new(move |_| {
                    let _ = entered.send(());
                    // Blocks this worker until the data arrives.
                    let _ = got.send(b.end_receive(&r).map(|(_, v)| v));
                })),
                None,
            )
            .unwrap();
    }
    for _ in 0..2 {
        entered_rx
            .recv_timeout(secs(20))
            .expect("both callbacks started");
    }
    // A callback posted while both workers block.
    let (later_tx, later_rx) = mpsc::channel();
    trigger
        .begin_send(
            b"y",
            SocketFlags::NONE,
            Some(Box::new(move |_| {
                let _ = later_tx.send(());
            })),
            None,
        )
        .unwrap();
    a1.begin_send(b"one", SocketFlags::NONE, None, None)
        .unwrap();
    a2.begin_send(b"two", SocketFlags::NONE, None, None)
        .unwrap();
    let mut got: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            got_rx
                .recv_timeout(secs(20))
                .expect("a blocked callback got its data")
                .unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    later_rx
        .recv_timeout(secs(20))
        .expect("the callback posted meanwhile ran");
    assert!(engine_stats().unwrap().workers <= workers);
    // Still no thread to spare: traffic goes on.
    for _ in 0..20 {
        round_trip_with_callbacks();
    }
    allow_any_threads();
}

// ---------------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------------

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// Installs a SIGUSR1 handler *without* `SA_RESTART`: every blocking syscall a signal
/// lands in fails with `EINTR`.
fn install_interrupting_handler() {
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
}

/// Sends SIGUSR1 to every other thread of the process, over and over, until the
/// returned guard is dropped.
struct SignalStorm {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SignalStorm {
    fn start() -> SignalStorm {
        install_interrupting_handler();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
                        // SAFETY: tgkill to a thread of this process; a thread that
                        // exited meanwhile is reported as ESRCH, which is fine.
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

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every thread (the engine's workers and monitor, the callers blocked in `end_*` and
/// `wait_timeout`) is hit by signals whose handler does not restart syscalls, while
/// connections are made and accepted, a callback ping-pong runs, a bulk transfer is
/// ended by blocking calls and datagrams come and go: no spurious error, no lost
/// wake-up, no early timeout.
#[test]
fn a_storm_of_interrupting_signals_changes_nothing() {
    child_ok("child_signal_storm");
}

#[test]
#[ignore = "child scenario"]
fn child_signal_storm() {
    round_trip_with_callbacks();
    let storm = SignalStorm::start();

    // Connections made (blocking connect through the engine) and accepted.
    let listener = Socket::listen_tcp(localhost(), 128).unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..100 {
        let accept = listener.begin_accept(None, None).unwrap();
        let client = Socket::connect_tcp(addr).unwrap();
        let server = listener.end_accept(&accept).unwrap();
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    }

    // A ping-pong driven by callbacks.
    let (a, b) = tcp_pair();
    let rounds = 2000;
    let (done_tx, done_rx) = mpsc::channel();
    fn echo(s: Socket, left: usize, done: mpsc::Sender<Result<(), Error>>) {
        let s2 = s.clone();
        s.begin_receive(
            Vec::with_capacity(8),
            SocketFlags::NONE,
            Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                match s2.end_receive(&ar) {
                    Ok((4, v)) if &v[..] == b"ping" => {}
                    Ok(other) => {
                        let _ = done.send(Err(Error::Socket(std::io::Error::other(format!(
                            "got {other:?}"
                        )))));
                        return;
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                        return;
                    }
                }
                if let Err(e) = s2.begin_send(b"ping", SocketFlags::NONE, None, None) {
                    let _ = done.send(Err(e));
                    return;
                }
                if left == 1 {
                    let _ = done.send(Ok(()));
                } else {
                    echo(s2, left - 1, done);
                }
            })),
            None,
        )
        .unwrap();
    }
    echo(b.clone(), rounds, done_tx.clone());
    echo(a.clone(), rounds - 1, done_tx);
    a.begin_send(b"ping", SocketFlags::NONE, None, None)
        .unwrap();
    for _ in 0..2 {
        done_rx
            .recv_timeout(secs(60))
            .expect("ping-pong stalled under signals")
            .unwrap();
    }

    // A bulk transfer ended by blocking calls on both sides.
    let (tx_side, rx_side) = tcp_pair();
    tx_side.as_socket2().set_send_buffer_size(8192).unwrap();
    let data = pattern(8 << 20, 3);
    let expected = data.clone();
    let receiver = thread::spawn(move || {
        let mut all = Vec::with_capacity(expected.len());
        while all.len() < expected.len() {
            let ar = rx_side
                .begin_receive(Vec::with_capacity(65536), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, v) = rx_side.end_receive(&ar).unwrap();
            assert!(n > 0, "early end of stream");
            all.extend_from_slice(&v);
        }
        assert!(all == expected, "bulk data corrupted");
    });
    for chunk in data.chunks(1 << 20) {
        let ar = tx_side
            .begin_send(chunk.to_vec(), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(tx_side.end_send(&ar).unwrap(), chunk.len());
    }
    receiver.join().unwrap();

    // Datagrams.
    let u1 = Socket::bind_udp(localhost()).unwrap();
    let u2 = Socket::bind_udp(localhost()).unwrap();
    let to = u2.local_addr().unwrap();
    for i in 0..300u32 {
        let r = u2
            .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        u1.end_send_to(
            &u1.begin_send_to(i.to_be_bytes().to_vec(), SocketFlags::NONE, to, None, None)
                .unwrap(),
        )
        .unwrap();
        let (n, v, from) = u2.end_receive_from(&r).unwrap();
        assert_eq!(
            (n, &v[..], from),
            (4, &i.to_be_bytes()[..], u1.local_addr().unwrap())
        );
    }

    // Timed waits are neither cut short nor stretched by signals.
    let (quiet, _quiet_peer) = tcp_to_std();
    let never = quiet
        .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
        .unwrap();
    // At least 20 of them, and on until the storm has surely hit (bounded: 30 s), so
    // that the check below does not depend on how fast the traffic above went.
    let storming = Instant::now();
    for round in 0.. {
        let start = Instant::now();
        assert!(!never.wait_timeout(Duration::from_millis(20)));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(20), "woke early: {took:?}");
        if round >= 20 && (SIGNALS.load(Ordering::Relaxed) > 1000 || storming.elapsed() > secs(30))
        {
            break;
        }
    }
    assert!(never.cancel());

    drop(storm);
    let delivered = SIGNALS.load(Ordering::Relaxed);
    eprintln!("signals delivered: {delivered}");
    assert!(delivered > 1000, "the storm hardly happened: {delivered}");
}

// ---------------------------------------------------------------------------------
// Descriptors run out before the engine exists.
// ---------------------------------------------------------------------------------

/// With 0, 1, 2, … descriptors to spare, the engine's first use (its epoll set, its
/// eventfds) fails part-way: `Socket::new` and `connect_tcp` return `EMFILE`, nothing
/// panics and no descriptor of the failed start stays open; with enough to spare the
/// engine starts (a failed start is not cached) and works.
#[test]
fn descriptors_running_out_at_engine_start_fail_cleanly_and_recover() {
    child_ok("child_descriptors_out_at_engine_start");
}

#[test]
#[ignore = "child scenario"]
fn child_descriptors_out_at_engine_start() {
    let listener = TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let ceiling = fd_ceiling();
    let (threads, fds) = (thread_count(), fd_count());
    let mut started = None;
    for spare in 0..12 {
        set_fd_limit(ceiling + spare);
        let r = Socket::connect_tcp(addr);
        set_fd_limit(1 << 16);
        match r {
            Ok(s) => {
                started = Some(spare);
                drop(s);
                break;
            }
            Err(e) => {
                assert_eq!(
                    e.error_code(),
                    Some(libc::EMFILE),
                    "{spare} to spare: {e:?}"
                );
                assert_eq!(fd_count(), fds, "{spare} to spare: descriptors left behind");
                assert_eq!(thread_count(), threads, "{spare} to spare: threads left");
            }
        }
    }
    let spare = started.expect("the engine never started");
    eprintln!("the engine started with {spare} descriptors to spare");
    round_trip_with_callbacks();
    // Once started, running out is a plain EMFILE from the socket call, and passes.
    set_fd_limit(fd_ceiling());
    assert_eq!(errno(Socket::connect_tcp(addr)), Some(libc::EMFILE));
    assert_eq!(errno(Socket::bind_udp(localhost())), Some(libc::EMFILE));
    set_fd_limit(1 << 16);
    round_trip_with_callbacks();
}

// ---------------------------------------------------------------------------------
// fork() after the engine started.
// ---------------------------------------------------------------------------------

/// What a forked child met when it used the library (its exit code).
const FORK_WORKED: i32 = 10;
const FORK_ERROR: i32 = 11;
const FORK_PANIC: i32 = 12;

/// A child forked after the engine started (its threads do not exist there) uses the
/// library: it must not hang (it may get an error, or work); the parent, whose epoll
/// set the child shares, is unaffected.
#[test]
fn a_child_forked_after_the_engine_started_neither_hangs_nor_disturbs_the_parent() {
    child_ok("child_fork_after_start");
}

#[test]
#[ignore = "child scenario"]
fn child_fork_after_start() {
    round_trip_with_callbacks();
    let listener = TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    // An operation pending in the parent across the fork.
    let (ours, mut theirs) = tcp_to_std();
    let pending = ours
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();

    // SAFETY: fork(); the child only runs the scenario below and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: bounded by an alarm (default action: terminate).
        // SAFETY: alarm(2); exit paths below use _exit.
        unsafe { libc::alarm(5) };
        let outcome = std::panic::catch_unwind(|| {
            let s = Socket::connect_tcp(addr)?;
            let ar = s.begin_send(b"from the child", SocketFlags::NONE, None, None)?;
            s.end_send(&ar)?;
            let r = s.begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)?;
            s.end_receive(&r).map(|_| ())
        });
        let code = match outcome {
            Ok(Ok(())) => FORK_WORKED,
            Ok(Err(_)) => FORK_ERROR,
            Err(_) => FORK_PANIC,
        };
        // SAFETY: leave the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }

    // The parent: accept what the child connects (if it does) and answer it.
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let _ = accepted_tx.send(());
            let mut buf = [0u8; 14];
            if c.read_exact(&mut buf).is_ok() {
                let _ = c.write_all(b"reply");
            }
        }
    });
    // Meanwhile the parent's own traffic goes on, including the operation pending
    // across the fork.
    for _ in 0..50 {
        round_trip_with_callbacks();
    }
    theirs.write_all(b"after fork").unwrap();
    let (n, v) = ours.end_receive(&pending).unwrap();
    assert_eq!(&v[..n], b"after fork");

    let mut status = 0;
    // SAFETY: waitpid on our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let outcome = if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            FORK_WORKED => "worked".to_string(),
            FORK_ERROR => "got an error".to_string(),
            FORK_PANIC => "panicked".to_string(),
            other => format!("exited with {other}"),
        }
    } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
        "hung (killed by its alarm after 5 s)".to_string()
    } else {
        format!("died: status {status:#x}")
    };
    eprintln!("the forked child {outcome}");
    // The parent is still fine after the child is gone.
    for _ in 0..20 {
        round_trip_with_callbacks();
    }
    drop(accepted_rx);
    // Unblock the accept thread if the child never connected.
    drop(TcpStream::connect(addr));
    server.join().unwrap();
    assert!(
        outcome == "worked" || outcome == "got an error",
        "the forked child {outcome}"
    );
}

// ---------------------------------------------------------------------------------
// Scale.
// ---------------------------------------------------------------------------------

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: plain getter.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

/// `n` sockets of ours, connected in pairs, each with a receive pending whose callback
/// counts it; returns the time the registration took and the time closing them took
/// until every callback had run.
fn pending_round(listener: &TcpListener, n: usize) -> (Duration, Duration) {
    // The last round's last callbacks may still be letting their sockets go.
    let settled = eventually(secs(10), || engine_stats().unwrap().sockets == 1);
    assert!(settled, "{:?}", engine_stats());
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        sockets.push(Socket::try_from(client).unwrap());
        sockets.push(Socket::try_from(server).unwrap());
    }
    let ran = Arc::new(AtomicUsize::new(0));
    let (all_tx, all_rx) = mpsc::channel();
    let mut results = Vec::with_capacity(n);
    for s in &sockets {
        let ran = Arc::clone(&ran);
        let all = all_tx.clone();
        let s2 = s.clone();
        let ar = s
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    // Disposed, or the end of stream when its peer closed first.
                    let r = s2.end_receive(&ar);
                    assert!(
                        matches!(r, Err(Error::Disposed) | Ok((0, _))),
                        "{:?}",
                        r.map(|(n, _)| n)
                    );
                    if ran.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        let _ = all.send(());
                    }
                })),
                None,
            )
            .unwrap();
        results.push(ar);
    }
    drop(all_tx);
    assert_eq!(engine_stats().unwrap().sockets, n + 1);
    assert!(results.iter().all(|ar| !ar.is_completed()));
    let registered = start.elapsed();
    let start = Instant::now();
    for s in &sockets {
        s.close();
    }
    drop(sockets);
    all_rx
        .recv_timeout(secs(60))
        .unwrap_or_else(|_| panic!("{} of {n} callbacks ran", ran.load(Ordering::SeqCst)));
    drop(results);
    (registered, start.elapsed())
}

/// 20,000 sockets registered with a receive pending on each, then all closed: every
/// callback runs once, descriptors and engine slots come back, memory does not grow
/// round after round, threads do not grow with sockets, and the cost per socket does
/// not grow with their number (no quadratic path).
#[test]
fn twenty_thousand_sockets_with_pending_operations_come_and_go() {
    child_ok("child_twenty_thousand_sockets");
}

#[test]
#[ignore = "child scenario"]
fn child_twenty_thousand_sockets() {
    // 20,000 sockets, or as many as the hard descriptor limit leaves room for (it
    // cannot always be raised, even by root in a container).
    let mut lim = libc::rlimit {
        rlim_cur: 50_000,
        rlim_max: 50_000,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let room = (lim.rlim_cur as usize).saturating_sub(fd_count() + 200);
    let n = room.min(20_000) & !1;
    if n < 10_000 {
        eprintln!("skipped: {} descriptors at most", lim.rlim_cur);
        return;
    }
    eprintln!("{n} sockets");
    let listener = TcpListener::bind(localhost()).unwrap();
    let engine_listener = Socket::listen_tcp(localhost(), 16).unwrap();
    round_trip_with_callbacks();
    // A socket leaves the engine when its last handle goes, on the worker that ran
    // its callback, a moment after the callback signalled.
    let only_the_listener = || engine_stats().unwrap().sockets == 1;
    assert!(
        eventually(secs(10), only_the_listener),
        "{:?}",
        engine_stats()
    );
    let (threads, fds) = (thread_count(), fd_count());
    // After a round: every socket but the listener gone, every descriptor closed.
    let all_back = |round: u32| {
        assert!(
            eventually(secs(10), only_the_listener),
            "{:?}",
            engine_stats()
        );
        assert!(
            eventually(secs(10), || fd_count() == fds),
            "descriptors left after round {round}: {} against {fds}",
            fd_count()
        );
    };

    let small = (n / 10) & !1;
    let (small_reg, small_close) = pending_round(&listener, small);
    let (reg1, close1) = pending_round(&listener, n);
    all_back(1);
    let rss1 = rss_kib();
    let (reg2, close2) = pending_round(&listener, n);
    let (reg3, close3) = pending_round(&listener, n);
    let rss3 = rss_kib();
    all_back(3);
    eprintln!(
        "{small}: register {small_reg:?} close {small_close:?}; {n}: register {reg1:?} / {reg2:?} / \
         {reg3:?}, close {close1:?} / {close2:?} / {close3:?}; rss after round 1 {rss1} KiB, \
         after round 3 {rss3} KiB; threads {threads} -> {}",
        thread_count()
    );
    assert!(
        rss3 <= rss1 + 8 * 1024,
        "memory grew round after round: {rss1} KiB -> {rss3} KiB"
    );
    // Ten times the sockets: well under a hundred times the time (quadratic would be).
    let per_small = small_close.as_secs_f64() / small as f64;
    let per_large = close3.as_secs_f64().min(close2.as_secs_f64()) / n as f64;
    assert!(
        per_large < per_small * 8.0 + 20e-6,
        "closing costs {per_large:e} s per socket at {n}, {per_small:e} at {small}"
    );
    let per_small = small_reg.as_secs_f64() / small as f64;
    let per_large = reg3.as_secs_f64().min(reg2.as_secs_f64()) / n as f64;
    assert!(
        per_large < per_small * 8.0 + 20e-6,
        "registering costs {per_large:e} s per socket at {n}, {per_small:e} at {small}"
    );
    let extra_threads = thread_count().saturating_sub(threads);
    assert!(extra_threads <= 4, "{extra_threads} more threads");
    drop(engine_listener);
}

// ---------------------------------------------------------------------------------
// Exit.
// ---------------------------------------------------------------------------------

/// Sockets with receives pending (and one with a send stuck behind a full buffer), a
/// callback blocked for good on a worker: the process still exits at once.
fn leave_the_engine_busy() -> Vec<Socket> {
    let mut kept = Vec::new();
    for _ in 0..100 {
        let (a, b) = tcp_pair();
        a.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        b.begin_receive(
            Vec::with_capacity(8),
            SocketFlags::NONE,
            Some(Box::new(|_| {})),
            None,
        )
        .unwrap();
        kept.push(a);
        kept.push(b);
    }
    let (full, peer) = tcp_to_std();
    full.as_socket2().set_send_buffer_size(4096).unwrap();
    full.begin_send(vec![0u8; 8 << 20], SocketFlags::NONE, None, None)
        .unwrap();
    std::mem::forget(peer);
    kept.push(full);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (blocker, _blocker_peer) = tcp_to_std();
    blocker
        .begin_send(
            b"x",
            SocketFlags::NONE,
            Some(Box::new(move |_| {
                let _ = entered_tx.send(());
                // Blocked for good.
                loop {
                    thread::park();
                }
            })),
            None,
        )
        .unwrap();
    entered_rx.recv_timeout(secs(10)).unwrap();
    kept.push(blocker);
    kept
}

/// `std::process::exit` while callbacks block and operations wait: exits, code kept.
#[test]
fn exit_while_the_engine_is_busy_exits() {
    let status = run_child_bounded("child_exit_while_busy", secs(30));
    assert_eq!(status.code(), Some(3), "{status:?}");
}

#[test]
#[ignore = "child scenario"]
fn child_exit_while_busy() {
    let _kept = leave_the_engine_busy();
    std::process::exit(3);
}

/// `std::process::exit` from inside a callback, while others run and operations wait.
#[test]
fn exit_from_a_callback_exits() {
    let status = run_child_bounded("child_exit_from_a_callback", secs(30));
    assert_eq!(status.code(), Some(4), "{status:?}");
}

#[test]
#[ignore = "child scenario"]
fn child_exit_from_a_callback() {
    let _kept = leave_the_engine_busy();
    let (a, _peer) = tcp_to_std();
    a.begin_send(
        b"bye",
        SocketFlags::NONE,
        Some(Box::new(|_| std::process::exit(4))),
        None,
    )
    .unwrap();
    // Parked until the callback ends the process.
    loop {
        thread::park();
    }
}

/// The harness's `main` returns (normal exit) while sockets with pending operations
/// live in statics and in an `atexit` handler's reach, a callback blocks, and the
/// handler itself uses the library (closing, a round trip) during exit.
#[test]
fn returning_from_main_with_the_engine_busy_exits() {
    let status = run_child_bounded("child_return_from_main_while_busy", secs(30));
    assert!(status.success(), "{status:?}");
}

static KEPT: std::sync::Mutex<Vec<Socket>> = std::sync::Mutex::new(Vec::new());

extern "C" fn use_the_library_at_exit() {
    if let Ok(mut kept) = KEPT.lock() {
        for s in kept.drain(..) {
            s.close();
        }
    }
    round_trip_with_callbacks();
}

#[test]
#[ignore = "child scenario"]
fn child_return_from_main_while_busy() {
    let kept = leave_the_engine_busy();
    KEPT.lock().unwrap().extend(kept);
    // SAFETY: registers a plain extern "C" function.
    assert_eq!(unsafe { libc::atexit(use_the_library_at_exit) }, 0);
    thread_local! {
        static MINE: std::cell::RefCell<Vec<Socket>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (a, b) = tcp_pair();
    a.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
        .unwrap();
    MINE.with(|m| m.borrow_mut().extend([a, b]));
}

/// A pre-fork server's worker process drops the sockets it inherited (the parent's
/// connections and listener), as a child does with what it does not need: the
/// parent's sockets are untouched — still registered (their operations complete),
/// not shut down (the peer sees no FIN, the listener still accepts).
#[test]
fn a_forked_child_dropping_inherited_sockets_leaves_the_parents_alone() {
    child_ok("child_fork_drop_inherited");
}

#[test]
#[ignore = "child scenario"]
fn child_fork_drop_inherited() {
    round_trip_with_callbacks();
    let listener = Socket::listen_tcp(localhost(), 16).unwrap();
    let addr = listener.local_addr().unwrap();
    let (ours, mut theirs) = tcp_to_std();
    let pending = ours
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();
    let accept = listener.begin_accept(None, None).unwrap();

    // SAFETY: fork(); the child only drops its copies and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm(2): a hang ends the child.
        unsafe { libc::alarm(5) };
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(pending);
            drop(accept);
            drop(ours);
            drop(listener);
        }));
        // SAFETY: leave without the parent's atexit handlers.
        unsafe { libc::_exit(if dropped.is_ok() { 0 } else { 12 }) };
    }
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed to drop its copies: status {status:#x}"
    );
    // The parent's connection: its pending receive still gets data, the peer sees no
    // end of stream, and sends still go out.
    theirs.write_all(b"still here").unwrap();
    assert!(
        pending.wait_timeout(secs(5)),
        "the parent's receive was never woken after the child dropped its copy"
    );
    let (n, v) = ours.end_receive(&pending).unwrap();
    assert_eq!(
        &v[..n],
        b"still here",
        "the parent's connection was shut down"
    );
    ours.end_send(
        &ours
            .begin_send(b"reply", SocketFlags::NONE, None, None)
            .unwrap(),
    )
    .unwrap();
    let mut got = [0u8; 5];
    theirs.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"reply");
    // The parent's listener still accepts.
    let _client = TcpStream::connect(addr).unwrap();
    assert!(
        accept.wait_timeout(secs(5)),
        "the parent's accept was never woken after the child dropped its copy"
    );
    listener.end_accept(&accept).unwrap();
}
