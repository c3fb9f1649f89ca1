//! A FIFO that holds its first element inline and allocates only from the second on.
//!
//! Each direction of each socket keeps a queue of pending operations, and almost
//! always it holds zero or one: a receive waiting for data, a send waiting for room. A
//! plain `VecDeque` allocates on the first push (64 bytes for four slots) and keeps that
//! memory for the socket's lifetime, so a thousand idle-but-waiting sockets would pay
//! 64 KiB for queues of length one. Here the head lives in the queue itself and the
//! (boxed) `VecDeque` behind it is made only when a second operation waits behind the
//! first.
//!
//! A burst (a producer that outruns its peer: 100,000 queued sends) grows that
//! `VecDeque` to the burst's size; once it empties again it gives back all but
//! [`KEPT_SLOTS`] slots, so an idle socket does not hold a burst's queue (2 MiB after
//! 100,000 sends) for the rest of its life.
//!
//! Invariant: when `head` is empty, `rest` is empty too.

use std::collections::VecDeque;

/// Slots the overflow queue may keep once it empties (512 bytes of `Arc<dyn _>`): a
/// socket that often has a few operations waiting keeps them, a burst's are given
/// back.
const KEPT_SLOTS: usize = 32;

/// A first-in first-out queue with the head stored inline.
pub(crate) struct InlineFifo<T> {
    head: Option<T>,
    /// Boxed: 8 bytes in every socket's two queues instead of a `VecDeque`'s 32, for
    /// the rare socket where operations wait behind one another.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<T>>>,
}

impl<T> Default for InlineFifo<T> {
    fn default() -> Self {
        InlineFifo {
            head: None,
            rest: None,
        }
    }
}

impl<T> InlineFifo<T> {
    /// Whether the queue holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// How many elements it holds.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    /// The oldest element.
    pub(crate) fn front(&self) -> Option<&T> {
        self.head.as_ref()
    }

    /// Appends `value` at the back.
    pub(crate) fn push_back(&mut self, value: T) {
        if self.head.is_none() {
            self.head = Some(value);
        } else {
            // Room for one at first: a second waiting operation is rare, a third rarer.
            self.rest
                .get_or_insert_with(|| Box::new(VecDeque::with_capacity(1)))
                .push_back(value);
        }
    }

    /// The element at `index` (0 is the oldest).
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        match index {
            0 => self.head.as_ref(),
            _ => self.rest.as_ref()?.get(index - 1),
        }
    }

    /// The element at `index`, to change in place.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        match index {
            0 => self.head.as_mut(),
            _ => self.rest.as_mut()?.get_mut(index - 1),
        }
    }

    /// Removes and returns the oldest element.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let head = self.head.take();
        self.head = self.rest.as_mut().and_then(|rest| rest.pop_front());
        self.give_back();
        head
    }

    /// Frees the overflow queue once it is empty, if a burst grew it past
    /// [`KEPT_SLOTS`].
    fn give_back(&mut self) {
        if self
            .rest
            .as_ref()
            .is_some_and(|rest| rest.is_empty() && rest.capacity() > KEPT_SLOTS)
        {
            self.rest = None;
        }
    }

    /// The elements, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.head
            .iter()
            .chain(self.rest.iter().flat_map(|rest| rest.iter()))
    }

    /// Removes and returns the element at `index` (0 is the oldest).
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        match index {
            0 => self.pop_front(),
            _ => {
                let removed = self.rest.as_mut()?.remove(index - 1);
                self.give_back();
                removed
            }
        }
    }

    /// Empties the queue, oldest first (its overflow's memory goes with the iterator).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> {
        let head = self.head.take();
        let rest = self.rest.take();
        head.into_iter()
            .chain(rest.into_iter().flat_map(|rest| (*rest).into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::{InlineFifo, KEPT_SLOTS};

    #[test]
    fn keeps_order_through_pushes_pops_and_removes() {
        let mut fifo = InlineFifo::default();
        assert!(fifo.is_empty());
        assert_eq!(fifo.pop_front(), None);
        for i in 0..5 {
            fifo.push_back(i);
        }
        assert_eq!(fifo.len(), 5);
        assert_eq!(fifo.front(), Some(&0));
        assert_eq!(fifo.get(3), Some(&3));
        if let Some(three) = fifo.get_mut(3) {
            *three = 30;
        }
        assert_eq!(fifo.get(3), Some(&30));
        assert_eq!(fifo.get(5), None);
        assert_eq!(fifo.remove(2), Some(2));
        assert_eq!(fifo.remove(0), Some(0));
        assert_eq!(fifo.iter().copied().collect::<Vec<_>>(), [1, 30, 4]);
        assert_eq!(fifo.pop_front(), Some(1));
        fifo.push_back(5);
        assert_eq!(fifo.remove(9), None);
        assert_eq!(fifo.drain().collect::<Vec<_>>(), [30, 4, 5]);
        assert!(fifo.is_empty());
        assert_eq!(fifo.len(), 0);
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_drained() {
        let mut fifo = InlineFifo::default();
        for i in 0..10_000 {
            fifo.push_back(i);
        }
        for i in 0..9_998 {
            assert_eq!(fifo.pop_front(), Some(i));
        }
        assert!(fifo.rest.is_some());
        assert_eq!(fifo.pop_front(), Some(9_998));
        assert!(fifo.rest.is_none(), "the burst's queue is kept");
        assert_eq!(fifo.pop_front(), Some(9_999));
        // A few waiting now and then keep their small queue.
        for _ in 0..3 {
            for i in 0..KEPT_SLOTS {
                fifo.push_back(i);
            }
            while fifo.pop_front().is_some() {}
            assert!(fifo.rest.is_some());
        }
        // Removing the last of a burst from the middle, and draining, give it back too.
        for i in 0..1_000 {
            fifo.push_back(i);
        }
        while fifo.len() > 2 {
            fifo.pop_front();
        }
        assert_eq!(fifo.remove(1), Some(999));
        assert!(fifo.rest.is_none());
        assert_eq!(fifo.pop_front(), Some(998));
        for i in 0..1_000 {
            fifo.push_back(i);
        }
        assert_eq!(fifo.drain().count(), 1_000);
        assert!(fifo.rest.is_none());
        assert!(fifo.is_empty());
    }

    #[test]
    fn one_element_needs_no_allocation() {
        let mut fifo = InlineFifo::default();
        fifo.push_back(7);
        assert!(fifo.rest.is_none());
        assert_eq!(fifo.pop_front(), Some(7));
        assert!(fifo.is_empty());
    }
}
