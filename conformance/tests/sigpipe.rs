//! No adapter ever lets a write to a reset peer raise SIGPIPE, even in a process that
//! keeps SIGPIPE at its default action (terminate): each scenario runs in a child
//! process that restores that default first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use asyncresult_conformance::loopback;

/// Restores SIGPIPE's default action (Rust programs start with it ignored).
fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// A connected peer that resets at once (SO_LINGER 0, then close).
fn resetting_peer() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn reset(listener: &TcpListener) {
    let (peer, _) = listener.accept().unwrap();
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
}

fn run_child(name: &str) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // Bounded: a child that hangs is killed and fails the test.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    if !status.success() {
                        eprintln!("child {name} failed: {status:?}\n{err}");
                    }
                    return Ok(status);
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    return child.wait();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .unwrap()
}

#[test]
#[ignore = "child scenario"]
fn child_callback() {
    default_sigpipe();
    let (listener, addr) = resetting_peer();
    let s = asyncresult_core::Socket::connect_tcp(addr).unwrap();
    reset(&listener);
    let mut failed = 0;
    for _ in 0..200 {
        let ar = s
            .begin_send(
                vec![0u8; 65536],
                asyncresult_core::SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        if s.end_send(&ar).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0);
}

#[test]
#[ignore = "child scenario"]
fn child_tokio() {
    default_sigpipe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let (listener, addr) = resetting_peer();
        let mut s = asyncresult_tokio::TcpStream::connect(addr).await.unwrap();
        reset(&listener);
        let mut failed = 0;
        for _ in 0..200 {
            if s.send(vec![0u8; 65536]).await.is_err() {
                failed += 1;
            }
            if s.write_all(&[0u8; 4096]).await.is_err() {
                failed += 1;
            }
        }
        assert!(failed > 0);
    });
}

#[test]
#[ignore = "child scenario"]
fn child_smol() {
    default_sigpipe();
    smol::block_on(async {
        use futures::io::AsyncWriteExt;
        let (listener, addr) = resetting_peer();
        let mut s = asyncresult_smol::TcpStream::connect(addr).await.unwrap();
        reset(&listener);
        let mut failed = 0;
        for _ in 0..200 {
            if s.send(vec![0u8; 65536]).await.is_err() {
                failed += 1;
            }
            if s.write_all(&[0u8; 4096]).await.is_err() {
                failed += 1;
            }
        }
        assert!(failed > 0);
    });
}

#[test]
fn no_adapter_raises_sigpipe() {
    for child in ["child_callback", "child_tokio", "child_smol"] {
        let status = run_child(child);
        assert!(
            status.success(),
            "{child}: {status:?} (signal 13 is SIGPIPE)"
        );
    }
}
