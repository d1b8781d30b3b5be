//! Semantic validation of a parsed drive manifest: every rule of azure-import-export.md §1.3.
//!
//! Owns [`Limits`] (the service's size limits, as parameters) and the [`Problem`] vocabulary. Every
//! problem is collected, not just the first, and each carries where it is (list and blob index,
//! blob path, element, byte offset within the blob, document byte offset when parsed) and a typed
//! [`ProblemKind`], so the import can map a `FilePath` problem to `FileNameInvalid` or
//! `FileNameTooLong` and fail only the blobs at fault. This module must not do I/O; it sees only the
//! model, never the files the manifest names.
//!
//! Rules checked, with their §1.3 rows:
//! - `DriveId` is not empty (blank text counts as empty);
//! - `BlobPath` is `container/name` with valid names (`names::BlobPath`), and unique in the manifest;
//! - `FilePath`, `MetadataPath`, `PropertiesPath` stay under the drive root (`names::DrivePath`);
//! - each blob has exactly one of `PageRangeList` and `BlockList`. The tool-output sample of §8.1
//!   shows both on one blob; it is placeholder content, so such a blob parses (nothing is lost) and
//!   is reported here as [`ProblemKind::BothRangeLists`];
//! - `BlockList`: sorted by offset, contiguous, covering exactly `Length`; at most
//!   [`Limits::max_blocks`] blocks, each of 1 to [`Limits::max_block_bytes`] bytes; block ids all
//!   present or all absent, all the same length, each valid Base64 of 1 to 64 bytes (Put Block rules);
//! - `PageRangeList`: offsets and lengths multiples of 512, lengths 1 to
//!   [`Limits::max_page_range_bytes`], sorted, not overlapping, inside `Length` (gaps are legal:
//!   ranges may be sparse); a page blob's `Length` is a multiple of 512;
//! - `Length` at most [`Limits::max_block_blob_bytes`] or [`Limits::max_page_blob_bytes`].
//!
//! Not checked here: whether a credential is present (import needs one, export has none; the caller
//! knows which), and whether hashes match file contents (the engine checks data).

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::names::{BlobPath, DrivePath, NameError, PathError};

use super::{Blob, Block, DriveManifest, HashedPath, PageRange};

/// Bytes in a page: page range offsets and lengths, and page blob lengths, are multiples of it.
pub const PAGE_BYTES: u64 = 512;
/// Default [`Limits::max_block_bytes`]: 4 MiB (§1.3 "Length ≤ 4 MB").
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 4 * 1024 * 1024;
/// Default [`Limits::max_blocks`]: 50,000 blocks per blob (§1.3).
pub const DEFAULT_MAX_BLOCKS: usize = 50_000;
/// Default [`Limits::max_page_range_bytes`]: 4 MiB (§1.3 "Length ≤ 4 MB").
pub const DEFAULT_MAX_PAGE_RANGE_BYTES: u64 = 4 * 1024 * 1024;
/// Default [`Limits::max_block_blob_bytes`]: the "200 GB" of §1.3, which is 50,000 blocks of
/// 4 MiB = 209,715,200,000 bytes.
pub const DEFAULT_MAX_BLOCK_BLOB_BYTES: u64 = DEFAULT_MAX_BLOCKS as u64 * DEFAULT_MAX_BLOCK_BYTES;
/// Default [`Limits::max_page_blob_bytes`]: the "1 TB" of §1.3, taken as 1 TiB =
/// 1,099,511,627,776 bytes (the classic page blob limit).
pub const DEFAULT_MAX_PAGE_BLOB_BYTES: u64 = 1 << 40;
/// Most bytes a block id may decode to (Put Block).
const MAX_BLOCK_ID_BYTES: usize = 64;
/// Longest Base64 text of at most [`MAX_BLOCK_ID_BYTES`] bytes (with padding).
const MAX_BLOCK_ID_CHARS: usize = MAX_BLOCK_ID_BYTES.div_ceil(3) * 4;

/// The service limits a manifest is checked against.
///
/// [`Limits::default`] holds the limits of the manifest format doc (azure-import-export.md §1.3):
/// blocks and page ranges of at most 4 MiB, 50,000 blocks, block blobs of at most 209,715,200,000
/// bytes and page blobs of at most 1 TiB. Later services allow bigger blocks (up to 4000 MiB); raise
/// [`Limits::max_block_bytes`] and [`Limits::max_block_blob_bytes`] together for those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block, in bytes.
    pub max_block_bytes: u64,
    /// Most blocks in one blob.
    pub max_blocks: usize,
    /// Largest page range, in bytes.
    pub max_page_range_bytes: u64,
    /// Largest block blob `Length`, in bytes.
    pub max_block_blob_bytes: u64,
    /// Largest page blob `Length`, in bytes.
    pub max_page_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_blocks: DEFAULT_MAX_BLOCKS,
            max_page_range_bytes: DEFAULT_MAX_PAGE_RANGE_BYTES,
            max_block_blob_bytes: DEFAULT_MAX_BLOCK_BLOB_BYTES,
            max_page_blob_bytes: DEFAULT_MAX_PAGE_BLOB_BYTES,
        }
    }
}

