//! The import pipeline: a drive and its manifest in; committed blobs, a drive log and a report out.
//!
//! For one drive (azure-import-export.md §1, §2 and §6.2):
//! 1. open the manifest beneath the drive root, check its hash, parse it; a failure here is a
//!    drive-level status (`ManifestNotFound`, `ManifestCorrupted`, `ManifestFormatInvalid`, ...);
//! 2. validate it: a problem that belongs to one blob fails only that blob (`FileNameInvalid`,
//!    `FileNameTooLong`, `Failed`); a drive-level problem is `ManifestFormatInvalid`;
//! 3. import the blobs, many at once: each block or page range is read into a pool buffer (io_uring
//!    or `pread`), hashed on the rayon pool, compared with the manifest's MD5 (a mismatch is
//!    `Corrupted` and the block is not sent), and staged under its manifest Id at its offset, or put
//!    as pages; a block blob whose every block arrived is committed in manifest order;
//! 4. build the drive log, write the error log (when anything failed) and the verbose log (when
//!    asked) into the diagnostics path.
//!
//! Import dispositions (§1.4): `rename` imports under `name (N).ext` when the name is taken,
//! `no-overwrite` skips (`Skipped`), `overwrite` replaces (`Overwritten`), a free name is `Created`.
//! A blob already present with exactly the content this manifest describes (the same committed
//! block Ids and lengths; for a page blob the same length and written ranges) is an earlier run's
//! work: it is not copied again, and it is logged `Created` (`Renamed` when it sits under a
//! ` (N)` name). The store keeps no record of which disposition an earlier run applied, so an
//! earlier `Overwritten` also reads `Created` on the re-run. A page blob is visible from its
//! creation, so an interrupted run leaves one partly written: the re-run recognises it (its length,
//! only manifest ranges written, each read back and matching its MD5), sets its properties and
//! metadata again and writes only the ranges it lacks. A block blob an interrupted run left
//! uncommitted keeps its staged blocks in the store: the re-run lists them (Get Block List) and
//! reuses those whose content-addressed Id and length match the manifest's (issue 4 item 5; see
//! `staged_blocks`), reading and sending only the rest. That makes a re-run finish an interrupted
//! import without sending again what already arrived.
//!
//! Memory: block data lives only in the buffer pool (`buffer count × buffer size`); the rest is the
//! manifest model and one log entry per blob.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::copylog::{
    BlobLog, BlobStatus, BlockLog, DriveLog, DriveLogStatus, FileLog, FileLogStatus,
    HashedPath as LogPath, ImportDisposition as LogDisposition, ImportDispositionStatus, RangeList,
    RangeLog, RangeStatus,
};
use crate::digest::Md5Digest;
use crate::engine::buf::BufPool;
use crate::engine::diagnostics::{
    write_diagnostics, DiagnosticsKind, DiagnosticsTarget, DEFAULT_DIAGNOSTICS_PATH,
};
use crate::engine::disposition::rename_candidate;
use crate::engine::hash::{HashPool, OrderedMd5};
use crate::engine::read::{open_root, IoEngine, OpenError, ReadFile, Reader, ReaderConfig};
use crate::events::{warning, Event, EventSink, ProgressEvent, StartEvent, SCHEMA_VERSION};
use crate::manifest::{
    Blob, BlobList, DriveManifest, HashedPath, ImportDisposition, Limits, ProblemKind,
};
use crate::metadata::{Metadata, Properties};
use crate::names::{BlobPath, DrivePath};
use crate::store::{
    BlobKind, BlobStore, BlockChecksum, BlockId, CommitOptions, Condition, ContentProperties,
    StageBlock, StoreError,
};

/// The manifest's default path on the drive (azure-import-export.md §1.1).
pub const DEFAULT_MANIFEST_FILE: &str = r"\DriveManifest.xml";
/// Default memory for block buffers, bytes: 16 buffers of 4 MiB. Measured: 64 MiB keeps two cores
/// hashing on a 2 GiB file as well as 128 MiB did, at half the resident memory.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// The fewest blobs imported at once by default (see [`ImportConfig::blobs_in_flight`]).
pub const DEFAULT_BLOBS_IN_FLIGHT: usize = 64;
/// The most blobs imported at once by default: a drive of small files gets one blob per buffer
/// the memory budget allows, up to this many (see [`ImportConfig::blobs_in_flight`]).
pub const MAX_DEFAULT_BLOBS_IN_FLIGHT: usize = 256;
/// The most block buffers in the pool, whatever the memory budget. A buffer is held from the read
/// until the store has the bytes (the local store lets go before its commit's flushes, Azure when
/// the request ends), so a drive of small files keeps its blobs in flight busy with far fewer
/// buffers than blobs. Measured on the import bench's 256 KiB drive with 256 blobs in flight:
/// 64 or 128 buffers import as fast as 256 and faster than 32, at 60–80 MiB peak RSS instead of
/// 110 MiB, and fresh buffer pages are costly to fault in on a VM.
pub const MAX_POOL_BUFFERS: usize = 128;
/// The largest manifest, metadata or properties file read, bytes (a 50,000-block manifest is
/// about 6 MB; a drive holds many blobs).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;
/// The largest metadata or properties file read, bytes.
pub const MAX_SIDE_FILE_BYTES: u64 = 1 << 20;
/// How often progress events are sent.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The most rename candidates tried (`name (2)` … `name (N)`) before `RenameFailed`.
pub const MAX_RENAME_ATTEMPTS: u32 = 10_000;

/// How much the drive log says (ARM `logLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Only the error log, and only when something failed (the default).
    #[default]
    Error,
    /// The error log when something failed, and the verbose log always.
    Verbose,
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The drive's root directory.
    pub drive_root: PathBuf,
    /// The manifest's path relative to the drive root (manifest form, `\DriveManifest.xml`).
    pub manifest_file: String,
    /// The expected manifest hash: Base16 MD5 (32 digits) or SHA-256 (64 digits), any case.
    pub manifest_hash: Option<String>,
    /// The drive id the job expects; a different `DriveId` in the manifest is
    /// `ManifestDriveIdMismatch`.
    pub drive_id: Option<String>,
    /// The job name used in log blob names (`drivecopy` when absent).
    pub job_name: Option<String>,
    /// The diagnostics path (`container` or `container/dir`).
    pub diagnostics_path: String,
    /// How much the drive log says.
    pub log_level: LogLevel,
    /// Memory for block buffers, bytes: the pool holds `memory / buffer size` buffers, at least
    /// 2 and at most [`MAX_POOL_BUFFERS`].
    pub memory_bytes: u64,
    /// Blobs imported at once; `None` for one per buffer the memory budget allows
    /// (`memory / buffer size`, before the [`MAX_POOL_BUFFERS`] cap), at least
    /// [`DEFAULT_BLOBS_IN_FLIGHT`] and at most [`MAX_DEFAULT_BLOBS_IN_FLIGHT`]. A blob in flight
    /// waits for its commit (two flushes of the local store) without a buffer, so small files
    /// need many of them to keep the buffers and the cores busy: 256 KiB files import about
    /// 6 % faster with 256 than with 64 (measured on the import bench's drive).
    pub blobs_in_flight: Option<usize>,
    /// The I/O engine reading the drive.
    pub io_engine: IoEngine,
    /// Try `O_DIRECT` reads (used when the file system allows it and block offsets are aligned).
    pub direct_io: bool,
    /// Manifest limits (block size and count, blob sizes).
    pub limits: Limits,
    /// Hashing threads; `None` for one per core.
    pub hash_threads: Option<usize>,
    /// Why `io_engine` is not the preferred one (from [`IoEngine::probe`]); sent as an
    /// `IoEngineFallback` warning right after the `start` event.
    pub io_engine_remark: Option<String>,
    /// The destination as the `start` event names it (a URL without credentials).
    pub destination: Option<String>,
    /// Set every block blob's whole-blob `Content-MD5` (AzCopy's `--put-md5`), so that
    /// downloads can be checked (`azcopy copy --check-md5`). A single-block blob always gets it
    /// (its block MD5 is the blob's); a multi-block blob costs a second, sequential MD5 pass over
    /// its bytes in memory (about one core's MD5 rate per blob, azure-sdk-notes.md §5), and
    /// blocks an earlier run staged are read again to be hashed, though not sent. A
    /// `Content-MD5` stated by the blob's properties file wins. Page blobs get none (a page blob
    /// is written range by range, and its Content-MD5 is not checked on download by Azure).
    pub put_md5: bool,
    /// Copy the manifest, byte for byte, into the diagnostics path as
    /// `waies/<job>_<driveid>_<timestamp>_manifest.xml` (the job's `backupDriveManifest`,
    /// azure-import-export.md §4.1); its URL comes back as [`ImportReport::manifest_uri`].
    pub backup_manifest: bool,
}

