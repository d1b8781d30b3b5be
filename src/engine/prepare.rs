//! `prepare`: the customer side of an import (the WAImportExport `PrepImport` analog).
//!
//! Copies source files onto a drive (or, in place, leaves them where they are on the drive), hashes
//! every block and page range, and writes the drive manifest with the DriveInfo a job needs
//! (`driveId`, `manifestFile`, `manifestHash`).
//!
//! What the manifest holds (azure-import-export.md §1.5, the tool's own output):
//! - block blobs in blocks of `block_size_bytes` (4 MiB by default) with a short tail, each block's
//!   `Id` = `MD5/` + Base64(MD5 of the block) and `Hash` = uppercase Base16 of the same MD5;
//! - page blobs (`.vhd` and `.vhdx` files, or item type `page`) as `PageRangeList`s that leave out
//!   every all-zero 512-byte page; a range never crosses a 4 MiB boundary, so none exceeds 4 MiB;
//! - one `BlobList` per source, with its metadata and properties files (copied onto the drive
//!   under `drivecopy-prep/`) and their MD5s.
//!
//! Files are copied as `\<container>\<blob name>`, so the drive mirrors the blob paths; with
//! `in_place`, every source must already be under the drive root and its `FilePath` is its path
//! there. Symbolic links are never followed: they are skipped and reported.
//!
//! Work is parallel across files on a rayon pool; each worker holds one block buffer, so memory
//! is `threads × block size`.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Md5Digest;
use crate::engine::hash::nonzero_page_ranges;
use crate::manifest::{
    Blob, BlobList, Block, Credential, Drive, DriveManifest, HashedPath, ImportDisposition,
    PageRange, SourceOffset,
};
use crate::names::{BlobPath, DrivePath};

/// The default block size of a prepared manifest, bytes (the tool's 4 MiB).
pub const DEFAULT_PREP_BLOCK_BYTES: u64 = 4 * 1024 * 1024;
/// The most bytes one page range covers (the Put Page limit).
pub const MAX_PAGE_RANGE_BYTES: u64 = 4 * 1024 * 1024;
/// The directory on the drive that holds copied metadata and properties files.
pub const PREP_DIR: &str = "drivecopy-prep";

/// Block blob or page blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    /// Decide by extension: `.vhd` and `.vhdx` are page blobs, the rest block blobs.
    Auto,
    /// A block blob.
    Block,
    /// A page blob (the file length must be a multiple of 512).
    Page,
}

/// One source: a file or a directory (recursive) and where it goes.
#[derive(Debug, Clone)]
pub struct PrepareSource {
    /// The file or directory to import.
    pub base_path: PathBuf,
    /// `container/` or `container/prefix/` for a directory (and for a file, which then keeps its
    /// name), or `container/blob` for a single file.
    pub destination: String,
    /// Block or page blobs.
    pub item_type: ItemType,
    /// The import disposition written for every blob of this source.
    pub disposition: Option<ImportDisposition>,
    /// A metadata file (`<Metadata>`) applied to every blob of this source.
    pub metadata_file: Option<PathBuf>,
    /// A properties file (`<Properties>`) applied to every blob of this source.
    pub properties_file: Option<PathBuf>,
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct PrepareConfig {
    /// The drive's root directory.
    pub drive_root: PathBuf,
    /// The sources, one `BlobList` each.
    pub sources: Vec<PrepareSource>,
    /// Leave files where they are (they must be under the drive root); write only the manifest.
    pub in_place: bool,
    /// Block size of block blobs, bytes.
    pub block_size_bytes: u64,
    /// The manifest's path relative to the drive root.
    pub manifest_file: String,
    /// The drive's id (hardware serial).
    pub drive_id: String,
    /// The credential the manifest carries for the service, if any.
    pub credential: Option<Credential>,
    /// Worker threads; `None` for one per core.
    pub threads: Option<usize>,
}

/// A source file that was not put on the drive, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedFile {
    /// The source path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a job needs to know about a prepared drive (the DriveInfo of azure-import-export.md §5.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveInfo {
    /// The drive's id.
    pub drive_id: String,
    /// The manifest's path relative to the drive root (`\DriveManifest.xml`).
    pub manifest_file: String,
    /// Base16 MD5 of the manifest file.
    pub manifest_hash: String,
}

/// The outcome of `prepare`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareReport {
    /// What the job needs (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub drive_info: DriveInfo,
    /// Blobs in the manifest.
    pub blobs: u64,
    /// Bytes of the files in the manifest.
    pub bytes: u64,
    /// Source files left out (symbolic links, unreadable files, bad names).
    pub skipped: Vec<SkippedFile>,
}

