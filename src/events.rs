//! The machine-readable event stream an orchestrator reads on stdout, one JSON object per line.
//!
//! This module owns the schema; it writes nothing. The engine sends [`Event`]s to the
//! [`EventSink`] it is given; the command line serializes them to stdout, one per line, flushed
//! per line, and always ends the stream with exactly one `result` event.
//!
//! # Format
//!
//! Every line is a JSON object whose `type` field names the event. Field names are camelCase;
//! sizes are bytes, durations seconds (floating point), rates bytes per second. Numbers are JSON
//! numbers, never strings. Fields may be added in later versions (`schemaVersion` changes only
//! when a field changes meaning or disappears); readers should ignore fields they do not know.
//!
//! ## `start`
//! The first line of a run.
//! `schemaVersion` (1), `command` (`import`, `prepare`, ...), `driveId`, `job`, `ioEngine`
//! (`uring` or `std`), `bytesTotal` and `blobsTotal` (what the manifest lists), `destination`
//! (the store URL, never with a credential), `bufferCount` and `bufferBytes` (the block buffer
//! pool: memory for block data is their product).
//!
//! ## `progress`
//! At most about once a second while copying.
//! `bytesDone`, `bytesTotal`, `percentComplete` (0–100, integer), `blobsDone`, `blobsTotal`,
//! `bytesPerSecond` (average since start), `elapsedSeconds`, `retries` (store requests retried so
//! far).
//!
//! ## `warning`
//! Something unexpected that did not stop the run.
//! `code` (a stable identifier, e.g. `IoEngineFallback`, `SymlinkSkipped`, `LogWriteFailed`),
//! `message` (human text), and `path` (the blob or file concerned, when there is one).
//!
//! ## `result`
//! The last line, always written, also after a drive-level failure or a cancellation.
//! `command`; `outcome` (`Completed`, `CompletedMoreInfo`, `DriveFailed`, `Cancelled` by a
//! signal, `Refused` or `JobCancelled` when the job given with `--job-store` does not allow the
//! copy, `Internal`); `exitCode` (the process exit code, see the README); `driveStatus`, an object with
//! exactly the ARM `DriveStatus` field names (`driveId`, `manifestFile`, `manifestHash`, `state`,
//! `copyStatus`, `percentComplete`, `bytesSucceeded`, `errorLogUri`, `verboseLogUri`,
//! `manifestUri`; `bitLockerKey` is never written); `blobsTotal`, `blobsFailed`, `bytesTotal`,
//! `elapsedSeconds`, `bytesPerSecond`; `error` (text, only for `Internal`); and, for `export`,
//! `incompleteBlobListUri` when some blobs did not fit on the drive.
//!
//! ## Example
//! ```text
//! {"type":"start","schemaVersion":1,"command":"import","driveId":"WD-WMATV123456","job":"myjob","ioEngine":"uring","bytesTotal":1048576,"blobsTotal":2,"destination":"file:///srv/store","bufferCount":32,"bufferBytes":4194304}
//! {"type":"progress","bytesDone":524288,"bytesTotal":1048576,"percentComplete":50,"blobsDone":1,"blobsTotal":2,"bytesPerSecond":524288.0,"elapsedSeconds":1.0,"retries":0}
//! {"type":"result","command":"import","outcome":"CompletedMoreInfo","exitCode":1,"driveStatus":{"driveId":"WD-WMATV123456","manifestFile":"\\DriveManifest.xml","state":"CompletedMoreInfo","copyStatus":"CompletedWithErrors","percentComplete":100,"bytesSucceeded":983040,"errorLogUri":"file:///srv/store/waimportexport/waies/myjob_WD-WMATV123456_20261121-101500-123_error.xml"},"blobsTotal":2,"blobsFailed":1,"bytesTotal":1048576,"elapsedSeconds":1.6,"bytesPerSecond":655360.0}
//! ```

use serde::Serialize;

use crate::job::DriveStatus;

