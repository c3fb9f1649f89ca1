//! Helpers shared by the core's integration tests: time bounds, loopback pairs,
//! process-level probes (threads, descriptors) and child-process scenarios.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod ipv6;
pub mod ports;
pub mod trace;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_core::{AsyncResult, Socket, SocketFlags};
#[allow(unused_imports)] // Not every test file asks.
pub use ipv6::{assert_v6_to_v4_send_failed, ipv6_loopback, no_ipv6, no_ipv6_for};
#[allow(unused_imports)]
pub use ports::refusing_port;

/// Runs `body` on its own thread and fails the test if it does not finish within
/// `limit`: a hang fails instead of stalling the suite.
pub fn bounded<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let name = thread::current().name().unwrap_or("test").to_string();
    let handle = thread::Builder::new()
        .name(format!("{name}-body"))
        .spawn(move || {
            let out = body();
            let _ = done_tx.send(());
            out
        })
        .expect("spawn test body");
    match done_rx.recv_timeout(limit) {
        Ok(()) => handle.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?} (hang)")
        }
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A connected TCP pair: our socket on one end, a plain std stream (not registered
/// with the engine) on the other.
pub fn tcp_to_std() -> (Socket, TcpStream) {
    let listener = TcpListener::bind(localhost()).unwrap();
    let ours = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Our socket, connected, with its kernel send buffer full behind a queued 4 MiB send
/// (returned), so that the next send queues too.
pub fn stalled_sender() -> (Socket, TcpStream, AsyncResult<usize>) {
    let (ours, theirs) = tcp_to_std();
    ours.as_socket2().set_send_buffer_size(4096).unwrap();
    let filler = ours
        .begin_send(vec![0u8; 4 << 20], SocketFlags::NONE, None, None)
        .unwrap();
    assert!(!filler.is_completed(), "4 MiB fit in the kernel's buffers");
    (ours, theirs, filler)
}

/// A connected TCP pair with our sockets on both ends.
pub fn tcp_pair() -> (Socket, Socket) {
    let listener = Socket::listen_tcp(localhost(), 16).unwrap();
    let client = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
    let server = listener
        .end_accept(&listener.begin_accept(None, None).unwrap())
        .unwrap();
    (client, server)
}

/// Reads from `s` until EOF, in a background thread.
pub fn read_all_in_background(mut s: TcpStream) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    })
}

/// Reads from `s` until EOF or an error, in a background thread, counting the bytes:
/// for a peer whose last send a close may abort (a reset, by design).
pub fn drain_in_background(mut s: TcpStream) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while let Ok(n @ 1..) = s.read(&mut buf) {
            total += n;
        }
        total
    })
}

/// Bytes with a recognisable pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Whether `cond` holds within `limit`, looked at every 2 ms. For process-wide counts
/// (descriptors, engine slots) that an engine worker brings down a moment after the
/// callback that signalled the test: a loaded machine can deschedule it in between.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Raises the soft descriptor limit to the hard one (tests with thousands of sockets).
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    lim.rlim_cur
}

/// What each thread of this process is doing, one line each: its name, its scheduler
/// state (`R` running, `S` sleeping...), the kernel function it waits in (`wchan`) and
/// the system call it is in (its number, from `/proc/.../syscall`, or `running`). For
/// the message of a test that timed out: it tells a stall (every thread asleep) from a
/// process that was merely slow or spinning.
pub fn thread_report() -> String {
    let mut out = String::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc/self/task)".into();
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        // The state is the field after the parenthesised name.
        let stat = read("stat");
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let syscall = read("syscall");
        let syscall = syscall.split_whitespace().next().unwrap_or("?");
        out.push_str(&format!(
            "\n  {:>7} {:<28} {state} wchan={:<24} syscall={syscall}",
            task.file_name().to_string_lossy(),
            read("comm"),
            read("wchan"),
        ));
    }
    out
}

/// The kernel's view of this process's TCP sockets, one line each, from
/// `/proc/net/tcp{,6}`: addresses, state, send and receive queues (bytes, hex), the
/// timer running (`1` retransmit, `2` keep-alive, `4` zero-window probe) with its
/// expiry, and retransmissions. For the message of a test that timed out: data queued
/// in the kernel behind a probe timer is a TCP stall; an empty send queue with an
/// operation still waiting is the engine's.
pub fn socket_report() -> String {
    let ours: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
                    Some(inode.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && ours.contains(f[9]) {
                out.push_str(&format!(
                    "\n  {} -> {} st={} tx:rx={} timer={} retr={}",
                    f[1], f[2], f[3], f[4], f[5], f[6]
                ));
            }
        }
    }
    out
}

/// Whether this process runs as a child scenario (see [`run_child`]).
pub fn is_child() -> bool {
    std::env::var_os("ASYNCRESULT_CHILD").is_some()
}

/// Runs the `#[ignore]`d test `name` of this test binary in a child process and
/// returns its exit status.
pub fn run_child(name: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
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
        .unwrap()
}

/// Runs child scenario `name` (see [`run_child`]) and fails the test if it failed.
pub fn child_ok(name: &str) {
    let status = run_child(name);
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

/// Closes `peer` with `SO_LINGER` 0: the other end gets a reset (RST), delivered before
/// this returns on loopback.
pub fn reset(peer: TcpStream) {
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
}

/// Sets this process's soft limit on descriptors (at most the hard one).
pub fn set_fd_limit(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// The highest descriptor number open, plus one (RLIMIT_NOFILE bounds numbers), once
/// every hole below it is filled (the fillers are leaked on purpose): from then on,
/// new descriptors get numbers from there up.
pub fn fd_ceiling() -> u64 {
    let ceiling = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()))
        .max()
        .map_or(0, |m| m + 1);
    loop {
        let filler = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&filler) as u64;
        if fd >= ceiling {
            return ceiling;
        }
        std::mem::forget(filler);
    }
}
