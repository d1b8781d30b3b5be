//! Block hashing: per-block MD5 and CRC32C on a rayon pool, and zero-page detection.
//!
//! This module owns the CPU side of the copy path: the pure [`hash_block`] and [`hash_blocks`],
//! the [`HashPool`] that runs them off the tokio workers (style.md §5 ASYNC: "never block a tokio
//! worker"), and [`is_zero`] / [`nonzero_page_ranges`], which find the 512-byte pages of a page
//! blob that hold data (only those go into a `PageRangeList` and get uploaded;
//! azure-import-export.md §1.3).
//!
//! MD5 is the copy path's main CPU cost, and one MD5 stream is sequential. Blocks are
//! independent, though, so the pool hashes the blocks waiting for it together, one per SIMD lane
//! (`md5-many`: 16 lanes with AVX-512, 8 with AVX2, 4 with NEON; blocks of different lengths
//! share lanes for their common prefix). On this project's machine kind, 16 blocks hash at about
//! 9 × the rate of one md-5 stream. Batches form by themselves: a pool thread takes every
//! block queued when it becomes free, so under load the batches are wide and when the pool keeps
//! up each block is hashed alone at once; no block ever waits for others to arrive.
//!
//! It must not do I/O and must not keep any state between blocks (the whole-file MD5 is
//! sequential and lives with the pipeline that orders blocks).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use md5_many::{Digest as _, Md5, Md5Many};
use tokio::sync::oneshot;

use crate::digest::Md5Digest;

/// The size in bytes of a page-blob page: page ranges start and end on this boundary.
pub const PAGE_SIZE_BYTES: usize = 512;

/// The most blocks one pool thread hashes in one batch: two rounds of 16 AVX-512 lanes, so a
/// batch is wide enough for every SIMD width and short enough that one thread does not take all
/// the work while the others idle.
pub const MAX_BATCH_BLOCKS: usize = 32;

/// Below this many blocks a batch is hashed one block at a time: a batch of two or three blocks
/// runs slower in SIMD lanes than one after another (measured on AVX-512).
const MIN_SIMD_BATCH_BLOCKS: usize = 4;

/// The digests of one block: MD5 (what Azure verifies as `Content-MD5` and the manifest records
/// as the `Block`/`PageRange` `Hash`, azure-import-export.md §1.3, §1.5) and CRC32C (Castagnoli;
/// our own fast check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockDigest {
    /// The MD5 of the block's bytes.
    pub md5: Md5Digest,
    /// The CRC32C (Castagnoli polynomial) of the block's bytes.
    pub crc32c: u32,
}

/// Hash one block: MD5 and CRC32C of `data`, on the calling thread.
///
/// CPU cost is about 1.1 ms per MiB on one core (MD5 dominates), so call it from a rayon thread
/// ([`HashPool`]), never directly on a tokio worker for large blocks.
pub fn hash_block(data: &[u8]) -> BlockDigest {
    BlockDigest {
        md5: Md5Digest(md5_many::md5(data)),
        crc32c: crc32c::crc32c(data),
    }
}

/// Hash independent blocks on the calling thread, their MD5s side by side in SIMD lanes; the
/// result is in the order of `blocks` and equals [`hash_block`] of each.
///
/// Fewer than 4 blocks are hashed one after another (faster than so few lanes).
pub fn hash_blocks(blocks: &[&[u8]]) -> Vec<BlockDigest> {
    static LANES: std::sync::OnceLock<Md5Many> = std::sync::OnceLock::new();
    let mut md5s = vec![[0u8; 16]; blocks.len()];
    if blocks.len() >= MIN_SIMD_BATCH_BLOCKS {
        LANES.get_or_init(Md5Many::new).hash_many(blocks, &mut md5s);
    } else {
        for (out, block) in md5s.iter_mut().zip(blocks) {
            *out = md5_many::md5(block);
        }
    }
    blocks
        .iter()
        .zip(md5s)
        .map(|(block, md5)| BlockDigest {
            md5: Md5Digest(md5),
            crc32c: crc32c::crc32c(block),
        })
        .collect()
}

/// A rayon thread pool for block hashing, batching the blocks that wait for it (module docs).
///
/// The pool is bounded by its thread count; the number of blocks waiting is bounded by the
/// caller (each block lives in a pool buffer, see `engine::buf`).
#[derive(Debug)]
pub struct HashPool {
    pool: rayon::ThreadPool,
    /// Blocks waiting to be hashed, with where to send each digest.
    queue: Arc<Mutex<VecDeque<Request>>>,
}

#[derive(Debug)]
struct Request {
    data: Bytes,
    reply: oneshot::Sender<BlockDigest>,
}

