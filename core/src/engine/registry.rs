//! The engine's table of registered sockets, indexed by the key each socket was
//! registered with in the poller.
//!
//! A key is a slab index tagged with a generation: `generation << 24 | index`. A slot
//! is reused after its socket leaves, but with a new generation, so a stale event (one
//! already taken off the poller by another thread when the socket was closed) cannot
//! reach the socket that reuses the slot. The two highest index values are never
//! allocated, so no socket key ever equals polling's reserved key (`usize::MAX`) or the
//! engine's wake-up key (`usize::MAX - 1`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use slab::Slab;

use crate::socket::SocketCore;

const INDEX_BITS: u32 = 24;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// Indexes at or above this are never allocated (see the module docs).
const INDEX_LIMIT: usize = INDEX_MASK - 1;
/// Generations wrap within the bits left above the index.
const GENERATION_MASK: usize = usize::MAX >> INDEX_BITS;

/// The key of the engine's own wake-up eventfd.
pub(crate) const WAKE_KEY: usize = usize::MAX - 1;

struct Entry {
    generation: usize,
    socket: Arc<SocketCore>,
}

struct Table {
    slab: Slab<Entry>,
    next_generation: usize,
}

impl Table {
    /// Takes the socket registered under `key` out, if it still is (not a later one in
    /// the same slot).
    fn take(&mut self, key: usize) -> Option<Arc<SocketCore>> {
        let (index, generation) = split(key);
        if self
            .slab
            .get(index)
            .is_some_and(|e| e.generation == generation)
        {
            Some(self.slab.remove(index).socket)
        } else {
            None
        }
    }
}

/// Registered sockets by poller key.
pub(crate) struct Registry {
    table: RwLock<Table>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sockets", &self.len())
            .finish()
    }
}

fn split(key: usize) -> (usize, usize) {
    (key & INDEX_MASK, key >> INDEX_BITS)
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            table: RwLock::new(Table {
                slab: Slab::new(),
                next_generation: 0,
            }),
        }
    }

    /// Inserts the socket that `make` builds for its new key.
    pub(crate) fn insert(
        &self,
        make: impl FnOnce(usize) -> Arc<SocketCore>,
    ) -> io::Result<Arc<SocketCore>> {
        let mut table = self.table.write();
        let generation = table.next_generation;
        let entry = table.slab.vacant_entry();
        let index = entry.key();
        if index >= INDEX_LIMIT {
            return Err(io::Error::other(
                "too many sockets registered with one asyncresult engine",
            ));
        }
        let key = (generation << INDEX_BITS) | index;
        let socket = make(key);
        entry.insert(Entry {
            generation,
            socket: Arc::clone(&socket),
        });
        table.next_generation = (generation + 1) & GENERATION_MASK;
        Ok(socket)
    }

    /// The socket registered under `key`, if it is still there.
    pub(crate) fn get(&self, key: usize) -> Option<Arc<SocketCore>> {
        let (index, generation) = split(key);
        let table = self.table.read();
        table
            .slab
            .get(index)
            .filter(|e| e.generation == generation)
            .map(|e| Arc::clone(&e.socket))
    }

    /// Removes the socket registered under `key`; `None` if it was not there.
    pub(crate) fn remove(&self, key: usize) -> Option<Arc<SocketCore>> {
        self.table.write().take(key)
    }

    /// [`remove`](Self::remove) in a child forked while a thread of the parent (one that
    /// does not exist in the child) may have held the table's lock: the lock is only
    /// tried, for up to `patience`, never waited for; `None` if it stayed taken (the
    /// socket then stays in the table).
    pub(crate) fn remove_unless_stuck(
        &self,
        key: usize,
        patience: Duration,
    ) -> Option<Arc<SocketCore>> {
        let until = Instant::now() + patience;
        loop {
            if let Some(mut table) = self.table.try_write() {
                return table.take(key);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// How many sockets are registered.
    pub(crate) fn len(&self) -> usize {
        self.table.read().slab.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys_are_never_socket_keys() {
        let (index, _) = split(usize::MAX);
        assert!(index >= INDEX_LIMIT);
        let (index, _) = split(WAKE_KEY);
        assert!(index >= INDEX_LIMIT);
    }
}
