//! Every status enumeration of the `DriveLog` format, with Azure's exact spelling.
//!
//! Source: azure-import-export.md §2.4–§2.8 (AD: articles/storage/common/storage-import-export-file-format-log.md).
//! Each enum has an `Other(String)` variant so that a log written by a newer service version (for
//! example the 2018-10-01 codes of §2.9) still parses; unknown values count as failures.
//! Matching is exact and case-sensitive after trimming surrounding whitespace.
//!
//! This module only names statuses and says which are failures or warnings; it does not parse XML.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// Declares a status enum with `as_str`, `KNOWN`, `From<&str>`, `FromStr`, `Display` and serde
/// (as its Azure string).
macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim (trimmed) so that the document is
            /// not lost. Never holds one of the documented spellings when produced by parsing.
            Other(String),
        }

        impl $name {
            /// Every documented value, in the reference's order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// Azure's exact spelling of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => stringify!($variant), )+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            /// Map Azure's spelling (surrounding whitespace ignored) to a variant; anything else
            /// becomes `Other`.
            fn from(text: &str) -> Self {
                match text.trim() {
                    $( stringify!($variant) => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl FromStr for $name {
            type Err = Infallible;
            fn from_str(s: &str) -> Result<Self, Infallible> {
                Ok($name::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

status_enum! {
    /// The drive status, the text of `DriveLog/Status` (azure-import-export.md §2.4).
    ///
    /// Named `DriveLogStatus` so as not to be confused with the ARM `DriveStatus` object.
    DriveLogStatus {
        /// The drive finished processing without errors.
        Completed,
        /// Finished with warnings in one or more blobs, per their import dispositions.
        CompletedWithWarnings,
        /// Finished with errors in one or more blobs or chunks.
        CompletedWithErrors,
        /// No disk was found on the drive.
        DiskNotFound,
        /// The first data volume is not NTFS.
        VolumeNotNtfs,
        /// An unknown failure in a drive operation.
        DiskOperationFailed,
        /// No BitLocker-encryptable volume was found.
        BitLockerVolumeNotFound,
        /// BitLocker is not enabled on the volume.
        BitLockerNotActivated,
        /// The volume has no numerical-password key protector.
        BitLockerProtectorNotFound,
        /// The numerical password does not unlock the volume.
        BitLockerKeyInvalid,
        /// An unknown failure while unlocking the volume.
        BitLockerUnlockVolumeFailed,
        /// An unknown failure in a BitLocker operation.
        BitLockerFailed,
        /// The manifest file name is invalid.
        ManifestNameInvalid,
        /// The manifest file name is too long.
        ManifestNameTooLong,
        /// The manifest file was not found.
        ManifestNotFound,
        /// Access to the manifest file was denied.
        ManifestAccessDenied,
        /// The manifest content does not match its hash.
        ManifestCorrupted,
        /// The manifest content does not conform to the format.
        ManifestFormatInvalid,
        /// The manifest's drive ID differs from the drive's.
        ManifestDriveIdMismatch,
        /// A disk I/O failure while reading the manifest.
        ReadManifestFailed,
        /// The export blob-list blob is malformed.
        BlobListFormatInvalid,
        /// Access to the account's blobs is forbidden (bad key or SAS).
        BlobRequestForbidden,
        /// An internal error while processing the drive.
        InternalError,
    }
}

impl DriveLogStatus {
    /// True for every value but `Completed` and `CompletedWithWarnings`; `Other` counts as a
    /// failure, so an unknown status is never reported as success.
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            DriveLogStatus::Completed | DriveLogStatus::CompletedWithWarnings
        )
    }

    /// True only for `CompletedWithWarnings`.
    pub fn is_warning(&self) -> bool {
        matches!(self, DriveLogStatus::CompletedWithWarnings)
    }

    /// True for a drive-level failure (§2.4: a status that is not one of the three `Completed…`
    /// copy outcomes): the copy could not start, nothing past the manifest or blob list ran.
    pub fn is_drive_failure(&self) -> bool {
        !matches!(
            self,
            DriveLogStatus::Completed
                | DriveLogStatus::CompletedWithWarnings
                | DriveLogStatus::CompletedWithErrors
        )
    }
}

status_enum! {
    /// The status of one blob (import) or file (export), `Blob/@Status` (azure-import-export.md §2.5).
    BlobStatus {
        /// Processed without errors.
        Completed,
        /// Errors in some page ranges, blocks, metadata or properties.
        CompletedWithErrors,
        /// The file name is invalid.
        FileNameInvalid,
        /// The file name is too long.
        FileNameTooLong,
        /// The file was not found.
        FileNotFound,
        /// Access to the file was denied.
        FileAccessDenied,
        /// A Blob service request failed.
        BlobRequestFailed,
        /// A Blob service request was forbidden (bad key or SAS).
        BlobRequestForbidden,
        /// Renaming the blob (import) or file (export) failed.
        RenameFailed,
        /// The blob changed unexpectedly during export.
        BlobUnexpectedChange,
        /// A lease is present on the blob.
        LeasePresent,
        /// A disk or network I/O failure.
        IOFailed,
        /// An unknown failure.
        Failed,
    }
}

impl BlobStatus {
    /// True for every value but `Completed` (including `Other`).
    pub fn is_failure(&self) -> bool {
        !matches!(self, BlobStatus::Completed)
    }
}

status_enum! {
    /// How the requested import disposition was resolved, `ImportDisposition/@Status`
    /// (azure-import-export.md §2.6).
    ImportDispositionStatus {
        /// The blob was created.
        Created,
        /// Renamed per the `rename` disposition; `BlobPath` holds the new name.
        Renamed,
        /// Skipped per the `no-overwrite` disposition.
        Skipped,
        /// An existing blob was overwritten per the `overwrite` disposition.
        Overwritten,
        /// An earlier failure stopped processing.
        Cancelled,
    }
}

impl ImportDispositionStatus {
    /// True for `Cancelled` and `Other`: the disposition was not carried out.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ImportDispositionStatus::Cancelled | ImportDispositionStatus::Other(_)
        )
    }

    /// True for `Renamed`, `Skipped` and `Overwritten`: the blob did not simply land where asked,
    /// which makes the drive `CompletedWithWarnings` ("warnings … per the import dispositions",
    /// §2.4) and the ARM drive state `CompletedMoreInfo` ("informational messages about
    /// overwriting blobs", §6.2).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            ImportDispositionStatus::Renamed
                | ImportDispositionStatus::Skipped
                | ImportDispositionStatus::Overwritten
        )
    }
}

status_enum! {
    /// The status of one page range or block, `PageRange/@Status` and `Block/@Status`
    /// (azure-import-export.md §2.7).
    RangeStatus {
        /// Processed without errors.
        Completed,
        /// Committed, but not in the full block list (other blocks or Put Block List failed).
        Committed,
        /// Uploaded but not committed.
        Uncommitted,
        /// The content does not match its hash.
        Corrupted,
        /// The file ended unexpectedly.
        FileUnexpectedEnd,
        /// The blob ended unexpectedly.
        BlobUnexpectedEnd,
        /// A Blob service request failed.
        BlobRequestFailed,
        /// A disk or network I/O failure.
        IOFailed,
        /// An unknown failure.
        Failed,
        /// An earlier failure stopped processing.
        Cancelled,
    }
}

impl RangeStatus {
    /// True for every value but `Completed`. `Committed` and `Uncommitted` count as failures: the
    /// blob does not hold the range in its final block list, so a repair must act on it.
    pub fn is_failure(&self) -> bool {
        !matches!(self, RangeStatus::Completed)
    }
}

status_enum! {
    /// The status of a blob's metadata or properties, `Metadata/@Status` and
    /// `Properties/@Status` (azure-import-export.md §2.8; both use this list).
    FileLogStatus {
        /// Processed without errors.
        Completed,
        /// The metadata or properties file name is invalid.
        FileNameInvalid,
        /// The file name is too long.
        FileNameTooLong,
        /// The file was not found.
        FileNotFound,
        /// Access to the file was denied.
        FileAccessDenied,
        /// The file does not match its hash.
        Corrupted,
        /// The file content does not conform to the format.
        XmlReadFailed,
        /// Writing the XML failed (export).
        XmlWriteFailed,
        /// A Blob service request failed.
        BlobRequestFailed,
        /// A disk or network I/O failure.
        IOFailed,
        /// An unknown failure.
        Failed,
        /// An earlier failure stopped processing.
        Cancelled,
    }
}

impl FileLogStatus {
    /// True for every value but `Completed` (including `Other`).
    pub fn is_failure(&self) -> bool {
        !matches!(self, FileLogStatus::Completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_through_text_and_serde() {
        fn check<T>(known: &[T])
        where
            T: fmt::Display + From<&'static str> + PartialEq + fmt::Debug + serde::Serialize,
            T: for<'de> serde::Deserialize<'de>,
        {
            for v in known {
                let text = v.to_string();
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{text}\""));
                assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
            }
        }
        check(DriveLogStatus::KNOWN);
        check(BlobStatus::KNOWN);
        check(ImportDispositionStatus::KNOWN);
        check(RangeStatus::KNOWN);
        check(FileLogStatus::KNOWN);
        for v in DriveLogStatus::KNOWN {
            assert_eq!(&DriveLogStatus::from(v.as_str()), v);
        }
        for v in RangeStatus::KNOWN {
            assert_eq!(&RangeStatus::from(v.as_str()), v);
        }
    }

    #[test]
    fn exact_spellings_from_the_reference() {
        assert_eq!(DriveLogStatus::KNOWN.len(), 23);
        assert_eq!(BlobStatus::KNOWN.len(), 13);
        assert_eq!(ImportDispositionStatus::KNOWN.len(), 5);
        assert_eq!(RangeStatus::KNOWN.len(), 10);
        assert_eq!(FileLogStatus::KNOWN.len(), 12);
        assert_eq!(BlobStatus::IOFailed.as_str(), "IOFailed");
        assert_eq!(DriveLogStatus::VolumeNotNtfs.as_str(), "VolumeNotNtfs");
        assert_eq!(ImportDispositionStatus::Cancelled.as_str(), "Cancelled");
        assert_eq!(
            " Corrupted ".parse::<RangeStatus>(),
            Ok(RangeStatus::Corrupted)
        );
    }

    #[test]
    fn unknown_values_are_kept_and_count_as_failures() {
        let v = BlobStatus::from("ContainerRenamed");
        assert_eq!(v, BlobStatus::Other("ContainerRenamed".into()));
        assert_eq!(v.to_string(), "ContainerRenamed");
        assert!(v.is_failure());
        assert_eq!(
            RangeStatus::from("completed"),
            RangeStatus::Other("completed".into())
        );
        assert!(DriveLogStatus::from("Whatever").is_failure());
        assert!(ImportDispositionStatus::from("Whatever").is_failure());
    }

    #[test]
    fn failure_and_warning_classes() {
        assert!(!DriveLogStatus::Completed.is_failure());
        assert!(!DriveLogStatus::CompletedWithWarnings.is_failure());
        assert!(DriveLogStatus::CompletedWithWarnings.is_warning());
        assert!(DriveLogStatus::CompletedWithErrors.is_failure());
        assert!(DriveLogStatus::BitLockerKeyInvalid.is_failure());
        assert!(!BlobStatus::Completed.is_failure());
        assert!(BlobStatus::CompletedWithErrors.is_failure());
        for ok in [
            ImportDispositionStatus::Created,
            ImportDispositionStatus::Renamed,
        ] {
            assert!(!ok.is_failure());
        }
        assert!(!ImportDispositionStatus::Created.is_warning());
        for w in [
            ImportDispositionStatus::Renamed,
            ImportDispositionStatus::Skipped,
            ImportDispositionStatus::Overwritten,
        ] {
            assert!(w.is_warning(), "{w}");
        }
        assert!(ImportDispositionStatus::Cancelled.is_failure());
        assert!(!RangeStatus::Completed.is_failure());
        for bad in [
            RangeStatus::Committed,
            RangeStatus::Uncommitted,
            RangeStatus::Cancelled,
        ] {
            assert!(bad.is_failure(), "{bad}");
        }
        assert!(!FileLogStatus::Completed.is_failure());
        assert!(FileLogStatus::XmlReadFailed.is_failure());
    }
}
