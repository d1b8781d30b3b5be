//! The export blob list (`<BlobList>` with `BlobPath` and `BlobPathPrefix` entries).
//!
//! Source: azure-import-export.md §4.1, "Export" (AD: …/storage-import-export-data-from-blobs.md,
//! …/storage-import-export-tool-previewing-drive-usage-export-v1.md). The same XML is the
//! `blobListBlobPath` blob of an export job and the PreviewExport `/ExportBlobListFile`:
//! - `BlobPath`: an exact blob, `container/blob`, no leading `/` (`$root/logo.bmp`);
//! - `BlobPathPrefix`: starts with `/` and includes the container: `/` is every blob, `/book`
//!   every container whose name starts with `book`, `/music/` the container `music`,
//!   `/music/love` the blobs in `music` whose names start with `love`.
//!
//! This module owns parsing, writing and validating the list, and the meaning of each entry
//! ([`Selector`], [`Selector::matches`]). It does not list the account: resolving selectors
//! against real blobs is the export pipeline's job. Document order and duplicates are kept
//! (PreviewExport reports duplicates rather than rejecting them).

use std::fmt;

use crate::names::{
    validate_blob_name, validate_container_name, BlobPath, NameError, ROOT_CONTAINER,
};
use crate::xml::{self, XmlWriter};
use crate::XmlError;

/// Longest container name, in characters (names.rs rules: 3–63).
const MAX_CONTAINER_CHARS: usize = 63;

/// One blob-list entry, typed by what it selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `BlobPathPrefix` `/`: every blob in the account.
    All,
    /// `BlobPathPrefix` `/book`: every blob in every container whose name starts with the prefix.
    ContainerPrefix(String),
    /// `BlobPathPrefix` `/music/`: every blob in the container.
    Container(String),
    /// `BlobPathPrefix` `/music/love`: the blobs in `container` whose names start with `prefix`.
    BlobPrefix {
        /// The container.
        container: String,
        /// The blob-name prefix (not empty).
        prefix: String,
    },
    /// `BlobPath` `pictures/animals/koala.jpg`: one blob.
    Exact(BlobPath),
}

/// A blob-list entry whose text breaks the §4.1 rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A `BlobPath` that starts with `/` (that form is for prefixes).
    #[error("blob path {path:?} starts with '/'; exact paths are written container/blob")]
    LeadingSlash {
        /// The rejected path.
        path: String,
    },
    /// A `BlobPath` that is not a valid `container/blob`.
    #[error("blob path {path:?} is not a valid container/blob")]
    BadPath {
        /// The rejected path.
        path: String,
        /// The name rule it breaks.
        #[source]
        source: NameError,
    },
    /// A `BlobPathPrefix` that does not start with `/`.
    #[error("blob path prefix {prefix:?} does not start with '/'")]
    NoLeadingSlash {
        /// The rejected prefix.
        prefix: String,
    },
    /// A `BlobPathPrefix` whose container part or blob-name part breaks the name rules.
    #[error("blob path prefix {prefix:?} is invalid: {reason}")]
    BadPrefix {
        /// The rejected prefix.
        prefix: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

impl Selector {
    /// Read the text of a `BlobPath` element (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`SelectorError::LeadingSlash`] or [`SelectorError::BadPath`].
    pub fn from_blob_path(text: &str) -> Result<Selector, SelectorError> {
        let t = text.trim();
        if t.starts_with('/') {
            return Err(SelectorError::LeadingSlash {
                path: t.to_string(),
            });
        }
        BlobPath::parse(t)
            .map(Selector::Exact)
            .map_err(|source| SelectorError::BadPath {
                path: t.to_string(),
                source,
            })
    }

    /// Read the text of a `BlobPathPrefix` element (surrounding whitespace ignored).
    ///
    /// A container prefix (`/book`) must be a possible start of a container name: lowercase
    /// letters, digits and single inner hyphens, at most 63 characters, or a start of `$root`.
    ///
    /// # Errors
    /// [`SelectorError::NoLeadingSlash`] or [`SelectorError::BadPrefix`].
    pub fn from_blob_path_prefix(text: &str) -> Result<Selector, SelectorError> {
        let t = text.trim();
        let Some(rest) = t.strip_prefix('/') else {
            return Err(SelectorError::NoLeadingSlash {
                prefix: t.to_string(),
            });
        };
        let bad = |reason| SelectorError::BadPrefix {
            prefix: t.to_string(),
            reason,
        };
        match rest.split_once('/') {
            None if rest.is_empty() => Ok(Selector::All),
            None => {
                check_container_prefix(rest).map_err(bad)?;
                Ok(Selector::ContainerPrefix(rest.to_string()))
            }
            Some((container, name_prefix)) => {
                validate_container_name(container)
                    .map_err(|_| bad("the container name is invalid"))?;
                if name_prefix.is_empty() {
                    return Ok(Selector::Container(container.to_string()));
                }
                validate_blob_name(name_prefix)
                    .map_err(|_| bad("the blob-name prefix is invalid"))?;
                Ok(Selector::BlobPrefix {
                    container: container.to_string(),
                    prefix: name_prefix.to_string(),
                })
            }
        }
    }

    /// True for an exact `BlobPath`, false for any prefix.
    pub fn is_exact(&self) -> bool {
        matches!(self, Selector::Exact(_))
    }

    /// True when this entry selects `blob`.
    pub fn matches(&self, blob: &BlobPath) -> bool {
        match self {
            Selector::All => true,
            Selector::ContainerPrefix(p) => blob.container.starts_with(p.as_str()),
            Selector::Container(c) => blob.container == *c,
            Selector::BlobPrefix { container, prefix } => {
                blob.container == *container && blob.name.starts_with(prefix.as_str())
            }
            Selector::Exact(p) => p == blob,
        }
    }

    /// The element this entry is written as: `BlobPath` or `BlobPathPrefix`.
    pub fn element_name(&self) -> &'static str {
        if self.is_exact() {
            "BlobPath"
        } else {
            "BlobPathPrefix"
        }
    }
}

