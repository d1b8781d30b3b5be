//! End-to-end import tests at the library level: `prepare` makes a drive from generated files,
//! `import_drive` copies it into a store, and each test checks the drive log (the report's and
//! the error log blob's), the dispositions and the bytes in the store. Every scenario runs under
//! the std engine and, when the kernel allows it, under io_uring; and against a `LocalStore` in a
//! temp dir and, when `DRIVECOPY_TEST_AZURITE` is set (scripts/test.sh), against Azurite, each
//! fixture with its own container prefix. Scenarios that inspect the local store's files stay
//! local-only and say why.

mod util;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use bytes::Bytes;
use drivecopy::copylog::{
    BlobLog, BlobStatus, DriveLog, DriveLogStatus, FileLogStatus, ImportDispositionStatus,
    RangeList, RangeStatus,
};
use drivecopy::digest::Md5Digest;
use drivecopy::engine::import::{ImportConfig, LogLevel};
use drivecopy::engine::prepare::{prepare, PrepareConfig, PrepareError, PrepareSource};
use drivecopy::job::DriveState;
use drivecopy::store::{BlobKind, BlobStore, CommitOptions, StoreError};
use tokio_util::sync::CancellationToken;
use util::{
    assert_blob, blob, disposition, each_backend, each_engine, error_log, random_bytes, run_import,
    write_file, Backend, Fixture,
};

const KIB: usize = 1024;
const BLOCK_64K: u64 = 64 * 1024;

/// The log entry of the blob the manifest sent to `path` (matched on the manifest's blob path
/// recorded in the file path, since a renamed blob's `BlobPath` changes).
fn entry<'a>(log: &'a DriveLog, file_path: &str) -> &'a BlobLog {
    log.blobs
        .iter()
        .find(|b| b.file_path == file_path)
        .unwrap_or_else(|| {
            panic!(
                "no log entry for {file_path}: {:?}",
                log.blobs.iter().map(|b| &b.file_path).collect::<Vec<_>>()
            )
        })
}

fn disposition_of(b: &BlobLog) -> ImportDispositionStatus {
    b.import_disposition
        .as_ref()
        .expect("an import disposition")
        .status
        .clone()
}

fn range_statuses(b: &BlobLog) -> Vec<(u64, RangeStatus)> {
    match b.list.as_ref().expect("a block or page range list") {
        RangeList::BlockList(v) => v
            .iter()
            .map(|x| (x.offset_bytes, x.status.clone()))
            .collect(),
        RangeList::PageRangeList(v) => v
            .iter()
            .map(|x| (x.offset_bytes, x.status.clone()))
            .collect(),
    }
}

fn assert_stored(fx: &Fixture, blob_path: &str, expected: &[u8]) {
    let path = fx.store_file(blob_path);
    let got =
        std::fs::read(&path).unwrap_or_else(|e| panic!("read store file {}: {e}", path.display()));
    assert!(
        got == expected,
        "{blob_path}: store bytes differ from the source ({} vs {} bytes)",
        got.len(),
        expected.len()
    );
}

async fn assert_absent(store: &dyn BlobStore, fx: &Fixture, blob_path: &str) {
    if let Backend::Local = fx.backend {
        assert!(
            !fx.store_file(blob_path).exists(),
            "{blob_path} has a store file"
        );
    }
    match store.get_properties(&blob(blob_path)).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{blob_path} should not exist: {other:?}"),
    }
}

#[test]
fn one_flipped_byte_fails_only_its_block_and_blob() {
    each_backend(
        "one_flipped_byte_fails_only_its_block_and_blob",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            fx.source_file("big.bin", random_bytes(5 * 64 * KIB + 100, 1));
            let small = fx.source_file("a.txt", random_bytes(3000, 2));
            let nested = fx.source_file("dir/b.dat", random_bytes(200 * KIB, 3));
            fx.prepare("photos", BLOCK_64K);

            let flipped_at = 2 * 64 * KIB + 17;
            let on_drive = fx.drive.join("photos/big.bin");
            let mut bytes = std::fs::read(&on_drive).unwrap();
            bytes[flipped_at] ^= 0x40;
            write_file(&on_drive, &bytes);

            let store = fx.target();
            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);
            assert_eq!(report.status().drive_state(), DriveState::CompletedMoreInfo);
            assert_eq!(report.blobs_failed(), 1);
            assert!(report
                .error_log_uri
                .as_deref()
                .is_some_and(|u| u.starts_with(fx.uri_scheme())));

            let log = error_log(store.as_ref()).await;
            assert_eq!(log.status, DriveLogStatus::CompletedWithErrors);
            assert_eq!(log.drive_id, util::DRIVE_ID);
            assert_eq!(
                log.blobs.len(),
                1,
                "only the corrupted blob is in the error log"
            );
            let b = &log.blobs[0];
            assert_eq!(b.blob_path, "photos/big.bin");
            assert_eq!(b.status, BlobStatus::CompletedWithErrors);
            let corrupted: Vec<u64> = range_statuses(b)
                .into_iter()
                .filter(|(_, s)| *s == RangeStatus::Corrupted)
                .map(|(o, _)| o)
                .collect();
            assert_eq!(corrupted, vec![2 * BLOCK_64K]);
            assert!(
                range_statuses(b)
                    .iter()
                    .all(|(_, s)| *s != RangeStatus::Completed),
                "the error log lists only failed blocks"
            );

            assert_absent(store.as_ref(), &fx, "photos/big.bin").await;
            assert_blob(store.as_ref(), "photos/a.txt", &small).await;
            assert_blob(store.as_ref(), "photos/dir/b.dat", &nested).await;
        },
    );
}

