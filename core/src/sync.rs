//! The synchronization primitives of the operation lifecycle (operations, their
//! queues, and the engine's count of waits that the queues keep), in one place so that
//! the lifecycle can be model-checked: built with `--cfg loom`, they are
//! [loom](https://docs.rs/loom)'s, and the tests in `queue::model` explore every
//! interleaving of completing, cancelling, closing and ending operations, of readiness
//! edges against `begin_*`, and of a gated driver going deaf against a wait that
//! begins. Everything else in the crate uses `parking_lot` and `std` directly.

#[cfg(not(loom))]
pub(crate) use atomic_waker::AtomicWaker;
#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom_shim::{AtomicWaker, Mutex, MutexGuard};

#[cfg(loom)]
mod loom_shim {
    use std::task::Waker;

    /// loom's mutex with `parking_lot`'s shape (no poisoning in the signature).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            match self.0.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            match self.0.get_mut() {
                Ok(value) => value,
                Err(poisoned) => poisoned.into_inner(),
            }
        }
    }

    /// `atomic_waker::AtomicWaker`'s contract, over a loom mutex.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(Mutex<Option<Waker>>);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            AtomicWaker(Mutex::new(None))
        }

        pub(crate) fn register(&self, waker: &Waker) {
            *self.0.lock() = Some(waker.clone());
        }

        pub(crate) fn take(&self) -> Option<Waker> {
            self.0.lock().take()
        }
    }
}
