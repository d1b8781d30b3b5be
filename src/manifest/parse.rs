//! Reading a drive manifest from the shared element tree into the model.
//!
//! Owns the mapping from element and attribute names to model fields and the syntax of the scalar
//! values (integers, hashes, the disposition). It must not judge semantics (paths, block layout,
//! limits): that is `validate.rs`, so a manifest with a bad blob still loads and the rest of the drive
//! can be imported.
//!
//! Tolerance, per azure-import-export.md §1.2 and §7: elements in any order inside their parent,
//! unknown elements and attributes ignored, a missing `Version`, spaces around numbers and hashes,
//! hex digits of either case. Strictness: every integer is digits only (no sign, no overflow), and
//! an element that may appear once must not appear twice, since the two copies could disagree.

use crate::digest::Md5Digest;
use crate::xml::{self, Element};

use super::{
    Blob, BlobList, Block, Credential, Drive, DriveManifest, HashedPath, ImportDisposition,
    ManifestError, PageRange, Secret, SourceOffset,
};

pub(super) fn parse(bytes: &[u8]) -> Result<DriveManifest, ManifestError> {
    let root = xml::parse(bytes)?;
    if root.name != "DriveManifest" {
        return Err(ManifestError::WrongRoot {
            found: root.name,
            offset: root.offset,
        });
    }
    let version = root.attr("Version").map(str::to_string);
    let drive = root.child("Drive").ok_or(ManifestError::MissingElement {
        element: "Drive",
        parent: "DriveManifest",
        offset: root.offset,
    })?;
    if let Some(second) = root.children_named("Drive").nth(1) {
        return Err(ManifestError::DuplicateElement {
            element: "Drive",
            parent: "DriveManifest",
            offset: second.offset,
        });
    }
    Ok(DriveManifest {
        version,
        drive: parse_drive(drive)?,
    })
}

/// Put `el` into `slot`, or fail if the slot is already taken.
fn once<'a>(
    slot: &mut Option<&'a Element>,
    el: &'a Element,
    element: &'static str,
    parent: &'static str,
) -> Result<(), ManifestError> {
    if slot.is_some() {
        return Err(ManifestError::DuplicateElement {
            element,
            parent,
            offset: el.offset,
        });
    }
    *slot = Some(el);
    Ok(())
}

fn required<'a>(
    slot: Option<&'a Element>,
    element: &'static str,
    parent: &'static str,
    parent_offset: u64,
) -> Result<&'a Element, ManifestError> {
    slot.ok_or(ManifestError::MissingElement {
        element,
        parent,
        offset: parent_offset,
    })
}

fn parse_drive(el: &Element) -> Result<Drive, ManifestError> {
    let (mut drive_id, mut key, mut sas, mut creator) = (None, None, None, None);
    let mut blob_lists = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "DriveId" => once(&mut drive_id, c, "DriveId", "Drive")?,
            "StorageAccountKey" => once(&mut key, c, "StorageAccountKey", "Drive")?,
            "ContainerSas" => once(&mut sas, c, "ContainerSas", "Drive")?,
            "ClientCreator" => once(&mut creator, c, "ClientCreator", "Drive")?,
            "BlobList" => blob_lists.push(parse_blob_list(c)?),
            _ => {}
        }
    }
    let credential = match (key, sas) {
        (Some(k), Some(s)) => {
            return Err(ManifestError::ConflictingCredentials {
                offset: k.offset.max(s.offset),
            })
        }
        (Some(k), None) => Some(Credential::StorageAccountKey(Secret::new(k.text.clone()))),
        (None, Some(s)) => Some(Credential::ContainerSas(Secret::new(s.text.clone()))),
        (None, None) => None,
    };
    Ok(Drive {
        drive_id: required(drive_id, "DriveId", "Drive", el.offset)?
            .text
            .clone(),
        credential,
        // The loop above checked that there is at most one.
        client_creator: el.child_text("ClientCreator").map(str::to_string),
        blob_lists,
        source_offset: SourceOffset(Some(el.offset)),
    })
}