// Local store only: it scans every file of the store for bytes from outside the drive.
#[test]
fn file_paths_that_leave_the_drive_are_refused() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let ok = fx.source_file("ok.txt", random_bytes(1000, 10));
        let escaped = fx.source_file("evil2.txt", random_bytes(4096, 12));
        let linked = fx.source_file("link.txt", random_bytes(4096, 13));
        let inner = fx.source_file("sub/inner.txt", random_bytes(4096, 14));
        fx.source_file("evil1.txt", random_bytes(4096, 11));
        fx.prepare("box", BLOCK_64K);

        // `..\outside.txt` names a real file beside the drive whose bytes match the manifest.
        let outside = fx.drive.parent().unwrap().join("outside.txt");
        std::fs::rename(fx.drive.join("box/evil2.txt"), &outside).unwrap();
        // An absolute symlink on the drive to a file outside it, also with matching bytes.
        let target = fx.outside.join("link-target.txt");
        std::fs::rename(fx.drive.join("box/link.txt"), &target).unwrap();
        std::os::unix::fs::symlink(&target, fx.drive.join("box/link.txt")).unwrap();
        // A directory on the drive that is a symlink to a directory outside it.
        std::fs::rename(fx.drive.join("box/sub"), fx.outside.join("sub")).unwrap();
        std::os::unix::fs::symlink(fx.outside.join("sub"), fx.drive.join("box/sub")).unwrap();
        let mut manifest = fx.manifest();
        for b in &mut manifest.drive.blob_lists[0].blobs {
            match b.blob_path.as_str() {
                "box/evil1.txt" => b.file_path = r"\..\..\etc\passwd".to_string(),
                "box/evil2.txt" => b.file_path = r"..\outside.txt".to_string(),
                _ => {}
            }
        }
        fx.write_manifest(&manifest);

        let store = fx.store();
        let (report, _) =
            run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
        assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);
        let log = error_log(store.as_ref()).await;
        let refused: BTreeSet<&str> = log.blobs.iter().map(|b| b.blob_path.as_str()).collect();
        assert_eq!(
            refused,
            BTreeSet::from([
                "box/evil1.txt",
                "box/evil2.txt",
                "box/link.txt",
                "box/sub/inner.txt"
            ])
        );
        for b in &log.blobs {
            assert_eq!(b.status, BlobStatus::FileNameInvalid, "{}", b.blob_path);
            assert_eq!(
                disposition_of(b),
                ImportDispositionStatus::Cancelled,
                "{}",
                b.blob_path
            );
        }
        for name in [
            "box/evil1.txt",
            "box/evil2.txt",
            "box/link.txt",
            "box/sub/inner.txt",
        ] {
            assert_absent(store.as_ref(), &fx, name).await;
        }
        assert_stored(&fx, "box/ok.txt", &ok);
        // No byte of the outside files reached the store, not even a staged block.
        let passwd = std::fs::read("/etc/passwd").ok();
        for f in Fixture::files_under(&fx.store_root) {
            let data = std::fs::read(&f).unwrap();
            for secret in [Some(&escaped), Some(&linked), Some(&inner), passwd.as_ref()]
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 64)
            {
                assert!(
                    !data.windows(64).any(|w| w == &secret[..64]),
                    "{} holds bytes from outside the drive",
                    f.display()
                );
            }
        }
    });
}

