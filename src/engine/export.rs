//! The export pipeline: blobs in, files on a drive with their side files and the export
//! manifest out, plus a drive log, the incomplete blob list and a report.
//!
//! For one drive (azure-import-export.md §1, §2, §3, §4.1, §5.6):
//! 1. read the blob list (inline, or a blob in the store: malformed is `BlobListFormatInvalid`),
//!    resolve it and split it for the drive's usable bytes with [`plan`] — the same functions
//!    `plan-export` uses, so the plan and the export cannot disagree; map every blob name to a
//!    file name ([`drivename`], recorded as `FileNameMapped` warnings, in the manifest and in the
//!    drive log);
//! 2. export the blobs, several at once. Each is cut into ranges along its committed blocks
//!    (merged up to 4 MiB; a longer block is split) or, for a page blob, along its valid page
//!    ranges (holes are never read nor written, so the file stays sparse). Ranges are downloaded
//!    several at a time, memory bounded by a semaphore on bytes in flight; each range is hashed
//!    (MD5 for the manifest) and written at its offset through the [`Writer`] into a temp file
//!    under `\.drivecopy-tmp`. The whole file's MD5 is compared with the blob's `Content-MD5`
//!    when it has one (a mismatch logs the blob `CompletedWithErrors` with `Properties`
//!    `Corrupted`). Every range is read with `If-Match` the ETag the listing gave, so the file
//!    holds one version of the blob: another ETag is `BlobUnexpectedChange` and the file is
//!    dropped (a blob with nothing to read gets one empty read). Then `<file>.properties` and
//!    `<file>.metadata` (§3) are written beside it and the data file is renamed into place last,
//!    so a blob that failed, was cancelled or ran out of space leaves no partial file (its side
//!    files are removed again);
//! 3. write the export manifest `\<DriveId>.manifest` (per-block and per-page-range MD5, export
//!    block Ids `base64(u32 LE index)` as in the service's sample, §1.5), the error and verbose
//!    logs, and, when some blobs did not fit, the incomplete blob list as a blob next to the logs.
//!    With `fsync` the drive's file system is flushed once (`syncfs`) before the manifest is
//!    written, so the manifest is the commit point: files renamed into place are not synced one
//!    by one.
//!
//! Drive state is derived as for import ([`crate::copylog::DriveLogStatus::from_blobs`]); an export
//! drive starts `Received`. Store reads are not retried here: the caller gives a store wrapped in
//! `store::retry::RetryStore` when it is remote (style.md §5: retrying happens in one place).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use md5_many::{Digest as _, Md5};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bloblist::BlobList;
use crate::copylog::{
    BlobLog, BlobStatus, BlockLog, DriveLog, DriveLogStatus, FileLog, FileLogStatus,
    HashedPath as LogPath, RangeList, RangeLog, RangeStatus,
};
use crate::digest::Md5Digest;
use crate::engine::diagnostics::{
    write_diagnostics, DiagnosticsKind, DiagnosticsTarget, DEFAULT_DIAGNOSTICS_PATH,
};
use crate::engine::drivename::{self, NameMap};
use crate::engine::hash::{nonzero_page_ranges, HashPool};
use crate::engine::import::{percent, LogLevel};
use crate::engine::plan::{self, PlanBlob, RANGE_BYTES};
use crate::engine::read::{open_root, IoEngine};
use crate::engine::write::{free_bytes, DirCache, DriveDir, DriveFlush, WriteFile, Writer};
use crate::events::{warning, Event, EventSink, ProgressEvent, StartEvent, SCHEMA_VERSION};
use crate::manifest::{self, DriveManifest};
use crate::metadata::{Metadata, Properties};
use crate::names::{BlobPath, DrivePath};
use crate::store::StoreError;
use crate::store::{BlobKind, BlobProperties, BlobStore, ContentProperties, ETag};

/// The manifest `Version` the export writes: the one on the service's export drives (§0).
pub const EXPORT_MANIFEST_VERSION: &str = "2011-10-01";
/// The `ClientCreator` the export writes (§1.3: free text, not interpreted).
pub const CLIENT_CREATOR: &str = concat!("drivecopy ", env!("CARGO_PKG_VERSION"));
/// The directory at the drive root that holds files while they are written.
pub const TEMP_DIR: &str = ".drivecopy-tmp";
/// Default memory for ranges in flight, bytes.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of blobs exported at once. Small blobs spend most of their time waiting (a
/// store read, a write, the hash pool, the rename), so many must be in flight: 2 GiB of 256 KiB
/// blobs export about 7 % faster with 64 than with 16, and the hash pool then finds more blocks
/// to hash side by side. Memory stays bounded by `memory_bytes` whatever the count.
pub const DEFAULT_BLOBS_IN_FLIGHT: usize = 64;
/// Default number of ranges of one blob downloaded at once.
pub const DEFAULT_RANGES_PER_BLOB: usize = 8;
/// The granule at which a page blob's all-zero data is left as a hole instead of written:
/// one file-system block.
pub const SPARSE_GRANULE_BYTES: usize = 4096;
/// How often progress events are sent.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Where the blob list comes from.
#[derive(Debug, Clone)]
pub enum BlobListSource {
    /// The list document's bytes (a `--blob-list FILE`).
    Document(Vec<u8>),
    /// A block blob in the store holding the list (`blobListBlobPath`, §4.1).
    Blob(BlobPath),
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The drive's root directory.
    pub drive_root: PathBuf,
    /// The drive id; names the manifest `\<DriveId>.manifest` and the logs.
    pub drive_id: String,
    /// The blob list.
    pub blob_list: BlobListSource,
    /// Usable capacity of the drive in bytes; `None` for the free space of its file system.
    pub capacity_bytes: Option<u64>,
    /// The job name used in log blob names (`drivecopy` when absent).
    pub job_name: Option<String>,
    /// The diagnostics path (`container` or `container/dir`).
    pub diagnostics_path: String,
    /// How much the drive log says.
    pub log_level: LogLevel,
    /// Memory for ranges in flight, bytes (at least one range of 4 MiB). The writer adds its
    /// own [`crate::engine::write::DIRECT_BUFFERS`] aligned 4 MiB buffers for `O_DIRECT` copies.
    pub memory_bytes: u64,
    /// Blobs exported at once.
    pub blobs_in_flight: usize,
    /// Ranges of one blob downloaded at once.
    pub ranges_per_blob: usize,
    /// The I/O engine writing the drive.
    pub io_engine: IoEngine,
    /// Why `io_engine` is not the preferred one; sent as an `IoEngineFallback` warning.
    pub io_engine_remark: Option<String>,
    /// Write aligned ranges with `O_DIRECT` where the file system allows it.
    pub direct_io: bool,
    /// Make the drive durable before the manifest is written: one `syncfs` of the drive's file
    /// system after the last file, then the manifest written and `fdatasync`ed. The manifest is
    /// the commit point: a drive with a manifest holds every file it lists.
    pub fsync: bool,
    /// Hashing threads; `None` for one per core.
    pub hash_threads: Option<usize>,
}

