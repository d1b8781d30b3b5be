//! Read buffers for the local store: each read hands out a [`Bytes`] whose memory comes back here
//! when its last view is dropped, so a stream of reads (an export) reuses warm memory instead of
//! faulting in and zeroing fresh pages from the kernel for every range.
//!
//! Idle buffers are bounded ([`IDLE_BYTES`] in all, at most [`IDLE_BUFFERS`] of them, none over
//! [`MAX_BUFFER_BYTES`]); a buffer that does not fit is freed. Buffers in use are the caller's, as with any `Bytes`.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The most memory, in bytes, kept idle for reuse.
pub(super) const IDLE_BYTES: usize = 16 << 20;

/// The most buffers kept idle (each `take` scans them).
pub(super) const IDLE_BUFFERS: usize = 64;

/// Larger buffers are never kept (an export range is at most 4 MiB).
pub(super) const MAX_BUFFER_BYTES: usize = 4 << 20;

/// A pool of idle read buffers (module docs).
#[derive(Debug, Default)]
pub(super) struct Recycler {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Recycler {
    /// A zeroed buffer of `len` bytes: an idle one of at least `len` and at most twice that
    /// capacity when there is one, else a new one.
    pub(super) fn take(&self, len: usize) -> Vec<u8> {
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
                b.clear();
                b.resize(len, 0);
                b
            }
            None => vec![0; len],
        }
    }

    /// `buf` (its first `len` bytes) as `Bytes` that give the buffer back to `home` when the
    /// last view is dropped.
    pub(super) fn freeze(home: &Arc<Recycler>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Recycled {
            buf,
            home: Arc::clone(home),
        })
    }

    fn give(&self, buf: Vec<u8>) {
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
    buf: Vec<u8>,
    home: Arc<Recycler>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        self.home.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_read_buffer_is_reused_zeroed_and_idle_memory_is_bounded() {
        let home = Arc::new(Recycler::default());
        let mut first = home.take(1000);
        first.fill(7);
        let ptr = first.as_ptr();
        let bytes = Recycler::freeze(&home, first);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(home.idle_bytes(), 0, "a live view keeps the buffer");
        assert_eq!(&view[..], &[7; 10]);
        drop(view);
        assert_eq!(home.idle_bytes(), 1000);
        let again = home.take(900);
        assert_eq!(again.as_ptr(), ptr, "the same memory");
        assert_eq!(again, vec![0; 900], "zeroed, at the asked length");
        assert_eq!(home.idle_bytes(), 0);
        // Too small a request for a big buffer, or too large a buffer, is not served from idle.
        drop(Recycler::freeze(&home, again));
        let small = home.take(100);
        assert_ne!(small.as_ptr(), ptr);
        assert_eq!(home.idle_bytes(), 1000);
        drop(Recycler::freeze(&home, vec![0; MAX_BUFFER_BYTES + 1]));
        // Idle memory never exceeds its bound.
        let many: Vec<Bytes> = (0..8)
            .map(|_| Recycler::freeze(&home, home.take(MAX_BUFFER_BYTES)))
            .collect();
        drop(many);
        // 1,000 bytes were idle: three 4 MiB buffers fit under 16 MiB, the other five are freed.
        assert_eq!(home.idle_bytes(), 3 * MAX_BUFFER_BYTES + 1000);
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
