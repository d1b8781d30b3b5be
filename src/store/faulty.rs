//! [`FaultyStore`]: a test wrapper that makes any [`BlobStore`] fail the way a real network and
//! service do, so the retry layer and the engine can be tested without one (issue 4 item 4).
//!
//! Built only for tests and the `testing` feature. It owns fault injection and the request and
//! byte counters tests read; it must not retry, and it must never corrupt data: every fault is
//! either a request that did not happen or a request that happened whole and lost its response,
//! as with Azure, where a request is carried out entirely or not at all.
//!
//! # Fault modes
//! A request is one call of a store method. Each is identified by a *key*: the method, the blob
//! (or container) and what distinguishes the request within the blob (the block id, the page
//! offset, the range); the n-th call with the same key is its try n. Faults come from, in order:
//! 1. **The script** ([`FaultyStore::script`]): queued faults, each used by the next request
//!    whatever it is (for unit tests that need one exact sequence).
//! 2. **The first tries** ([`FaultPlan::first_tries`]): tries 1..=N of every key fail.
//! 3. **Every k-th request** ([`FaultPlan::every`]): requests k, 2k, 3k, … in arrival order fail
//!    (arrival order depends on scheduling, so which requests these are may vary between runs).
//! 4. **A fraction** ([`FaultPlan::fraction`]): a request fails when a hash of the seed, its key
//!    and its try number falls under the fraction. This does not depend on scheduling: the same
//!    seed fails the same tries of the same requests in every run.
//!
//! A planned fault takes the form [`FaultPlan::kind`] names:
//! - [`FaultKind::Refuse`]: the request is not carried out and fails with a retryable error,
//!   rotating through `Throttled` (503 `ServerBusy`), `Server` 500 `InternalError`, `Server` 502
//!   and `Timeout`.
//! - [`FaultKind::Cut`]: the connection is cut mid-body. A write (Put Block, Put Page, Put Blob,
//!   commit, create, set, delete) is then carried out or not, decided by the same seeded hash: a
//!   staged block may or may not have landed, a commit may have happened with its response lost.
//!   A read is carried out and its response discarded. Either way the caller gets
//!   [`StoreError::Connection`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::retry::{splitmix64, unit_interval};
use super::{
    BlobItem, BlobProperties, BlobStore, BlockChecksum, BlockId, BlockListing, CommitOptions,
    Condition, ContentProperties, ETag, StageBlock, StoreError,
};
use crate::names::BlobPath;

/// One injected fault.
#[derive(Debug)]
pub enum Fault {
    /// The request is not carried out; it fails with this error.
    Refuse(StoreError),
    /// The request is carried out whole, then fails with this error (a lost response).
    Land(StoreError),
    /// The connection is cut mid-body: a write is carried out or not (seeded), a read is carried
    /// out; the caller gets [`StoreError::Connection`].
    Cut,
    /// The request never answers (to exercise per-try timeouts); it is not carried out.
    Hang,
}

/// The form a planned fault takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultKind {
    /// Not carried out; a retryable service error (see the module documentation).
    #[default]
    Refuse,
    /// A connection cut mid-body (see the module documentation).
    Cut,
}

/// Which requests fail (see the module documentation for each mode). The default fails nothing:
/// the wrapper then only counts.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Fail tries 1 to N of every request (0: none).
    pub first_tries: u32,
    /// Fail every k-th request in arrival order (`None` or `Some(0)`: none).
    pub every: Option<u64>,
    /// Fail this share of tries, 0.0 to 1.0, decided by a seeded hash of the request and try.
    pub fraction: f64,
    /// The seed of the fraction and of the cut writes' coin.
    pub seed: u64,
    /// The form planned faults take.
    pub kind: FaultKind,
}