impl ExportConfig {
    /// A configuration with the documented defaults.
    pub fn new(
        drive_root: impl Into<PathBuf>,
        drive_id: impl Into<String>,
        blob_list: BlobListSource,
        io_engine: IoEngine,
    ) -> Self {
        ExportConfig {
            drive_root: drive_root.into(),
            drive_id: drive_id.into(),
            blob_list,
            capacity_bytes: None,
            job_name: None,
            diagnostics_path: DEFAULT_DIAGNOSTICS_PATH.to_string(),
            log_level: LogLevel::Error,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            blobs_in_flight: DEFAULT_BLOBS_IN_FLIGHT,
            ranges_per_blob: DEFAULT_RANGES_PER_BLOB,
            io_engine,
            io_engine_remark: None,
            direct_io: true,
            fsync: true,
            hash_threads: None,
        }
    }

    /// The manifest's path on the drive: `\<DriveId>.manifest` (§1.1), the id mapped like a
    /// file name.
    pub fn manifest_file(&self) -> String {
        format!("\\{}", manifest_name(&self.drive_id))
    }
}

fn manifest_name(drive_id: &str) -> String {
    format!("{}.manifest", drivename::map_segment(drive_id))
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The drive log (verbose form): one entry per blob placed on this drive.
    pub drive_log: DriveLog,
    /// Bytes of the blobs placed on this drive.
    pub bytes_total: u64,
    /// Bytes of the blobs exported completely.
    pub bytes_succeeded: u64,
    /// URL of the error log blob, if one was written.
    pub error_log_uri: Option<String>,
    /// URL of the verbose log blob, if one was written.
    pub verbose_log_uri: Option<String>,
    /// URL of the incomplete blob list (`incompleteBlobListUri`), when some blobs did not fit.
    pub incomplete_blob_list_uri: Option<String>,
    /// The blobs that did not fit (the incomplete blob list), in order.
    pub incomplete: Vec<BlobPath>,
    /// True when the run was cancelled before every blob was done.
    pub cancelled: bool,
    /// Store requests the retry layer repeated ([`BlobStore::retries`]) during the run.
    pub retries: u64,
    /// The manifest's path on the drive (`\<DriveId>.manifest`).
    pub manifest_file: String,
    /// MD5 of the manifest written, when it was written.
    pub manifest_md5: Option<Md5Digest>,
    /// Blob path → file path for every name the mapping changed.
    pub name_mappings: BTreeMap<String, String>,
}

impl ExportReport {
    /// The drive log status (the ARM `copyStatus`).
    pub fn status(&self) -> &DriveLogStatus {
        &self.drive_log.status
    }

    /// True for a drive-level failure ([`DriveLogStatus::is_drive_failure`]).
    pub fn is_drive_failure(&self) -> bool {
        self.drive_log.status.is_drive_failure()
    }

    /// Blobs that did not end `Completed` ([`DriveLog::blobs_failed`]).
    pub fn blobs_failed(&self) -> u64 {
        self.drive_log.blobs_failed()
    }
}