#[test]
fn each_import_disposition() {
    each_backend("each_import_disposition", |backend, engine| async move {
        let fx = Fixture::on(backend);
        let renamed = fx.source_file("r/photo.jpg", random_bytes(5000, 20));
        let kept_new = fx.source_file("n/keep.txt", random_bytes(5000, 21));
        let over = fx.source_file("o/over.txt", random_bytes(5000, 22));
        let created = fx.source_file("p/new.txt", random_bytes(5000, 23));
        let source = |dir: &str, disp: Option<&str>| PrepareSource {
            base_path: fx.src.join(dir),
            destination: format!("cont/{dir}/"),
            disposition: disp.map(|d| disposition(d).unwrap()),
            ..fx.source("cont")
        };
        fx.prepare_with(
            vec![
                source("r", Some("rename")),
                source("n", Some("no-overwrite")),
                source("o", Some("overwrite")),
                source("p", None),
            ],
            BLOCK_64K,
        );

        let store = fx.target();
        store.create_container("cont").await.unwrap();
        let old = |seed| Bytes::from(random_bytes(777, seed));
        for (name, seed) in [
            ("cont/r/photo.jpg", 90),
            ("cont/n/keep.txt", 91),
            ("cont/o/over.txt", 92),
        ] {
            store
                .put_blob(&blob(name), old(seed), CommitOptions::default())
                .await
                .unwrap();
        }

        let (report, _) =
            run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
        let log = &report.drive_log;
        assert_eq!(report.status(), &DriveLogStatus::CompletedWithWarnings);
        assert_eq!(report.status().drive_state(), DriveState::CompletedMoreInfo);
        assert_eq!(report.blobs_failed(), 0);
        assert!(
            report.error_log_uri.is_none(),
            "warnings alone write no error log"
        );

        let r = entry(log, r"\cont\r\photo.jpg");
        assert_eq!(disposition_of(r), ImportDispositionStatus::Renamed);
        assert_eq!(r.blob_path, "cont/r/photo (2).jpg");
        assert_eq!(r.status, BlobStatus::Completed);
        assert_blob(store.as_ref(), "cont/r/photo (2).jpg", &renamed).await;
        assert_blob(store.as_ref(), "cont/r/photo.jpg", &old(90)).await;

        let n = entry(log, r"\cont\n\keep.txt");
        assert_eq!(disposition_of(n), ImportDispositionStatus::Skipped);
        assert_blob(store.as_ref(), "cont/n/keep.txt", &old(91)).await;
        assert_ne!(kept_new, old(91));

        let o = entry(log, r"\cont\o\over.txt");
        assert_eq!(disposition_of(o), ImportDispositionStatus::Overwritten);
        assert_blob(store.as_ref(), "cont/o/over.txt", &over).await;

        let p = entry(log, r"\cont\p\new.txt");
        assert_eq!(disposition_of(p), ImportDispositionStatus::Created);
        assert_eq!(p.import_disposition.as_ref().unwrap().requested, "rename");
        assert_blob(store.as_ref(), "cont/p/new.txt", &created).await;

        // A re-run recognises its own renamed blob: no `photo (3).jpg`, still `Renamed`.
        let (again, _) =
            run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
        let r = entry(&again.drive_log, r"\cont\r\photo.jpg");
        assert_eq!(disposition_of(r), ImportDispositionStatus::Renamed);
        assert_eq!(r.blob_path, "cont/r/photo (2).jpg");
        let names: Vec<String> = store
            .list_blobs("cont", "r/")
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, vec!["r/photo (2).jpg", "r/photo.jpg"]);
        assert_eq!(
            disposition_of(entry(&again.drive_log, r"\cont\n\keep.txt")),
            ImportDispositionStatus::Skipped
        );
        assert_blob(store.as_ref(), "cont/n/keep.txt", &old(91)).await;
    });
}

#[test]
fn missing_and_truncated_files_fail_alone() {
    each_backend(
        "missing_and_truncated_files_fail_alone",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            fx.source_file("gone.txt", random_bytes(5000, 30));
            fx.source_file("trunc.bin", random_bytes(4 * 64 * KIB + 10, 31));
            let fine = fx.source_file("fine.txt", random_bytes(70_000, 32));
            fx.prepare("box", BLOCK_64K);
            std::fs::remove_file(fx.drive.join("box/gone.txt")).unwrap();
            let trunc = std::fs::OpenOptions::new()
                .write(true)
                .open(fx.drive.join("box/trunc.bin"))
                .unwrap();
            trunc.set_len(64 * 1024 + 100).unwrap();
            drop(trunc);

            let store = fx.target();
            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);
            assert_eq!(report.blobs_failed(), 2);
            let log = error_log(store.as_ref()).await;
            assert_eq!(log.blobs.len(), 2);

            let gone = entry(&log, r"\box\gone.txt");
            assert_eq!(gone.status, BlobStatus::FileNotFound);
            assert_eq!(disposition_of(gone), ImportDispositionStatus::Cancelled);
            assert_eq!(range_statuses(gone), vec![(0, RangeStatus::Cancelled)]);
            assert_absent(store.as_ref(), &fx, "box/gone.txt").await;

            let t = entry(&log, r"\box\trunc.bin");
            assert_eq!(t.status, BlobStatus::CompletedWithErrors);
            // Block 0 was read whole (staged, never committed); blocks 1.. run past the end.
            let verbose = entry(&report.drive_log, r"\box\trunc.bin");
            let all = range_statuses(verbose);
            assert_eq!(all[0], (0, RangeStatus::Uncommitted));
            for (offset, status) in &all[1..] {
                assert_eq!(*status, RangeStatus::FileUnexpectedEnd, "block at {offset}");
            }
            assert_eq!(all.len(), 5);
            assert_eq!(
                range_statuses(t),
                all,
                "the error log lists every failed block"
            );
            assert_absent(store.as_ref(), &fx, "box/trunc.bin").await;

            assert_blob(store.as_ref(), "box/fine.txt", &fine).await;
            assert_eq!(
                entry(&report.drive_log, r"\box\fine.txt").status,
                BlobStatus::Completed
            );
        },
    );
}

const METADATA: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Metadata>\r\n  <UploadMethod>drive</UploadMethod>\r\n  <DataSetName>SampleData</DataSetName>\r\n</Metadata>\r\n";
const PROPERTIES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Properties>\r\n  <Content-Type>image/jpeg</Content-Type>\r\n  <Cache-Control>no-cache</Cache-Control>\r\n</Properties>\r\n";

