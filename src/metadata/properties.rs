//! The properties file (`<Properties>`), azure-import-export.md §3.
//!
//! The documented set, in the documented order: `Last-Modified`, `Etag`, `Content-Length` (these
//! three on export only), `Content-Type`, `Content-MD5` (Base64), `Content-Encoding`,
//! `Content-Language`, `Cache-Control`. `Content-Disposition` is **not** documented; it is a
//! settable blob property, so this crate reads and writes it as an extension (written last, only
//! when set, so files without it are byte-identical to the documented form). Element names are
//! matched ignoring ASCII case on read (`ETag` is common) and written in the documented spelling.
//! Any other element is an error, so that a misspelt property is not silently dropped.

use super::{parse_root, MetadataError};
use crate::digest::Md5Digest;
use crate::xml::XmlWriter;

/// A blob's properties (azure-import-export.md §3). Text values are stored trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// `Last-Modified` (export only), as written (an HTTP date).
    pub last_modified: Option<String>,
    /// `Etag` (export only), as written.
    pub etag: Option<String>,
    /// `Content-Length` (export only), in bytes.
    pub content_length_bytes: Option<u64>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-MD5`, Base64 in the file.
    pub content_md5: Option<Md5Digest>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`: an extension, not in the documented set.
    pub content_disposition: Option<String>,
}

/// The element names in the documented order (the write order), `Content-Disposition` last.
const NAMES: [&str; 9] = [
    "Last-Modified",
    "Etag",
    "Content-Length",
    "Content-Type",
    "Content-MD5",
    "Content-Encoding",
    "Content-Language",
    "Cache-Control",
    "Content-Disposition",
];

impl Properties {
    /// Parse a properties file.
    ///
    /// # Errors
    /// [`MetadataError::Xml`] (or [`MetadataError::ContentLengthNotClosed`] for the published
    /// grammar's typo, §7 item 5), [`MetadataError::WrongRoot`], and, with the element's
    /// offset, [`MetadataError::UnknownProperty`], [`MetadataError::DuplicateProperty`],
    /// [`MetadataError::NotText`], [`MetadataError::BadContentLength`] and
    /// [`MetadataError::BadContentMd5`].
    pub fn parse(input: &[u8]) -> Result<Properties, MetadataError> {
        let root = parse_root(input, "Properties")?;
        let mut p = Properties::default();
        for child in root.children {
            let offset = child.offset;
            let Some(&name) = NAMES.iter().find(|n| n.eq_ignore_ascii_case(&child.name)) else {
                return Err(MetadataError::UnknownProperty {
                    name: child.name,
                    offset,
                });
            };
            if !child.children.is_empty() {
                return Err(MetadataError::NotText {
                    name: child.name,
                    offset,
                });
            }
            let text = child.text.trim();
            let duplicate = match name {
                "Content-Length" => {
                    let n = parse_length(text).ok_or_else(|| MetadataError::BadContentLength {
                        value: child.text.clone(),
                        offset,
                    })?;
                    set(&mut p.content_length_bytes, n)
                }
                "Content-MD5" => {
                    let d = Md5Digest::from_base64(text)
                        .map_err(|source| MetadataError::BadContentMd5 { offset, source })?;
                    set(&mut p.content_md5, d)
                }
                "Last-Modified" => set(&mut p.last_modified, text.to_string()),
                "Etag" => set(&mut p.etag, text.to_string()),
                "Content-Type" => set(&mut p.content_type, text.to_string()),
                "Content-Encoding" => set(&mut p.content_encoding, text.to_string()),
                "Content-Language" => set(&mut p.content_language, text.to_string()),
                "Cache-Control" => set(&mut p.cache_control, text.to_string()),
                // The one name left: Content-Disposition.
                _ => set(&mut p.content_disposition, text.to_string()),
            };
            if duplicate {
                return Err(MetadataError::DuplicateProperty {
                    name: child.name,
                    offset,
                });
            }
        }
        Ok(p)
    }

