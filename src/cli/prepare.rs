//! `drivecopy prepare`: make an import drive (copy files, hash them, write the manifest) and print
//! the DriveInfo a job needs.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use drivecopy::engine::prepare::{
    discover_drive_id, parse_dataset, prepare, ItemType, PrepareConfig, PrepareSource,
    DEFAULT_PREP_BLOCK_BYTES,
};
use drivecopy::manifest::{Credential, ImportDisposition, Secret};

use super::args::parse_size;
use super::exit::Exit;

/// The environment variable holding the storage account key `prepare` writes into the manifest.
pub const KEY_ENV: &str = "DRIVECOPY_STORAGE_ACCOUNT_KEY";
/// The environment variable holding a container SAS (`container?sv=...`) to write instead.
pub const SAS_ENV: &str = "DRIVECOPY_CONTAINER_SAS";

/// Arguments of `drivecopy prepare`.
///
/// The manifest's credential comes from the environment only: `DRIVECOPY_STORAGE_ACCOUNT_KEY` or
/// `DRIVECOPY_CONTAINER_SAS`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The drive's root directory (where the target drive is mounted).
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// A source file or directory (repeatable; pairs with the `--dst` at the same position).
    #[arg(long, value_name = "PATH", required_unless_present = "dataset")]
    pub src: Vec<PathBuf>,
    /// Where a `--src` goes: `container/`, `container/prefix/`, or `container/blob` for a file.
    #[arg(long, value_name = "CONTAINER/PREFIX/")]
    pub dst: Vec<String>,
    /// A WAImportExport dataset CSV (BasePath, DstItemPathOrPrefix, ItemType, Disposition,
    /// MetadataFile, PropertiesFile) instead of `--src`/`--dst`.
    #[arg(long, value_name = "CSV", conflicts_with_all = ["src", "dst"])]
    pub dataset: Option<PathBuf>,
    /// Leave the files where they are (they must be on the drive) and write only the manifest,
    /// like WAImportExport's `/skipwrite`.
    #[arg(long)]
    pub in_place: bool,
    /// The drive id; by default the serial number of the drive's device, when it can be read.
    #[arg(long, value_name = "ID")]
    pub drive_id: Option<String>,
    /// The manifest's path relative to the drive root.
    #[arg(long, value_name = "REL", default_value = r"\DriveManifest.xml")]
    pub manifest: String,
    /// Block size of block blobs (e.g. `4MiB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_PREP_BLOCK_BYTES)]
    pub block_size: u64,
    /// Blob type for `--src` sources: by extension (`.vhd`/`.vhdx` are page blobs), or forced.
    #[arg(long, value_enum, default_value_t = BlobTypeArg::Auto)]
    pub blob_type: BlobTypeArg,
    /// The import disposition written for `--src` sources.
    #[arg(long, value_enum)]
    pub disposition: Option<DispositionArg>,
    /// A metadata file applied to every `--src` blob.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// A properties file applied to every `--src` blob.
    #[arg(long, value_name = "FILE")]
    pub properties_file: Option<PathBuf>,

    /// Print the DriveInfo as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--blob-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobTypeArg {
    /// `.vhd` and `.vhdx` files become page blobs, the rest block blobs.
    Auto,
    /// Block blobs.
    Block,
    /// Page blobs (file lengths must be multiples of 512).
    Page,
}

/// `--disposition` values (case-sensitive in the manifest, azure-import-export.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DispositionArg {
    /// Import under `name (N).ext` if the blob exists.
    Rename,
    /// Leave an existing blob alone.
    NoOverwrite,
    /// Replace an existing blob.
    Overwrite,
}

/// Run `drivecopy prepare`.
pub fn run(args: PrepareArgs) -> anyhow::Result<Exit> {
    let sources = if let Some(csv) = &args.dataset {
        let text =
            std::fs::read_to_string(csv).with_context(|| format!("read {}", csv.display()))?;
        let base = csv.parent().map(PathBuf::from).unwrap_or_default();
        match parse_dataset(&text, &base) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("drivecopy: {:#}", anyhow::Error::new(e));
                return Ok(Exit::Usage);
            }
        }
    } else {
        if args.src.len() != args.dst.len() {
            eprintln!(
                "drivecopy: give one --dst for each --src ({} --src, {} --dst)",
                args.src.len(),
                args.dst.len()
            );
            return Ok(Exit::Usage);
        }
        let item_type = match args.blob_type {
            BlobTypeArg::Auto => ItemType::Auto,
            BlobTypeArg::Block => ItemType::Block,
            BlobTypeArg::Page => ItemType::Page,
        };
        let disposition = args.disposition.map(|d| match d {
            DispositionArg::Rename => ImportDisposition::Rename,
            DispositionArg::NoOverwrite => ImportDisposition::NoOverwrite,
            DispositionArg::Overwrite => ImportDisposition::Overwrite,
        });
        args.src
            .iter()
            .zip(&args.dst)
            .map(|(src, dst)| PrepareSource {
                base_path: src.clone(),
                destination: dst.clone(),
                item_type,
                disposition,
                metadata_file: args.metadata_file.clone(),
                properties_file: args.properties_file.clone(),
            })
            .collect()
    };
    let Some(drive_id) = args
        .drive_id
        .clone()
        .or_else(|| discover_drive_id(&args.drive))
    else {
        eprintln!(
            "drivecopy: cannot read the serial number of the device holding {}; pass --drive-id",
            args.drive.display()
        );
        return Ok(Exit::Usage);
    };
    // Secrets come from the environment only, never from arguments that `ps` shows.
    let secret = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let credential = match (secret(KEY_ENV), secret(SAS_ENV)) {
        (Some(_), Some(_)) => {
            eprintln!("drivecopy: set only one of {KEY_ENV} and {SAS_ENV}");
            return Ok(Exit::Usage);
        }
        (Some(k), None) => Some(Credential::StorageAccountKey(Secret::new(k))),
        (None, Some(s)) => Some(Credential::ContainerSas(Secret::new(s))),
        (None, None) => None,
    };
    let config = PrepareConfig {
        drive_root: args.drive.clone(),
        sources,
        in_place: args.in_place,
        block_size_bytes: args.block_size,
        manifest_file: args.manifest.clone(),
        drive_id,
        credential,
        threads: None,
    };
    let report = prepare(&config).context("prepare the drive")?;
    for skip in &report.skipped {
        eprintln!("warning: skipped {}: {}", skip.path, skip.reason);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        let info = &report.drive_info;
        writeln!(out, "driveId      {}", info.drive_id)?;
        writeln!(out, "manifestFile {}", info.manifest_file)?;
        writeln!(out, "manifestHash {}", info.manifest_hash)?;
        writeln!(
            out,
            "{} blobs, {} bytes, {} skipped",
            report.blobs,
            report.bytes,
            report.skipped.len()
        )?;
    }
    Ok(Exit::Completed)
}
