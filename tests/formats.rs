//! The drive log, metadata, properties and blob-list formats against the published samples
//! (tests/data, described in tests/data/README.md), plus round-trip properties on generated models.

use drivecopy::bloblist::{BlobList, Selector};
use drivecopy::copylog::{
    BlobLog, BlobStatus, BlockLog, DriveLog, DriveLogStatus, FileLog, FileLogStatus, HashedPath,
    ImportDisposition, ImportDispositionStatus, RangeList, RangeLog, RangeStatus,
};
use drivecopy::digest::Md5Digest;
use drivecopy::metadata::{Metadata, MetadataError, Properties, MAX_METADATA_BYTES};
use drivecopy::names::BlobPath;
use proptest::prelude::*;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

fn log(path: &str) -> DriveLog {
    DriveLog::parse(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

fn hex(s: &str) -> Option<Md5Digest> {
    Some(Md5Digest::from_hex(s).unwrap())
}

const LOGS: [&str; 6] = [
    "logs/import-verbose.xml",
    "logs/import-error.xml",
    "logs/import-error-file-not-found.xml",
    "logs/export-error-properties.xml",
    "logs/repair-import.xml",
    "logs/repair-export.xml",
];

#[test]
fn every_log_fixture_round_trips_through_both_writers() {
    for path in LOGS {
        let model = log(path);
        assert_eq!(
            DriveLog::parse(model.to_verbose_xml().as_bytes()).unwrap(),
            model,
            "{path} verbose"
        );
        assert_eq!(
            DriveLog::parse(model.to_error_xml().as_bytes()).unwrap(),
            model.errors_only(),
            "{path} error"
        );
    }
}

#[test]
fn verbose_import_log_values() {
    let v = log("logs/import-verbose.xml");
    assert_eq!(v.version.as_deref(), Some("2014-11-01"));
    assert_eq!(v.drive_id, "WD-WMATV123456");
    assert_eq!(v.status, DriveLogStatus::CompletedWithErrors);
    assert_eq!(v.blobs.len(), 2);
    let desert = &v.blobs[0];
    assert_eq!(desert.status, BlobStatus::Completed);
    assert_eq!(desert.blob_path, "pictures/bob/wild/desert.jpg");
    assert_eq!(desert.file_path, "\\Users\\bob\\Pictures\\wild\\desert.jpg");
    assert_eq!(desert.length_bytes, 98304);
    assert_eq!(
        desert.import_disposition,
        Some(ImportDisposition {
            status: ImportDispositionStatus::Created,
            requested: "overwrite".into()
        })
    );
    assert_eq!(
        desert.list,
        Some(RangeList::BlockList(vec![
            BlockLog {
                offset_bytes: 0,
                length_bytes: 65536,
                id: Some("AAAAAA==".into()),
                hash: hex("9C8AE14A55241F98533C4D80D85CDC68"),
                status: RangeStatus::Completed,
            },
            BlockLog {
                offset_bytes: 65536,
                length_bytes: 32768,
                id: Some("AQAAAA==".into()),
                hash: hex("DF54C531C9B3CA2570FDDDB3BCD0E27D"),
                status: RangeStatus::Completed,
            },
        ]))
    );
    assert_eq!(
        desert.metadata,
        Some(FileLog {
            status: FileLogStatus::Completed,
            global_path: Some(HashedPath {
                path: "\\Users\\bob\\Pictures\\wild\\metadata.xml".into(),
                hash: hex("E34F54B7086BCF4EC1601D056F4C7E37"),
            }),
            path: None,
        })
    );
    let koala = &v.blobs[1];
    assert_eq!(koala.status, BlobStatus::CompletedWithErrors);
    let Some(RangeList::PageRangeList(ranges)) = &koala.list else {
        panic!("koala has no page ranges")
    };
    let got: Vec<_> = ranges
        .iter()
        .map(|r| (r.offset_bytes, r.length_bytes, r.status.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 65536, RangeStatus::Completed),
            (65536, 65536, RangeStatus::Corrupted),
            (131072, 4096, RangeStatus::Completed)
        ]
    );
    assert_eq!(
        koala
            .properties
            .as_ref()
            .and_then(|p| p.path.as_ref())
            .map(|p| p.path.as_str()),
        Some("\\Users\\bob\\Pictures\\animals\\koala.jpg.properties")
    );
    // The writer drops the samples' leading spaces in Hash and writes uppercase hex.
    let text = v.to_verbose_xml();
    assert!(
        text.contains("Hash=\"9C8AE14A55241F98533C4D80D85CDC68\""),
        "{text}"
    );
    assert!(v.has_errors());
    assert_eq!(DriveLogStatus::from_blobs(&v.blobs), v.status);
}

#[test]
fn error_log_written_from_the_verbose_sample_is_the_published_error_log() {
    let verbose = log("logs/import-verbose.xml");
    let published = log("logs/import-error.xml");
    let written = DriveLog::parse(verbose.to_error_xml().as_bytes()).unwrap();
    // The published pair disagrees on DriveId (azure-import-export.md §7 item 1); all else matches.
    assert_eq!(written.drive_id, "WD-WMATV123456");
    assert_eq!(published.drive_id, "WD-WMATV6965824");
    assert_eq!(
        DriveLog {
            drive_id: published.drive_id.clone(),
            ..written
        },
        published
    );
    // Re-filtering an error log changes nothing.
    assert_eq!(published.errors_only(), published);
}

#[test]
fn file_not_found_log_and_md5_block_ids() {
    let l = log("logs/import-error-file-not-found.xml");
    assert_eq!(l.drive_id, "9WM35C2V");
    let b = &l.blobs[0];
    assert_eq!(b.status, BlobStatus::FileNotFound);
    assert_eq!(b.file_path, "\\animals\\koala.jpg");
    assert_eq!(b.length_bytes, 30310);
    assert_eq!(
        b.import_disposition
            .as_ref()
            .map(|d| (&d.status, d.requested.as_str())),
        Some((&ImportDispositionStatus::Cancelled, "rename"))
    );
    let Some(RangeList::BlockList(blocks)) = &b.list else {
        panic!("no block list")
    };
    assert_eq!(blocks.len(), 5);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(
            (block.offset_bytes, block.length_bytes),
            (6062 * i as u64, 6062)
        );
        assert_eq!(block.status, RangeStatus::Cancelled);
        // A tool-generated Id is `MD5/` + Base64 of the block's MD5, the same digest as Hash.
        let id = block
            .id
            .as_deref()
            .and_then(|id| id.strip_prefix("MD5/"))
            .unwrap();
        assert_eq!(
            Some(Md5Digest::from_base64(id).unwrap()),
            block.hash,
            "block {i}"
        );
    }
    // Every child failed, so the error log is the whole document.
    assert_eq!(l.errors_only(), l);
    assert_eq!(DriveLogStatus::from_blobs(&l.blobs), l.status);
}

