//! `drivecopy import`: import one drive into a blob store and report the drive status.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use drivecopy::engine::import::{
    import_drive, manifest_credential, ImportConfig, ImportReport, LogLevel, DEFAULT_MANIFEST_FILE,
    DEFAULT_MEMORY_BYTES, MAX_DEFAULT_BLOBS_IN_FLIGHT,
};
use drivecopy::engine::read::IoEngine;
use drivecopy::events::{Event, EventSink};
use drivecopy::job::CopyOutcome;
use drivecopy::manifest::Credential;
use drivecopy::manifest::{Limits, DEFAULT_MAX_BLOCK_BYTES};
use drivecopy::store::azure::{display_destination, is_remote, FallbackCredential, Secret};
use drivecopy::store::local::DEFAULT_LOCAL_STORE_DIR;
use drivecopy::store::retry::{RetryPolicy, RetryStore};
use drivecopy::store::{open_url, BlobStore, OpenOptions};

use super::args::parse_size;
use super::exit::Exit;
use super::joblink::{end_without_copy, open_link, run_linked, JobSettings};
use super::output::{CopySummary, StdoutSink};

/// Arguments of `drivecopy import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The drive's root directory (where the drive is mounted).
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// The manifest's path relative to the drive root.
    #[arg(long, value_name = "REL", default_value = DEFAULT_MANIFEST_FILE)]
    pub manifest: String,
    /// The manifest hash the job carries (Base16 MD5, or SHA-256); a mismatch is
    /// `ManifestCorrupted`.
    #[arg(long, value_name = "HEX")]
    pub manifest_hash: Option<String>,
    /// Where blobs go: a directory or `file:///abs/path` for the embedded local store
    /// (default `./drivecopy-store`); or Azure Blob Storage: `https://ACCOUNT.blob.core.windows.net/`
    /// (or `.../CONTAINER`, which limits the import to that container), an emulator URL
    /// `http://127.0.0.1:PORT/devstoreaccount1`, or `devstorage:` (the endpoint of the
    /// connection string). Credentials, first match wins: a SAS in the URL;
    /// `AZURE_STORAGE_CONNECTION_STRING`; `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`
    /// (drivecopy signs short-lived account SAS tokens); Microsoft Entra ID (service principal,
    /// workload or managed identity from `AZURE_*`, or `DRIVECOPY_AZURE_AUTH=cli`). A SAS or key
    /// is never printed.
    #[arg(long, value_name = "URL")]
    pub dest: Option<String>,
    /// The job name, used in log blob names.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// The drive id the job expects; a different manifest `DriveId` is
    /// `ManifestDriveIdMismatch`.
    #[arg(long, value_name = "ID")]
    pub drive_id: Option<String>,
    /// Container (optionally `container/dir`) for the error and verbose logs [default: the
    /// job's diagnosticsPath with `--job-store`, else `waimportexport`].
    #[arg(long, value_name = "PATH")]
    pub diagnostics_path: Option<String>,
    /// `error`: an error log when something failed; `verbose`: also a log of every blob
    /// [default: the job's logLevel with `--job-store`, else `error`].
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevelArg>,
    /// Memory for block buffers (e.g. `64MiB`); the pool holds memory / block size buffers, at
    /// most 128.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_MEMORY_BYTES)]
    pub memory: u64,
    /// Blobs imported at once [default: memory / block size, from 64 to 256: a drive of
    /// small files keeps more blobs in flight].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Largest block the manifest may use, bytes (4 MiB by default; up to 4000 MiB on newer
    /// service versions).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BLOCK_BYTES)]
    pub max_block_bytes: u64,
    /// Record the copy in job `--job` kept in this job store (a directory, or `blob:PATH`; see
    /// `drivecopy job --help`): the drive goes `Transferring` before copying (refused, exit 6, if
    /// the job is cancelled or its state does not allow it), its progress is recorded at most every
    /// 5 s, and its final state, copy status and log URIs at the end. Needs `--drive-id`.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub job_store: Option<String>,
    /// Read through the page cache instead of `O_DIRECT`.
    #[arg(long)]
    pub no_direct_io: bool,
    /// Set every block blob's whole-blob Content-MD5, as AzCopy's `--put-md5` does, so that
    /// downloads can be checked (`azcopy copy --check-md5`). Costs a sequential MD5 pass per
    /// multi-block blob (single-block blobs always get it for free).
    #[arg(long)]
    pub put_md5: bool,
    /// Local store only: do not fsync commits (faster; a machine crash may lose recent blobs,
    /// a process crash loses nothing).
    #[arg(long)]
    pub no_fsync: bool,
}

