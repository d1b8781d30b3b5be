//! Reading a `DriveLog` document into the model (azure-import-export.md §2.3).
//!
//! Tolerances, each from a published sample: any child order inside `Blob` (the grammar and the
//! samples disagree on `Length`/`LastModified`), `Hash` values with surrounding spaces (§7 item 2),
//! a missing `Version` (§7 item 3), and unknown elements (the 2018-10-01 `Summary` and `File`,
//! §2.9) ignored. The 2018-10-01 error-log spellings `OriginalFilePath` and `SizeInBytes` are read
//! when `FilePath` and `Length` are absent. Text values are trimmed.
//!
//! Strictness: required elements and attributes, single occurrences, integers and hashes are
//! checked, and every error carries the byte offset of the element at fault.

use super::{
    BlobLog, BlockLog, CopyLogError, DriveLog, FileLog, HashedPath, ImportDisposition, RangeList,
    RangeLog,
};
use crate::digest::Md5Digest;
use crate::xml::{self, Element};

impl DriveLog {
    /// Parse an error or verbose log.
    ///
    /// Unknown status strings are kept as the enums' `Other` variant rather than rejected, so a
    /// log from a newer service version is not lost.
    ///
    /// # Examples
    /// ```
    /// use drivecopy::copylog::{DriveLog, DriveLogStatus};
    /// let log = DriveLog::parse(b"<DriveLog><DriveId>9WM35C2V</DriveId><Status>Completed</Status></DriveLog>")?;
    /// assert_eq!(log.version, None);
    /// assert_eq!(log.status, DriveLogStatus::Completed);
    /// # Ok::<(), drivecopy::copylog::CopyLogError>(())
    /// ```
    ///
    /// # Errors
    /// [`CopyLogError`] with the byte offset of the fault: malformed XML, a root other than
    /// `DriveLog`, a missing `DriveId`, `Status`, `BlobPath`, `FilePath`, `Length` or `@Status`,
    /// a repeated single element, both list kinds in one blob, a bad integer or a bad hash.
    pub fn parse(input: &[u8]) -> Result<DriveLog, CopyLogError> {
        let root = xml::parse(input)?;
        if root.name != "DriveLog" {
            return Err(CopyLogError::WrongRoot {
                found: root.name,
                offset: root.offset,
            });
        }
        let version = root.attr("Version").map(|v| v.trim().to_string());
        let drive_id = required_text(&root, "DriveId", "DriveLog")?;
        let status = required_text(&root, "Status", "DriveLog")?.as_str().into();
        let blobs = root
            .children_named("Blob")
            .map(parse_blob)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DriveLog {
            version,
            drive_id,
            blobs,
            status,
        })
    }
}

fn parse_blob(el: &Element) -> Result<BlobLog, CopyLogError> {
    const BLOB: &str = "Blob";
    let status = required_attr(el, "Status", BLOB)?.into();
    let blob_path = required_text(el, "BlobPath", BLOB)?;
    let file_path = match at_most_one(el, "FilePath")? {
        Some(f) => f.text.trim().to_string(),
        None => el
            .child_text("OriginalFilePath")
            .map(|t| t.trim().to_string())
            .ok_or_else(|| missing("FilePath", BLOB, el.offset))?,
    };
    let length_el = match at_most_one(el, "Length")? {
        Some(l) => l,
        None => {
            at_most_one(el, "SizeInBytes")?.ok_or_else(|| missing("Length", BLOB, el.offset))?
        }
    };
    let length_bytes = number(&length_el.text, "Length", length_el.offset)?;
    let snapshot = optional_text(el, "Snapshot")?;
    let last_modified = optional_text(el, "LastModified")?;
    let import_disposition = at_most_one(el, "ImportDisposition")?
        .map(|d| -> Result<_, CopyLogError> {
            Ok(ImportDisposition {
                status: required_attr(d, "Status", "ImportDisposition")?.into(),
                requested: d.text.trim().to_string(),
            })
        })
        .transpose()?;
    let list = match (
        at_most_one(el, "PageRangeList")?,
        at_most_one(el, "BlockList")?,
    ) {
        (Some(_), Some(_)) => return Err(CopyLogError::ConflictingLists { offset: el.offset }),
        (Some(p), None) => Some(RangeList::PageRangeList(
            p.children_named("PageRange")
                .map(parse_range)
                .collect::<Result<_, _>>()?,
        )),
        (None, Some(b)) => Some(RangeList::BlockList(
            b.children_named("Block")
                .map(parse_block)
                .collect::<Result<_, _>>()?,
        )),
        (None, None) => None,
    };
    let metadata = at_most_one(el, "Metadata")?
        .map(|m| parse_file_log(m, "Metadata"))
        .transpose()?;
    let properties = at_most_one(el, "Properties")?
        .map(|p| parse_file_log(p, "Properties"))
        .transpose()?;
    Ok(BlobLog {
        status,
        blob_path,
        file_path,
        snapshot,
        last_modified,
        length_bytes,
        import_disposition,
        list,
        metadata,
        properties,
    })
}

