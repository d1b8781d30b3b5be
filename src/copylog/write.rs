//! Writing the model as a verbose or error log.
//!
//! Element order is the published samples' (azure-import-export.md §2.3): `DriveId`, the `Blob`
//! entries, then `Status`; inside a `Blob`: `BlobPath, FilePath, [Snapshot], [LastModified],
//! Length, [ImportDisposition], [PageRangeList | BlockList], [Metadata], [Properties]`. Attribute
//! order is `Offset, Length, [Id], [Hash], Status`. Hashes are uppercase Base16. Empty lists and
//! path-less `Metadata`/`Properties` are self-closing (`<BlockList />`, `<Properties Status="Failed" />`).
//! Output is deterministic: the same model always gives the same bytes.

use super::{BlobLog, DriveLog, FileLog, HashedPath, RangeList};
use crate::xml::XmlWriter;

impl DriveLog {
    /// The verbose log: every blob and every child, as a UTF-8 XML document with a declaration,
    /// `\r\n` line ends and two-space indentation.
    pub fn to_verbose_xml(&self) -> String {
        self.write(false)
    }

    /// The error log: the document [`DriveLog::errors_only`] describes (only blobs with errors,
    /// only their failed ranges, blocks, metadata and properties), written like
    /// [`DriveLog::to_verbose_xml`]. Writes without copying the model.
    pub fn to_error_xml(&self) -> String {
        self.write(true)
    }

    fn write(&self, errors_only: bool) -> String {
        let mut w = XmlWriter::new();
        match &self.version {
            Some(v) => w.start("DriveLog", &[("Version", v)]),
            None => w.start("DriveLog", &[]),
        }
        w.leaf("DriveId", &[], &self.drive_id);
        for blob in &self.blobs {
            if !errors_only || blob.has_errors() {
                write_blob(&mut w, blob, errors_only);
            }
        }
        w.leaf("Status", &[], self.status.as_str());
        w.end("DriveLog");
        w.finish()
    }
}

fn write_blob(w: &mut XmlWriter, b: &BlobLog, errors_only: bool) {
    w.start("Blob", &[("Status", b.status.as_str())]);
    w.leaf("BlobPath", &[], &b.blob_path);
    w.leaf("FilePath", &[], &b.file_path);
    if let Some(s) = &b.snapshot {
        w.leaf("Snapshot", &[], s);
    }
    if let Some(t) = &b.last_modified {
        w.leaf("LastModified", &[], t);
    }
    w.leaf("Length", &[], &b.length_bytes.to_string());
    if let Some(d) = &b.import_disposition {
        w.leaf(
            "ImportDisposition",
            &[("Status", d.status.as_str())],
            &d.requested,
        );
    }
    match &b.list {
        Some(RangeList::PageRangeList(ranges)) => {
            let kept: Vec<_> = ranges
                .iter()
                .filter(|r| !errors_only || r.status.is_failure())
                .collect();
            if kept.is_empty() {
                w.empty("PageRangeList", &[]);
            } else {
                w.start("PageRangeList", &[]);
                for r in kept {
                    let (offset, length) = (r.offset_bytes.to_string(), r.length_bytes.to_string());
                    let hash = r.hash.map(|h| h.to_hex());
                    let mut attrs = vec![("Offset", offset.as_str()), ("Length", length.as_str())];
                    if let Some(h) = &hash {
                        attrs.push(("Hash", h));
                    }
                    attrs.push(("Status", r.status.as_str()));
                    w.empty("PageRange", &attrs);
                }
                w.end("PageRangeList");
            }
        }
        Some(RangeList::BlockList(blocks)) => {
            let kept: Vec<_> = blocks
                .iter()
                .filter(|b| !errors_only || b.status.is_failure())
                .collect();
            if kept.is_empty() {
                w.empty("BlockList", &[]);
            } else {
                w.start("BlockList", &[]);
                for b in kept {
                    let (offset, length) = (b.offset_bytes.to_string(), b.length_bytes.to_string());
                    let hash = b.hash.map(|h| h.to_hex());
                    let mut attrs = vec![("Offset", offset.as_str()), ("Length", length.as_str())];
                    if let Some(id) = &b.id {
                        attrs.push(("Id", id));
                    }
                    if let Some(h) = &hash {
                        attrs.push(("Hash", h));
                    }
                    attrs.push(("Status", b.status.as_str()));
                    w.empty("Block", &attrs);
                }
                w.end("BlockList");
            }
        }
        None => {}
    }
    for (name, file) in [("Metadata", &b.metadata), ("Properties", &b.properties)] {
        if let Some(f) = file {
            if !errors_only || f.status.is_failure() {
                write_file_log(w, name, f);
            }
        }
    }
    w.end("Blob");
}

