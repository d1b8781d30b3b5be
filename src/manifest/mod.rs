//! The drive manifest (`<DriveManifest>`): model, parser, writer and validation.
//!
//! This module owns the in-memory shape of a drive manifest (azure-import-export.md §1) and the three
//! operations on it:
//! - [`DriveManifest::parse`] (in `parse.rs`): tolerant reading of real-world files (§1.2, §7);
//! - [`DriveManifest::to_xml`] (in `write.rs`): the canonical, deterministic form of the Azure samples;
//! - [`DriveManifest::validate`] (in `validate.rs`): every semantic rule of §1.3, reported as a list of
//!   located [`Problem`]s rather than a first error, so an import can fail only the blobs at fault.
//!
//! The model keeps paths and names as the raw strings of the document: a bad `FilePath` or `BlobPath`
//! parses, and is reported by validation with its location instead of being lost in a parse error.
//!
//! It must not do I/O, read file contents, or talk to storage; it knows nothing of the copy engine.
//! Secrets (`StorageAccountKey`, `ContainerSas`) are held in [`Secret`], which never prints its value.

mod parse;
mod validate;
mod write;

use std::fmt;

use serde::{Serialize, Serializer};

use crate::digest::Md5Digest;
use crate::names::{BlobPath, DrivePath, NameError, PathError};
use crate::XmlError;

pub use validate::{
    Limits, Location, Problem, ProblemKind, DEFAULT_MAX_BLOCKS, DEFAULT_MAX_BLOCK_BLOB_BYTES,
    DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_PAGE_BLOB_BYTES, DEFAULT_MAX_PAGE_RANGE_BYTES, PAGE_BYTES,
};

/// A whole drive manifest: the `<DriveManifest>` root (azure-import-export.md §1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveManifest {
    /// `DriveManifest/@Version`, e.g. `2014-11-01` or `2011-10-01`; absent in some real files (§7).
    pub version: Option<String>,
    /// The single `<Drive>` element.
    pub drive: Drive,
}

/// The `<Drive>` element: the drive's identity, its credential and its blob lists (§1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    /// `DriveId`: the drive's hardware serial number, as printed on its label.
    pub drive_id: String,
    /// `StorageAccountKey` or `ContainerSas`: present on import, omitted on export.
    pub credential: Option<Credential>,
    /// `ClientCreator`: free text naming the writer, not interpreted.
    pub client_creator: Option<String>,
    /// The `BlobList` elements in document order.
    pub blob_lists: Vec<BlobList>,
    /// Byte offset of the `<Drive>` start tag when parsed; not part of equality.
    #[serde(skip)]
    pub source_offset: SourceOffset,
}

/// The credential a manifest carries for import (§1.3: exactly one of the two elements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Credential {
    /// `StorageAccountKey`: the Base64 account key.
    StorageAccountKey(Secret),
    /// `ContainerSas`: in the tool's form `<container>?<sas>`.
    ContainerSas(Secret),
}

impl Credential {
    /// The element name this credential is written as (`StorageAccountKey` or `ContainerSas`).
    pub fn element_name(&self) -> &'static str {
        match self {
            Credential::StorageAccountKey(_) => "StorageAccountKey",
            Credential::ContainerSas(_) => "ContainerSas",
        }
    }

    /// The secret text, whichever kind it is.
    pub fn secret(&self) -> &Secret {
        match self {
            Credential::StorageAccountKey(s) | Credential::ContainerSas(s) => s,
        }
    }
}

/// A secret string (an account key or a SAS) that prints as `<redacted>`.
///
/// `Debug`, `Display` and `Serialize` all write `<redacted>`; the only way to the text is
/// [`Secret::expose`], so a secret cannot reach a log or a JSON report by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What every redacted form of a [`Secret`] prints.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    /// Wrap a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text itself; call only where it is sent to storage or written back to a manifest.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// A byte offset into the source document, kept for error reports only.
///
/// Two `SourceOffset`s always compare equal, so a parsed model equals the same model built in
/// memory (which has `SourceOffset(None)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOffset(pub Option<u64>);

impl PartialEq for SourceOffset {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for SourceOffset {}

/// One `<BlobList>`: blobs that share default metadata and properties (§1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobList {
    /// `BlobList/@Id`, written by the tool (e.g. `session#1-0`).
    pub id: Option<String>,
    /// `BlobList/MetadataPath`: the list's default metadata file (import only).
    pub metadata_path: Option<HashedPath>,
    /// `BlobList/PropertiesPath`: the list's default properties file (import only).
    pub properties_path: Option<HashedPath>,
    /// The `Blob` elements in document order.
    pub blobs: Vec<Blob>,
    /// Byte offset of the `<BlobList>` start tag when parsed; not part of equality.
    #[serde(skip)]
    pub source_offset: SourceOffset,
}