/// The `--log-level` values (ARM `logLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevelArg {
    /// Error log only.
    Error,
    /// Error and verbose logs.
    Verbose,
}

impl From<LogLevelArg> for LogLevel {
    fn from(level: LogLevelArg) -> Self {
        match level {
            LogLevelArg::Error => LogLevel::Error,
            LogLevelArg::Verbose => LogLevel::Verbose,
        }
    }
}

/// Open the store a `--dest` names (see [`drivecopy::store::open_url`]), its HTTP pool sized
/// to `concurrency` requests. A remote store's requests are retried in one place (style.md §5,
/// `store::retry` with its documented defaults); a cancelled run stops waiting between tries.
/// `fallback` is the credential to use when the URL and the environment give none (the drive
/// manifest's, for import).
pub fn open_store(
    dest: Option<&str>,
    fsync: bool,
    concurrency: usize,
    cancel: &CancellationToken,
    fallback: Option<FallbackCredential>,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let url = dest.unwrap_or(DEFAULT_LOCAL_STORE_DIR);
    let mut options = OpenOptions::new(concurrency);
    options.fsync = fsync;
    options.fallback = fallback;
    let store = open_url(url, &options, |store| {
        Arc::new(RetryStore::new(
            store,
            RetryPolicy::default(),
            cancel.clone(),
        ))
    })
    .with_context(|| format!("open the store {}", display_destination(url)))?;
    Ok(store)
}

/// Start a multi-thread runtime, cancel `cancel` on SIGINT or SIGTERM (a second signal exits at
/// once), and run `fut` on it.
pub fn run_with_signals<F, T>(cancel: CancellationToken, fut: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("drivecopy-io")
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered before the copy starts, so that a signal arriving as soon as the `start`
        // event is out already cancels cleanly instead of killing the process.
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        if let (Ok(mut int), Ok(mut term)) = handlers {
            let signals = cancel.clone();
            tokio::spawn(async move {
                for round in 0..2 {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    if round == 0 {
                        tracing::warn!(
                            "stopping: finishing blocks in flight, committing nothing new"
                        );
                        signals.cancel();
                    } else {
                        std::process::exit(i32::from(Exit::Cancelled.code()));
                    }
                }
            });
        }
        fut.await
    })
}