fn parse_range(el: &Element) -> Result<RangeLog, CopyLogError> {
    const E: &str = "PageRange";
    Ok(RangeLog {
        offset_bytes: number(
            required_attr(el, "Offset", E)?,
            "PageRange/@Offset",
            el.offset,
        )?,
        length_bytes: number(
            required_attr(el, "Length", E)?,
            "PageRange/@Length",
            el.offset,
        )?,
        hash: hash_attr(el, E)?,
        status: required_attr(el, "Status", E)?.into(),
    })
}

fn parse_block(el: &Element) -> Result<BlockLog, CopyLogError> {
    const E: &str = "Block";
    Ok(BlockLog {
        offset_bytes: number(required_attr(el, "Offset", E)?, "Block/@Offset", el.offset)?,
        length_bytes: number(required_attr(el, "Length", E)?, "Block/@Length", el.offset)?,
        id: el.attr("Id").map(|s| s.trim().to_string()),
        hash: hash_attr(el, E)?,
        status: required_attr(el, "Status", E)?.into(),
    })
}

fn parse_file_log(el: &Element, name: &'static str) -> Result<FileLog, CopyLogError> {
    let hashed = |child: &'static str| -> Result<Option<HashedPath>, CopyLogError> {
        at_most_one(el, child)?
            .map(|p| {
                Ok(HashedPath {
                    path: p.text.trim().to_string(),
                    hash: hash_attr(p, child)?,
                })
            })
            .transpose()
    };
    Ok(FileLog {
        status: required_attr(el, "Status", name)?.into(),
        global_path: hashed("GlobalPath")?,
        path: hashed("Path")?,
    })
}

fn missing(element: &'static str, parent: &'static str, offset: u64) -> CopyLogError {
    CopyLogError::MissingElement {
        element,
        parent,
        offset,
    }
}

/// The only child named `name`, or `None`; a second one is an error.
fn at_most_one<'a>(
    parent: &'a Element,
    name: &'static str,
) -> Result<Option<&'a Element>, CopyLogError> {
    let mut found = parent.children_named(name);
    let first = found.next();
    match found.next() {
        Some(dup) => Err(CopyLogError::Duplicate {
            element: name,
            offset: dup.offset,
        }),
        None => Ok(first),
    }
}

fn optional_text(parent: &Element, name: &'static str) -> Result<Option<String>, CopyLogError> {
    Ok(at_most_one(parent, name)?.map(|c| c.text.trim().to_string()))
}

fn required_text(
    parent: &Element,
    name: &'static str,
    parent_name: &'static str,
) -> Result<String, CopyLogError> {
    optional_text(parent, name)?.ok_or_else(|| missing(name, parent_name, parent.offset))
}

fn required_attr<'a>(
    el: &'a Element,
    attribute: &'static str,
    element: &'static str,
) -> Result<&'a str, CopyLogError> {
    el.attr(attribute).ok_or(CopyLogError::MissingAttribute {
        attribute,
        element,
        offset: el.offset,
    })
}

fn number(text: &str, field: &'static str, offset: u64) -> Result<u64, CopyLogError> {
    let t = text.trim();
    // `u64::from_str` accepts a leading `+`; the format does not.
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CopyLogError::BadNumber {
            field,
            value: text.to_string(),
            offset,
        });
    }
    t.parse().map_err(|_| CopyLogError::BadNumber {
        field,
        value: text.to_string(),
        offset,
    })
}

