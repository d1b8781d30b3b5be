//! `drivecopy manifest validate|show` and `drivecopy log show`: read a document, report on it.
//!
//! Exit codes: 0 when the document is valid (or was shown), 4 (`InvalidDocument`) when it cannot be
//! read or parsed or has problems.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use drivecopy::copylog::DriveLog;
use drivecopy::manifest::{DriveManifest, Limits, Problem, DEFAULT_MAX_BLOCK_BYTES};

use super::exit::Exit;

/// `drivecopy manifest ...`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Check a drive manifest against every rule of the format; list each problem with its
    /// location. Exit 0 when valid, 4 otherwise.
    Validate(ValidateArgs),
    /// Print a drive manifest as JSON (credentials redacted). Exit 4 if it cannot be parsed.
    Show(ShowArgs),
}

/// Arguments of `manifest validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The manifest file.
    pub file: PathBuf,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Largest block allowed, bytes (4 MiB by default; service versions from 2019-12-12 accept
    /// up to 4000 MiB).
    #[arg(long, default_value_t = DEFAULT_MAX_BLOCK_BYTES, value_name = "BYTES")]
    pub max_block_bytes: u64,
}

/// Arguments of `manifest show` and `log show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The document.
    pub file: PathBuf,
}

/// `drivecopy log ...`
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Summarise a drive log (error or verbose): drive status and every blob that did not
    /// complete, with its failed blocks and ranges. Exit 4 if it cannot be parsed.
    Show(LogShowArgs),
}

/// Arguments of `log show`.
#[derive(Debug, Args)]
pub struct LogShowArgs {
    /// The drive log file.
    pub file: PathBuf,
    /// Print the whole log as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Read a document; a file that cannot be read is reported on stderr as an invalid document.
fn read(path: &Path) -> Result<Vec<u8>, Exit> {
    std::fs::read(path).map_err(|e| {
        eprintln!("{}: cannot be read: {e}", path.display());
        Exit::InvalidDocument
    })
}

/// An error and its causes, joined: `invalid blob path: invalid container name "X": ...`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// One problem, as `manifest validate --json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemJson {
    message: String,
    element: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_offset: Option<u64>,
}

impl From<&Problem> for ProblemJson {
    fn from(p: &Problem) -> Self {
        let l = &p.location;
        ProblemJson {
            message: chain(&p.kind),
            element: l.element,
            blob_path: l.blob_path.clone(),
            list_index: l.list_index,
            blob_index: l.blob_index,
            item_index: l.item_index,
            offset_bytes: l.offset_bytes,
            document_offset: l.source_offset,
        }
    }
}

/// Run `manifest validate` or `manifest show`.
pub fn manifest(cmd: ManifestCommand) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ManifestCommand::Validate(args) => {
            let bytes = match read(&args.file) {
                Ok(b) => b,
                Err(exit) => return Ok(exit),
            };
            let (problems, parse_error) = match DriveManifest::parse(&bytes) {
                Ok(m) => (
                    m.validate(&Limits::default().with_max_block_bytes(args.max_block_bytes)),
                    None,
                ),
                Err(e) => (Vec::new(), Some(e)),
            };
            let valid = parse_error.is_none() && problems.is_empty();
            if args.json {
                let value = serde_json::json!({
                    "file": args.file.display().to_string(),
                    "valid": valid,
                    "parseError": parse_error.as_ref().map(|e| format!("{:#}", anyhow::Error::new(e.clone()))),
                    "problems": problems.iter().map(ProblemJson::from).collect::<Vec<_>>(),
                });
                writeln!(out, "{value}")?;
            } else if let Some(e) = &parse_error {
                writeln!(
                    out,
                    "{}: cannot be parsed: {:#}",
                    args.file.display(),
                    anyhow::Error::new(e.clone())
                )?;
            } else if valid {
                writeln!(out, "{}: valid", args.file.display())?;
            } else {
                writeln!(
                    out,
                    "{}: {} problem(s)",
                    args.file.display(),
                    problems.len()
                )?;
                for p in &problems {
                    writeln!(out, "  {}: {}", p.location, chain(&p.kind))?;
                }
            }
            Ok(if valid {
                Exit::Completed
            } else {
                Exit::InvalidDocument
            })
        }
        ManifestCommand::Show(args) => {
            let bytes = match read(&args.file) {
                Ok(b) => b,
                Err(exit) => return Ok(exit),
            };
            match DriveManifest::parse(&bytes) {
                Ok(m) => {
                    serde_json::to_writer_pretty(&mut out, &m)?;
                    writeln!(out)?;
                    Ok(Exit::Completed)
                }
                Err(e) => {
                    eprintln!(
                        "{}: cannot be parsed: {:#}",
                        args.file.display(),
                        anyhow::Error::new(e)
                    );
                    Ok(Exit::InvalidDocument)
                }
            }
        }
    }
}

/// Run `log show`.
pub fn log(cmd: LogCommand) -> anyhow::Result<Exit> {
    let LogCommand::Show(args) = cmd;
    let bytes = match read(&args.file) {
        Ok(b) => b,
        Err(exit) => return Ok(exit),
    };
    let log = match DriveLog::parse(&bytes) {
        Ok(log) => log,
        Err(e) => {
            eprintln!(
                "{}: cannot be parsed: {:#}",
                args.file.display(),
                anyhow::Error::new(e)
            );
            return Ok(Exit::InvalidDocument);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &log)?;
        writeln!(out)?;
        return Ok(Exit::Completed);
    }
    let failed = log.blobs.iter().filter(|b| b.has_errors()).count();
    writeln!(
        out,
        "drive {}: {} ({} blobs, {} with errors)",
        log.drive_id,
        log.status,
        log.blobs.len(),
        failed
    )?;
    for blob in log.blobs.iter().filter(|b| b.has_errors()) {
        writeln!(
            out,
            "  {} <- {}: {}",
            blob.blob_path, blob.file_path, blob.status
        )?;
        let errors = blob.errors_only();
        if let Some(list) = &errors.list {
            match list {
                drivecopy::copylog::RangeList::BlockList(blocks) => {
                    for b in blocks {
                        writeln!(
                            out,
                            "    block at {} ({} bytes): {}",
                            b.offset_bytes, b.length_bytes, b.status
                        )?;
                    }
                }
                drivecopy::copylog::RangeList::PageRangeList(ranges) => {
                    for r in ranges {
                        writeln!(
                            out,
                            "    page range at {} ({} bytes): {}",
                            r.offset_bytes, r.length_bytes, r.status
                        )?;
                    }
                }
            }
        }
        if let Some(m) = &errors.metadata {
            writeln!(out, "    metadata: {}", m.status)?;
        }
        if let Some(p) = &errors.properties {
            writeln!(out, "    properties: {}", p.status)?;
        }
    }
    Ok(Exit::Completed)
}
