//! Metadata (`<Metadata>`) and properties (`<Properties>`) files.
//!
//! Source: azure-import-export.md §3 (AD: articles/storage/common/storage-import-export-file-format-metadata-and-properties.md).
//! An import drive carries them as inputs (a global file per BlobList, a per-blob file that
//! overrides it); an export drive receives them as outputs. Both start with
//! `<?xml version="1.0" encoding="UTF-8"?>`.
//!
//! This module owns the two formats and their rules: metadata names follow C# identifier rules
//! (`[A-Za-z_][A-Za-z0-9_]*`, AzCopy's check), names are unique ignoring case (Azure stores them
//! case-insensitively), and names plus values total at most 8 KiB (peers.md §6). It does no I/O
//! and does not hash the files (the drive log's `Hash` is over the file bytes, computed by the
//! caller).

mod properties;

pub use properties::Properties;

use crate::digest::DigestError;
use crate::xml::{self, XmlWriter};
use crate::XmlError;

/// Most bytes of metadata per blob: names plus values, UTF-8 (peers.md §6).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// A metadata or properties file that cannot be read, or a value that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The document is not well-formed XML.
    #[error("metadata or properties file is not well-formed XML")]
    Xml(#[from] XmlError),
    /// The document has the published grammar's typo `<Content-Length>…<Content-Length>`
    /// (azure-import-export.md §7 item 5), which is not well-formed XML.
    #[error("<Content-Length> at byte {offset} is closed with <Content-Length> instead of </Content-Length>")]
    ContentLengthNotClosed {
        /// Offset of the first `<Content-Length>`.
        offset: u64,
        /// The XML error.
        #[source]
        source: XmlError,
    },
    /// The root element is not the expected one.
    #[error("root element at byte {offset} is <{found}>, expected <{expected}>")]
    WrongRoot {
        /// The root element's name.
        found: String,
        /// `Metadata` or `Properties`.
        expected: &'static str,
        /// Its offset.
        offset: u64,
    },
    /// A metadata name that is not a C# identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    #[error("metadata name {name:?} is not a valid identifier")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Offset of its element, when read from a file.
        offset: Option<u64>,
    },
    /// A metadata name given twice (names are case-insensitive).
    #[error("metadata name {name:?} appears twice")]
    DuplicateName {
        /// The second spelling of the name.
        name: String,
        /// Offset of its element, when read from a file.
        offset: Option<u64>,
    },
    /// Names plus values exceed [`MAX_METADATA_BYTES`].
    #[error("metadata totals {size_bytes} bytes, over the {MAX_METADATA_BYTES}-byte limit, at name {name:?}")]
    TooLarge {
        /// The total, in bytes, once `name` is added.
        size_bytes: usize,
        /// The name whose entry crossed the limit.
        name: String,
    },
    /// A metadata or property element that holds child elements instead of text.
    #[error("<{name}> at byte {offset} has child elements; a value must be text")]
    NotText {
        /// The element.
        name: String,
        /// Its offset.
        offset: u64,
    },
    /// A property the format does not define.
    #[error("unknown property <{name}> at byte {offset}")]
    UnknownProperty {
        /// The element name.
        name: String,
        /// Its offset.
        offset: u64,
    },
    /// A property given twice.
    #[error("property <{name}> at byte {offset} appears twice")]
    DuplicateProperty {
        /// The element name.
        name: String,
        /// Offset of the second one.
        offset: u64,
    },
    /// `Content-Length` that is not a non-negative integer.
    #[error("Content-Length {value:?} at byte {offset} is not a non-negative integer")]
    BadContentLength {
        /// The rejected text.
        value: String,
        /// Its offset.
        offset: u64,
    },
    /// `Content-MD5` that is not Base64 of 16 bytes.
    #[error("Content-MD5 at byte {offset} is not a Base64 MD5")]
    BadContentMd5 {
        /// Its offset.
        offset: u64,
        /// The digest error.
        #[source]
        source: DigestError,
    },
}

/// A blob's metadata: names and values in document order (azure-import-export.md §3).
///
/// Every value satisfies the module's rules: valid, case-insensitively unique names and at most
/// [`MAX_METADATA_BYTES`] in total. Values are stored trimmed of surrounding whitespace when
/// parsed (HTTP header values lose it anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
    size_bytes: usize,
}

