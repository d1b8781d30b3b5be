//! A fixed pool of page-aligned block buffers, and the owned buffer handle [`PoolBuf`].
//!
//! This module owns the memory every block travels in: reader → hasher → uploader share one
//! buffer without copying ([`PoolBuf::freeze`] hands out [`bytes::Bytes`] over the same memory),
//! and the buffer goes back to its pool when the last user drops it. Memory is therefore
//! `count × block size` by construction (style.md §5 ASYNC; neon's buffer recycling, §3.4).
//! Buffers are 4096-byte aligned and a multiple of 4096 bytes long, as `O_DIRECT` reads need.
//!
//! It must not do I/O, hashing or any policy about block sizes: it only lends memory.

#![allow(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::aligned::AlignedPages;
use tokio::sync::Semaphore;

/// The alignment, in bytes, of every pool buffer's start and length (`O_DIRECT` needs 4096 on the
/// file systems we read from).
pub const BUF_ALIGN_BYTES: usize = crate::aligned::PAGE_BYTES;

/// The shared state of a pool: the free buffers and one semaphore permit per free buffer.
struct PoolInner {
    /// Free buffers. Invariant: `free.len()` is at least the available permits.
    free: Mutex<Vec<AlignedPages>>,
    /// One permit per buffer in `free`; waiting on it is how `acquire` waits.
    permits: Semaphore,
    count: usize,
    block_size_bytes: usize,
}

impl PoolInner {
    fn give_back(&self, block: AlignedPages) {
        // Push first, then release the permit, so a permit always finds a buffer.
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(block);
        self.permits.add_permits(1);
    }

    fn take(self: &Arc<Self>) -> PoolBuf {
        let block = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("a pool permit guarantees a free buffer");
        PoolBuf {
            block: Some(block),
            len: 0,
            home: Arc::clone(self),
        }
    }
}

/// A fixed pool of `count` page-aligned buffers of `block_size_bytes` each.
///
/// Cloning the pool clones a handle to the same buffers. The pool can be used from any thread
/// and any runtime (tokio multi-thread, the tokio-uring reader thread, rayon): returning a buffer
/// is a plain function call in [`PoolBuf`]'s `Drop`.
#[derive(Clone)]
pub struct BufPool {
    inner: Arc<PoolInner>,
}

impl BufPool {
    /// Allocate `count` buffers of `block_size_bytes` rounded up to a multiple of
    /// [`BUF_ALIGN_BYTES`], each aligned to [`BUF_ALIGN_BYTES`], and zeroed.
    ///
    /// Memory is `count × block_size()` bytes, allocated here and never grown.
    /// A `block_size_bytes` of 0 gives buffers of one page. A `count` of 0 gives a pool whose
    /// [`BufPool::acquire`] never completes.
    ///
    /// # Panics
    /// If `count × block_size()` overflows `usize` or the allocation fails (a configuration
    /// error, not input data).
    pub fn new(count: usize, block_size_bytes: usize) -> Self {
        let block_size_bytes = block_size_bytes
            .max(1)
            .checked_next_multiple_of(BUF_ALIGN_BYTES)
            .expect("block size overflows usize when rounded to a page");
        assert!(
            count.checked_mul(block_size_bytes).is_some(),
            "pool size overflows usize"
        );
        let free = (0..count)
            .map(|_| AlignedPages::zeroed(block_size_bytes))
            .collect();
        BufPool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(free),
                permits: Semaphore::new(count),
                count,
                block_size_bytes,
            }),
        }
    }

    /// The number of buffers the pool owns (free or lent).
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// The capacity of each buffer in bytes: the requested size rounded up to 4096.
    pub fn block_size(&self) -> usize {
        self.inner.block_size_bytes
    }

    /// The number of buffers free right now (a snapshot, for tests and progress reports).
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// Take a free buffer, waiting until one is returned if all are lent.
    ///
    /// The buffer starts with length 0.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future before it completes takes no buffer. Waiters are
    /// served in FIFO order.
    pub async fn acquire(&self) -> PoolBuf {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("the pool semaphore is never closed");
        permit.forget();
        self.inner.take()
    }

    /// Take a free buffer if one is available now, without waiting.
    pub fn try_acquire(&self) -> Option<PoolBuf> {
        let permit = self.inner.permits.try_acquire().ok()?;
        permit.forget();
        Some(self.inner.take())
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("count", &self.count())
            .field("block_size", &self.block_size())
            .field("available", &self.available())
            .finish()
    }
}

/// One buffer lent by a [`BufPool`]: 4096-aligned, `capacity()` bytes, with a length of valid
/// bytes (`len()`), like a `Vec<u8>` that never reallocates.
///
/// Dropping it returns the memory to its pool. [`PoolBuf::freeze`] turns it into
/// [`bytes::Bytes`] over the same memory; the memory returns to the pool when the last clone
/// of those `Bytes` is dropped.
///
/// It implements tokio-uring's `IoBuf`/`IoBufMut` so reads can fill it in place.
pub struct PoolBuf {
    /// Always `Some` until `Drop` takes it.
    block: Option<AlignedPages>,
    len: usize,
    home: Arc<PoolInner>,
}

impl PoolBuf {
    fn block(&self) -> &AlignedPages {
        self.block.as_ref().expect("a live PoolBuf holds its block")
    }

