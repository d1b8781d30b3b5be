//! The only writer of stdout for the copy commands: one JSON object per line, flushed per line
//! (schema: `drivecopy::events`), and a progress bar on stderr when stderr is a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use std::time::Instant;

use drivecopy::events::{Event, EventSink, ResultEvent};
use drivecopy::job::DriveStatus;

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
