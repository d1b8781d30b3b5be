//! Writing the model as canonical drive manifest XML.
//!
//! Owns the canonical element order (azure-import-export.md §1.2: `DriveId`, the credential,
//! `ClientCreator`, then the blob lists; inside a blob `BlobPath`, `FilePath`, `ClientData`,
//! `Snapshot`, `Length`, `ImportDisposition`, the range list, `MetadataPath`, `PropertiesPath`) and
//! the attribute order of the samples (`Offset`, `Length`, `Id`, `Hash`). It must not judge
//! semantics: whatever the model holds is written, so that `parse(to_xml(m)) == m`.
//!
//! A 50,000-block manifest is about 5 MB, so the block loop formats numbers and hashes into reused
//! stack and heap buffers instead of allocating per attribute.

use std::fmt::Write as _;

use crate::digest::Md5Digest;
use crate::xml::XmlWriter;

use super::{Blob, BlobList, DriveManifest, HashedPath};

pub(super) fn to_xml(m: &DriveManifest) -> String {
    let mut w = XmlWriter::new();
    match &m.version {
        Some(v) => w.start("DriveManifest", &[("Version", v)]),
        None => w.start("DriveManifest", &[]),
    }
    w.start("Drive", &[]);
    w.leaf("DriveId", &[], &m.drive.drive_id);
    if let Some(c) = &m.drive.credential {
        w.leaf(c.element_name(), &[], c.secret().expose());
    }
    if let Some(c) = &m.drive.client_creator {
        w.leaf("ClientCreator", &[], c);
    }
    let mut scratch = Scratch::default();
    for list in &m.drive.blob_lists {
        write_list(&mut w, list, &mut scratch);
    }
    w.end("Drive");
    w.end("DriveManifest");
    w.finish()
}

/// Reused buffers for the per-range attributes.
#[derive(Default)]
struct Scratch {
    numbers: String,
}

impl Scratch {
    /// Format `offset` and `length` and return them as two string slices.
    fn numbers(&mut self, offset: u64, length: u64) -> (&str, &str) {
        self.numbers.clear();
        // Writing into a String cannot fail.
        let _ = write!(self.numbers, "{offset}");
        let split = self.numbers.len();
        let _ = write!(self.numbers, "{length}");
        self.numbers.split_at(split)
    }
}

fn write_list(w: &mut XmlWriter, list: &BlobList, scratch: &mut Scratch) {
    match &list.id {
        Some(id) => w.start("BlobList", &[("Id", id)]),
        None => w.start("BlobList", &[]),
    }
    write_hashed(w, "MetadataPath", list.metadata_path.as_ref());
    write_hashed(w, "PropertiesPath", list.properties_path.as_ref());
    for blob in &list.blobs {
        write_blob(w, blob, scratch);
    }
    w.end("BlobList");
}

fn write_blob(w: &mut XmlWriter, b: &Blob, scratch: &mut Scratch) {
    w.start("Blob", &[]);
    w.leaf("BlobPath", &[], &b.blob_path);
    w.leaf("FilePath", &[], &b.file_path);
    if let Some(c) = &b.client_data {
        w.leaf("ClientData", &[], c);
    }
    if let Some(s) = &b.snapshot {
        w.leaf("Snapshot", &[], s);
    }
    w.leaf("Length", &[], &b.length.to_string());
    if let Some(d) = b.import_disposition {
        w.leaf("ImportDisposition", &[], d.as_str());
    }
    let mut hex = [0u8; 32];
    if let Some(ranges) = &b.page_range_list {
        if ranges.is_empty() {
            w.empty("PageRangeList", &[]);
        } else {
            w.start("PageRangeList", &[]);
            for r in ranges {
                let hash = hex_upper(&r.hash, &mut hex);
                let (offset, length) = scratch.numbers(r.offset, r.length);
                w.empty(
                    "PageRange",
                    &[("Offset", offset), ("Length", length), ("Hash", hash)],
                );
            }
            w.end("PageRangeList");
        }
    }
    if let Some(blocks) = &b.block_list {
        if blocks.is_empty() {
            w.empty("BlockList", &[]);
        } else {
            w.start("BlockList", &[]);
            for block in blocks {
                let hash = hex_upper(&block.hash, &mut hex);
                let (offset, length) = scratch.numbers(block.offset, block.length);
                match &block.id {
                    Some(id) => w.empty(
                        "Block",
                        &[
                            ("Offset", offset),
                            ("Length", length),
                            ("Id", id),
                            ("Hash", hash),
                        ],
                    ),
                    None => w.empty(
                        "Block",
                        &[("Offset", offset), ("Length", length), ("Hash", hash)],
                    ),
                }
            }
            w.end("BlockList");
        }
    }
    write_hashed(w, "MetadataPath", b.metadata_path.as_ref());
    write_hashed(w, "PropertiesPath", b.properties_path.as_ref());
    w.end("Blob");
}