impl Limits {
    /// Set [`Limits::max_block_bytes`] (bytes).
    pub fn with_max_block_bytes(mut self, bytes: u64) -> Self {
        self.max_block_bytes = bytes;
        self
    }

    /// Set [`Limits::max_blocks`].
    pub fn with_max_blocks(mut self, blocks: usize) -> Self {
        self.max_blocks = blocks;
        self
    }

    /// Set [`Limits::max_page_range_bytes`] (bytes).
    pub fn with_max_page_range_bytes(mut self, bytes: u64) -> Self {
        self.max_page_range_bytes = bytes;
        self
    }

    /// Set [`Limits::max_block_blob_bytes`] (bytes).
    pub fn with_max_block_blob_bytes(mut self, bytes: u64) -> Self {
        self.max_block_blob_bytes = bytes;
        self
    }

    /// Set [`Limits::max_page_blob_bytes`] (bytes).
    pub fn with_max_page_blob_bytes(mut self, bytes: u64) -> Self {
        self.max_page_blob_bytes = bytes;
        self
    }
}

/// One rule a manifest breaks, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which rule, with the values involved.
    pub kind: ProblemKind,
    /// Where in the manifest.
    pub location: Location,
}

impl Problem {
    /// `(list index, blob index)` of the blob at fault, or `None` for a drive-level problem.
    pub fn blob_index(&self) -> Option<(usize, usize)> {
        self.location.list_index.zip(self.location.blob_index)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.kind)
    }
}

/// Where a [`Problem`] is: from the drive down to one block or page range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Index of the `BlobList` in the drive, if the problem is inside one.
    pub list_index: Option<usize>,
    /// Index of the `Blob` in its list, if the problem is inside one.
    pub blob_index: Option<usize>,
    /// The blob's raw `BlobPath`, if the problem is inside a blob.
    pub blob_path: Option<String>,
    /// The element at fault (`DriveId`, `FilePath`, `BlockList`, `Block`, `PageRange`, ...).
    pub element: &'static str,
    /// Index of the `Block` or `PageRange` in its list.
    pub item_index: Option<usize>,
    /// Byte offset within the blob (for blocks, page ranges and cover problems).
    pub offset_bytes: Option<u64>,
    /// Byte offset in the source document of the enclosing `Blob` (or `BlobList`, or `Drive`), when
    /// the manifest was parsed.
    pub source_offset: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.list_index {
            write!(f, "list {l} ")?;
        }
        if let Some(b) = self.blob_index {
            write!(f, "blob {b} ")?;
        }
        if let Some(p) = &self.blob_path {
            write!(f, "({p:?}) ")?;
        }
        write!(f, "<{}>", self.element)?;
        if let Some(i) = self.item_index {
            write!(f, " #{i}")?;
        }
        if let Some(o) = self.offset_bytes {
            write!(f, " at blob byte {o}")?;
        }
        if let Some(o) = self.source_offset {
            write!(f, " (document byte {o})")?;
        }
        Ok(())
    }
}

