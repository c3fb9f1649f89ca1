//! Probes of the process the mix runs in: open descriptors (`/proc/self/fd`), RSS
//! (`/proc/self/statm`, optionally after glibc's `malloc_trim`), the sockets registered
//! with the engine, and [`settle`], which waits for such a count to come to rest.

use std::thread;
use std::time::{Duration, Instant};

/// The number of open file descriptors of this process (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// The resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size)
        .ok()
        .filter(|&size| size > 0)
        .unwrap_or(4096)
}

pub(super) fn sockets_registered() -> usize {
    asyncresult_core::driver::engine_stats().map_or(0, |stats| stats.sockets)
}

/// Polls `done` until it holds or `limit` passes. For what finishes in the
/// background with nothing to wait on but the count itself (descriptors released by
/// the last handle, callbacks of abandoned results); the pause only paces the polls.
pub(super) fn settle(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// RSS after handing the allocator's free memory back to the system (glibc's
/// `malloc_trim`), so that it measures memory in use rather than what the allocator
/// keeps cached from the busiest moment of the run.
pub(super) fn trimmed_rss() -> u64 {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim only returns free heap pages to the system; it has no
        // preconditions and is thread safe.
        unsafe { libc::malloc_trim(0) };
    }
    rss_bytes()
}

/// The descriptor count once it has stopped changing (for up to two seconds).
pub(super) fn steady_fds() -> usize {
    let (mut last, mut same) = (open_fds(), 0);
    settle(Duration::from_secs(2), || {
        let now = open_fds();
        (same, last) = if now == last {
            (same + 1, now)
        } else {
            (0, now)
        };
        same >= 5
    });
    last
}
