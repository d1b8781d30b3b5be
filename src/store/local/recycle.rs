//! Read buffers for the local store: each read hands out a [`Bytes`] whose memory comes back here
//! when its last view is dropped, so a stream of reads (an export) reuses warm memory instead of
//! faulting in and zeroing fresh pages from the kernel for every range.
//!
//! Idle buffers are bounded ([`IDLE_BYTES`] in all, at most [`IDLE_BUFFERS`] of them, none over
//! [`MAX_BUFFER_BYTES`]); a buffer that does not fit is freed. Buffers in use are the caller's, as with any `Bytes`.
//!
//! Buffers are 4096-byte aligned, so a reader that writes them to a file opened with `O_DIRECT`
//! (an export onto a drive) can do so without copying them first.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::aligned::{AlignedPages, PAGE_BYTES};

/// A read buffer: whole aligned pages, of which the first `len` bytes are the read's.
pub(super) struct Buffer {
    pages: AlignedPages,
    len: usize,
}

impl Buffer {
    fn zeroed(len: usize) -> Self {
        Buffer {
            pages: AlignedPages::zeroed(len.div_ceil(PAGE_BYTES) * PAGE_BYTES),
            len,
        }
    }

    fn capacity(&self) -> usize {
        self.pages.capacity()
    }

    /// The first `len` bytes, for the read to fill.
    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.pages.bytes_mut()[..self.len]
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.pages.bytes()[..self.len]
    }
}

/// The most memory, in bytes, kept idle for reuse: an export's ranges in flight (64 MiB by
/// default) come back here while the next ones are read, and a smaller pool let buffers be freed
/// and allocated again all the time (about 4 % of an export of 256 KiB blobs, measured).
pub(super) const IDLE_BYTES: usize = 64 << 20;

/// The most buffers kept idle (each `take` scans them).
pub(super) const IDLE_BUFFERS: usize = 256;

/// Larger buffers are never kept (an export range is at most 4 MiB).
pub(super) const MAX_BUFFER_BYTES: usize = 4 << 20;

/// A pool of idle read buffers (module docs).
#[derive(Debug, Default)]
pub(super) struct Recycler {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Buffer>,
    bytes: usize,
}

impl Recycler {
    /// A buffer of `len` bytes, initialised but of unspecified content (an earlier read's bytes
    /// or zeros): the caller overwrites all of it or drops it. An idle one of at least `len` and
    /// at most twice that capacity when there is one, else a new, zeroed one.
    pub(super) fn take(&self, len: usize) -> Buffer {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let found = idle
                .buffers
                .iter()
                .rposition(|b| b.capacity() >= len && b.capacity() / 2 <= len);
            found.map(|i| {
                let b = idle.buffers.swap_remove(i);
                idle.bytes -= b.capacity();
                b
            })
        };
        match reused {
            Some(mut b) => {
                b.len = len;
                b
            }
            None => Buffer::zeroed(len),
        }
    }

    /// `buf` (its first `len` bytes) as `Bytes` that give the buffer back to `home` when the
    /// last view is dropped.
    pub(super) fn freeze(home: &Arc<Recycler>, buf: Buffer) -> Bytes {
        Bytes::from_owner(Recycled {
            buf: Some(buf),
            home: Arc::clone(home),
        })
    }

    fn give(&self, buf: Buffer) {
        let cap = buf.capacity();
        if cap == 0 || cap > MAX_BUFFER_BYTES {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.bytes + cap <= IDLE_BYTES && idle.buffers.len() < IDLE_BUFFERS {
            idle.bytes += cap;
            idle.buffers.push(buf);
        }
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

/// The owner behind a recycled `Bytes`.
struct Recycled {
    buf: Option<Buffer>,
    home: Arc<Recycler>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], Buffer::as_ref)
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.home.give(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_read_buffer_is_reused_aligned_and_idle_memory_is_bounded() {
        let home = Arc::new(Recycler::default());
        let mut first = home.take(5000);
        assert_eq!(
            first.as_mut_slice(),
            &[0; 5000][..],
            "a new buffer is zeroed"
        );
        first.as_mut_slice().fill(7);
        let bytes = Recycler::freeze(&home, first);
        let ptr = bytes.as_ptr();
        assert_eq!(ptr as usize % PAGE_BYTES, 0, "aligned for O_DIRECT");
        assert_eq!(bytes.len(), 5000);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(home.idle_bytes(), 0, "a live view keeps the buffer");
        assert_eq!(&view[..], &[7; 10]);
        drop(view);
        assert_eq!(home.idle_bytes(), 8192, "whole pages");
        let mut again = home.take(4500);
        assert_eq!(again.as_mut_slice().as_ptr(), ptr, "the same memory");
        assert_eq!(again.as_mut_slice().len(), 4500, "at the asked length");
        assert_eq!(home.idle_bytes(), 0);
        // Too small a request for a big buffer, or too large a buffer, is not served from idle.
        drop(Recycler::freeze(&home, again));
        let mut small = home.take(100);
        assert_ne!(small.as_mut_slice().as_ptr(), ptr);
        assert_eq!(home.idle_bytes(), 8192);
        drop(Recycler::freeze(&home, home.take(MAX_BUFFER_BYTES + 1)));
        assert_eq!(home.idle_bytes(), 8192);
        // Idle memory never exceeds its bound.
        // 8 KiB were idle: `fits` 4 MiB buffers fit beside them, five more are freed.
        let fits = (IDLE_BYTES - 8192) / MAX_BUFFER_BYTES;
        let many: Vec<Bytes> = (0..fits + 5)
            .map(|_| Recycler::freeze(&home, home.take(MAX_BUFFER_BYTES)))
            .collect();
        drop(many);
        assert_eq!(home.idle_bytes(), fits * MAX_BUFFER_BYTES + 8192);
        assert!(home.idle_bytes() <= IDLE_BYTES);
        // And never more than IDLE_BUFFERS buffers, however small.
        let tiny: Vec<Bytes> = (0..IDLE_BUFFERS * 2)
            .map(|_| Recycler::freeze(&home, home.take(64)))
            .collect();
        drop(tiny);
        assert_eq!(
            home.idle.lock().unwrap().buffers.len(),
            IDLE_BUFFERS,
            "count bound"
        );
    }
}
