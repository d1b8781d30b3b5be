//! Integration tests of the drive manifest over the fixtures in `tests/data/manifests/` (described in
//! `tests/data/README.md`), and a round-trip property over generated models.

use std::path::PathBuf;

use drivecopy::digest::Md5Digest;
use drivecopy::manifest::{
    Blob, BlobList, Block, Credential, Drive, DriveManifest, HashedPath, ImportDisposition, Limits,
    PageRange, Problem, ProblemKind, Secret, SourceOffset,
};
use drivecopy::names::{NameError, PathError};
use proptest::prelude::*;

const VALID: &[&str] = &[
    "import-tool-output.xml",
    "export-9WM35C3U.xml",
    "import-waimportexport.xml",
];

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "data",
        "manifests",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse(name: &str) -> DriveManifest {
    DriveManifest::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e} ({e:?})"))
}

/// `parse(to_xml(m)) == m`, and `to_xml` is a fixed point after one round.
fn assert_round_trips(m: &DriveManifest) {
    let xml = m.to_xml();
    let again = DriveManifest::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    assert_eq!(&again, m, "{xml}");
    assert_eq!(again.to_xml(), xml);
}

#[test]
fn valid_fixtures_parse_validate_clean_and_round_trip() {
    for name in VALID {
        let m = parse(name);
        let problems = m.validate(&Limits::default());
        assert!(problems.is_empty(), "{name}: {}", list(&problems));
        assert_round_trips(&m);
    }
}

#[test]
fn tool_output_fixture_keeps_the_sample_shape() {
    let m = parse("import-tool-output.xml");
    assert_eq!(m.version.as_deref(), Some("2011-MM-DD"));
    assert!(matches!(
        m.drive.credential,
        Some(Credential::StorageAccountKey(_))
    ));
    let list = &m.drive.blob_lists[0];
    assert_eq!(list.id.as_deref(), Some("session#1-0"));
    assert!(list.metadata_path.is_some() && list.properties_path.is_some());
    let page = &list.blobs[0];
    assert!(page.is_page_blob());
    assert_eq!(
        page.page_range_list.as_deref(),
        Some(
            &[PageRange {
                offset: 1_073_741_824,
                length: 512,
                hash: Md5Digest::of(&[0; 512])
            }][..]
        )
    );
    let block = &list.blobs[1];
    let zeros = vec![0u8; 4_194_304];
    let only = &block.block_list.as_ref().unwrap()[0];
    assert_eq!(
        (only.offset, only.length, only.hash),
        (0, 4_194_304, Md5Digest::of(&zeros))
    );
    assert_eq!(
        only.id.as_deref(),
        Some(format!("MD5/{}", Md5Digest::of(&zeros).to_base64()).as_str())
    );
    // The key is in the model but never in its debug or JSON forms.
    let key = m
        .drive
        .credential
        .as_ref()
        .unwrap()
        .secret()
        .expose()
        .to_string();
    assert!(!format!("{m:?}").contains(&key));
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        !json.contains(&key) && json.contains("<redacted>"),
        "{json}"
    );
    assert!(m.to_xml().contains(&key));
}

#[test]
fn placeholder_sample_parses_and_is_rejected_for_both_lists() {
    let m = parse("schema-tool-output-placeholder.xml");
    assert_round_trips(&m);
    let blob = &m.drive.blob_lists[0].blobs[0];
    assert!(blob.page_range_list.is_some() && blob.block_list.is_some());
    let kinds: Vec<_> = m
        .validate(&Limits::default())
        .into_iter()
        .map(|p| p.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::BothRangeLists,
            ProblemKind::BlockGap { expected_offset: 0 }
        ]
    );
}

