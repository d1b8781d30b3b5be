//! The drive log (`<DriveLog>`): the error and verbose logs of a drive copy, and every status
//! enumeration they use.
//!
//! Source: azure-import-export.md §2 (AD: articles/storage/common/storage-import-export-file-format-log.md).
//! Both logs share one schema (§2.1, §2.3): the verbose log records every blob (import) or file
//! (export); the error log keeps only the failed blobs and, inside them, only the failed children.
//! [`DriveLog::parse`] reads either (any child order, hashes with surrounding spaces, a missing
//! `Version`, unknown elements such as the 2018-10-01 `Summary` and `File` ignored);
//! [`DriveLog::to_verbose_xml`] and [`DriveLog::to_error_xml`] write them in the element order of
//! the published samples.
//!
//! This module owns the format and the failure rules. It does no I/O and knows nothing of how the
//! engine produced the results; values are kept as text where the format does not say more
//! (blob and file paths may be the invalid names a status reports).

mod parse;
mod status;
mod write;

use serde::{Deserialize, Serialize};

use crate::digest::{DigestError, Md5Digest};
use crate::XmlError;

pub use status::{BlobStatus, DriveLogStatus, FileLogStatus, ImportDispositionStatus, RangeStatus};

/// The `Version` this crate writes on new logs (azure-import-export.md §0).
pub const DRIVE_LOG_VERSION: &str = "2014-11-01";

/// One drive's copy log: `<DriveLog>` (azure-import-export.md §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveLog {
    /// The `Version` attribute; `None` when absent, as in the RepairImport and RepairExport
    /// samples (§7 item 3).
    pub version: Option<String>,
    /// The drive's hardware serial number (`DriveId`).
    pub drive_id: String,
    /// One entry per blob (import) or file (export), in document order.
    pub blobs: Vec<BlobLog>,
    /// The drive status (`Status`, the last child of `DriveLog`).
    pub status: DriveLogStatus,
}

/// One `<Blob Status>` entry (azure-import-export.md §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobLog {
    /// The blob status (`@Status`).
    pub status: BlobStatus,
    /// `BlobPath`: `container/blob`; for a `Renamed` disposition, the new name. Kept as text
    /// because a failed entry may carry a name that is not valid.
    pub blob_path: String,
    /// `FilePath`: the file's path relative to the drive root, as written (`\dir\file`).
    pub file_path: String,
    /// `Snapshot` (export): the snapshot version, as written.
    pub snapshot: Option<String>,
    /// `LastModified` (export): the blob's last-modified time as written (`2012-09-18T23:47:08Z`).
    pub last_modified: Option<String>,
    /// `Length`: the blob length in bytes.
    pub length_bytes: u64,
    /// `ImportDisposition` (import).
    pub import_disposition: Option<ImportDisposition>,
    /// `PageRangeList` or `BlockList`; may be present and empty (`<BlockList />`).
    pub list: Option<RangeList>,
    /// `Metadata`: the status of the blob's metadata.
    pub metadata: Option<FileLog>,
    /// `Properties`: the status of the blob's properties.
    pub properties: Option<FileLog>,
}

/// `<ImportDisposition Status="…">requested</ImportDisposition>` (azure-import-export.md §2.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportDisposition {
    /// How the disposition was resolved.
    pub status: ImportDispositionStatus,
    /// The disposition the manifest asked for, as written (`rename`, `no-overwrite`, `overwrite`).
    pub requested: String,
}

/// A blob's chunk list: page ranges for a page blob, blocks for a block blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeList {
    /// `<PageRangeList>`.
    PageRangeList(Vec<RangeLog>),
    /// `<BlockList>`.
    BlockList(Vec<BlockLog>),
}

/// One `<PageRange Offset Length [Hash] Status>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeLog {
    /// Offset of the range in the blob, in bytes.
    pub offset_bytes: u64,
    /// Length of the range, in bytes.
    pub length_bytes: u64,
    /// MD5 of the range (Base16 in the XML); omitted by some writers.
    pub hash: Option<Md5Digest>,
    /// The range status.
    pub status: RangeStatus,
}