/// A failure that stops `prepare`.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A destination is not `container/`, `container/prefix/` or `container/blob`.
    #[error("invalid destination {destination:?}")]
    Destination {
        /// The destination given.
        destination: String,
        /// Why.
        #[source]
        source: crate::names::NameError,
    },
    /// An in-place source is not under the drive root.
    #[error("{path} is not under the drive root {root}; in-place preparation needs the data on the drive")]
    NotOnDrive {
        /// The source.
        path: PathBuf,
        /// The drive root.
        root: PathBuf,
    },
    /// The manifest path is not a plain drive-relative path.
    #[error("invalid manifest path {path:?}")]
    ManifestPath {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: crate::names::PathError,
    },
    /// Two files map to the same blob.
    #[error("{first} and {second} both become blob {blob}")]
    DuplicateBlob {
        /// The blob path.
        blob: String,
        /// One source file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A file system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The worker threads could not start.
    #[error("start the worker pool")]
    Pool(#[from] rayon::ThreadPoolBuildError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PrepareError + 'a {
    move |source| PrepareError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One file to put on the drive.
#[derive(Debug, Clone)]
struct Item {
    source: PathBuf,
    blob: BlobPath,
    file_path: DrivePath,
    page: bool,
}

/// Prepare the drive: copy (unless in place), hash, write the manifest.
///
/// # Errors
/// [`PrepareError`] for bad destinations, an in-place source off the drive, two files mapping to
/// one blob, or a failure to write the drive. Unreadable source files and symbolic links are
/// skipped and listed in the report instead.
pub fn prepare(config: &PrepareConfig) -> Result<PrepareReport, PrepareError> {
    let root =
        fs::canonicalize(&config.drive_root).map_err(io_err("open drive", &config.drive_root))?;
    let manifest_rel =
        DrivePath::parse(&config.manifest_file).map_err(|source| PrepareError::ManifestPath {
            path: config.manifest_file.clone(),
            source,
        })?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .thread_name(|i| format!("drivecopy-prep-{i}"))
        .build()?;

    let mut skipped = Vec::new();
    let mut lists = Vec::new();
    let mut seen: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for (n, source) in config.sources.iter().enumerate() {
        let items = enumerate(source, &root, config.in_place, &mut skipped)?;
        for item in &items {
            if let Some(first) = seen.insert(item.blob.to_string(), item.source.clone()) {
                return Err(PrepareError::DuplicateBlob {
                    blob: item.blob.to_string(),
                    first,
                    second: item.source.clone(),
                });
            }
        }
        let outcomes: Vec<Result<Blob, SkippedFile>> = pool.install(|| {
            items
                .par_iter()
                .map(|item| prepare_item(item, source, &root, config))
                .collect()
        });
        let mut blobs = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(blob) => blobs.push(blob),
                Err(skip) => skipped.push(skip),
            }
        }
        let metadata_path =
            copy_side_file(&source.metadata_file, &root, n, "metadata", config.in_place)?;
        let properties_path = copy_side_file(
            &source.properties_file,
            &root,
            n,
            "properties",
            config.in_place,
        )?;
        lists.push(BlobList {
            id: Some(format!("session#1-{n}")),
            metadata_path,
            properties_path,
            blobs,
            source_offset: SourceOffset::default(),
        });
    }

    let manifest = DriveManifest {
        version: Some("2014-11-01".to_string()),
        drive: Drive {
            drive_id: config.drive_id.clone(),
            credential: config.credential.clone(),
            client_creator: Some(format!("drivecopy {}", env!("CARGO_PKG_VERSION"))),
            blob_lists: lists,
            source_offset: SourceOffset::default(),
        },
    };
    let xml = manifest.to_xml();
    let manifest_path = manifest_rel.under(&root);
    write_atomically(&manifest_path, xml.as_bytes())?;
    let (blobs, bytes) = manifest
        .blobs()
        .fold((0u64, 0u64), |(n, b), (_, blob)| (n + 1, b + blob.length));
    Ok(PrepareReport {
        drive_info: DriveInfo {
            drive_id: config.drive_id.clone(),
            manifest_file: manifest_rel.to_manifest_string(),
            manifest_hash: Md5Digest::of(xml.as_bytes()).to_hex(),
        },
        blobs,
        bytes,
        skipped,
    })
}