fn parse_blob_list(el: &Element) -> Result<BlobList, ManifestError> {
    let (mut metadata, mut properties) = (None, None);
    let mut blobs = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "MetadataPath" => once(&mut metadata, c, "MetadataPath", "BlobList")?,
            "PropertiesPath" => once(&mut properties, c, "PropertiesPath", "BlobList")?,
            "Blob" => blobs.push(parse_blob(c)?),
            _ => {}
        }
    }
    Ok(BlobList {
        id: el.attr("Id").map(str::to_string),
        metadata_path: metadata
            .map(|m| hashed_path(m, "MetadataPath"))
            .transpose()?,
        properties_path: properties
            .map(|p| hashed_path(p, "PropertiesPath"))
            .transpose()?,
        blobs,
        source_offset: SourceOffset(Some(el.offset)),
    })
}

fn parse_blob(el: &Element) -> Result<Blob, ManifestError> {
    let (mut blob_path, mut file_path, mut client_data, mut snapshot, mut length) =
        (None, None, None, None, None);
    let (mut disposition, mut pages, mut blocks, mut metadata, mut properties) =
        (None, None, None, None, None);
    for c in &el.children {
        match c.name.as_str() {
            "BlobPath" => once(&mut blob_path, c, "BlobPath", "Blob")?,
            "FilePath" => once(&mut file_path, c, "FilePath", "Blob")?,
            "ClientData" => once(&mut client_data, c, "ClientData", "Blob")?,
            "Snapshot" => once(&mut snapshot, c, "Snapshot", "Blob")?,
            "Length" => once(&mut length, c, "Length", "Blob")?,
            "ImportDisposition" => once(&mut disposition, c, "ImportDisposition", "Blob")?,
            "PageRangeList" => once(&mut pages, c, "PageRangeList", "Blob")?,
            "BlockList" => once(&mut blocks, c, "BlockList", "Blob")?,
            "MetadataPath" => once(&mut metadata, c, "MetadataPath", "Blob")?,
            "PropertiesPath" => once(&mut properties, c, "PropertiesPath", "Blob")?,
            _ => {}
        }
    }
    let length_el = required(length, "Length", "Blob", el.offset)?;
    Ok(Blob {
        blob_path: required(blob_path, "BlobPath", "Blob", el.offset)?
            .text
            .clone(),
        file_path: required(file_path, "FilePath", "Blob", el.offset)?
            .text
            .clone(),
        client_data: client_data.map(|c| c.text.clone()),
        snapshot: snapshot.map(|s| s.text.clone()),
        length: integer(&length_el.text, "Length", None, length_el.offset)?,
        import_disposition: disposition.map(parse_disposition).transpose()?,
        page_range_list: pages.map(parse_page_ranges).transpose()?,
        block_list: blocks.map(parse_blocks).transpose()?,
        metadata_path: metadata
            .map(|m| hashed_path(m, "MetadataPath"))
            .transpose()?,
        properties_path: properties
            .map(|p| hashed_path(p, "PropertiesPath"))
            .transpose()?,
        source_offset: SourceOffset(Some(el.offset)),
    })
}

fn parse_disposition(el: &Element) -> Result<ImportDisposition, ManifestError> {
    ImportDisposition::from_manifest_str(trim_xml(&el.text)).ok_or_else(|| {
        ManifestError::BadDisposition {
            value: el.text.clone(),
            offset: el.offset,
        }
    })
}

fn parse_page_ranges(el: &Element) -> Result<Vec<PageRange>, ManifestError> {
    let mut ranges = Vec::with_capacity(el.children.len());
    for c in el.children_named("PageRange") {
        ranges.push(PageRange {
            offset: int_attr(c, "PageRange", "Offset")?,
            length: int_attr(c, "PageRange", "Length")?,
            hash: hash_attr(c, "PageRange")?,
        });
    }
    Ok(ranges)
}