fn write_hashed(w: &mut XmlWriter, name: &str, path: Option<&HashedPath>) {
    if let Some(p) = path {
        let mut hex = [0u8; 32];
        let hash = hex_upper(&p.hash, &mut hex);
        w.leaf(name, &[("Hash", hash)], &p.path);
    }
}

/// Uppercase Base16 of `digest` in a caller-provided buffer (no allocation).
fn hex_upper<'a>(digest: &Md5Digest, buf: &'a mut [u8; 32]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (pair, byte) in buf.chunks_exact_mut(2).zip(digest.0) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
    // Every byte written is an ASCII hex digit.
    std::str::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::{
        Block, Credential, Drive, ImportDisposition, PageRange, Secret, SourceOffset,
    };
    use super::*;

    fn sample() -> DriveManifest {
        let h = Md5Digest::of(b"x");
        DriveManifest {
            version: Some("2014-11-01".into()),
            drive: Drive {
                drive_id: "9WM35C3U".into(),
                credential: Some(Credential::StorageAccountKey(Secret::new("a&b"))),
                client_creator: Some("tool".into()),
                blob_lists: vec![BlobList {
                    id: Some("session#1-0".into()),
                    metadata_path: Some(HashedPath {
                        path: r"\m.xml".into(),
                        hash: h,
                    }),
                    properties_path: None,
                    blobs: vec![
                        Blob {
                            blob_path: "c/p".into(),
                            file_path: r"\p".into(),
                            client_data: None,
                            snapshot: None,
                            length: 1024,
                            import_disposition: Some(ImportDisposition::NoOverwrite),
                            page_range_list: Some(vec![PageRange {
                                offset: 512,
                                length: 512,
                                hash: h,
                            }]),
                            block_list: None,
                            metadata_path: None,
                            properties_path: None,
                            source_offset: SourceOffset(None),
                        },
                        Blob {
                            blob_path: "c/b".into(),
                            file_path: r"\b".into(),
                            client_data: Some("<note>".into()),
                            snapshot: None,
                            length: 0,
                            import_disposition: None,
                            page_range_list: None,
                            block_list: Some(vec![]),
                            metadata_path: None,
                            properties_path: Some(HashedPath {
                                path: r"\b.properties".into(),
                                hash: h,
                            }),
                            source_offset: SourceOffset(None),
                        },
                    ],
                    source_offset: SourceOffset(None),
                }],
                source_offset: SourceOffset(None),
            },
        }
    }

    #[test]
    fn canonical_order_and_forms() {
        let xml = sample().to_xml();
        let order = [
            "<DriveManifest Version=\"2014-11-01\">",
            "<DriveId>9WM35C3U</DriveId>",
            "<StorageAccountKey>a&amp;b</StorageAccountKey>",
            "<ClientCreator>tool</ClientCreator>",
            "<BlobList Id=\"session#1-0\">",
            "<MetadataPath Hash=\"9DD4E461268C8034F5C8564E155C67A6\">\\m.xml</MetadataPath>",
            "<Length>1024</Length>",
            "<ImportDisposition>no-overwrite</ImportDisposition>",
            "<PageRange Offset=\"512\" Length=\"512\" Hash=\"9DD4E461268C8034F5C8564E155C67A6\" />",
            "<ClientData>&lt;note&gt;</ClientData>",
            "<BlockList />",
            "<PropertiesPath Hash=",
        ];
        let mut from = 0;
        for needle in order {
            let at = xml[from..]
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} not after {from}:\n{xml}"));
            from += at + needle.len();
        }
        assert!(
            xml.contains("\r\n    <BlobList"),
            "indent and line ends:\n{xml}"
        );
        assert_eq!(DriveManifest::parse(xml.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn block_attributes_in_sample_order() {
        let mut m = sample();
        let h = Md5Digest::of(b"abc");
        m.drive.blob_lists[0].blobs[1].length = 3;
        m.drive.blob_lists[0].blobs[1].block_list = Some(vec![Block {
            offset: 0,
            length: 3,
            id: Some("AAAAAA==".into()),
            hash: h,
        }]);
        let xml = m.to_xml();
        assert!(xml.contains(
            "<Block Offset=\"0\" Length=\"3\" Id=\"AAAAAA==\" Hash=\"900150983CD24FB0D6963F7D28E17F72\" />"
        ), "{xml}");
        assert_eq!(DriveManifest::parse(xml.as_bytes()).unwrap(), m);
        assert_eq!(xml, DriveManifest::parse(xml.as_bytes()).unwrap().to_xml());
    }

    #[test]
    fn hex_matches_digest_to_hex() {
        let mut buf = [0u8; 32];
        for data in [&b""[..], b"abc", b"\xff\x00"] {
            let d = Md5Digest::of(data);
            assert_eq!(hex_upper(&d, &mut buf), d.to_hex());
        }
    }
}