/// A container prefix is a possible start of a valid container name.
fn check_container_prefix(p: &str) -> Result<(), &'static str> {
    if ROOT_CONTAINER.starts_with(p) {
        return Ok(());
    }
    if p.len() > MAX_CONTAINER_CHARS {
        return Err("the container prefix is longer than 63 characters");
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("the container prefix has a character other than a-z, 0-9 and '-'");
    }
    if p.starts_with('-') || p.contains("--") {
        return Err("the container prefix starts with '-' or has '--'");
    }
    Ok(())
}

impl fmt::Display for Selector {
    /// The element text: `container/blob` for an exact path, `/…` for a prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("/"),
            Selector::ContainerPrefix(p) => write!(f, "/{p}"),
            Selector::Container(c) => write!(f, "/{c}/"),
            Selector::BlobPrefix { container, prefix } => write!(f, "/{container}/{prefix}"),
            Selector::Exact(p) => write!(f, "{p}"),
        }
    }
}

/// A blob list that cannot be read; the service reports these as `BlobListFormatInvalid`
/// (azure-import-export.md §2.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobListError {
    /// The document is not well-formed XML.
    #[error("blob list is not well-formed XML")]
    Xml(#[from] XmlError),
    /// The root element is not `BlobList`.
    #[error("root element at byte {offset} is <{found}>, expected <BlobList>")]
    WrongRoot {
        /// The root element's name.
        found: String,
        /// Its offset.
        offset: u64,
    },
    /// A child other than `BlobPath` or `BlobPathPrefix`, or one with child elements.
    #[error("unexpected element <{name}> at byte {offset} in <BlobList>")]
    UnexpectedElement {
        /// The element name.
        name: String,
        /// Its offset.
        offset: u64,
    },
    /// An entry that breaks the path rules.
    #[error("invalid <{element}> at byte {offset}")]
    Entry {
        /// `BlobPath` or `BlobPathPrefix`.
        element: &'static str,
        /// Its offset.
        offset: u64,
        /// The rule it breaks.
        #[source]
        source: SelectorError,
    },
    /// A list with no entries, which would export nothing.
    #[error("blob list has no BlobPath or BlobPathPrefix")]
    Empty,
}

/// An export blob list: entries in document order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobList {
    /// The entries.
    pub entries: Vec<Selector>,
}

impl BlobList {
    /// Parse a `<BlobList>` document.
    ///
    /// # Examples
    /// ```
    /// use drivecopy::bloblist::{BlobList, Selector};
    /// let list = BlobList::parse(b"<BlobList><BlobPathPrefix>/vhds/</BlobPathPrefix></BlobList>")?;
    /// assert_eq!(list.entries, [Selector::Container("vhds".into())]);
    /// # Ok::<(), drivecopy::bloblist::BlobListError>(())
    /// ```
    ///
    /// # Errors
    /// [`BlobListError`]: malformed XML, a wrong root, an unexpected element, an entry that
    /// breaks the path rules (with its offset), or no entries at all.
    pub fn parse(input: &[u8]) -> Result<BlobList, BlobListError> {
        let root = xml::parse(input)?;
        if root.name != "BlobList" {
            return Err(BlobListError::WrongRoot {
                found: root.name,
                offset: root.offset,
            });
        }
        let mut entries = Vec::with_capacity(root.children.len());
        for child in root.children {
            let offset = child.offset;
            let (element, parsed) = match child.name.as_str() {
                "BlobPath" if child.children.is_empty() => {
                    ("BlobPath", Selector::from_blob_path(&child.text))
                }
                "BlobPathPrefix" if child.children.is_empty() => (
                    "BlobPathPrefix",
                    Selector::from_blob_path_prefix(&child.text),
                ),
                _ => {
                    return Err(BlobListError::UnexpectedElement {
                        name: child.name,
                        offset,
                    })
                }
            };
            entries.push(parsed.map_err(|source| BlobListError::Entry {
                element,
                offset,
                source,
            })?);
        }
        if entries.is_empty() {
            return Err(BlobListError::Empty);
        }
        Ok(BlobList { entries })
    }

