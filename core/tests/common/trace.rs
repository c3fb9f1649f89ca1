//! A minimal syscall tracer (ptrace), to count what an operation costs in syscalls:
//! it runs one `#[ignore]`d test of this binary in a child process, follows all of its
//! threads, and records every syscall made between two marker calls (`getppid`) that
//! the child places around the section to measure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::process::CommandExt;

/// The marker syscall: rare in this code base, cheap, harmless.
pub fn marker() {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::syscall(libc::SYS_getppid) };
}

/// Syscalls seen inside the marked section, as (thread id, syscall number).
#[derive(Debug, Default)]
pub struct Section {
    pub calls: Vec<(i32, i64)>,
    pub exit_ok: bool,
    /// The thread that placed the markers (the caller being measured).
    pub caller: i32,
}

impl Section {
    pub fn count(&self, nr: i64) -> usize {
        self.calls.iter().filter(|(_, n)| *n == nr).count()
    }
    pub fn count_any(&self, nrs: &[i64]) -> usize {
        self.calls.iter().filter(|(_, n)| nrs.contains(n)).count()
    }
    /// The syscalls of the calling thread only.
    pub fn caller_calls(&self) -> Vec<i64> {
        self.calls
            .iter()
            .filter(|(tid, _)| *tid == self.caller)
            .map(|(_, n)| *n)
            .collect()
    }
    pub fn names(&self) -> HashMap<i64, usize> {
        let mut m = HashMap::new();
        for (_, n) in &self.calls {
            *m.entry(*n).or_insert(0) += 1;
        }
        m
    }
}

/// Syscalls that touch a poller or wake one.
pub const POLLER_CALLS: &[i64] = &[
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_timerfd_settime,
];

#[cfg(target_arch = "x86_64")]
fn syscall_nr(tid: i32) -> i64 {
    // SAFETY: PTRACE_GETREGS fills a user_regs_struct for a stopped tracee.
    unsafe {
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _);
        regs.orig_rax as i64
    }
}

/// [`trace_child`] within a minute, failing the test if the child scenario failed.
#[cfg(target_arch = "x86_64")]
pub fn traced_section(name: &'static str) -> Section {
    let section = super::bounded(super::secs(60), move || trace_child(name));
    assert!(section.exit_ok, "child scenario {name} failed");
    section
}

/// Traces the ignored test `name` of this binary; returns what ran in its section.
#[cfg(target_arch = "x86_64")]
pub fn trace_child(name: &str) -> Section {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--ignored", "--test-threads=1"])
        .env("ASYNCRESULT_CHILD", "1")
        .stdout(std::process::Stdio::null());
    // SAFETY: only async-signal-safe work (one ptrace call) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped by the waitpid loop below (std cannot wait on a ptraced child).
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn traced child");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: plain waitpid/ptrace calls on our own traced child.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
        libc::ptrace(
            libc::PTRACE_SETOPTIONS,
            pid,
            0,
            libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_EXITKILL,
        );
        libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, 0);
    }
    let mut in_syscall: HashMap<i32, bool> = HashMap::new();
    let mut markers = 0;
    let mut section = Section::default();
    loop {
        // SAFETY: waitpid on our traced children.
        let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if tid < 0 {
            break;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if tid == pid {
                section.exit_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let mut deliver = 0;
        if sig == (libc::SIGTRAP | 0x80) {
            let entering = !in_syscall.get(&tid).copied().unwrap_or(false);
            in_syscall.insert(tid, entering);
            if entering {
                let nr = syscall_nr(tid);
                if nr == libc::SYS_getppid {
                    markers += 1;
                    section.caller = tid;
                } else if markers == 1 {
                    section.calls.push((tid, nr));
                }
            }
        } else if sig == libc::SIGTRAP || sig == libc::SIGSTOP {
            // clone/exec events and a new thread's first stop: not signals to deliver.
        } else {
            deliver = sig;
        }
        // SAFETY: resume a stopped tracee.
        unsafe { libc::ptrace(libc::PTRACE_SYSCALL, tid, 0, deliver) };
    }
    section
}