/// The version of this schema, written in every `start` event.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of the stream. See the module docs for every field.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first event of a run.
    Start(StartEvent),
    /// Periodic progress, at most about once a second.
    Progress(ProgressEvent),
    /// Something unexpected that did not stop the run.
    Warning(WarningEvent),
    /// The last event of a run.
    Result(Box<ResultEvent>),
}

/// The `start` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartEvent {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The subcommand (`import`, `prepare`).
    pub command: String,
    /// The drive id from the manifest or the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drive_id: Option<String>,
    /// The job name, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `uring` or `std`.
    pub io_engine: String,
    /// Bytes the run will copy.
    pub bytes_total: u64,
    /// Blobs (import) or files (prepare) the run will copy.
    pub blobs_total: u64,
    /// Where data goes, without any credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Number of block buffers in the pool.
    pub buffer_count: usize,
    /// Size of each block buffer, bytes.
    pub buffer_bytes: usize,
}

/// The `progress` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressEvent {
    /// Bytes processed so far (read, checked and sent or failed).
    pub bytes_done: u64,
    /// Bytes the run will process.
    pub bytes_total: u64,
    /// `bytes_done` as a whole percentage of `bytes_total` (100 when there is nothing to copy).
    pub percent_complete: u8,
    /// Blobs finished so far.
    pub blobs_done: u64,
    /// Blobs in the run.
    pub blobs_total: u64,
    /// Average rate since the start, bytes per second.
    pub bytes_per_second: f64,
    /// Seconds since the start.
    pub elapsed_seconds: f64,
    /// Store requests retried so far.
    pub retries: u64,
}

/// The `warning` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningEvent {
    /// A stable identifier of the kind of warning.
    pub code: String,
    /// Human-readable text.
    pub message: String,
    /// The blob or file concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The `result` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultEvent {
    /// The subcommand.
    pub command: String,
    /// `Completed`, `CompletedMoreInfo`, `DriveFailed`, `Cancelled`, `Refused`, `JobCancelled`
    /// or `Internal`.
    pub outcome: String,
    /// The process exit code that follows.
    pub exit_code: u8,
    /// The drive's ARM `DriveStatus`.
    pub drive_status: DriveStatus,
    /// Blobs in the run.
    pub blobs_total: u64,
    /// Blobs that did not complete.
    pub blobs_failed: u64,
    /// Bytes the run was to copy.
    pub bytes_total: u64,
    /// Block and page bytes this run moved: sent to the store on import (each piece once,
    /// however often it was retried), written to the drive on export.
    pub bytes_sent: u64,
    /// Bytes an earlier, interrupted run had already put in the store and this run reused
    /// (staged blocks, written page ranges) instead of sending them again.
    pub bytes_reused: u64,
    /// Store requests retried during the run.
    pub retries: u64,
    /// Seconds from start to result.
    pub elapsed_seconds: f64,
    /// Average rate, bytes per second.
    pub bytes_per_second: f64,
    /// What went wrong, for the `Refused`, `JobCancelled` and `Internal` outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Export only: the blob listing the blobs that did not fit on the drive (ARM
    /// `incompleteBlobListUri`); absent when every blob fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_blob_list_uri: Option<String>,
}

/// Where the engine sends events. Implementations must be cheap and must not block for long:
/// the engine calls them from its tasks.
pub trait EventSink: Send + Sync {
    /// Deliver one event.
    fn emit(&self, event: Event);
}

/// A sink that drops every event (library use and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

/// A sink that keeps every event in memory (tests).
#[derive(Debug, Default)]
pub struct CollectEvents(pub std::sync::Mutex<Vec<Event>>);

impl EventSink for CollectEvents {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

/// Build a warning event.
pub fn warning(code: &str, message: impl Into<String>, path: Option<String>) -> Event {
    Event::Warning(WarningEvent {
        code: code.to_string(),
        message: message.into(),
        path,
    })
}