/// A drive-relative file path with the MD5 of the file (`MetadataPath` and `PropertiesPath`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashedPath {
    /// The raw path text, relative to the drive root (checked by [`DriveManifest::validate`]).
    pub path: String,
    /// `@Hash`: MD5 of the file, Base16 in the document.
    pub hash: Md5Digest,
}

impl HashedPath {
    /// The path as a [`DrivePath`] that cannot leave the drive root.
    ///
    /// # Errors
    /// The [`PathError`] of [`DrivePath::parse`].
    pub fn drive_path(&self) -> Result<DrivePath, PathError> {
        DrivePath::parse(&self.path)
    }
}

/// One `<Blob>`: a file on the drive and the blob it becomes (§1.2, §1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// `BlobPath`: `container/name`, raw (see [`Blob::blob_path`]).
    pub blob_path: String,
    /// `FilePath`: the drive-relative file, raw (see [`Blob::drive_path`]).
    pub file_path: String,
    /// `ClientData`: customer comments, ignored by the service.
    pub client_data: Option<String>,
    /// `Snapshot`: export only, the snapshot id (a DateTime) of an exported snapshot.
    pub snapshot: Option<String>,
    /// `Length`: the blob's total size in bytes.
    pub length: u64,
    /// `ImportDisposition`: what to do if the blob exists; absent means [`ImportDisposition::Rename`].
    pub import_disposition: Option<ImportDisposition>,
    /// `PageRangeList`: present for a page blob.
    pub page_range_list: Option<Vec<PageRange>>,
    /// `BlockList`: present for a block blob.
    pub block_list: Option<Vec<Block>>,
    /// `MetadataPath`: the blob's own metadata file, overriding the list default on import.
    pub metadata_path: Option<HashedPath>,
    /// `PropertiesPath`: the blob's own properties file, overriding the list default on import.
    pub properties_path: Option<HashedPath>,
    /// Byte offset of the `<Blob>` start tag when parsed; not part of equality.
    #[serde(skip)]
    pub source_offset: SourceOffset,
}

impl Blob {
    /// True if the blob has a `PageRangeList` (a page blob); false for a block blob.
    pub fn is_page_blob(&self) -> bool {
        self.page_range_list.is_some()
    }

    /// The disposition in force: the element's value, or [`ImportDisposition::Rename`] when absent
    /// (§1.3).
    pub fn effective_disposition(&self) -> ImportDisposition {
        self.import_disposition.unwrap_or_default()
    }

    /// `FilePath` as a [`DrivePath`] that cannot leave the drive root.
    ///
    /// # Errors
    /// The [`PathError`] of [`DrivePath::parse`]; the import reports it as `FileNameInvalid`, or
    /// `FileNameTooLong` when [`PathError::is_too_long`].
    pub fn drive_path(&self) -> Result<DrivePath, PathError> {
        DrivePath::parse(&self.file_path)
    }

    /// `BlobPath` split into a validated container and blob name.
    ///
    /// # Errors
    /// The [`NameError`] of [`BlobPath::parse`].
    pub fn blob_path(&self) -> Result<BlobPath, NameError> {
        BlobPath::parse(&self.blob_path)
    }
}

/// One `<PageRange>` of a page blob: the same byte range in the file and in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageRange {
    /// `@Offset` in bytes; a multiple of 512.
    pub offset: u64,
    /// `@Length` in bytes; a multiple of 512, at most 4 MiB.
    pub length: u64,
    /// `@Hash`: MD5 of the range's bytes.
    pub hash: Md5Digest,
}

/// One `<Block>` of a block blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    /// `@Offset` in bytes into the file.
    pub offset: u64,
    /// `@Length` in bytes; at most [`Limits::max_block_bytes`].
    pub length: u64,
    /// `@Id`: the Base64 block id for Put Block, if the manifest names it (tool form:
    /// `MD5/<base64 md5>`, §1.5).
    pub id: Option<String>,
    /// `@Hash`: MD5 of the block's bytes.
    pub hash: Md5Digest,
}