#[test]
fn metadata_and_properties_files() {
    each_backend(
        "metadata_and_properties_files",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let side = fx.tmp.path().join("side");
            write_file(&side.join("meta.xml"), METADATA.as_bytes());
            write_file(&side.join("props.xml"), PROPERTIES.as_bytes());
            let good = fx.source_file("good/a.jpg", random_bytes(3000, 40));
            fx.source_file("badmeta/b.jpg", random_bytes(3000, 41));
            fx.source_file("badprops/c.jpg", random_bytes(3000, 42));
            let source = |dir: &str| PrepareSource {
                base_path: fx.src.join(dir),
                destination: format!("meta/{dir}/"),
                metadata_file: Some(side.join("meta.xml")),
                properties_file: Some(side.join("props.xml")),
                ..fx.source("meta")
            };
            fx.prepare_with(
                vec![source("good"), source("badmeta"), source("badprops")],
                BLOCK_64K,
            );
            let manifest = fx.manifest();
            let lists = &manifest.drive.blob_lists;
            let on_drive = |p: &str| fx.drive.join(p.trim_start_matches('\\').replace('\\', "/"));
            let meta1 = on_drive(&lists[1].metadata_path.as_ref().unwrap().path);
            let props2 = on_drive(&lists[2].properties_path.as_ref().unwrap().path);
            write_file(
                &meta1,
                METADATA.replace("SampleData", "SampleDatA").as_bytes(),
            );
            write_file(
                &props2,
                PROPERTIES.replace("image/jpeg", "image/jpeG").as_bytes(),
            );

            let store = fx.target();
            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);

            let g = entry(&report.drive_log, r"\meta\good\a.jpg");
            assert_eq!(g.status, BlobStatus::Completed);
            assert_eq!(
                g.metadata.as_ref().unwrap().status,
                FileLogStatus::Completed
            );
            assert_eq!(
                g.properties.as_ref().unwrap().status,
                FileLogStatus::Completed
            );
            let props = store
                .get_properties(&blob("meta/good/a.jpg"))
                .await
                .unwrap();
            assert_eq!(props.content.content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(props.content.cache_control.as_deref(), Some("no-cache"));
            let meta: Vec<(&str, &str)> = props
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let expected = match fx.backend {
                Backend::Local => vec![("DataSetName", "SampleData"), ("UploadMethod", "drive")],
                // Metadata names travel as HTTP header names, which reach Azure lowercased
                // (store::azure module docs).
                Backend::Azurite(_) => {
                    vec![("datasetname", "SampleData"), ("uploadmethod", "drive")]
                }
            };
            assert_eq!(meta, expected);
            assert_blob(store.as_ref(), "meta/good/a.jpg", &good).await;

            let log = error_log(store.as_ref()).await;
            assert_eq!(log.blobs.len(), 2);
            let m = entry(&log, r"\meta\badmeta\b.jpg");
            assert_eq!(m.status, BlobStatus::CompletedWithErrors);
            let mlog = m.metadata.as_ref().expect("<Metadata> in the error log");
            assert_eq!(mlog.status, FileLogStatus::Corrupted);
            assert!(
                m.properties.is_none(),
                "the good properties are not an error"
            );
            let p = entry(&log, r"\meta\badprops\c.jpg");
            assert_eq!(p.status, BlobStatus::CompletedWithErrors);
            assert_eq!(
                p.properties
                    .as_ref()
                    .expect("<Properties> in the error log")
                    .status,
                FileLogStatus::Corrupted
            );
            assert!(p.metadata.is_none());
            // A corrupted file is never applied.
            if let Ok(props) = store.get_properties(&blob("meta/badmeta/b.jpg")).await {
                assert!(props.metadata.values().all(|v| v != "SampleDatA"));
            }
            if let Ok(props) = store.get_properties(&blob("meta/badprops/c.jpg")).await {
                assert_ne!(props.content.content_type.as_deref(), Some("image/jpeG"));
            }
        },
    );
}

