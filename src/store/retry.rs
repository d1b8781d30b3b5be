//! Retrying store requests: [`RetryStore`] wraps any [`BlobStore`] and repeats each request that
//! failed with a retryable [`StoreError`] (see [`StoreError::is_retryable`]), with exponential
//! backoff and full jitter, `Retry-After` honoured, a per-try timeout, a total budget per request,
//! and backoff sleeps that end when the run is cancelled.
//!
//! This is the one place where store requests are retried (style.md §5 "Retrying happens in
//! exactly one place"): backends must not retry, and the engine must not either. It owns the retry
//! policy, the backoff arithmetic and the reconciliation of conditional writes whose first try may
//! have landed (see [`RetryStore`]). It must not know about drives, manifests or logs.
//!
//! Defaults follow the peers (peers.md §2.9, §5.1 and the §6 row "Peer retry settings"): AzCopy
//! tries 20 times from 1 s up to 60 s with 15 minutes per try; object_store 10 tries from 0.1 s to
//! 15 s within 3 minutes; rustic and opendal add jitter; Azure's performance checklist asks for
//! exponential backoff on 503 and 500 and allows immediate retries of connectivity errors. We take
//! 8 tries from 0.8 s up to 60 s with full jitter (a uniformly random share of the exponential
//! step, which spreads many clients backing off at once best), a per-try timeout that grows with
//! the payload (a fixed one would either kill large blocks on a slow link or leave a hung small
//! request waiting minutes), and 15 minutes per request in all.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{
    BlobItem, BlobKind, BlobProperties, BlobStore, BlockChecksum, BlockId, BlockListing,
    CommitOptions, Condition, ContentProperties, ETag, StageBlock, StoreError,
};
use crate::digest::Md5Digest;
use crate::names::BlobPath;

/// When and how often a failed store request is tried again.
///
/// Try `n` (counting from 1) that fails with a retryable error is followed, when tries and budget
/// remain, by a sleep of a uniformly random duration in `[0, min(max_delay, base_delay × 2^(n-1))]`
/// ("full jitter"), or exactly the `Retry-After` the service sent with a
/// [`StoreError::Throttled`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request in all, the first included (at least 1). Default 8.
    pub max_tries: u32,
    /// Backoff before the first retry, before jitter. Default 0.8 s.
    pub base_delay: Duration,
    /// Cap of a backoff before jitter. Default 60 s (AzCopy's `MaxRetryDelay`).
    pub max_delay: Duration,
    /// Time one try may take before it is abandoned as [`StoreError::Timeout`] (and retried), for a
    /// request without payload. Default 120 s.
    pub try_timeout: Duration,
    /// Extra time per MiB of payload a write try may take (a floor on the transfer rate: 2 s per
    /// MiB is 512 KiB/s). Default 2 s, so a 4 MiB block gets 128 s and a 100 MiB block 320 s.
    pub try_timeout_per_mib: Duration,
    /// Wall time one request may spend in all, tries and sleeps included. No retry starts, and no
    /// backoff is slept, past it; a try already running is not cut short by it. Default 15 min.
    pub total_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 8,
            base_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            try_timeout: Duration::from_secs(120),
            try_timeout_per_mib: Duration::from_secs(2),
            total_budget: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed try `try_number` (1 for the first try), given `unit`, a random
    /// number in `[0, 1)`: `unit × min(max_delay, base_delay × 2^(try_number-1))`.
    pub fn backoff(&self, try_number: u32, unit: f64) -> Duration {
        let exp = try_number.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The timeout of one try carrying `payload_bytes` bytes: [`try_timeout`](Self::try_timeout)
    /// plus [`try_timeout_per_mib`](Self::try_timeout_per_mib) per started MiB.
    pub fn try_timeout_for(&self, payload_bytes: u64) -> Duration {
        let mib = u32::try_from(payload_bytes.div_ceil(1024 * 1024)).unwrap_or(u32::MAX);
        self.try_timeout
            .saturating_add(self.try_timeout_per_mib.saturating_mul(mib))
    }
}

