//! The [`BlobStore`] trait: the Azure Blob Storage operations the copy engine needs, with the
//! semantics of the Azure REST API, and its backends ([`local::LocalStore`], the embedded default).
//!
//! This module owns the trait, its argument and result types, and the shared error vocabulary
//! [`StoreError`]. It must not know about drives, manifests or logs, and it must not retry:
//! retrying belongs to one helper above the store (style.md §5 "Retrying happens in exactly one
//! place"). Backends map their private errors onto [`StoreError`] (style.md §6 item 2).
//!
//! The limits enforced here are Azure's (peers.md §6): block ids of at most 64 bytes and the same
//! length within a blob, at most 50,000 committed and 100,000 uncommitted blocks, 512-byte pages,
//! at most 4 MiB per Put Page.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;

use crate::digest::Md5Digest;
use crate::names::BlobPath;

pub mod azure;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
pub mod local;
pub mod retry;

pub use azure::{open_url, OpenError, OpenOptions};

/// Longest block id in bytes before Base64 encoding (Put Block, peers.md §6).
pub const MAX_BLOCK_ID_BYTES: usize = 64;
/// Most blocks in one committed block list (`BlockListTooLong`, peers.md §6).
pub const MAX_COMMITTED_BLOCKS: usize = 50_000;
/// Most uncommitted blocks one blob may hold (`BlockCountExceedsLimit`, peers.md §6).
pub const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
/// Largest single block in bytes (4000 MiB, service version 2019-12-12 and later, peers.md §6).
pub const MAX_BLOCK_BYTES: u64 = 4000 * 1024 * 1024;
/// Page size of a page blob in bytes; page offsets and lengths are multiples of it (peers.md §6).
pub const PAGE_BYTES: u64 = 512;
/// Largest single Put Page in bytes (4 MiB, peers.md §6).
pub const MAX_PUT_PAGE_BYTES: u64 = 4 * 1024 * 1024;
/// Largest page blob in bytes (8 TiB, peers.md §6).
pub const MAX_PAGE_BLOB_BYTES: u64 = 8 * 1024 * 1024 * 1024 * 1024;
/// Most bytes of user metadata (names plus values) per blob (8 KiB, peers.md §6).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// A block id: raw bytes (1 to [`MAX_BLOCK_ID_BYTES`]) that Azure receives Base64-encoded.
///
/// Azure's Put Block takes the id Base64-encoded in the query string and requires every id of one
/// blob to have the same length before encoding (peers.md §6; azure-sdk-notes.md §8 item 10).
/// The WAImportExport tool's content-addressed ids (`MD5/<base64>`, azure-import-export.md §1.5)
/// are passed here as their decoded bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(Vec<u8>);

impl BlockId {
    /// Wrap raw id bytes.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] (with an empty blob path) when `raw` is empty or longer than
    /// [`MAX_BLOCK_ID_BYTES`].
    pub fn new(raw: impl Into<Vec<u8>>) -> Result<Self, StoreError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > MAX_BLOCK_ID_BYTES {
            return Err(StoreError::InvalidInput {
                path: String::new(),
                reason: format!(
                    "a block id must be 1 to {MAX_BLOCK_ID_BYTES} bytes, not {}",
                    raw.len()
                ),
            });
        }
        Ok(BlockId(raw))
    }

    /// Decode the Base64 form Azure puts on the wire and in block lists.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] when `text` is not standard Base64 of 1 to 64 bytes.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let raw = B64
            .decode(text.trim())
            .map_err(|_| StoreError::InvalidInput {
                path: String::new(),
                reason: format!("block id {text:?} is not base64"),
            })?;
        BlockId::new(raw)
    }

    /// The standard Base64 form (what Azure's REST API carries).
    pub fn to_base64(&self) -> String {
        B64.encode(&self.0)
    }

    /// The raw id bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the raw id in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a block id has at least one byte (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", self.to_base64())
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The transactional integrity check sent with a block or page write.
///
/// Azure verifies a Put Block or Put Page `Content-MD5` against the bytes received and rejects a
/// mismatch without storing anything (peers.md §6 "Transactional MD5"). The copy engine already
/// hashes every block on its rayon pool to check it against the drive manifest, so it passes that
/// digest as [`BlockChecksum::Md5Verified`]: a remote backend still sends it as the header (the
/// network can corrupt bytes), but a backend that stores bytes locally may trust it and skip a
/// second MD5 pass over the same memory, which on two cores would roughly halve throughput
/// (azure-sdk-notes.md §5: about 640 MB/s of MD5 per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockChecksum {
    /// No check requested.
    #[default]
    None,
    /// Verify the bytes against this MD5 (like Azure): a mismatch is
    /// [`StoreError::Md5Mismatch`] and nothing is stored.
    Md5(Md5Digest),
    /// The caller computed this MD5 from these exact bytes. A local backend may trust it; a
    /// remote backend sends it as `Content-MD5` so the service checks the transfer.
    Md5Verified(Md5Digest),
}