#[test]
fn export_properties_failure_log() {
    let l = log("logs/export-error-properties.xml");
    let b = &l.blobs[0];
    assert_eq!(l.drive_id, "9WM35C3U");
    assert_eq!(b.last_modified.as_deref(), Some("2012-09-18T23:47:08Z"));
    assert_eq!(b.length_bytes, 163840);
    assert_eq!(b.list, Some(RangeList::BlockList(vec![])));
    assert_eq!(
        b.properties,
        Some(FileLog {
            status: FileLogStatus::Failed,
            global_path: None,
            path: None
        })
    );
    let text = l.to_error_xml();
    assert!(
        text.contains("    <BlockList />\r\n    <Properties Status=\"Failed\" />\r\n"),
        "{text}"
    );
}

#[test]
fn repair_logs_without_version() {
    let import = log("logs/repair-import.xml");
    assert_eq!(import.version, None);
    let Some(RangeList::PageRangeList(r)) = &import.blobs[0].list else {
        panic!("no page ranges")
    };
    assert_eq!(
        (r[0].offset_bytes, r[0].length_bytes, &r[0].status),
        (65536, 65536, &RangeStatus::Corrupted)
    );
    assert!(!import.to_verbose_xml().contains("Version"));

    let export = log("logs/repair-export.xml");
    assert_eq!(export.version, None);
    let b = &export.blobs[0];
    assert_eq!(b.blob_path, "pictures/wild/desert.jpg");
    let Some(RangeList::BlockList(blocks)) = &b.list else {
        panic!("no block list")
    };
    assert_eq!(
        blocks,
        &[BlockLog {
            offset_bytes: 65536,
            length_bytes: 65536,
            id: Some("AQAAAA==".into()),
            hash: None,
            status: RangeStatus::Failed
        }]
    );
}

