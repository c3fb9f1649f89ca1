//! A child forked while the engine is busy: what it may still do with the sockets it
//! inherited (drop or close them, as the crate docs promise) must not depend on what
//! the parent's threads were doing at the instant of the fork. Those threads do not
//! exist in the child, so a lock one of them held then is held there for good.
//!
//! Every scenario runs in a child process of its own, killed if it does not finish in
//! time; every forked grandchild is bounded by an alarm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_core::{Socket, SocketFlags};
use common::*;

/// Runs the `#[ignore]`d child scenario `name`; kills it and fails if it runs longer
/// than `limit`.
fn child_ok(name: &str, limit: Duration) {
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
    let status = match rx.recv_timeout(limit) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (its waiter still waits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child scenario {name} did not finish within {limit:?} (hang)");
        }
    };
    assert!(status.success(), "child scenario {name} failed: {status:?}");
}

/// How a forked grandchild ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exited(i32),
    /// Killed by its alarm: it hung.
    Hung,
    Other(i32),
}

/// Forks; the child runs `body` under an alarm of `alarm_s` seconds and `_exit`s with
/// its code (12 if it panicked). Returns how the child ended.
fn fork_and(alarm_s: u32, body: impl FnOnce() -> i32) -> Ended {
    let diagnose = std::env::var_os("FORK_CHILD_BACKTRACE").is_some();
    let alarm_s = if diagnose { 20 } else { alarm_s };
    // SAFETY: fork(); the child only runs `body` and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm(2): a hang ends the child (default action: terminate).
        unsafe { libc::alarm(alarm_s) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(12);
        // SAFETY: leave without the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let mut reaped = false;
    if diagnose {
        // Diagnostics: the stack of a child still running after 1 s.
        let deadline = Instant::now() + secs(1);
        loop {
            // SAFETY: waitpid on our own child.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                reaped = true;
                break;
            }
            if Instant::now() > deadline {
                let out = std::process::Command::new("gdb")
                    .args(["-p", &pid.to_string(), "-batch", "-ex", "bt"])
                    .output();
                if let Ok(out) = out {
                    eprintln!("hung child:\n{}", String::from_utf8_lossy(&out.stdout));
                }
                break;
            }
            thread::yield_now();
        }
    }
    if !reaped {
        // SAFETY: waitpid on our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    }
    if libc::WIFEXITED(status) {
        Ended::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
        Ended::Hung
    } else {
        Ended::Other(status)
    }
}

/// Keeps `s` busy sending (begin_send/end_send from a thread of its own, each send
/// taking the send queue's lock, a worker finishing those that meet a full buffer)
/// until `stop` is set; the peer drains everything.
fn pump(s: Socket, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        static CHUNK: [u8; 64 * 1024] = [7u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let ar = match s.begin_send(&CHUNK[..], SocketFlags::NONE, None, None) {
                Ok(ar) => ar,
                Err(_) => return,
            };
            if s.end_send(&ar).is_err() {
                return;
            }
        }
    })
}

/// Keeps an echo of small messages going with callbacks between two of our sockets
/// (workers dispatching events, taking the registry's and the pool's locks), until
/// `stop` is set.
fn callback_chatter(stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (a, b) = tcp_pair();
        while !stop.load(Ordering::Relaxed) {
            let r = b
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            let (tx, rx) = mpsc::channel();
            a.begin_send(
                b"ping".to_vec(),
                SocketFlags::NONE,
                Some(Box::new(move |_| {
                    let _ = tx.send(());
                })),
                None,
            )
            .unwrap();
            let _ = rx.recv_timeout(secs(5));
            let _ = b.end_receive(&r);
        }
    })
}

/// Forks repeatedly while the parent's engine is busy; each child closes one of the
/// inherited sockets (the one being pumped, or an idle one) and exits. None may hang.
#[test]
fn a_child_forked_while_the_engine_is_busy_closes_inherited_sockets_without_hanging() {
    child_ok("child_fork_while_busy_close_inherited", secs(120));
}