/// A [`BlobStore`] that injects the faults of a [`FaultPlan`] (and of a script) into the
/// requests it passes to its inner store, and counts requests, faults and payload bytes.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn BlobStore>,
    plan: FaultPlan,
    script: Mutex<VecDeque<Fault>>,
    tries: Mutex<HashMap<String, u32>>,
    requests: AtomicU64,
    faults: AtomicU64,
    bytes_offered: AtomicU64,
    bytes_landed: AtomicU64,
    trip: Mutex<Option<(u64, CancellationToken)>>,
}

/// FNV-1a: a stable 64-bit hash of a request key.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

impl FaultyStore {
    /// Wrap `inner` with `plan`.
    pub fn new(inner: Arc<dyn BlobStore>, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            plan,
            script: Mutex::new(VecDeque::new()),
            tries: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            bytes_offered: AtomicU64::new(0),
            bytes_landed: AtomicU64::new(0),
            trip: Mutex::new(None),
        }
    }

    /// Queue `faults`: each is used by the next request, before the plan is consulted.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        if let Ok(mut q) = self.script.lock() {
            q.extend(faults);
        }
    }

    /// Cancel `token` once `bytes` payload bytes have landed in the inner store (the operator's
    /// Ctrl-C, or a crash, at a chosen point of an import). Writes already under way finish.
    pub fn cancel_after_bytes(&self, bytes: u64, token: CancellationToken) {
        if let Ok(mut t) = self.trip.lock() {
            *t = Some((bytes, token));
        }
    }

    fn landed(&self, payload: u64) {
        let total = self.bytes_landed.fetch_add(payload, Ordering::Relaxed) + payload;
        if let Ok(t) = self.trip.lock() {
            if let Some((at, token)) = t.as_ref() {
                if payload > 0 && total >= *at {
                    token.cancel();
                }
            }
        }
    }

    /// Requests received (every try counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Faults injected.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Payload bytes of every data write received (Put Block, Put Page, Put Blob), carried out
    /// or not: what went over the wire, bytes.
    pub fn bytes_offered(&self) -> u64 {
        self.bytes_offered.load(Ordering::Relaxed)
    }

    /// Payload bytes of the data writes passed to the inner store, bytes.
    pub fn bytes_landed(&self) -> u64 {
        self.bytes_landed.load(Ordering::Relaxed)
    }

    /// The fault for this request, if any, and a seeded coin for cut writes.
    fn decide(&self, key: &str, path: &str) -> (Option<Fault>, bool) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let try_number = match self.tries.lock() {
            Ok(mut t) => {
                let c = t.entry(key.to_string()).or_insert(0);
                *c += 1;
                *c
            }
            Err(_) => 1,
        };
        let bits = splitmix64(self.plan.seed ^ fnv1a(key) ^ u64::from(try_number).rotate_left(32));
        let coin = bits & 1 == 1;
        if let Some(f) = self.script.lock().ok().and_then(|mut q| q.pop_front()) {
            return (Some(f), coin);
        }
        let planned = try_number <= self.plan.first_tries
            || self
                .plan
                .every
                .is_some_and(|k| k > 0 && n.is_multiple_of(k))
            || unit_interval(splitmix64(bits)) < self.plan.fraction;
        if !planned {
            return (None, coin);
        }
        let fault = match self.plan.kind {
            FaultKind::Cut => Fault::Cut,
            FaultKind::Refuse => Fault::Refuse(refusal(path, bits)),
        };
        (Some(fault), coin)
    }

    /// Pass one request through: `payload` is the data bytes of a data write, `write` says
    /// whether a cut may leave it not carried out.
    async fn call<T, F, Fut>(
        &self,
        key: String,
        path: &str,
        write: bool,
        payload: u64,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (fault, coin) = self.decide(&key, path);
        self.bytes_offered.fetch_add(payload, Ordering::Relaxed);
        let Some(fault) = fault else {
            let result = f().await;
            self.landed(payload);
            return result;
        };
        self.faults.fetch_add(1, Ordering::Relaxed);
        let cut = || StoreError::Connection {
            path: path.to_string(),
            source: "injected: connection cut mid-body".into(),
        };
        let carry_out = match &fault {
            Fault::Refuse(_) | Fault::Hang => false,
            Fault::Land(_) => true,
            Fault::Cut => !write || coin,
        };
        if carry_out {
            // The response is lost whatever it said.
            let _ = f().await;
            self.landed(payload);
        }
        match fault {
            Fault::Refuse(e) | Fault::Land(e) => Err(e),
            Fault::Cut => Err(cut()),
            Fault::Hang => std::future::pending().await,
        }
    }
}