#[test]
fn export_fixture_has_the_published_values() {
    let m = parse("export-9WM35C3U.xml");
    assert_eq!(m.version.as_deref(), Some("2011-10-01"));
    assert_eq!(m.drive.drive_id, "9WM35C3U");
    assert_eq!(m.drive.credential, None);
    assert_eq!(
        m.drive.client_creator.as_deref(),
        Some("Windows Azure Import/Export service")
    );
    let blobs = &m.drive.blob_lists[0].blobs;
    let redmond = &blobs[0];
    assert_eq!(
        (redmond.blob_path.as_str(), redmond.length),
        ("pictures/city/redmond.jpg", 15360)
    );
    let ranges: Vec<(u64, u64, String)> = redmond
        .page_range_list
        .iter()
        .flatten()
        .map(|r| (r.offset, r.length, r.hash.to_hex()))
        .collect();
    assert_eq!(
        ranges,
        [
            (0, 3584, "72FC55ED9AFDD40A0C8D5C4193208416".to_string()),
            (3584, 3584, "68B28A561B73D1DA769D4C24AA427DB8".to_string()),
            (7168, 512, "F521DF2F50C46BC5F9EA9FB787A23EED".to_string()),
        ]
    );
    let props = redmond.properties_path.as_ref().unwrap();
    assert_eq!(props.path, r"\pictures\city\redmond.jpg.properties");
    assert_eq!(props.hash.to_hex(), "E72A22EA959566066AD89E3B49020C0A");
    let canyon = &blobs[1];
    let ids: Vec<_> = canyon
        .block_list
        .iter()
        .flatten()
        .map(|b| (b.offset, b.length, b.id.clone()))
        .collect();
    assert_eq!(
        ids,
        ["AAAAAA==", "AQAAAA==", "AgAAAA==", "AwAAAA=="]
            .iter()
            .enumerate()
            .map(|(i, id)| (i as u64 * 2721, 2721, Some(id.to_string())))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        canyon.properties_path.as_ref().unwrap().hash.to_hex(),
        "81D7F81B2C29F10D6E123D386C3A4D5A"
    );
    assert_eq!(canyon.effective_disposition(), ImportDisposition::Rename);
}

#[test]
fn waimportexport_fixture_tolerates_real_world_forms() {
    let m = parse("import-waimportexport.xml");
    assert_eq!(m.version, None);
    assert_eq!(m.drive.drive_id, "WD-WMATV123456");
    match &m.drive.credential {
        Some(Credential::ContainerSas(s)) => {
            assert!(s.expose().starts_with("pictures?sv=2014-02-14&sr=c&"))
        }
        other => panic!("{other:?}"),
    }
    let list = &m.drive.blob_lists[0];
    assert_eq!(
        list.metadata_path
            .as_ref()
            .unwrap()
            .drive_path()
            .unwrap()
            .segments(),
        ["session1.metadata"]
    );
    let desert = &list.blobs[0];
    assert_eq!(
        desert.effective_disposition(),
        ImportDisposition::NoOverwrite
    );
    assert_eq!(
        desert.drive_path().unwrap().segments(),
        ["pictures", "bob", "wild", "desert.jpg"]
    );
    assert_eq!(desert.blob_path().unwrap().container, "pictures");
    // Every tool Id is `MD5/` + Base64 of the block's MD5, which the Hash (any case, spaced) matches.
    for blob in &list.blobs[..2] {
        for b in blob.block_list.iter().flatten() {
            assert_eq!(
                b.id.as_deref(),
                Some(format!("MD5/{}", b.hash.to_base64()).as_str())
            );
        }
    }
    let koala = &list.blobs[1];
    assert_eq!(
        koala.blob_path().unwrap().name,
        "bob/animals/koala & friends (ü).jpg"
    );
    let blocks = koala.block_list.as_ref().unwrap();
    assert_eq!(blocks[1].id, blocks[2].id);
    assert_eq!(blocks[1].hash, Md5Digest::of(&[0; 1000]));
    let vhd = &list.blobs[2];
    assert!(vhd.is_page_blob());
    assert_eq!(
        vhd.page_range_list.as_ref().unwrap()[1].hash,
        Md5Digest::of(&[0xCD; 1024])
    );
}

