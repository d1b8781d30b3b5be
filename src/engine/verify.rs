//! Verifying a drive against its manifest: the check half of RepairImport and RepairExport
//! (azure-import-export.md §5.2: "with a manifest it also verifies every listed range, block, and
//! properties or metadata file against its MD5").
//!
//! Works on import and export drives alike (the manifest schema is shared, §1.2). Every block and
//! page range is read from the file at its offset and hashed; the result is a [`DriveLog`] in
//! which each range is `Completed`, `Corrupted` (hash mismatch) or `FileUnexpectedEnd` (the file
//! is shorter), each blob `Completed` or `CompletedWithErrors` (or `FileNotFound`,
//! `FileNameInvalid`, `FileNameTooLong`, `FileAccessDenied`, `IOFailed` with its ranges
//! `Cancelled` when its file cannot be read), and each metadata or properties file `Completed`,
//! `Corrupted`, `FileNotFound`, … (§2.5–§2.8). Its error view lists exactly what a repair must
//! fetch again.
//!
//! Files are opened beneath the drive root without following links ([`DriveDir`]). Blobs are
//! checked in parallel on a rayon pool; each thread holds one buffer of the largest range, so
//! memory is `threads × range size`. This module never writes to the drive.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::copylog::{
    BlobLog, BlobStatus, BlockLog, DriveLog, DriveLogStatus, FileLog, FileLogStatus,
    HashedPath as LogPath, RangeList, RangeLog, RangeStatus,
};
use crate::digest::Md5Digest;
use crate::engine::import::DEFAULT_MANIFEST_FILE;
use crate::engine::read::open_root;
use crate::engine::write::DriveDir;
use crate::manifest::{Blob, DriveManifest, HashedPath, ManifestError};
use crate::names::{DrivePath, PathError};

/// The largest manifest read, bytes.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The drive's root directory.
    pub drive_root: PathBuf,
    /// The manifest's path relative to the root; `None` finds it: `\DriveManifest.xml`, else
    /// the only `*.manifest` file at the root.
    pub manifest_file: Option<String>,
    /// Checking threads; `None` for one per core.
    pub threads: Option<usize>,
}

/// What a verification found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The manifest checked against (manifest form, `\…`).
    pub manifest_file: String,
    /// One entry per manifest blob, in manifest order; [`DriveLog::errors_only`] is the repair
    /// list.
    pub drive_log: DriveLog,
    /// Blocks and page ranges checked.
    pub ranges_checked: u64,
    /// Blocks and page ranges that did not match.
    pub ranges_failed: u64,
    /// Bytes read and hashed.
    pub bytes_checked: u64,
}

impl VerifyReport {
    /// True when every range, block and side file matched.
    pub fn is_clean(&self) -> bool {
        !self.drive_log.has_errors()
    }
}