/// `Blob/ImportDisposition`: what an import does when the blob already exists (§1.3, §1.4).
///
/// The text values are case-sensitive: `rename`, `no-overwrite`, `overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum ImportDisposition {
    /// `rename`: import under a new name (`name (2).ext`, §1.4). The default when absent.
    #[default]
    #[serde(rename = "rename")]
    Rename,
    /// `no-overwrite`: leave the existing blob and skip this one.
    #[serde(rename = "no-overwrite")]
    NoOverwrite,
    /// `overwrite`: replace the existing blob.
    #[serde(rename = "overwrite")]
    Overwrite,
}

impl ImportDisposition {
    /// The manifest text of this value.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportDisposition::Rename => "rename",
            ImportDisposition::NoOverwrite => "no-overwrite",
            ImportDisposition::Overwrite => "overwrite",
        }
    }

    /// Parse the manifest text, case-sensitively; `None` for anything else.
    pub fn from_manifest_str(text: &str) -> Option<Self> {
        match text {
            "rename" => Some(ImportDisposition::Rename),
            "no-overwrite" => Some(ImportDisposition::NoOverwrite),
            "overwrite" => Some(ImportDisposition::Overwrite),
            _ => None,
        }
    }
}

impl fmt::Display for ImportDisposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document that cannot be read as a drive manifest at all.
///
/// Semantic rule breaks (bad paths, block layout, limits) are not errors here: the parser keeps
/// them in the model and [`DriveManifest::validate`] reports them. Every variant carries the byte
/// offset of the element at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not well-formed XML.
    #[error("drive manifest is not well-formed XML")]
    Xml(#[from] XmlError),
    /// The root element is not `<DriveManifest>`.
    #[error("root element <{found}> at byte {offset} is not <DriveManifest>")]
    WrongRoot {
        /// The root element's name.
        found: String,
        /// Byte offset of the root start tag.
        offset: u64,
    },
    /// A required element is missing.
    #[error("<{parent}> at byte {offset} has no <{element}>")]
    MissingElement {
        /// The missing element's name.
        element: &'static str,
        /// The element that should contain it.
        parent: &'static str,
        /// Byte offset of the parent's start tag.
        offset: u64,
    },
    /// A required attribute is missing.
    #[error("<{element}> at byte {offset} has no {attribute} attribute")]
    MissingAttribute {
        /// The attribute's name.
        attribute: &'static str,
        /// The element that should carry it.
        element: &'static str,
        /// Byte offset of the element's start tag.
        offset: u64,
    },
    /// An element that may appear once appears again.
    #[error("<{element}> at byte {offset} appears more than once in <{parent}>")]
    DuplicateElement {
        /// The repeated element's name.
        element: &'static str,
        /// Its parent element's name.
        parent: &'static str,
        /// Byte offset of the second occurrence.
        offset: u64,
    },
    /// Both `StorageAccountKey` and `ContainerSas` are present (§1.3 allows exactly one).
    #[error(
        "<Drive> has both <StorageAccountKey> and <ContainerSas> (the second at byte {offset})"
    )]
    ConflictingCredentials {
        /// Byte offset of the second credential element.
        offset: u64,
    },
    /// A number that is not a plain decimal `u64` (digits only, surrounding spaces allowed).
    #[error("<{element}>{} at byte {offset}: {value:?} is not a non-negative decimal integer", attribute_suffix(.attribute))]
    BadInteger {
        /// The element holding the number.
        element: &'static str,
        /// The attribute holding it, or `None` for the element's text.
        attribute: Option<&'static str>,
        /// The rejected text.
        value: String,
        /// Byte offset of the element's start tag.
        offset: u64,
    },
    /// A `Hash` attribute that is not a 32-digit hexadecimal MD5.
    #[error("<{element}> at byte {offset} has a bad Hash")]
    BadHash {
        /// The element carrying the hash.
        element: &'static str,
        /// Byte offset of the element's start tag.
        offset: u64,
        /// What is wrong with the text.
        #[source]
        source: crate::digest::DigestError,
    },
    /// An `ImportDisposition` other than `rename`, `no-overwrite` or `overwrite`.
    #[error(
        "<ImportDisposition> at byte {offset}: {value:?} is not rename, no-overwrite or overwrite"
    )]
    BadDisposition {
        /// The rejected text.
        value: String,
        /// Byte offset of the element's start tag.
        offset: u64,
    },
}

fn attribute_suffix(attribute: &Option<&'static str>) -> String {
    attribute
        .map(|a| format!(" attribute {a}"))
        .unwrap_or_default()
}

