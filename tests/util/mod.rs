//! Shared helpers for the integration tests: temporary drives filled with generated data, a
//! prepare-then-import harness over a [`LocalStore`], a store wrapper that cancels an import
//! after a number of commits, and a runner that repeats a scenario under both I/O engines.
//!
//! Helpers panic with a message on any setup failure: they only ever run inside tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use drivecopy::copylog::DriveLog;
use drivecopy::engine::import::{import_drive, ImportConfig, ImportReport};
use drivecopy::engine::prepare::{prepare, ItemType, PrepareConfig, PrepareReport, PrepareSource};
use drivecopy::engine::read::IoEngine;
use drivecopy::events::{CollectEvents, Event};
use drivecopy::manifest::{DriveManifest, ImportDisposition};
use drivecopy::names::BlobPath;
use drivecopy::store::azure::{resolve, AzureStore};
use drivecopy::store::local::LocalStore;
use drivecopy::store::{
    BlobItem, BlobProperties, BlobStore, BlockChecksum, BlockId, BlockListing, CommitOptions,
    Condition, ContentProperties, StageBlock, StoreError,
};
use tokio_util::sync::CancellationToken;

/// The environment variable naming the shared Azurite endpoint
/// (`http://127.0.0.1:PORT/devstoreaccount1`); `scripts/azurite.sh` sets it.
pub const AZURITE_ENV: &str = "DRIVECOPY_TEST_AZURITE";

/// The Azurite endpoint, or `None` after printing why `test` is skipped.
pub fn azurite_endpoint(test: &str) -> Option<String> {
    match std::env::var(AZURITE_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Written to the real stderr, past the test harness's capture, so that a plain
            // `cargo test` shows what it skipped.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipping {test} against Azurite: {AZURITE_ENV} not set (scripts/test.sh starts Azurite)"
            );
            None
        }
    }
}

/// A name part unique to this process and call: lowercase letters and digits, so that
/// `{unique}-{container}` stays a valid container name (Azurite is shared by all tests).
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}{:x}{:x}n{}",
        std::process::id(),
        nanos % 0xfffff,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// An [`AzureStore`] on the Azurite `endpoint`, authorized by `UseDevelopmentStorage=true`
/// (drivecopy signs its own account SAS with the well-known emulator key).
pub fn azurite_store(endpoint: &str) -> Arc<AzureStore> {
    let env = BTreeMap::from([(
        "AZURE_STORAGE_CONNECTION_STRING".to_string(),
        "UseDevelopmentStorage=true".to_string(),
    )]);
    let resolved = resolve(endpoint, &env, None).expect("resolve the azurite endpoint");
    let http = drivecopy::store::azure::http_client(16).expect("http client");
    Arc::new(AzureStore::new(resolved, http, &env).expect("azure store"))
}

/// Where a scenario's blobs go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A [`LocalStore`] in the fixture's temp dir.
    Local,
    /// The shared Azurite at this endpoint, containers prefixed per fixture.
    Azurite(String),
}

impl Backend {
    /// `local` or `azurite`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Azurite(_) => "azurite",
        }
    }
}

/// The local backend, and Azurite when [`AZURITE_ENV`] is set (otherwise says why not).
pub fn backends(test: &str) -> Vec<Backend> {
    let mut out = vec![Backend::Local];
    out.extend(azurite_endpoint(test).map(Backend::Azurite));
    out
}

/// Run `scenario` for every backend of [`backends`] and every engine of [`engines`].
pub fn each_backend<F, Fut>(test: &str, scenario: F)
where
    F: Fn(Backend, IoEngine) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends(test) {
        for engine in engines() {
            eprintln!(
                "scenario against the {} store under the {} engine",
                backend.name(),
                engine.as_str()
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build a tokio runtime");
            rt.block_on(scenario(backend.clone(), engine));
        }
    }
}