/// The failure to start a [`HashPool`]'s threads.
#[derive(Debug, thiserror::Error)]
#[error("start a hash pool of {threads} threads")]
pub struct HashPoolError {
    /// The requested thread count.
    pub threads: usize,
    /// Why rayon could not start the threads.
    #[source]
    pub source: rayon::ThreadPoolBuildError,
}

impl HashPool {
    /// Start a pool of `threads` hashing threads; `None` means one per available core.
    ///
    /// # Errors
    /// [`HashPoolError`] when the OS refuses to create the threads.
    pub fn new(threads: Option<usize>) -> Result<Self, HashPoolError> {
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("drivecopy-hash-{i}"))
            .build()
            .map_err(|source| HashPoolError { threads, source })?;
        Ok(HashPool {
            pool,
            queue: Arc::default(),
        })
    }

    /// The number of hashing threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Hash `data` on the pool, batched with the other blocks waiting then, and wait for the
    /// result without blocking the caller's thread.
    ///
    /// `data` is a zero-copy view of a pool buffer (`PoolBuf::freeze`); the pool drops its clone
    /// when the hash is done.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the hash already queued; its result is discarded.
    pub async fn digest(&self, data: Bytes) -> BlockDigest {
        let (reply, rx) = oneshot::channel();
        lock(&self.queue).push_back(Request { data, reply });
        // One job per block, so no block is ever left queued; a job that finds the queue
        // emptied by an earlier one returns at once.
        let queue = Arc::clone(&self.queue);
        self.pool.spawn(move || hash_queued(&queue));
        rx.await.expect(
            "rayon aborts the process when a spawned job panics, so every block is answered",
        )
    }

    /// Run `work` on the pool and wait for its result without blocking the caller's thread.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the work already queued; its result is discarded.
    pub async fn run<R, F>(&self, work: F) -> R
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            // The receiver is gone only if the caller stopped waiting; nothing to do then.
            let _ = tx.send(work());
        });
        rx.await
            .expect("rayon aborts the process when a spawned job panics, so every job sends")
    }
}

