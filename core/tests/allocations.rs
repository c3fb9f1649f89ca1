//! Heap allocations per operation in steady state, counted by a global allocator: an
//! operation allocates itself (the shared operation behind its `AsyncResult`) and the
//! callback the caller boxed, and nothing else on any thread, whether it completes on
//! the fast path or later from a readiness event. Its own test binary, because the
//! count is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use asyncresult_core::{AsyncResult, SocketFlags};
use common::*;

/// `System`, counting every allocation and reallocation.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn an_operation_allocates_only_itself_and_its_callback() {
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