/// List the files of one source in a deterministic order, with their blob and drive paths.
fn enumerate(
    source: &PrepareSource,
    root: &Path,
    in_place: bool,
    skipped: &mut Vec<SkippedFile>,
) -> Result<Vec<Item>, PrepareError> {
    let dest = source.destination.trim_start_matches('/');
    // A bad container fails the whole source, never each file of a directory one by one.
    let container = dest.split('/').next().unwrap_or_default();
    crate::names::validate_container_name(container).map_err(|e| PrepareError::Destination {
        destination: source.destination.clone(),
        source: e,
    })?;
    let base = &source.base_path;
    let meta = fs::symlink_metadata(base).map_err(io_err("read", base))?;
    let mut files = Vec::new();
    if meta.file_type().is_symlink() {
        skipped.push(SkippedFile {
            path: base.display().to_string(),
            reason: "symbolic link".into(),
        });
        return Ok(Vec::new());
    }
    let is_dir = meta.is_dir();
    if is_dir {
        walk(base, base, &mut files, skipped)?;
    } else {
        let name = base.file_name().map(PathBuf::from).unwrap_or_default();
        files.push((base.clone(), name));
    }
    let mut items = Vec::with_capacity(files.len());
    for (path, rel) in files {
        let rel_text: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let blob_text = if dest.ends_with('/') || is_dir {
            let prefix = if dest.ends_with('/') {
                dest.to_string()
            } else {
                format!("{dest}/")
            };
            format!("{prefix}{}", rel_text.join("/"))
        } else {
            dest.to_string()
        };
        let blob = match BlobPath::parse(&blob_text) {
            Ok(b) => b,
            // A file inside a directory with a name Azure cannot take: skip it, keep the rest.
            Err(e) if is_dir => {
                skipped.push(SkippedFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
                continue;
            }
            Err(source) => {
                return Err(PrepareError::Destination {
                    destination: blob_text,
                    source,
                })
            }
        };
        let file_path = if in_place {
            let canonical = fs::canonicalize(&path).map_err(io_err("read", &path))?;
            let Ok(under) = canonical.strip_prefix(root) else {
                return Err(PrepareError::NotOnDrive {
                    path,
                    root: root.to_path_buf(),
                });
            };
            DrivePath::from_segments(under.iter().map(|s| s.to_string_lossy().into_owned()))
        } else {
            DrivePath::from_segments(
                std::iter::once(blob.container.clone())
                    .chain(blob.name.split('/').map(str::to_string)),
            )
        };
        let Some(file_path) = file_path else {
            skipped.push(SkippedFile {
                path: path.display().to_string(),
                reason: format!("{blob} cannot be a file name on the drive"),
            });
            continue;
        };
        let page = match source.item_type {
            ItemType::Page => true,
            ItemType::Block => false,
            ItemType::Auto => path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("vhd") || e.eq_ignore_ascii_case("vhdx")),
        };
        items.push(Item {
            source: path,
            blob,
            file_path,
            page,
        });
    }
    Ok(items)
}

/// Collect regular files under `dir`, sorted by name, with their paths relative to `base`;
/// symbolic links and special files are skipped and reported.
fn walk(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, PathBuf)>,
    skipped: &mut Vec<SkippedFile>,
) -> Result<(), PrepareError> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err("list", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("read", &path))?;
        if kind.is_symlink() {
            skipped.push(SkippedFile {
                path: path.display().to_string(),
                reason: "symbolic link".into(),
            });
        } else if kind.is_dir() {
            walk(base, &path, out, skipped)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(base)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            out.push((path, rel));
        } else {
            skipped.push(SkippedFile {
                path: path.display().to_string(),
                reason: "not a regular file".into(),
            });
        }
    }
    Ok(())
}