#[test]
fn metadata_and_properties_fixtures() {
    let m = Metadata::parse(&fixture("metadata/import-metadata.xml")).unwrap();
    let entries: Vec<_> = m.iter().collect();
    assert_eq!(
        entries,
        [
            ("UploadMethod", "Windows Azure Import/Export service"),
            ("DataSetName", "SampleData"),
            ("CreationDate", "10/1/2013")
        ]
    );
    assert_eq!(Metadata::parse(m.to_xml().as_bytes()).unwrap(), m);

    let p = Properties::parse(&fixture("metadata/import-properties.xml")).unwrap();
    let expected = Properties {
        content_type: Some("application/octet-stream".into()),
        content_md5: Some(Md5Digest(*b"Check Integrity!")),
        cache_control: Some("no-cache".into()),
        ..Properties::default()
    };
    assert_eq!(p, expected);
    let text = p.to_xml();
    assert!(
        text.contains("<Content-MD5>Q2hlY2sgSW50ZWdyaXR5IQ==</Content-MD5>"),
        "{text}"
    );
    assert_eq!(Properties::parse(text.as_bytes()).unwrap(), p);

    let typo = Properties::parse(&fixture("metadata/properties-grammar-typo.xml"));
    assert!(
        matches!(typo, Err(MetadataError::ContentLengthNotClosed { .. })),
        "{typo:?}"
    );
}

#[test]
fn blob_list_fixture() {
    let list = BlobList::parse(&fixture("bloblists/preview-export.xml")).unwrap();
    assert_eq!(
        list.entries,
        [
            Selector::Exact(BlobPath::parse("pictures/animals/koala.jpg").unwrap()),
            Selector::Container("vhds".into()),
            Selector::Container("movies".into()),
        ]
    );
    assert_eq!(BlobList::parse(list.to_xml().as_bytes()).unwrap(), list);
}

// ---- generated models ----

/// Text the parsers keep exactly: no surrounding whitespace, no control characters, not empty.
fn text() -> impl Strategy<Value = String> {
    "[^\\p{C}]{1,24}".prop_filter("trimmed", |s| !s.trim().is_empty() && s.trim() == s)
}

fn status<T: Clone + std::fmt::Debug + for<'a> From<&'a str>>(
    known: &'static [T],
) -> impl Strategy<Value = T> {
    prop_oneof![
        4 => proptest::sample::select(known),
        1 => "[A-Z][A-Za-z]{0,15}".prop_map(|s| T::from(format!("X{s}").as_str())),
    ]
}

fn digest() -> impl Strategy<Value = Md5Digest> {
    any::<[u8; 16]>().prop_map(Md5Digest)
}

fn hashed_path() -> impl Strategy<Value = HashedPath> {
    (text(), proptest::option::of(digest())).prop_map(|(path, hash)| HashedPath { path, hash })
}

fn file_log() -> impl Strategy<Value = FileLog> {
    (
        status(FileLogStatus::KNOWN),
        proptest::option::of(hashed_path()),
        proptest::option::of(hashed_path()),
    )
        .prop_map(|(status, global_path, path)| FileLog {
            status,
            global_path,
            path,
        })
}

fn range_list() -> impl Strategy<Value = RangeList> {
    let range = (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(digest()),
        status(RangeStatus::KNOWN),
    )
        .prop_map(|(offset_bytes, length_bytes, hash, status)| RangeLog {
            offset_bytes,
            length_bytes,
            hash,
            status,
        });
    let block = (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(text()),
        proptest::option::of(digest()),
        status(RangeStatus::KNOWN),
    )
        .prop_map(|(offset_bytes, length_bytes, id, hash, status)| BlockLog {
            offset_bytes,
            length_bytes,
            id,
            hash,
            status,
        });
    prop_oneof![
        proptest::collection::vec(range, 0..4).prop_map(RangeList::PageRangeList),
        proptest::collection::vec(block, 0..4).prop_map(RangeList::BlockList),
    ]
}