/// A store that prefixes every container name with `prefix` (and hides other containers), so
/// that tests sharing one Azurite never see each other's containers.
#[derive(Debug)]
pub struct Prefixed {
    /// The real store.
    pub inner: Arc<dyn BlobStore>,
    /// Prepended to every container name (ends in `-`).
    pub prefix: String,
}

impl Prefixed {
    fn c(&self, container: &str) -> String {
        format!("{}{container}", self.prefix)
    }
    fn p(&self, path: &BlobPath) -> BlobPath {
        BlobPath {
            container: self.c(&path.container),
            name: path.name.clone(),
        }
    }
}

#[async_trait]
impl BlobStore for Prefixed {
    async fn create_container(&self, container: &str) -> Result<(), StoreError> {
        self.inner.create_container(&self.c(container)).await
    }
    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .list_containers()
            .await?
            .into_iter()
            .filter_map(|c| c.strip_prefix(&self.prefix).map(str::to_string))
            .collect())
    }
    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError> {
        self.inner.stage_block(&self.p(path), block).await
    }
    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner
            .commit_block_list(&self.p(path), blocks, options)
            .await
    }
    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError> {
        self.inner.get_block_list(&self.p(path)).await
    }
    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner
            .create_page_blob(&self.p(path), length_bytes, options)
            .await
    }
    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError> {
        self.inner
            .put_pages(&self.p(path), offset_bytes, data, checksum)
            .await
    }
    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        self.inner.get_page_ranges(&self.p(path)).await
    }
    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError> {
        self.inner.get_properties(&self.p(path)).await
    }
    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner
            .set_properties(&self.p(path), content, condition)
            .await
    }
    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner
            .set_metadata(&self.p(path), metadata, condition)
            .await
    }
    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        self.inner.read_range(&self.p(path), range).await
    }
    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        self.inner.list_blobs(&self.c(container), prefix).await
    }
    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.put_blob(&self.p(path), data, options).await
    }
    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete_blob(&self.p(path), condition).await
    }
    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError> {
        self.inner.blob_url(&self.p(path)).await
    }
}

/// Read a whole blob through the store and compare it with `expected`.
pub async fn assert_blob(store: &dyn BlobStore, blob_path: &str, expected: &[u8]) {
    let got = store
        .read_range(&blob(blob_path), None)
        .await
        .unwrap_or_else(|e| panic!("read {blob_path}: {e:?}"));
    assert!(
        got == expected,
        "{blob_path}: stored bytes differ from the source ({} vs {} bytes)",
        got.len(),
        expected.len()
    );
}

/// The drive id every prepared test drive carries.
pub const DRIVE_ID: &str = "TESTDRIVE01";

/// The engines to run: `Std` always, `Uring` when the kernel allows io_uring (otherwise the
/// reason is printed and it is skipped).
pub fn engines() -> Vec<IoEngine> {
    let mut out = vec![IoEngine::Std];
    match IoEngine::feature_test() {
        Ok(()) => out.push(IoEngine::Uring),
        Err(e) => eprintln!("skipping the uring engine: io_uring unavailable: {e}"),
    }
    out
}

/// Run `scenario` once per engine of [`engines`], each on its own tokio multi-thread runtime.
pub fn each_engine<F, Fut>(scenario: F)
where
    F: Fn(IoEngine) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for engine in engines() {
        eprintln!("scenario under the {} engine", engine.as_str());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        rt.block_on(scenario(engine));
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), never all zero for a non-empty output.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    if let Some(first) = out.first_mut() {
        *first |= 1;
    }
    out
}

/// One test's directories: the source tree, the drive, the store, and a place outside the drive.
pub struct Fixture {
    /// Keeps every directory alive for the test.
    pub tmp: tempfile::TempDir,
    /// Source files to prepare.
    pub src: PathBuf,
    /// The drive root.
    pub drive: PathBuf,
    /// The local store root.
    pub store_root: PathBuf,
    /// A directory beside the drive (for files that must never be imported).
    pub outside: PathBuf,
    /// Where [`Fixture::target`] puts blobs.
    pub backend: Backend,
    /// The Azurite store of this fixture (containers prefixed), made on first use.
    azure: std::sync::OnceLock<Arc<dyn BlobStore>>,
}