/// A retryable service error for a refused request, chosen by `bits`.
fn refusal(path: &str, bits: u64) -> StoreError {
    let path = path.to_string();
    match (bits >> 1) % 4 {
        0 => StoreError::Throttled {
            path,
            retry_after: None,
        },
        1 => StoreError::Server {
            path,
            status: 500,
            code: Some("InternalError".to_string()),
        },
        2 => StoreError::Server {
            path,
            status: 502,
            code: None,
        },
        _ => StoreError::Timeout { path },
    }
}

#[async_trait]
impl BlobStore for FaultyStore {
    async fn create_container(&self, container: &str) -> Result<(), StoreError> {
        let key = format!("create_container {container}");
        self.call(key, container, true, 0, || {
            self.inner.create_container(container)
        })
        .await
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        self.call("list_containers".to_string(), "", false, 0, || {
            self.inner.list_containers()
        })
        .await
    }

    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError> {
        let key = format!("stage_block {path} {}", block.id);
        let len = block.data.len() as u64;
        self.call(key, &path.to_string(), true, len, || {
            self.inner.stage_block(path, block)
        })
        .await
    }

    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let key = format!("commit_block_list {path}");
        self.call(key, &path.to_string(), true, 0, || {
            self.inner.commit_block_list(path, blocks, options)
        })
        .await
    }

    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError> {
        let key = format!("get_block_list {path}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.get_block_list(path)
        })
        .await
    }

    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let key = format!("create_page_blob {path}");
        self.call(key, &path.to_string(), true, 0, || {
            self.inner.create_page_blob(path, length_bytes, options)
        })
        .await
    }

    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError> {
        let key = format!("put_pages {path} {offset_bytes}");
        let len = data.len() as u64;
        self.call(key, &path.to_string(), true, len, || {
            self.inner.put_pages(path, offset_bytes, data, checksum)
        })
        .await
    }

    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        let key = format!("get_page_ranges {path}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.get_page_ranges(path)
        })
        .await
    }

    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError> {
        let key = format!("get_properties {path}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.get_properties(path)
        })
        .await
    }

    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let key = format!("set_properties {path}");
        self.call(key, &path.to_string(), true, 0, || {
            self.inner.set_properties(path, content, condition)
        })
        .await
    }

    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let key = format!("set_metadata {path}");
        self.call(key, &path.to_string(), true, 0, || {
            self.inner.set_metadata(path, metadata, condition)
        })
        .await
    }

    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let key = format!("read_range {path} {range:?}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.read_range(path, range)
        })
        .await
    }

    async fn read_range_if_match(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
        etag: &ETag,
    ) -> Result<Bytes, StoreError> {
        // The same key as a plain read: a fault script for reads covers both.
        let key = format!("read_range {path} {range:?}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.read_range_if_match(path, range, etag)
        })
        .await
    }

    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        let key = format!("list_blobs {container} {prefix}");
        self.call(key, container, false, 0, || {
            self.inner.list_blobs(container, prefix)
        })
        .await
    }

    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let key = format!("put_blob {path}");
        let len = data.len() as u64;
        self.call(key, &path.to_string(), true, len, || {
            self.inner.put_blob(path, data, options)
        })
        .await
    }

    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError> {
        let key = format!("delete_blob {path}");
        self.call(key, &path.to_string(), true, 0, || {
            self.inner.delete_blob(path, condition)
        })
        .await
    }

    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError> {
        let key = format!("blob_url {path}");
        self.call(key, &path.to_string(), false, 0, || {
            self.inner.blob_url(path)
        })
        .await
    }

    fn retries(&self) -> u64 {
        self.inner.retries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Md5Digest;
    use crate::store::local::LocalStore;

    async fn local() -> (tempfile::TempDir, Arc<dyn BlobStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::open(dir.path())
            .expect("open store")
            .with_fsync(false);
        store.create_container("c1c").await.expect("container");
        (dir, Arc::new(store))
    }

    fn path(n: usize) -> BlobPath {
        BlobPath::parse(&format!("c1c/b{n}")).expect("path")
    }

    /// Which of 200 `get_properties` requests (20 blobs, 10 tries each) fail under `plan`.
    async fn failures(plan: FaultPlan) -> Vec<bool> {
        let (_dir, inner) = local().await;
        let store = FaultyStore::new(inner, plan);
        let mut out = Vec::new();
        for _ in 0..10 {
            for n in 0..20 {
                let r = store.get_properties(&path(n)).await;
                out.push(!matches!(r, Err(StoreError::NotFound { .. })));
            }
        }
        assert_eq!(store.requests(), 200);
        assert_eq!(store.faults(), out.iter().filter(|f| **f).count() as u64);
        out
    }

    #[tokio::test]
    async fn a_seeded_fraction_is_deterministic() {
        let plan = |seed| FaultPlan {
            fraction: 0.2,
            seed,
            ..FaultPlan::default()
        };
        let a = failures(plan(5)).await;
        let b = failures(plan(5)).await;
        let c = failures(plan(6)).await;
        assert_eq!(a, b);
        assert_ne!(a, c);
        let share = a.iter().filter(|f| **f).count();
        assert!((20..=60).contains(&share), "{share} of 200 failed");
        assert!(failures(FaultPlan::default()).await.iter().all(|f| !f));
    }

    #[tokio::test]
    async fn first_tries_and_every_kth_request() {
        let first = failures(FaultPlan {
            first_tries: 2,
            ..FaultPlan::default()
        })
        .await;
        // Tries 1 and 2 of each of the 20 blobs, nothing after.
        assert!(first[..40].iter().all(|f| *f));
        assert!(first[40..].iter().all(|f| !f));
        let every = failures(FaultPlan {
            every: Some(7),
            ..FaultPlan::default()
        })
        .await;
        for (i, f) in every.iter().enumerate() {
            assert_eq!(*f, (i + 1) % 7 == 0, "request {}", i + 1);
        }
    }

    #[tokio::test]
    async fn a_cut_write_lands_or_not_and_a_cut_read_is_carried_out() {
        let (_dir, inner) = local().await;
        let plan = FaultPlan {
            first_tries: 1,
            seed: 3,
            kind: FaultKind::Cut,
            ..FaultPlan::default()
        };
        let store = FaultyStore::new(Arc::clone(&inner), plan);
        let mut landed = 0;
        for n in 0..40 {
            let data = Bytes::from(vec![n as u8; 10]);
            let e = store
                .put_blob(&path(n), data, CommitOptions::default())
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Connection { .. }), "{e:?}");
            if inner.get_properties(&path(n)).await.is_ok() {
                landed += 1;
            }
        }
        // Both outcomes happen.
        assert!(
            (1..40).contains(&landed),
            "{landed} of 40 cut writes landed"
        );
        assert_eq!(store.bytes_offered(), 400);
        assert_eq!(store.bytes_landed(), 10 * landed);
        // A read is cut after the store answered; the second try passes.
        let id = BlockId::new(*b"id").expect("id");
        let data = Bytes::from_static(b"block");
        let block = StageBlock {
            id,
            checksum: BlockChecksum::Md5(Md5Digest::of(&data)),
            data,
            offset_hint: None,
        };
        inner.stage_block(&path(99), block).await.expect("stage");
        assert!(store.get_block_list(&path(99)).await.is_err());
        let listing = store.get_block_list(&path(99)).await.expect("second try");
        assert_eq!(listing.uncommitted.len(), 1);
    }
}