/// Why a drive could not be verified at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The drive root cannot be opened.
    #[error("open the drive {root:?}")]
    Drive {
        /// The root.
        root: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No manifest was named and none (or more than one) was found at the root.
    #[error("no single drive manifest at the root of {root:?}: found {found:?}")]
    NoManifest {
        /// The root.
        root: PathBuf,
        /// The `*.manifest` files found.
        found: Vec<String>,
    },
    /// The manifest path is not a valid drive path.
    #[error("manifest path {path:?} is invalid")]
    ManifestPath {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: PathError,
    },
    /// The manifest cannot be read.
    #[error("read the manifest {path:?}")]
    ManifestRead {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The manifest is not a drive manifest.
    #[error("the manifest {path:?} cannot be parsed")]
    ManifestFormat {
        /// The path.
        path: String,
        /// The parse error.
        #[source]
        source: ManifestError,
    },
    /// The checking threads could not start.
    #[error("start {threads} checking threads")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// Why.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
}

impl VerifyError {
    /// The drive status this failure corresponds to (§2.4).
    pub fn drive_status(&self) -> DriveLogStatus {
        match self {
            VerifyError::Drive { .. } => DriveLogStatus::DiskNotFound,
            VerifyError::NoManifest { .. } => DriveLogStatus::ManifestNotFound,
            VerifyError::ManifestPath { .. } => DriveLogStatus::ManifestNameInvalid,
            VerifyError::ManifestRead { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => DriveLogStatus::ManifestNotFound,
                io::ErrorKind::PermissionDenied => DriveLogStatus::ManifestAccessDenied,
                _ => DriveLogStatus::ReadManifestFailed,
            },
            VerifyError::ManifestFormat { .. } => DriveLogStatus::ManifestFormatInvalid,
            VerifyError::Threads { .. } => DriveLogStatus::InternalError,
        }
    }
}

fn read_small(root: &File, path: &DrivePath, max: u64) -> io::Result<Vec<u8>> {
    let dir = DriveDir::open_parent(root, path, false)?;
    let name = path
        .segments()
        .last()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let file = dir.open_read(name)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes is over the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn find_manifest(config: &VerifyConfig) -> Result<String, VerifyError> {
    if let Some(m) = &config.manifest_file {
        return Ok(m.clone());
    }
    let root = &config.drive_root;
    if root
        .join(DEFAULT_MANIFEST_FILE.trim_start_matches('\\'))
        .is_file()
    {
        return Ok(DEFAULT_MANIFEST_FILE.to_string());
    }
    let mut found: Vec<String> = std::fs::read_dir(root)
        .map_err(|source| VerifyError::Drive {
            root: root.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".manifest"))
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok(format!("\\{one}")),
        _ => Err(VerifyError::NoManifest {
            root: root.clone(),
            found,
        }),
    }
}

/// Verify the drive at `config.drive_root` against its manifest.
///
/// # Errors
/// [`VerifyError`] when the drive or its manifest cannot be used at all; every problem of a blob
/// is in the report instead.
pub fn verify_drive(config: &VerifyConfig) -> Result<VerifyReport, VerifyError> {
    let root = open_root(&config.drive_root).map_err(|source| VerifyError::Drive {
        root: config.drive_root.clone(),
        source,
    })?;
    let manifest_file = find_manifest(config)?;
    let manifest_path =
        DrivePath::parse(&manifest_file).map_err(|source| VerifyError::ManifestPath {
            path: manifest_file.clone(),
            source,
        })?;
    let bytes = read_small(&root, &manifest_path, MAX_MANIFEST_BYTES).map_err(|source| {
        VerifyError::ManifestRead {
            path: manifest_file.clone(),
            source,
        }
    })?;
    let manifest = DriveManifest::parse(&bytes).map_err(|source| VerifyError::ManifestFormat {
        path: manifest_file.clone(),
        source,
    })?;
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("drivecopy-verify-{i}"))
        .build()
        .map_err(|source| VerifyError::Threads { threads, source })?;
    let blobs: Vec<&Blob> = manifest.blobs().map(|(_, b)| b).collect();
    let results: Vec<Checked> = pool.install(|| {
        blobs
            .par_iter()
            .map_init(Vec::new, |buf, blob| check_blob(&root, blob, buf))
            .collect()
    });
    let mut report = VerifyReport {
        manifest_file,
        drive_log: DriveLog::new(manifest.drive.drive_id.clone(), Vec::new()),
        ranges_checked: 0,
        ranges_failed: 0,
        bytes_checked: 0,
    };
    let mut logs = Vec::with_capacity(results.len());
    for c in results {
        report.ranges_checked += c.ranges_checked;
        report.ranges_failed += c.ranges_failed;
        report.bytes_checked += c.bytes_checked;
        logs.push(c.log);
    }
    report.drive_log = DriveLog::new(manifest.drive.drive_id.clone(), logs);
    Ok(report)
}

struct Checked {
    log: BlobLog,
    ranges_checked: u64,
    ranges_failed: u64,
    bytes_checked: u64,
}