/// Run `drivecopy import`.
pub fn run(args: ImportArgs) -> anyhow::Result<Exit> {
    let cancel = CancellationToken::new();
    let sink = Arc::new(StdoutSink::new(cancel.clone()));
    let (engine, remark) = IoEngine::probe();
    let mut config = ImportConfig::new(&args.drive, engine);
    config.io_engine_remark = remark;
    // Never the SAS: the start event shows the URL without its query string.
    config.destination = Some(display_destination(
        args.dest.as_deref().unwrap_or(DEFAULT_LOCAL_STORE_DIR),
    ));
    config.manifest_file = args.manifest.clone();
    config.manifest_hash = args.manifest_hash.clone();
    config.drive_id = args.drive_id.clone();
    config.job_name = args.job.clone();
    if let Some(path) = &args.diagnostics_path {
        config.diagnostics_path.clone_from(path);
    }
    if let Some(level) = args.log_level {
        config.log_level = level.into();
    }
    config.memory_bytes = args.memory;
    config.blobs_in_flight = args.concurrency;
    config.direct_io = !args.no_direct_io;
    config.put_md5 = args.put_md5;
    config.limits = Limits::default().with_max_block_bytes(args.max_block_bytes);

    // The manifest's own credential is the last resort for a remote destination, as the
    // service uses it (the URL's SAS and the environment come first).
    let dest = args.dest.as_deref();
    let fallback = dest
        .filter(|d| is_remote(d))
        .and_then(|_| manifest_credential(&config))
        .map(|c| match c {
            Credential::StorageAccountKey(key) => {
                FallbackCredential::StorageAccountKey(Secret::new(key.expose().to_string()))
            }
            // The tool writes `<container>?<sas>`; the SAS is the query.
            Credential::ContainerSas(sas) => {
                let text = sas.expose();
                let query = text.split_once('?').map_or(text, |(_, q)| q);
                FallbackCredential::ContainerSas(Secret::new(query.to_string()))
            }
        });
    // Requests in flight: blobs at once times a few blocks each (the pool keeps idle
    // connections for that many).
    let store = open_store(
        dest,
        !args.no_fsync,
        args.concurrency
            .unwrap_or(MAX_DEFAULT_BLOBS_IN_FLIGHT)
            .saturating_mul(4)
            .max(16),
        &cancel,
        fallback,
    )?;

    let link = match open_link(
        args.job_store.as_deref(),
        args.job.as_deref(),
        args.drive_id.as_deref(),
    )? {
        Ok(link) => link,
        Err(message) => {
            eprintln!("drivecopy: {message}");
            return Ok(Exit::Usage);
        }
    };

    let started = Instant::now();
    let drive_id = args
        .drive_id
        .clone()
        .unwrap_or_else(|| "unknown".to_string());
    let manifest_file = args.manifest.clone();
    let outcome = run_with_signals(cancel.clone(), async {
        let copy = |job: Option<JobSettings>, events| async {
            let mut config = config;
            if let Some(job) = job {
                apply_job_settings(&mut config, &args, job);
            }
            Ok(import_drive(&config, store, events, cancel.clone()).await?)
        };
        let outcome_of = |report: &ImportReport| {
            (!report.cancelled).then(|| {
                let mut outcome = CopyOutcome::new(report.status().clone());
                outcome.bytes_succeeded = report.bytes_succeeded;
                outcome.error_log_uri = report.error_log_uri.clone();
                outcome.verbose_log_uri = report.verbose_log_uri.clone();
                outcome.manifest_uri = report.manifest_uri.clone();
                outcome
            })
        };
        Ok(run_linked(link, sink.clone(), copy, outcome_of).await)
    })?;
    let report = match outcome {
        Ok(report) => *report,
        Err(why) => {
            let sink = sink.as_ref();
            return Ok(end_without_copy(
                "import",
                why,
                drive_id,
                manifest_file,
                started,
                sink,
            ));
        }
    };
    let (exit, result) = CopySummary {
        command: "import",
        log: &report.drive_log,
        cancelled: report.cancelled,
        manifest_file: &report.manifest_file,
        manifest_md5: report.manifest_md5,
        bytes_total: report.bytes_total,
        bytes_succeeded: report.bytes_succeeded,
        bytes_sent: report.bytes_sent,
        bytes_reused: report.bytes_reused,
        retries: report.retries,
        error_log_uri: report.error_log_uri.clone(),
        verbose_log_uri: report.verbose_log_uri.clone(),
        incomplete_blob_list_uri: None,
    }
    .result(started.elapsed().as_secs_f64());
    sink.emit(Event::Result(Box::new(result)));
    Ok(exit)
}

/// The job's settings for this drive, where the command line did not say otherwise: the
/// diagnostics path, the log level, the manifest backup, and the drive's manifest file and hash
/// (which the import then checks, `ManifestHashMismatch` otherwise).
fn apply_job_settings(config: &mut ImportConfig, args: &ImportArgs, job: JobSettings) {
    let flags = (args.diagnostics_path.is_some(), args.log_level.is_some());
    job.apply_logs(&mut config.diagnostics_path, &mut config.log_level, flags);
    config.backup_manifest = job.backup_drive_manifest;
    if args.manifest == DEFAULT_MANIFEST_FILE {
        if let Some(file) = job.manifest_file {
            config.manifest_file = file;
        }
    }
    if config.manifest_hash.is_none() {
        config.manifest_hash = job.manifest_hash;
    }
}