/// The rule a [`Problem`] breaks (azure-import-export.md §1.3 unless noted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// `DriveId` is empty or blank.
    #[error("drive id is empty")]
    EmptyDriveId,
    /// `BlobPath` is not `container/name` with valid names.
    #[error("invalid blob path")]
    InvalidBlobPath(#[source] NameError),
    /// `FilePath` could leave the drive root or is malformed; the import reports it as
    /// `FileNameInvalid`, or `FileNameTooLong` when [`PathError::is_too_long`].
    #[error("invalid file path")]
    InvalidFilePath(#[source] PathError),
    /// A `MetadataPath` (of a list or a blob) is invalid.
    #[error("invalid metadata path")]
    InvalidMetadataPath(#[source] PathError),
    /// A `PropertiesPath` (of a list or a blob) is invalid.
    #[error("invalid properties path")]
    InvalidPropertiesPath(#[source] PathError),
    /// The same `BlobPath` appears on an earlier blob.
    #[error("blob path also used by list {first_list} blob {first_blob}")]
    DuplicateBlobPath {
        /// List index of the first blob with this path.
        first_list: usize,
        /// Blob index of the first blob with this path.
        first_blob: usize,
    },
    /// The blob has neither `PageRangeList` nor `BlockList`.
    #[error("blob has neither a PageRangeList nor a BlockList")]
    NoRangeList,
    /// The blob has both `PageRangeList` and `BlockList` (the §8.1 placeholder sample).
    #[error("blob has both a PageRangeList and a BlockList")]
    BothRangeLists,
    /// `Length` is over the limit for the blob's type.
    #[error("blob length {length} bytes exceeds the limit of {max_bytes} bytes")]
    BlobTooLarge {
        /// The blob's `Length`, bytes.
        length: u64,
        /// The limit, bytes.
        max_bytes: u64,
    },
    /// A page blob's `Length` is not a multiple of 512.
    #[error("page blob length {length} bytes is not a multiple of 512")]
    PageBlobLengthUnaligned {
        /// The blob's `Length`, bytes.
        length: u64,
    },
    /// More blocks than [`Limits::max_blocks`].
    #[error("{count} blocks exceed the limit of {max}")]
    TooManyBlocks {
        /// Blocks in the list.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A block or page range of zero bytes.
    #[error("zero-length range")]
    ZeroLength,
    /// `Offset + Length` does not fit in 64 bits.
    #[error("offset plus length overflows")]
    RangeOverflow,
    /// A block longer than [`Limits::max_block_bytes`].
    #[error("block of {length} bytes exceeds the limit of {max_bytes} bytes")]
    BlockTooLong {
        /// The block's length, bytes.
        length: u64,
        /// The limit, bytes.
        max_bytes: u64,
    },
    /// A block starts before the previous block's start.
    #[error("block is out of order (the previous block starts at byte {previous_offset})")]
    BlockUnsorted {
        /// Offset of the previous block, bytes.
        previous_offset: u64,
    },
    /// A block starts after the previous block's end, leaving bytes uncovered.
    #[error("gap before this block: bytes from {expected_offset} are not covered")]
    BlockGap {
        /// Where this block should have started, bytes.
        expected_offset: u64,
    },
    /// A block starts before the previous block's end.
    #[error("block overlaps the previous one, which ends at byte {expected_offset}")]
    BlockOverlap {
        /// Where this block should have started, bytes.
        expected_offset: u64,
    },
    /// The blocks end before `Length`.
    #[error("blocks end at byte {list_end}, short of the blob length {length}")]
    BlockListShort {
        /// End of the last block, bytes.
        list_end: u64,
        /// The blob's `Length`, bytes.
        length: u64,
    },
    /// The blocks end after `Length`.
    #[error("blocks end at byte {list_end}, past the blob length {length}")]
    BlockListLong {
        /// End of the last block, bytes.
        list_end: u64,
        /// The blob's `Length`, bytes.
        length: u64,
    },
    /// Some blocks have an `Id` and some do not (reported at the first block that differs from
    /// the first block).
    #[error("{with_id} blocks have an Id and {without_id} do not")]
    BlockIdPresenceMixed {
        /// Blocks with an `Id`.
        with_id: usize,
        /// Blocks without one.
        without_id: usize,
    },
    /// A block `Id` of a different length from the blob's first `Id` (Put Block requires one length).
    #[error("block id is {found_chars} characters, the first block id is {expected_chars}")]
    BlockIdLengthMismatch {
        /// Length of the blob's first `Id`, characters.
        expected_chars: usize,
        /// Length of this `Id`, characters.
        found_chars: usize,
    },
    /// A block `Id` that is not Base64 of 1 to 64 bytes.
    #[error("block id {id:?} is invalid: {reason}")]
    BlockIdInvalid {
        /// The rejected `Id`.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A page range whose offset or length is not a multiple of 512.
    #[error("page range {offset}+{length} is not aligned to 512 bytes")]
    PageRangeUnaligned {
        /// The range's offset, bytes.
        offset: u64,
        /// The range's length, bytes.
        length: u64,
    },
    /// A page range longer than [`Limits::max_page_range_bytes`].
    #[error("page range of {length} bytes exceeds the limit of {max_bytes} bytes")]
    PageRangeTooLong {
        /// The range's length, bytes.
        length: u64,
        /// The limit, bytes.
        max_bytes: u64,
    },
    /// A page range that starts before the previous one.
    #[error("page range is out of order (the previous range starts at byte {previous_offset})")]
    PageRangeUnsorted {
        /// Offset of the previous range, bytes.
        previous_offset: u64,
    },
    /// A page range that starts before the previous one ends.
    #[error("page range overlaps the previous one, which ends at byte {previous_end}")]
    PageRangeOverlap {
        /// End of the previous range, bytes.
        previous_end: u64,
    },
    /// A page range that ends past the blob's `Length`.
    #[error("page range ends at byte {end}, past the blob length {length}")]
    PageRangeBeyondLength {
        /// End of the range, bytes.
        end: u64,
        /// The blob's `Length`, bytes.
        length: u64,
    },
}

pub(super) fn validate(m: &DriveManifest, limits: &Limits) -> Vec<Problem> {
    let mut problems = Vec::new();
    if m.drive.drive_id.trim().is_empty() {
        problems.push(Problem {
            kind: ProblemKind::EmptyDriveId,
            location: Location {
                element: "DriveId",
                source_offset: m.drive.source_offset.0,
                ..Location::default()
            },
        });
    }
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    for (li, list) in m.drive.blob_lists.iter().enumerate() {
        let at = Location {
            list_index: Some(li),
            source_offset: list.source_offset.0,
            ..Location::default()
        };
        for (element, kind) in
            hashed_problems(list.metadata_path.as_ref(), list.properties_path.as_ref())
        {
            let location = Location {
                element,
                ..at.clone()
            };
            problems.push(Problem { kind, location });
        }
        for (bi, blob) in list.blobs.iter().enumerate() {
            let mut out = BlobProblems {
                problems: &mut problems,
                list_index: li,
                blob_index: bi,
                blob_path: &blob.blob_path,
                source_offset: blob.source_offset.0.or(list.source_offset.0),
            };
            match seen.get(blob.blob_path.as_str()) {
                Some(&(first_list, first_blob)) => out.push(
                    "BlobPath",
                    ProblemKind::DuplicateBlobPath {
                        first_list,
                        first_blob,
                    },
                ),
                None => {
                    seen.insert(&blob.blob_path, (li, bi));
                }
            }
            check_blob(&mut out, blob, limits);
        }
    }
    problems
}

/// Problems of one blob; the location is built only when a problem is found, so a clean blob costs
/// no allocation.
struct BlobProblems<'a> {
    problems: &'a mut Vec<Problem>,
    list_index: usize,
    blob_index: usize,
    blob_path: &'a str,
    source_offset: Option<u64>,
}

impl BlobProblems<'_> {
    fn location(&self, element: &'static str) -> Location {
        Location {
            list_index: Some(self.list_index),
            blob_index: Some(self.blob_index),
            blob_path: Some(self.blob_path.to_string()),
            element,
            item_index: None,
            offset_bytes: None,
            source_offset: self.source_offset,
        }
    }

    fn push(&mut self, element: &'static str, kind: ProblemKind) {
        let location = self.location(element);
        self.problems.push(Problem { kind, location });
    }

    fn push_at(
        &mut self,
        element: &'static str,
        item_index: Option<usize>,
        offset_bytes: u64,
        kind: ProblemKind,
    ) {
        let location = Location {
            item_index,
            offset_bytes: Some(offset_bytes),
            ..self.location(element)
        };
        self.problems.push(Problem { kind, location });
    }
}

/// The problems of a `MetadataPath` and a `PropertiesPath` (of a list or a blob), with the element
/// name of each.
fn hashed_problems(
    metadata: Option<&HashedPath>,
    properties: Option<&HashedPath>,
) -> impl Iterator<Item = (&'static str, ProblemKind)> {
    let metadata = metadata
        .and_then(|m| m.drive_path().err())
        .map(|e| ("MetadataPath", ProblemKind::InvalidMetadataPath(e)));
    let properties = properties
        .and_then(|p| p.drive_path().err())
        .map(|e| ("PropertiesPath", ProblemKind::InvalidPropertiesPath(e)));
    metadata.into_iter().chain(properties)
}

fn check_blob(out: &mut BlobProblems<'_>, blob: &Blob, limits: &Limits) {
    if let Err(e) = BlobPath::parse(&blob.blob_path) {
        out.push("BlobPath", ProblemKind::InvalidBlobPath(e));
    }
    if let Err(e) = DrivePath::parse(&blob.file_path) {
        out.push("FilePath", ProblemKind::InvalidFilePath(e));
    }
    for (element, kind) in
        hashed_problems(blob.metadata_path.as_ref(), blob.properties_path.as_ref())
    {
        out.push(element, kind);
    }
    match (&blob.page_range_list, &blob.block_list) {
        (None, None) => out.push("Blob", ProblemKind::NoRangeList),
        (Some(_), Some(_)) => out.push("Blob", ProblemKind::BothRangeLists),
        _ => {}
    }
    if let Some(ranges) = &blob.page_range_list {
        if blob.length > limits.max_page_blob_bytes {
            let kind = ProblemKind::BlobTooLarge {
                length: blob.length,
                max_bytes: limits.max_page_blob_bytes,
            };
            out.push("Length", kind);
        }
        if !blob.length.is_multiple_of(PAGE_BYTES) {
            out.push(
                "Length",
                ProblemKind::PageBlobLengthUnaligned {
                    length: blob.length,
                },
            );
        }
        check_page_ranges(out, ranges, blob.length, limits);
    }
    if let Some(blocks) = &blob.block_list {
        if blob.length > limits.max_block_blob_bytes {
            let kind = ProblemKind::BlobTooLarge {
                length: blob.length,
                max_bytes: limits.max_block_blob_bytes,
            };
            out.push("Length", kind);
        }
        check_blocks(out, blocks, blob.length, limits);
        check_block_ids(out, blocks);
    }
}

fn check_page_ranges(
    out: &mut BlobProblems<'_>,
    ranges: &[PageRange],
    length: u64,
    limits: &Limits,
) {
    // (offset, end) of the previous range with a representable end.
    let mut previous: Option<(u64, u64)> = None;
    for (i, r) in ranges.iter().enumerate() {
        let mut report = |kind| out.push_at("PageRange", Some(i), r.offset, kind);
        if r.length == 0 {
            report(ProblemKind::ZeroLength);
        }
        if r.offset % PAGE_BYTES != 0 || r.length % PAGE_BYTES != 0 {
            report(ProblemKind::PageRangeUnaligned {
                offset: r.offset,
                length: r.length,
            });
        }
        if r.length > limits.max_page_range_bytes {
            report(ProblemKind::PageRangeTooLong {
                length: r.length,
                max_bytes: limits.max_page_range_bytes,
            });
        }
        let Some(end) = r.offset.checked_add(r.length) else {
            report(ProblemKind::RangeOverflow);
            continue;
        };
        if end > length {
            report(ProblemKind::PageRangeBeyondLength { end, length });
        }
        previous = Some(match previous {
            Some((previous_offset, _)) if r.offset < previous_offset => {
                report(ProblemKind::PageRangeUnsorted { previous_offset });
                (r.offset, end)
            }
            Some((_, previous_end)) if r.offset < previous_end => {
                report(ProblemKind::PageRangeOverlap { previous_end });
                (r.offset, end.max(previous_end))
            }
            _ => (r.offset, end),
        });
    }
}

fn check_blocks(out: &mut BlobProblems<'_>, blocks: &[Block], length: u64, limits: &Limits) {
    if blocks.len() > limits.max_blocks {
        let kind = ProblemKind::TooManyBlocks {
            count: blocks.len(),
            max: limits.max_blocks,
        };
        out.push("BlockList", kind);
    }
    // Where the next block must start, and where the previous block started.
    let mut expected = 0u64;
    let mut previous_offset: Option<u64> = None;
    for (i, b) in blocks.iter().enumerate() {
        let mut report = |kind| out.push_at("Block", Some(i), b.offset, kind);
        if b.length == 0 {
            report(ProblemKind::ZeroLength);
        }
        if b.length > limits.max_block_bytes {
            report(ProblemKind::BlockTooLong {
                length: b.length,
                max_bytes: limits.max_block_bytes,
            });
        }
        let Some(end) = b.offset.checked_add(b.length) else {
            report(ProblemKind::RangeOverflow);
            continue;
        };
        expected = match previous_offset {
            Some(previous_offset) if b.offset < previous_offset => {
                report(ProblemKind::BlockUnsorted { previous_offset });
                end
            }
            _ if b.offset < expected => {
                report(ProblemKind::BlockOverlap {
                    expected_offset: expected,
                });
                end.max(expected)
            }
            _ if b.offset > expected => {
                report(ProblemKind::BlockGap {
                    expected_offset: expected,
                });
                end
            }
            _ => end,
        };
        previous_offset = Some(b.offset);
    }
    if expected < length {
        out.push_at(
            "BlockList",
            None,
            expected,
            ProblemKind::BlockListShort {
                list_end: expected,
                length,
            },
        );
    } else if expected > length {
        out.push_at(
            "BlockList",
            None,
            length,
            ProblemKind::BlockListLong {
                list_end: expected,
                length,
            },
        );
    }
}

fn check_block_ids(out: &mut BlobProblems<'_>, blocks: &[Block]) {
    let with_id = blocks.iter().filter(|b| b.id.is_some()).count();
    if with_id != 0 && with_id != blocks.len() {
        let first_has = blocks.first().is_some_and(|b| b.id.is_some());
        if let Some((i, b)) = blocks
            .iter()
            .enumerate()
            .find(|(_, b)| b.id.is_some() != first_has)
        {
            let kind = ProblemKind::BlockIdPresenceMixed {
                with_id,
                without_id: blocks.len() - with_id,
            };
            out.push_at("Block", Some(i), b.offset, kind);
        }
    }
    let mut expected_chars = None;
    for (i, b) in blocks.iter().enumerate() {
        let Some(id) = &b.id else { continue };
        let chars = id.chars().count();
        let expected = *expected_chars.get_or_insert(chars);
        if chars != expected {
            let kind = ProblemKind::BlockIdLengthMismatch {
                expected_chars: expected,
                found_chars: chars,
            };
            out.push_at("Block", Some(i), b.offset, kind);
        }
        if let Err(reason) = check_block_id(id) {
            out.push_at(
                "Block",
                Some(i),
                b.offset,
                ProblemKind::BlockIdInvalid {
                    id: id.clone(),
                    reason,
                },
            );
        }
    }
}

/// Put Block's rule for an id: standard Base64 (with padding) of 1 to 64 bytes.
fn check_block_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty");
    }
    if id.len() > MAX_BLOCK_ID_CHARS {
        return Err("longer than 64 bytes when decoded");
    }
    let mut buf = [0u8; MAX_BLOCK_ID_CHARS];
    match B64.decode_slice(id, &mut buf) {
        Ok(n) if n > MAX_BLOCK_ID_BYTES => Err("longer than 64 bytes when decoded"),
        Ok(0) => Err("empty"),
        Ok(_) => Ok(()),
        Err(_) => Err("not Base64"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BlobList, Drive, SourceOffset};
    use super::*;
    use crate::digest::Md5Digest;

    const MIB4: u64 = 4 * 1024 * 1024;

    fn block(offset: u64, length: u64, id: Option<&str>) -> Block {
        Block {
            offset,
            length,
            id: id.map(str::to_string),
            hash: Md5Digest::default(),
        }
    }

    fn range(offset: u64, length: u64) -> PageRange {
        PageRange {
            offset,
            length,
            hash: Md5Digest::default(),
        }
    }

    fn blob(length: u64) -> Blob {
        Blob {
            blob_path: "pictures/a.jpg".into(),
            file_path: r"\pictures\a.jpg".into(),
            client_data: None,
            snapshot: None,
            length,
            import_disposition: None,
            page_range_list: None,
            block_list: None,
            metadata_path: None,
            properties_path: None,
            source_offset: SourceOffset(Some(100)),
        }
    }

    fn block_blob(length: u64, blocks: Vec<Block>) -> Blob {
        Blob {
            block_list: Some(blocks),
            ..blob(length)
        }
    }

    fn page_blob(length: u64, ranges: Vec<PageRange>) -> Blob {
        Blob {
            page_range_list: Some(ranges),
            ..blob(length)
        }
    }

    fn manifest(blobs: Vec<Blob>) -> DriveManifest {
        DriveManifest {
            version: None,
            drive: Drive {
                drive_id: "9WM35C3U".into(),
                credential: None,
                client_creator: None,
                blob_lists: vec![BlobList {
                    id: None,
                    metadata_path: None,
                    properties_path: None,
                    blobs,
                    source_offset: SourceOffset(None),
                }],
                source_offset: SourceOffset(None),
            },
        }
    }

    /// (element, item index, offset within the blob, kind) of every problem.
    type Found = Vec<(&'static str, Option<usize>, Option<u64>, ProblemKind)>;

    fn check(blob: Blob, expected: Found) {
        let problems = manifest(vec![blob]).validate(&Limits::default());
        let found: Found = problems
            .iter()
            .map(|p| {
                (
                    p.location.element,
                    p.location.item_index,
                    p.location.offset_bytes,
                    p.kind.clone(),
                )
            })
            .collect();
        assert_eq!(found, expected);
        for p in &problems {
            assert_eq!(p.blob_index(), Some((0, 0)));
            assert_eq!(p.location.source_offset, Some(100));
        }
    }

    use ProblemKind as K;

    #[test]
    fn block_lists() {
        let id = Some("AAAAAA==");
        check(
            block_blob(10, vec![block(0, 4, id), block(4, 6, id)]),
            vec![],
        );
        check(block_blob(0, vec![]), vec![]);
        check(
            block_blob(10, vec![block(0, 4, None), block(5, 5, None)]),
            vec![(
                "Block",
                Some(1),
                Some(5),
                K::BlockGap { expected_offset: 4 },
            )],
        );
        check(
            block_blob(10, vec![block(0, 4, None), block(3, 7, None)]),
            vec![(
                "Block",
                Some(1),
                Some(3),
                K::BlockOverlap { expected_offset: 4 },
            )],
        );
        check(
            block_blob(10, vec![block(4, 6, None), block(0, 4, None)]),
            vec![
                (
                    "Block",
                    Some(0),
                    Some(4),
                    K::BlockGap { expected_offset: 0 },
                ),
                (
                    "Block",
                    Some(1),
                    Some(0),
                    K::BlockUnsorted { previous_offset: 4 },
                ),
                (
                    "BlockList",
                    None,
                    Some(4),
                    K::BlockListShort {
                        list_end: 4,
                        length: 10,
                    },
                ),
            ],
        );
        check(
            block_blob(10, vec![block(0, 4, None)]),
            vec![(
                "BlockList",
                None,
                Some(4),
                K::BlockListShort {
                    list_end: 4,
                    length: 10,
                },
            )],
        );
        check(
            block_blob(3, vec![block(0, 4, None)]),
            vec![(
                "BlockList",
                None,
                Some(3),
                K::BlockListLong {
                    list_end: 4,
                    length: 3,
                },
            )],
        );
        check(
            block_blob(MIB4 + 1, vec![block(0, MIB4 + 1, None)]),
            vec![(
                "Block",
                Some(0),
                Some(0),
                K::BlockTooLong {
                    length: MIB4 + 1,
                    max_bytes: MIB4,
                },
            )],
        );
        check(
            block_blob(1, vec![block(0, 0, None), block(0, 1, None)]),
            vec![("Block", Some(0), Some(0), K::ZeroLength)],
        );
        check(
            block_blob(1, vec![block(u64::MAX, 2, None)]),
            vec![
                ("Block", Some(0), Some(u64::MAX), K::RangeOverflow),
                (
                    "BlockList",
                    None,
                    Some(0),
                    K::BlockListShort {
                        list_end: 0,
                        length: 1,
                    },
                ),
            ],
        );
        check(blob(1), vec![("Blob", None, None, K::NoRangeList)]);
    }

    #[test]
    fn block_ids() {
        check(
            block_blob(2, vec![block(0, 1, Some("AAAAAA==")), block(1, 1, None)]),
            vec![(
                "Block",
                Some(1),
                Some(1),
                K::BlockIdPresenceMixed {
                    with_id: 1,
                    without_id: 1,
                },
            )],
        );
        check(
            block_blob(
                2,
                vec![block(0, 1, Some("AAAAAA==")), block(1, 1, Some("AAAA"))],
            ),
            vec![(
                "Block",
                Some(1),
                Some(1),
                K::BlockIdLengthMismatch {
                    expected_chars: 8,
                    found_chars: 4,
                },
            )],
        );
        let long = "A".repeat(86) + "==";
        let too_long = "A".repeat(88);
        let far_too_long = "A".repeat(92);
        check(block_blob(1, vec![block(0, 1, Some(&long))]), vec![]);
        for (id, reason) in [
            ("", "empty"),
            ("not base64!", "not Base64"),
            ("AAAAAA=", "not Base64"),
            (too_long.as_str(), "longer than 64 bytes when decoded"),
            (far_too_long.as_str(), "longer than 64 bytes when decoded"),
        ] {
            check(
                block_blob(1, vec![block(0, 1, Some(id))]),
                vec![(
                    "Block",
                    Some(0),
                    Some(0),
                    K::BlockIdInvalid {
                        id: id.into(),
                        reason,
                    },
                )],
            );
        }
        // The tool's `MD5/<base64>` ids are Base64 of 19 bytes.
        check(
            block_blob(1, vec![block(0, 1, Some("MD5/cAzn4h7VVSWXf696qp5Uaw=="))]),
            vec![],
        );
    }

    #[test]
    fn page_ranges() {
        check(
            page_blob(4096, vec![range(0, 512), range(2048, 1024)]),
            vec![],
        );
        check(page_blob(1024, vec![]), vec![]);
        check(
            page_blob(1000, vec![range(0, 512)]),
            vec![(
                "Length",
                None,
                None,
                K::PageBlobLengthUnaligned { length: 1000 },
            )],
        );
        check(
            page_blob(4096, vec![range(1, 512)]),
            vec![(
                "PageRange",
                Some(0),
                Some(1),
                K::PageRangeUnaligned {
                    offset: 1,
                    length: 512,
                },
            )],
        );
        check(
            page_blob(4096, vec![range(0, 1024), range(512, 512)]),
            vec![(
                "PageRange",
                Some(1),
                Some(512),
                K::PageRangeOverlap { previous_end: 1024 },
            )],
        );
        check(
            page_blob(4096, vec![range(1024, 512), range(0, 512)]),
            vec![(
                "PageRange",
                Some(1),
                Some(0),
                K::PageRangeUnsorted {
                    previous_offset: 1024,
                },
            )],
        );
        check(
            page_blob(1024, vec![range(512, 1024)]),
            vec![(
                "PageRange",
                Some(0),
                Some(512),
                K::PageRangeBeyondLength {
                    end: 1536,
                    length: 1024,
                },
            )],
        );
        check(
            page_blob(2 * MIB4, vec![range(0, MIB4 + 512)]),
            vec![(
                "PageRange",
                Some(0),
                Some(0),
                K::PageRangeTooLong {
                    length: MIB4 + 512,
                    max_bytes: MIB4,
                },
            )],
        );
        check(
            page_blob((1 << 40) + 512, vec![]),
            vec![(
                "Length",
                None,
                None,
                K::BlobTooLarge {
                    length: (1 << 40) + 512,
                    max_bytes: 1 << 40,
                },
            )],
        );
        check(
            Blob {
                block_list: Some(vec![block(0, 512, None)]),
                ..page_blob(512, vec![range(0, 512)])
            },
            vec![("Blob", None, None, K::BothRangeLists)],
        );
    }

    #[test]
    fn names_and_paths() {
        let bad_file = Blob {
            file_path: r"\..\..\etc\passwd".into(),
            ..block_blob(0, vec![])
        };
        let problems = manifest(vec![bad_file]).validate(&Limits::default());
        assert!(
            matches!(&problems[..], [Problem { kind: K::InvalidFilePath(PathError::ParentSegment { .. }), location }]
                if location.element == "FilePath"),
            "{problems:?}"
        );
        let bad_container = Blob {
            blob_path: "Pictures/a.jpg".into(),
            ..block_blob(0, vec![])
        };
        let problems = manifest(vec![bad_container]).validate(&Limits::default());
        assert!(
            matches!(
                &problems[..],
                [Problem {
                    kind: K::InvalidBlobPath(NameError::Container { .. }),
                    ..
                }]
            ),
            "{problems:?}"
        );
        let bad_meta = Blob {
            metadata_path: Some(HashedPath {
                path: "C:\\x".into(),
                hash: Md5Digest::default(),
            }),
            ..block_blob(0, vec![])
        };
        let problems = manifest(vec![bad_meta]).validate(&Limits::default());
        assert!(
            matches!(
                &problems[..],
                [Problem {
                    kind: K::InvalidMetadataPath(_),
                    ..
                }]
            ),
            "{problems:?}"
        );

        let mut m = manifest(vec![block_blob(0, vec![])]);
        m.drive.blob_lists[0].properties_path = Some(HashedPath {
            path: r"\..\p".into(),
            hash: Md5Digest::default(),
        });
        let problems = m.validate(&Limits::default());
        assert!(
            matches!(&problems[..], [Problem { kind: K::InvalidPropertiesPath(_), location }]
                if location.list_index == Some(0) && location.blob_index.is_none()
                    && location.element == "PropertiesPath"),
            "{problems:?}"
        );
        assert_eq!(problems[0].blob_index(), None);

        let mut m = manifest(vec![block_blob(0, vec![]), block_blob(0, vec![])]);
        m.drive.drive_id = "  ".into();
        let problems = m.validate(&Limits::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            (problems[0].kind.clone(), problems[0].blob_index()),
            (K::EmptyDriveId, None)
        );
        assert_eq!(
            problems[1].kind,
            K::DuplicateBlobPath {
                first_list: 0,
                first_blob: 0
            }
        );
        assert_eq!(problems[1].blob_index(), Some((0, 1)));
    }

    #[test]
    fn limits_are_parameters() {
        let big = block_blob(8 * MIB4, vec![block(0, 8 * MIB4, None)]);
        let m = manifest(vec![big]);
        assert_eq!(m.validate(&Limits::default()).len(), 1);
        assert!(m
            .validate(&Limits::default().with_max_block_bytes(4000 * 1024 * 1024))
            .is_empty());
        let many = block_blob(
            3,
            vec![block(0, 1, None), block(1, 1, None), block(2, 1, None)],
        );
        let problems = manifest(vec![many]).validate(&Limits::default().with_max_blocks(2));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, K::TooManyBlocks { count: 3, max: 2 });
        assert_eq!(DEFAULT_MAX_BLOCK_BLOB_BYTES, 209_715_200_000);
        let small = Limits::default()
            .with_max_block_blob_bytes(2)
            .with_max_page_blob_bytes(512);
        let p = manifest(vec![block_blob(3, vec![block(0, 3, None)])]).validate(&small);
        assert_eq!(
            p[0].kind,
            K::BlobTooLarge {
                length: 3,
                max_bytes: 2
            }
        );
        let p = manifest(vec![page_blob(1024, vec![])]).validate(&small);
        assert_eq!(
            p[0].kind,
            K::BlobTooLarge {
                length: 1024,
                max_bytes: 512
            }
        );
        let p = manifest(vec![page_blob(1024, vec![range(0, 1024)])])
            .validate(&Limits::default().with_max_page_range_bytes(512));
        assert_eq!(
            p[0].kind,
            K::PageRangeTooLong {
                length: 1024,
                max_bytes: 512
            }
        );
    }

    #[test]
    fn problems_display_their_location() {
        let p = manifest(vec![block_blob(
            10,
            vec![block(0, 4, None), block(5, 5, None)],
        )])
        .validate(&Limits::default());
        assert_eq!(
            p[0].to_string(),
            "list 0 blob 0 (\"pictures/a.jpg\") <Block> #1 at blob byte 5 (document byte 100): \
             gap before this block: bytes from 4 are not covered"
        );
    }
}