fn write_file_log(w: &mut XmlWriter, name: &str, f: &FileLog) {
    let status = [("Status", f.status.as_str())];
    if f.global_path.is_none() && f.path.is_none() {
        w.empty(name, &status);
        return;
    }
    w.start(name, &status);
    for (child, p) in [("GlobalPath", &f.global_path), ("Path", &f.path)] {
        if let Some(HashedPath { path, hash }) = p {
            match hash {
                Some(h) => w.leaf(child, &[("Hash", &h.to_hex())], path),
                None => w.leaf(child, &[], path),
            }
        }
    }
    w.end(name);
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::digest::Md5Digest;

    fn sample() -> DriveLog {
        DriveLog {
            version: Some("2014-11-01".into()),
            drive_id: "9WM35C3U".into(),
            blobs: vec![BlobLog {
                status: BlobStatus::CompletedWithErrors,
                blob_path: "pictures/wild/canyon.jpg".into(),
                file_path: "\\pictures\\wild\\canyon.jpg".into(),
                snapshot: Some("2012-09-18T23:47:08.1234567Z".into()),
                last_modified: Some("2012-09-18T23:47:08Z".into()),
                length_bytes: 163840,
                import_disposition: None,
                list: Some(RangeList::BlockList(vec![BlockLog {
                    offset_bytes: 0,
                    length_bytes: 163840,
                    id: Some("AAAAAA==".into()),
                    hash: Some(Md5Digest([0xab; 16])),
                    status: RangeStatus::Completed,
                }])),
                metadata: Some(FileLog {
                    status: FileLogStatus::Completed,
                    global_path: None,
                    path: Some(HashedPath {
                        path: "\\m.xml".into(),
                        hash: None,
                    }),
                }),
                properties: Some(FileLog {
                    status: FileLogStatus::Failed,
                    global_path: None,
                    path: None,
                }),
            }],
            status: DriveLogStatus::CompletedWithErrors,
        }
    }

    #[test]
    fn verbose_layout_matches_the_samples() {
        let text = sample().to_verbose_xml();
        let expected = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<DriveLog Version=\"2014-11-01\">",
            "  <DriveId>9WM35C3U</DriveId>",
            "  <Blob Status=\"CompletedWithErrors\">",
            "    <BlobPath>pictures/wild/canyon.jpg</BlobPath>",
            "    <FilePath>\\pictures\\wild\\canyon.jpg</FilePath>",
            "    <Snapshot>2012-09-18T23:47:08.1234567Z</Snapshot>",
            "    <LastModified>2012-09-18T23:47:08Z</LastModified>",
            "    <Length>163840</Length>",
            "    <BlockList>",
            "      <Block Offset=\"0\" Length=\"163840\" Id=\"AAAAAA==\" Hash=\"ABABABABABABABABABABABABABABABAB\" Status=\"Completed\" />",
            "    </BlockList>",
            "    <Metadata Status=\"Completed\">",
            "      <Path>\\m.xml</Path>",
            "    </Metadata>",
            "    <Properties Status=\"Failed\" />",
            "  </Blob>",
            "  <Status>CompletedWithErrors</Status>",
            "</DriveLog>",
            "",
        ]
        .join("\r\n");
        assert_eq!(text, expected);
        assert_eq!(DriveLog::parse(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn error_layout_drops_completed_children() {
        let text = sample().to_error_xml();
        assert!(text.contains("    <BlockList />\r\n"), "{text}");
        assert!(!text.contains("<Metadata"), "{text}");
        assert!(text.contains("<Properties Status=\"Failed\" />"), "{text}");
        assert_eq!(
            DriveLog::parse(text.as_bytes()).unwrap(),
            sample().errors_only()
        );

        let mut unversioned = sample();
        unversioned.version = None;
        unversioned.blobs[0].status = BlobStatus::Completed;
        unversioned.blobs[0].properties = None;
        unversioned.status = DriveLogStatus::Completed;
        let text = unversioned.to_error_xml();
        assert!(text.contains("<DriveLog>\r\n"), "{text}");
        assert!(!text.contains("<Blob "), "{text}");
    }
}