/// A named change to the import configuration and the drive status it must give.
type Case = (&'static str, fn(&mut ImportConfig), DriveLogStatus);

#[test]
fn drive_level_manifest_failures_import_nothing() {
    each_backend(
        "drive_level_manifest_failures_import_nothing",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            fx.source_file("x.bin", random_bytes(9000, 50));
            let prepared = fx.prepare("data", BLOCK_64K);
            write_file(
                &fx.drive.join("Bad.xml"),
                b"<DriveManifest><Drive><DriveId>x</Drive>",
            );

            let cases: [Case; 6] = [
                (
                    "hash",
                    |c| c.manifest_hash = Some("0".repeat(32)),
                    DriveLogStatus::ManifestCorrupted,
                ),
                (
                    "missing",
                    |c| c.manifest_file = r"\Missing.xml".to_string(),
                    DriveLogStatus::ManifestNotFound,
                ),
                (
                    "malformed",
                    |c| c.manifest_file = r"\Bad.xml".to_string(),
                    DriveLogStatus::ManifestFormatInvalid,
                ),
                (
                    "drive id",
                    |c| c.drive_id = Some("OTHERDRIVE".to_string()),
                    DriveLogStatus::ManifestDriveIdMismatch,
                ),
                (
                    "name outside the drive",
                    |c| c.manifest_file = r"\..\DriveManifest.xml".to_string(),
                    DriveLogStatus::ManifestNameInvalid,
                ),
                (
                    "no drive",
                    |c| c.drive_root = "/nonexistent-drivecopy-itest-drive".into(),
                    DriveLogStatus::DiskNotFound,
                ),
            ];
            for (i, (name, tweak, expected)) in cases.iter().enumerate() {
                let store = fx.fresh_target(&format!("store-{i}"));
                let mut config = fx.config(engine);
                config.drive_id = Some(util::DRIVE_ID.to_string());
                tweak(&mut config);
                let (report, _) =
                    run_import(&config, store.clone(), CancellationToken::new()).await;
                assert_eq!(report.status(), expected, "{name}");
                assert!(report.is_drive_failure(), "{name}");
                assert_eq!(
                    report.status().drive_state(),
                    DriveState::CompletedMoreInfo,
                    "{name}"
                );
                assert_eq!(report.bytes_succeeded, 0, "{name}");
                assert!(report.drive_log.blobs.is_empty(), "{name}");
                assert!(
                    report.error_log_uri.is_some(),
                    "{name}: the error log is written"
                );
                let log = error_log(store.as_ref()).await;
                assert_eq!(&log.status, expected, "{name}");
                assert!(log.blobs.is_empty(), "{name}");
                let expected_id = if *name == "drive id" {
                    "OTHERDRIVE"
                } else {
                    util::DRIVE_ID
                };
                assert_eq!(log.drive_id, expected_id, "{name}");
                assert_eq!(
                    store.list_containers().await.unwrap(),
                    vec!["waimportexport".to_string()],
                    "{name}: nothing imported"
                );
            }

            // The right hash, MD5 in lower case or SHA-256 (newer jobs), imports the drive.
            use sha2::Digest as _;
            let bytes = std::fs::read(fx.drive.join("DriveManifest.xml")).unwrap();
            let sha256: String = sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            for hash in [prepared.drive_info.manifest_hash.to_lowercase(), sha256] {
                let store = fx.target();
                let mut config = fx.config(engine);
                config.manifest_hash = Some(hash.clone());
                let (report, _) =
                    run_import(&config, store.clone(), CancellationToken::new()).await;
                assert_eq!(report.status(), &DriveLogStatus::Completed, "{hash}");
                assert_eq!(report.status().drive_state(), DriveState::Completed);
                assert_eq!(report.bytes_succeeded, 9000);
            }
        },
    );
}

// Local store only: it proves "a re-run copies nothing" by the store files' inodes and mtimes.
#[test]
fn an_interrupted_import_finishes_on_rerun_and_a_rerun_copies_nothing() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let files: Vec<(String, Vec<u8>)> = (0..24)
            .map(|i| {
                let name = format!("f{i:02}.bin");
                let data = fx.source_file(&name, random_bytes(10 * KIB + i * 1337, 100 + i as u64));
                (format!("box/{name}"), data)
            })
            .collect();
        fx.prepare("box", 8 * 1024);

        let store = fx.store();
        let token = CancellationToken::new();
        let cancelling = Arc::new(util::CancelAfterCommits::commits(
            store.clone(),
            token.clone(),
            5,
        ));
        let mut config = fx.config(engine);
        config.blobs_in_flight = Some(2);
        let (report, _) = run_import(&config, cancelling, token).await;
        assert!(report.cancelled, "the run reports cancelled");
        assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);
        let mut present = 0;
        for (name, data) in &files {
            if fx.store_file(name).exists() {
                assert_stored(&fx, name, data);
                present += 1;
            } else {
                assert_absent(store.as_ref(), &fx, name).await;
                let e = entry(&report.drive_log, &format!(r"\{}", name.replace('/', "\\")));
                assert_eq!(e.status, BlobStatus::Failed, "{name}");
                assert_eq!(
                    disposition_of(e),
                    ImportDispositionStatus::Cancelled,
                    "{name}"
                );
            }
        }
        eprintln!(
            "{present} of {} blobs committed before the cancel",
            files.len()
        );
        assert!(
            present >= 5 && present < files.len(),
            "{present} blobs committed before the cancel took effect"
        );
        let listed = store.list_blobs("box", "").await.unwrap();
        assert_eq!(listed.len(), present, "only complete blobs are listed");

        // The second run finishes the drive and recognises the blobs already there.
        let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
        assert!(!report.cancelled);
        assert_eq!(report.status(), &DriveLogStatus::Completed);
        assert_eq!(report.bytes_succeeded, report.bytes_total);
        for b in &report.drive_log.blobs {
            assert_eq!(
                disposition_of(b),
                ImportDispositionStatus::Created,
                "{}",
                b.blob_path
            );
            assert_eq!(b.status, BlobStatus::Completed);
        }
        for (name, data) in &files {
            assert_stored(&fx, name, data);
        }
        assert_eq!(
            store.list_blobs("box", "").await.unwrap().len(),
            files.len(),
            "no renamed copies"
        );

        // A plain re-run copies nothing: every store file keeps its inode and mtime.
        let stamp = |name: &str| {
            let m = std::fs::metadata(fx.store_file(name)).unwrap();
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let before: Vec<_> = files.iter().map(|(n, _)| stamp(n)).collect();
        let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
        assert_eq!(report.status(), &DriveLogStatus::Completed);
        assert!(report
            .drive_log
            .blobs
            .iter()
            .all(|b| disposition_of(b) == ImportDispositionStatus::Created));
        let after: Vec<_> = files.iter().map(|(n, _)| stamp(n)).collect();
        assert_eq!(before, after);
    });
}