/// SplitMix64: a tiny, well-mixed generator for jitter and seeded fault plans (not for secrets).
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` from 64 random bits.
pub(crate) fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A [`BlobStore`] that retries its inner store's requests under a [`RetryPolicy`].
///
/// Every method goes through one generic helper: try, and on a retryable error back off and try
/// again while tries, budget and the cancellation token allow; the last error is returned
/// otherwise. Payloads are [`Bytes`], so a re-send clones a reference, not the data.
///
/// **Writes whose first try may have landed.** A try that ends in a connection failure, a timeout
/// or a 5xx may have been carried out by the service before the response was lost (a throttled
/// request was not). Stage Block and Put Page are idempotent, so repeating them is harmless; so is
/// an unconditional commit, which finds its ids in the committed list. A conditional write is not:
/// its repeat fails [`StoreError::AlreadyExists`] or [`StoreError::ConditionNotMet`] against the
/// version its own first try made. When that happens after such an ambiguous try, `RetryStore`
/// reads the blob and reports success if it now holds exactly what was written:
/// - Put Block List: the committed list is exactly `blocks`, and the properties and metadata are
///   the ones sent;
/// - Put Blob: a block blob of the payload's length whose Content-MD5 is the payload's (the one
///   sent, or the MD5 of the bytes when none was), with the properties and metadata sent;
/// - create page blob: a page blob of that length with no page written, properties and metadata
///   as sent;
/// - Set Blob Properties / Metadata: the blob now carries the values sent;
/// - Delete Blob: a `NotFound` on the repeat is success.
///
/// Otherwise the conflict is reported as it came. Another writer who wrote the very same content
/// in between is indistinguishable from our own first try, and equivalent for the caller.
///
/// **Cancellation.** When the token given to [`RetryStore::new`] is cancelled, a backoff sleep ends
/// at once and the request fails with the error of its last try; no new retry starts. A try
/// already running is not interrupted (the engine lets started requests finish; the store's
/// cancel-safety contract is unchanged).
#[derive(Debug)]
pub struct RetryStore {
    inner: Arc<dyn BlobStore>,
    policy: RetryPolicy,
    cancel: CancellationToken,
    retries: AtomicU64,
    rng: AtomicU64,
}

/// What the retry loop ended with: the result, and whether an earlier try ended in a way that may
/// have left the write done (a connection failure, a timeout, a 5xx).
struct Tried<T> {
    result: Result<T, StoreError>,
    maybe_landed: bool,
}

impl RetryStore {
    /// Wrap `inner`; `cancel` ends backoff sleeps (usually the import's cancellation token).
    pub fn new(inner: Arc<dyn BlobStore>, policy: RetryPolicy, cancel: CancellationToken) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RetryStore {
            inner,
            policy,
            cancel,
            retries: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn random_unit(&self) -> f64 {
        let state = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        unit_interval(splitmix64(state))
    }

    /// Run `call` until it succeeds, fails for good, or tries, budget or the token run out.
    /// `payload_bytes` sizes the per-try timeout.
    async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        path: &str,
        payload_bytes: u64,
        mut call: F,
    ) -> Tried<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = tokio::time::Instant::now();
        let try_timeout = self.policy.try_timeout_for(payload_bytes);
        let mut maybe_landed = false;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let result = match tokio::time::timeout(try_timeout, call()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout {
                    path: path.to_string(),
                }),
            };
            let error = match result {
                Ok(v) => {
                    return Tried {
                        result: Ok(v),
                        maybe_landed,
                    }
                }
                Err(e) => e,
            };
            let give_up = |error| Tried {
                result: Err(error),
                maybe_landed,
            };
            if !error.is_retryable()
                || tries >= self.policy.max_tries.max(1)
                || self.cancel.is_cancelled()
            {
                return give_up(error);
            }
            let delay = match &error {
                StoreError::Throttled {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => self.policy.backoff(tries, self.random_unit()),
            };
            if started.elapsed().saturating_add(delay) >= self.policy.total_budget {
                return give_up(error);
            }
            tracing::debug!(op, path, try_number = tries, ?delay, error = %error, "retrying a store request");
            let landed = !matches!(error, StoreError::Throttled { .. });
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => return give_up(error),
            }
            maybe_landed |= landed;
        }
    }

    /// Read the blob's properties (with retries); `None` when that fails.
    async fn current(&self, path: &BlobPath) -> Option<BlobProperties> {
        let p = path.to_string();
        self.run("get_properties", &p, 0, || self.inner.get_properties(path))
            .await
            .result
            .ok()
    }

    /// Whether a conditional write that reported a conflict after an ambiguous try is in fact
    /// our own landed write (see the type's documentation); returns its current properties.
    async fn landed(
        &self,
        path: &BlobPath,
        kind: BlobKind,
        length: Option<u64>,
        options: &CommitOptions,
    ) -> Option<BlobProperties> {
        let props = self.current(path).await?;
        let same = props.kind == kind
            && length.is_none_or(|l| l == props.length)
            && metadata_matches(&options.metadata, &props.metadata)
            && content_matches(&options.content, &props.content);
        same.then_some(props)
    }
}

/// Whether stored content properties are the ones a write sent. A property the write did not
/// send is left to the store (Azure, for one, stores `application/octet-stream` as the default
/// Content-Type and computes a Put Blob's Content-MD5), so it is not compared.
fn content_matches(sent: &ContentProperties, stored: &ContentProperties) -> bool {
    fn same<T: PartialEq>(sent: &Option<T>, stored: &Option<T>) -> bool {
        sent.is_none() || sent == stored
    }
    same(&sent.content_type, &stored.content_type)
        && same(&sent.content_encoding, &stored.content_encoding)
        && same(&sent.content_language, &stored.content_language)
        && same(&sent.cache_control, &stored.cache_control)
        && same(&sent.content_disposition, &stored.content_disposition)
        && same(&sent.content_md5, &stored.content_md5)
}

/// Whether stored metadata is what a write sent. Names compare case-insensitively, as Azure
/// treats them (and as the Azure backend returns them, lowercased).
fn metadata_matches(sent: &BTreeMap<String, String>, stored: &BTreeMap<String, String>) -> bool {
    let fold = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    fold(sent) == fold(stored)
}

/// Whether `e` is the conflict a repeated conditional write meets when its first try landed.
fn is_conflict(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::AlreadyExists { .. } | StoreError::ConditionNotMet { .. }
    )
}

#[async_trait]
impl BlobStore for RetryStore {
    async fn create_container(&self, container: &str) -> Result<(), StoreError> {
        self.run("create_container", container, 0, || {
            self.inner.create_container(container)
        })
        .await
        .result
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        self.run("list_containers", "", 0, || self.inner.list_containers())
            .await
            .result
    }

    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError> {
        let p = path.to_string();
        let len = block.data.len() as u64;
        self.run("stage_block", &p, len, || {
            self.inner.stage_block(path, block.clone())
        })
        .await
        .result
    }

    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let tried = self
            .run("commit_block_list", &p, 0, || {
                self.inner.commit_block_list(path, blocks, options.clone())
            })
            .await;
        match tried.result {
            Err(e) if tried.maybe_landed && is_conflict(&e) => {
                let listing = self
                    .run("get_block_list", &p, 0, || self.inner.get_block_list(path))
                    .await
                    .result;
                let committed_same = listing.is_ok_and(|l| {
                    l.committed.len() == blocks.len()
                        && l.committed.iter().zip(blocks).all(|((id, _), b)| id == b)
                });
                if !committed_same {
                    return Err(e);
                }
                match self.landed(path, BlobKind::BlockBlob, None, &options).await {
                    Some(props) => Ok(props),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError> {
        let p = path.to_string();
        self.run("get_block_list", &p, 0, || self.inner.get_block_list(path))
            .await
            .result
    }

    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let tried = self
            .run("create_page_blob", &p, 0, || {
                self.inner
                    .create_page_blob(path, length_bytes, options.clone())
            })
            .await;
        match tried.result {
            Err(e) if tried.maybe_landed && is_conflict(&e) => {
                let Some(props) = self
                    .landed(path, BlobKind::PageBlob, Some(length_bytes), &options)
                    .await
                else {
                    return Err(e);
                };
                let untouched = self
                    .run("get_page_ranges", &p, 0, || {
                        self.inner.get_page_ranges(path)
                    })
                    .await
                    .result
                    .is_ok_and(|r| r.is_empty());
                if untouched {
                    Ok(props)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError> {
        let p = path.to_string();
        let len = data.len() as u64;
        self.run("put_pages", &p, len, || {
            self.inner
                .put_pages(path, offset_bytes, data.clone(), checksum)
        })
        .await
        .result
    }

    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        let p = path.to_string();
        self.run("get_page_ranges", &p, 0, || {
            self.inner.get_page_ranges(path)
        })
        .await
        .result
    }

    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        self.run("get_properties", &p, 0, || self.inner.get_properties(path))
            .await
            .result
    }

    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let tried = self
            .run("set_properties", &p, 0, || {
                self.inner
                    .set_properties(path, content.clone(), condition.clone())
            })
            .await;
        match tried.result {
            Err(e) if tried.maybe_landed && is_conflict(&e) => match self.current(path).await {
                Some(props) if content_matches(&content, &props.content) => Ok(props),
                _ => Err(e),
            },
            other => other,
        }
    }

    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let tried = self
            .run("set_metadata", &p, 0, || {
                self.inner
                    .set_metadata(path, metadata.clone(), condition.clone())
            })
            .await;
        match tried.result {
            Err(e) if tried.maybe_landed && is_conflict(&e) => match self.current(path).await {
                Some(props) if props.metadata == metadata => Ok(props),
                _ => Err(e),
            },
            other => other,
        }
    }

    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let p = path.to_string();
        let len = range.as_ref().map_or(0, |r| r.end.saturating_sub(r.start));
        self.run("read_range", &p, len, || {
            self.inner.read_range(path, range.clone())
        })
        .await
        .result
    }

    async fn read_range_if_match(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
        etag: &ETag,
    ) -> Result<Bytes, StoreError> {
        let p = path.to_string();
        let len = range.as_ref().map_or(0, |r| r.end.saturating_sub(r.start));
        self.run("read_range", &p, len, || {
            self.inner.read_range_if_match(path, range.clone(), etag)
        })
        .await
        .result
    }

    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        self.run("list_blobs", container, 0, || {
            self.inner.list_blobs(container, prefix)
        })
        .await
        .result
    }

    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let len = data.len() as u64;
        let tried = self
            .run("put_blob", &p, len, || {
                self.inner.put_blob(path, data.clone(), options.clone())
            })
            .await;
        match tried.result {
            Err(e) if tried.maybe_landed && is_conflict(&e) => {
                let md5 = options
                    .content
                    .content_md5
                    .unwrap_or_else(|| Md5Digest::of(&data));
                match self
                    .landed(path, BlobKind::BlockBlob, Some(len), &options)
                    .await
                {
                    Some(props) if props.content.content_md5 == Some(md5) => Ok(props),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError> {
        let p = path.to_string();
        let tried = self
            .run("delete_blob", &p, 0, || {
                self.inner.delete_blob(path, condition.clone())
            })
            .await;
        match tried.result {
            Err(StoreError::NotFound { .. }) if tried.maybe_landed => Ok(()),
            other => other,
        }
    }

    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError> {
        let p = path.to_string();
        self.run("blob_url", &p, 0, || self.inner.blob_url(path))
            .await
            .result
    }

    fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed) + self.inner.retries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faulty::{Fault, FaultKind, FaultPlan, FaultyStore};
    use crate::store::local::LocalStore;

    fn blob() -> BlobPath {
        BlobPath::parse("c1c/dir/b.bin").expect("valid path")
    }

    #[test]
    fn a_landed_write_is_recognised_whatever_the_store_filled_in() {
        let sent = ContentProperties {
            content_type: None,
            content_md5: Some(Md5Digest::of(b"x")),
            ..ContentProperties::default()
        };
        let mut stored = sent.clone();
        stored.content_type = Some("application/octet-stream".into());
        assert!(content_matches(&sent, &stored), "a default the store chose");
        stored.content_md5 = Some(Md5Digest::of(b"y"));
        assert!(!content_matches(&sent, &stored), "another blob's MD5");
        let meta = |k: &str| BTreeMap::from([(k.to_string(), "v".to_string())]);
        assert!(metadata_matches(
            &meta("UploadMethod"),
            &meta("uploadmethod")
        ));
        assert!(!metadata_matches(&meta("UploadMethod"), &meta("other")));
    }

    struct Rig {
        _dir: tempfile::TempDir,
        faulty: Arc<FaultyStore>,
        store: RetryStore,
        cancel: CancellationToken,
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            ..RetryPolicy::default()
        }
    }

    async fn rig(policy: RetryPolicy, plan: FaultPlan) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let local = LocalStore::open(dir.path())
            .expect("open store")
            .with_fsync(false);
        local.create_container("c1c").await.expect("container");
        let faulty = Arc::new(FaultyStore::new(Arc::new(local), plan));
        let cancel = CancellationToken::new();
        let inner: Arc<dyn BlobStore> = faulty.clone();
        let store = RetryStore::new(inner, policy, cancel.clone());
        Rig {
            _dir: dir,
            faulty,
            store,
            cancel,
        }
    }

    fn server(status: u16) -> StoreError {
        StoreError::Server {
            path: "c1c/dir/b.bin".to_string(),
            status,
            code: None,
        }
    }

    fn throttled(after: Duration) -> StoreError {
        StoreError::Throttled {
            path: "c1c/dir/b.bin".to_string(),
            retry_after: Some(after),
        }
    }

    async fn put(r: &Rig, data: &'static [u8], condition: Condition) -> Result<(), StoreError> {
        let options = CommitOptions {
            condition,
            ..CommitOptions::default()
        };
        r.store
            .put_blob(&blob(), Bytes::from_static(data), options)
            .await
            .map(|_| ())
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(1600));
        // The cap: 0.8 s × 2^9 would be 409.6 s.
        assert_eq!(p.backoff(10, 0.5), Duration::from_secs(30));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(p.try_timeout_for(0), Duration::from_secs(120));
        assert_eq!(p.try_timeout_for(4 * 1024 * 1024), Duration::from_secs(128));
        assert_eq!(
            p.try_timeout_for(4 * 1024 * 1024 + 1),
            Duration::from_secs(130)
        );
        let units: Vec<f64> = (0..1000u64).map(|i| unit_interval(splitmix64(i))).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = units.iter().sum::<f64>() / units.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let r = rig(fast(), FaultPlan::default()).await;
        r.faulty.script([
            Fault::Refuse(server(503)),
            Fault::Refuse(StoreError::Connection {
                path: "c1c/dir/b.bin".to_string(),
                source: "reset".into(),
            }),
            Fault::Refuse(StoreError::Timeout {
                path: "c1c/dir/b.bin".to_string(),
            }),
        ]);
        put(&r, b"hello", Condition::None).await.expect("put");
        assert_eq!(r.faulty.requests(), 4);
        assert_eq!(r.store.retries(), 3);
        let back = r.store.read_range(&blob(), None).await.expect("read");
        assert_eq!(&back[..], b"hello");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_tries_with_the_last_error() {
        let r = rig(fast(), FaultPlan::default()).await;
        r.faulty.script([
            Fault::Refuse(server(500)),
            Fault::Refuse(server(502)),
            Fault::Refuse(server(503)),
            Fault::Refuse(server(500)),
            Fault::Refuse(server(504)),
            Fault::Refuse(server(500)),
        ]);
        let e = put(&r, b"hello", Condition::None).await.unwrap_err();
        assert!(matches!(e, StoreError::Server { status: 504, .. }), "{e:?}");
        assert_eq!(r.faulty.requests(), 5);
        assert_eq!(r.store.retries(), 4);
        // The sixth fault fails the next request's first try only.
        assert!(matches!(
            r.store.get_properties(&blob()).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(r.store.retries(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_are_returned_at_once() {
        let r = rig(fast(), FaultPlan::default()).await;
        r.faulty
            .script([Fault::Refuse(StoreError::PermissionDenied {
                path: "c1c/dir/b.bin".to_string(),
                source: None,
            })]);
        let e = put(&r, b"hello", Condition::None).await.unwrap_err();
        assert!(matches!(e, StoreError::PermissionDenied { .. }), "{e:?}");
        // A real conflict, too, is not retried.
        put(&r, b"hello", Condition::None).await.expect("put");
        let e = put(&r, b"other", Condition::IfNoneMatchStar)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");
        assert_eq!(r.faulty.requests(), 3);
        assert_eq!(r.store.retries(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let r = rig(fast(), FaultPlan::default()).await;
        r.faulty
            .script([Fault::Refuse(throttled(Duration::from_secs(30)))]);
        let start = tokio::time::Instant::now();
        put(&r, b"hello", Condition::None).await.expect("put");
        // Virtual time: the paused clock moved exactly as far as the sleeps asked.
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(start.elapsed() < Duration::from_secs(31));
        assert_eq!(r.store.retries(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_try_times_out_and_is_retried() {
        let policy = RetryPolicy {
            try_timeout: Duration::from_secs(5),
            try_timeout_per_mib: Duration::ZERO,
            ..fast()
        };
        let r = rig(policy, FaultPlan::default()).await;
        r.faulty.script([Fault::Hang, Fault::Hang]);
        let start = tokio::time::Instant::now();
        put(&r, b"hello", Condition::None).await.expect("put");
        assert!(start.elapsed() >= Duration::from_secs(10));
        assert_eq!(r.faulty.requests(), 3);
        assert_eq!(r.store.retries(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_budget_stops_retries() {
        let policy = RetryPolicy {
            total_budget: Duration::from_secs(10),
            ..fast()
        };
        let r = rig(policy, FaultPlan::default()).await;
        r.faulty
            .script([Fault::Refuse(throttled(Duration::from_secs(20)))]);
        let start = tokio::time::Instant::now();
        let e = put(&r, b"hello", Condition::None).await.unwrap_err();
        assert!(matches!(e, StoreError::Throttled { .. }), "{e:?}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(r.faulty.requests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_ends_a_backoff_sleep() {
        let policy = RetryPolicy {
            total_budget: Duration::from_secs(7200),
            ..fast()
        };
        let r = rig(policy, FaultPlan::default()).await;
        r.faulty
            .script([Fault::Refuse(throttled(Duration::from_secs(3600)))]);
        let cancel = r.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let start = tokio::time::Instant::now();
        let e = put(&r, b"hello", Condition::None).await.unwrap_err();
        assert!(matches!(e, StoreError::Throttled { .. }), "{e:?}");
        assert!(r.cancel.is_cancelled());
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(r.faulty.requests(), 1);
        // Once cancelled, a failing request gets one try only.
        r.faulty.script([Fault::Refuse(server(503))]);
        let second = put(&r, b"hello", Condition::None).await;
        assert!(
            second.is_err(),
            "{second:?} after {} requests",
            r.faulty.requests()
        );
        assert_eq!(r.faulty.requests(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_landed_conditional_write_is_recognised() {
        let r = rig(fast(), FaultPlan::default()).await;
        let lost = || StoreError::Connection {
            path: "c1c/dir/b.bin".to_string(),
            source: "response lost".into(),
        };
        // Put Blob with If-None-Match: * lands, the response is lost, the repeat meets our blob.
        r.faulty.script([Fault::Land(lost())]);
        put(&r, b"hello", Condition::IfNoneMatchStar)
            .await
            .expect("our own landed write is a success");
        // A different blob in the way is still a conflict.
        r.faulty.script([Fault::Refuse(lost())]);
        let e = put(&r, b"other", Condition::IfNoneMatchStar)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");

        // The same for a block commit.
        let path = BlobPath::parse("c1c/blocks").expect("path");
        let ids: Vec<BlockId> = (0u32..2)
            .map(|n| BlockId::new(n.to_le_bytes()).expect("id"))
            .collect();
        for (n, id) in ids.iter().enumerate() {
            let data = Bytes::from(vec![n as u8; 100]);
            let block = StageBlock {
                id: id.clone(),
                checksum: BlockChecksum::Md5(Md5Digest::of(&data)),
                data,
                offset_hint: Some(100 * n as u64),
            };
            r.store.stage_block(&path, block).await.expect("stage");
        }
        let options = CommitOptions {
            condition: Condition::IfNoneMatchStar,
            metadata: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..CommitOptions::default()
        };
        r.faulty.script([Fault::Land(lost())]);
        let props = r
            .store
            .commit_block_list(&path, &ids, options.clone())
            .await
            .expect("our own landed commit is a success");
        assert_eq!(props.length, 200);
        // Committing another list over it after an ambiguous try is still refused.
        r.faulty.script([Fault::Refuse(lost())]);
        let e = r
            .store
            .commit_block_list(&path, &ids[..1], options)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");

        // A delete whose first try landed.
        r.faulty.script([Fault::Land(lost())]);
        r.store
            .delete_blob(&path, Condition::None)
            .await
            .expect("our own landed delete is a success");
        assert!(matches!(
            r.store.get_properties(&path).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    /// The whole store contract holds through a store that cuts a third of all connections,
    /// landing about half of the cut writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_contract_holds_through_cut_connections() {
        let plan = FaultPlan {
            fraction: 0.3,
            seed: 7,
            kind: FaultKind::Cut,
            ..FaultPlan::default()
        };
        let policy = RetryPolicy {
            max_tries: 12,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            ..RetryPolicy::default()
        };
        let r = rig(policy, plan).await;
        crate::store::conformance::run_all(&r.store, "cut").await;
        assert!(r.faulty.faults() > 0);
        assert!(r.store.retries() >= r.faulty.faults());
    }
}
