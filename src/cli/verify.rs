//! `drivecopy verify`: re-read a drive against its manifest and print the result as a DriveLog.
//!
//! stdout is the DriveLog XML (azure-import-export.md §2): by default its error view (only the
//! blobs with a problem and, in them, only the bad blocks, page ranges and side files — what a
//! repair must fetch again); with `--all` every blob; with `--json` a summary object holding the
//! log as JSON. Exit codes (`cli/exit.rs`): 0 every range matched; 1 some did not
//! (`CompletedMoreInfo`); 3 the drive or its manifest cannot be opened or read; 4 the manifest is
//! not a drive manifest; 10 internal failure.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use drivecopy::copylog::{DriveLog, DriveLogStatus};
use drivecopy::engine::verify::{verify_drive, VerifyConfig, VerifyError};

use super::exit::Exit;

/// Arguments of `drivecopy verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The drive's root directory.
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// The manifest's path relative to the drive root; by default `\DriveManifest.xml`, else the
    /// only `*.manifest` at the root (an export drive's `\<DriveId>.manifest`).
    #[arg(long, value_name = "REL")]
    pub manifest: Option<String>,
    /// Print every blob (the verbose log form), not only the failures.
    #[arg(long)]
    pub all: bool,
    /// Print a JSON summary with the log instead of XML.
    #[arg(long)]
    pub json: bool,
    /// Checking threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    manifest_file: &'a str,
    status: &'a DriveLogStatus,
    ranges_checked: u64,
    ranges_failed: u64,
    bytes_checked: u64,
    log: &'a DriveLog,
}

/// Run `drivecopy verify`.
pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let config = VerifyConfig {
        drive_root: args.drive.clone(),
        manifest_file: args.manifest.clone(),
        threads: args.threads,
    };
    let report = match verify_drive(&config) {
        Ok(r) => r,
        Err(e) => {
            let exit = match e {
                VerifyError::ManifestFormat { .. } => Exit::InvalidDocument,
                VerifyError::Threads { .. } => Exit::Internal,
                _ => Exit::DriveFailed,
            };
            let status = e.drive_status();
            eprintln!("drivecopy: {status}: {:#}", anyhow::Error::new(e));
            return Ok(exit);
        }
    };
    let log = if args.all {
        report.drive_log.clone()
    } else {
        report.drive_log.errors_only()
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let summary = Summary {
            manifest_file: &report.manifest_file,
            status: &report.drive_log.status,
            ranges_checked: report.ranges_checked,
            ranges_failed: report.ranges_failed,
            bytes_checked: report.bytes_checked,
            log: &log,
        };
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else if args.all {
        write!(out, "{}", log.to_verbose_xml())?;
    } else {
        write!(out, "{}", log.to_error_xml())?;
    }
    Ok(if report.is_clean() {
        Exit::Completed
    } else {
        Exit::CompletedMoreInfo
    })
}
