//! What the allocation tests of the tokio and smol adapters share: a counting global
//! allocator (each test binary installs it, so that each counts in a process of its
//! own: the smol adapter's driver stays registered with async-io's reactor for the
//! rest of a process, and async-io's thread allocates per reactor turn) and the
//! ping-pong they measure, and the idle reads. Each test takes
//! `asyncresult_conformance::serial()`: a count taken beside another test of the same
//! binary counts that test too (the tokio round trip, which counts every thread,
//! counted 580 allocations in CI beside the idle reads' set-up of 202 streams; 6 of 20
//! loaded runs failed that way, none run one at a time).
//!
//! A round trip is two sends that finish at once and two receives that wait and are
//! woken, between two tasks. A fast-path send is no operation at all, and a receive's
//! wait reuses its direction's readiness operation, so none of it allocates; one
//! allocation per operation would add four per round trip.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use asyncresult_conformance::adapters::Flavor;
use asyncresult_conformance::loopback;
use asyncresult_core::future::Runtime;
use asyncresult_core::net;

/// `System`, counting every allocation and reallocation, in all and per thread.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations by this thread (no destructor, so readable at any time).
    static THREAD_ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    let _ = THREAD_ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counters have no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations by every thread so far.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations by this thread so far.
pub fn thread_allocations() -> usize {
    THREAD_ALLOCATIONS.with(Cell::get)
}

pub const ROUND_TRIPS: usize = 2_000;
pub const WARM_UP: usize = 200;
pub const LIMIT: Duration = Duration::from_secs(60);

/// A connected (client, server) pair of `F`'s streams.
pub async fn pair<F: Flavor>() -> (F::Stream, F::Stream) {
    let listener = Arc::new(F::bind(loopback()).await.unwrap());
    let addr = F::listener_socket(&listener).local_addr().unwrap();
    let client = F::connect(addr).await.unwrap();
    let server = F::accept(listener).await.unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// Receives one 64-byte message into `buf` (taken and given back).
pub async fn receive_message<R: Runtime>(stream: &net::TcpStream<R>, buf: &mut Vec<u8>) {
    let mut got = 0;
    while got < 64 {
        let (n, back) = stream.receive(std::mem::take(buf)).await.unwrap();
        assert!(n > 0, "the peer closed");
        *buf = back;
        buf.resize(64, 0);
        got += n;
    }
}

/// The echo end: answers `rounds` messages.
pub async fn echo<R: Runtime>(server: &net::TcpStream<R>, rounds: usize) {
    let mut buf = vec![0u8; 64];
    let msg: &'static [u8] = &[7u8; 64];
    for _ in 0..rounds {
        receive_message(server, &mut buf).await;
        assert_eq!(server.send(msg).await.unwrap(), 64);
    }
}

/// The ping end: `rounds` requests, each waiting for its answer (so that every
/// receive of both ends waits for readiness and is woken).
pub async fn ping<R: Runtime>(client: &net::TcpStream<R>, rounds: usize) {
    let mut buf = vec![0u8; 64];
    let msg: &'static [u8] = &[9u8; 64];
    for _ in 0..rounds {
        assert_eq!(client.send(msg).await.unwrap(), 64);
        receive_message(client, &mut buf).await;
    }
}

/// Idle streams whose `AsyncRead` reads wait in [`idle_read_allocations`].
pub const IDLE_READS: usize = 200;

/// Checks that [`IDLE_READS`] waits (`what`: "reads", "receives") allocated next to
/// nothing: `spent` under one per ten waits, where a readiness operation per wait
/// would be one each.
pub fn check_idle_waits(spent: usize, what: &str) {
    eprintln!("{spent} allocations for {IDLE_READS} waiting {what}");
    assert!(
        spent < IDLE_READS / 10,
        "{spent} allocations for {IDLE_READS} waiting {what}"
    );
}

/// [`IDLE_READS`] idle streams and one more to warm up (both ends of each pair).
async fn idle_streams<F: Flavor>() -> Vec<F::Stream> {
    let mut streams = Vec::with_capacity(IDLE_READS + 2);
    for _ in 0..=IDLE_READS / 2 {
        let (client, server) = pair::<F>().await;
        streams.push(client);
        streams.push(server);
    }
    streams
}

/// Polls one read (`poll_read`, what both adapters' `AsyncRead` impls call) on each of
/// [`IDLE_READS`] idle streams, with no data coming, after one such read to warm up;
/// returns this thread's allocations meanwhile. A waiting read parks its task's waker
/// in its socket's queue, so it should allocate nothing (a readiness operation per
/// waiting read would be one allocation each).
pub async fn idle_read_allocations<F: Flavor>() -> usize {
    let streams = idle_streams::<F>().await;
    let mut buf = [0u8; 64];
    // A waker of a task of its own (a clone is a reference count, and it recognizes its
    // clones, as executors' wakers do; `Waker::noop`'s clones need not).
    let waker = Waker::from(Arc::new(Unwoken));
    let mut cx = Context::from_waker(&waker);
    let (warm, idle) = streams.split_first().unwrap();
    assert!(
        warm.poll_read(&mut cx, &mut buf).is_pending(),
        "no data was sent"
    );
    let before = thread_allocations();
    for stream in idle {
        assert!(
            stream.poll_read(&mut cx, &mut buf).is_pending(),
            "no data was sent"
        );
    }
    thread_allocations() - before
}

/// Polls one `receive` future (into an owned buffer, allocated beforehand) on each of
/// [`IDLE_READS`] idle streams, with no data coming, after one such receive to warm up;
/// returns this thread's allocations meanwhile. A waiting receive keeps its place in
/// its socket's order by parking its task's waker there, so it should allocate nothing
/// (a readiness operation per waiting receive would be one allocation each). The
/// futures are dropped after counting, which gives their places up.
pub async fn idle_receive_allocations<F: Flavor>() -> usize {
    let streams = idle_streams::<F>().await;
    let waker = Waker::from(Arc::new(Unwoken));
    let mut cx = Context::from_waker(&waker);
    let mut futures: Vec<_> = streams
        .iter()
        .map(|stream| stream.receive(Vec::with_capacity(64)))
        .collect();
    let (warm, idle) = futures.split_first_mut().unwrap();
    assert!(
        Pin::new(warm).poll(&mut cx).is_pending(),
        "no data was sent"
    );
    let before = thread_allocations();
    for future in idle {
        assert!(
            Pin::new(future).poll(&mut cx).is_pending(),
            "no data was sent"
        );
    }
    let spent = thread_allocations() - before;
    drop(futures);
    spent
}

/// The waker of a task that no test expects to be woken.
struct Unwoken;

impl Wake for Unwoken {
    fn wake(self: Arc<Self>) {}
}