/// Parse `name`, validate it, and return its one problem after checking that it is located on the
/// second blob and that its document offset points at that `<Blob>` start tag.
fn only_problem(name: &str) -> Problem {
    let bytes = fixture(name);
    let m = DriveManifest::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut problems = m.validate(&Limits::default());
    assert_eq!(problems.len(), 1, "{name}: {}", list(&problems));
    let p = problems.remove(0);
    assert_eq!(p.blob_index(), Some((0, 1)), "{name}: {p}");
    let at = usize::try_from(p.location.source_offset.expect("parsed, so located")).unwrap();
    assert!(bytes[at..].starts_with(b"<Blob>"), "{name}: {p}");
    assert_eq!(
        p.location.blob_path.as_deref(),
        Some(m.drive.blob_lists[0].blobs[1].blob_path.as_str())
    );
    p
}

/// (element, item index, offset within the blob) of a problem.
fn place(p: &Problem) -> (&'static str, Option<usize>, Option<u64>) {
    (
        p.location.element,
        p.location.item_index,
        p.location.offset_bytes,
    )
}

#[test]
fn rejects_a_file_path_that_climbs_out_of_the_drive() {
    let p = only_problem("invalid-file-path-parent.xml");
    assert!(
        matches!(&p.kind, ProblemKind::InvalidFilePath(e @ PathError::ParentSegment { .. }) if !e.is_too_long()),
        "{p}"
    );
    assert_eq!(place(&p), ("FilePath", None, None));
}

#[test]
fn rejects_overlapping_page_ranges() {
    let p = only_problem("invalid-page-ranges-overlap.xml");
    assert_eq!(p.kind, ProblemKind::PageRangeOverlap { previous_end: 1024 });
    assert_eq!(place(&p), ("PageRange", Some(1), Some(512)));
}

#[test]
fn rejects_unsorted_page_ranges() {
    let p = only_problem("invalid-page-ranges-unsorted.xml");
    assert_eq!(
        p.kind,
        ProblemKind::PageRangeUnsorted {
            previous_offset: 4096
        }
    );
    assert_eq!(place(&p), ("PageRange", Some(1), Some(0)));
}

#[test]
fn rejects_a_gap_in_a_block_list() {
    let p = only_problem("invalid-block-gap.xml");
    assert_eq!(
        p.kind,
        ProblemKind::BlockGap {
            expected_offset: 4_194_304
        }
    );
    assert_eq!(place(&p), ("Block", Some(1), Some(4_194_816)));
}

#[test]
fn rejects_block_ids_of_mixed_length() {
    let p = only_problem("invalid-block-id-mixed-length.xml");
    assert_eq!(
        p.kind,
        ProblemKind::BlockIdLengthMismatch {
            expected_chars: 8,
            found_chars: 12
        }
    );
    assert_eq!(place(&p), ("Block", Some(1), Some(10)));
}

#[test]
fn rejects_a_block_over_the_limit() {
    let p = only_problem("invalid-block-too-long.xml");
    assert_eq!(
        p.kind,
        ProblemKind::BlockTooLong {
            length: 4_194_305,
            max_bytes: 4_194_304
        }
    );
    assert_eq!(place(&p), ("Block", Some(0), Some(0)));
    // A later service's bigger block limit accepts it.
    let m = DriveManifest::parse(&fixture("invalid-block-too-long.xml")).unwrap();
    assert!(m
        .validate(&Limits::default().with_max_block_bytes(4000 << 20))
        .is_empty());
}

#[test]
fn rejects_a_page_range_not_aligned_to_512() {
    let p = only_problem("invalid-page-range-unaligned.xml");
    assert_eq!(
        p.kind,
        ProblemKind::PageRangeUnaligned {
            offset: 1000,
            length: 512
        }
    );
    assert_eq!(place(&p), ("PageRange", Some(1), Some(1000)));
}

#[test]
fn rejects_an_invalid_container_name() {
    let p = only_problem("invalid-container-name.xml");
    assert!(
        matches!(&p.kind, ProblemKind::InvalidBlobPath(NameError::Container { name, .. }) if name == "Pictures_2014"),
        "{p}"
    );
    assert_eq!(place(&p), ("BlobPath", None, None));
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

// ---- property: every generated model round-trips through XML -------------------------------

/// Text with XML-special characters, whitespace, line breaks, control characters and non-ASCII:
/// anything but NUL, which XML 1.0 cannot carry.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/ ]{0,12}",
        "[ \t\r\n<>&\"'\\\\/a-zA-Zü漢🦀.;=?#%-]{0,24}",
        "\\PC{0,16}",
        "[^\\x00]{0,16}",
    ]
}