fn blob_log() -> impl Strategy<Value = BlobLog> {
    let disposition = (status(ImportDispositionStatus::KNOWN), text())
        .prop_map(|(status, requested)| ImportDisposition { status, requested });
    (
        (
            status(BlobStatus::KNOWN),
            text(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
        ),
        (
            any::<u64>(),
            proptest::option::of(disposition),
            proptest::option::of(range_list()),
            proptest::option::of(file_log()),
            proptest::option::of(file_log()),
        ),
    )
        .prop_map(
            |(
                (status, blob_path, file_path, snapshot, last_modified),
                (length_bytes, import_disposition, list, metadata, properties),
            )| BlobLog {
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
            },
        )
}

fn drive_log() -> impl Strategy<Value = DriveLog> {
    (
        proptest::option::of(text()),
        text(),
        proptest::collection::vec(blob_log(), 0..4),
        status(DriveLogStatus::KNOWN),
    )
        .prop_map(|(version, drive_id, blobs, status)| DriveLog {
            version,
            drive_id,
            blobs,
            status,
        })
}

fn selector() -> impl Strategy<Value = Selector> {
    let container = "[a-z0-9]{3,12}";
    let blob = "[^\\p{C}/][^\\p{C}]{0,20}";
    prop_oneof![
        Just(Selector::All),
        "[a-z0-9]{1,10}".prop_map(Selector::ContainerPrefix),
        container.prop_map(Selector::Container),
        (container, blob)
            .prop_map(|(container, prefix)| Selector::BlobPrefix { container, prefix }),
        (container, blob).prop_map(|(c, b)| Selector::Exact(BlobPath {
            container: c,
            name: b
        })),
    ]
    .prop_filter("no surrounding whitespace", |s| {
        let t = s.to_string();
        t.trim() == t
    })
}

proptest! {
    #[test]
    fn drive_log_round_trips(model in drive_log()) {
        let verbose = DriveLog::parse(model.to_verbose_xml().as_bytes()).unwrap();
        prop_assert_eq!(&verbose, &model);
        let errors = DriveLog::parse(model.to_error_xml().as_bytes()).unwrap();
        prop_assert_eq!(&errors, &model.errors_only());
        prop_assert!(errors.blobs.iter().all(BlobLog::has_errors));
        prop_assert_eq!(errors.blobs.len(), model.blobs.iter().filter(|b| b.has_errors()).count());
    }

    #[test]
    fn metadata_round_trips(entries in proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,12}", "([^\\p{C}]{0,30})"), 0..8)) {
        let mut m = Metadata::new();
        for (name, value) in entries {
            let value = value.trim().to_string();
            let _ = m.insert(name, value); // duplicates are rejected, the rest kept
        }
        prop_assert!(m.size_bytes() <= MAX_METADATA_BYTES);
        prop_assert_eq!(Metadata::parse(m.to_xml().as_bytes()).unwrap(), m);
    }

    #[test]
    fn properties_round_trip(
        texts in proptest::collection::vec(proptest::option::of(text()), 7),
        content_length_bytes in proptest::option::of(any::<u64>()),
        content_md5 in proptest::option::of(digest()),
    ) {
        let t = |i: usize| texts.get(i).cloned().flatten();
        let p = Properties {
            last_modified: t(0),
            etag: t(1),
            content_length_bytes,
            content_type: t(2),
            content_md5,
            content_encoding: t(3),
            content_language: t(4),
            cache_control: t(5),
            content_disposition: t(6),
        };
        prop_assert_eq!(Properties::parse(p.to_xml().as_bytes()).unwrap(), p);
    }

    #[test]
    fn blob_list_round_trips(entries in proptest::collection::vec(selector(), 1..8)) {
        let list = BlobList { entries };
        prop_assert_eq!(BlobList::parse(list.to_xml().as_bytes()).unwrap(), list);
    }
}