/// A failure that prevents an export from producing any result (the station is broken).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer service could not start.
    #[error("start the {engine:?} writer")]
    Writer {
        /// The engine asked for.
        engine: IoEngine,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The hashing threads could not start.
    #[error("start the hash pool")]
    HashPool(#[from] crate::engine::hash::HashPoolError),
}

/// Export blobs onto one drive.
///
/// Emits `start`, `progress` (at most once per [`PROGRESS_INTERVAL`]) and `warning` events; the
/// caller writes the `result`. Drive-level failures (a malformed blob list, a forbidden or
/// failing listing, a drive that cannot be opened, a manifest that cannot be written) come back
/// as a report whose drive log status says so.
///
/// # Errors
/// [`ExportError`] only when the writer or the hash pool cannot start.
///
/// # Cancel safety
/// When `cancel` fires no new range is started; blobs not finished leave no file, are logged
/// `Failed` with `Cancelled` ranges, and the report says `cancelled`. The manifest lists the
/// blobs that were finished.
pub async fn export_drive(
    config: &ExportConfig,
    store: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> Result<ExportReport, ExportError> {
    let mut report = export(config, Arc::clone(&store), events, cancel).await?;
    report.retries = store.retries();
    Ok(report)
}

async fn export(
    config: &ExportConfig,
    store: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> Result<ExportReport, ExportError> {
    let started_at = OffsetDateTime::now_utc();
    let job = config
        .job_name
        .clone()
        .unwrap_or_else(|| "drivecopy".to_string());
    let mut report = ExportReport {
        drive_log: DriveLog::new(config.drive_id.clone(), Vec::new()),
        bytes_total: 0,
        bytes_succeeded: 0,
        error_log_uri: None,
        verbose_log_uri: None,
        incomplete_blob_list_uri: None,
        incomplete: Vec::new(),
        cancelled: false,
        retries: 0,
        manifest_file: config.manifest_file(),
        manifest_md5: None,
        name_mappings: BTreeMap::new(),
    };
    let fail = |report: &mut ExportReport, status: DriveLogStatus, message: String| {
        events.emit(warning(status.as_str(), message, None));
        report.drive_log.status = status;
    };

    let prepared = match prepare(config, store.as_ref()).await {
        Ok(p) => p,
        Err((status, message)) => {
            events.emit(start_event(config, 0, 0, (0, 0)));
            fail(&mut report, status, message);
            write_logs(
                config,
                &job,
                started_at,
                store.as_ref(),
                events.as_ref(),
                &mut report,
                None,
            )
            .await;
            return Ok(report);
        }
    };
    let Prepared {
        root,
        tmp,
        flush,
        resolved,
        split,
        files,
    } = prepared;
    let blobs = &resolved.blobs;
    report.bytes_total = split.blob_bytes;
    let selected_paths: Vec<BlobPath> = split
        .selected
        .iter()
        .map(|&i| blobs[i].path.clone())
        .collect();
    report.name_mappings = drivename::changed(&selected_paths, &files);

    let range_bytes = RANGE_BYTES as usize;
    let buffer_count = (config.memory_bytes / RANGE_BYTES).max(1) as usize;
    let writer =
        Writer::start(config.io_engine, range_bytes).map_err(|source| ExportError::Writer {
            engine: config.io_engine,
            source,
        })?;
    let hasher = HashPool::new(config.hash_threads)?;
    events.emit(start_event(
        config,
        split.blob_bytes,
        split.selected.len() as u64,
        (buffer_count, range_bytes),
    ));
    if let Some(remark) = &config.io_engine_remark {
        events.emit(warning("IoEngineFallback", remark.clone(), None));
    }
    for (blob, file) in &report.name_mappings {
        events.emit(warning(
            "FileNameMapped",
            format!("blob {blob} is written as {file}"),
            Some(blob.clone()),
        ));
    }
    for missing in &resolved.nonexistent {
        events.emit(warning(
            "BlobPathNotFound",
            format!("blob list entry {missing} matches no blob"),
            Some(missing.to_string()),
        ));
    }

    let memory_permits =
        usize::try_from(config.memory_bytes.max(RANGE_BYTES)).unwrap_or(usize::MAX);
    let ctx = Arc::new(Ctx {
        store: Arc::clone(&store),
        writer,
        hasher,
        dirs: DirCache::new(Arc::clone(&root)),
        root,
        tmp,
        flush,
        memory: Arc::new(Semaphore::new(memory_permits.min(Semaphore::MAX_PERMITS))),
        cancel: cancel.clone(),
        direct_io: config.direct_io,
        ranges_per_blob: config.ranges_per_blob.max(1),
        counters: Counters::default(),
        events: Arc::clone(&events),
    });
    let ticker = spawn_progress(
        Arc::clone(&ctx),
        split.blob_bytes,
        split.selected.len() as u64,
    );

    let mut results: Vec<Option<BlobOutcome>> = vec![None; split.selected.len()];
    let gate = Arc::new(Semaphore::new(config.blobs_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    for (slot, (&i, file)) in split.selected.iter().zip(&files).enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let permit = tokio::select! {
            p = Arc::clone(&gate).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = cancel.cancelled() => break,
        };
        let ctx = Arc::clone(&ctx);
        let blob = blobs[i].clone();
        let file = file.clone();
        tasks.spawn(async move {
            let outcome = export_blob(&ctx, slot, &blob, file).await;
            ctx.counters.blobs_done.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            (slot, outcome)
        });
        while let Some(done) = tasks.try_join_next() {
            collect(done, &mut results);
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(done, &mut results);
    }
    ticker.abort();

    let mut incomplete: Vec<usize> = split.rest.clone();
    let mut manifest_blobs = Vec::new();
    let mut logs = Vec::new();
    for (slot, (&i, file)) in split.selected.iter().zip(&files).enumerate() {
        let blob = &blobs[i];
        let outcome = results[slot]
            .take()
            .unwrap_or_else(|| BlobOutcome::cancelled(blob, file.as_ref()));
        if outcome.interrupted {
            report.cancelled = true;
        }
        if outcome.no_space {
            events.emit(warning(
                "DriveFull",
                format!(
                    "blob {} did not fit; it goes to the incomplete blob list",
                    blob.path
                ),
                Some(blob.path.to_string()),
            ));
            incomplete.push(i);
            continue;
        }
        report.bytes_succeeded += outcome.bytes_succeeded;
        if let Some(m) = outcome.manifest {
            manifest_blobs.push(m);
        }
        logs.push(outcome.log);
    }
    incomplete.sort_unstable();
    report.incomplete = incomplete.iter().map(|&i| blobs[i].path.clone()).collect();
    report.drive_log = DriveLog::new(config.drive_id.clone(), logs);
    emit_progress(&ctx, split.blob_bytes, split.selected.len() as u64);

    // The manifest: every blob whose file is on the drive.
    let manifest = DriveManifest {
        version: Some(EXPORT_MANIFEST_VERSION.to_string()),
        drive: manifest::Drive {
            drive_id: config.drive_id.clone(),
            credential: None,
            client_creator: Some(CLIENT_CREATOR.to_string()),
            blob_lists: vec![manifest::BlobList {
                id: None,
                metadata_path: None,
                properties_path: None,
                blobs: manifest_blobs,
                source_offset: Default::default(),
            }],
            source_offset: Default::default(),
        },
    };
    let xml = manifest.to_xml();
    let name = manifest_name(&config.drive_id);
    if let Some(flush) = &ctx.flush {
        if let Err(e) = flush.flush() {
            fail(
                &mut report,
                DriveLogStatus::DiskOperationFailed,
                format!("flush the drive: {e}"),
            );
        }
    }
    match ctx
        .root_dir()
        .and_then(|d| d.write_small(&name, ".drivecopy-manifest.tmp", xml.as_bytes(), true))
    {
        Ok(()) => report.manifest_md5 = Some(Md5Digest::of(xml.as_bytes())),
        Err(e) => fail(
            &mut report,
            DriveLogStatus::DiskOperationFailed,
            format!("write the drive manifest {name}: {e}"),
        ),
    }
    if let Ok(root) = ctx.root_dir() {
        let _ = root.remove_dir(TEMP_DIR);
    }

    let incomplete_list =
        (!report.incomplete.is_empty()).then(|| plan::blob_list_of(blobs, &incomplete));
    write_logs(
        config,
        &job,
        started_at,
        store.as_ref(),
        events.as_ref(),
        &mut report,
        incomplete_list,
    )
    .await;
    Ok(report)
}

fn start_event(config: &ExportConfig, bytes: u64, blobs: u64, pool: (usize, usize)) -> Event {
    Event::Start(StartEvent {
        schema_version: SCHEMA_VERSION,
        command: "export".to_string(),
        drive_id: Some(config.drive_id.clone()),
        job: config.job_name.clone(),
        io_engine: config.io_engine.as_str().to_string(),
        bytes_total: bytes,
        blobs_total: blobs,
        destination: Some(config.drive_root.display().to_string()),
        buffer_count: pool.0,
        buffer_bytes: pool.1,
    })
}

/// Everything decided before the first byte moves.
struct Prepared {
    root: Arc<File>,
    tmp: DriveDir,
    flush: Option<DriveFlush>,
    resolved: plan::Resolved,
    split: plan::DriveSplit,
    files: Vec<Option<DrivePath>>,
}

/// Read the blob list, open the drive, resolve and split, map names.
async fn prepare(
    config: &ExportConfig,
    store: &dyn BlobStore,
) -> Result<Prepared, (DriveLogStatus, String)> {
    let list = read_blob_list(&config.blob_list, store).await?;
    let root = open_root(&config.drive_root).map_err(|e| {
        let status = if e.kind() == io::ErrorKind::NotFound {
            DriveLogStatus::DiskNotFound
        } else {
            DriveLogStatus::DiskOperationFailed
        };
        (
            status,
            format!("open the drive {}: {e}", config.drive_root.display()),
        )
    })?;
    let disk_failed = |what: &str, e: io::Error| {
        (
            DriveLogStatus::DiskOperationFailed,
            format!("{what} on {}: {e}", config.drive_root.display()),
        )
    };
    let tmp_path = DrivePath::from_segments([TEMP_DIR, "x"]).ok_or_else(|| {
        (
            DriveLogStatus::InternalError,
            "the temp directory name is invalid".to_string(),
        )
    })?;
    let tmp = DriveDir::parent_of(&root, &tmp_path)
        .map_err(|e| disk_failed("create the temp directory", e))?;
    let flush = config
        .fsync
        .then(|| DriveFlush::open(&root))
        .transpose()
        .map_err(|e| disk_failed("open the drive for flushing", e))?;
    let capacity = match config.capacity_bytes {
        Some(c) => c,
        None => free_bytes(&root).map_err(|e| disk_failed("read the free space", e))?,
    };
    let resolved = plan::resolve(store, &list)
        .await
        .map_err(|e| store_drive_failure(&e, "resolve the blob list"))?;
    let all: Vec<usize> = (0..resolved.blobs.len()).collect();
    let split = plan::plan_drive(&resolved.blobs, &all, plan::usable_bytes(capacity));
    let paths: Vec<BlobPath> = split
        .selected
        .iter()
        .map(|&i| resolved.blobs[i].path.clone())
        .collect();
    let manifest = manifest_name(&config.drive_id);
    let files = NameMap::new(&[manifest.as_str(), TEMP_DIR]).assign(&paths);
    Ok(Prepared {
        root: Arc::new(root),
        tmp,
        flush,
        resolved,
        split,
        files,
    })
}

fn store_drive_failure(e: &StoreError, what: &str) -> (DriveLogStatus, String) {
    let status = match e {
        StoreError::PermissionDenied { .. } => DriveLogStatus::BlobRequestForbidden,
        _ => DriveLogStatus::InternalError,
    };
    (status, format!("{what}: {e}"))
}

async fn read_blob_list(
    source: &BlobListSource,
    store: &dyn BlobStore,
) -> Result<BlobList, (DriveLogStatus, String)> {
    let bytes = match source {
        BlobListSource::Document(b) => Bytes::copy_from_slice(b),
        BlobListSource::Blob(path) => store.read_range(path, None).await.map_err(|e| match e {
            StoreError::NotFound { .. } => (
                DriveLogStatus::BlobListFormatInvalid,
                format!("the blob list blob {path} does not exist"),
            ),
            e => store_drive_failure(&e, "read the blob list blob"),
        })?,
    };
    BlobList::parse(&bytes).map_err(|e| {
        let mut message = format!("the blob list is invalid: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        (DriveLogStatus::BlobListFormatInvalid, message)
    })
}

/// Shared state of one export run.
struct Ctx {
    store: Arc<dyn BlobStore>,
    writer: Writer,
    hasher: HashPool,
    root: Arc<File>,
    /// The directories blobs were placed in, kept open.
    dirs: DirCache,
    /// The drive's flush handle (with `fsync`), opened before the first write, used once
    /// before the manifest is written.
    flush: Option<DriveFlush>,
    tmp: DriveDir,
    /// Bytes of ranges in flight (downloaded, not yet written and hashed).
    memory: Arc<Semaphore>,
    cancel: CancellationToken,
    direct_io: bool,
    ranges_per_blob: usize,
    counters: Counters,
    events: Arc<dyn EventSink>,
}

impl Ctx {
    fn root_dir(&self) -> io::Result<DriveDir> {
        // The parent of a one-segment path is the root itself.
        let any = DrivePath::from_segments(["x"])
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        DriveDir::open_parent(&self.root, &any, false)
    }
}

#[derive(Debug, Default)]
struct Counters {
    bytes_done: AtomicU64,
    blobs_done: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

fn spawn_progress(
    ctx: Arc<Ctx>,
    bytes_total: u64,
    blobs_total: u64,
) -> tokio::task::JoinHandle<()> {
    let _ = ctx.counters.started.set(Instant::now());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            emit_progress(&ctx, bytes_total, blobs_total);
        }
    })
}

fn emit_progress(ctx: &Ctx, bytes_total: u64, blobs_total: u64) {
    let secs = ctx
        .counters
        .started
        .get()
        .map_or(Duration::ZERO, Instant::elapsed)
        .as_secs_f64();
    let bytes_done = ctx.counters.bytes_done.load(Ordering::Relaxed);
    ctx.events.emit(Event::Progress(ProgressEvent {
        bytes_done,
        bytes_total,
        percent_complete: percent(bytes_done, bytes_total),
        blobs_done: ctx.counters.blobs_done.load(Ordering::Relaxed),
        blobs_total,
        bytes_per_second: if secs > 0.0 {
            bytes_done as f64 / secs
        } else {
            0.0
        },
        elapsed_seconds: secs,
        retries: ctx.store.retries(),
    }));
}

fn collect(
    done: Result<(usize, BlobOutcome), tokio::task::JoinError>,
    results: &mut [Option<BlobOutcome>],
) {
    match done {
        Ok((slot, outcome)) => {
            if let Some(r) = results.get_mut(slot) {
                *r = Some(outcome);
            }
        }
        Err(e) => tracing::error!(error = %e, "a blob export task failed"),
    }
}

/// The result of one blob.
#[derive(Debug, Clone)]
struct BlobOutcome {
    log: BlobLog,
    manifest: Option<manifest::Blob>,
    bytes_succeeded: u64,
    /// The drive filled up: the blob goes to the incomplete list, not the log.
    no_space: bool,
    /// Cancellation cut this blob short.
    interrupted: bool,
}

impl BlobOutcome {
    fn failed(
        blob: &PlanBlob,
        file: Option<&DrivePath>,
        status: BlobStatus,
        list: Option<RangeList>,
    ) -> Self {
        BlobOutcome {
            log: base_log(blob, file, status, list),
            manifest: None,
            bytes_succeeded: 0,
            no_space: false,
            interrupted: false,
        }
    }

    fn cancelled(blob: &PlanBlob, file: Option<&DrivePath>) -> Self {
        let mut o = BlobOutcome::failed(blob, file, BlobStatus::Failed, None);
        o.interrupted = true;
        o
    }
}

/// `2012-09-18T23:47:08Z`, as the export log sample writes `LastModified` (§2.3).
fn log_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An HTTP date (`Tue, 18 Sep 2012 23:47:08 GMT`), the form of the `Last-Modified` property.
fn http_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let day = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get(usize::from(u8::from(t.month())) - 1)
    .copied()
    .unwrap_or("Jan");
    format!(
        "{day}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn plain_file_path(blob: &BlobPath) -> String {
    format!("\\{}\\{}", blob.container, blob.name.replace('/', "\\"))
}

fn base_log(
    blob: &PlanBlob,
    file: Option<&DrivePath>,
    status: BlobStatus,
    list: Option<RangeList>,
) -> BlobLog {
    BlobLog {
        status,
        blob_path: blob.path.to_string(),
        file_path: file.map_or_else(
            || plain_file_path(&blob.path),
            DrivePath::to_manifest_string,
        ),
        snapshot: None,
        last_modified: Some(log_time(blob.properties.last_modified)),
        length_bytes: blob.properties.length,
        import_disposition: None,
        list,
        metadata: None,
        properties: None,
    }
}

/// One range to copy: `offset..offset + len` of the blob and of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    offset: u64,
    len: u64,
}

/// Ranges along committed blocks: consecutive blocks merged while the range stays within
/// `max`, a longer block split into `max` pieces. `None` when the blocks do not cover exactly
/// `length` bytes (a blob written by Put Blob has no block list).
fn block_pieces(blocks: &[u64], length: u64, max: u64) -> Option<Vec<Piece>> {
    if blocks.is_empty() || blocks.iter().sum::<u64>() != length {
        return None;
    }
    let mut out = Vec::new();
    let mut start = 0u64;
    let mut end = 0u64;
    for &b in blocks {
        if b == 0 {
            continue;
        }
        if end - start + b <= max {
            end += b;
            continue;
        }
        if end > start {
            out.push(Piece {
                offset: start,
                len: end - start,
            });
        }
        start = end;
        if b > max {
            out.extend(fixed_pieces(start..start + b, max));
            start += b;
            end = start;
        } else {
            end = start + b;
        }
    }
    if end > start {
        out.push(Piece {
            offset: start,
            len: end - start,
        });
    }
    Some(out)
}

/// `range` cut into pieces of at most `max` bytes.
fn fixed_pieces(range: std::ops::Range<u64>, max: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let len = (range.end - at).min(max);
        out.push(Piece { offset: at, len });
        at += len;
    }
    out
}

/// How one range ended when it did not complete.
#[derive(Debug, Clone)]
struct RangeFailure {
    range: RangeStatus,
    blob: BlobStatus,
    message: String,
    no_space: bool,
}

/// The export block Id of block `index`: Base64 of the index as a 4-byte little-endian integer
/// (`AAAAAA==`, `AQAAAA==`, … as in the service's export manifest, §1.5).
pub fn export_block_id(index: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(index.to_le_bytes())
}

/// Download, hash and write one range of the blob version with ETag `etag` (another version is
/// `BlobUnexpectedChange`).
async fn copy_piece(
    ctx: Arc<Ctx>,
    path: BlobPath,
    etag: ETag,
    file: WriteFile,
    piece: Piece,
    keep: bool,
    sparse: bool,
) -> Result<(Md5Digest, Option<Bytes>), RangeFailure> {
    let data = ctx
        .store
        .read_range_if_match(&path, Some(piece.offset..piece.offset + piece.len), &etag)
        .await
        .map_err(|e| {
            let message = match &e {
                StoreError::ConditionNotMet { .. } => format!(
                    "{path} changed while it was exported (a new ETag at offset {})",
                    piece.offset
                ),
                _ => format!("read {path} at {}: {e}", piece.offset),
            };
            RangeFailure {
                range: RangeStatus::BlobRequestFailed,
                blob: request_status(&e),
                message,
                no_space: false,
            }
        })?;
    if data.len() as u64 != piece.len {
        return Err(RangeFailure {
            range: RangeStatus::BlobUnexpectedEnd,
            blob: BlobStatus::BlobUnexpectedChange,
            message: format!(
                "{path} returned {} bytes at {} where {} were expected",
                data.len(),
                piece.offset,
                piece.len
            ),
            no_space: false,
        });
    }
    let write = async {
        if !sparse {
            return ctx.writer.write_at(&file, piece.offset, data.clone()).await;
        }
        // A page blob's zeros stay holes, also inside valid page ranges (tools such as AzCopy
        // upload a disk image's empty pages too): only the non-zero file-system blocks are written.
        for run in nonzero_page_ranges(&data, piece.offset, SPARSE_GRANULE_BYTES) {
            let (start, end) = (run.start - piece.offset, run.end - piece.offset);
            let chunk = data.slice(start as usize..end as usize);
            ctx.writer.write_at(&file, run.start, chunk).await?;
        }
        Ok(())
    };
    let (digest, written) = tokio::join!(ctx.hasher.digest(data.clone()), write);
    written.map_err(|e| RangeFailure {
        range: RangeStatus::IOFailed,
        blob: BlobStatus::IOFailed,
        no_space: e.kind() == io::ErrorKind::StorageFull,
        message: format!("write {path} at {}: {e}", piece.offset),
    })?;
    ctx.counters
        .bytes_done
        .fetch_add(piece.len, Ordering::Relaxed);
    Ok((digest.md5, keep.then_some(data)))
}

/// The whole-file MD5, fed in file order; holes of a page blob hash as zeros.
struct WholeHash {
    md5: Md5,
    at: u64,
}

impl WholeHash {
    /// Hash the zeros up to `offset`, then `data`, on the hash pool.
    async fn feed(self, pool: &HashPool, offset: u64, data: Option<Bytes>) -> WholeHash {
        pool.run(move || {
            let mut this = self;
            this.zeros_to(offset);
            if let Some(d) = data {
                this.md5.update(&d);
                this.at += d.len() as u64;
            }
            this
        })
        .await
    }

    fn zeros_to(&mut self, offset: u64) {
        static ZEROS: [u8; 65536] = [0; 65536];
        while self.at < offset {
            let n = (offset - self.at).min(ZEROS.len() as u64);
            self.md5.update(&ZEROS[..n as usize]);
            self.at += n;
        }
    }
}

type PieceResult = Result<(Md5Digest, Option<Bytes>), RangeFailure>;

/// Export one blob (module docs, step 2).
async fn export_blob(
    ctx: &Arc<Ctx>,
    slot: usize,
    blob: &PlanBlob,
    file: Option<DrivePath>,
) -> BlobOutcome {
    let Some(file) = file else {
        return BlobOutcome::failed(blob, None, BlobStatus::FileNameTooLong, None);
    };
    let props = &blob.properties;
    let path = &blob.path;
    let page = props.kind == BlobKind::PageBlob;

    // The ranges.
    let pieces = if page {
        match ctx.store.get_page_ranges(path).await {
            Ok(ranges) => ranges
                .into_iter()
                .filter(|r| r.start < props.length)
                .flat_map(|r| fixed_pieces(r.start..r.end.min(props.length), RANGE_BYTES))
                .collect(),
            Err(e) => return request_failed(ctx, blob, &file, &e),
        }
    } else if props.length <= RANGE_BYTES {
        // One range whatever the blocks: committed blocks would all merge into it.
        fixed_pieces(0..props.length, RANGE_BYTES)
    } else {
        match ctx.store.get_block_list(path).await {
            Ok(listing) => {
                let lens: Vec<u64> = listing.committed.iter().map(|(_, l)| *l).collect();
                block_pieces(&lens, props.length, RANGE_BYTES)
                    .unwrap_or_else(|| fixed_pieces(0..props.length, RANGE_BYTES))
            }
            // A blob written by Put Blob has no block list on some backends.
            Err(StoreError::NotFound { .. }) => fixed_pieces(0..props.length, RANGE_BYTES),
            Err(e) => return request_failed(ctx, blob, &file, &e),
        }
    };

    // Every range read names the listed ETag (`If-Match`), so the file is one version of the
    // blob; a blob with nothing to read (empty, or a page blob without valid pages) is checked
    // with one empty read.
    if pieces.is_empty() {
        let read = ctx.store.read_range_if_match(path, Some(0..0), &props.etag);
        if let Err(e) = read.await {
            return request_failed(ctx, blob, &file, &e);
        }
    }

    let tmp_name = format!("{slot}.part");
    let io_failed = |what: &str, e: io::Error| {
        let no_space = e.kind() == io::ErrorKind::StorageFull;
        ctx.events.emit(warning(
            "FileWriteFailed",
            format!("{what} for {path}: {e}"),
            Some(file.to_manifest_string()),
        ));
        let mut o = BlobOutcome::failed(blob, Some(&file), BlobStatus::IOFailed, None);
        o.no_space = no_space;
        o
    };
    let target = match ctx.tmp.create_temp(&tmp_name, ctx.direct_io) {
        Ok(t) => t,
        Err(e) => return io_failed("create the temp file", e),
    };
    if let Err(e) = target.set_len(props.length) {
        let _ = ctx.tmp.unlink(&tmp_name);
        return io_failed("size the file", e);
    }

    // Copy the ranges, a window at a time, results in file order.
    let want_whole = props.content.content_md5.is_some()
        && !(pieces.len() == 1 && pieces.first().is_some_and(|p| p.len == props.length));
    let mut whole = WholeHash {
        md5: Md5::new(),
        at: 0,
    };
    let mut digests: Vec<Option<Md5Digest>> = vec![None; pieces.len()];
    let mut failure: Option<(usize, RangeFailure)> = None;
    // Each range of a blob of several is a task of its own, so they copy in parallel; the one
    // range of a small blob runs in this task (no spawn, wake and join per blob).
    let single = pieces.len() == 1;
    let mut window: VecDeque<(
        usize,
        BoxFuture<'static, (PieceResult, OwnedSemaphorePermit)>,
    )> = VecDeque::new();
    let mut next = 0;
    let mut interrupted = false;
    loop {
        while failure.is_none() && next < pieces.len() && window.len() < ctx.ranges_per_blob {
            if ctx.cancel.is_cancelled() {
                interrupted = true;
                break;
            }
            let piece = pieces[next];
            let permits = u32::try_from(piece.len).unwrap_or(u32::MAX);
            // Only an empty window may wait for memory: pieces in the window hold permits
            // that come back only when the window is drained, in order.
            let permit = if window.is_empty() {
                tokio::select! {
                    p = Arc::clone(&ctx.memory).acquire_many_owned(permits) => match p {
                        Ok(p) => p,
                        Err(_) => { interrupted = true; break }
                    },
                    _ = ctx.cancel.cancelled() => { interrupted = true; break }
                }
            } else {
                match Arc::clone(&ctx.memory).try_acquire_many_owned(permits) {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            let copy = copy_piece(
                Arc::clone(ctx),
                path.clone(),
                props.etag.clone(),
                target.clone(),
                piece,
                want_whole,
                props.kind == BlobKind::PageBlob,
            );
            let run: BoxFuture<'static, _> = if single {
                Box::pin(async move { (copy.await, permit) })
            } else {
                let task = tokio::spawn(copy);
                Box::pin(async move {
                    let r = task.await.unwrap_or_else(|e| {
                        Err(RangeFailure {
                            range: RangeStatus::Failed,
                            blob: BlobStatus::Failed,
                            message: format!("range task failed: {e}"),
                            no_space: false,
                        })
                    });
                    (r, permit)
                })
            };
            window.push_back((next, run));
            next += 1;
        }
        let Some((index, run)) = window.pop_front() else {
            break;
        };
        let (result, permit) = run.await;
        match result {
            Ok((md5, data)) => {
                if let Some(d) = digests.get_mut(index) {
                    *d = Some(md5);
                }
                if want_whole && failure.is_none() {
                    whole = whole.feed(&ctx.hasher, pieces[index].offset, data).await;
                }
            }
            Err(f) => {
                if failure.is_none() {
                    failure = Some((index, f));
                }
            }
        }
        drop(permit);
        if interrupted && failure.is_none() && window.is_empty() {
            break;
        }
    }

    let ranges_log = |first_bad: Option<(usize, &RangeFailure)>| -> RangeList {
        let status_of = |i: usize| -> RangeStatus {
            match (digests.get(i).copied().flatten(), first_bad) {
                (_, Some((bad, f))) if bad == i => f.range.clone(),
                (Some(_), _) => RangeStatus::Completed,
                (None, _) => RangeStatus::Cancelled,
            }
        };
        if page {
            RangeList::PageRangeList(
                pieces
                    .iter()
                    .enumerate()
                    .map(|(i, p)| RangeLog {
                        offset_bytes: p.offset,
                        length_bytes: p.len,
                        hash: digests.get(i).copied().flatten(),
                        status: status_of(i),
                    })
                    .collect(),
            )
        } else {
            RangeList::BlockList(
                pieces
                    .iter()
                    .enumerate()
                    .map(|(i, p)| BlockLog {
                        offset_bytes: p.offset,
                        length_bytes: p.len,
                        id: Some(export_block_id(i as u32)),
                        hash: digests.get(i).copied().flatten(),
                        status: status_of(i),
                    })
                    .collect(),
            )
        }
    };

    if let Some((index, f)) = &failure {
        let _ = ctx.tmp.unlink(&tmp_name);
        ctx.events.emit(warning(
            f.blob.as_str(),
            f.message.clone(),
            Some(path.to_string()),
        ));
        let mut o = BlobOutcome::failed(
            blob,
            Some(&file),
            f.blob.clone(),
            Some(ranges_log(Some((*index, f)))),
        );
        o.no_space = f.no_space;
        return o;
    }
    if interrupted || digests.iter().any(Option::is_none) {
        let _ = ctx.tmp.unlink(&tmp_name);
        let mut o = BlobOutcome::failed(
            blob,
            Some(&file),
            BlobStatus::Failed,
            Some(ranges_log(None)),
        );
        o.interrupted = true;
        return o;
    }

    // Content-MD5.
    let whole_md5 = if want_whole {
        whole = whole.feed(&ctx.hasher, props.length, None).await;
        Some(Md5Digest(whole.md5.finalize().into()))
    } else if pieces.len() == 1 {
        digests.first().copied().flatten()
    } else if props.length == 0 {
        Some(Md5Digest::of(&[]))
    } else {
        None
    };
    let md5_mismatch = match (props.content.content_md5, whole_md5) {
        (Some(expected), Some(actual)) if expected != actual => {
            ctx.events.emit(warning(
                "ContentMd5Mismatch",
                format!(
                    "{path}: the content hashes to {} but its Content-MD5 is {}",
                    actual.to_base64(),
                    expected.to_base64()
                ),
                Some(path.to_string()),
            ));
            true
        }
        _ => false,
    };

    // Side files, then the data file, into place (blocking file-system calls, off the runtime).
    let properties_xml = properties_of(props).to_xml();
    let metadata_xml = metadata_of(props).to_xml();
    let placed = {
        let (ctx, file, tmp_name) = (Arc::clone(ctx), file.clone(), tmp_name.clone());
        tokio::task::spawn_blocking(move || {
            place(&ctx, &file, &tmp_name, &properties_xml, &metadata_xml)
        })
        .await
        .unwrap_or_else(|e| Err(("place the file", io::Error::other(e.to_string()))))
    };
    let (properties_path, metadata_path) = match placed {
        Ok(v) => v,
        Err((what, e)) => return io_failed(what, e),
    };

    let list = ranges_log(None);
    let mut log = base_log(
        blob,
        Some(&file),
        if md5_mismatch {
            BlobStatus::CompletedWithErrors
        } else {
            BlobStatus::Completed
        },
        Some(list),
    );
    log.metadata = Some(FileLog {
        status: FileLogStatus::Completed,
        global_path: None,
        path: Some(metadata_path.clone()),
    });
    log.properties = Some(FileLog {
        status: if md5_mismatch {
            FileLogStatus::Corrupted
        } else {
            FileLogStatus::Completed
        },
        global_path: None,
        path: Some(properties_path.clone()),
    });
    let hashed = |p: &LogPath| {
        p.hash.map(|hash| manifest::HashedPath {
            path: p.path.clone(),
            hash,
        })
    };
    let mut entry = manifest::Blob {
        blob_path: path.to_string(),
        file_path: file.to_manifest_string(),
        client_data: None,
        snapshot: None,
        length: props.length,
        import_disposition: None,
        page_range_list: None,
        block_list: None,
        metadata_path: hashed(&metadata_path),
        properties_path: hashed(&properties_path),
        source_offset: Default::default(),
    };
    let pairs = pieces.iter().zip(digests.iter().copied().flatten());
    if page {
        entry.page_range_list = Some(
            pairs
                .map(|(p, hash)| manifest::PageRange {
                    offset: p.offset,
                    length: p.len,
                    hash,
                })
                .collect(),
        );
    } else {
        entry.block_list = Some(
            pairs
                .enumerate()
                .map(|(i, (p, hash))| manifest::Block {
                    offset: p.offset,
                    length: p.len,
                    id: Some(export_block_id(i as u32)),
                    hash,
                })
                .collect(),
        );
    }
    BlobOutcome {
        log,
        manifest: Some(entry),
        bytes_succeeded: props.length,
        no_space: false,
        interrupted: false,
    }
}

/// Move a finished temp file into place with its side files: `<file>.properties` and
/// `<file>.metadata` are written first, then the data file is renamed into place. On failure
/// nothing of the blob is left.
fn place(
    ctx: &Ctx,
    file: &DrivePath,
    tmp_name: &str,
    properties_xml: &str,
    metadata_xml: &str,
) -> Result<(LogPath, LogPath), (&'static str, io::Error)> {
    let Some((name, _)) = file.segments().split_last() else {
        let _ = ctx.tmp.unlink(tmp_name);
        return Err((
            "name the file",
            io::Error::from(io::ErrorKind::InvalidInput),
        ));
    };
    let dir = match ctx.dirs.parent_of(file) {
        Ok(d) => d,
        Err(e) => {
            let _ = ctx.tmp.unlink(tmp_name);
            return Err(("create the file's directory", e));
        }
    };
    // Side files go straight to their place: only the data file's appearance tells that a blob
    // is on the drive, and the manifest, written after a flush, is the drive's commit point.
    let side = |suffix: &str, xml: &str| -> io::Result<LogPath> {
        dir.create_small(&format!("{name}{suffix}"), xml.as_bytes())?;
        Ok(LogPath {
            path: format!("{}{suffix}", file.to_manifest_string()),
            hash: Some(Md5Digest::of(xml.as_bytes())),
        })
    };
    let placed = (|| -> io::Result<(LogPath, LogPath)> {
        let p = side(".properties", properties_xml)?;
        let m = side(".metadata", metadata_xml)?;
        ctx.tmp.rename_into(tmp_name, &dir, name)?;
        Ok((p, m))
    })();
    placed.map_err(|e| {
        let _ = ctx.tmp.unlink(tmp_name);
        for s in [".properties", ".metadata"] {
            let _ = dir.unlink(&format!("{name}{s}"));
        }
        ("place the file", e)
    })
}

/// The blob status a failed store request gives the blob being exported: gone, or no longer the
/// listed version (`If-Match` failed), is `BlobUnexpectedChange`.
fn request_status(e: &StoreError) -> BlobStatus {
    match e {
        StoreError::NotFound { .. } | StoreError::ConditionNotMet { .. } => {
            BlobStatus::BlobUnexpectedChange
        }
        StoreError::PermissionDenied { .. } => BlobStatus::BlobRequestForbidden,
        _ => BlobStatus::BlobRequestFailed,
    }
}

fn request_failed(ctx: &Ctx, blob: &PlanBlob, file: &DrivePath, e: &StoreError) -> BlobOutcome {
    let status = request_status(e);
    ctx.events.emit(warning(
        status.as_str(),
        format!("{}: {e}", blob.path),
        Some(blob.path.to_string()),
    ));
    BlobOutcome::failed(blob, Some(file), status, None)
}

/// The `<Properties>` file of an exported blob (§3: the export-only `Last-Modified`, `Etag` and
/// `Content-Length` first).
fn properties_of(p: &BlobProperties) -> Properties {
    let ContentProperties {
        content_type,
        content_encoding,
        content_language,
        cache_control,
        content_disposition,
        content_md5,
    } = p.content.clone();
    Properties {
        last_modified: Some(http_time(p.last_modified)),
        etag: Some(p.etag.as_str().to_string()),
        content_length_bytes: Some(p.length),
        content_type,
        content_md5,
        content_encoding,
        content_language,
        cache_control,
        content_disposition,
    }
}

/// The `<Metadata>` file of an exported blob (§3). Names the file format cannot hold are left
/// out (the store already enforces the same C#-identifier rule, so none are expected).
fn metadata_of(p: &BlobProperties) -> Metadata {
    let mut m = Metadata::new();
    for (k, v) in &p.metadata {
        let _ = m.insert(k.clone(), v.clone());
    }
    m
}

/// Write the error log (when anything failed), the verbose log (when asked) and the incomplete
/// blob list (when blobs did not fit) as blobs in the diagnostics path; the same naming and rules
/// as the import's logs (§2.2), the list as `…/waies/<job>_<driveid>_<stamp>_incompleteblobs.xml`.
async fn write_logs(
    config: &ExportConfig,
    job: &str,
    at: OffsetDateTime,
    store: &dyn BlobStore,
    events: &dyn EventSink,
    report: &mut ExportReport,
    incomplete: Option<BlobList>,
) {
    let log = &report.drive_log;
    let mut wanted = Vec::new();
    if log.has_errors() {
        wanted.push((DiagnosticsKind::Error, Bytes::from(log.to_error_xml())));
    }
    if config.log_level == LogLevel::Verbose {
        wanted.push((DiagnosticsKind::Verbose, Bytes::from(log.to_verbose_xml())));
    }
    if let Some(list) = incomplete {
        wanted.push((
            DiagnosticsKind::IncompleteBlobList,
            Bytes::from(list.to_xml()),
        ));
    }
    let target = DiagnosticsTarget {
        diagnostics_path: &config.diagnostics_path,
        job,
        drive_id: &config.drive_id,
        at,
    };
    for (kind, url) in write_diagnostics(store, events, target, wanted).await {
        match kind {
            DiagnosticsKind::Error => report.error_log_uri = Some(url),
            DiagnosticsKind::Verbose => report.verbose_log_uri = Some(url),
            DiagnosticsKind::IncompleteBlobList => report.incomplete_blob_list_uri = Some(url),
            DiagnosticsKind::Manifest => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u64, len: u64) -> Piece {
        Piece { offset, len }
    }

    #[test]
    fn pieces_follow_committed_blocks() {
        let mib = 1 << 20;
        // Small blocks merge up to 4 MiB; a big one is split; the tail stays.
        assert_eq!(
            block_pieces(
                &[mib, mib, 2 * mib, mib, 9 * mib, 10],
                14 * mib + 10,
                4 * mib
            ),
            Some(vec![
                p(0, 4 * mib),
                p(4 * mib, mib),
                p(5 * mib, 4 * mib),
                p(9 * mib, 4 * mib),
                p(13 * mib, mib),
                p(14 * mib, 10)
            ])
        );
        assert_eq!(block_pieces(&[], 5, 4), None);
        assert_eq!(block_pieces(&[3], 5, 4), None);
        assert_eq!(fixed_pieces(0..9, 4), vec![p(0, 4), p(4, 4), p(8, 1)]);
        assert!(fixed_pieces(0..0, 4).is_empty());
    }

    #[test]
    fn export_ids_and_times_match_the_samples() {
        assert_eq!(export_block_id(0), "AAAAAA==");
        assert_eq!(export_block_id(1), "AQAAAA==");
        assert_eq!(export_block_id(3), "AwAAAA==");
        let t = time::macros::datetime!(2012-09-18 23:47:08 UTC);
        assert_eq!(log_time(t), "2012-09-18T23:47:08Z");
        assert_eq!(http_time(t), "Tue, 18 Sep 2012 23:47:08 GMT");
        assert_eq!(manifest_name("9WM35C3U"), "9WM35C3U.manifest");
        assert_eq!(manifest_name("a/b"), "a%2Fb.manifest");
    }
}
