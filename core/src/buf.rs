//! Owned buffers. An operation owns its buffer from `begin_*` until it completes, so
//! the bytes stay put while the kernel may be reading or writing them and no caller
//! can touch them meanwhile (the compio model). A receive hands its buffer back with
//! the result.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::error::Error;

/// A buffer that a send operation owns until it completes.
///
/// Implemented for `Vec<u8>`, `Box<[u8]>`, `&'static [u8]`, `&'static [u8; N]`,
/// `&'static str`, `String`, `Arc<[u8]>` and, with the `bytes` feature,
/// `bytes::Bytes`. Implement it for your own type by returning the bytes to send.
///
/// The operation drops its buffer once it has ended, holding no lock of the engine: on
/// the thread that completes it (possibly an engine thread) before the completion is
/// delivered, or on the thread whose `end_*` takes the result, if that comes first. A
/// buffer's `Drop` may begin or cancel operations, and drop or close sockets, on any
/// socket, its own included (a frame that sends a trailer when it goes, or hangs up:
/// the close is immediate, and what it completes is finished on an engine worker a
/// moment later); a panic in it is contained. Like a callback, it should not block: it
/// may run on a thread that completes other operations.
///
/// # Examples
///
/// ```
/// use asyncresult_core::IoBuf;
///
/// struct Frame { header: [u8; 4], body: Vec<u8> }
/// # let _ = Frame { header: [0; 4], body: vec![] }.header;
/// // A type can send any stable view of its bytes:
/// struct Body(Frame);
/// impl IoBuf for Body {
///     fn as_bytes(&self) -> &[u8] { &self.0.body }
/// }
/// assert_eq!(b"abc".as_bytes(), &b"abc"[..]);
/// ```
///
/// A buffer's `Drop` may begin the next operation, on its own socket too; it goes
/// after every operation already queued on that direction:
///
/// ```
/// use asyncresult_core::{IoBuf, Socket, SocketFlags};
/// use std::io::Read;
/// use std::time::Duration;
///
/// /// A frame that sends a trailer when it is done with.
/// struct Frame {
///     bytes: Vec<u8>,
///     then: Option<Socket>,
/// }
///
/// impl IoBuf for Frame {
///     fn as_bytes(&self) -> &[u8] {
///         &self.bytes
///     }
/// }
///
/// impl Drop for Frame {
///     fn drop(&mut self) {
///         if let Some(socket) = self.then.take() {
///             let _ = socket.begin_send(&b"<end>"[..], SocketFlags::NONE, None, None);
///         }
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let socket = Socket::connect_tcp(listener.local_addr()?)?;
/// let (mut peer, _) = listener.accept()?;
/// peer.set_read_timeout(Some(Duration::from_secs(10)))?;
/// let frame = Frame { bytes: b"hello".to_vec(), then: Some(socket.clone()) };
/// let ar = socket.begin_send(frame, SocketFlags::NONE, None, None)?;
/// assert_eq!(socket.end_send(&ar)?, 5);
/// let mut got = [0u8; 10];
/// peer.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello<end>");
/// # Ok(())
/// # }
/// ```
pub trait IoBuf: Send + 'static {
    /// The bytes to send. The operation may call this several times; every call must
    /// return the same bytes.
    fn as_bytes(&self) -> &[u8];
}

impl IoBuf for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for Box<[u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for &'static [u8] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> IoBuf for &'static [u8; N] {
    fn as_bytes(&self) -> &[u8] {
        &self[..]
    }
}

impl IoBuf for &'static str {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl IoBuf for String {
    fn as_bytes(&self) -> &[u8] {
        String::as_bytes(self)
    }
}