/// Hash (and unless in place, copy) one file; a file that cannot be read is skipped.
fn prepare_item(
    item: &Item,
    source: &PrepareSource,
    root: &Path,
    config: &PrepareConfig,
) -> Result<Blob, SkippedFile> {
    let skip = |reason: String| SkippedFile {
        path: item.source.display().to_string(),
        reason,
    };
    let mut input = File::open(&item.source).map_err(|e| skip(format!("open: {e}")))?;
    let length = input
        .metadata()
        .map_err(|e| skip(format!("stat: {e}")))?
        .len();
    if item.page && length % 512 != 0 {
        return Err(skip(format!(
            "page blob length {length} is not a multiple of 512"
        )));
    }
    let mut output = if config.in_place {
        None
    } else {
        let dest = item.file_path.under(root);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| skip(format!("create {}: {e}", parent.display())))?;
        }
        Some(File::create(&dest).map_err(|e| skip(format!("create {}: {e}", dest.display())))?)
    };
    let chunk = if item.page {
        MAX_PAGE_RANGE_BYTES
    } else {
        config.block_size_bytes.max(1)
    };
    let mut buf = vec![0u8; usize::try_from(chunk).unwrap_or(usize::MAX)];
    let mut blocks = Vec::new();
    let mut ranges = Vec::new();
    let mut offset = 0u64;
    while offset < length {
        let want = usize::try_from((length - offset).min(chunk)).unwrap_or(usize::MAX);
        input
            .read_exact(&mut buf[..want])
            .map_err(|e| skip(format!("read at {offset}: {e}")))?;
        let data = &buf[..want];
        if item.page {
            for r in nonzero_page_ranges(data, offset, 512) {
                let (start, end) = ((r.start - offset) as usize, (r.end - offset) as usize);
                ranges.push(PageRange {
                    offset: r.start,
                    length: r.end - r.start,
                    hash: Md5Digest::of(&data[start..end]),
                });
                // A page blob's copy keeps its holes: only non-zero pages are written.
                if let Some(out) = output.as_mut() {
                    out.write_all_at(&data[start..end], r.start)
                        .map_err(|e| skip(format!("write the drive copy: {e}")))?;
                }
            }
        } else {
            let md5 = Md5Digest::of(data);
            blocks.push(Block {
                offset,
                length: want as u64,
                id: Some(format!("MD5/{}", md5.to_base64())),
                hash: md5,
            });
        }
        if let (false, Some(out)) = (item.page, output.as_mut()) {
            out.write_all(data)
                .map_err(|e| skip(format!("write the drive copy: {e}")))?;
        }
        offset += want as u64;
    }
    if let Some(out) = output {
        if item.page {
            out.set_len(length)
                .map_err(|e| skip(format!("size the drive copy: {e}")))?;
        }
        out.sync_all()
            .map_err(|e| skip(format!("sync the drive copy: {e}")))?;
    }
    Ok(Blob {
        blob_path: item.blob.to_string(),
        file_path: item.file_path.to_manifest_string(),
        client_data: None,
        snapshot: None,
        length,
        import_disposition: source.disposition,
        page_range_list: item.page.then_some(ranges),
        block_list: (!item.page).then_some(blocks),
        metadata_path: None,
        properties_path: None,
        source_offset: SourceOffset::default(),
    })
}

/// Copy a list's metadata or properties file onto the drive (`drivecopy-prep/list-N.<kind>.xml`)
/// and return its manifest entry with the MD5 of its bytes. In place, the file must already be on
/// the drive and is referenced where it is.
fn copy_side_file(
    file: &Option<PathBuf>,
    root: &Path,
    list: usize,
    kind: &str,
    in_place: bool,
) -> Result<Option<HashedPath>, PrepareError> {
    let Some(src) = file else { return Ok(None) };
    let bytes = fs::read(src).map_err(io_err("read", src))?;
    let hash = Md5Digest::of(&bytes);
    let rel = if in_place {
        let canonical = fs::canonicalize(src).map_err(io_err("read", src))?;
        let under = canonical
            .strip_prefix(root)
            .map_err(|_| PrepareError::NotOnDrive {
                path: src.clone(),
                root: root.to_path_buf(),
            })?;
        DrivePath::from_segments(under.iter().map(|s| s.to_string_lossy().into_owned()))
    } else {
        let rel =
            DrivePath::from_segments([PREP_DIR.to_string(), format!("list-{list}.{kind}.xml")]);
        if let Some(rel) = &rel {
            let dest = rel.under(root);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            }
            write_atomically(&dest, &bytes)?;
        }
        rel
    };
    Ok(rel.map(|r| HashedPath {
        path: r.to_manifest_string(),
        hash,
    }))
}

/// Write `bytes` to `path` through a unique temporary file and a rename, with fsync.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PrepareError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(bytes).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", path))?;
    Ok(())
}

/// The serial number of the block device holding `path`, when Linux exposes one (sysfs
/// `device/serial`, or udev's `ID_SERIAL_SHORT`); spaces are removed as the ARM `driveId` asks.
pub fn discover_drive_id(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let dev = fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let candidates = [sys.join("device/serial"), sys.join("../device/serial")];
    let from_sysfs = candidates.iter().find_map(|p| fs::read_to_string(p).ok());
    let from_udev = || {
        let data = fs::read_to_string(format!("/run/udev/data/b{major}:{minor}")).ok()?;
        data.lines()
            .find_map(|l| l.strip_prefix("E:ID_SERIAL_SHORT=").map(str::to_string))
    };
    let serial: String = from_sysfs
        .or_else(from_udev)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (!serial.is_empty()).then_some(serial)
}

