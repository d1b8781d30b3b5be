//! `drivecopy plan-export`: how many drives a blob list needs (WAImportExport's PreviewExport,
//! azure-import-export.md §5.2), computed by the export's own planning functions.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use drivecopy::bloblist::BlobList;
use drivecopy::engine::export::BlobListSource;
use drivecopy::engine::plan::{plan_drives, resolve};

use super::args::parse_size;
use super::exit::Exit;
use super::export::BlobListArgs;
use super::import::open_store;

/// Arguments of `drivecopy plan-export`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where blobs come from: a directory or `file:///abs/path` for the embedded local store.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The blob list.
    #[command(flatten)]
    pub list: BlobListArgs,
    /// Size of each drive, decimal units as PreviewExport (`500GB` = 500 × 10^9 bytes, `1.5TB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub drive_size: u64,
    /// Print the plan as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The plan as printed with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanOutput {
    unique_entries: u64,
    duplicate_entries: u64,
    nonexistent_entries: Vec<String>,
    drive_size_bytes: u64,
    usable_bytes_per_drive: u64,
    blobs_exportable: u64,
    blobs_not_exportable: Vec<String>,
    drives_needed: u64,
    drives: Vec<DriveOutput>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DriveOutput {
    blobs: u64,
    blob_bytes: u64,
    occupied_bytes: u64,
    first_blob: Option<String>,
    last_blob: Option<String>,
}

/// Run `drivecopy plan-export`.
pub fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let source = match args.list.source() {
        Ok(s) => s,
        Err(message) => {
            eprintln!("drivecopy: {message}");
            return Ok(Exit::Usage);
        }
    };
    let store = open_store(
        args.source.as_deref(),
        false,
        16,
        &CancellationToken::new(),
        None,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let resolved = runtime.block_on(async {
        let bytes = match &source {
            BlobListSource::Document(b) => b.clone(),
            BlobListSource::Blob(p) => store
                .read_range(p, None)
                .await
                .with_context(|| format!("read the blob list blob {p}"))?
                .to_vec(),
        };
        let list = match BlobList::parse(&bytes) {
            Ok(l) => l,
            Err(e) => return Ok(Err(anyhow::Error::new(e))),
        };
        let resolved = resolve(store.as_ref(), &list)
            .await
            .context("resolve the blob list against the source")?;
        anyhow::Ok(Ok(resolved))
    })?;
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            eprintln!("drivecopy: BlobListFormatInvalid: {e:#}");
            return Ok(Exit::InvalidDocument);
        }
    };
    let plan = plan_drives(&resolved.blobs, args.drive_size);
    let name = |i: usize| resolved.blobs.get(i).map(|b| b.path.to_string());
    let out = PlanOutput {
        unique_entries: resolved.unique_entries,
        duplicate_entries: resolved.duplicate_entries,
        nonexistent_entries: resolved
            .nonexistent
            .iter()
            .map(ToString::to_string)
            .collect(),
        drive_size_bytes: args.drive_size,
        usable_bytes_per_drive: plan.usable_bytes,
        blobs_exportable: plan.drives.iter().map(|d| d.selected.len() as u64).sum(),
        blobs_not_exportable: plan
            .not_exportable
            .iter()
            .filter_map(|&i| name(i))
            .collect(),
        drives_needed: plan.drives.len() as u64,
        drives: plan
            .drives
            .iter()
            .map(|d| DriveOutput {
                blobs: d.selected.len() as u64,
                blob_bytes: d.blob_bytes,
                occupied_bytes: d.occupied_bytes,
                first_blob: d.selected.first().and_then(|&i| name(i)),
                last_blob: d.selected.last().and_then(|&i| name(i)),
            })
            .collect(),
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string(&out)?)?;
    } else {
        let gb = |b: u64| b as f64 / 1e9;
        writeln!(
            stdout,
            "Number of unique blob paths/prefixes:   {}",
            out.unique_entries
        )?;
        writeln!(
            stdout,
            "Number of duplicate blob paths/prefixes: {}",
            out.duplicate_entries
        )?;
        writeln!(
            stdout,
            "Number of nonexistent blob paths/prefixes: {}",
            out.nonexistent_entries.len()
        )?;
        writeln!(stdout, "Drive size:  {:.2} GB", gb(out.drive_size_bytes))?;
        writeln!(
            stdout,
            "Number of blobs that can be exported: {}",
            out.blobs_exportable
        )?;
        writeln!(
            stdout,
            "Number of blobs that cannot be exported: {}",
            out.blobs_not_exportable.len()
        )?;
        writeln!(stdout, "Number of drives needed: {}", out.drives_needed)?;
        for (n, d) in out.drives.iter().enumerate() {
            writeln!(
                stdout,
                "        Drive #{}:  blobs = {}, occupied space = {:.2} GB",
                n + 1,
                d.blobs,
                gb(d.occupied_bytes)
            )?;
        }
    }
    Ok(Exit::Completed)
}