#[test]
#[ignore = "child scenario"]
fn child_fork_while_busy_close_inherited() {
    let (busy, peer) = tcp_to_std();
    let (idle, _idle_peer) = tcp_to_std();
    let sink = discard_in_background(peer);
    let stop = Arc::new(AtomicBool::new(false));
    let pumps = [
        pump(busy.clone(), Arc::clone(&stop)),
        callback_chatter(Arc::clone(&stop)),
        callback_chatter(Arc::clone(&stop)),
    ];
    let until = Instant::now() + secs(40);
    let (mut forks, mut hung_busy, mut hung_idle, mut other) = (0, 0, 0, Vec::new());
    while Instant::now() < until && forks < 400 {
        let which = forks % 2;
        let ended = if which == 0 {
            let busy = busy.clone();
            fork_and(2, move || {
                busy.close();
                0
            })
        } else {
            let idle = idle.clone();
            fork_and(2, move || {
                idle.close();
                0
            })
        };
        forks += 1;
        match ended {
            Ended::Exited(0) => {}
            Ended::Hung if which == 0 => hung_busy += 1,
            Ended::Hung => hung_idle += 1,
            e => other.push(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for p in pumps {
        p.join().unwrap();
    }
    busy.close();
    sink.join().unwrap();
    eprintln!(
        "{forks} forks: {hung_busy} children hung closing the busy socket, \
         {hung_idle} closing an idle one, other endings: {other:?}"
    );
    assert!(other.is_empty(), "children ended badly: {other:?}");
    assert_eq!(
        (hung_busy, hung_idle),
        (0, 0),
        "children forked while the engine was busy hung closing inherited sockets"
    );
}

/// Reads and discards everything from `s` until EOF or an error, in a thread.
fn discard_in_background(mut s: std::net::TcpStream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// Whether descriptor `fd` is open in this process.
fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD on a number; no memory involved.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// In a forked child, dropping the last handle of an inherited socket (operations
/// pending on it, begun in the parent) lets go of its descriptor; the parent's
/// operations still complete afterwards.
#[test]
fn a_forked_child_dropping_its_last_handle_releases_the_descriptor() {
    child_ok("child_fork_last_handle_releases_descriptor", secs(60));
}

#[test]
#[ignore = "child scenario"]
fn child_fork_last_handle_releases_descriptor() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (ours, mut theirs) = tcp_to_std();
    let listener = Socket::listen_tcp(localhost(), 4).unwrap();
    let fds = [
        ours.as_socket2().as_raw_fd(),
        listener.as_socket2().as_raw_fd(),
    ];
    let pending = ours
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();
    let accept = listener.begin_accept(None, None).unwrap();
    // Moved out only in the child (the closure is dropped unrun in the parent).
    let mut held = Some((ours, listener));
    let ended = fork_and(5, || {
        drop(held.take());
        // The AsyncResults are still held: the descriptors must go regardless.
        let code = if fds.iter().any(|&fd| is_open(fd)) {
            1
        } else {
            0
        };
        drop((pending.clone(), accept.clone()));
        code
    });
    assert_eq!(ended, Ended::Exited(0), "the child kept its descriptors");
    let (ours, listener) = held.take().unwrap();
    theirs.write_all(b"parent").unwrap();
    assert!(pending.wait_timeout(secs(5)));
    let (n, v) = ours.end_receive(&pending).unwrap();
    assert_eq!(&v[..n], b"parent");
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert!(accept.wait_timeout(secs(5)));
    listener.end_accept(&accept).unwrap();
}

/// In a forked child, starting or trying operations on an inherited socket fails with
/// `Unsupported` before any lock is taken (the socket being pumped by the parent's
/// threads at the fork, whose queue lock one of them may have held), and cancelling the
/// parent's pending operation does nothing; the parent's operations are undisturbed.
#[test]
fn a_forked_child_cannot_start_operations_on_inherited_sockets() {
    child_ok("child_fork_begin_on_inherited", secs(60));
}

#[test]
#[ignore = "child scenario"]
fn child_fork_begin_on_inherited() {
    use std::io::{ErrorKind, Write};
    let (busy, peer) = tcp_to_std();
    let (idle, mut idle_peer) = tcp_to_std();
    let pending = idle
        .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
        .unwrap();
    let sink = discard_in_background(peer);
    let stop = Arc::new(AtomicBool::new(false));
    let pumper = pump(busy.clone(), Arc::clone(&stop));
    let unsupported =
        |e: asyncresult_core::Error| std::io::Error::from(e).kind() == ErrorKind::Unsupported;
    for round in 0..50 {
        let (busy, idle, pending) = (busy.clone(), idle.clone(), pending.clone());
        let ended = fork_and(5, move || {
            let sent = busy.begin_send(b"child".to_vec(), SocketFlags::NONE, None, None);
            let received = idle.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None);
            let tried = idle.try_read(&mut [0u8; 8]);
            let ok = sent.is_err_and(unsupported)
                && received.is_err_and(unsupported)
                && tried.is_err_and(unsupported)
                && !pending.cancel();
            i32::from(!ok)
        });
        assert_eq!(ended, Ended::Exited(0), "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    pumper.join().unwrap();
    busy.close();
    sink.join().unwrap();
    idle_peer.write_all(b"parent").unwrap();
    assert!(pending.wait_timeout(secs(5)));
    let (n, v) = idle.end_receive(&pending).unwrap();
    assert_eq!(&v[..n], b"parent");
}