/// One `<Block Offset Length [Id] [Hash] Status>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockLog {
    /// Offset of the block in the blob, in bytes.
    pub offset_bytes: u64,
    /// Length of the block, in bytes.
    pub length_bytes: u64,
    /// The Base64 block ID as written (`AAAAAA==`, `MD5/cAzn4h7VVSWXf696qp5Uaw==`).
    pub id: Option<String>,
    /// MD5 of the block (Base16 in the XML).
    pub hash: Option<Md5Digest>,
    /// The block status.
    pub status: RangeStatus,
}

/// A `<Metadata Status>` or `<Properties Status>` entry with its optional file paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileLog {
    /// The metadata or properties status.
    pub status: FileLogStatus,
    /// `GlobalPath`: the per-BlobList file that applied to every blob of the session.
    pub global_path: Option<HashedPath>,
    /// `Path`: the blob's own file, which overrides the global one.
    pub path: Option<HashedPath>,
}

/// A drive-relative file path with the MD5 of the file (`<Path Hash="…">\a\b.xml</Path>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashedPath {
    /// The path as written (`\Users\bob\Pictures\wild\metadata.xml`).
    pub path: String,
    /// MD5 of the file's bytes; the 2018-10-01 variant omits hashes.
    pub hash: Option<Md5Digest>,
}

/// A drive log that cannot be read. Offsets are bytes into the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyLogError {
    /// The document is not well-formed XML.
    #[error("drive log is not well-formed XML")]
    Xml(#[from] XmlError),
    /// The root element is not `DriveLog`.
    #[error("root element at byte {offset} is <{found}>, expected <DriveLog>")]
    WrongRoot {
        /// The root element's name.
        found: String,
        /// Its offset.
        offset: u64,
    },
    /// A required child element is missing.
    #[error("<{parent}> at byte {offset} has no <{element}>")]
    MissingElement {
        /// The missing element.
        element: &'static str,
        /// The element that should hold it.
        parent: &'static str,
        /// Offset of the parent.
        offset: u64,
    },
    /// A required attribute is missing.
    #[error("<{element}> at byte {offset} has no {attribute} attribute")]
    MissingAttribute {
        /// The missing attribute.
        attribute: &'static str,
        /// The element that should carry it.
        element: &'static str,
        /// Offset of the element.
        offset: u64,
    },
    /// An element that may appear once appears again.
    #[error("<{element}> at byte {offset} is a second one in its parent")]
    Duplicate {
        /// The repeated element.
        element: &'static str,
        /// Offset of the second occurrence.
        offset: u64,
    },
    /// A `Blob` has both a `PageRangeList` and a `BlockList`.
    #[error("<Blob> at byte {offset} has both a <PageRangeList> and a <BlockList>")]
    ConflictingLists {
        /// Offset of the `Blob`.
        offset: u64,
    },
    /// A length or offset that is not a non-negative decimal integer.
    #[error("{field} {value:?} at byte {offset} is not a non-negative integer")]
    BadNumber {
        /// What the number is (`Length`, `PageRange/@Offset`, …).
        field: &'static str,
        /// The rejected text.
        value: String,
        /// Offset of the element.
        offset: u64,
    },
    /// A `Hash` attribute that is not a Base16 MD5.
    #[error("Hash attribute of <{element}> at byte {offset} is not a Base16 MD5")]
    BadHash {
        /// The element carrying the hash.
        element: &'static str,
        /// Offset of the element.
        offset: u64,
        /// The digest error.
        #[source]
        source: DigestError,
    },
}

impl DriveLog {
    /// A new log in the current format ([`DRIVE_LOG_VERSION`]) whose status is derived from the
    /// blob results by [`DriveLogStatus::from_blobs`].
    pub fn new(drive_id: impl Into<String>, blobs: Vec<BlobLog>) -> Self {
        let status = DriveLogStatus::from_blobs(&blobs);
        DriveLog {
            version: Some(DRIVE_LOG_VERSION.to_string()),
            drive_id: drive_id.into(),
            blobs,
            status,
        }
    }

    /// True when the drive status is a failure or any blob has an error (see
    /// [`BlobLog::has_errors`]); that is, when the error log has something to say.
    pub fn has_errors(&self) -> bool {
        self.status.is_failure() || self.blobs.iter().any(BlobLog::has_errors)
    }

    /// Blobs (or exported files) that did not end `Completed` ([`BlobLog::has_errors`]).
    pub fn blobs_failed(&self) -> u64 {
        self.blobs.iter().filter(|b| b.has_errors()).count() as u64
    }

