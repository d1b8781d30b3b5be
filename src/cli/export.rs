//! `drivecopy export`: export blobs onto one drive and report the drive status, with the same
//! event stream, exit codes and drive-state rules as `import`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use tokio_util::sync::CancellationToken;

use drivecopy::engine::export::{
    export_drive, BlobListSource, ExportConfig, ExportReport, DEFAULT_BLOBS_IN_FLIGHT,
    DEFAULT_MEMORY_BYTES, DEFAULT_RANGES_PER_BLOB,
};
use drivecopy::engine::prepare::discover_drive_id;
use drivecopy::engine::read::IoEngine;
use drivecopy::events::{Event, EventSink};
use drivecopy::job::CopyOutcome;
use drivecopy::names::BlobPath;
use drivecopy::store::local::DEFAULT_LOCAL_STORE_DIR;

use super::args::parse_size;
use super::exit::Exit;
use super::import::{open_store, run_with_signals, LogLevelArg};
use super::joblink::{end_without_copy, open_link, run_linked, JobSettings};
use super::output::{CopySummary, StdoutSink};

/// Where the blob list comes from: a file, or a blob in the source store (§4.1).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BlobListArgs {
    /// A `<BlobList>` XML file (`BlobPath` and `BlobPathPrefix` entries).
    #[arg(long, value_name = "FILE")]
    pub blob_list: Option<PathBuf>,
    /// A block blob in the source holding the `<BlobList>` (`container/path`, `$root/...`).
    #[arg(long, value_name = "CONTAINER/PATH")]
    pub blob_list_blob: Option<String>,
}

impl BlobListArgs {
    /// The list source, or a usage message.
    pub fn source(&self) -> Result<BlobListSource, String> {
        match (&self.blob_list, &self.blob_list_blob) {
            (Some(file), _) => std::fs::read(file)
                .map(BlobListSource::Document)
                .map_err(|e| format!("read the blob list {}: {e}", file.display())),
            (None, Some(blob)) => BlobPath::parse(blob)
                .map(BlobListSource::Blob)
                .map_err(|e| format!("--blob-list-blob {blob:?}: {e}")),
            (None, None) => Err("give --blob-list FILE or --blob-list-blob PATH".to_string()),
        }
    }
}

/// Arguments of `drivecopy export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The drive's root directory (where the empty or partly filled export drive is mounted).
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// Where blobs come from: a directory or `file:///abs/path` for the embedded local store.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The blob list.
    #[command(flatten)]
    pub list: BlobListArgs,
    /// The drive id (names the manifest `\<DriveId>.manifest`); by default the serial number of
    /// the drive's device.
    #[arg(long, value_name = "ID")]
    pub drive_id: Option<String>,
    /// Usable bytes of the drive (e.g. `500GB`); by default its file system's free space. Blobs
    /// that do not fit go to the incomplete blob list (`incompleteBlobListUri` in the result).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub capacity: Option<u64>,
    /// The job name, used in log blob names (and, with `--job-store`, the job this drive
    /// belongs to).
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Record the copy in job `--job` of this job store (a directory, `blob:DIR` or a blob
    /// service URL), as `import --job-store` does; the drive must be `Received` in the job.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub job_store: Option<String>,
    /// Container (optionally `container/dir`) for the logs and the incomplete blob list
    /// [default: the job's diagnosticsPath with `--job-store`, else `waimportexport`].
    #[arg(long, value_name = "PATH")]
    pub diagnostics_path: Option<String>,
    /// `error`: an error log when something failed; `verbose`: also a log of every file
    /// [default: the job's logLevel with `--job-store`, else `error`].
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevelArg>,
    /// Memory for ranges in flight (e.g. `64MiB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_MEMORY_BYTES)]
    pub memory: u64,
    /// Blobs exported at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BLOBS_IN_FLIGHT)]
    pub concurrency: usize,
    /// Ranges of one blob downloaded at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RANGES_PER_BLOB)]
    pub ranges_per_blob: usize,
    /// Write through the page cache instead of `O_DIRECT`.
    #[arg(long)]
    pub no_direct_io: bool,
    /// Do not flush the drive before writing its manifest (faster; a crash may lose files the
    /// manifest lists).
    #[arg(long)]
    pub no_fsync: bool,
}