/// The chunks of a blob as (offset, length, hash, block id).
fn chunks(blob: &Blob) -> Vec<(u64, u64, Md5Digest, Option<String>)> {
    match (&blob.block_list, &blob.page_range_list) {
        (Some(blocks), _) => blocks
            .iter()
            .map(|b| (b.offset, b.length, b.hash, b.id.clone()))
            .collect(),
        (None, Some(ranges)) => ranges
            .iter()
            .map(|r| (r.offset, r.length, r.hash, None))
            .collect(),
        (None, None) => Vec::new(),
    }
}

fn range_list(blob: &Blob, statuses: &[RangeStatus]) -> Option<RangeList> {
    let cs = chunks(blob);
    let status = |i: usize| statuses.get(i).cloned().unwrap_or(RangeStatus::Cancelled);
    if blob.block_list.is_some() {
        Some(RangeList::BlockList(
            cs.into_iter()
                .enumerate()
                .map(|(i, (offset, len, hash, id))| BlockLog {
                    offset_bytes: offset,
                    length_bytes: len,
                    id,
                    hash: Some(hash),
                    status: status(i),
                })
                .collect(),
        ))
    } else if blob.page_range_list.is_some() {
        Some(RangeList::PageRangeList(
            cs.into_iter()
                .enumerate()
                .map(|(i, (offset, len, hash, _))| RangeLog {
                    offset_bytes: offset,
                    length_bytes: len,
                    hash: Some(hash),
                    status: status(i),
                })
                .collect(),
        ))
    } else {
        None
    }
}

fn open_failure_status(e: &io::Error) -> BlobStatus {
    match e.kind() {
        io::ErrorKind::NotFound => BlobStatus::FileNotFound,
        io::ErrorKind::PermissionDenied => BlobStatus::FileAccessDenied,
        io::ErrorKind::InvalidInput => BlobStatus::FileNameInvalid,
        _ if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) => {
            BlobStatus::FileNameInvalid
        }
        _ => BlobStatus::IOFailed,
    }
}

fn check_side(root: &File, hashed: &HashedPath) -> FileLog {
    let status = match hashed.drive_path() {
        Err(e) if e.is_too_long() => FileLogStatus::FileNameTooLong,
        Err(_) => FileLogStatus::FileNameInvalid,
        Ok(path) => match read_small(root, &path, 1 << 20) {
            Ok(bytes) if Md5Digest::of(&bytes) == hashed.hash => FileLogStatus::Completed,
            Ok(_) => FileLogStatus::Corrupted,
            Err(e) => match e.kind() {
                io::ErrorKind::NotFound => FileLogStatus::FileNotFound,
                io::ErrorKind::PermissionDenied => FileLogStatus::FileAccessDenied,
                _ => FileLogStatus::IOFailed,
            },
        },
    };
    FileLog {
        status,
        global_path: None,
        path: Some(LogPath {
            path: hashed.path.clone(),
            hash: Some(hashed.hash),
        }),
    }
}

