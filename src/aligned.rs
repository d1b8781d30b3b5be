//! Page-aligned memory: whole 4096-byte pages, zeroed, for buffers that are read into or written
//! from with `O_DIRECT` (the engine's block buffer pool, the local store's read buffers).
//!
//! This module owns how buffer memory is obtained; it does no I/O and keeps no pools.

/// The alignment, in bytes, of every [`AlignedPages`] start and length.
pub(crate) const PAGE_BYTES: usize = 4096;

/// The memory of one buffer: whole pages, so start and length are 4096-aligned, and always
/// initialised (zero until written), so any prefix may be exposed as `&[u8]`.
///
/// The pages are an anonymous private mapping (`mmap`, through `memmap2`): the kernel hands out
/// zero pages on first touch, so nothing is written at allocation and a pool costs no page
/// faults until a buffer is first used. The global allocator would `memset` an allocation
/// aligned to 4096 (Rust's `alloc_zeroed` only asks `calloc` for alignments up to 16), which
/// faulted in the whole default 64 MiB pool at start-up: about 0.2 s of one core on this
/// project's VM, before the first read.
pub(crate) struct AlignedPages {
    /// `None` for zero pages (`mmap` cannot map nothing).
    map: Option<memmap2::MmapMut>,
}

impl AlignedPages {
    /// Map `size_bytes / 4096` zeroed pages (round `size_bytes` up first for a whole buffer).
    ///
    /// # Panics
    /// Aborts like an allocation failure when the kernel refuses the mapping (out of memory or
    /// address space): not reachable from input data.
    pub(crate) fn zeroed(size_bytes: usize) -> Self {
        let len = size_bytes / PAGE_BYTES * PAGE_BYTES;
        if len == 0 {
            return AlignedPages { map: None };
        }
        match memmap2::MmapMut::map_anon(len) {
            Ok(map) => AlignedPages { map: Some(map) },
            Err(_) => std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(len, PAGE_BYTES)
                    .unwrap_or(std::alloc::Layout::new::<u8>()),
            ),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.bytes().as_ptr()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes_mut().as_mut_ptr()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or_default()
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
        assert_eq!(
            AlignedPages::zeroed(PAGE_BYTES + 100).capacity(),
            PAGE_BYTES
        );
    }
}