impl Fixture {
    /// Fresh, empty directories; blobs in a local store.
    pub fn new() -> Fixture {
        Fixture::on(Backend::Local)
    }

    /// Fresh, empty directories; blobs go to `backend` through [`Fixture::target`].
    pub fn on(backend: Backend) -> Fixture {
        let tmp = tempfile::tempdir().expect("create a temp dir");
        let base = tmp.path().to_path_buf();
        let dirs = ["src", "drive", "store", "outside"].map(|d| {
            let p = base.join(d);
            std::fs::create_dir_all(&p).expect("create a fixture dir");
            p
        });
        let [src, drive, store_root, outside] = dirs;
        Fixture {
            tmp,
            src,
            drive,
            store_root,
            outside,
            backend,
            azure: std::sync::OnceLock::new(),
        }
    }

    /// Write `data` to `src/<rel>` (creating directories) and return the data.
    pub fn source_file(&self, rel: &str, data: Vec<u8>) -> Vec<u8> {
        write_file(&self.src.join(rel), &data);
        data
    }

    /// Prepare the whole `src` tree onto the drive as `container/` blobs.
    pub fn prepare(&self, container: &str, block_size_bytes: u64) -> PrepareReport {
        self.prepare_with(vec![self.source(container)], block_size_bytes)
    }

    /// A source for the whole `src` tree into `container/`, with automatic item types and no
    /// disposition, metadata or properties.
    pub fn source(&self, container: &str) -> PrepareSource {
        PrepareSource {
            base_path: self.src.clone(),
            destination: format!("{container}/"),
            item_type: ItemType::Auto,
            disposition: None,
            metadata_file: None,
            properties_file: None,
        }
    }

    /// Prepare the given sources onto the drive.
    pub fn prepare_with(
        &self,
        sources: Vec<PrepareSource>,
        block_size_bytes: u64,
    ) -> PrepareReport {
        let config = PrepareConfig {
            drive_root: self.drive.clone(),
            sources,
            in_place: false,
            block_size_bytes,
            manifest_file: r"\DriveManifest.xml".to_string(),
            drive_id: DRIVE_ID.to_string(),
            credential: None,
            threads: Some(2),
        };
        let report = prepare(&config).expect("prepare the drive");
        assert!(
            report.skipped.is_empty(),
            "prepare skipped files: {:?}",
            report.skipped
        );
        report
    }

    /// The drive's manifest, parsed.
    pub fn manifest(&self) -> DriveManifest {
        let bytes = std::fs::read(self.drive.join("DriveManifest.xml")).expect("read the manifest");
        DriveManifest::parse(&bytes).expect("parse the manifest")
    }

    /// Replace the drive's manifest.
    pub fn write_manifest(&self, manifest: &DriveManifest) {
        write_file(
            &self.drive.join("DriveManifest.xml"),
            manifest.to_xml().as_bytes(),
        );
    }

    /// A local store at `store_root`, without fsync.
    pub fn store(&self) -> Arc<LocalStore> {
        Arc::new(
            LocalStore::open(&self.store_root)
                .expect("open the store")
                .with_fsync(false),
        )
    }

    /// The store of this fixture's backend: the local store at `store_root`, or the shared
    /// Azurite with this fixture's own container prefix. The same store on every call.
    pub fn target(&self) -> Arc<dyn BlobStore> {
        match &self.backend {
            Backend::Local => self.store(),
            Backend::Azurite(endpoint) => Arc::clone(self.azure.get_or_init(|| {
                Arc::new(Prefixed {
                    inner: azurite_store(endpoint),
                    prefix: format!("{}-", unique("t")),
                })
            })),
        }
    }