    /// The error-log view of this log: the same drive ID, version and status, only the blobs
    /// with errors, and within each only the failed children (see [`BlobLog::errors_only`]).
    /// This is the model [`DriveLog::to_error_xml`] writes.
    pub fn errors_only(&self) -> DriveLog {
        DriveLog {
            version: self.version.clone(),
            drive_id: self.drive_id.clone(),
            blobs: self
                .blobs
                .iter()
                .filter(|b| b.has_errors())
                .map(BlobLog::errors_only)
                .collect(),
            status: self.status.clone(),
        }
    }
}

impl BlobLog {
    /// True when the blob status, its import disposition status, any page range or block, or its
    /// metadata or properties status is a failure (each enum's `is_failure`). A blob whose status
    /// is not `Completed` always has errors; a `Completed` blob with a failed child (an
    /// inconsistent entry) has too, so it is not dropped from the error log.
    pub fn has_errors(&self) -> bool {
        self.status.is_failure()
            || self
                .import_disposition
                .as_ref()
                .is_some_and(|d| d.status.is_failure())
            || self.list.as_ref().is_some_and(RangeList::has_errors)
            || self
                .metadata
                .as_ref()
                .is_some_and(|m| m.status.is_failure())
            || self
                .properties
                .as_ref()
                .is_some_and(|p| p.status.is_failure())
    }

    /// True when the import disposition is a warning (`Renamed`, `Skipped`, `Overwritten`).
    pub fn has_warnings(&self) -> bool {
        self.import_disposition
            .as_ref()
            .is_some_and(|d| d.status.is_warning())
    }

    /// The error-log form of this entry, as the paired samples show (azure-import-export.md §8
    /// items 3 and 4): the status, paths, times, length and import disposition are kept; the
    /// list element is kept (possibly empty, `<BlockList />`) with only its failed ranges or
    /// blocks; `Metadata` and `Properties` are kept only when they failed.
    pub fn errors_only(&self) -> BlobLog {
        BlobLog {
            status: self.status.clone(),
            blob_path: self.blob_path.clone(),
            file_path: self.file_path.clone(),
            snapshot: self.snapshot.clone(),
            last_modified: self.last_modified.clone(),
            length_bytes: self.length_bytes,
            import_disposition: self.import_disposition.clone(),
            list: self.list.as_ref().map(RangeList::errors_only),
            metadata: self.metadata.clone().filter(|m| m.status.is_failure()),
            properties: self.properties.clone().filter(|p| p.status.is_failure()),
        }
    }
}

impl RangeList {
    /// True when any page range or block failed.
    pub fn has_errors(&self) -> bool {
        match self {
            RangeList::PageRangeList(r) => r.iter().any(|r| r.status.is_failure()),
            RangeList::BlockList(b) => b.iter().any(|b| b.status.is_failure()),
        }
    }

    /// The same kind of list holding only the failed entries.
    pub fn errors_only(&self) -> RangeList {
        match self {
            RangeList::PageRangeList(r) => RangeList::PageRangeList(
                r.iter()
                    .filter(|r| r.status.is_failure())
                    .cloned()
                    .collect(),
            ),
            RangeList::BlockList(b) => RangeList::BlockList(
                b.iter()
                    .filter(|b| b.status.is_failure())
                    .cloned()
                    .collect(),
            ),
        }
    }
}

