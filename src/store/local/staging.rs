//! Uncommitted blocks of one blob in [`super::LocalStore`]: a staging data file that blocks are
//! `pwrite`n into at their offset hints, and a persisted index of where each block sits.
//!
//! This module owns the placement bookkeeping ([`StagingIndex`], pure) and the staging files
//! ([`Staging`]). It must not touch committed blobs or their records.
//!
//! # Placement rules
//! - A block id names one content: the last one staged under that id (Azure's last write wins).
//!   The same content may sit at several offsets (content-addressed ids, e.g. a file of zeros);
//!   all those placements stay valid.
//! - A block goes to its offset hint when that range overlaps no other live or in-flight block
//!   (or exactly replaces a placement of the same id); otherwise, and without a hint, it is
//!   appended after the highest used offset. Placing is decided under a short lock; the data
//!   write itself runs outside it, so concurrent stages of one blob write in parallel.
//! - The index file starts with the blob name (JSON string) and then has one JSON line per
//!   completed stage; it is replayed on open, skipping a torn last line and entries past the end
//!   of the data file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::digest::Md5Digest;
use crate::store::{BlockId, MAX_UNCOMMITTED_BLOCKS};

/// One completed stage, as persisted in the index file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LogEntry {
    /// Base64 block id.
    pub id: String,
    /// Byte offset in the staging data file.
    pub off: u64,
    /// Length in bytes.
    pub len: u64,
    /// MD5 of the block's bytes.
    pub md5: Md5Digest,
}

/// The current content of one block id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    /// Length in bytes.
    pub len: u64,
    /// MD5 of the bytes.
    pub md5: Md5Digest,
    /// Offsets in the staging file holding these bytes (at least one).
    pub offsets: BTreeSet<u64>,
    /// Order of the last stage of this id (for listing in staging order).
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    id: BlockId,
    len: u64,
    /// `false` while the data write is in flight.
    done: bool,
}

/// Why a block cannot be staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The id's length differs from the blob's other block ids.
    IdLength {
        /// The blob's id length.
        expected: usize,
    },
    /// The blob already holds [`MAX_UNCOMMITTED_BLOCKS`] distinct ids.
    TooManyBlocks,
}

/// Where every uncommitted block of one blob sits in the staging data file.
#[derive(Debug, Default)]
pub(crate) struct StagingIndex {
    blocks: HashMap<BlockId, BlockEntry>,
    placements: BTreeMap<u64, Placement>,
    end: u64,
    seq: u64,
}

impl StagingIndex {
    /// The id length every block of this blob has, if any block is staged or in flight.
    pub fn id_len(&self) -> Option<usize> {
        self.blocks
            .keys()
            .next()
            .map(BlockId::len)
            .or_else(|| self.placements.values().next().map(|p| p.id.len()))
    }

    /// Choose where a block of `len` bytes goes and reserve that range.
    ///
    /// # Errors
    /// A [`Refusal`] for a mismatched id length or too many blocks.
    pub fn reserve(&mut self, id: &BlockId, len: u64, hint: Option<u64>) -> Result<u64, Refusal> {
        if let Some(expected) = self.id_len() {
            if expected != id.len() {
                return Err(Refusal::IdLength { expected });
            }
        }
        if !self.blocks.contains_key(id) && self.blocks.len() >= MAX_UNCOMMITTED_BLOCKS {
            return Err(Refusal::TooManyBlocks);
        }
        let offset = match hint {
            Some(h) if self.hint_is_free(id, h, len) => h,
            _ => self.end,
        };
        // Replacing a placement of the same id at the same offset: that copy is about to change.
        if let Some(old) = self.placements.remove(&offset) {
            self.forget_offset(&old.id, offset);
        }
        self.placements.insert(
            offset,
            Placement {
                id: id.clone(),
                len,
                done: false,
            },
        );
        self.end = self.end.max(offset.saturating_add(len));
        Ok(offset)
    }

    fn hint_is_free(&self, id: &BlockId, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if let Some((&off, p)) = self.placements.range(..=start).next_back() {
            let same_slot = off == start && p.id == *id && p.done;
            if !same_slot && (off == start || off.saturating_add(p.len) > start) {
                return false;
            }
        }
        !self.other_starts_within(start, end)
    }

    /// Whether a placement starts strictly inside `(start, end)`.
    fn other_starts_within(&self, start: u64, end: u64) -> bool {
        start
            .checked_add(1)
            .is_some_and(|s| self.placements.range(s..end).next().is_some())
    }

    fn forget_offset(&mut self, id: &BlockId, offset: u64) {
        if let Some(entry) = self.blocks.get_mut(id) {
            entry.offsets.remove(&offset);
            if entry.offsets.is_empty() {
                self.blocks.remove(id);
            }
        }
    }

    /// Release a reservation whose data write failed.
    pub fn cancel(&mut self, offset: u64) {
        if self.placements.get(&offset).is_some_and(|p| !p.done) {
            self.placements.remove(&offset);
        }
    }

    /// Record a completed stage: `id` now names these bytes (`len`, `md5`) at `offset`. Other
    /// placements of `id` with different bytes are dropped.
    pub fn complete(&mut self, id: &BlockId, offset: u64, len: u64, md5: Md5Digest) {
        self.seq += 1;
        self.placements.insert(
            offset,
            Placement {
                id: id.clone(),
                len,
                done: true,
            },
        );
        self.end = self.end.max(offset.saturating_add(len));
        let same = self
            .blocks
            .get(id)
            .is_some_and(|e| e.len == len && e.md5 == md5);
        if !same {
            if let Some(old) = self.blocks.remove(id) {
                for off in old.offsets {
                    if off != offset
                        && self
                            .placements
                            .get(&off)
                            .is_some_and(|p| p.id == *id && p.done)
                    {
                        self.placements.remove(&off);
                    }
                }
            }
        }
        let entry = self.blocks.entry(id.clone()).or_insert_with(|| BlockEntry {
            len,
            md5,
            offsets: BTreeSet::new(),
            seq: 0,
        });
        entry.offsets.insert(offset);
        entry.seq = self.seq;
    }