fn parse_blocks(el: &Element) -> Result<Vec<Block>, ManifestError> {
    let mut blocks = Vec::with_capacity(el.children.len());
    for c in el.children_named("Block") {
        blocks.push(Block {
            offset: int_attr(c, "Block", "Offset")?,
            length: int_attr(c, "Block", "Length")?,
            id: c.attr("Id").map(str::to_string),
            hash: hash_attr(c, "Block")?,
        });
    }
    Ok(blocks)
}

fn hashed_path(el: &Element, element: &'static str) -> Result<HashedPath, ManifestError> {
    Ok(HashedPath {
        path: el.text.clone(),
        hash: hash_attr(el, element)?,
    })
}

fn attr<'a>(
    el: &'a Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str, ManifestError> {
    el.attr(attribute).ok_or(ManifestError::MissingAttribute {
        attribute,
        element,
        offset: el.offset,
    })
}

fn hash_attr(el: &Element, element: &'static str) -> Result<Md5Digest, ManifestError> {
    Md5Digest::from_hex(attr(el, element, "Hash")?).map_err(|source| ManifestError::BadHash {
        element,
        offset: el.offset,
        source,
    })
}

fn int_attr(
    el: &Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<u64, ManifestError> {
    integer(
        attr(el, element, attribute)?,
        element,
        Some(attribute),
        el.offset,
    )
}

/// XML whitespace (space, tab, CR, LF) removed from both ends.
fn trim_xml(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

/// A plain decimal `u64`: ASCII digits only after trimming XML whitespace; no sign, no overflow.
fn integer(
    text: &str,
    element: &'static str,
    attribute: Option<&'static str>,
    offset: u64,
) -> Result<u64, ManifestError> {
    decimal_u64(trim_xml(text)).ok_or_else(|| ManifestError::BadInteger {
        element,
        attribute,
        value: text.to_string(),
        offset,
    })
}

fn decimal_u64(digits: &str) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "5D41402ABC4B2A76B9719D911017C592";

    /// Wrap blob-level XML in a minimal document.
    fn doc(blob_inner: &str) -> String {
        format!(
            "<DriveManifest><Drive><DriveId>D1</DriveId><BlobList><Blob>{blob_inner}</Blob>\
             </BlobList></Drive></DriveManifest>"
        )
    }

    fn blob(inner: &str) -> Result<Blob, ManifestError> {
        let mut m = parse(doc(inner).as_bytes())?;
        Ok(m.drive.blob_lists.remove(0).blobs.remove(0))
    }

    const BASE: &str = r"<BlobPath>c/b</BlobPath><FilePath>\b</FilePath>";

    #[test]
    fn integers_are_strict() {
        let check = |text: &str, expected: Option<u64>| {
            assert_eq!(decimal_u64(trim_xml(text)), expected, "{text:?}");
        };
        check("0", Some(0));
        check(" 42\r\n", Some(42));
        check("18446744073709551615", Some(u64::MAX));
        check("18446744073709551616", None);
        check("99999999999999999999999", None);
        check("+1", None);
        check("-1", None);
        check("1e3", None);
        check("", None);
        check("  ", None);
        check("0x10", None);
        check("1 2", None);
        check("١", None);
    }

    #[test]
    fn blob_fields_parse_in_any_order() {
        let b = blob(&format!(
            "<Length> 1024 </Length><ImportDisposition>overwrite</ImportDisposition>{BASE}\
             <Unknown x='1'/><ClientData>hi &amp; bye</ClientData>\
             <PageRangeList><PageRange Offset='0' Length='512' Hash=' {} '/></PageRangeList>",
            H.to_lowercase()
        ))
        .unwrap();
        assert_eq!(b.length, 1024);
        assert_eq!(b.file_path, r"\b");
        assert_eq!(b.client_data.as_deref(), Some("hi & bye"));
        assert_eq!(b.import_disposition, Some(ImportDisposition::Overwrite));
        let ranges = b.page_range_list.unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].hash.to_hex(), H);
        let at = doc("").find("<Blob>").and_then(|i| u64::try_from(i).ok());
        assert_eq!(b.source_offset.0, at);
    }

    #[test]
    fn errors_name_the_element_and_offset() {
        type Check = fn(&ManifestError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (BASE.to_string(), |e| {
                matches!(e, ManifestError::MissingElement { element: "Length", parent: "Blob", .. })
            }),
            ("<FilePath>x</FilePath><Length>1</Length>".into(), |e| {
                matches!(e, ManifestError::MissingElement { element: "BlobPath", .. })
            }),
            (format!("{BASE}<Length>-1</Length>"), |e| {
                matches!(e, ManifestError::BadInteger { element: "Length", attribute: None, .. })
            }),
            (format!("{BASE}<Length>1</Length><Length>2</Length>"), |e| {
                matches!(e, ManifestError::DuplicateElement { element: "Length", .. })
            }),
            (format!("{BASE}<Length>1</Length><ImportDisposition>Overwrite</ImportDisposition>"), |e| {
                matches!(e, ManifestError::BadDisposition { .. })
            }),
            (format!("{BASE}<Length>1</Length><BlockList><Block Offset='0' Length='1'/></BlockList>"), |e| {
                matches!(e, ManifestError::MissingAttribute { attribute: "Hash", element: "Block", .. })
            }),
            (
                format!("{BASE}<Length>1</Length><BlockList><Block Offset='0' Length='1' Hash='XYZ'/></BlockList>"),
                |e| matches!(e, ManifestError::BadHash { element: "Block", .. }),
            ),
            (
                format!("{BASE}<Length>1</Length><BlockList><Block Offset='99999999999999999999' Length='1' Hash='{H}'/></BlockList>"),
                |e| matches!(e, ManifestError::BadInteger { element: "Block", attribute: Some("Offset"), .. }),
            ),
        ];
        for (inner, check) in cases {
            let text = doc(&inner);
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(check(&e), "{inner} gave {e:?}");
            let at = usize::try_from(e.offset()).unwrap();
            assert_eq!(
                text.as_bytes().get(at),
                Some(&b'<'),
                "{inner}: offset {at} is not a tag"
            );
        }
    }

    #[test]
    fn document_level_errors() {
        type Check = fn(&ManifestError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("<Other/>", |e| matches!(e, ManifestError::WrongRoot { .. })),
            ("<DriveManifest/>", |e| {
                matches!(
                    e,
                    ManifestError::MissingElement {
                        element: "Drive",
                        ..
                    }
                )
            }),
            ("<DriveManifest><Drive/></DriveManifest>", |e| {
                matches!(
                    e,
                    ManifestError::MissingElement {
                        element: "DriveId",
                        ..
                    }
                )
            }),
            (
                "<DriveManifest><Drive><DriveId>a</DriveId></Drive><Drive/></DriveManifest>",
                |e| {
                    matches!(
                        e,
                        ManifestError::DuplicateElement {
                            element: "Drive",
                            ..
                        }
                    )
                },
            ),
            (
                "<DriveManifest><Drive><ContainerSas>c?s</ContainerSas><DriveId>a</DriveId>\
                 <StorageAccountKey>k</StorageAccountKey></Drive></DriveManifest>",
                |e| matches!(e, ManifestError::ConflictingCredentials { offset: 74 }),
            ),
            ("<DriveManifest><Drive>", |e| {
                matches!(e, ManifestError::Xml(_))
            }),
        ];
        for (text, check) in cases {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(check(&e), "{text} gave {e:?}");
        }
    }

    #[test]
    fn drive_scalars_in_any_order() {
        let m = parse(
            b"<DriveManifest><Drive><BlobList Id='s'/><ClientCreator>me</ClientCreator>\
              <ContainerSas>c?sig=x</ContainerSas><DriveId>D9</DriveId></Drive></DriveManifest>",
        )
        .unwrap();
        assert_eq!(m.version, None);
        assert_eq!(m.drive.drive_id, "D9");
        assert_eq!(m.drive.client_creator.as_deref(), Some("me"));
        assert_eq!(
            m.drive.credential,
            Some(Credential::ContainerSas(Secret::new("c?sig=x")))
        );
        assert_eq!(m.drive.blob_lists[0].id.as_deref(), Some("s"));
    }
}
