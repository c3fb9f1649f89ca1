//! Heap allocations per operation in steady state, counted by a global allocator: an
//! operation allocates itself (the shared operation behind its `AsyncResult`) and the
//! callback the caller boxed, and nothing else on any thread, whether it completes on
//! the fast path or later from a readiness event; and that one allocation is at most
//! 256 bytes for every kind of operation. Its own test binary, because the count is
//! process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use asyncresult_core::{AsyncResult, Domain, Socket, SocketFlags, Type};
use common::*;

/// `System`, counting every allocation and reallocation, and the bytes each thread
/// asked for.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes allocated by this thread (no destructor, so readable at any time).
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn count_bytes(size: usize) {
    let _ = BYTES.try_with(|bytes| bytes.set(bytes.get() + size));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        count_bytes(layout.size());
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        count_bytes(new_size);
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Operations measured after the warm-up.
const OPS: usize = 2_000;
/// Allocations allowed over the whole measured run beyond the per-operation budget: a
/// queue growing, the monitor handing a descheduled worker's callbacks to the pool (a
/// few per hand-over; up to 25 in all seen beside two busy loops). An allocation per
/// operation would add `OPS`, eight times this.
const SLACK: usize = OPS / 8;

/// The tests of this binary one at a time: the allocation count is process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed poisons the lock; the others still run.
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn an_operation_allocates_only_itself_and_its_callback() {
    let _serial = serial();
    bounded(secs(60), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.set_nodelay(true).unwrap();
        theirs.set_nodelay(true).unwrap();
        // Pre-allocated rendezvous: sending on it allocates nothing.
        let (done_tx, done) = mpsc::sync_channel::<Vec<u8>>(1);

        // A receive begun before its byte exists: it waits in the queue and completes
        // from a readiness event on an engine worker, which runs its callback.
        let mut buf = Vec::with_capacity(8);
        let mut one_receive = |round: usize, buf: Vec<u8>| -> Vec<u8> {
            let s = ours.clone();
            let tx = done_tx.clone();
            let ar = ours
                .begin_receive(
                    buf,
                    SocketFlags::NONE,
                    Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        let (_, buf) = s.end_receive(&ar).unwrap();
                        tx.send(buf).unwrap();
                    })),
                    None,
                )
                .unwrap();
            assert!(!ar.completed_synchronously(), "no data yet: it must queue");
            drop(ar);
            theirs.write_all(&[round as u8]).unwrap();
            let buf = done.recv_timeout(secs(10)).expect("receive completed");
            assert_eq!(buf, [round as u8]);
            buf
        };
        for round in 0..100 {
            buf = one_receive(round, buf);
            buf.clear();
        }
        // Two allocations per round: the operation and the boxed callback (the `Socket`
        // and sender clones it captures are reference counts, not allocations).
        let before = allocations();
        for round in 0..OPS {
            buf = one_receive(round, buf);
            buf.clear();
        }
        let queued = allocations() - before;
        eprintln!("{queued} allocations for {OPS} queued receives with callbacks");
        assert!(
            queued <= 2 * OPS + SLACK,
            "{queued} allocations for {OPS} queued receives: more than the operation and \
             its callback each"
        );

        // Fast-path sends without a callback: the operation only.
        let payload: &'static [u8] = b"0123456789abcdef";
        let mut sink = vec![0u8; payload.len()];
        let before = allocations();
        for _ in 0..OPS {
            let ar = ours
                .begin_send(payload, SocketFlags::NONE, None, None)
                .unwrap();
            assert!(ar.completed_synchronously());
            assert_eq!(ours.end_send(&ar).unwrap(), payload.len());
            theirs.read_exact(&mut sink).unwrap();
        }
        let sent = allocations() - before;
        eprintln!("{sent} allocations for {OPS} fast-path sends");
        assert!(
            sent <= OPS + SLACK,
            "{sent} allocations for {OPS} fast-path sends: more than the operation each"
        );
    });
}

/// The most heap an operation may take beside its buffer (the target).
const MAX_OPERATION_BYTES: usize = 256;

/// Runs `begin` and returns the heap bytes this thread allocated in it, with its result.
fn heap_of<T>(begin: impl FnOnce() -> T) -> (usize, T) {
    let before = BYTES.with(Cell::get);
    let result = begin();
    (BYTES.with(Cell::get) - before, result)
}

fn assert_small(what: &str, bytes: usize) {
    eprintln!("{what}: {bytes} bytes");
    assert!(
        bytes <= MAX_OPERATION_BYTES,
        "{what} took {bytes} heap bytes beside its buffer (at most {MAX_OPERATION_BYTES})"
    );
}

/// Every kind of operation, pending or finished at once, is one allocation of at most
/// 256 bytes beside the buffer the caller moved in (allocated before the call). The
/// first pending operation of a direction sits in the queue's inline slot, so nothing
/// else is allocated for it.
#[test]
fn an_operation_takes_at_most_256_bytes_beside_its_buffer() {
    let _serial = serial();
    bounded(secs(60), || {
        let (ours, _theirs) = tcp_to_std();

        let buf = Vec::with_capacity(64);
        let (bytes, ar) = heap_of(|| ours.begin_receive(buf, SocketFlags::NONE, None, None));
        assert!(!ar.unwrap().is_completed(), "no data: the receive waits");
        assert_small("a pending receive", bytes);

        // Sends that the peer never reads, until one has to wait for room.
        let mut pending_send = None;
        for _ in 0..10_000 {
            let chunk = vec![7u8; 64 * 1024];
            let (bytes, ar) = heap_of(|| ours.begin_send(chunk, SocketFlags::NONE, None, None));
            let ar = ar.unwrap();
            if ar.completed_synchronously() {
                assert!(
                    bytes <= MAX_OPERATION_BYTES,
                    "a send finished at once: {bytes} bytes"
                );
            } else {
                pending_send = Some((bytes, ar));
                break;
            }
        }
        let (bytes, _ar) = pending_send.expect("the kernel's buffers filled up");
        assert_small("a pending send", bytes);

        let parts = vec![vec![1u8; 16], vec![2u8; 16]];
        let (bytes, _ar) =
            heap_of(|| ours.begin_send_vectored(parts, SocketFlags::NONE, None, None));
        // Queued behind the pending send: this also counts the queue's room for the
        // operations after the first (amortized over them).
        assert_small("a vectored send queued behind another", bytes);

        let listener = Socket::listen_tcp(localhost(), 8).unwrap();
        let (bytes, ar) = heap_of(|| listener.begin_accept(None, None));
        assert!(
            !ar.unwrap().is_completed(),
            "nobody connects: the accept waits"
        );
        assert_small("a pending accept", bytes);

        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let to = listener.local_addr().unwrap();
        let (bytes, _ar) = heap_of(|| client.begin_connect(to, None, None));
        assert_small("a connect", bytes);

        let udp = Socket::bind_udp(localhost()).unwrap();
        let buf = Vec::with_capacity(64);
        let (bytes, ar) = heap_of(|| udp.begin_receive_from(buf, SocketFlags::NONE, None, None));
        assert!(
            !ar.unwrap().is_completed(),
            "no datagram: the receive waits"
        );
        assert_small("a pending receive_from", bytes);

        let to = udp.local_addr().unwrap();
        let datagram = vec![3u8; 16];
        let (bytes, _ar) =
            heap_of(|| udp.begin_send_to(datagram, SocketFlags::NONE, to, None, None));
        assert_small("a send_to", bytes);
    });
}