impl ImportConfig {
    /// A configuration with the documented defaults for the drive at `drive_root`.
    pub fn new(drive_root: impl Into<PathBuf>, io_engine: IoEngine) -> Self {
        ImportConfig {
            drive_root: drive_root.into(),
            manifest_file: DEFAULT_MANIFEST_FILE.to_string(),
            manifest_hash: None,
            drive_id: None,
            job_name: None,
            diagnostics_path: DEFAULT_DIAGNOSTICS_PATH.to_string(),
            log_level: LogLevel::Error,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            blobs_in_flight: None,
            io_engine,
            direct_io: true,
            limits: Limits::default(),
            hash_threads: None,
            io_engine_remark: None,
            destination: None,
            put_md5: false,
            backup_manifest: false,
        }
    }

    fn start_event(
        &self,
        drive_id: &str,
        bytes_total: u64,
        blobs_total: u64,
        pool: (usize, usize),
    ) -> Event {
        Event::Start(StartEvent {
            schema_version: SCHEMA_VERSION,
            command: "import".to_string(),
            drive_id: Some(drive_id.to_string()),
            job: self.job_name.clone(),
            io_engine: self.io_engine.as_str().to_string(),
            bytes_total,
            blobs_total,
            destination: self.destination.clone(),
            buffer_count: pool.0,
            buffer_bytes: pool.1,
        })
    }