impl BlockChecksum {
    /// The digest carried, if any.
    pub fn digest(&self) -> Option<Md5Digest> {
        match self {
            BlockChecksum::None => None,
            BlockChecksum::Md5(d) | BlockChecksum::Md5Verified(d) => Some(*d),
        }
    }
}

/// One Put Block: an id, its bytes, the integrity check and where it will sit in the blob.
#[derive(Debug, Clone)]
pub struct StageBlock {
    /// The block id (same length for every block of the blob).
    pub id: BlockId,
    /// The block's bytes (at most [`MAX_BLOCK_BYTES`]).
    pub data: Bytes,
    /// The transactional check.
    pub checksum: BlockChecksum,
    /// The byte offset at which the caller will place this block in the committed blob, if known.
    /// Azure ignores it; [`local::LocalStore`] writes the block straight into that place so the
    /// commit is a rename instead of a copy. A wrong hint costs a copy at commit, never
    /// correctness.
    pub offset_hint: Option<u64>,
}

/// An entity tag: an opaque version string that changes on every write of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl ETag {
    /// The tag text, quotes included when the backend uses them (Azure: `"0x8D…"`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A precondition on a write (Azure's conditional headers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Condition {
    /// Unconditional.
    #[default]
    None,
    /// `If-None-Match: *`: only if the blob does not exist; otherwise
    /// [`StoreError::AlreadyExists`] (Azure 409 `BlobAlreadyExists`).
    IfNoneMatchStar,
    /// `If-Match: <etag>`: only if the blob exists with this ETag; otherwise
    /// [`StoreError::ConditionNotMet`] (Azure 412; an absent blob matches no ETag, RFC 9110 §13.1.1).
    IfMatch(ETag),
}

/// The standard HTTP properties of a blob (the `<Properties>` file's settable set,
/// azure-import-export.md §3, plus `Content-Disposition`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ContentProperties {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition` (not in the Import/Export properties list; an extension).
    pub content_disposition: Option<String>,
    /// `Content-MD5` of the whole blob. Stored, not verified, on a block commit (peers.md §6).
    pub content_md5: Option<Md5Digest>,
}

/// Options of a write that creates a blob version: properties, metadata and a precondition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitOptions {
    /// The blob's HTTP properties.
    pub content: ContentProperties,
    /// User metadata: C#-identifier names, at most [`MAX_METADATA_BYTES`] in all.
    pub metadata: BTreeMap<String, String>,
    /// The precondition.
    pub condition: Condition,
}

/// The two blob types the service handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    /// `BlockBlob`: written by Put Block + Put Block List or Put Blob.
    BlockBlob,
    /// `PageBlob`: fixed length, written in 512-byte pages by Put Page.
    PageBlob,
}

/// What Get Blob Properties returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    /// Block or page blob.
    pub kind: BlobKind,
    /// Length in bytes (a page blob's declared length).
    pub length: u64,
    /// The current ETag.
    pub etag: ETag,
    /// Time of the last write, UTC.
    pub last_modified: time::OffsetDateTime,
    /// The HTTP properties.
    pub content: ContentProperties,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
}

/// One entry of a blob listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    /// The blob name (without the container).
    pub name: String,
    /// Its properties.
    pub properties: BlobProperties,
}

/// What Get Block List returns: committed and uncommitted blocks with their lengths in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockListing {
    /// The committed block list in blob order (empty when the blob does not exist).
    pub committed: Vec<(BlockId, u64)>,
    /// Uncommitted blocks, each id once, in staging order.
    pub uncommitted: Vec<(BlockId, u64)>,
}