    /// Another, empty store of the same backend: a local store in `tmp/<tag>`, or the shared
    /// Azurite with a fresh container prefix.
    pub fn fresh_target(&self, tag: &str) -> Arc<dyn BlobStore> {
        match &self.backend {
            Backend::Local => Arc::new(
                LocalStore::open(&self.tmp.path().join(tag))
                    .expect("open the store")
                    .with_fsync(false),
            ),
            Backend::Azurite(endpoint) => Arc::new(Prefixed {
                inner: azurite_store(endpoint),
                prefix: format!("{}-", unique("f")),
            }),
        }
    }

    /// The scheme of log URIs the backend returns (`file://` or `http://`).
    pub fn uri_scheme(&self) -> &'static str {
        match self.backend {
            Backend::Local => "file://",
            Backend::Azurite(_) => "http://",
        }
    }

    /// An import configuration for the drive with small buffers.
    pub fn config(&self, engine: IoEngine) -> ImportConfig {
        let mut c = ImportConfig::new(&self.drive, engine);
        c.memory_bytes = 4 * 1024 * 1024;
        c.hash_threads = Some(2);
        c.job_name = Some("itest".to_string());
        c
    }

    /// The store file of a committed blob with a plain name (`container/a/b.txt`).
    pub fn store_file(&self, blob: &str) -> PathBuf {
        self.store_root.join(blob)
    }

    /// Every regular file under `dir`, recursively.
    pub fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(p),
                    Ok(t) if t.is_file() => out.push(p),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }
}

/// Write `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A blob path from `container/name` text.
pub fn blob(path: &str) -> BlobPath {
    BlobPath::parse(path).unwrap_or_else(|e| panic!("blob path {path}: {e}"))
}

/// Run one import and return its report and the events it sent.
pub async fn run_import(
    config: &ImportConfig,
    store: Arc<dyn BlobStore>,
    cancel: CancellationToken,
) -> (ImportReport, Vec<Event>) {
    let events = Arc::new(CollectEvents::default());
    let report = import_drive(config, store, events.clone(), cancel)
        .await
        .expect("import runs");
    let events = std::mem::take(&mut *events.0.lock().expect("events lock"));
    (report, events)
}

/// The error log the import wrote into the store's diagnostics container, parsed.
pub async fn error_log(store: &dyn BlobStore) -> DriveLog {
    let logs = store
        .list_blobs("waimportexport", "waies/")
        .await
        .expect("list the diagnostics");
    let errors: Vec<&BlobItem> = logs
        .iter()
        .filter(|b| b.name.ends_with("_error.xml"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error log: {:?}",
        logs.iter().map(|b| &b.name).collect::<Vec<_>>()
    );
    let path = BlobPath {
        container: "waimportexport".to_string(),
        name: errors[0].name.clone(),
    };
    assert!(
        path.name.starts_with("waies/itest_"),
        "log name {}",
        path.name
    );
    let bytes = store
        .read_range(&path, None)
        .await
        .expect("read the error log");
    DriveLog::parse(&bytes).expect("parse the error log")
}

/// A disposition shorthand for sources.
pub fn disposition(d: &str) -> Option<ImportDisposition> {
    Some(ImportDisposition::from_manifest_str(d).expect("a known disposition"))
}

/// A store that forwards to another store and cancels `token` once `remaining` block lists
/// have been committed (or, with `count_pages`, once `remaining` Put Page calls are done).
#[derive(Debug)]
pub struct CancelAfterCommits {
    /// The real store.
    pub inner: Arc<dyn BlobStore>,
    /// The import's token.
    pub token: CancellationToken,
    /// Commits (or Put Pages) left before cancelling.
    pub remaining: AtomicUsize,
    /// Count Put Page calls instead of commits.
    pub count_pages: bool,
}

impl CancelAfterCommits {
    /// Cancel after `n` block-list commits.
    pub fn commits(inner: Arc<dyn BlobStore>, token: CancellationToken, n: usize) -> Self {
        CancelAfterCommits {
            inner,
            token,
            remaining: AtomicUsize::new(n),
            count_pages: false,
        }
    }

    /// Cancel after `n` Put Page calls.
    pub fn pages(inner: Arc<dyn BlobStore>, token: CancellationToken, n: usize) -> Self {
        CancelAfterCommits {
            inner,
            token,
            remaining: AtomicUsize::new(n),
            count_pages: true,
        }
    }

    fn count(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.token.cancel();
        }
    }
}