/// True when `name` is a C# identifier as AzCopy checks it: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_metadata_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `name` = `value`.
    ///
    /// # Errors
    /// [`MetadataError::InvalidName`], [`MetadataError::DuplicateName`] (ignoring case) or
    /// [`MetadataError::TooLarge`]; the metadata is unchanged on error.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), MetadataError> {
        self.insert_at(name.into(), value.into(), None)
    }

    fn insert_at(
        &mut self,
        name: String,
        value: String,
        offset: Option<u64>,
    ) -> Result<(), MetadataError> {
        if !is_valid_metadata_name(&name) {
            return Err(MetadataError::InvalidName { name, offset });
        }
        if self
            .entries
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            return Err(MetadataError::DuplicateName { name, offset });
        }
        let size_bytes = self.size_bytes + name.len() + value.len();
        if size_bytes > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge { size_bytes, name });
        }
        self.size_bytes = size_bytes;
        self.entries.push((name, value));
        Ok(())
    }

    /// The value of `name`, compared ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The entries in order, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names plus values, in bytes (the quantity [`MAX_METADATA_BYTES`] limits).
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Parse a metadata file: a `<Metadata>` root whose child elements are names and whose texts
    /// are values.
    ///
    /// # Errors
    /// [`MetadataError::Xml`], [`MetadataError::WrongRoot`], [`MetadataError::NotText`] for a
    /// child with children, and the [`Metadata::insert`] errors with the element's offset.
    pub fn parse(input: &[u8]) -> Result<Metadata, MetadataError> {
        let root = parse_root(input, "Metadata")?;
        let mut m = Metadata::new();
        for child in root.children {
            if !child.children.is_empty() {
                return Err(MetadataError::NotText {
                    name: child.name,
                    offset: child.offset,
                });
            }
            let value = child.text.trim().to_string();
            m.insert_at(child.name, value, Some(child.offset))?;
        }
        Ok(m)
    }

    /// The metadata file, with an XML declaration, `\r\n` line ends and entries in order.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        if self.entries.is_empty() {
            w.empty("Metadata", &[]);
        } else {
            w.start("Metadata", &[]);
            for (n, v) in &self.entries {
                w.leaf(n, &[], v);
            }
            w.end("Metadata");
        }
        w.finish()
    }
}

/// Parse `input` and check its root is `expected`; recognise the §7 item 5 typo.
fn parse_root(input: &[u8], expected: &'static str) -> Result<xml::Element, MetadataError> {
    let root = xml::parse(input).map_err(|source| {
        const OPEN: &[u8] = b"<Content-Length>";
        const CLOSE: &[u8] = b"</Content-Length>";
        let find = |needle: &[u8]| input.windows(needle.len()).position(|w| w == needle);
        match (find(OPEN), find(CLOSE)) {
            (Some(at), None) => MetadataError::ContentLengthNotClosed {
                offset: at as u64,
                source,
            },
            _ => MetadataError::Xml(source),
        }
    })?;
    if root.name != expected {
        return Err(MetadataError::WrongRoot {
            found: root.name,
            expected,
            offset: root.offset,
        });
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_identifier_rules() {
        for ok in ["a", "_", "UploadMethod", "x_1", "_9"] {
            assert!(is_valid_metadata_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b", "Content-Type"] {
            assert!(!is_valid_metadata_name(bad), "{bad}");
        }
    }

    #[test]
    fn parse_and_write() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Metadata>\n  <UploadMethod>Windows Azure Import/Export service</UploadMethod>\n  <Empty/>\n  <a_b> x &amp; y </a_b>\n</Metadata>";
        let m = Metadata::parse(doc.as_bytes()).unwrap();
        let got: Vec<_> = m.iter().collect();
        assert_eq!(
            got,
            [
                ("UploadMethod", "Windows Azure Import/Export service"),
                ("Empty", ""),
                ("a_b", "x & y")
            ]
        );
        assert_eq!(
            m.get("uploadmethod"),
            Some("Windows Azure Import/Export service")
        );
        assert_eq!(
            m.size_bytes(),
            "UploadMethod".len() + 35 + "Empty".len() + "a_b".len() + 5
        );
        let text = m.to_xml();
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Metadata>\r\n"),
            "{text}"
        );
        assert!(text.contains("  <a_b>x &amp; y</a_b>\r\n"), "{text}");
        assert_eq!(Metadata::parse(text.as_bytes()).unwrap(), m);
        assert_eq!(
            Metadata::parse(Metadata::new().to_xml().as_bytes()).unwrap(),
            Metadata::new()
        );
    }

    #[test]
    fn rule_violations_name_the_entry() {
        let doc = "<Metadata><Good>1</Good><Bad-Name>2</Bad-Name></Metadata>";
        let at = doc.find("<Bad-Name>").unwrap() as u64;
        assert_eq!(
            Metadata::parse(doc.as_bytes()),
            Err(MetadataError::InvalidName {
                name: "Bad-Name".into(),
                offset: Some(at)
            })
        );
        let doc = "<Metadata><Name>1</Name><NAME>2</NAME></Metadata>";
        assert!(matches!(
            Metadata::parse(doc.as_bytes()),
            Err(MetadataError::DuplicateName { name, .. }) if name == "NAME"
        ));
        let doc = "<Metadata><A><B/></A></Metadata>";
        assert!(matches!(
            Metadata::parse(doc.as_bytes()),
            Err(MetadataError::NotText { .. })
        ));
        assert!(matches!(
            Metadata::parse(b"<Properties/>"),
            Err(MetadataError::WrongRoot { .. })
        ));

        let mut m = Metadata::new();
        m.insert("a", "x".repeat(MAX_METADATA_BYTES - 2)).unwrap();
        m.insert("b", "").unwrap();
        assert_eq!(m.size_bytes(), MAX_METADATA_BYTES);
        assert_eq!(
            m.insert("c", ""),
            Err(MetadataError::TooLarge {
                size_bytes: MAX_METADATA_BYTES + 1,
                name: "c".into()
            })
        );
        assert_eq!(m.len(), 2);
    }
}