    /// Replay one persisted entry; entries past `file_len` (torn writes) are skipped.
    pub fn replay(&mut self, entry: &LogEntry, file_len: u64) {
        let Ok(id) = BlockId::from_base64(&entry.id) else {
            return;
        };
        if entry.len == 0
            || entry
                .off
                .checked_add(entry.len)
                .is_none_or(|end| end > file_len)
        {
            return;
        }
        if self.id_len().is_some_and(|l| l != id.len()) {
            return;
        }
        if let Some(old) = self.placements.remove(&entry.off) {
            self.forget_offset(&old.id, entry.off);
        }
        // Drop placements this entry overlapped: their bytes were overwritten.
        let overlapped: Vec<u64> = self
            .placements
            .range(..entry.off.saturating_add(entry.len))
            .filter(|(&o, p)| o.saturating_add(p.len) > entry.off)
            .map(|(&o, _)| o)
            .collect();
        for o in overlapped {
            if let Some(p) = self.placements.remove(&o) {
                self.forget_offset(&p.id, o);
            }
        }
        self.complete(&id, entry.off, entry.len, entry.md5);
    }

    /// The current content of `id`, if staged.
    pub fn get(&self, id: &BlockId) -> Option<&BlockEntry> {
        self.blocks.get(id)
    }

    /// Uncommitted blocks, each id once, in order of their last stage.
    pub fn listing(&self) -> Vec<(BlockId, u64)> {
        let mut v: Vec<(&BlockId, &BlockEntry)> = self.blocks.iter().collect();
        v.sort_by_key(|(_, e)| e.seq);
        v.into_iter().map(|(id, e)| (id.clone(), e.len)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlockId {
        BlockId::new(vec![n; 4]).unwrap()
    }

    fn md5(n: u8) -> Md5Digest {
        Md5Digest([n; 16])
    }

    #[test]
    fn hints_place_blocks_and_overlaps_append() {
        let mut ix = StagingIndex::default();
        assert_eq!(ix.reserve(&id(1), 100, Some(100)), Ok(100));
        ix.complete(&id(1), 100, 100, md5(1));
        assert_eq!(ix.reserve(&id(2), 100, Some(0)), Ok(0));
        ix.complete(&id(2), 0, 100, md5(2));
        // Overlaps block 1: appended at the end instead.
        assert_eq!(ix.reserve(&id(3), 100, Some(150)), Ok(200));
        // No hint: appended.
        assert_eq!(ix.reserve(&id(4), 10, None), Ok(300));
        ix.cancel(300);
        assert_eq!(ix.reserve(&id(4), 10, Some(310)), Ok(310));
    }

    #[test]
    fn same_content_at_several_offsets_stays_valid() {
        let mut ix = StagingIndex::default();
        for off in [0u64, 100, 200] {
            assert_eq!(ix.reserve(&id(7), 100, Some(off)), Ok(off));
            ix.complete(&id(7), off, 100, md5(0));
        }
        let e = ix.get(&id(7)).unwrap();
        assert_eq!(
            e.offsets.iter().copied().collect::<Vec<_>>(),
            vec![0, 100, 200]
        );
        // New bytes under the same id replace every old copy.
        assert_eq!(ix.reserve(&id(7), 100, Some(300)), Ok(300));
        ix.complete(&id(7), 300, 100, md5(9));
        let e = ix.get(&id(7)).unwrap();
        assert_eq!((e.md5, e.offsets.len()), (md5(9), 1));
        assert_eq!(ix.listing(), vec![(id(7), 100)]);
    }

    #[test]
    fn restaging_in_place_reuses_the_offset() {
        let mut ix = StagingIndex::default();
        ix.reserve(&id(1), 100, Some(0)).unwrap();
        ix.complete(&id(1), 0, 100, md5(1));
        assert_eq!(ix.reserve(&id(1), 100, Some(0)), Ok(0));
        assert!(
            ix.get(&id(1)).is_none(),
            "the old copy is being overwritten"
        );
        ix.complete(&id(1), 0, 100, md5(2));
        assert_eq!(ix.get(&id(1)).unwrap().md5, md5(2));
    }

    #[test]
    fn refuses_mixed_id_lengths() {
        let mut ix = StagingIndex::default();
        ix.reserve(&id(1), 1, None).unwrap();
        let short = BlockId::new(vec![1u8; 3]).unwrap();
        assert_eq!(
            ix.reserve(&short, 1, None),
            Err(Refusal::IdLength { expected: 4 })
        );
    }

    #[test]
    fn replay_skips_torn_entries() {
        let mut ix = StagingIndex::default();
        let e = |n: u8, off, len| LogEntry {
            id: id(n).to_base64(),
            off,
            len,
            md5: md5(n),
        };
        ix.replay(&e(1, 0, 100), 150);
        ix.replay(&e(2, 100, 100), 150);
        assert!(ix.get(&id(1)).is_some());
        assert!(ix.get(&id(2)).is_none());
        ix.replay(&e(3, 50, 100), 150);
        assert!(ix.get(&id(1)).is_none(), "overwritten by block 3");
        assert_eq!(ix.listing(), vec![(id(3), 100)]);
    }
}