/// The shared error vocabulary of every store. Every variant names the blob (`container/name`)
/// or container it concerns in `path`.
///
/// | variant | Azure | retryable |
/// |---|---|---|
/// | `NotFound` | 404 `BlobNotFound`, `ContainerNotFound` | no |
/// | `AlreadyExists` | 409 `BlobAlreadyExists` | no |
/// | `ConditionNotMet` | 412 `ConditionNotMet` | no |
/// | `Md5Mismatch` | 400 `Md5Mismatch` / `InvalidOperation` | no (the caller's bytes or digest are wrong; resending the same buffer cannot help, and HTTPS already protects the transfer) |
/// | `InvalidBlockList` | 400 `InvalidBlockList`, `BlockListTooLong` | no |
/// | `InvalidInput` | 400 other, 416 `InvalidRange` | no |
/// | `PermissionDenied` | 403 | no |
/// | `Throttled` | 503 `ServerBusy`, 429 (with `Retry-After` when sent) | yes |
/// | `Timeout` | 500 `OperationTimedOut`, 408, client timeout | yes |
/// | `Server` | 500, 502, 503, 504 otherwise | yes |
/// | `Connection` | connection refused or reset, body cut mid-transfer | yes |
/// | `Io` | local I/O | only `Interrupted`, `TimedOut`, `WouldBlock` |
/// | `Other` | anything else | no |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The blob or container does not exist.
    #[error("{path} not found")]
    NotFound {
        /// The blob or container.
        path: String,
    },
    /// `If-None-Match: *` on a blob that exists, or a blob of another type in the way.
    #[error("{path} already exists")]
    AlreadyExists {
        /// The blob.
        path: String,
    },
    /// `If-Match` with an ETag that is no longer current.
    #[error("condition not met for {path}")]
    ConditionNotMet {
        /// The blob.
        path: String,
    },
    /// The bytes received do not hash to the transactional MD5; nothing was stored.
    #[error("md5 mismatch writing {path}: expected {expected}, got {actual}")]
    Md5Mismatch {
        /// The blob.
        path: String,
        /// The MD5 the caller sent.
        expected: Md5Digest,
        /// The MD5 of the bytes received.
        actual: Md5Digest,
    },
    /// A commit names an unknown block, mixes id lengths, or is too long.
    #[error("invalid block list for {path}: {reason}")]
    InvalidBlockList {
        /// The blob.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An argument the store refuses: misaligned page, range past the end, bad metadata name,
    /// wrong blob type, bad block id.
    #[error("invalid request for {path}: {reason}")]
    InvalidInput {
        /// The blob.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The credential or the file system refuses access.
    #[error("permission denied for {path}")]
    PermissionDenied {
        /// The blob.
        path: String,
        /// The underlying error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The service asks us to slow down.
    #[error("throttled on {path}")]
    Throttled {
        /// The blob.
        path: String,
        /// How long the service asked us to wait (`Retry-After`, seconds on the wire), if it said.
        retry_after: Option<std::time::Duration>,
    },
    /// The operation timed out.
    #[error("timed out on {path}")]
    Timeout {
        /// The blob.
        path: String,
    },
    /// The service failed with a 5xx status that is not a timeout or throttling (500, 502, 503,
    /// 504); the same request may succeed later.
    #[error("service error {status} on {path}")]
    Server {
        /// The blob.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// Azure's error code (`x-ms-error-code`), when sent.
        code: Option<String>,
    },
    /// The connection failed: refused, reset, or cut in the middle of a body.
    #[error("connection failed on {path}")]
    Connection {
        /// The blob.
        path: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A local file-system operation failed.
    #[error("{op} {file:?} for {path} failed")]
    Io {
        /// The blob.
        path: String,
        /// The operation (`"open"`, `"write"`, `"rename"`, ...).
        op: &'static str,
        /// The file the operation touched.
        file: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything a backend cannot map onto the variants above.
    #[error("{backend} store failed on {path}")]
    Other {
        /// The blob.
        path: String,
        /// The backend's name (`"local"`, `"azure"`).
        backend: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Whether repeating the same request may succeed (see the table on [`StoreError`]).
    pub fn is_retryable(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            StoreError::Throttled { .. }
            | StoreError::Timeout { .. }
            | StoreError::Server { .. }
            | StoreError::Connection { .. } => true,
            StoreError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock
                )
            }
            _ => false,
        }
    }

    /// The blob or container the error concerns.
    pub fn path(&self) -> &str {
        match self {
            StoreError::NotFound { path }
            | StoreError::AlreadyExists { path }
            | StoreError::ConditionNotMet { path }
            | StoreError::Md5Mismatch { path, .. }
            | StoreError::InvalidBlockList { path, .. }
            | StoreError::InvalidInput { path, .. }
            | StoreError::PermissionDenied { path, .. }
            | StoreError::Throttled { path, .. }
            | StoreError::Timeout { path }
            | StoreError::Server { path, .. }
            | StoreError::Connection { path, .. }
            | StoreError::Io { path, .. }
            | StoreError::Other { path, .. } => path,
        }
    }
}

/// Azure Blob Storage as the copy engine sees it: containers, block blobs written by staged
/// blocks and a commit, page blobs written in pages, properties, metadata, ranged reads and
/// listings. The engine holds an `Arc<dyn BlobStore>`; every future is `Send`.
///
/// # Contract
/// Every backend, local or remote, behaves like Azure:
/// - **Commit is atomic.** After [`commit_block_list`](Self::commit_block_list),
///   [`put_blob`](Self::put_blob) or [`create_page_blob`](Self::create_page_blob) returns, readers
///   see the whole new version; before, the whole old one (or nothing). No reader ever sees a
///   partial block blob.
/// - **Staging is idempotent.** Staging the same id twice is harmless; the last write wins.
/// - **Uncommitted blocks are invisible** to reads, properties and listings; only
///   [`get_block_list`](Self::get_block_list) shows them. A commit, a Put Blob or a delete discards
///   the blob's uncommitted blocks.
/// - A commit lists blocks by id in blob order; an id may repeat. An id that was never staged
///   (and is not in the current committed list) fails with [`StoreError::InvalidBlockList`].
/// - All block ids of one blob have the same length; a store may reject mixed lengths.
/// - **Page blobs** exist, readable as zeros, right after create; each Put Page is visible at
///   once. Writes are 512-byte aligned and at most 4 MiB; a page blob is not atomic as a whole.
/// - Conditions ([`Condition`]) are checked atomically with the write they guard.
/// - Listings are sorted by name (bytewise, as Azure) and hold committed blobs only.
/// - A store never returns or logs a credential, not even inside [`blob_url`](Self::blob_url).
///
/// # Example
/// Stage two blocks out of order, commit them in order, read the blob back:
/// ```
/// # use drivecopy::store::{local::LocalStore, BlobStore, BlockChecksum, BlockId, CommitOptions, StageBlock};
/// # use drivecopy::{digest::Md5Digest, names::BlobPath};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = LocalStore::open(dir.path())?;
/// store.create_container("pictures").await?;
/// let path = BlobPath::parse("pictures/bob/desert.jpg").expect("valid name");
/// for (n, data, offset) in [(1u32, &b"world"[..], 6u64), (0, &b"hello "[..], 0)] {
///     let data = bytes::Bytes::copy_from_slice(data);
///     let id = BlockId::new(n.to_le_bytes())?;
///     let checksum = BlockChecksum::Md5Verified(Md5Digest::of(&data));
///     store.stage_block(&path, StageBlock { id, data, checksum, offset_hint: Some(offset) }).await?;
/// }
/// let ids = [BlockId::new(0u32.to_le_bytes())?, BlockId::new(1u32.to_le_bytes())?];
/// let props = store.commit_block_list(&path, &ids, CommitOptions::default()).await?;
/// assert_eq!(props.length, 11);
/// assert_eq!(store.read_range(&path, None).await?, &b"hello world"[..]);
/// # Ok::<(), drivecopy::store::StoreError>(())
/// # }).unwrap();
/// ```
///
/// # Cancel safety
/// Dropping any returned future never leaves a partial committed blob: a dropped commit either
/// happened entirely or not at all, and a dropped stage leaves at most an unlisted block.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Create a container; succeeds if it already exists.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid name; I/O or service errors.
    async fn create_container(&self, container: &str) -> Result<(), StoreError>;

    /// All container names, sorted.
    ///
    /// # Errors
    /// I/O or service errors.
    async fn list_containers(&self) -> Result<Vec<String>, StoreError>;

    /// Put Block: stage one uncommitted block of a block blob.
    ///
    /// # Errors
    /// [`StoreError::Md5Mismatch`] for a failed [`BlockChecksum::Md5`] (nothing stored);
    /// [`StoreError::NotFound`] without the container; [`StoreError::InvalidInput`] for a block id
    /// of another length than the blob's other blocks, too many blocks, or an oversized block.
    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError>;

    /// Put Block List: make `blocks` (ids in blob order) the blob's content, atomically, and
    /// return the new properties.
    ///
    /// # Errors
    /// [`StoreError::InvalidBlockList`] for unknown ids, mixed id lengths or over 50,000 blocks;
    /// [`StoreError::AlreadyExists`] / [`StoreError::ConditionNotMet`] for a failed condition, and
    /// `AlreadyExists` when a page blob has this name (Azure 409 `InvalidBlobType`);
    /// [`StoreError::NotFound`] without the container.
    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError>;

    /// Get Block List: committed and uncommitted blocks.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the blob has neither committed nor uncommitted blocks.
    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError>;

    /// Put Blob for a page blob: create (or replace) a zero-filled page blob of `length_bytes`
    /// (a multiple of 512, at most 8 TiB).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a bad length; condition failures as for a commit.
    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError>;

    /// Put Page: write `data` at `offset_bytes` of a page blob; visible immediately.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] when offset or length is not 512-aligned, the write exceeds
    /// 4 MiB or the blob's length, or the blob is a block blob; [`StoreError::Md5Mismatch`];
    /// [`StoreError::NotFound`].
    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError>;

    /// Get Page Ranges: the written byte ranges of a page blob, sorted, adjacent ranges merged.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::InvalidInput`] for a block blob.
    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError>;

    /// Get Blob Properties. Existence is tested through [`StoreError::NotFound`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; I/O or service errors.
    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError>;

    /// Set Blob Properties: replace the HTTP properties (new ETag).
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::ConditionNotMet`].
    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError>;

    /// Set Blob Metadata: replace the user metadata (new ETag).
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::ConditionNotMet`], [`StoreError::InvalidInput`]
    /// for a bad name or over 8 KiB.
    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError>;

    /// Get Blob: the bytes of `range` (the whole blob for `None`). The end is clamped to the
    /// blob's length; an empty range or a 0-byte blob reads as empty.
    /// The whole range is returned in memory: callers bound memory by reading large blobs in
    /// ranges.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::InvalidInput`] when a non-empty range starts at or
    /// past the end (Azure 416).
    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError>;

    /// Get Blob with `If-Match: etag`: the bytes of `range` as [`read_range`](Self::read_range)
    /// reads them, only while the blob's ETag is `etag`. Reading each range of a blob this way,
    /// with the ETag its listing gave, reads one version of it however many ranges it takes, and
    /// no second request is needed to find out whether it changed.
    ///
    /// The default reads, then compares the ETag [`get_properties`](Self::get_properties) gives:
    /// as exact (a blob that had `etag` before the read and after it had it during the read, since
    /// every write makes a new ETag) but one request more. Backends answer in one request.
    ///
    /// # Errors
    /// [`StoreError::ConditionNotMet`] when the blob's ETag is not `etag` (Azure 412);
    /// otherwise as [`read_range`](Self::read_range).
    async fn read_range_if_match(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
        etag: &ETag,
    ) -> Result<Bytes, StoreError> {
        let data = self.read_range(path, range).await?;
        if self.get_properties(path).await?.etag != *etag {
            return Err(StoreError::ConditionNotMet {
                path: path.to_string(),
            });
        }
        Ok(data)
    }

    /// List Blobs: committed blobs of `container` whose names start with `prefix`, sorted by name.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without the container.
    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError>;

    /// Put Blob for a block blob: write `data` as the whole blob, atomically (used for logs).
    /// Discards the blob's uncommitted blocks. When `options.content.content_md5` is `None`,
    /// the store computes and stores one, as Azure does.
    ///
    /// # Errors
    /// Condition failures as for a commit; I/O or service errors.
    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError>;

    /// Delete Blob, with its uncommitted blocks.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::ConditionNotMet`].
    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError>;

    /// A URL naming the blob for result and log URIs; never carries a credential.
    ///
    /// # Errors
    /// I/O errors while locating the blob (the local store looks up where the blob's file is).
    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError>;

    /// Store requests repeated so far because a try failed with a retryable error: the count a
    /// retrying wrapper ([`retry::RetryStore`]) keeps, for progress events and the verbose log.
    /// Backends do not retry (see the module documentation) and report 0, the default; a wrapper
    /// that is not itself retrying should pass its inner store's count on.
    fn retries(&self) -> u64 {
        0
    }
}