impl IoBuf for Arc<[u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

#[cfg(feature = "bytes")]
impl IoBuf for bytes::Bytes {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for Vec<u8> {}
    impl Sealed for Box<[u8]> {}
}

/// A buffer that a receive operation owns until it completes, then hands back.
///
/// - `Vec<u8>` is filled from index 0 up to its `capacity()`: old contents are
///   discarded, and the `Vec` handed back has `len()` equal to the bytes stored. Make
///   it with `Vec::with_capacity(n)`; the allocator may give more than `n`, so a
///   receive may return more than `n` bytes.
/// - `Box<[u8]>` is filled from index 0 up to its length; the count says how much of it
///   is new.
///
/// The trait is sealed: the engine writes into the buffer's memory directly.
///
/// # Examples
///
/// ```
/// use asyncresult_core::IoBufMut;
///
/// fn fits<B: IoBufMut>(_: &B) {}
/// fits(&Vec::<u8>::with_capacity(4096));
/// fits(&vec![0u8; 512].into_boxed_slice());
/// ```
pub trait IoBufMut: IoBuf + sealed::Sealed {
    /// How many bytes a receive can store.
    fn recv_capacity(&self) -> usize;

    /// The whole receive area, starting at index 0, `recv_capacity()` long.
    ///
    /// # Safety
    ///
    /// The caller must not write uninitialized bytes into the returned slice: for a
    /// `Box<[u8]>` it views initialized memory.
    #[doc(hidden)]
    unsafe fn recv_area(&mut self) -> &mut [MaybeUninit<u8>];

    /// Records that the first `n` bytes of the receive area now hold received data.
    ///
    /// # Safety
    ///
    /// `n` must not exceed `recv_capacity()`, and the first `n` bytes of the area
    /// returned by [`recv_area`](IoBufMut::recv_area) must have been initialized.
    #[doc(hidden)]
    unsafe fn set_received(&mut self, n: usize);

    /// Whether the area of [`recv_area`](IoBufMut::recv_area) is initialized memory
    /// already (a `Box<[u8]>`), or may not be (a `Vec<u8>`'s spare capacity).
    #[doc(hidden)]
    fn recv_area_is_initialized(&self) -> bool;
}

impl IoBufMut for Vec<u8> {
    fn recv_capacity(&self) -> usize {
        self.capacity()
    }

    unsafe fn recv_area(&mut self) -> &mut [MaybeUninit<u8>] {
        self.clear();
        self.spare_capacity_mut()
    }

    unsafe fn set_received(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
        // SAFETY: the caller guarantees `n <= capacity()` and that the first `n` bytes
        // (the area from `recv_area`, which starts at index 0 after `clear`) are
        // initialized.
        unsafe { self.set_len(n) }
    }

    fn recv_area_is_initialized(&self) -> bool {
        false
    }
}

impl IoBufMut for Box<[u8]> {
    fn recv_capacity(&self) -> usize {
        self.len()
    }

    unsafe fn recv_area(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the caller promises not to write uninitialized bytes through the area.
        unsafe { uninit_view(self) }
    }

    unsafe fn set_received(&mut self, _n: usize) {}

    fn recv_area_is_initialized(&self) -> bool {
        true
    }
}

/// Takes a filled buffer out of its operation's slot to hand it back (once: an empty
/// slot means the result was already taken).
pub(crate) fn take_filled<B>(slot: &mut Option<B>) -> Result<B, Error> {
    slot.take().ok_or(Error::AlreadyEnded)
}

/// `bytes` seen as memory a read may fill.
///
/// # Safety
///
/// Nothing may write uninitialized bytes through the view, so that `bytes` stays
/// initialized (reads write only initialized bytes).
pub(crate) unsafe fn uninit_view(bytes: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    let len = bytes.len();
    let ptr = bytes.as_mut_ptr().cast::<MaybeUninit<u8>>();
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the pointer and length come
    // from a live, exclusively borrowed slice; the caller keeps it initialized.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_receive_area_starts_at_zero_and_spans_capacity() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"old");
        let cap = v.capacity();
        // SAFETY: only initialized bytes are written.
        let area = unsafe { v.recv_area() };
        assert_eq!(area.len(), cap);
        area[0].write(b'x');
        area[1].write(b'y');
        // SAFETY: two bytes were written above.
        unsafe { v.set_received(2) };
        assert_eq!(v, b"xy");
    }

    #[test]
    fn boxed_receive_area_is_the_slice() {
        let mut b: Box<[u8]> = vec![7u8; 5].into_boxed_slice();
        assert_eq!(b.recv_capacity(), 5);
        // SAFETY: only initialized bytes are written.
        unsafe { b.recv_area()[0].write(1) };
        // SAFETY: one byte was written.
        unsafe { b.set_received(1) };
        assert_eq!(&b[..], &[1, 7, 7, 7, 7]);
    }

    #[test]
    fn send_buffers_expose_their_bytes() {
        fn bytes<B: IoBuf>(b: B) -> Vec<u8> {
            b.as_bytes().to_vec()
        }
        assert_eq!(bytes(b"ab"), b"ab");
        assert_eq!(bytes("ab"), b"ab");
        assert_eq!(bytes(String::from("ab")), b"ab");
        assert_eq!(bytes(Arc::<[u8]>::from(&b"ab"[..])), b"ab");
        assert_eq!(bytes(vec![1u8, 2].into_boxed_slice()), [1, 2]);
    }
}