impl DriveLogStatus {
    /// The drive status for a drive whose processing reached the blobs (no drive-level failure):
    /// `CompletedWithErrors` if any blob [has errors](BlobLog::has_errors); otherwise
    /// `CompletedWithWarnings` if any import disposition is a warning (`Renamed`, `Skipped`,
    /// `Overwritten`: §2.4 "warnings … per the import dispositions", §6.2 "informational messages
    /// about overwriting blobs"); otherwise `Completed` (also for no blobs at all).
    pub fn from_blobs(blobs: &[BlobLog]) -> DriveLogStatus {
        if blobs.iter().any(BlobLog::has_errors) {
            DriveLogStatus::CompletedWithErrors
        } else if blobs.iter().any(BlobLog::has_warnings) {
            DriveLogStatus::CompletedWithWarnings
        } else {
            DriveLogStatus::Completed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(
        status: BlobStatus,
        disposition: Option<ImportDispositionStatus>,
        ranges: &[RangeStatus],
    ) -> BlobLog {
        BlobLog {
            status,
            blob_path: "c1/b".into(),
            file_path: "\\b".into(),
            snapshot: None,
            last_modified: None,
            length_bytes: 512 * ranges.len() as u64,
            import_disposition: disposition.map(|status| ImportDisposition {
                status,
                requested: "overwrite".into(),
            }),
            list: Some(RangeList::PageRangeList(
                ranges
                    .iter()
                    .enumerate()
                    .map(|(i, s)| RangeLog {
                        offset_bytes: 512 * i as u64,
                        length_bytes: 512,
                        hash: None,
                        status: s.clone(),
                    })
                    .collect(),
            )),
            metadata: Some(FileLog {
                status: FileLogStatus::Completed,
                global_path: None,
                path: None,
            }),
            properties: None,
        }
    }

    #[test]
    fn drive_status_derivation() {
        use ImportDispositionStatus as D;
        use RangeStatus as R;
        let ok = blob(BlobStatus::Completed, Some(D::Created), &[R::Completed]);
        let warn = blob(BlobStatus::Completed, Some(D::Overwritten), &[R::Completed]);
        let skipped = blob(BlobStatus::Completed, Some(D::Skipped), &[]);
        let bad = blob(
            BlobStatus::CompletedWithErrors,
            Some(D::Created),
            &[R::Completed, R::Corrupted],
        );
        let inconsistent = blob(BlobStatus::Completed, None, &[R::Uncommitted]);
        assert_eq!(DriveLogStatus::from_blobs(&[]), DriveLogStatus::Completed);
        assert_eq!(
            DriveLogStatus::from_blobs(std::slice::from_ref(&ok)),
            DriveLogStatus::Completed
        );
        assert_eq!(
            DriveLogStatus::from_blobs(&[ok.clone(), warn.clone()]),
            DriveLogStatus::CompletedWithWarnings
        );
        assert_eq!(
            DriveLogStatus::from_blobs(&[skipped]),
            DriveLogStatus::CompletedWithWarnings
        );
        assert_eq!(
            DriveLogStatus::from_blobs(&[warn, bad.clone()]),
            DriveLogStatus::CompletedWithErrors
        );
        assert_eq!(
            DriveLogStatus::from_blobs(&[inconsistent]),
            DriveLogStatus::CompletedWithErrors
        );
        let log = DriveLog::new("X", vec![ok, bad]);
        assert_eq!(log.version.as_deref(), Some(DRIVE_LOG_VERSION));
        assert_eq!(log.status, DriveLogStatus::CompletedWithErrors);
        assert!(log.has_errors());
    }

    #[test]
    fn errors_only_keeps_failed_children_and_empty_lists() {
        use RangeStatus as R;
        let mut b = blob(
            BlobStatus::CompletedWithErrors,
            None,
            &[R::Completed, R::Corrupted, R::Completed],
        );
        b.properties = Some(FileLog {
            status: FileLogStatus::Failed,
            global_path: None,
            path: None,
        });
        let e = b.errors_only();
        match &e.list {
            Some(RangeList::PageRangeList(r)) => {
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].offset_bytes, 512);
            }
            other => panic!("unexpected list {other:?}"),
        }
        assert_eq!(e.metadata, None);
        assert_eq!(
            e.properties.as_ref().map(|p| &p.status),
            Some(&FileLogStatus::Failed)
        );
        let only_ok = blob(BlobStatus::CompletedWithErrors, None, &[R::Completed]);
        assert_eq!(
            only_ok.errors_only().list,
            Some(RangeList::PageRangeList(vec![]))
        );

        let log = DriveLog {
            version: None,
            drive_id: "D".into(),
            blobs: vec![blob(BlobStatus::Completed, None, &[R::Completed]), b],
            status: DriveLogStatus::CompletedWithErrors,
        };
        let errs = log.errors_only();
        assert_eq!(errs.blobs.len(), 1);
        assert_eq!(errs.version, None);
        let clean = DriveLog::new(
            "D",
            vec![blob(BlobStatus::Completed, None, &[R::Completed])],
        );
        assert!(!clean.has_errors());
        assert!(clean.errors_only().blobs.is_empty());
        let drive_failure = DriveLog {
            status: DriveLogStatus::BitLockerKeyInvalid,
            ..clean
        };
        assert!(drive_failure.has_errors());
    }
}
