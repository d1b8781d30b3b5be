//! Page-aligned memory: whole 4096-byte pages, zeroed at allocation, for buffers that are read
//! into or written from with `O_DIRECT` (the engine's block buffer pool, the local store's read
//! buffers).
//!
//! This module owns the one `unsafe` view of pages as bytes; it does no I/O and keeps no pools.

#![allow(unsafe_code)]

/// The alignment, in bytes, of every [`AlignedPages`] start and length.
pub(crate) const PAGE_BYTES: usize = 4096;

/// One 4096-byte, 4096-aligned unit of buffer memory.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE_BYTES]);

/// The memory of one buffer: whole pages, so start and length are 4096-aligned. Always fully
/// initialised (zeroed at allocation), so any prefix may be exposed as `&[u8]`.
pub(crate) struct AlignedPages {
    pages: Box<[Page]>,
}

impl AlignedPages {
    /// Allocate `size_bytes / 4096` zeroed pages (round `size_bytes` up first for a whole buffer). The allocator's zeroed memory (`calloc`, fresh
    /// pages from the kernel for buffer-sized allocations) is not written here, so a pool costs
    /// no page faults until a buffer is first used: a `vec!` of pages would write, and fault in,
    /// the whole pool at start-up (160 ms for the default 64 MiB on this project's VM).
    pub(crate) fn zeroed(size_bytes: usize) -> Self {
        let count = size_bytes / PAGE_BYTES;
        if count == 0 {
            return AlignedPages {
                pages: Box::default(),
            };
        }
        let layout = std::alloc::Layout::array::<Page>(count).expect("buffer size overflows");
        // SAFETY: `layout` has a non-zero size (`count` > 0 pages of 4096 bytes).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let pages = std::ptr::slice_from_raw_parts_mut(ptr.cast::<Page>(), count);
        // SAFETY: `ptr` is a fresh allocation from the global allocator with the layout of
        // `[Page; count]`, which is what `Box<[Page]>` frees it with; all-zero bytes are a valid
        // `Page` (a plain byte array); nothing else owns the allocation.
        let pages = unsafe { Box::from_raw(pages) };
        AlignedPages { pages }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.pages.len() * PAGE_BYTES
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.pages.as_ptr().cast::<u8>()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.pages.as_mut_ptr().cast::<u8>()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `Page` is `repr(C)` around a `[u8; 4096]` whose size equals its alignment, so
        // the boxed slice is `capacity()` contiguous, initialised bytes with no padding, and the
        // shared borrow of `self` keeps them alive and unaliased by `&mut` for the result's life.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.capacity()) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let capacity = self.capacity();
        // SAFETY: as in `bytes`; the exclusive borrow of `self` makes the result the only
        // reference to this memory for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), capacity) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_aligned_zeroed_and_whole() {
        let mut p = AlignedPages::zeroed(3 * PAGE_BYTES);
        assert_eq!(p.capacity(), 3 * PAGE_BYTES);
        assert_eq!(p.as_ptr() as usize % PAGE_BYTES, 0);
        assert!(p.bytes().iter().all(|&b| b == 0));
        p.bytes_mut()[PAGE_BYTES] = 7;
        assert_eq!(p.bytes()[PAGE_BYTES], 7);
        assert_eq!(AlignedPages::zeroed(100).capacity(), 0, "whole pages only");
    }
}