#[async_trait]
impl BlobStore for CancelAfterCommits {
    async fn create_container(&self, container: &str) -> Result<(), StoreError> {
        self.inner.create_container(container).await
    }
    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list_containers().await
    }
    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError> {
        self.inner.stage_block(path, block).await
    }
    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let out = self.inner.commit_block_list(path, blocks, options).await;
        if !self.count_pages {
            self.count();
        }
        out
    }
    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError> {
        self.inner.get_block_list(path).await
    }
    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner
            .create_page_blob(path, length_bytes, options)
            .await
    }
    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError> {
        let out = self
            .inner
            .put_pages(path, offset_bytes, data, checksum)
            .await;
        if self.count_pages {
            self.count();
        }
        out
    }
    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        self.inner.get_page_ranges(path).await
    }
    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError> {
        self.inner.get_properties(path).await
    }
    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.set_properties(path, content, condition).await
    }
    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.set_metadata(path, metadata, condition).await
    }
    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        self.inner.read_range(path, range).await
    }
    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        self.inner.list_blobs(container, prefix).await
    }
    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.put_blob(path, data, options).await
    }
    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete_blob(path, condition).await
    }
    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError> {
        self.inner.blob_url(path).await
    }
}

/// What one run of the `drivecopy` binary printed and how it ended.
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Run {
    /// stdout parsed as one JSON value; panics with the whole run described when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    /// The exit code and both streams, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Collect a finished process's output.
pub fn finish(output: std::process::Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The environment variable naming the `azurite-blob` executable, for tests that start their
/// own emulator; `scripts/azurite.sh` sets it.
pub const AZURITE_BIN_ENV: &str = "DRIVECOPY_AZURITE_BIN";

/// The `azurite-blob` executable, or `None` after printing why `test` is skipped.
pub fn azurite_bin(test: &str) -> Option<PathBuf> {
    tool_from_env(test, AZURITE_BIN_ENV, "against a private Azurite")
}

/// The executable environment variable `var` names, or `None` after printing (past the test
/// harness's capture) why `test` is skipped.
fn tool_from_env(test: &str, var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(bin) if !bin.is_empty() => Some(PathBuf::from(bin)),
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipping {test} {what}: {var} not set (scripts/azurite.sh sets it)"
            );
            None
        }
    }
}

/// AzCopy, as `scripts/azurite.sh` installs it (`DRIVECOPY_AZCOPY_BIN`).
pub struct AzCopy(PathBuf);

impl AzCopy {
    /// AzCopy, or `None` after printing why `test` is skipped.
    pub fn find(test: &str) -> Option<AzCopy> {
        tool_from_env(test, "DRIVECOPY_AZCOPY_BIN", "with AzCopy").map(AzCopy)
    }

    /// `azcopy copy ARGS --skip-version-check` (never reach beyond 127.0.0.1), with its logs,
    /// plans and `~/.azcopy` under `home` (azure-sdk-notes.md §8 item 13); its stdout. Panics
    /// when AzCopy fails.
    pub fn copy(&self, home: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.0)
            .arg("copy")
            .args(args)
            .arg("--skip-version-check")
            .env("HOME", home)
            .env("AZCOPY_LOG_LOCATION", home.join("log"))
            .env("AZCOPY_JOB_PLAN_LOCATION", home.join("plan"))
            .output()
            .expect("run azcopy");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "azcopy {args:?} failed: {text}");
        text
    }
}
