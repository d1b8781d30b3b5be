//! The only writer of stdout for the copy commands: one JSON object per line, flushed per line
//! (schema: `drivecopy::events`), and a progress bar on stderr when stderr is a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use std::time::Instant;

use drivecopy::copylog::DriveLog;
use drivecopy::digest::Md5Digest;
use drivecopy::engine::import::percent;
use drivecopy::events::{Event, EventSink, ResultEvent};
use drivecopy::job::{DriveState, DriveStatus};

use super::exit::Exit;

/// Writes events to stdout as JSON lines; mirrors progress and warnings on stderr.
pub struct StdoutSink {
    out: Mutex<std::io::Stdout>,
    bar: Option<ProgressBar>,
    /// Cancelled when stdout is gone (`BrokenPipe`): nobody reads the result any more.
    on_broken_pipe: CancellationToken,
}

impl StdoutSink {
    /// A sink that cancels `on_broken_pipe` if stdout's reader goes away.
    pub fn new(on_broken_pipe: CancellationToken) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        StdoutSink {
            out: Mutex::new(std::io::stdout()),
            bar,
            on_broken_pipe,
        }
    }

    fn write_line(&self, event: &Event) {
        let Ok(line) = serde_json::to_string(event) else {
            return;
        };
        let Ok(mut out) = self.out.lock() else { return };
        let written = writeln!(out, "{line}").and_then(|()| out.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.on_broken_pipe.cancel();
            }
        }
    }
}

impl EventSink for StdoutSink {
    fn emit(&self, event: Event) {
        if let Some(bar) = &self.bar {
            match &event {
                Event::Start(s) => bar.set_length(s.bytes_total),
                Event::Progress(p) => {
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_done);
                    bar.set_message(format!("{}/{} blobs", p.blobs_done, p.blobs_total));
                }
                Event::Warning(w) => {
                    bar.suspend(|| eprintln!("warning: {}: {}", w.code, w.message))
                }
                Event::Result(_) => bar.finish_and_clear(),
            }
        }
        self.write_line(&event);
    }
}

/// A `result` event for a `command` run that copied nothing (refused, or the station failed).
pub fn bare_result(
    command: &str,
    outcome: &str,
    exit: Exit,
    drive_status: DriveStatus,
    started: Instant,
    error: String,
) -> Event {
    Event::Result(Box::new(ResultEvent {
        command: command.to_string(),
        outcome: outcome.to_string(),
        exit_code: exit.code(),
        drive_status,
        blobs_total: 0,
        blobs_failed: 0,
        bytes_total: 0,
        bytes_sent: 0,
        bytes_reused: 0,
        retries: 0,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        bytes_per_second: 0.0,
        error: Some(error),
        incomplete_blob_list_uri: None,
    }))
}

/// What the `result` of a finished copy (import or export) is derived from.
pub struct CopySummary<'a> {
    /// `import` or `export`.
    pub command: &'a str,
    /// The drive log.
    pub log: &'a DriveLog,
    /// The run was cancelled before every blob was done.
    pub cancelled: bool,
    /// The manifest's path on the drive.
    pub manifest_file: &'a str,
    /// The manifest's MD5, when known.
    pub manifest_md5: Option<Md5Digest>,
    /// Bytes the run was to copy.
    pub bytes_total: u64,
    /// Bytes of blobs complete at the end.
    pub bytes_succeeded: u64,
    /// Bytes moved by this run.
    pub bytes_sent: u64,
    /// Bytes an earlier run had already moved.
    pub bytes_reused: u64,
    /// Store requests retried.
    pub retries: u64,
    /// The log URIs and, for an export, the incomplete blob list's.
    pub error_log_uri: Option<String>,
    /// See `error_log_uri`.
    pub verbose_log_uri: Option<String>,
    /// See `error_log_uri`.
    pub incomplete_blob_list_uri: Option<String>,
}

impl CopySummary<'_> {
    /// The exit code and `result` event: the drive state follows the copy status
    /// (azure-import-export.md §6.2); a cancelled drive stays `Transferring` with the percentage
    /// it reached, a finished one reports 100 as the service does.
    pub fn result(self, elapsed_seconds: f64) -> (Exit, ResultEvent) {
        let status = self.log.status.clone();
        let (exit, state) = if self.cancelled {
            (Exit::Cancelled, DriveState::Transferring)
        } else {
            let state = status.drive_state();
            let exit = if self.log.status.is_drive_failure() {
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
        let mut drive_status = DriveStatus::new(self.log.drive_id.clone(), state);
        drive_status.manifest_file = Some(self.manifest_file.to_string());
        drive_status.manifest_hash = self.manifest_md5.map(|d| d.to_hex());
        drive_status.copy_status = Some(status);
        drive_status.percent_complete = if self.cancelled {
            percent(self.bytes_succeeded, self.bytes_total)
        } else {
            100
        };
        drive_status.error_log_uri = self.error_log_uri;
        drive_status.verbose_log_uri = self.verbose_log_uri;
        drive_status.bytes_succeeded = self.bytes_succeeded;
        let result = ResultEvent {
            command: self.command.to_string(),
            outcome: outcome.to_string(),
            exit_code: exit.code(),
            drive_status,
            blobs_total: self.log.blobs.len() as u64,
            blobs_failed: self.log.blobs_failed(),
            bytes_total: self.bytes_total,
            bytes_sent: self.bytes_sent,
            bytes_reused: self.bytes_reused,
            retries: self.retries,
            elapsed_seconds,
            bytes_per_second: if elapsed_seconds > 0.0 {
                self.bytes_total as f64 / elapsed_seconds
            } else {
                0.0
            },
            error: None,
            incomplete_blob_list_uri: self.incomplete_blob_list_uri,
        };
        (exit, result)
    }
}
