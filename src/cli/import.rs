//! `drivecopy import`: import one drive into a blob store and report the drive status.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use drivecopy::engine::diagnostics::DEFAULT_DIAGNOSTICS_PATH;
use drivecopy::engine::import::{
    import_drive, ImportConfig, ImportReport, LogLevel, DEFAULT_BLOBS_IN_FLIGHT,
    DEFAULT_MANIFEST_FILE, DEFAULT_MEMORY_BYTES,
};
use drivecopy::engine::read::IoEngine;
use drivecopy::events::{Event, EventSink, ResultEvent};
use drivecopy::job::{DriveState, DriveStatus};
use drivecopy::manifest::{Limits, DEFAULT_MAX_BLOCK_BYTES};
use drivecopy::store::local::{LocalStore, DEFAULT_LOCAL_STORE_DIR};
use drivecopy::store::BlobStore;

use super::args::parse_size;
use super::exit::Exit;
use super::joblink::{JobLink, RecordingSink, Refusal};
use super::output::StdoutSink;

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
    /// (default `./drivecopy-store`).
    #[arg(long, value_name = "URL")]
    pub dest: Option<String>,
    /// The job name, used in log blob names.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// The drive id the job expects; a different manifest `DriveId` is
    /// `ManifestDriveIdMismatch`.
    #[arg(long, value_name = "ID")]
    pub drive_id: Option<String>,
    /// Container (optionally `container/dir`) for the error and verbose logs.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DIAGNOSTICS_PATH)]
    pub diagnostics_path: String,
    /// `error`: an error log when something failed; `verbose`: also a log of every blob.
    #[arg(long, value_enum, default_value_t = LogLevelArg::Error)]
    pub log_level: LogLevelArg,
    /// Memory for block buffers (e.g. `64MiB`); the pool holds memory / block size buffers.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_MEMORY_BYTES)]
    pub memory: u64,
    /// Blobs imported at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BLOBS_IN_FLIGHT)]
    pub concurrency: usize,
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

/// Open the store a `--dest` names.
pub fn open_store(dest: Option<&str>, fsync: bool) -> anyhow::Result<Arc<dyn BlobStore>> {
    let url = dest.unwrap_or(DEFAULT_LOCAL_STORE_DIR);
    if url.starts_with("http://") || url.starts_with("https://") {
        anyhow::bail!("Azure destinations are not supported by this build yet; use a directory");
    }
    let store = LocalStore::from_url(url).with_context(|| format!("open the local store {url}"))?;
    Ok(Arc::new(store.with_fsync(fsync)))
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
        let signals = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            for round in 0..2 {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if round == 0 {
                    tracing::warn!("stopping: finishing blocks in flight, committing nothing new");
                    signals.cancel();
                } else {
                    std::process::exit(i32::from(Exit::Cancelled.code()));
                }
            }
        });
        fut.await
    })
}

/// Run `drivecopy import`.
pub fn run(args: ImportArgs) -> anyhow::Result<Exit> {
    let cancel = CancellationToken::new();
    let sink = Arc::new(StdoutSink::new(cancel.clone()));
    let (engine, remark) = IoEngine::probe();
    let store = open_store(args.dest.as_deref(), !args.no_fsync)?;
    let mut config = ImportConfig::new(&args.drive, engine);
    config.io_engine_remark = remark;
    config.destination = Some(
        args.dest
            .clone()
            .unwrap_or_else(|| DEFAULT_LOCAL_STORE_DIR.to_string()),
    );
    config.manifest_file = args.manifest.clone();
    config.manifest_hash = args.manifest_hash.clone();
    config.drive_id = args.drive_id.clone();
    config.job_name = args.job.clone();
    config.diagnostics_path = args.diagnostics_path.clone();
    config.log_level = match args.log_level {
        LogLevelArg::Error => LogLevel::Error,
        LogLevelArg::Verbose => LogLevel::Verbose,
    };
    config.memory_bytes = args.memory;
    config.blobs_in_flight = args.concurrency;
    config.direct_io = !args.no_direct_io;
    config.limits = Limits::default().with_max_block_bytes(args.max_block_bytes);

    let link = match (&args.job_store, &args.job, &args.drive_id) {
        (None, _, _) => None,
        (Some(spec), Some(job), Some(drive)) => match super::job::open_store(spec)? {
            Ok(store) => Some(Arc::new(JobLink::new(store, job.clone(), drive.clone()))),
            Err(message) => {
                eprintln!("drivecopy: {message}");
                return Ok(Exit::Usage);
            }
        },
        (Some(_), _, _) => {
            eprintln!("drivecopy: --job-store needs --job NAME and --drive-id ID");
            return Ok(Exit::Usage);
        }
    };

    let started = Instant::now();
    let outcome = run_with_signals(cancel.clone(), async {
        let events: Arc<dyn EventSink> = match &link {
            Some(link) => Arc::new(RecordingSink::new(
                sink.clone(),
                Arc::clone(link),
                tokio::runtime::Handle::current(),
            )),
            None => sink.clone(),
        };
        if let Some(link) = &link {
            match link.start().await {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => return Ok(Finished::Refused(refusal)),
                Err(e) => {
                    return Ok(Finished::Failed(
                        anyhow::Error::new(e).context("move the drive to Transferring in its job"),
                    ))
                }
            }
        }
        let report = match import_drive(&config, store, events, cancel.clone()).await {
            Ok(report) => report,
            Err(e) => return Ok(Finished::Failed(anyhow::Error::new(e))),
        };
        if let (Some(link), false) = (&link, report.cancelled) {
            if let Err(e) = link.finish(&report).await {
                return Ok(Finished::Failed(
                    anyhow::Error::new(e).context("record the finished copy in its job"),
                ));
            }
        }
        Ok(Finished::Copied(report))
    })?;
    let drive_id = args
        .drive_id
        .clone()
        .unwrap_or_else(|| "unknown".to_string());
    let report = match outcome {
        Finished::Copied(report) => report,
        Finished::Refused(refusal) => {
            let (outcome, message) = match refusal {
                Refusal::Cancelled(m) => (
                    "JobCancelled",
                    format!("the job was cancelled: copy skipped ({m})"),
                ),
                Refusal::Refused(m) => ("Refused", m),
            };
            eprintln!("drivecopy: {message}");
            let mut drive_status = DriveStatus::new(drive_id, DriveState::Received);
            drive_status.manifest_file = Some(args.manifest.clone());
            sink.emit(bare_result(
                outcome,
                Exit::IllegalTransition,
                drive_status,
                started,
                message,
            ));
            return Ok(Exit::IllegalTransition);
        }
        Finished::Failed(e) => {
            // The station itself failed: still end the stream with a result.
            let error = format!("{e:#}");
            let mut drive_status = DriveStatus::new(drive_id, DriveState::Transferring);
            drive_status.manifest_file = Some(args.manifest.clone());
            drive_status.copy_status = Some(drivecopy::copylog::DriveLogStatus::InternalError);
            sink.emit(bare_result(
                "Internal",
                Exit::Internal,
                drive_status,
                started,
                error.clone(),
            ));
            eprintln!("drivecopy: error: {error}");
            return Ok(Exit::Internal);
        }
    };
    let (exit, result) = result_event(&report, started.elapsed().as_secs_f64());
    sink.emit(Event::Result(Box::new(result)));
    Ok(exit)
}