impl ManifestError {
    /// Byte offset in the document of the fault.
    pub fn offset(&self) -> u64 {
        match self {
            ManifestError::Xml(e) => e.offset,
            ManifestError::WrongRoot { offset, .. }
            | ManifestError::MissingElement { offset, .. }
            | ManifestError::MissingAttribute { offset, .. }
            | ManifestError::DuplicateElement { offset, .. }
            | ManifestError::ConflictingCredentials { offset }
            | ManifestError::BadInteger { offset, .. }
            | ManifestError::BadHash { offset, .. }
            | ManifestError::BadDisposition { offset, .. } => *offset,
        }
    }
}

impl DriveManifest {
    /// Parse a drive manifest document (UTF-8 XML).
    ///
    /// Tolerant where real files vary (azure-import-export.md §1.2, §7): drive-level elements in any
    /// order, a missing `Version`, spaces around numbers and hashes, hex of either case, unknown
    /// elements and attributes ignored. Strings (paths, names, `ClientData`) are kept exactly as
    /// written, so that [`DriveManifest::validate`] can report a bad one with its location.
    ///
    /// ```
    /// use drivecopy::manifest::DriveManifest;
    /// let doc = br#"<DriveManifest Version="2014-11-01"><Drive><DriveId>9WM35C3U</DriveId>
    ///   <BlobList><Blob><BlobPath>pictures/a.jpg</BlobPath><FilePath>\a.jpg</FilePath>
    ///   <Length>5</Length><BlockList><Block Offset="0" Length="5"
    ///   Hash="5D41402ABC4B2A76B9719D911017C592"/></BlockList></Blob></BlobList></Drive></DriveManifest>"#;
    /// let m = DriveManifest::parse(doc).unwrap();
    /// assert_eq!(m.drive.blob_lists[0].blobs[0].length, 5);
    /// ```
    ///
    /// # Errors
    /// [`ManifestError`] with the byte offset of the fault: malformed XML, a root other than
    /// `DriveManifest`, a missing `Drive`, `DriveId`, `BlobPath`, `FilePath`, `Length`, `Offset`,
    /// `Length` or `Hash`; a repeated single element; both credentials; a number that is not a
    /// plain decimal `u64`; a hash that is not 32 hex digits; an unknown `ImportDisposition`.
    pub fn parse(bytes: &[u8]) -> Result<DriveManifest, ManifestError> {
        parse::parse(bytes)
    }

    /// Write the canonical XML form: the element order of the Azure samples (§1.2, `ClientCreator`
    /// right after the credential), uppercase hex, two-space indent, `\r\n` line ends.
    ///
    /// Deterministic; `DriveManifest::parse(m.to_xml().as_bytes()) == Ok(m)` for every model whose
    /// strings contain no NUL, the one character XML 1.0 cannot carry (a parsed model never has
    /// one). Control characters, line breaks and markup characters are escaped.
    /// The output contains the credential in clear: it is a manifest, not a report.
    pub fn to_xml(&self) -> String {
        write::to_xml(self)
    }

    /// Check every rule of azure-import-export.md §1.3 and return every problem found, in document
    /// order; an empty list means the manifest is valid under `limits`.
    pub fn validate(&self, limits: &Limits) -> Vec<Problem> {
        validate::validate(self, limits)
    }

    /// Every blob with its `(list index, blob index)`, in document order.
    pub fn blobs(&self) -> impl Iterator<Item = ((usize, usize), &Blob)> + '_ {
        self.drive
            .blob_lists
            .iter()
            .enumerate()
            .flat_map(|(li, list)| {
                list.blobs
                    .iter()
                    .enumerate()
                    .map(move |(bi, b)| ((li, bi), b))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credential::StorageAccountKey(Secret::new("c2VjcmV0a2V5"));
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        assert_eq!(c.secret().to_string(), REDACTED);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"storageAccountKey":"<redacted>"}"#);
        assert_eq!(c.secret().expose(), "c2VjcmV0a2V5");
    }

    #[test]
    fn disposition_text_is_case_sensitive_and_defaults_to_rename() {
        for d in [
            ImportDisposition::Rename,
            ImportDisposition::NoOverwrite,
            ImportDisposition::Overwrite,
        ] {
            assert_eq!(ImportDisposition::from_manifest_str(d.as_str()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.as_str())
            );
        }
        assert_eq!(ImportDisposition::from_manifest_str("Overwrite"), None);
        assert_eq!(ImportDisposition::default(), ImportDisposition::Rename);
    }

    #[test]
    fn source_offsets_do_not_affect_equality() {
        assert_eq!(SourceOffset(Some(3)), SourceOffset(None));
    }
}