    /// The properties file: XML declaration, `\r\n` line ends, the set properties in the
    /// documented order, `Content-Disposition` last.
    pub fn to_xml(&self) -> String {
        let values = self.slots();
        let mut w = XmlWriter::new();
        if values.iter().all(Option::is_none) {
            w.empty("Properties", &[]);
        } else {
            w.start("Properties", &[]);
            for (name, value) in NAMES.iter().zip(&values) {
                if let Some(v) = value {
                    w.leaf(name, &[], v);
                }
            }
            w.end("Properties");
        }
        w.finish()
    }

    /// Every property as text, in [`NAMES`] order.
    fn slots(&self) -> [Option<String>; 9] {
        [
            self.last_modified.clone(),
            self.etag.clone(),
            self.content_length_bytes.map(|n| n.to_string()),
            self.content_type.clone(),
            self.content_md5.map(|d| d.to_base64()),
            self.content_encoding.clone(),
            self.content_language.clone(),
            self.cache_control.clone(),
            self.content_disposition.clone(),
        ]
    }
}

/// Fill an empty slot; returns true (and leaves the slot alone) if it was already filled.
fn set<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return true;
    }
    *slot = Some(value);
    false
}

/// A non-negative decimal integer (no sign, which `u64::from_str` would accept).
fn parse_length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_round_trips_in_documented_order() {
        let p = Properties {
            last_modified: Some("Tue, 18 Sep 2012 23:47:08 GMT".into()),
            etag: Some("\"0x8CF2C2F3C0B2B1A\"".into()),
            content_length_bytes: Some(163840),
            content_type: Some("image/jpeg".into()),
            content_md5: Some(Md5Digest::of(b"x")),
            content_encoding: Some("gzip".into()),
            content_language: Some("en-US".into()),
            cache_control: Some("no-cache".into()),
            content_disposition: Some("attachment; filename=\"a.jpg\"".into()),
        };
        let text = p.to_xml();
        let order: Vec<usize> = NAMES
            .iter()
            .map(|n| text.find(&format!("<{n}>")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(Properties::parse(text.as_bytes()).unwrap(), p);
        let empty = Properties::default();
        assert_eq!(
            empty.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Properties />\r\n"
        );
        assert_eq!(Properties::parse(empty.to_xml().as_bytes()).unwrap(), empty);
    }

    #[test]
    fn names_are_case_insensitive_on_read() {
        let p = Properties::parse(
            b"<Properties><ETag>e</ETag><content-type>t</content-type></Properties>",
        )
        .unwrap();
        assert_eq!(p.etag.as_deref(), Some("e"));
        assert_eq!(p.content_type.as_deref(), Some("t"));
        assert!(p.to_xml().contains("<Etag>e</Etag>"));
    }

    #[test]
    fn errors_carry_the_element() {
        let doc = "<Properties><Cache-Control>a</Cache-Control><X-Foo>1</X-Foo></Properties>";
        let at = doc.find("<X-Foo>").unwrap() as u64;
        assert_eq!(
            Properties::parse(doc.as_bytes()),
            Err(MetadataError::UnknownProperty {
                name: "X-Foo".into(),
                offset: at
            })
        );
        for (doc, what) in [
            ("<Properties><Etag>a</Etag><ETAG>b</ETAG></Properties>", "duplicate"),
            ("<Properties><Content-MD5>a</Content-MD5><Content-MD5>a</Content-MD5></Properties>", "duplicate md5"),
            ("<Properties><Content-Length>-5</Content-Length></Properties>", "negative length"),
            ("<Properties><Content-Length>+5</Content-Length></Properties>", "signed length"),
            ("<Properties><Content-MD5>E72A22EA959566066AD89E3B49020C0A</Content-MD5></Properties>", "hex md5"),
            ("<Properties><Content-Type><a/></Content-Type></Properties>", "nested"),
            ("<Metadata/>", "wrong root"),
        ] {
            assert!(Properties::parse(doc.as_bytes()).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn the_published_grammar_typo_gets_its_own_error() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Properties>\n<Content-Length>10<Content-Length>\n</Properties>";
        let at = doc.find("<Content-Length>").unwrap() as u64;
        assert!(matches!(
            Properties::parse(doc.as_bytes()),
            Err(MetadataError::ContentLengthNotClosed { offset, .. }) if offset == at
        ));
        assert!(matches!(
            Properties::parse(b"<Properties>"),
            Err(MetadataError::Xml(_))
        ));
    }
}