/// Take up to [`MAX_BATCH_BLOCKS`] waiting blocks, hash them together and answer each.
fn hash_queued(queue: &Mutex<VecDeque<Request>>) {
    let batch: Vec<Request> = {
        let mut q = lock(queue);
        let n = q.len().min(MAX_BATCH_BLOCKS);
        q.drain(..n).collect()
    };
    if batch.is_empty() {
        return;
    }
    let blocks: Vec<&[u8]> = batch.iter().map(|r| r.data.as_ref()).collect();
    let digests = hash_blocks(&blocks);
    drop(blocks);
    for (request, digest) in batch.into_iter().zip(digests) {
        // The receiver is gone only if the caller stopped waiting; nothing to do then.
        let _ = request.reply.send(digest);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The MD5 of a whole blob, computed from its pieces as they finish in any order.
///
/// MD5 is sequential, so pieces that arrive ahead of their turn wait (as zero-copy `Bytes` views
/// of their pool buffers) until every piece before them is hashed; at most one hashing run per
/// blob is on the pool at a time. Memory stays bounded by the buffer pool: a piece waits only
/// for pieces that already hold a buffer, since a blob's pieces take buffers in order.
/// Used for the whole-blob `Content-MD5` (`x-ms-blob-content-md5` on Put Block List) that
/// AzCopy's `--put-md5` sets and `--check-md5` checks on download.
#[derive(Debug)]
pub struct OrderedMd5 {
    state: Mutex<Ordered>,
}

#[derive(Debug)]
struct Ordered {
    /// The index of the next piece to hash.
    next: usize,
    /// The pieces count.
    total: usize,
    /// Pieces that arrived ahead of their turn, by index.
    waiting: std::collections::BTreeMap<usize, Bytes>,
    /// The running hash; `None` while a run is on the pool.
    md5: Option<Md5>,
}

impl OrderedMd5 {
    /// A hash over `pieces` pieces, indexed `0..pieces` in blob order.
    pub fn new(pieces: usize) -> Self {
        OrderedMd5 {
            state: Mutex::new(Ordered {
                next: 0,
                total: pieces,
                waiting: std::collections::BTreeMap::new(),
                md5: Some(Md5::new()),
            }),
        }
    }

    /// Add piece `index`; hashes it (and any waiting pieces after it) on `pool` when its turn
    /// has come, otherwise keeps it until then. An index fed twice or out of range is ignored.
    pub async fn feed(&self, pool: &HashPool, index: usize, data: Bytes) {
        let mut run = self.with_state(|s| {
            if index >= s.next && index < s.total {
                s.waiting.entry(index).or_insert(data);
            }
            s.take_run()
        });
        while let Some((mut md5, pieces)) = run {
            let count = pieces.len();
            let md5 = pool
                .run(move || {
                    for piece in &pieces {
                        md5.update(piece);
                    }
                    md5
                })
                .await;
            run = self.with_state(|s| {
                s.md5 = Some(md5);
                s.next += count;
                s.take_run()
            });
        }
    }

    /// The MD5 of the whole blob, once every piece was fed and hashed; `None` before.
    pub fn finish(&self) -> Option<Md5Digest> {
        self.with_state(|s| {
            if s.next != s.total {
                return None;
            }
            s.md5.take().map(|m| Md5Digest(m.finalize().into()))
        })
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut Ordered) -> T) -> T {
        f(&mut lock(&self.state))
    }
}

impl Ordered {
    /// The running hash and the pieces whose turn has come, when no run is on the pool.
    fn take_run(&mut self) -> Option<(Md5, Vec<Bytes>)> {
        if self.md5.is_none() || !self.waiting.contains_key(&self.next) {
            return None;
        }
        let mut pieces = Vec::new();
        let mut i = self.next;
        while let Some(piece) = self.waiting.remove(&i) {
            pieces.push(piece);
            i += 1;
        }
        self.md5.take().map(|md5| (md5, pieces))
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether every byte of `data` is zero (true for an empty slice).
///
/// Compares a word at a time (about memory bandwidth), for skipping the zero pages of page
/// blobs.
pub fn is_zero(data: &[u8]) -> bool {
    const WORD: usize = std::mem::size_of::<u128>();
    let mut chunks = data.chunks_exact(WORD * 4);
    let wide_zero = chunks.by_ref().all(|chunk| {
        chunk.chunks_exact(WORD).fold(0u128, |acc, w| {
            acc | u128::from_ne_bytes(w.try_into().unwrap_or([0xFF; WORD]))
        }) == 0
    });
    wide_zero && chunks.remainder().iter().all(|&b| b == 0)
}

/// The byte ranges of `data` that hold non-zero `page_bytes`-sized pages, as absolute offsets
/// (`base_offset + index`), adjacent non-zero pages merged into one range.
///
/// For page blobs use [`PAGE_SIZE_BYTES`] (512): a `PageRangeList` records exactly these ranges
/// (azure-import-export.md §1.3: offsets and lengths are multiples of 512, lengths ≤ 4 MB).
/// Ranges never cross the ends of `data`, so calling this once per block of at most 4 MiB keeps
/// every range within the length limit. A final partial page (only in a file whose length is
/// not a multiple of 512, which page blobs forbid) counts as a page ending at the data's end.
/// A `page_bytes` of 0 is treated as 1.
pub fn nonzero_page_ranges(data: &[u8], base_offset: u64, page_bytes: usize) -> Vec<Range<u64>> {
    let page_bytes = page_bytes.max(1);
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut start = base_offset;
    for page in data.chunks(page_bytes) {
        let end = start + page.len() as u64;
        if !is_zero(page) {
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => ranges.push(start..end),
            }
        }
        start = end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = hash_block(b"123456789");
        assert_eq!(d.crc32c, 0xE306_9283);
        assert_eq!(d.md5.to_hex(), "25F9E794323B453885F5181F1B624D0B");
        let empty = hash_block(b"");
        assert_eq!(empty.crc32c, 0);
        assert_eq!(empty.md5.to_hex(), "D41D8CD98F00B204E9800998ECF8427E");
        assert_eq!(hash_block(b"123456789"), reference(b"123456789"));
        let abc = hash_block(b"abc");
        assert_eq!(abc.md5.to_hex(), "900150983CD24FB0D6963F7D28E17F72");
        assert_eq!(abc.crc32c, 0x364B_3FB7);
    }

    #[test]
    fn pool_digest_matches_the_pure_function() {
        let pool = HashPool::new(Some(2)).expect("pool");
        assert_eq!(pool.threads(), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let expect = hash_block(&data);
        let got = rt.block_on(pool.digest(Bytes::from(data)));
        assert_eq!(got, expect);
    }

    /// The reference: md-5 and crc32c, one block at a time.
    fn reference(data: &[u8]) -> BlockDigest {
        use md5::Digest as _;
        BlockDigest {
            md5: Md5Digest(md5::Md5::digest(data).into()),
            crc32c: crc32c::crc32c(data),
        }
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn batches_of_every_width_and_mixed_lengths_match_md5_block_by_block() {
        // Equal lengths (the SIMD kernels' fast path), the 64-byte block edges, empty blocks,
        // and widths from 1 to past two rounds of 16 lanes.
        let lengths = [
            0usize,
            1,
            55,
            56,
            63,
            64,
            65,
            119,
            120,
            128,
            4096,
            262_144,
            1 << 20,
        ];
        for width in [1usize, 2, 3, 4, 5, 8, 15, 16, 17, 24, 32, 33] {
            for same in [true, false] {
                let blocks: Vec<Vec<u8>> = (0..width)
                    .map(|i| {
                        let len = if same {
                            262_144 + 17
                        } else {
                            lengths[(i * 7 + width) % lengths.len()]
                        };
                        noise(len, (width * 100 + i) as u64)
                    })
                    .collect();
                let views: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                let got = hash_blocks(&views);
                let want: Vec<BlockDigest> = views.iter().map(|b| reference(b)).collect();
                assert_eq!(got, want, "width {width}, equal lengths {same}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_batch_matches_md5(lengths in proptest::collection::vec(0usize..20_000, 0..40), seed in 0u64..u64::MAX) {
            let blocks: Vec<Vec<u8>> = lengths.iter().enumerate().map(|(i, &n)| noise(n, seed ^ i as u64)).collect();
            let views: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            let want: Vec<BlockDigest> = views.iter().map(|b| reference(b)).collect();
            proptest::prop_assert_eq!(hash_blocks(&views), want);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loaded_pool_answers_every_block_with_its_own_digest() {
        let pool = std::sync::Arc::new(HashPool::new(Some(2)).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300usize {
            let pool = pool.clone();
            tasks.spawn(async move {
                let data = Bytes::from(noise(1000 + (i % 7) * 4096, i as u64));
                (pool.digest(data.clone()).await, reference(&data))
            });
        }
        let mut answered = 0;
        while let Some(done) = tasks.join_next().await {
            let (got, want) = done.unwrap();
            assert_eq!(got, want);
            answered += 1;
        }
        assert_eq!(answered, 300);
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4096]));
        for len in [1usize, 63, 64, 65, 4095] {
            for pos in [0, len / 2, len - 1] {
                let mut v = vec![0u8; len];
                v[pos] = 1;
                assert!(!is_zero(&v), "len {len} pos {pos}");
            }
        }
    }

    #[test]
    fn page_ranges_merge_adjacent_pages() {
        let mut data = vec![0u8; 512 * 6 + 100];
        data[0] = 1; // page 0
        data[512 + 511] = 1; // page 1
        data[512 * 3 + 5] = 9; // page 3
        data[512 * 6 + 99] = 2; // the partial last page
        let ranges = nonzero_page_ranges(&data, 1 << 20, PAGE_SIZE_BYTES);
        let b = 1u64 << 20;
        assert_eq!(
            ranges,
            vec![b..b + 1024, b + 1536..b + 2048, b + 3072..b + 3172]
        );
        assert!(nonzero_page_ranges(&[0; 2048], 0, 512).is_empty());
        assert_eq!(nonzero_page_ranges(&[1; 2048], 512, 512), vec![512..2560]);
        assert!(nonzero_page_ranges(&[], 0, 512).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ordered_md5_is_the_md5_of_the_pieces_in_order_whatever_order_they_arrive() {
        let pool = std::sync::Arc::new(HashPool::new(Some(2)).unwrap());
        let pieces: Vec<Bytes> = (0..9u8)
            .map(|i| Bytes::from(vec![i.wrapping_mul(37); 1000 + usize::from(i)]))
            .collect();
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let ordered = std::sync::Arc::new(OrderedMd5::new(pieces.len()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in [4usize, 8, 0, 2, 1, 7, 3, 6, 5] {
            let (pool, hasher, piece) = (pool.clone(), ordered.clone(), pieces[i].clone());
            tasks.spawn(async move { hasher.feed(&pool, i, piece).await });
            if i == 2 {
                assert_eq!(ordered.finish(), None, "not every piece is in yet");
            }
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(ordered.finish(), Some(Md5Digest::of(&whole)));
    }

    #[tokio::test]
    async fn ordered_md5_of_nothing_and_of_a_missing_piece() {
        let pool = HashPool::new(Some(1)).unwrap();
        assert_eq!(OrderedMd5::new(0).finish(), Some(Md5Digest::of(b"")));
        let gap = OrderedMd5::new(3);
        gap.feed(&pool, 0, Bytes::from_static(b"a")).await;
        gap.feed(&pool, 2, Bytes::from_static(b"c")).await;
        gap.feed(&pool, 7, Bytes::from_static(b"x")).await;
        assert_eq!(gap.finish(), None, "piece 1 never came");
        gap.feed(&pool, 1, Bytes::from_static(b"b")).await;
        assert_eq!(gap.finish(), Some(Md5Digest::of(b"abc")));
    }
}