fn check_blob(root: &File, blob: &Blob, buf: &mut Vec<u8>) -> Checked {
    let mut log = BlobLog {
        status: BlobStatus::Completed,
        blob_path: blob.blob_path.clone(),
        file_path: blob.file_path.clone(),
        snapshot: blob.snapshot.clone(),
        last_modified: None,
        length_bytes: blob.length,
        import_disposition: None,
        list: None,
        metadata: blob.metadata_path.as_ref().map(|h| check_side(root, h)),
        properties: blob.properties_path.as_ref().map(|h| check_side(root, h)),
    };
    let mut out = Checked {
        log: log.clone(),
        ranges_checked: 0,
        ranges_failed: 0,
        bytes_checked: 0,
    };
    let opened = match blob.drive_path() {
        Err(e) => Err(if e.is_too_long() {
            BlobStatus::FileNameTooLong
        } else {
            BlobStatus::FileNameInvalid
        }),
        Ok(path) => DriveDir::open_parent(root, &path, false)
            .and_then(|dir| {
                let name = path
                    .segments()
                    .last()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                dir.open_read(name)
            })
            .map_err(|e| open_failure_status(&e)),
    };
    let file = match opened {
        Ok(f) => f,
        Err(status) => {
            log.status = status;
            log.list = range_list(blob, &[]);
            out.ranges_failed = chunks(blob).len() as u64;
            out.log = log;
            return out;
        }
    };
    let mut statuses = Vec::new();
    for (offset, len, hash, _) in chunks(blob) {
        out.ranges_checked += 1;
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let status = match buf.get_mut(..n) {
            None => RangeStatus::Failed,
            Some(slice) => match file.read_exact_at(slice, offset) {
                Ok(()) => {
                    out.bytes_checked += len;
                    if Md5Digest::of(slice) == hash {
                        RangeStatus::Completed
                    } else {
                        RangeStatus::Corrupted
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    RangeStatus::FileUnexpectedEnd
                }
                Err(_) => RangeStatus::IOFailed,
            },
        };
        if status.is_failure() {
            out.ranges_failed += 1;
        }
        statuses.push(status);
    }
    log.list = range_list(blob, &statuses);
    let side_failed = [&log.metadata, &log.properties]
        .iter()
        .any(|s| s.as_ref().is_some_and(|f| f.status.is_failure()));
    if out.ranges_failed > 0 || side_failed {
        log.status = BlobStatus::CompletedWithErrors;
    }
    out.log = log;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_sample_reports_each_bad_range() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("9WM35C3U.manifest"),
            include_bytes!("../../tests/data/manifests/export-9WM35C3U.xml"),
        )
        .unwrap();
        // canyon.jpg: four blocks of 2,721 bytes of 0x00, 0x01, 0x02, 0x03 (tests/data/README.md),
        // the third one damaged.
        let wild = dir.path().join("pictures/wild");
        std::fs::create_dir_all(&wild).unwrap();
        let mut data: Vec<u8> = (0u8..4).flat_map(|b| vec![b; 2721]).collect();
        data[5442 + 7] ^= 0xFF;
        std::fs::write(wild.join("canyon.jpg"), &data).unwrap();
        let report = verify_drive(&VerifyConfig {
            drive_root: dir.path().to_path_buf(),
            manifest_file: None,
            threads: Some(2),
        })
        .unwrap();
        assert_eq!(report.manifest_file, "\\9WM35C3U.manifest");
        let log = &report.drive_log;
        assert_eq!(log.status, DriveLogStatus::CompletedWithErrors);
        // redmond.jpg is missing.
        assert_eq!(log.blobs[0].status, BlobStatus::FileNotFound);
        let canyon = &log.blobs[1];
        assert_eq!(canyon.status, BlobStatus::CompletedWithErrors);
        let Some(RangeList::BlockList(blocks)) = &canyon.list else {
            panic!("no block list: {canyon:?}");
        };
        let statuses: Vec<&str> = blocks.iter().map(|b| b.status.as_str()).collect();
        assert_eq!(
            statuses,
            ["Completed", "Completed", "Corrupted", "Completed"]
        );
        assert_eq!(blocks[2].id.as_deref(), Some("AgAAAA=="));
        assert_eq!(
            canyon.properties.as_ref().map(|p| &p.status),
            Some(&FileLogStatus::FileNotFound)
        );
        assert_eq!(report.ranges_checked, 4);
        // The error view keeps only the corrupted block of canyon.jpg.
        let errors = log.errors_only();
        match &errors.blobs[1].list {
            Some(RangeList::BlockList(b)) => assert_eq!(b.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drive_failures_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = VerifyConfig {
            drive_root: dir.path().to_path_buf(),
            manifest_file: None,
            threads: Some(1),
        };
        let e = verify_drive(&cfg).unwrap_err();
        assert_eq!(e.drive_status(), DriveLogStatus::ManifestNotFound);
        std::fs::write(dir.path().join("x.manifest"), b"<NotAManifest/>").unwrap();
        let e = verify_drive(&cfg).unwrap_err();
        assert_eq!(e.drive_status(), DriveLogStatus::ManifestFormatInvalid);
        let e = verify_drive(&VerifyConfig {
            manifest_file: Some(r"\..\etc\passwd".into()),
            ..cfg
        })
        .unwrap_err();
        assert_eq!(e.drive_status(), DriveLogStatus::ManifestNameInvalid);
    }
}