    /// The document: XML declaration, `\r\n` line ends, one element per entry in order.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.start("BlobList", &[]);
        for e in &self.entries {
            w.leaf(e.element_name(), &[], &e.to_string());
        }
        w.end("BlobList");
        w.finish()
    }

    /// True when any entry selects `blob`.
    pub fn matches(&self, blob: &BlobPath) -> bool {
        self.entries.iter().any(|e| e.matches(blob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(s: &str) -> BlobPath {
        BlobPath::parse(s).unwrap()
    }

    #[test]
    fn prefix_forms_from_the_reference() {
        let check = |text: &str, expected: Selector| {
            let got = Selector::from_blob_path_prefix(text).unwrap();
            assert_eq!(got, expected, "{text}");
            assert_eq!(got.to_string(), text.trim());
        };
        check("/", Selector::All);
        check("/book", Selector::ContainerPrefix("book".into()));
        check("/music/", Selector::Container("music".into()));
        check(
            "/music/love",
            Selector::BlobPrefix {
                container: "music".into(),
                prefix: "love".into(),
            },
        );
        check("/$root/", Selector::Container("$root".into()));
        check("/$ro", Selector::ContainerPrefix("$ro".into()));
        check(" /vhds/ ", Selector::Container("vhds".into()));
        for bad in [
            "music/",
            "",
            "/Music",
            "/a_b",
            "/-a",
            "/a--",
            "/mu/x",
            "/music/a\u{1}",
            "/$logs/",
        ] {
            assert!(
                Selector::from_blob_path_prefix(bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn exact_paths() {
        assert_eq!(
            Selector::from_blob_path("$root/logo.bmp"),
            Ok(Selector::Exact(bp("$root/logo.bmp")))
        );
        assert_eq!(
            Selector::from_blob_path("videos/story.mp4")
                .unwrap()
                .to_string(),
            "videos/story.mp4"
        );
        assert!(matches!(
            Selector::from_blob_path("/videos/story.mp4"),
            Err(SelectorError::LeadingSlash { .. })
        ));
        assert!(matches!(
            Selector::from_blob_path("videos"),
            Err(SelectorError::BadPath { .. })
        ));
        assert!(matches!(
            Selector::from_blob_path("Videos/a"),
            Err(SelectorError::BadPath { .. })
        ));
    }

    #[test]
    fn matching() {
        let koala = bp("music/love-song.mp3");
        let sel = |t: &str| Selector::from_blob_path_prefix(t).unwrap();
        assert!(sel("/").matches(&koala));
        assert!(sel("/mus").matches(&koala));
        assert!(!sel("/book").matches(&koala));
        assert!(sel("/music/").matches(&koala));
        assert!(!sel("/musicals/").matches(&koala));
        assert!(sel("/music/love").matches(&koala));
        assert!(!sel("/music/hate").matches(&koala));
        assert!(Selector::Exact(koala.clone()).matches(&koala));
        assert!(!Selector::Exact(bp("music/love")).matches(&koala));
    }

    #[test]
    fn document_errors_are_located() {
        let doc =
            "<BlobList><BlobPath>abc/b</BlobPath><BlobPathPrefix>music/</BlobPathPrefix></BlobList>";
        let at = doc.find("<BlobPathPrefix>").unwrap() as u64;
        assert!(matches!(
            BlobList::parse(doc.as_bytes()),
            Err(BlobListError::Entry { element: "BlobPathPrefix", offset, source: SelectorError::NoLeadingSlash { .. } }) if offset == at
        ));
        assert!(matches!(
            BlobList::parse(b"<BlobList><Blob BlobPaths=\"\"/></BlobList>"),
            Err(BlobListError::UnexpectedElement { .. })
        ));
        assert!(matches!(
            BlobList::parse(b"<BlobList><BlobPath><x/></BlobPath></BlobList>"),
            Err(BlobListError::UnexpectedElement { .. })
        ));
        assert_eq!(BlobList::parse(b"<BlobList/>"), Err(BlobListError::Empty));
        assert!(matches!(
            BlobList::parse(b"<Blobs/>"),
            Err(BlobListError::WrongRoot { .. })
        ));
    }

    #[test]
    fn write_keeps_order_and_duplicates() {
        let list = BlobList {
            entries: vec![
                Selector::Container("vhds".into()),
                Selector::Exact(bp("pictures/a&b.jpg")),
                Selector::Container("vhds".into()),
            ],
        };
        let text = list.to_xml();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<BlobList>\r\n  <BlobPathPrefix>/vhds/</BlobPathPrefix>\r\n  \
             <BlobPath>pictures/a&amp;b.jpg</BlobPath>\r\n  <BlobPathPrefix>/vhds/</BlobPathPrefix>\r\n</BlobList>\r\n"
        );
        assert_eq!(BlobList::parse(text.as_bytes()).unwrap(), list);
        assert!(list.matches(&bp("vhds/x.vhd")));
        assert!(!list.matches(&bp("pictures/b.jpg")));
    }
}