#[test]
fn a_page_blob_keeps_its_holes() {
    each_backend(
        "a_page_blob_keeps_its_holes",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let len = 5 * 1024 * KIB;
            let mut disk = vec![0u8; len];
            // Written pages, including a run across the 4 MiB Put Page limit.
            let pages: Vec<usize> = [0, 1, 2, 100]
                .into_iter()
                .chain(1000..1010)
                .chain(8190..8195)
                .chain([10239])
                .collect();
            for (i, &p) in pages.iter().enumerate() {
                disk[p * 512..(p + 1) * 512].copy_from_slice(&random_bytes(512, 200 + i as u64));
            }
            let disk = fx.source_file("disk.vhd", disk);
            fx.prepare("vhds", BLOCK_64K);

            let store = fx.target();
            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::Completed);
            let e = entry(&report.drive_log, r"\vhds\disk.vhd");
            assert!(matches!(e.list, Some(RangeList::PageRangeList(_))));
            assert!(range_statuses(e)
                .iter()
                .all(|(_, s)| *s == RangeStatus::Completed));

            assert_blob(store.as_ref(), "vhds/disk.vhd", &disk).await;
            if let Backend::Local = fx.backend {
                let allocated = std::fs::metadata(fx.store_file("vhds/disk.vhd"))
                    .unwrap()
                    .blocks()
                    * 512;
                assert!(
                    allocated < (len / 4) as u64,
                    "the store file is sparse: {allocated} bytes allocated"
                );
            }
            let on_drive = fx.drive.join("vhds").join("disk.vhd");
            let drive_allocated = std::fs::metadata(&on_drive).unwrap().blocks() * 512;
            assert_eq!(
                std::fs::read(&on_drive).unwrap(),
                disk,
                "prepare copied the disk exactly"
            );
            assert!(
                drive_allocated < (len / 4) as u64,
                "prepare keeps the holes on the drive: {drive_allocated} bytes allocated"
            );

            let path = blob("vhds/disk.vhd");
            assert_eq!(
                store.get_properties(&path).await.unwrap().kind,
                BlobKind::PageBlob
            );
            let mut expected: Vec<std::ops::Range<u64>> = Vec::new();
            for &p in &pages {
                let r = (p as u64 * 512)..(p as u64 + 1) * 512;
                match expected.last_mut() {
                    Some(last) if last.end == r.start => last.end = r.end,
                    _ => expected.push(r),
                }
            }
            assert_eq!(store.get_page_ranges(&path).await.unwrap(), expected);
        },
    );
}

#[test]
fn an_import_cancelled_before_it_starts_copies_nothing() {
    each_backend(
        "an_import_cancelled_before_it_starts_copies_nothing",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            fx.source_file("a.bin", random_bytes(5000, 600));
            fx.source_file("b.bin", random_bytes(5000, 601));
            fx.prepare("early", BLOCK_64K);
            let store = fx.target();
            let token = CancellationToken::new();
            token.cancel();
            let (report, _) = run_import(&fx.config(engine), store.clone(), token).await;
            assert!(report.cancelled);
            assert_eq!(report.bytes_succeeded, 0);
            assert_eq!(report.drive_log.blobs.len(), 2);
            for b in &report.drive_log.blobs {
                assert_eq!(b.status, BlobStatus::Failed);
                assert_eq!(disposition_of(b), ImportDispositionStatus::Cancelled);
            }
            assert!(!store
                .list_containers()
                .await
                .unwrap()
                .contains(&"early".to_string()));
        },
    );
}

#[test]
fn an_interrupted_page_blob_is_finished_in_place_on_rerun() {
    each_backend(
        "an_interrupted_page_blob_is_finished_in_place_on_rerun",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            // 24 separate written pages: 24 Put Page calls.
            let mut disk = vec![0u8; 512 * KIB];
            for i in 0..24usize {
                let p = i * 40 + 3;
                disk[p * 512..(p + 1) * 512].copy_from_slice(&random_bytes(512, 300 + i as u64));
            }
            let disk = fx.source_file("disk.vhd", disk);
            fx.prepare("vhds", BLOCK_64K);

            let store = fx.target();
            let token = CancellationToken::new();
            let cancelling = Arc::new(util::CancelAfterCommits::pages(
                store.clone(),
                token.clone(),
                5,
            ));
            let mut config = fx.config(engine);
            config.memory_bytes = 8 * 1024;
            let (report, _) = run_import(&config, cancelling, token).await;
            assert!(report.cancelled, "the run reports cancelled");
            let first = entry(&report.drive_log, r"\vhds\disk.vhd");
            assert_eq!(first.status, BlobStatus::Failed);
            assert_eq!(disposition_of(first), ImportDispositionStatus::Cancelled);
            let done = range_statuses(first)
                .iter()
                .filter(|(_, s)| *s == RangeStatus::Completed)
                .count();
            assert!(
                (5..24).contains(&done),
                "{done} pages written before the cancel took effect"
            );

            let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
            assert_eq!(
                report.status(),
                &DriveLogStatus::Completed,
                "{:?}",
                report.drive_log.errors_only()
            );
            let e = entry(&report.drive_log, r"\vhds\disk.vhd");
            assert_eq!(
                e.blob_path, "vhds/disk.vhd",
                "the earlier run's partial blob is finished, not renamed"
            );
            assert_eq!(disposition_of(e), ImportDispositionStatus::Created);
            assert_blob(store.as_ref(), "vhds/disk.vhd", &disk).await;
            let names: Vec<String> = store
                .list_blobs("vhds", "")
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.name)
                .collect();
            assert_eq!(names, vec!["disk.vhd".to_string()]);
        },
    );
}