    fn announce_engine(&self, events: &dyn EventSink) {
        if let Some(remark) = &self.io_engine_remark {
            events.emit(warning("IoEngineFallback", remark.clone(), None));
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The drive log (the verbose form; the error log is its [`DriveLog::errors_only`] view).
    pub drive_log: DriveLog,
    /// Bytes the manifest lists (blocks and page ranges).
    pub bytes_total: u64,
    /// Bytes of blobs now complete in the store (committed blocks, written page ranges).
    pub bytes_succeeded: u64,
    /// Bytes of block and page data this run handed to the store and the store accepted, each
    /// block or range counted once however often the retry layer re-sent it.
    pub bytes_sent: u64,
    /// Bytes not sent because an earlier, interrupted run had already put them in the store:
    /// uncommitted blocks matching the manifest's content-addressed Id and length, and the
    /// verified ranges of a part-written page blob (see the module documentation). Blobs an
    /// earlier run finished are skipped, and count in neither this field nor `bytes_sent`.
    pub bytes_reused: u64,
    /// Store requests the retry layer repeated ([`BlobStore::retries`]) during the run.
    pub retries: u64,
    /// URL of the error log blob, if one was written.
    pub error_log_uri: Option<String>,
    /// URL of the verbose log blob, if one was written.
    pub verbose_log_uri: Option<String>,
    /// URL of the manifest's backup blob ([`ImportConfig::backup_manifest`]), if one was written.
    pub manifest_uri: Option<String>,
    /// True when the run was cancelled before every blob was done.
    pub cancelled: bool,
    /// The manifest's path as given.
    pub manifest_file: String,
    /// Base16 MD5 of the manifest file, when it could be read.
    pub manifest_md5: Option<Md5Digest>,
}

impl ImportReport {
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

/// A failure that prevents an import from producing any result (the station itself is broken).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The reader service could not start.
    #[error("start the {engine:?} reader")]
    Reader {
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

/// Import one drive into `store`.
///
/// Emits a `start` event, `progress` events at most once per [`PROGRESS_INTERVAL`] and `warning`
/// events to `events`; the caller writes the `result`. Drive-level failures (the manifest cannot be
/// found, read, trusted or parsed) are not errors: they come back as a report whose drive log status
/// says so, with the error log written when the store allows.
///
/// # Errors
/// [`ImportError`] only when the reader or the hash pool cannot start.
///
/// # Cancel safety
/// When `cancel` fires, no new block is read and no blob is committed after that point; blobs
/// already committed stay; blobs left unfinished are logged as `Failed` with a `Cancelled`
/// disposition, and the report says `cancelled`. Running the import again finishes the drive.
pub async fn import_drive(
    config: &ImportConfig,
    store: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> Result<ImportReport, ImportError> {
    let started_at = OffsetDateTime::now_utc();
    let job = config
        .job_name
        .clone()
        .unwrap_or_else(|| "drivecopy".to_string());
    let loaded = match load_manifest(config) {
        Ok(loaded) => loaded,
        Err(failure) => {
            let drive_id = failure
                .drive_id
                .clone()
                .or_else(|| config.drive_id.clone())
                .unwrap_or_else(|| "unknown".to_string());
            let failed = DriveFailure {
                drive_id,
                status: failure.status,
                message: failure.message,
                manifest_md5: failure.md5,
            };
            return Ok(failed
                .report(config, &job, started_at, store.as_ref(), events.as_ref())
                .await);
        }
    };
    let LoadedManifest {
        manifest,
        bytes: manifest_bytes,
        md5: manifest_md5,
        root,
    } = loaded;
    let manifest = Arc::new(manifest);
    let drive_id = manifest.drive.drive_id.clone();

    // Validation: drive-level problems end the run; blob problems fail their blob.
    let problems = manifest.validate(&config.limits);
    let mut blob_problems: HashMap<(usize, usize), Vec<ProblemKind>> = HashMap::new();
    let mut drive_problems = Vec::new();
    for p in problems {
        match p.blob_index() {
            Some(idx) => blob_problems.entry(idx).or_default().push(p.kind),
            None => drive_problems.push(p),
        }
    }
    if !drive_problems.is_empty() {
        let failed = DriveFailure {
            drive_id,
            status: DriveLogStatus::ManifestFormatInvalid,
            message: drive_problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            manifest_md5: Some(manifest_md5),
        };
        return Ok(failed
            .report(config, &job, started_at, store.as_ref(), events.as_ref())
            .await);
    }

    let all: Vec<(usize, usize)> = manifest.blobs().map(|(idx, _)| idx).collect();
    let bytes_total: u64 = manifest.blobs().map(|(_, b)| planned_bytes(b)).sum();
    let buffer_bytes = buffer_size(&manifest, &blob_problems);
    let (buffer_count, blobs_in_flight) =
        concurrency(config.memory_bytes, buffer_bytes, config.blobs_in_flight);
    let reader = Reader::start(config.io_engine, &ReaderConfig::default()).map_err(|source| {
        ImportError::Reader {
            engine: config.io_engine,
            source,
        }
    })?;
    let hasher = HashPool::new(config.hash_threads)?;
    events.emit(config.start_event(
        &drive_id,
        bytes_total,
        all.len() as u64,
        (buffer_count, buffer_bytes),
    ));
    config.announce_engine(events.as_ref());

    let ctx = Arc::new(Ctx {
        store: Arc::clone(&store),
        reader,
        pool: BufPool::new(buffer_count, buffer_bytes),
        hasher,
        root,
        manifest: Arc::clone(&manifest),
        cancel: cancel.clone(),
        direct_io: config.direct_io,
        put_md5: config.put_md5,
        side_files: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        events: Arc::clone(&events),
        containers: tokio::sync::Mutex::new(HashMap::new()),
    });

    let ticker = spawn_progress(Arc::clone(&ctx), bytes_total, all.len() as u64);
    let mut results: Vec<Option<BlobOutcome>> = vec![None; all.len()];
    let gate = Arc::new(Semaphore::new(blobs_in_flight));
    let mut tasks = JoinSet::new();
    for (slot, &idx) in all.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let permit = tokio::select! {
            p = Arc::clone(&gate).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = cancel.cancelled() => break,
        };
        let ctx = Arc::clone(&ctx);
        let problems = blob_problems.remove(&idx).unwrap_or_default();
        tasks.spawn(async move {
            let outcome = import_blob(&ctx, idx, problems).await;
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

    // Cancelled: some blob never started, or the token cut one short mid-copy.
    let cancelled = cancel.is_cancelled()
        && results
            .iter()
            .any(|r| r.as_ref().is_none_or(|o| o.interrupted));
    let mut bytes_succeeded = 0;
    let mut blob_logs = Vec::with_capacity(all.len());
    for (slot, &(l, b)) in all.iter().enumerate() {
        let outcome = match results[slot].take() {
            Some(o) => o,
            None => BlobOutcome::unprocessed(
                &manifest.drive.blob_lists[l],
                &manifest.drive.blob_lists[l].blobs[b],
            ),
        };
        bytes_succeeded += outcome.bytes_succeeded;
        blob_logs.push(outcome.log);
    }
    let mut report = ImportReport {
        drive_log: DriveLog::new(drive_id, blob_logs),
        bytes_total,
        bytes_succeeded,
        bytes_sent: ctx.counters.bytes_sent.load(Ordering::Relaxed),
        bytes_reused: ctx.counters.bytes_reused.load(Ordering::Relaxed),
        retries: store.retries(),
        error_log_uri: None,
        verbose_log_uri: None,
        manifest_uri: None,
        cancelled,
        manifest_file: config.manifest_file.clone(),
        manifest_md5: Some(manifest_md5),
    };
    emit_progress(&ctx, bytes_total, all.len() as u64);
    let backup = config.backup_manifest.then_some(manifest_bytes);
    write_logs(
        config,
        &job,
        started_at,
        store.as_ref(),
        events.as_ref(),
        &mut report,
        backup,
    )
    .await;
    Ok(report)
}

fn collect(
    done: Result<(usize, BlobOutcome), tokio::task::JoinError>,
    results: &mut [Option<BlobOutcome>],
) {
    match done {
        Ok((slot, outcome)) => results[slot] = Some(outcome),
        // A blob task panicked: a bug. Its slot stays empty and is logged as unprocessed.
        Err(e) => tracing::error!(error = %e, "a blob import task failed"),
    }
}

/// Shared state of one import run.
struct Ctx {
    store: Arc<dyn BlobStore>,
    reader: Reader,
    pool: BufPool,
    hasher: HashPool,
    root: Arc<std::fs::File>,
    manifest: Arc<DriveManifest>,
    cancel: CancellationToken,
    direct_io: bool,
    /// Compute whole-blob MD5s of block blobs ([`ImportConfig::put_md5`]).
    put_md5: bool,
    /// Metadata and properties files already read, by drive path and expected hash.
    side_files: Mutex<HashMap<(String, Md5Digest), Arc<SideFile>>>,
    counters: Counters,
    events: Arc<dyn EventSink>,
    /// Containers already created, and whether that succeeded.
    containers: tokio::sync::Mutex<HashMap<String, Result<(), String>>>,
}

#[derive(Debug, Default)]
struct Counters {
    bytes_done: AtomicU64,
    /// Block and page bytes the store accepted.
    bytes_sent: AtomicU64,
    /// Bytes an earlier run left in the store (staged blocks, written page ranges) and this run
    /// reused.
    bytes_reused: AtomicU64,
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
    let elapsed = ctx
        .counters
        .started
        .get()
        .map_or(Duration::ZERO, Instant::elapsed);
    let bytes_done = ctx.counters.bytes_done.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
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

/// `done` as a whole percentage of `total`, 100 when `total` is 0.
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    ((u128::from(done.min(total)) * 100) / u128::from(total)) as u8
}

/// Bytes the manifest lists for a blob: its blocks or page ranges.
fn planned_bytes(blob: &Blob) -> u64 {
    match (&blob.block_list, &blob.page_range_list) {
        (Some(blocks), _) => blocks.iter().map(|b| b.length).sum(),
        (None, Some(ranges)) => ranges.iter().map(|r| r.length).sum(),
        (None, None) => 0,
    }
}

/// The block buffer pool's size and the blobs in flight, for `memory_bytes` of buffers of
/// `buffer_bytes` each and an optional blobs-in-flight setting: see
/// [`ImportConfig::memory_bytes`] and [`ImportConfig::blobs_in_flight`].
fn concurrency(
    memory_bytes: u64,
    buffer_bytes: usize,
    blobs_in_flight: Option<usize>,
) -> (usize, usize) {
    let budget = usize::try_from(memory_bytes / buffer_bytes.max(1) as u64).unwrap_or(usize::MAX);
    let in_flight = blobs_in_flight
        .unwrap_or_else(|| budget.clamp(DEFAULT_BLOBS_IN_FLIGHT, MAX_DEFAULT_BLOBS_IN_FLIGHT));
    (budget.clamp(2, MAX_POOL_BUFFERS), in_flight.max(1))
}

/// The buffer size: the largest block or page range of a valid blob, rounded up to 4 KiB.
fn buffer_size(
    manifest: &DriveManifest,
    problems: &HashMap<(usize, usize), Vec<ProblemKind>>,
) -> usize {
    let mut max = 4096u64;
    for (idx, blob) in manifest.blobs() {
        if problems.contains_key(&idx) {
            continue;
        }
        let longest = match (&blob.block_list, &blob.page_range_list) {
            (Some(blocks), _) => blocks.iter().map(|b| b.length).max().unwrap_or(0),
            (None, Some(ranges)) => ranges.iter().map(|r| r.length).max().unwrap_or(0),
            (None, None) => 0,
        };
        max = max.max(longest);
    }
    let rounded = max.div_ceil(4096) * 4096;
    usize::try_from(rounded).unwrap_or(usize::MAX)
}

/// Why a drive file (the manifest, a data file, a metadata or properties file) could not be
/// opened, in the terms the drive, blob and file statuses share (azure-import-export.md §2.4,
/// §2.5, §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenFailure {
    /// It would leave the drive root, passes through a symbolic link, or is not a regular file.
    NameInvalid,
    /// It does not exist.
    NotFound,
    /// Permission denied.
    AccessDenied,
    /// Any other I/O error.
    IoFailed,
}

impl OpenFailure {
    fn of(e: &OpenError) -> OpenFailure {
        match e {
            OpenError::Escapes { .. } | OpenError::NotRegularFile { .. } => {
                OpenFailure::NameInvalid
            }
            OpenError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => OpenFailure::NotFound,
                io::ErrorKind::PermissionDenied => OpenFailure::AccessDenied,
                _ => OpenFailure::IoFailed,
            },
        }
    }
}

/// A drive-level failure (azure-import-export.md §2.4): nothing past the manifest is attempted.
struct DriveFailure {
    drive_id: String,
    status: DriveLogStatus,
    message: String,
    manifest_md5: Option<Md5Digest>,
}

impl DriveFailure {
    /// Announce the run and the failure, write the error log, and build the report.
    async fn report(
        self,
        config: &ImportConfig,
        job: &str,
        started_at: OffsetDateTime,
        store: &dyn BlobStore,
        events: &dyn EventSink,
    ) -> ImportReport {
        events.emit(config.start_event(&self.drive_id, 0, 0, (0, 0)));
        config.announce_engine(events);
        events.emit(warning(
            self.status.as_str(),
            self.message,
            Some(config.manifest_file.clone()),
        ));
        let mut log = DriveLog::new(self.drive_id, Vec::new());
        log.status = self.status;
        let mut report = ImportReport {
            drive_log: log,
            bytes_total: 0,
            bytes_succeeded: 0,
            bytes_sent: 0,
            bytes_reused: 0,
            retries: store.retries(),
            error_log_uri: None,
            verbose_log_uri: None,
            manifest_uri: None,
            cancelled: false,
            manifest_file: config.manifest_file.clone(),
            manifest_md5: self.manifest_md5,
        };
        write_logs(config, job, started_at, store, events, &mut report, None).await;
        report
    }
}

struct LoadedManifest {
    manifest: DriveManifest,
    /// The manifest file's bytes, for its backup.
    bytes: Vec<u8>,
    md5: Md5Digest,
    root: Arc<std::fs::File>,
}

struct ManifestFailure {
    status: DriveLogStatus,
    message: String,
    md5: Option<Md5Digest>,
    /// The manifest's `DriveId`, when the file could be parsed despite the failure.
    drive_id: Option<String>,
}

/// The credential the drive's manifest carries (`StorageAccountKey` or `ContainerSas`, §1.3),
/// for a caller that opens the store before the import reads the manifest: the service imports
/// with it when nothing else is given. `None` when the manifest cannot be read or parsed (the
/// import then reports that as its drive-level status) or carries no credential.
pub fn manifest_credential(config: &ImportConfig) -> Option<crate::manifest::Credential> {
    load_manifest(config).ok()?.manifest.drive.credential
}

fn load_manifest(config: &ImportConfig) -> Result<LoadedManifest, ManifestFailure> {
    let fail = |status, message: String, md5| ManifestFailure {
        status,
        message,
        md5,
        drive_id: None,
    };
    let rel = DrivePath::parse(&config.manifest_file).map_err(|e| {
        let status = if e.is_too_long() {
            DriveLogStatus::ManifestNameTooLong
        } else {
            DriveLogStatus::ManifestNameInvalid
        };
        fail(status, e.to_string(), None)
    })?;
    let root = open_root(&config.drive_root).map_err(|e| {
        let status = if e.kind() == io::ErrorKind::NotFound {
            DriveLogStatus::DiskNotFound
        } else {
            DriveLogStatus::DiskOperationFailed
        };
        fail(
            status,
            format!("open drive root {}: {e}", config.drive_root.display()),
            None,
        )
    })?;
    let file = ReadFile::open_beneath(&root, &rel.relative(), false).map_err(|e| {
        let status = match OpenFailure::of(&e) {
            OpenFailure::NameInvalid => DriveLogStatus::ManifestNameInvalid,
            OpenFailure::NotFound => DriveLogStatus::ManifestNotFound,
            OpenFailure::AccessDenied => DriveLogStatus::ManifestAccessDenied,
            OpenFailure::IoFailed => DriveLogStatus::ReadManifestFailed,
        };
        fail(status, e.to_string(), None)
    })?;
    let bytes = file.read_to_end(MAX_MANIFEST_BYTES).map_err(|e| {
        fail(
            DriveLogStatus::ReadManifestFailed,
            format!("read manifest: {e}"),
            None,
        )
    })?;
    let md5 = Md5Digest::of(&bytes);
    if let Some(expected) = &config.manifest_hash {
        if !manifest_hash_matches(expected, &bytes) {
            let mut failure = fail(
                DriveLogStatus::ManifestCorrupted,
                format!(
                    "manifest hash is {md5}, the job expects {}",
                    expected.trim()
                ),
                Some(md5),
            );
            // Name the drive in the log if the file still parses; nothing in it is trusted.
            failure.drive_id = DriveManifest::parse(&bytes).ok().map(|m| m.drive.drive_id);
            return Err(failure);
        }
    }
    let manifest = DriveManifest::parse(&bytes).map_err(|e| {
        fail(
            DriveLogStatus::ManifestFormatInvalid,
            e.to_string(),
            Some(md5),
        )
    })?;
    if let Some(expected) = &config.drive_id {
        if expected != &manifest.drive.drive_id {
            return Err(fail(
                DriveLogStatus::ManifestDriveIdMismatch,
                format!(
                    "manifest DriveId {:?} is not the drive {expected:?}",
                    manifest.drive.drive_id
                ),
                Some(md5),
            ));
        }
    }
    Ok(LoadedManifest {
        manifest,
        bytes,
        md5,
        root: Arc::new(root),
    })
}

/// Whether `expected` (Base16 MD5 or SHA-256 of the manifest, azure-import-export.md §1.5: newer
/// jobs carry 64 hex digits) matches the manifest bytes.
pub fn manifest_hash_matches(expected: &str, bytes: &[u8]) -> bool {
    let expected = expected.trim();
    match expected.len() {
        32 => Md5Digest::from_hex(expected).is_ok_and(|d| d == Md5Digest::of(bytes)),
        64 => {
            use sha2::Digest as _;
            let actual = crate::digest::upper_hex(&sha2::Sha256::digest(bytes));
            actual.eq_ignore_ascii_case(expected)
        }
        _ => false,
    }
}

/// One blob's result.
#[derive(Debug, Clone)]
struct BlobOutcome {
    log: BlobLog,
    bytes_succeeded: u64,
    /// The cancel token stopped this blob before it was finished.
    interrupted: bool,
}

impl BlobOutcome {
    /// A blob that failed before any data moved: every block or range `Cancelled`, the
    /// disposition `Cancelled`, as the FileNotFound sample shows (azure-import-export.md §2.8).
    fn failed_before_copy(blob: &Blob, status: BlobStatus) -> BlobOutcome {
        let mut log = base_log(blob, status);
        log.import_disposition = Some(LogDisposition {
            status: ImportDispositionStatus::Cancelled,
            requested: blob.effective_disposition().as_str().to_string(),
        });
        log.list = Some(all_ranges(blob, RangeStatus::Cancelled));
        BlobOutcome {
            log,
            bytes_succeeded: 0,
            interrupted: false,
        }
    }

    /// A blob never started because the run was cancelled.
    fn unprocessed(_list: &BlobList, blob: &Blob) -> BlobOutcome {
        BlobOutcome::failed_before_copy(blob, BlobStatus::Failed)
    }
}

fn base_log(blob: &Blob, status: BlobStatus) -> BlobLog {
    BlobLog {
        status,
        blob_path: blob.blob_path.clone(),
        file_path: blob.file_path.clone(),
        snapshot: None,
        last_modified: None,
        length_bytes: blob.length,
        import_disposition: None,
        list: None,
        metadata: None,
        properties: None,
    }
}

fn all_ranges(blob: &Blob, status: RangeStatus) -> RangeList {
    match (&blob.block_list, &blob.page_range_list) {
        (Some(blocks), _) => RangeList::BlockList(
            blocks
                .iter()
                .map(|b| BlockLog {
                    offset_bytes: b.offset,
                    length_bytes: b.length,
                    id: b.id.clone(),
                    hash: Some(b.hash),
                    status: status.clone(),
                })
                .collect(),
        ),
        (None, Some(ranges)) => RangeList::PageRangeList(
            ranges
                .iter()
                .map(|r| RangeLog {
                    offset_bytes: r.offset,
                    length_bytes: r.length,
                    hash: Some(r.hash),
                    status: status.clone(),
                })
                .collect(),
        ),
        (None, None) => RangeList::BlockList(Vec::new()),
    }
}

/// The blob status a manifest problem gives its blob (azure-import-export.md §2.5).
fn problem_status(problems: &[ProblemKind]) -> BlobStatus {
    for p in problems {
        if let ProblemKind::InvalidFilePath(e) = p {
            return if e.is_too_long() {
                BlobStatus::FileNameTooLong
            } else {
                BlobStatus::FileNameInvalid
            };
        }
    }
    BlobStatus::Failed
}

/// What one block or page range becomes.
#[derive(Debug, Clone)]
enum Piece {
    /// One block of a block blob, staged under its id (Put Block).
    Block(BlockId),
    /// The only block of a single-block blob, written with its properties and metadata in one
    /// atomic Put Blob, as Azure's clients upload small blobs; `Content-MD5` is the block's MD5.
    Whole(Box<CommitOptions>),
    /// A page range (Put Page).
    Page,
    /// A block an earlier run staged (see `staged_blocks`): read and checked only to feed the
    /// whole-blob MD5 ([`ImportConfig::put_md5`]), not sent again.
    Reuse,
}

async fn import_blob(
    ctx: &Arc<Ctx>,
    (l, b): (usize, usize),
    problems: Vec<ProblemKind>,
) -> BlobOutcome {
    let manifest = Arc::clone(&ctx.manifest);
    let list = &manifest.drive.blob_lists[l];
    let blob = &list.blobs[b];
    let planned = planned_bytes(blob);
    if !problems.is_empty() {
        for p in &problems {
            ctx.events.emit(warning(
                "BlobInvalid",
                p.to_string(),
                Some(blob.blob_path.clone()),
            ));
        }
        ctx.counters
            .bytes_done
            .fetch_add(planned, Ordering::Relaxed);
        return BlobOutcome::failed_before_copy(blob, problem_status(&problems));
    }
    let outcome = import_valid_blob(ctx, list, blob).await;
    outcome
}

async fn import_valid_blob(ctx: &Arc<Ctx>, list: &BlobList, blob: &Blob) -> BlobOutcome {
    let planned = planned_bytes(blob);
    let (Ok(dest), Ok(rel)) = (blob.blob_path(), blob.drive_path()) else {
        // Validation has already reported these; keep the blob failed if it slipped through.
        ctx.counters
            .bytes_done
            .fetch_add(planned, Ordering::Relaxed);
        return BlobOutcome::failed_before_copy(blob, BlobStatus::FileNameInvalid);
    };

    // Metadata and properties: the blob's own file overrides the list default (§3).
    let (metadata_log, metadata) = side_file::<Metadata>(
        ctx,
        &blob.metadata_path,
        &list.metadata_path,
        SideKind::Metadata,
    );
    let (properties_log, properties) = side_file::<Properties>(
        ctx,
        &blob.properties_path,
        &list.properties_path,
        SideKind::Properties,
    );

    let ids = block_ids(blob);
    let direct = ctx.direct_io && offsets_aligned(blob);
    let file = match ReadFile::open_beneath(&ctx.root, &rel.relative(), direct) {
        Ok(f) => f,
        Err(e) => {
            let status = match OpenFailure::of(&e) {
                OpenFailure::NameInvalid => BlobStatus::FileNameInvalid,
                OpenFailure::NotFound => BlobStatus::FileNotFound,
                OpenFailure::AccessDenied => BlobStatus::FileAccessDenied,
                OpenFailure::IoFailed => BlobStatus::IOFailed,
            };
            ctx.events.emit(warning(
                status.as_str(),
                e.to_string(),
                Some(blob.file_path.clone()),
            ));
            ctx.counters
                .bytes_done
                .fetch_add(planned, Ordering::Relaxed);
            let mut outcome = BlobOutcome::failed_before_copy(blob, status);
            outcome.log.metadata = metadata_log;
            outcome.log.properties = properties_log;
            return outcome;
        }
    };

    if let Err(status) = ensure_container(ctx, &dest.container).await {
        ctx.counters
            .bytes_done
            .fetch_add(planned, Ordering::Relaxed);
        return BlobOutcome::failed_before_copy(blob, status);
    }

    // Import disposition (§1.4), recognising an earlier run's identical blob.
    let requested = blob.effective_disposition();
    let target = match resolve_target(ctx, &dest, blob, &ids, requested).await {
        Ok(t) => t,
        Err(status) => {
            ctx.counters
                .bytes_done
                .fetch_add(planned, Ordering::Relaxed);
            return BlobOutcome::failed_before_copy(blob, status);
        }
    };
    let mut log = base_log(blob, BlobStatus::Completed);
    log.blob_path = target.path.to_string();
    log.import_disposition = Some(LogDisposition {
        status: target.disposition.clone(),
        requested: requested.as_str().to_string(),
    });
    log.metadata = metadata_log.clone();
    log.properties = properties_log.clone();
    if !target.copy {
        ctx.counters
            .bytes_done
            .fetch_add(planned, Ordering::Relaxed);
        let done = matches!(target.disposition, ImportDispositionStatus::Skipped);
        log.list = (!done).then(|| all_ranges(blob, RangeStatus::Completed));
        if metadata_log.as_ref().is_some_and(|m| m.status.is_failure())
            || properties_log
                .as_ref()
                .is_some_and(|p| p.status.is_failure())
        {
            log.status = BlobStatus::CompletedWithErrors;
        }
        let bytes = if done { 0 } else { planned };
        return BlobOutcome {
            log,
            bytes_succeeded: bytes,
            interrupted: false,
        };
    }

    let mut options = CommitOptions {
        content: properties
            .map(|p| content_properties(&p))
            .unwrap_or_default(),
        metadata: metadata
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        condition: target.condition.clone(),
    };
    let target_path = Arc::new(target.path.clone());

    let mut statuses: Vec<RangeStatus>;
    let mut succeeded = 0;
    // Set when the cancel token cut this blob short: it is then unfinished, not a blob with errors.
    let mut interrupted = false;
    if let Some(ranges) = &blob.page_range_list {
        // Resume: an earlier run's part-written page blob keeps the ranges it holds (each read
        // back and checked against its MD5 by `existing`); it gets this run's properties and
        // metadata, and only the missing ranges are written. Otherwise the blob is created.
        let reused = target.written.clone().unwrap_or_default();
        let prepared = if target.written.is_some() {
            let set = async {
                ctx.store
                    .set_properties(&target_path, options.content.clone(), Condition::None)
                    .await?;
                ctx.store
                    .set_metadata(&target_path, options.metadata.clone(), Condition::None)
                    .await
            };
            set.await.map(|_| ())
        } else {
            ctx.store
                .create_page_blob(&target_path, blob.length, options.clone())
                .await
                .map(|_| ())
        };
        if let Err(e) = prepared {
            ctx.events.emit(warning(
                "BlobRequestFailed",
                e.to_string(),
                Some(target_path.to_string()),
            ));
            ctx.counters
                .bytes_done
                .fetch_add(planned, Ordering::Relaxed);
            return BlobOutcome::failed_before_copy(blob, store_blob_status(&e));
        }
        let is_reused = |i: usize| reused.get(i).copied().unwrap_or(false);
        let reused_bytes: u64 = ranges
            .iter()
            .enumerate()
            .filter(|(i, _)| is_reused(*i))
            .map(|(_, r)| r.length)
            .sum();
        ctx.counters
            .bytes_reused
            .fetch_add(reused_bytes, Ordering::Relaxed);
        ctx.counters
            .bytes_done
            .fetch_add(reused_bytes, Ordering::Relaxed);
        let pieces: Vec<(u64, u64, Md5Digest, Piece)> = ranges
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_reused(*i))
            .map(|(_, r)| (r.offset, r.length, r.hash, Piece::Page))
            .collect();
        let mut sent = copy_pieces(ctx, &file, &target_path, pieces, None)
            .await
            .into_iter();
        statuses = (0..ranges.len())
            .map(|i| {
                if is_reused(i) {
                    RangeStatus::Completed
                } else {
                    sent.next().unwrap_or(RangeStatus::Cancelled)
                }
            })
            .collect();
        interrupted = statuses.iter().any(|s| matches!(s, RangeStatus::Cancelled));
        succeeded = ranges
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| matches!(s, RangeStatus::Completed))
            .map(|(r, _)| r.length)
            .sum();
        log.list = Some(RangeList::PageRangeList(
            ranges
                .iter()
                .zip(&statuses)
                .map(|(r, s)| RangeLog {
                    offset_bytes: r.offset,
                    length_bytes: r.length,
                    hash: Some(r.hash),
                    status: s.clone(),
                })
                .collect(),
        ));
    } else {
        let blocks = blob.block_list.as_deref().unwrap_or_default();
        // A single-block blob goes in one Put Blob (no staging, no separate commit) unless its
        // properties file states another Content-MD5, which Put Blob would verify and refuse.
        let whole = blocks.len() == 1
            && options
                .content
                .content_md5
                .is_none_or(|md5| md5 == blocks[0].hash);
        // Resume: blocks an earlier run staged are neither read nor sent again.
        let reused = if whole {
            vec![false; blocks.len()]
        } else {
            staged_blocks(ctx, &target_path, blocks, &ids).await
        };
        let reused_bytes: u64 = blocks
            .iter()
            .zip(&reused)
            .filter(|(_, r)| **r)
            .map(|(b, _)| b.length)
            .sum();
        ctx.counters
            .bytes_reused
            .fetch_add(reused_bytes, Ordering::Relaxed);
        ctx.counters
            .bytes_done
            .fetch_add(reused_bytes, Ordering::Relaxed);
        // The whole-blob MD5 needs every block in order, reused ones included.
        let whole_md5 = (ctx.put_md5 && !whole && options.content.content_md5.is_none())
            .then(|| Arc::new(OrderedMd5::new(blocks.len())));
        let pieces: Vec<(u64, u64, Md5Digest, Piece)> = if whole {
            let b = &blocks[0];
            vec![(
                b.offset,
                b.length,
                b.hash,
                Piece::Whole(Box::new(options.clone())),
            )]
        } else {
            blocks
                .iter()
                .zip(&ids)
                .zip(&reused)
                .filter(|(_, r)| whole_md5.is_some() || !**r)
                .map(|((blk, id), r)| {
                    let piece = if *r {
                        Piece::Reuse
                    } else {
                        Piece::Block(id.clone())
                    };
                    (blk.offset, blk.length, blk.hash, piece)
                })
                .collect()
        };
        let mut sent = copy_pieces(ctx, &file, &target_path, pieces, whole_md5.clone())
            .await
            .into_iter();
        statuses = reused
            .iter()
            .map(|r| {
                if *r && whole_md5.is_none() {
                    RangeStatus::Completed
                } else {
                    sent.next().unwrap_or(RangeStatus::Cancelled)
                }
            })
            .collect();
        let all_staged = statuses.iter().all(|s| matches!(s, RangeStatus::Completed));
        if whole {
            interrupted = statuses.iter().any(|s| matches!(s, RangeStatus::Cancelled));
            succeeded = if all_staged { planned } else { 0 };
        }
        let commit = !whole && all_staged && !ctx.cancel.is_cancelled();
        if !whole {
            interrupted = !commit && ctx.cancel.is_cancelled();
        }
        if commit {
            // A single-block blob's block MD5 is its whole-blob MD5: set it for free.
            if options.content.content_md5.is_none() && blocks.len() == 1 {
                options.content.content_md5 = Some(blocks[0].hash);
            }
            if let Some(md5) = whole_md5.as_ref().and_then(|h| h.finish()) {
                options.content.content_md5 = Some(md5);
            }
            match ctx
                .store
                .commit_block_list(&target_path, &ids, options)
                .await
            {
                Ok(_) => succeeded = planned,
                Err(e) => {
                    ctx.events.emit(warning(
                        "BlobRequestFailed",
                        e.to_string(),
                        Some(target_path.to_string()),
                    ));
                    log.status = store_blob_status(&e);
                    statuses = vec![RangeStatus::Uncommitted; statuses.len()];
                    succeeded = 0;
                }
            }
        } else if !whole {
            // Not every block arrived: committing would make a blob with holes. Blocks that were
            // staged stay uncommitted (Azure drops them after about a week).
            for s in statuses.iter_mut() {
                if matches!(s, RangeStatus::Completed) {
                    *s = RangeStatus::Uncommitted;
                }
            }
            succeeded = 0;
        }
        log.list = Some(RangeList::BlockList(
            blocks
                .iter()
                .zip(&statuses)
                .map(|(b, s)| BlockLog {
                    offset_bytes: b.offset,
                    length_bytes: b.length,
                    id: b.id.clone(),
                    hash: Some(b.hash),
                    status: s.clone(),
                })
                .collect(),
        ));
    }
    if interrupted {
        // Unfinished, as `import_drive` documents: `Failed` with a `Cancelled` disposition (it was
        // not created), the block or range statuses saying how far it got. A re-run finishes it.
        log.status = BlobStatus::Failed;
        if let Some(d) = log.import_disposition.as_mut() {
            d.status = ImportDispositionStatus::Cancelled;
        }
        return BlobOutcome {
            log,
            bytes_succeeded: succeeded,
            interrupted: true,
        };
    }
    if matches!(log.status, BlobStatus::Completed)
        && (log.list.as_ref().is_some_and(RangeList::has_errors)
            || metadata_log.as_ref().is_some_and(|m| m.status.is_failure())
            || properties_log
                .as_ref()
                .is_some_and(|p| p.status.is_failure()))
    {
        log.status = BlobStatus::CompletedWithErrors;
    }
    BlobOutcome {
        log,
        bytes_succeeded: succeeded,
        interrupted: false,
    }
}

/// Read, hash, check and send every piece of one blob, at most one buffer per piece in flight
/// and at most as many pieces in flight as the pool has buffers (a store may let go of a buffer
/// before the piece is done, as the local store does before its flushes: this keeps a large blob's
/// requests in flight bounded all the same); returns each piece's status in order.
async fn copy_pieces(
    ctx: &Arc<Ctx>,
    file: &ReadFile,
    target: &Arc<BlobPath>,
    pieces: Vec<(u64, u64, Md5Digest, Piece)>,
    whole_md5: Option<Arc<OrderedMd5>>,
) -> Vec<RangeStatus> {
    let mut statuses = vec![RangeStatus::Cancelled; pieces.len()];
    let single = pieces.len() == 1;
    let mut tasks = JoinSet::new();
    for (i, (offset, length, expected, piece)) in pieces.into_iter().enumerate() {
        while tasks.len() >= ctx.pool.count() {
            if let Some(Ok((i, s))) = tasks.join_next().await {
                statuses[i] = s;
            }
        }
        let buf = tokio::select! {
            buf = ctx.pool.acquire() => buf,
            _ = ctx.cancel.cancelled() => break,
        };
        let ctx = Arc::clone(ctx);
        let file = file.clone();
        let target = Arc::clone(target);
        // A reused block was counted done when it was found staged.
        let counts = !matches!(piece, Piece::Reuse);
        let feed = whole_md5.clone().map(|h| (h, i));
        let run = async move {
            let status = copy_piece(
                &ctx, &file, &target, offset, length, expected, piece, buf, feed,
            )
            .await;
            if counts {
                ctx.counters.bytes_done.fetch_add(length, Ordering::Relaxed);
            }
            (i, status)
        };
        if single {
            // Most blobs of a drive of small files: no task to spawn, wake and join.
            let (i, s) = run.await;
            statuses[i] = s;
            break;
        }
        tasks.spawn(run);
        while let Some(Ok((i, s))) = tasks.try_join_next() {
            statuses[i] = s;
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, s)) = done {
            statuses[i] = s;
        }
    }
    statuses
}

#[allow(clippy::too_many_arguments)]
async fn copy_piece(
    ctx: &Ctx,
    file: &ReadFile,
    target: &BlobPath,
    offset: u64,
    length: u64,
    expected: Md5Digest,
    piece: Piece,
    buf: crate::engine::buf::PoolBuf,
    whole_md5: Option<(Arc<OrderedMd5>, usize)>,
) -> RangeStatus {
    let Ok(len) = usize::try_from(length) else {
        return RangeStatus::Failed;
    };
    let (read, buf) = ctx.reader.read_at(file, offset, len, buf).await;
    match read {
        Ok(n) if n == len => {}
        Ok(_) => return RangeStatus::FileUnexpectedEnd,
        Err(e) => {
            ctx.events.emit(warning(
                "IOFailed",
                format!("read {} bytes at offset {offset}: {e}", len),
                Some(file.rel_path().display().to_string()),
            ));
            return RangeStatus::IOFailed;
        }
    }
    let data: Bytes = buf.freeze(len);
    let digest = ctx.hasher.digest(data.clone()).await;
    if digest.md5 != expected {
        return RangeStatus::Corrupted;
    }
    if ctx.cancel.is_cancelled() {
        return RangeStatus::Cancelled;
    }
    if let Some((hasher, index)) = whole_md5 {
        hasher.feed(&ctx.hasher, index, data.clone()).await;
    }
    let checksum = BlockChecksum::Md5Verified(digest.md5);
    let sent = match piece {
        Piece::Block(id) => {
            ctx.store
                .stage_block(
                    target,
                    StageBlock {
                        id,
                        data,
                        checksum,
                        offset_hint: Some(offset),
                    },
                )
                .await
        }
        Piece::Whole(mut options) => {
            options.content.content_md5 = Some(digest.md5);
            ctx.store.put_blob(target, data, *options).await.map(|_| ())
        }
        Piece::Page => ctx.store.put_pages(target, offset, data, checksum).await,
        Piece::Reuse => return RangeStatus::Completed,
    };
    match sent {
        Ok(()) => {
            ctx.counters.bytes_sent.fetch_add(length, Ordering::Relaxed);
            RangeStatus::Completed
        }
        Err(StoreError::Md5Mismatch { .. }) => RangeStatus::Corrupted,
        Err(e) => {
            ctx.events.emit(warning(
                "BlobRequestFailed",
                e.to_string(),
                Some(target.to_string()),
            ));
            RangeStatus::BlobRequestFailed
        }
    }
}

/// Which blocks of a block blob the store already holds from an earlier, interrupted run: an
/// uncommitted block with the manifest's Id and length (issue 4 item 5). Only content-addressed
/// Ids are trusted, the tool's `MD5/<base64 MD5>` form (azure-import-export.md §1.5), generated or
/// given in the manifest: an uncommitted block under such an Id was staged with that MD5 as its
/// transactional check, so its bytes are the manifest's. A manifest Id of another form could name
/// other bytes, and its block is sent again. Blocks are matched by Id and length only; the store
/// is not asked to read them back. A block listing that fails reuses nothing.
async fn staged_blocks(
    ctx: &Ctx,
    path: &BlobPath,
    blocks: &[crate::manifest::Block],
    ids: &[BlockId],
) -> Vec<bool> {
    let none = vec![false; blocks.len()];
    let listing = match ctx.store.get_block_list(path).await {
        Ok(l) => l,
        Err(StoreError::NotFound { .. }) => return none,
        Err(e) => {
            tracing::debug!(blob = %path, error = %e, "no block listing: staging every block");
            return none;
        }
    };
    if listing.uncommitted.is_empty() {
        return none;
    }
    let staged: HashMap<&BlockId, u64> = listing
        .uncommitted
        .iter()
        .map(|(id, len)| (id, *len))
        .collect();
    blocks
        .iter()
        .zip(ids)
        .map(|(b, id)| {
            let content_addressed =
                b.id.as_deref()
                    .is_none_or(|text| text == format!("MD5/{}", b.hash.to_base64()));
            content_addressed && staged.get(id) == Some(&b.length)
        })
        .collect()
}

fn store_blob_status(e: &StoreError) -> BlobStatus {
    match e {
        StoreError::PermissionDenied { .. } => BlobStatus::BlobRequestForbidden,
        _ => BlobStatus::BlobRequestFailed,
    }
}

/// The Put Block ids of a block blob: the manifest's, or the tool's `MD5/<base64 md5>` form
/// (azure-import-export.md §1.5) when the manifest names none; the Base64 text is decoded to the
/// raw id bytes the store takes.
fn block_ids(blob: &Blob) -> Vec<BlockId> {
    let Some(blocks) = &blob.block_list else {
        return Vec::new();
    };
    blocks
        .iter()
        .map(|b| {
            let text =
                b.id.clone()
                    .unwrap_or_else(|| format!("MD5/{}", b.hash.to_base64()));
            // Validation checked every manifest Id; the generated form is valid Base64 by
            // construction (28 characters, one padding group).
            BlockId::from_base64(&text).unwrap_or_else(|_| {
                BlockId::new(b.hash.0.to_vec()).expect("16 bytes is a valid id")
            })
        })
        .collect()
}

fn offsets_aligned(blob: &Blob) -> bool {
    let aligned = |o: u64| o.is_multiple_of(4096);
    match (&blob.block_list, &blob.page_range_list) {
        (Some(blocks), _) => blocks.iter().all(|b| aligned(b.offset)),
        (None, Some(ranges)) => ranges.iter().all(|r| aligned(r.offset)),
        (None, None) => true,
    }
}

async fn ensure_container(ctx: &Ctx, container: &str) -> Result<(), BlobStatus> {
    let mut known = ctx.containers.lock().await;
    if let Some(r) = known.get(container) {
        return r.clone().map_err(|_| BlobStatus::BlobRequestFailed);
    }
    let result = ctx.store.create_container(container).await;
    let status = result.as_ref().map_err(store_blob_status).map(|_| ());
    if let Err(e) = &result {
        ctx.events.emit(warning(
            "BlobRequestFailed",
            e.to_string(),
            Some(container.to_string()),
        ));
    }
    known.insert(container.to_string(), result.map_err(|e| e.to_string()));
    status
}

/// Where a blob goes and whether data must move.
struct Target {
    path: BlobPath,
    disposition: ImportDispositionStatus,
    condition: Condition,
    /// False when the blob is skipped or an earlier run already imported it.
    copy: bool,
    /// For a page blob an earlier run part-wrote: which manifest ranges it already holds, whole
    /// and with the manifest's MD5 (those are not read or sent again).
    written: Option<Vec<bool>>,
}

/// What the store already holds at a blob's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Existing {
    /// Nothing.
    Absent,
    /// Exactly this blob: an earlier run's finished work.
    Same,
    /// This page blob, part-written by an earlier run that was interrupted: its length, and only
    /// manifest ranges written, each whole and with the manifest's MD5. Page blobs are visible
    /// from creation (as on Azure), so a cancelled run leaves one; the next run finishes it.
    /// Holds, per manifest range, whether it is already written.
    Partial(Vec<bool>),
    /// Another blob.
    Other,
}

/// Whether the blob at `path` exists, and if so whether it already holds exactly this blob.
async fn existing(
    ctx: &Ctx,
    path: &BlobPath,
    blob: &Blob,
    ids: &[BlockId],
) -> Result<Existing, StoreError> {
    let props = match ctx.store.get_properties(path).await {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => return Ok(Existing::Absent),
        Err(e) => return Err(e),
    };
    if props.length != blob.length {
        return Ok(Existing::Other);
    }
    let found = match (&blob.page_range_list, props.kind) {
        (Some(ranges), BlobKind::PageBlob) => {
            let written = ctx.store.get_page_ranges(path).await?;
            let wanted = crate::store::merge_ranges(
                ranges
                    .iter()
                    .map(|r| r.offset..r.offset + r.length)
                    .collect(),
            );
            if written == wanted {
                Existing::Same
            } else if let Some(done) = part_written(ctx, path, ranges, &written).await? {
                Existing::Partial(done)
            } else {
                Existing::Other
            }
        }
        (None, BlobKind::BlockBlob) => {
            let listing = ctx.store.get_block_list(path).await?;
            let blocks = blob.block_list.as_deref().unwrap_or_default();
            // A single-block blob written by Put Blob has no committed blocks: its Content-MD5,
            // which Put Blob verified, is the block's MD5.
            let put_whole = listing.committed.is_empty()
                && blocks.len() == 1
                && props.content.content_md5 == Some(blocks[0].hash);
            let same = put_whole
                || listing.committed.len() == ids.len()
                    && listing
                        .committed
                        .iter()
                        .zip(ids.iter().zip(blocks))
                        .all(|((cid, clen), (id, b))| cid == id && *clen == b.length);
            if same {
                Existing::Same
            } else {
                Existing::Other
            }
        }
        _ => Existing::Other,
    };
    Ok(found)
}

/// Whether a page blob's `written` ranges are some of the manifest's `ranges`, each written whole
/// and holding the bytes the manifest hashes (read back one range at a time, at most 4 MiB each);
/// if so, which of the manifest's ranges are written.
async fn part_written(
    ctx: &Ctx,
    path: &BlobPath,
    ranges: &[crate::manifest::PageRange],
    written: &[std::ops::Range<u64>],
) -> Result<Option<Vec<bool>>, StoreError> {
    let covers = |outer: &std::ops::Range<u64>, start: u64, end: u64| {
        outer.start <= start && end <= outer.end
    };
    let wanted = crate::store::merge_ranges(
        ranges
            .iter()
            .map(|r| r.offset..r.offset + r.length)
            .collect(),
    );
    if !written
        .iter()
        .all(|w| wanted.iter().any(|m| covers(m, w.start, w.end)))
    {
        return Ok(None);
    }
    let mut done = vec![false; ranges.len()];
    for (r, done) in ranges.iter().zip(done.iter_mut()) {
        let end = r.offset + r.length;
        if !written.iter().any(|w| w.start < end && r.offset < w.end) {
            continue;
        }
        if !written.iter().any(|w| covers(w, r.offset, end)) {
            return Ok(None);
        }
        let data = ctx.store.read_range(path, Some(r.offset..end)).await?;
        if Md5Digest::of(&data) != r.hash {
            return Ok(None);
        }
        *done = true;
    }
    Ok(Some(done))
}

async fn resolve_target(
    ctx: &Ctx,
    dest: &BlobPath,
    blob: &Blob,
    ids: &[BlockId],
    requested: ImportDisposition,
) -> Result<Target, BlobStatus> {
    let fail = |e: StoreError| {
        ctx.events.emit(warning(
            "BlobRequestFailed",
            e.to_string(),
            Some(dest.to_string()),
        ));
        store_blob_status(&e)
    };
    let created = |path: BlobPath, disposition, copy| Target {
        path,
        disposition,
        condition: Condition::IfNoneMatchStar,
        copy,
        written: None,
    };
    // An earlier run's part-written page blob is finished in place: its properties and metadata
    // are set again, and only the ranges it lacks are written.
    let resumed = |path: BlobPath, disposition, written| Target {
        path,
        disposition,
        condition: Condition::None,
        copy: true,
        written: Some(written),
    };
    match existing(ctx, dest, blob, ids).await.map_err(fail)? {
        Existing::Absent => Ok(created(
            dest.clone(),
            ImportDispositionStatus::Created,
            true,
        )),
        Existing::Same => Ok(created(
            dest.clone(),
            ImportDispositionStatus::Created,
            false,
        )),
        Existing::Partial(done) => Ok(resumed(
            dest.clone(),
            ImportDispositionStatus::Created,
            done,
        )),
        Existing::Other => match requested {
            ImportDisposition::Overwrite => Ok(Target {
                path: dest.clone(),
                disposition: ImportDispositionStatus::Overwritten,
                condition: Condition::None,
                copy: true,
                written: None,
            }),
            ImportDisposition::NoOverwrite => Ok(Target {
                path: dest.clone(),
                disposition: ImportDispositionStatus::Skipped,
                condition: Condition::None,
                copy: false,
                written: None,
            }),
            ImportDisposition::Rename => {
                for n in 2..=MAX_RENAME_ATTEMPTS {
                    let candidate = BlobPath {
                        container: dest.container.clone(),
                        name: rename_candidate(&dest.name, n),
                    };
                    if crate::names::validate_blob_name(&candidate.name).is_err() {
                        return Err(BlobStatus::RenameFailed);
                    }
                    match existing(ctx, &candidate, blob, ids).await.map_err(fail)? {
                        Existing::Absent => {
                            return Ok(created(candidate, ImportDispositionStatus::Renamed, true))
                        }
                        Existing::Same => {
                            return Ok(created(candidate, ImportDispositionStatus::Renamed, false))
                        }
                        Existing::Partial(done) => {
                            return Ok(resumed(candidate, ImportDispositionStatus::Renamed, done))
                        }
                        Existing::Other => continue,
                    }
                }
                Err(BlobStatus::RenameFailed)
            }
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SideKind {
    Metadata,
    Properties,
}

/// A metadata or properties file as read and checked.
#[derive(Debug)]
enum SideFile {
    Metadata(Metadata),
    Properties(Properties),
    Failed(FileLogStatus, String),
}

/// Load the blob's own metadata or properties file, or the list default; returns the log entry
/// and the parsed content when it was read, matched its hash and parsed.
fn side_file<T: FromSide>(
    ctx: &Ctx,
    own: &Option<HashedPath>,
    global: &Option<HashedPath>,
    kind: SideKind,
) -> (Option<FileLog>, Option<T>) {
    let (hashed, is_global) = match (own, global) {
        (Some(p), _) => (p, false),
        (None, Some(p)) => (p, true),
        (None, None) => return (None, None),
    };
    let key = (hashed.path.clone(), hashed.hash);
    let cached = ctx
        .side_files
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned());
    let file = match cached {
        Some(f) => f,
        None => {
            let f = Arc::new(read_side_file(ctx, hashed, kind));
            if let SideFile::Failed(_, why) = f.as_ref() {
                ctx.events.emit(warning(
                    "SideFileFailed",
                    why.clone(),
                    Some(hashed.path.clone()),
                ));
            }
            if let Ok(mut m) = ctx.side_files.lock() {
                m.insert(key, Arc::clone(&f));
            }
            f
        }
    };
    let (status, value) = match file.as_ref() {
        SideFile::Failed(status, _) => (status.clone(), None),
        other => (FileLogStatus::Completed, T::from_side(other)),
    };
    let path = Some(LogPath {
        path: hashed.path.clone(),
        hash: Some(hashed.hash),
    });
    let log = if is_global {
        FileLog {
            status,
            global_path: path,
            path: None,
        }
    } else {
        FileLog {
            status,
            global_path: None,
            path,
        }
    };
    (Some(log), value)
}

trait FromSide: Sized {
    fn from_side(side: &SideFile) -> Option<Self>;
}

impl FromSide for Metadata {
    fn from_side(side: &SideFile) -> Option<Self> {
        match side {
            SideFile::Metadata(m) => Some(m.clone()),
            _ => None,
        }
    }
}

impl FromSide for Properties {
    fn from_side(side: &SideFile) -> Option<Self> {
        match side {
            SideFile::Properties(p) => Some(p.clone()),
            _ => None,
        }
    }
}

fn read_side_file(ctx: &Ctx, hashed: &HashedPath, kind: SideKind) -> SideFile {
    let rel = match hashed.drive_path() {
        Ok(r) => r,
        Err(e) => {
            let status = if e.is_too_long() {
                FileLogStatus::FileNameTooLong
            } else {
                FileLogStatus::FileNameInvalid
            };
            return SideFile::Failed(status, e.to_string());
        }
    };
    let file = match ReadFile::open_beneath(&ctx.root, &rel.relative(), false) {
        Ok(f) => f,
        Err(e) => {
            let status = match OpenFailure::of(&e) {
                OpenFailure::NameInvalid => FileLogStatus::FileNameInvalid,
                OpenFailure::NotFound => FileLogStatus::FileNotFound,
                OpenFailure::AccessDenied => FileLogStatus::FileAccessDenied,
                OpenFailure::IoFailed => FileLogStatus::IOFailed,
            };
            return SideFile::Failed(status, e.to_string());
        }
    };
    let bytes = match file.read_to_end(MAX_SIDE_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => return SideFile::Failed(FileLogStatus::IOFailed, e.to_string()),
    };
    let actual = Md5Digest::of(&bytes);
    if actual != hashed.hash {
        return SideFile::Failed(
            FileLogStatus::Corrupted,
            format!(
                "{} has MD5 {actual}, the manifest says {}",
                hashed.path, hashed.hash
            ),
        );
    }
    match kind {
        SideKind::Metadata => match Metadata::parse(&bytes) {
            Ok(m) => SideFile::Metadata(m),
            Err(e) => SideFile::Failed(FileLogStatus::XmlReadFailed, e.to_string()),
        },
        SideKind::Properties => match Properties::parse(&bytes) {
            Ok(p) => SideFile::Properties(p),
            Err(e) => SideFile::Failed(FileLogStatus::XmlReadFailed, e.to_string()),
        },
    }
}

fn content_properties(p: &Properties) -> ContentProperties {
    ContentProperties {
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        content_language: p.content_language.clone(),
        cache_control: p.cache_control.clone(),
        content_disposition: p.content_disposition.clone(),
        content_md5: p.content_md5,
    }
}

/// The verbose log of `report`: the drive log exactly as Azure writes it, followed by one XML
/// comment with the run's transfer counters, e.g.
/// `<!-- drivecopy: retries="3" bytesSent="1048576" bytesReused="0" -->`.
///
/// Azure's DriveLog has no element for retries (azure-import-export.md §2): an added element
/// or attribute could trip a strict reader of the published format, while a comment after the
/// root element is legal XML (XML 1.0 §2.1, `Misc`) that every XML reader skips, ours included
/// ([`DriveLog::parse`]). The document therefore stays the Azure format byte for byte up to the
/// root's end tag; the comment is an extension a human or `grep` can read. Counts are totals for
/// the run (requests repeated by the retry layer, bytes accepted by the store, bytes of staged
/// blocks reused from an earlier run).
fn verbose_xml(report: &ImportReport) -> String {
    let mut xml = report.drive_log.to_verbose_xml();
    if !xml.ends_with("\r\n") {
        xml.push_str("\r\n");
    }
    xml.push_str(&format!(
        "<!-- drivecopy: retries=\"{}\" bytesSent=\"{}\" bytesReused=\"{}\" -->\r\n",
        report.retries, report.bytes_sent, report.bytes_reused
    ));
    xml
}

/// Write the error log (when anything failed) and the verbose log (at [`LogLevel::Verbose`]) into
/// the diagnostics path, and record their URLs in the report. A log that cannot be written is a
/// warning: the result still reports the copy.
async fn write_logs(
    config: &ImportConfig,
    job: &str,
    at: OffsetDateTime,
    store: &dyn BlobStore,
    events: &dyn EventSink,
    report: &mut ImportReport,
    manifest_backup: Option<Vec<u8>>,
) {
    let log = &report.drive_log;
    let mut wanted: Vec<(DiagnosticsKind, Bytes)> = Vec::new();
    if log.has_errors() {
        wanted.push((DiagnosticsKind::Error, Bytes::from(log.to_error_xml())));
    }
    if config.log_level == LogLevel::Verbose {
        wanted.push((DiagnosticsKind::Verbose, Bytes::from(verbose_xml(report))));
    }
    if let Some(bytes) = manifest_backup {
        wanted.push((DiagnosticsKind::Manifest, Bytes::from(bytes)));
    }
    let drive_id = log.drive_id.clone();
    let target = DiagnosticsTarget {
        diagnostics_path: &config.diagnostics_path,
        job,
        drive_id: &drive_id,
        at,
    };
    for (kind, url) in write_diagnostics(store, events, target, wanted).await {
        match kind {
            DiagnosticsKind::Error => report.error_log_uri = Some(url),
            DiagnosticsKind::Verbose => report.verbose_log_uri = Some(url),
            DiagnosticsKind::Manifest => report.manifest_uri = Some(url),
            DiagnosticsKind::IncompleteBlobList => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_capped_and_small_files_keep_more_blobs_in_flight() {
        const MIB: u64 = 1 << 20;
        // Prepared drives (4 MiB blocks): 16 buffers, 64 blobs.
        assert_eq!(concurrency(64 * MIB, 4 << 20, None), (16, 64));
        // 256 KiB files: the budget allows 256 buffers; 128 are kept, for 256 blobs.
        assert_eq!(
            concurrency(64 * MIB, 256 << 10, None),
            (MAX_POOL_BUFFERS, 256)
        );
        // 4 KiB files: 16,384 buffers allowed, 128 kept.
        assert_eq!(
            concurrency(64 * MIB, 4 << 10, None),
            (MAX_POOL_BUFFERS, 256)
        );
        // A small budget: at least two buffers; the setting wins for blobs in flight.
        assert_eq!(concurrency(MIB, 4 << 20, Some(3)), (2, 3));
        assert_eq!(concurrency(MIB, 4 << 20, Some(0)), (2, 1));
    }

    #[test]
    fn the_verbose_log_keeps_the_azure_document_and_adds_a_comment() {
        let mut log = DriveLog::new("WD-1", Vec::new());
        log.status = DriveLogStatus::Completed;
        let report = ImportReport {
            drive_log: log.clone(),
            bytes_total: 10,
            bytes_succeeded: 10,
            bytes_sent: 6,
            bytes_reused: 4,
            retries: 3,
            error_log_uri: None,
            verbose_log_uri: None,
            manifest_uri: None,
            cancelled: false,
            manifest_file: DEFAULT_MANIFEST_FILE.to_string(),
            manifest_md5: None,
        };
        let xml = verbose_xml(&report);
        let plain = log.to_verbose_xml();
        assert!(xml.starts_with(plain.trim_end()), "{xml}");
        assert!(
            xml.ends_with(
                "<!-- drivecopy: retries=\"3\" bytesSent=\"6\" bytesReused=\"4\" -->\r\n"
            ),
            "{xml}"
        );
        let parsed = DriveLog::parse(xml.as_bytes()).expect("the log still parses");
        assert_eq!(parsed, log);
    }
}