/// How an import run ended, before its `result` event is written.
enum Finished {
    /// The copy ran (completely, with errors, or cancelled by a signal).
    Copied(ImportReport),
    /// The job refused the copy.
    Refused(Refusal),
    /// The station failed (reader, hash pool, job store).
    Failed(anyhow::Error),
}

/// A `result` event for a run that copied nothing.
fn bare_result(
    outcome: &str,
    exit: Exit,
    drive_status: DriveStatus,
    started: Instant,
    error: String,
) -> Event {
    Event::Result(Box::new(ResultEvent {
        command: "import".to_string(),
        outcome: outcome.to_string(),
        exit_code: exit.code(),
        drive_status,
        blobs_total: 0,
        blobs_failed: 0,
        bytes_total: 0,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        bytes_per_second: 0.0,
        error: Some(error),
        incomplete_blob_list_uri: None,
    }))
}

/// The exit code and `result` event for a finished import.
fn result_event(report: &ImportReport, elapsed_seconds: f64) -> (Exit, ResultEvent) {
    let status = report.status().clone();
    let (exit, state) = if report.cancelled {
        (Exit::Cancelled, DriveState::Transferring)
    } else {
        let state = status.drive_state();
        let exit = if report.is_drive_failure() {
            Exit::DriveFailed
        } else if matches!(state, DriveState::Completed) {
            Exit::Completed
        } else {
            Exit::CompletedMoreInfo
        };
        (exit, state)
    };
    let outcome = match exit {
        Exit::Completed => "Completed",
        Exit::CompletedMoreInfo => "CompletedMoreInfo",
        Exit::DriveFailed => "DriveFailed",
        Exit::Cancelled => "Cancelled",
        _ => "Internal",
    };
    let mut drive_status = DriveStatus::new(report.drive_log.drive_id.clone(), state);
    drive_status.manifest_file = Some(report.manifest_file.clone());
    drive_status.manifest_hash = report.manifest_md5.map(|d| d.to_hex());
    drive_status.copy_status = Some(status);
    // The copy is over unless it was cancelled: 100 then, as the service reports a finished drive.
    drive_status.percent_complete = if report.cancelled {
        drivecopy::engine::import::percent(report.bytes_succeeded, report.bytes_total)
    } else {
        100
    };
    drive_status.error_log_uri = report.error_log_uri.clone();
    drive_status.verbose_log_uri = report.verbose_log_uri.clone();
    drive_status.bytes_succeeded = report.bytes_succeeded;
    let result = ResultEvent {
        command: "import".to_string(),
        outcome: outcome.to_string(),
        exit_code: exit.code(),
        drive_status,
        blobs_total: report.drive_log.blobs.len() as u64,
        blobs_failed: report.blobs_failed(),
        bytes_total: report.bytes_total,
        elapsed_seconds,
        bytes_per_second: if elapsed_seconds > 0.0 {
            report.bytes_total as f64 / elapsed_seconds
        } else {
            0.0
        },
        error: None,
        incomplete_blob_list_uri: None,
    };
    (exit, result)
}