    fn block_mut(&mut self) -> &mut AlignedPages {
        self.block.as_mut().expect("a live PoolBuf holds its block")
    }

    /// The number of valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's size in bytes (a multiple of 4096).
    pub fn capacity(&self) -> usize {
        self.block().capacity()
    }

    /// Set the number of valid bytes. Every byte of the buffer is always initialised (zeroed at
    /// allocation or written since), so this is safe for any `len <= capacity()`.
    ///
    /// # Panics
    /// If `len > capacity()` (a caller bug).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "set_len beyond the buffer capacity");
        self.len = len;
    }

    /// The valid bytes, `len()` long.
    pub fn as_slice(&self) -> &[u8] {
        self.block().bytes().get(..self.len).unwrap_or_default()
    }

    /// The whole buffer, `capacity()` long, for writing into (the std read path); follow with
    /// [`PoolBuf::set_len`].
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.block_mut().bytes_mut()
    }

    /// A handle to the pool this buffer returns to.
    pub fn pool(&self) -> BufPool {
        BufPool {
            inner: Arc::clone(&self.home),
        }
    }

    /// Turn the first `len` bytes into [`Bytes`] without copying.
    ///
    /// The `Bytes` (and all its clones and slices) borrow this buffer's memory; when the last
    /// of them drops, the buffer goes back to the pool.
    ///
    /// # Panics
    /// If `len > capacity()` (a caller bug).
    pub fn freeze(mut self, len: usize) -> Bytes {
        self.set_len(len);
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.home.give_back(block);
        }
    }
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: `stable_ptr` points into the boxed pages, a heap allocation owned by this `PoolBuf`
// that neither moves nor is freed while the `PoolBuf` exists (moving the `PoolBuf` moves only
// the `Box` pointer). `bytes_init() <= bytes_total()` always holds (`set_len` enforces it), and
// all `bytes_total()` bytes are initialised.
#[cfg(target_os = "linux")]
unsafe impl tokio_uring::buf::IoBuf for PoolBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.block().as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; the mutable pointer is derived from `&mut self`, so the runtime holding
// the buffer by value is its only user. `set_init` only records a length the kernel reported as
// written, clamped to the capacity, and every byte is initialised regardless.
#[cfg(target_os = "linux")]
unsafe impl tokio_uring::buf::IoBufMut for PoolBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.block_mut().as_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        if self.len < pos {
            self.len = pos.min(self.capacity());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_pages_and_are_aligned() {
        let pool = BufPool::new(3, 5000);
        assert_eq!(pool.block_size(), 8192);
        assert_eq!(pool.count(), 3);
        let mut held = Vec::new();
        while let Some(buf) = pool.try_acquire() {
            assert_eq!(buf.capacity(), 8192);
            assert_eq!(buf.len(), 0);
            assert_eq!(buf.block().as_ptr() as usize % BUF_ALIGN_BYTES, 0);
            assert!(
                buf.block().bytes().iter().all(|&b| b == 0),
                "a new buffer is zeroed"
            );
            held.push(buf);
        }
        assert_eq!(held.len(), 3, "the pool never lends more than count");
        assert_eq!(BufPool::new(1, 0).block_size(), 4096);
        assert_eq!(BufPool::new(1, 4096).block_size(), 4096);
    }

    #[test]
    fn buffers_return_on_drop_and_the_pool_never_exceeds_count() {
        let pool = BufPool::new(2, 4096);
        let a = pool.try_acquire().expect("first");
        let b = pool.try_acquire().expect("second");
        assert!(pool.try_acquire().is_none());
        assert_eq!(pool.available(), 0);
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.try_acquire().expect("the dropped buffer came back");
        assert!(pool.try_acquire().is_none());
        drop(b);
        drop(c);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn freeze_shares_memory_and_returns_after_the_last_clone() {
        let pool = BufPool::new(1, 4096);
        let mut buf = pool.try_acquire().expect("free");
        buf.as_mut_slice()[..5].copy_from_slice(b"hello");
        let ptr = buf.block().as_ptr();
        let frozen = buf.freeze(5);
        assert_eq!(&frozen[..], b"hello");
        assert_eq!(frozen.as_ptr(), ptr, "no copy");
        let clone = frozen.slice(1..3);
        assert_eq!(&clone[..], b"el");
        drop(frozen);
        assert_eq!(pool.available(), 0, "a clone still holds the buffer");
        drop(clone);
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn set_len_and_slices() {
        let pool = BufPool::new(1, 4096);
        let mut buf = pool.try_acquire().expect("free");
        assert_eq!(buf.as_mut_slice().len(), 4096);
        buf.as_mut_slice()[..3].copy_from_slice(&[1, 2, 3]);
        buf.set_len(3);
        assert_eq!(buf.as_slice(), &[1, 2, 3]);
        assert_eq!(buf.pool().count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acquire_waits_until_a_buffer_is_returned() {
        let pool = BufPool::new(1, 4096);
        let held = pool.acquire().await;
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire().await.capacity() })
        };
        // The waiter cannot finish while the only buffer is held.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Return it from a plain OS thread: the pool works across runtimes and threads.
        std::thread::spawn(move || drop(held))
            .join()
            .expect("thread");
        assert_eq!(waiter.await.expect("task"), 4096);
        assert_eq!(pool.available(), 1);
    }
}