#[test]
fn a_foreign_page_blob_of_the_same_shape_is_not_resumed() {
    each_backend(
        "a_foreign_page_blob_of_the_same_shape_is_not_resumed",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let mut disk = vec![0u8; 64 * KIB];
            for p in [1usize, 50, 100] {
                disk[p * 512..(p + 1) * 512].copy_from_slice(&random_bytes(512, 400 + p as u64));
            }
            let disk = fx.source_file("disk.vhd", disk);
            fx.prepare("vhds", BLOCK_64K);

            // Someone else's page blob: same length, one of our ranges written with other bytes.
            let store = fx.target();
            store.create_container("vhds").await.unwrap();
            let path = blob("vhds/disk.vhd");
            store
                .create_page_blob(&path, disk.len() as u64, CommitOptions::default())
                .await
                .unwrap();
            let foreign = Bytes::from(random_bytes(512, 999));
            store
                .put_pages(
                    &path,
                    50 * 512,
                    foreign.clone(),
                    drivecopy::store::BlockChecksum::None,
                )
                .await
                .unwrap();

            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::CompletedWithWarnings);
            let e = entry(&report.drive_log, r"\vhds\disk.vhd");
            assert_eq!(disposition_of(e), ImportDispositionStatus::Renamed);
            assert_eq!(e.blob_path, "vhds/disk (2).vhd");
            assert_blob(store.as_ref(), "vhds/disk (2).vhd", &disk).await;
            let kept = store
                .read_range(&path, Some(50 * 512..51 * 512))
                .await
                .unwrap();
            assert_eq!(kept, foreign, "the foreign blob is untouched");
        },
    );
}

#[test]
fn a_corrupted_page_range_fails_alone() {
    each_backend(
        "a_corrupted_page_range_fails_alone",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let mut disk = vec![0u8; 64 * KIB];
            for p in [4usize, 40, 80] {
                disk[p * 512..(p + 1) * 512].copy_from_slice(&random_bytes(512, 700 + p as u64));
            }
            fx.source_file("disk.vhd", disk);
            fx.prepare("vhds", BLOCK_64K);
            let on_drive = fx.drive.join("vhds/disk.vhd");
            let mut bytes = std::fs::read(&on_drive).unwrap();
            bytes[40 * 512 + 3] ^= 1;
            write_file(&on_drive, &bytes);

            let store = fx.target();
            let (report, _) =
                run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::CompletedWithErrors);
            let log = error_log(store.as_ref()).await;
            let e = entry(&log, r"\vhds\disk.vhd");
            assert_eq!(e.status, BlobStatus::CompletedWithErrors);
            assert!(matches!(e.list, Some(RangeList::PageRangeList(_))));
            assert_eq!(range_statuses(e), vec![(40 * 512, RangeStatus::Corrupted)]);
            // The corrupted range is never written.
            let written = store.get_page_ranges(&blob("vhds/disk.vhd")).await.unwrap();
            assert_eq!(written, vec![4 * 512..5 * 512, 80 * 512..81 * 512]);
        },
    );
}

#[test]
fn block_sizes_that_do_not_suit_direct_io() {
    each_backend(
        "block_sizes_that_do_not_suit_direct_io",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let data = fx.source_file("odd.bin", random_bytes(60_001, 800));
            fx.prepare("odd", 5000);
            let store = fx.target();
            let mut config = fx.config(engine);
            config.direct_io = true;
            let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::Completed);
            assert_eq!(
                range_statuses(entry(&report.drive_log, r"\odd\odd.bin")).len(),
                13
            );
            assert_blob(store.as_ref(), "odd/odd.bin", &data).await;
        },
    );
}

#[test]
fn a_rerun_recognises_empty_blobs() {
    each_backend(
        "a_rerun_recognises_empty_blobs",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            fx.source_file("empty.txt", Vec::new());
            fx.source_file("empty.vhd", Vec::new());
            fx.prepare("zero", BLOCK_64K);
            let store = fx.target();
            for run in 0..2 {
                let (report, _) =
                    run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
                assert_eq!(
                    report.status(),
                    &DriveLogStatus::Completed,
                    "run {run}: {:?}",
                    report.drive_log.errors_only()
                );
                for b in &report.drive_log.blobs {
                    assert_eq!(
                        disposition_of(b),
                        ImportDispositionStatus::Created,
                        "run {run}"
                    );
                }
                for name in ["zero/empty.txt", "zero/empty.vhd"] {
                    assert_eq!(store.get_properties(&blob(name)).await.unwrap().length, 0);
                    assert_blob(store.as_ref(), name, &[]).await;
                }
            }
        },
    );
}