fn hash_attr(el: &Element, element: &'static str) -> Result<Option<Md5Digest>, CopyLogError> {
    el.attr("Hash")
        .map(|h| {
            Md5Digest::from_hex(h).map_err(|source| CopyLogError::BadHash {
                element,
                offset: el.offset,
                source,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::super::*;

    const MINIMAL_BLOB: &str =
        "<BlobPath>c1/a</BlobPath><FilePath>\\a</FilePath><Length>1</Length>";

    fn doc(blob_body: &str) -> String {
        format!(
            "<DriveLog Version=\"2014-11-01\"><DriveId>D</DriveId><Blob Status=\"Completed\">{blob_body}</Blob><Status>Completed</Status></DriveLog>"
        )
    }

    #[test]
    fn order_insensitive_and_tolerant() {
        let text = "<DriveLog>\n <Status> CompletedWithErrors </Status>\n <Summary><None Count=\"3\"/></Summary>\
            <Blob Status=\"IOFailed\"><Length>98304</Length><LastModified>2012-09-18T23:47:08Z</LastModified>\
            <BlockList><Block Offset=\"0\" Length=\"65536\" Hash=\" 9C8AE14A55241F98533C4D80D85CDC68\" Status=\"Completed\"/></BlockList>\
            <FilePath>\\x</FilePath><BlobPath>c1/x</BlobPath></Blob><DriveId>D</DriveId></DriveLog>";
        let log = DriveLog::parse(text.as_bytes()).unwrap();
        assert_eq!(log.version, None);
        assert_eq!(log.drive_id, "D");
        assert_eq!(log.status, DriveLogStatus::CompletedWithErrors);
        let b = &log.blobs[0];
        assert_eq!(b.status, BlobStatus::IOFailed);
        assert_eq!(b.length_bytes, 98304);
        assert_eq!(b.last_modified.as_deref(), Some("2012-09-18T23:47:08Z"));
        let Some(RangeList::BlockList(blocks)) = &b.list else {
            panic!("no block list")
        };
        assert_eq!(
            blocks[0].hash.map(|h| h.to_hex()).as_deref(),
            Some("9C8AE14A55241F98533C4D80D85CDC68")
        );
        assert_eq!(blocks[0].id, None);
    }

    #[test]
    fn reads_2018_error_spellings() {
        let text = doc("<BlobPath>c1/a</BlobPath><OriginalFilePath>\\a</OriginalFilePath><SizeInBytes>19</SizeInBytes>");
        let log = DriveLog::parse(text.as_bytes()).unwrap();
        assert_eq!(log.blobs[0].file_path, "\\a");
        assert_eq!(log.blobs[0].length_bytes, 19);
    }

    #[test]
    fn located_errors() {
        let cases: &[(String, &str)] = &[
            ("<DriveManifest/>".into(), "WrongRoot"),
            (
                "<DriveLog><Status>Completed</Status></DriveLog>".into(),
                "MissingElement DriveId",
            ),
            (
                "<DriveLog><DriveId>D</DriveId></DriveLog>".into(),
                "MissingElement Status",
            ),
            (
                doc("<FilePath>\\a</FilePath><Length>1</Length>"),
                "MissingElement BlobPath",
            ),
            (
                doc("<BlobPath>c1/a</BlobPath><Length>1</Length>"),
                "MissingElement FilePath",
            ),
            (
                doc("<BlobPath>c1/a</BlobPath><FilePath>\\a</FilePath>"),
                "MissingElement Length",
            ),
            (
                doc("<BlobPath>c1/a</BlobPath><FilePath>\\a</FilePath><Length>-1</Length>"),
                "BadNumber",
            ),
            (
                doc("<BlobPath>c1/a</BlobPath><FilePath>\\a</FilePath><Length>+1</Length>"),
                "BadNumber",
            ),
        ];
        for (text, what) in cases {
            assert!(
                DriveLog::parse(text.as_bytes()).is_err(),
                "{what} accepted: {text}"
            );
        }
        let dup = doc(&format!("{MINIMAL_BLOB}<Length>2</Length>"));
        let e = DriveLog::parse(dup.as_bytes()).unwrap_err();
        let at = dup.rfind("<Length>").unwrap() as u64;
        assert_eq!(
            e,
            CopyLogError::Duplicate {
                element: "Length",
                offset: at
            }
        );

        let both = doc(&format!("{MINIMAL_BLOB}<BlockList/><PageRangeList/>"));
        assert!(matches!(
            DriveLog::parse(both.as_bytes()),
            Err(CopyLogError::ConflictingLists { .. })
        ));

        let bad_hash = doc(&format!("{MINIMAL_BLOB}<PageRangeList><PageRange Offset=\"0\" Length=\"512\" Hash=\"XYZ\" Status=\"Completed\"/></PageRangeList>"));
        let e = DriveLog::parse(bad_hash.as_bytes()).unwrap_err();
        let at = bad_hash.find("<PageRange ").unwrap() as u64;
        assert!(
            matches!(e, CopyLogError::BadHash { element: "PageRange", offset, .. } if offset == at),
            "{e:?}"
        );

        let no_status = doc(&format!(
            "{MINIMAL_BLOB}<BlockList><Block Offset=\"0\" Length=\"1\"/></BlockList>"
        ));
        assert!(matches!(
            DriveLog::parse(no_status.as_bytes()),
            Err(CopyLogError::MissingAttribute {
                attribute: "Status",
                element: "Block",
                ..
            })
        ));
        let no_meta_status = doc(&format!("{MINIMAL_BLOB}<Metadata/>"));
        assert!(matches!(
            DriveLog::parse(no_meta_status.as_bytes()),
            Err(CopyLogError::MissingAttribute {
                attribute: "Status",
                element: "Metadata",
                ..
            })
        ));
        assert!(matches!(
            DriveLog::parse(b"<DriveLog>"),
            Err(CopyLogError::Xml(_))
        ));
    }

    #[test]
    fn unknown_statuses_are_kept() {
        let text = doc(MINIMAL_BLOB).replace("Status=\"Completed\"", "Status=\"ContainerRenamed\"");
        let log = DriveLog::parse(text.as_bytes()).unwrap();
        assert_eq!(
            log.blobs[0].status,
            BlobStatus::Other("ContainerRenamed".into())
        );
        assert!(log.has_errors());
    }
}