fn digest() -> impl Strategy<Value = Md5Digest> {
    any::<[u8; 16]>().prop_map(Md5Digest)
}

fn hashed() -> impl Strategy<Value = HashedPath> {
    (text(), digest()).prop_map(|(path, hash)| HashedPath { path, hash })
}

fn blocks() -> impl Strategy<Value = Vec<Block>> {
    prop::collection::vec(
        (
            any::<u64>(),
            0u64..(8 << 20),
            prop::option::of(text()),
            digest(),
        ),
        0..8,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(offset, length, id, hash)| Block {
                offset,
                length,
                id,
                hash,
            })
            .collect()
    })
}

fn ranges() -> impl Strategy<Value = Vec<PageRange>> {
    prop::collection::vec((any::<u64>(), any::<u64>(), digest()), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(offset, length, hash)| PageRange {
                offset,
                length,
                hash,
            })
            .collect()
    })
}

fn disposition() -> impl Strategy<Value = Option<ImportDisposition>> {
    prop::option::of(prop_oneof![
        Just(ImportDisposition::Rename),
        Just(ImportDisposition::NoOverwrite),
        Just(ImportDisposition::Overwrite),
    ])
}

fn blob() -> impl Strategy<Value = Blob> {
    (
        (
            text(),
            text(),
            prop::option::of(text()),
            prop::option::of(text()),
            any::<u64>(),
        ),
        (
            disposition(),
            prop::option::of(ranges()),
            prop::option::of(blocks()),
        ),
        (prop::option::of(hashed()), prop::option::of(hashed())),
    )
        .prop_map(
            |(
                (blob_path, file_path, client_data, snapshot, length),
                (import_disposition, page_range_list, block_list),
                (metadata_path, properties_path),
            )| Blob {
                blob_path,
                file_path,
                client_data,
                snapshot,
                length,
                import_disposition,
                page_range_list,
                block_list,
                metadata_path,
                properties_path,
                source_offset: SourceOffset(None),
            },
        )
}

fn credential() -> impl Strategy<Value = Option<Credential>> {
    prop::option::of(prop_oneof![
        text().prop_map(|t| Credential::StorageAccountKey(Secret::new(t))),
        text().prop_map(|t| Credential::ContainerSas(Secret::new(t))),
    ])
}

fn manifest() -> impl Strategy<Value = DriveManifest> {
    let list = (
        prop::option::of(text()),
        prop::option::of(hashed()),
        prop::option::of(hashed()),
        prop::collection::vec(blob(), 0..4),
    )
        .prop_map(|(id, metadata_path, properties_path, blobs)| BlobList {
            id,
            metadata_path,
            properties_path,
            blobs,
            source_offset: SourceOffset(None),
        });
    (
        prop::option::of(text()),
        text(),
        credential(),
        prop::option::of(text()),
        prop::collection::vec(list, 0..3),
    )
        .prop_map(
            |(version, drive_id, credential, client_creator, blob_lists)| DriveManifest {
                version,
                drive: Drive {
                    drive_id,
                    credential,
                    client_creator,
                    blob_lists,
                    source_offset: SourceOffset(None),
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_model_round_trips_through_xml(m in manifest()) {
        let xml = m.to_xml();
        let back = DriveManifest::parse(xml.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&m), "{}", xml);
        prop_assert_eq!(back.map(|b| b.to_xml()), Ok(xml));
    }

    #[test]
    fn parse_never_panics_on_mutated_fixtures(cut in 0usize..2500, byte in any::<u8>()) {
        let mut doc = fixture("import-waimportexport.xml");
        let at = cut % doc.len();
        doc[at] = byte;
        if let Ok(m) = DriveManifest::parse(&doc) {
            let _ = m.validate(&Limits::default());
            let again = DriveManifest::parse(m.to_xml().as_bytes());
            prop_assert_eq!(again, Ok(m));
        }
    }
}