/// Run `drivecopy export`.
pub fn run(args: ExportArgs) -> anyhow::Result<Exit> {
    let list = match args.list.source() {
        Ok(l) => l,
        Err(message) => {
            eprintln!("drivecopy: {message}");
            return Ok(Exit::Usage);
        }
    };
    let Some(drive_id) = args
        .drive_id
        .clone()
        .or_else(|| discover_drive_id(&args.drive))
    else {
        eprintln!("drivecopy: the drive's serial number cannot be read; give --drive-id");
        return Ok(Exit::Usage);
    };
    let cancel = CancellationToken::new();
    let sink = Arc::new(StdoutSink::new(cancel.clone()));
    let (engine, remark) = IoEngine::probe();
    let requests = args
        .concurrency
        .saturating_mul(args.ranges_per_blob)
        .max(16);
    let store = open_store(args.source.as_deref(), true, requests, &cancel, None)?;
    let mut config = ExportConfig::new(&args.drive, drive_id.clone(), list, engine);
    config.io_engine_remark = remark;
    config.capacity_bytes = args.capacity;
    config.job_name = args.job.clone();
    if let Some(path) = &args.diagnostics_path {
        config.diagnostics_path.clone_from(path);
    }
    if let Some(level) = args.log_level {
        config.log_level = level.into();
    }
    let link = match open_link(
        args.job_store.as_deref(),
        args.job.as_deref(),
        Some(drive_id.as_str()),
    )? {
        Ok(link) => link,
        Err(message) => {
            eprintln!("drivecopy: {message}");
            return Ok(Exit::Usage);
        }
    };
    config.memory_bytes = args.memory;
    config.blobs_in_flight = args.concurrency;
    config.ranges_per_blob = args.ranges_per_blob;
    config.direct_io = !args.no_direct_io;
    config.fsync = !args.no_fsync;
    let source = args
        .source
        .clone()
        .unwrap_or_else(|| DEFAULT_LOCAL_STORE_DIR.to_string());
    tracing::debug!(%source, "export source");

    let started = Instant::now();
    let manifest_file = config.manifest_file();
    let outcome = run_with_signals(cancel.clone(), async {
        let copy = |job: Option<JobSettings>, events| async {
            let mut config = config;
            if let Some(job) = job {
                let flags = (args.diagnostics_path.is_some(), args.log_level.is_some());
                job.apply_logs(&mut config.diagnostics_path, &mut config.log_level, flags);
            }
            Ok(export_drive(&config, store, events, cancel.clone()).await?)
        };
        let outcome_of = |report: &ExportReport| {
            (!report.cancelled).then(|| {
                let mut outcome = CopyOutcome::new(report.status().clone());
                outcome.bytes_succeeded = report.bytes_succeeded;
                outcome.error_log_uri = report.error_log_uri.clone();
                outcome.verbose_log_uri = report.verbose_log_uri.clone();
                outcome.incomplete_blob_list_uri = report.incomplete_blob_list_uri.clone();
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
                "export",
                why,
                drive_id,
                manifest_file,
                started,
                sink,
            ));
        }
    };
    let (exit, result) = CopySummary {
        command: "export",
        log: &report.drive_log,
        cancelled: report.cancelled,
        manifest_file: &report.manifest_file,
        manifest_md5: report.manifest_md5,
        bytes_total: report.bytes_total,
        bytes_succeeded: report.bytes_succeeded,
        bytes_sent: report.bytes_succeeded,
        bytes_reused: 0,
        retries: report.retries,
        error_log_uri: report.error_log_uri.clone(),
        verbose_log_uri: report.verbose_log_uri.clone(),
        incomplete_blob_list_uri: report.incomplete_blob_list_uri.clone(),
    }
    .result(started.elapsed().as_secs_f64());
    sink.emit(Event::Result(Box::new(result)));
    Ok(exit)
}