/// Merge sorted-or-not byte ranges into sorted, disjoint ranges; adjacent ranges join.
pub fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Check user metadata against Azure's rules: names are C# identifiers
/// (`[A-Za-z_][A-Za-z0-9_]*`), names plus values at most [`MAX_METADATA_BYTES`] (peers.md §6).
///
/// # Errors
/// [`StoreError::InvalidInput`] naming the offending key.
pub fn validate_metadata(
    path: &BlobPath,
    metadata: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let mut total = 0usize;
    for (k, v) in metadata {
        let mut chars = k.chars();
        let ok_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::InvalidInput {
                path: path.to_string(),
                reason: format!("metadata name {k:?} is not a C# identifier"),
            });
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(StoreError::InvalidInput {
                path: path.to_string(),
                reason: format!("metadata value of {k:?} holds a control character"),
            });
        }
        total += k.len() + v.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(StoreError::InvalidInput {
            path: path.to_string(),
            reason: format!("metadata is {total} bytes, over {MAX_METADATA_BYTES}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_round_trip_and_limits() {
        let id = BlockId::from_base64("cAzn4h7VVSWXf696qp5Uaw==").unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(id.to_base64(), "cAzn4h7VVSWXf696qp5Uaw==");
        assert!(BlockId::new(vec![0u8; 64]).is_ok());
        assert!(matches!(
            BlockId::new(vec![0u8; 65]),
            Err(StoreError::InvalidInput { .. })
        ));
        assert!(matches!(
            BlockId::new(Vec::new()),
            Err(StoreError::InvalidInput { .. })
        ));
        assert!(BlockId::from_base64("not base64!").is_err());
    }

    #[test]
    fn ranges_merge_adjacent_and_overlapping() {
        assert_eq!(
            merge_ranges(vec![
                1024..2048,
                0..512,
                512..1024,
                4096..5120,
                4000..4096,
                7..7
            ]),
            vec![0..2048, 4000..5120]
        );
        assert_eq!(merge_ranges(vec![]), Vec::<Range<u64>>::new());
    }

    #[test]
    fn retryable_table() {
        let p = || "c/b".to_string();
        assert!(StoreError::Throttled {
            path: p(),
            retry_after: None
        }
        .is_retryable());
        assert!(StoreError::Server {
            path: p(),
            status: 502,
            code: None
        }
        .is_retryable());
        assert!(StoreError::Connection {
            path: p(),
            source: "reset".into()
        }
        .is_retryable());
        assert!(StoreError::Timeout { path: p() }.is_retryable());
        assert!(!StoreError::NotFound { path: p() }.is_retryable());
        assert!(!StoreError::ConditionNotMet { path: p() }.is_retryable());
        let io = |kind| StoreError::Io {
            path: p(),
            op: "write",
            file: "/x".into(),
            source: std::io::Error::from(kind),
        };
        assert!(io(std::io::ErrorKind::Interrupted).is_retryable());
        assert!(!io(std::io::ErrorKind::StorageFull).is_retryable());
        assert_eq!(StoreError::AlreadyExists { path: p() }.path(), "c/b");
    }

    #[test]
    fn metadata_rules() {
        let p = BlobPath::parse("c1c/b").unwrap();
        let m = |k: &str| BTreeMap::from([(k.to_string(), "v".to_string())]);
        assert!(validate_metadata(&p, &m("UploadMethod")).is_ok());
        assert!(validate_metadata(&p, &m("_x9")).is_ok());
        for bad in ["9x", "a-b", "", "ü"] {
            assert!(validate_metadata(&p, &m(bad)).is_err(), "{bad}");
        }
        let big = BTreeMap::from([("k".to_string(), "v".repeat(MAX_METADATA_BYTES))]);
        assert!(validate_metadata(&p, &big).is_err());
    }
}