/// A dataset CSV (azure-import-export.md §5.3) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Not CSV, or a row with the wrong number of fields.
    #[error("dataset CSV row {row}")]
    Csv {
        /// 1-based row number (the header is row 1).
        row: u64,
        /// The CSV error.
        #[source]
        source: csv::Error,
    },
    /// A required column is missing from the header.
    #[error("dataset CSV has no {column} column (expected BasePath, DstItemPathOrPrefix or DstBlobPathOrPrefix, ItemType or BlobType, Disposition, MetadataFile, PropertiesFile)")]
    MissingColumn {
        /// The missing column.
        column: &'static str,
    },
    /// A value that is not allowed.
    #[error("dataset CSV row {row}: {message}")]
    Value {
        /// 1-based row number.
        row: u64,
        /// What is wrong.
        message: String,
    },
}

/// Parse a WAImportExport v2 dataset CSV into sources.
///
/// Header: `BasePath,DstItemPathOrPrefix,ItemType,Disposition,MetadataFile,PropertiesFile`; the
/// documented spellings `DstBlobPathOrPrefix` and `BlobType` are accepted too (azure-docs issue
/// #7250, §7). A `BasePath` ending in `\` or `/` is a directory. `ItemType` is `block`, `page`,
/// `BlockBlob` or `PageBlob` (any case; empty means by extension); `Disposition` is `rename`,
/// `no-overwrite` or `overwrite` (empty means the default); a metadata or properties file of
/// `None` or empty means none. Relative paths are taken relative to `base_dir`.
///
/// # Errors
/// [`DatasetError`] naming the row and the problem.
pub fn parse_dataset(text: &str, base_dir: &Path) -> Result<Vec<PrepareSource>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|source| DatasetError::Csv { row: 1, source })?
        .clone();
    let column = |names: &[&str], required: &'static str| {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
            .ok_or(DatasetError::MissingColumn { column: required })
    };
    let base_col = column(&["BasePath"], "BasePath")?;
    let dst_col = column(
        &["DstItemPathOrPrefix", "DstBlobPathOrPrefix"],
        "DstItemPathOrPrefix",
    )?;
    let type_col = column(&["ItemType", "BlobType"], "ItemType").ok();
    let disp_col = column(&["Disposition"], "Disposition").ok();
    let meta_col = column(&["MetadataFile"], "MetadataFile").ok();
    let props_col = column(&["PropertiesFile"], "PropertiesFile").ok();
    let mut sources = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 2;
        let record = record.map_err(|source| DatasetError::Csv { row, source })?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).map(str::trim).unwrap_or("");
        let optional_path = |c| match field(c) {
            "" => None,
            v if v.eq_ignore_ascii_case("none") => None,
            v => Some(base_dir.join(v)),
        };
        let base = field(Some(base_col));
        if base.is_empty() {
            return Err(DatasetError::Value {
                row,
                message: "BasePath is empty".into(),
            });
        }
        let item_type = match field(type_col).to_ascii_lowercase().as_str() {
            "" => ItemType::Auto,
            "block" | "blockblob" => ItemType::Block,
            "page" | "pageblob" => ItemType::Page,
            other => {
                return Err(DatasetError::Value {
                    row,
                    message: format!("ItemType {other:?} is not block or page"),
                })
            }
        };
        let disposition = match field(disp_col) {
            "" => None,
            d => Some(ImportDisposition::from_manifest_str(d).ok_or_else(|| {
                DatasetError::Value {
                    row,
                    message: format!("Disposition {d:?} is not rename, no-overwrite or overwrite"),
                }
            })?),
        };
        let is_dir = base.ends_with('\\') || base.ends_with('/');
        let trimmed = base.trim_end_matches(['\\', '/']);
        let mut destination = field(Some(dst_col)).to_string();
        if is_dir && !destination.ends_with('/') {
            destination.push('/');
        }
        sources.push(PrepareSource {
            base_path: base_dir.join(trimmed),
            destination,
            item_type,
            disposition,
            metadata_file: optional_path(meta_col),
            properties_file: optional_path(props_col),
        });
    }
    Ok(sources)
}