#[test]
fn empty_small_and_many_block_files() {
    each_backend(
        "empty_small_and_many_block_files",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let mut files = Vec::new();
            for i in 0..300usize {
                let name = format!("d{}/s{i:03}.txt", i % 7);
                let len = if i % 50 == 0 {
                    0
                } else {
                    (i * 7919) % 3000 + 1
                };
                files.push((
                    format!("bulk/{name}"),
                    fx.source_file(&name, random_bytes(len, 1000 + i as u64)),
                ));
            }
            let big = fx.source_file("big.bin", random_bytes(2 * 1024 * KIB + 123, 7));
            fx.prepare("bulk", BLOCK_64K);

            let store = fx.target();
            let mut config = fx.config(engine);
            config.memory_bytes = 512 * 1024;
            config.log_level = LogLevel::Verbose;
            let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
            assert_eq!(
                report.status(),
                &DriveLogStatus::Completed,
                "{:?}",
                report.drive_log.errors_only()
            );
            assert_eq!(report.drive_log.blobs.len(), 301);
            assert_eq!(report.bytes_succeeded, report.bytes_total);
            for (name, data) in &files {
                assert_blob(store.as_ref(), name, data).await;
            }
            let empty = blob("bulk/d0/s000.txt");
            assert_eq!(store.get_properties(&empty).await.unwrap().length, 0);

            assert_blob(store.as_ref(), "bulk/big.bin", &big).await;
            let listing = store.get_block_list(&blob("bulk/big.bin")).await.unwrap();
            assert_eq!(listing.committed.len(), 33);
            assert!(listing.committed[..32].iter().all(|(_, l)| *l == BLOCK_64K));
            assert_eq!(listing.committed[32].1, 123);
            let e = entry(&report.drive_log, r"\bulk\big.bin");
            assert_eq!(range_statuses(e).len(), 33);

            // The verbose log blob is the report's drive log; no error log is written.
            assert!(report.error_log_uri.is_none());
            let logs = store.list_blobs("waimportexport", "waies/").await.unwrap();
            assert_eq!(logs.len(), 1);
            assert!(logs[0].name.ends_with("_verbose.xml"), "{}", logs[0].name);
            let path = blob(&format!("waimportexport/{}", logs[0].name));
            let verbose = DriveLog::parse(&store.read_range(&path, None).await.unwrap()).unwrap();
            assert_eq!(verbose, report.drive_log);
        },
    );
}

#[test]
fn prepare_refuses_a_destination_with_an_invalid_container() {
    let fx = Fixture::new();
    fx.source_file("a.txt", random_bytes(100, 500));
    for destination in ["c/", "Upper/x/", "/"] {
        let config = PrepareConfig {
            drive_root: fx.drive.clone(),
            sources: vec![PrepareSource {
                destination: destination.to_string(),
                ..fx.source("box")
            }],
            in_place: false,
            block_size_bytes: BLOCK_64K,
            manifest_file: r"\DriveManifest.xml".to_string(),
            drive_id: util::DRIVE_ID.to_string(),
            credential: None,
            threads: Some(1),
        };
        match prepare(&config) {
            Err(PrepareError::Destination { destination: d, .. }) => assert_eq!(d, destination),
            other => panic!("{destination}: expected a destination error, got {other:?}"),
        }
        assert!(
            !fx.drive.join("DriveManifest.xml").exists(),
            "{destination}: no manifest written"
        );
    }
}

#[test]
fn put_md5_sets_the_whole_blob_content_md5_of_every_block_blob() {
    each_backend(
        "put_md5_sets_the_whole_blob_content_md5_of_every_block_blob",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let big = fx.source_file("big.bin", random_bytes(9 * 64 * KIB + 333, 41));
            let exact = fx.source_file("exact.bin", random_bytes(4 * 64 * KIB, 42));
            let small = fx.source_file("small.txt", random_bytes(1000, 43));
            fx.prepare("md5s", BLOCK_64K);

            // Without the option a multi-block blob has no Content-MD5; a one-block blob does.
            let plain = fx.fresh_target("plain");
            let (report, _) =
                run_import(&fx.config(engine), plain.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::Completed);
            let props = plain.get_properties(&blob("md5s/big.bin")).await.unwrap();
            assert_eq!(props.content.content_md5, None);

            let store = fx.target();
            let mut config = fx.config(engine);
            config.put_md5 = true;
            let (report, _) = run_import(&config, store.clone(), CancellationToken::new()).await;
            assert_eq!(report.status(), &DriveLogStatus::Completed);
            for (name, data) in [
                ("big.bin", &big),
                ("exact.bin", &exact),
                ("small.txt", &small),
            ] {
                let path = format!("md5s/{name}");
                let props = store.get_properties(&blob(&path)).await.unwrap();
                assert_eq!(
                    props.content.content_md5,
                    Some(Md5Digest::of(data)),
                    "{path}: whole-blob Content-MD5"
                );
                util::assert_blob(store.as_ref(), &path, data).await;
            }
        },
    );
}
