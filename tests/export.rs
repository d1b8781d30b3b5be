//! End-to-end export tests: blobs in a `LocalStore` (put directly, or imported from a prepared
//! drive) are exported onto a drive directory with `export_drive`, and each test checks the files
//! (`cmp`-identical, sparse, side files), the export manifest (`verify`), the drive log and the
//! incomplete blob list. A few tests run the `drivecopy` binary. Library scenarios run under the
//! std engine and, when the kernel allows it, under io_uring.

mod util;

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use drivecopy::bloblist::BlobList;
use drivecopy::copylog::{
    BlobStatus, DriveLog, DriveLogStatus, FileLogStatus, RangeList, RangeStatus,
};
use drivecopy::digest::Md5Digest;
use drivecopy::engine::export::{export_drive, BlobListSource, ExportConfig, ExportReport};
use drivecopy::engine::import::LogLevel;
use drivecopy::engine::plan::{plan_drives, resolve};
use drivecopy::engine::read::IoEngine;
use drivecopy::engine::verify::{verify_drive, VerifyConfig};
use drivecopy::events::{CollectEvents, Event};
use drivecopy::manifest::DriveManifest;
use drivecopy::names::BlobPath;
use drivecopy::store::local::LocalStore;
use drivecopy::store::{
    BlobItem, BlobProperties, BlobStore, BlockChecksum, BlockId, BlockListing, CommitOptions,
    Condition, ContentProperties, StageBlock, StoreError,
};
use tokio_util::sync::CancellationToken;
use util::{blob, each_engine, random_bytes, run_import, Fixture};

const EXPORT_ID: &str = "EXPORT02";

fn all_blobs() -> BlobListSource {
    BlobListSource::Document(b"<BlobList><BlobPathPrefix>/</BlobPathPrefix></BlobList>".to_vec())
}

fn export_config(drive: &Path, engine: IoEngine, list: BlobListSource) -> ExportConfig {
    let mut c = ExportConfig::new(drive, EXPORT_ID, list, engine);
    c.memory_bytes = 8 << 20;
    c.hash_threads = Some(2);
    c.fsync = false;
    c.job_name = Some("xtest".to_string());
    c.log_level = LogLevel::Verbose;
    c
}

async fn run_export(
    config: &ExportConfig,
    store: Arc<dyn BlobStore>,
) -> (ExportReport, Vec<Event>) {
    let events = Arc::new(CollectEvents::default());
    let report = export_drive(config, store, events.clone(), CancellationToken::new())
        .await
        .expect("export runs");
    let events = std::mem::take(&mut *events.0.lock().expect("events lock"));
    (report, events)
}

fn warnings(events: &[Event], code: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Warning(w) if w.code == code))
        .count()
}

fn drive_file(drive: &Path, manifest_path: &str) -> PathBuf {
    let mut p = drive.to_path_buf();
    p.extend(manifest_path.split('\\').filter(|s| !s.is_empty()));
    p
}

async fn put(store: &dyn BlobStore, path: &str, data: &[u8]) -> BlobPath {
    let p = blob(path);
    store
        .create_container(&p.container)
        .await
        .expect("container");
    store
        .put_blob(&p, Bytes::copy_from_slice(data), CommitOptions::default())
        .await
        .expect("put blob");
    p
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    Fixture::files_under(dir)
        .into_iter()
        .filter_map(|p| p.strip_prefix(dir).ok().map(|r| r.display().to_string()))
        .collect()
}

fn verify_clean(drive: &Path) -> drivecopy::engine::verify::VerifyReport {
    let report = verify_drive(&VerifyConfig {
        drive_root: drive.to_path_buf(),
        manifest_file: None,
        threads: Some(2),
    })
    .expect("verify runs");
    assert!(
        report.is_clean(),
        "verify found problems: {:?}",
        report.drive_log.errors_only()
    );
    report
}

#[test]
fn round_trip_prepare_import_export_is_identical_and_verifies() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let mut sources: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (rel, data) in [
            ("big.bin", random_bytes(5 * 1024 * 1024 + 333, 1)),
            ("small.txt", random_bytes(1000, 2)),
            ("empty.dat", Vec::new()),
            ("with space/naïve résumé.txt", random_bytes(70_000, 3)),
            ("nested/deeper/a.bin", random_bytes(300_000, 4)),
        ] {
            sources.insert(rel.to_string(), fx.source_file(rel, data));
        }
        // A page blob with holes: data in the first and last 64 KiB of 8 MiB.
        let mut vhd = vec![0u8; 8 << 20];
        vhd[..65536].copy_from_slice(&random_bytes(65536, 5));
        let tail = vhd.len() - 65536;
        vhd[tail..].copy_from_slice(&random_bytes(65536, 6));
        sources.insert("disk.vhd".into(), fx.source_file("disk.vhd", vhd));
        fx.prepare("data", 256 * 1024);
        let store = fx.store();
        let (imported, _) =
            run_import(&fx.config(engine), store.clone(), CancellationToken::new()).await;
        assert_eq!(imported.drive_log.status, DriveLogStatus::Completed);

        let out = fx.tmp.path().join("export-drive");
        std::fs::create_dir_all(&out).unwrap();
        let (report, events) =
            run_export(&export_config(&out, engine, all_blobs()), store.clone()).await;
        assert_eq!(
            report.drive_log.status,
            DriveLogStatus::Completed,
            "{events:?}"
        );
        assert!(report.incomplete.is_empty());
        assert_eq!(report.incomplete_blob_list_uri, None);
        assert_eq!(report.drive_log.blobs.len(), sources.len());
        assert!(report.verbose_log_uri.is_some());
        assert_eq!(report.error_log_uri, None);
        for (rel, data) in &sources {
            let file = out.join("data").join(rel);
            let got = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(got == *data, "{rel} differs from its source");
            for side in ["properties", "metadata"] {
                assert!(
                    file.with_file_name(format!(
                        "{}.{side}",
                        file.file_name().unwrap().to_string_lossy()
                    ))
                    .is_file(),
                    "{rel}.{side} missing"
                );
            }
        }
        // The page blob's file keeps its holes.
        let meta = std::fs::metadata(out.join("data/disk.vhd")).unwrap();
        assert!(
            meta.blocks() * 512 < meta.len() / 2,
            "disk.vhd allocates {} of {} bytes",
            meta.blocks() * 512,
            meta.len()
        );
        // The manifest: the export sample's shape, and it verifies.
        let manifest = DriveManifest::parse(&std::fs::read(out.join("EXPORT02.manifest")).unwrap())
            .expect("manifest parses");
        assert_eq!(manifest.version.as_deref(), Some("2011-10-01"));
        let vhd_entry = manifest
            .blobs()
            .map(|(_, b)| b)
            .find(|b| b.blob_path == "data/disk.vhd")
            .unwrap();
        let ranges = vhd_entry.page_range_list.as_ref().expect("page ranges");
        assert_eq!(ranges.iter().map(|r| r.length).sum::<u64>(), 2 * 65536);
        let big = manifest
            .blobs()
            .map(|(_, b)| b)
            .find(|b| b.blob_path == "data/big.bin")
            .unwrap();
        let blocks = big.block_list.as_ref().expect("blocks");
        assert_eq!(blocks[0].id.as_deref(), Some("AAAAAA=="));
        assert_eq!(blocks[1].id.as_deref(), Some("AQAAAA=="));
        assert!(blocks.iter().all(|b| b.length <= 4 * 1024 * 1024));
        assert_eq!(blocks.iter().map(|b| b.length).sum::<u64>(), big.length);
        let empty = manifest
            .blobs()
            .map(|(_, b)| b)
            .find(|b| b.blob_path == "data/empty.dat")
            .unwrap();
        assert_eq!(empty.length, 0);
        let checked = verify_clean(&out);
        assert!(checked.ranges_checked > 5);
        // The same check passes on the import drive, against its DriveManifest.xml.
        let import_side = verify_clean(&fx.drive);
        assert_eq!(import_side.manifest_file, r"\DriveManifest.xml");
        assert_eq!(import_side.drive_log.blobs.len(), sources.len());
        // No temp files left behind.
        assert!(!out.join(".drivecopy-tmp").exists());
        assert!(tree(&out).iter().all(|f| !f.ends_with(".part")));
    });
}

#[test]
fn capacity_split_matches_the_plan_and_the_second_drive_completes_the_set() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let store = fx.store();
        let mut expected = BTreeMap::new();
        for i in 0..7u64 {
            let data = random_bytes(300_000 + 1000 * i as usize, 10 + i);
            let p = put(store.as_ref(), &format!("photos/p{i}.jpg"), &data).await;
            expected.insert(p.to_string(), data);
        }
        put(store.as_ref(), "other/skip.bin", b"not selected").await;
        let list = BlobListSource::Document(
            b"<BlobList><BlobPathPrefix>/photos/</BlobPathPrefix></BlobList>".to_vec(),
        );
        let capacity = 2_500_000;

        // What plan-export predicts.
        let parsed =
            BlobList::parse(b"<BlobList><BlobPathPrefix>/photos/</BlobPathPrefix></BlobList>")
                .unwrap();
        let resolved = resolve(store.as_ref(), &parsed).await.unwrap();
        let plan = plan_drives(&resolved.blobs, capacity);
        assert_eq!(plan.drives.len(), 2, "{plan:?}");
        let predicted: Vec<Vec<String>> = plan
            .drives
            .iter()
            .map(|d| {
                d.selected
                    .iter()
                    .map(|&i| resolved.blobs[i].path.to_string())
                    .collect()
            })
            .collect();

        let first = fx.tmp.path().join("d1");
        std::fs::create_dir_all(&first).unwrap();
        let mut cfg = export_config(&first, engine, list);
        cfg.capacity_bytes = Some(capacity);
        let (r1, _) = run_export(&cfg, store.clone()).await;
        assert_eq!(r1.drive_log.status, DriveLogStatus::Completed);
        let on_first: Vec<String> = r1
            .drive_log
            .blobs
            .iter()
            .map(|b| b.blob_path.clone())
            .collect();
        assert_eq!(on_first, predicted[0]);
        assert!(r1.incomplete_blob_list_uri.is_some());
        assert_eq!(r1.incomplete.len(), 7 - on_first.len());

        // The incomplete blob list is a blob next to the logs; export it onto the next drive.
        let listed = store.list_blobs("waimportexport", "waies/").await.unwrap();
        let incomplete = listed
            .iter()
            .find(|b| b.name.ends_with("_incompleteblobs.xml"))
            .expect("an incomplete blob list blob");
        let incomplete_path = blob(&format!("waimportexport/{}", incomplete.name));
        let second = fx.tmp.path().join("d2");
        std::fs::create_dir_all(&second).unwrap();
        let mut cfg2 = export_config(&second, engine, BlobListSource::Blob(incomplete_path));
        cfg2.capacity_bytes = Some(capacity);
        cfg2.drive_id = "EXPORT03".into();
        let (r2, _) = run_export(&cfg2, store.clone()).await;
        assert_eq!(r2.drive_log.status, DriveLogStatus::Completed);
        assert!(r2.incomplete.is_empty());
        let on_second: Vec<String> = r2
            .drive_log
            .blobs
            .iter()
            .map(|b| b.blob_path.clone())
            .collect();
        assert_eq!(on_second, predicted[1]);

        // Together the two drives hold the whole set, byte for byte.
        for (drive, names) in [(&first, &on_first), (&second, &on_second)] {
            for name in names {
                let got = std::fs::read(drive.join(name)).unwrap();
                assert!(got == expected[name], "{name}");
            }
            verify_clean(drive);
        }
        assert_eq!(on_first.len() + on_second.len(), expected.len());
    });
}

#[test]
fn hostile_blob_names_stay_beneath_the_drive_root() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let store = fx.store();
        let names = [
            "evil/../../x",
            "evil/a/../../b",
            "evil//abs",
            r"evil/C:\x",
            "evil/con",
            "evil/what?.txt",
        ];
        let mut stored = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match store.create_container("evil").await.and(Ok(())) {
                Ok(()) => {}
                Err(e) => panic!("{e}"),
            }
            let p = blob(n);
            match store
                .put_blob(
                    &p,
                    Bytes::from(vec![i as u8 + 1; 100]),
                    CommitOptions::default(),
                )
                .await
            {
                Ok(_) => stored.push(n.to_string()),
                Err(e) => eprintln!("the local store refuses {n:?}: {e}"),
            }
        }
        assert!(
            stored.len() >= 4,
            "too few hostile names stored: {stored:?}"
        );
        // The root container exports as the directory `$root`.
        put(store.as_ref(), "$root/logo.bmp", b"root blob").await;
        stored.push("$root/logo.bmp".to_string());
        let drive = fx.tmp.path().join("nest/drive");
        std::fs::create_dir_all(&drive).unwrap();
        let (report, events) =
            run_export(&export_config(&drive, engine, all_blobs()), store.clone()).await;
        assert_eq!(
            report.drive_log.status,
            DriveLogStatus::Completed,
            "{events:?}"
        );
        assert_eq!(report.drive_log.blobs.len(), stored.len());
        // Nothing outside the drive: the parent holds only the drive directory.
        let siblings: Vec<_> = std::fs::read_dir(fx.tmp.path().join("nest"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings, ["drive"]);
        assert!(!fx.tmp.path().join("x").exists() && !fx.tmp.path().join("b").exists());
        assert_eq!(
            std::fs::read(drive.join("$root/logo.bmp")).unwrap(),
            b"root blob"
        );
        // Every other file is under \evil, and each mapped name is recorded.
        for b in report
            .drive_log
            .blobs
            .iter()
            .filter(|b| b.blob_path.starts_with("evil/"))
        {
            assert!(b.file_path.starts_with(r"\evil\"), "{}", b.file_path);
            assert!(!b.file_path.contains(r"\..\"), "{}", b.file_path);
            assert!(
                drive_file(&drive, &b.file_path).is_file(),
                "{}",
                b.file_path
            );
        }
        assert_eq!(
            warnings(&events, "FileNameMapped"),
            report.name_mappings.len()
        );
        assert!(report.name_mappings.len() >= 4);
        verify_clean(&drive);
    });
}

/// A store that changes a blob (new metadata, so a new ETag) the first time a range of it is read.
#[derive(Debug)]
struct ChangeOnRead {
    inner: Arc<LocalStore>,
    target: BlobPath,
    done: AtomicBool,
    /// Cancel this token instead of changing the blob.
    cancel: Option<CancellationToken>,
}

#[async_trait]
impl BlobStore for ChangeOnRead {
    async fn create_container(&self, c: &str) -> Result<(), StoreError> {
        self.inner.create_container(c).await
    }
    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list_containers().await
    }
    async fn stage_block(&self, p: &BlobPath, b: StageBlock) -> Result<(), StoreError> {
        self.inner.stage_block(p, b).await
    }
    async fn commit_block_list(
        &self,
        p: &BlobPath,
        b: &[BlockId],
        o: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.commit_block_list(p, b, o).await
    }
    async fn get_block_list(&self, p: &BlobPath) -> Result<BlockListing, StoreError> {
        self.inner.get_block_list(p).await
    }
    async fn create_page_blob(
        &self,
        p: &BlobPath,
        l: u64,
        o: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.create_page_blob(p, l, o).await
    }
    async fn put_pages(
        &self,
        p: &BlobPath,
        off: u64,
        d: Bytes,
        c: BlockChecksum,
    ) -> Result<(), StoreError> {
        self.inner.put_pages(p, off, d, c).await
    }
    async fn get_page_ranges(&self, p: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        self.inner.get_page_ranges(p).await
    }
    async fn get_properties(&self, p: &BlobPath) -> Result<BlobProperties, StoreError> {
        self.inner.get_properties(p).await
    }
    async fn set_properties(
        &self,
        p: &BlobPath,
        c: ContentProperties,
        k: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.set_properties(p, c, k).await
    }
    async fn set_metadata(
        &self,
        p: &BlobPath,
        m: BTreeMap<String, String>,
        k: Condition,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.set_metadata(p, m, k).await
    }
    async fn read_range(&self, p: &BlobPath, r: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        let data = self.inner.read_range(p, r).await?;
        if *p == self.target && !self.done.swap(true, Ordering::SeqCst) {
            if let Some(token) = &self.cancel {
                token.cancel();
                return Ok(data);
            }
            let meta = BTreeMap::from([("changed".to_string(), "yes".to_string())]);
            self.inner
                .set_metadata(p, meta, Condition::None)
                .await
                .expect("change the blob");
        }
        Ok(data)
    }
    async fn list_blobs(&self, c: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        self.inner.list_blobs(c, prefix).await
    }
    async fn put_blob(
        &self,
        p: &BlobPath,
        d: Bytes,
        o: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        self.inner.put_blob(p, d, o).await
    }
    async fn delete_blob(&self, p: &BlobPath, c: Condition) -> Result<(), StoreError> {
        self.inner.delete_blob(p, c).await
    }
    async fn blob_url(&self, p: &BlobPath) -> Result<String, StoreError> {
        self.inner.blob_url(p).await
    }
}

#[test]
fn a_blob_changed_during_export_is_blob_unexpected_change_and_leaves_no_file() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let local = fx.store();
        let moving = put(local.as_ref(), "docs/moving.bin", &random_bytes(50_000, 20)).await;
        put(local.as_ref(), "docs/still.bin", &random_bytes(50_000, 21)).await;
        let store = Arc::new(ChangeOnRead {
            inner: local,
            target: moving,
            done: AtomicBool::new(false),
            cancel: None,
        });
        let drive = fx.tmp.path().join("drive-x");
        std::fs::create_dir_all(&drive).unwrap();
        let (report, events) =
            run_export(&export_config(&drive, engine, all_blobs()), store.clone()).await;
        assert_eq!(report.drive_log.status, DriveLogStatus::CompletedWithErrors);
        let moved = &report.drive_log.blobs[0];
        assert_eq!(moved.blob_path, "docs/moving.bin");
        assert_eq!(moved.status, BlobStatus::BlobUnexpectedChange);
        assert_eq!(report.drive_log.blobs[1].status, BlobStatus::Completed);
        assert!(!drive.join("docs/moving.bin").exists());
        assert!(!drive.join("docs/moving.bin.properties").exists());
        assert!(drive.join("docs/still.bin").is_file());
        assert_eq!(warnings(&events, "BlobUnexpectedChange"), 1);
        assert!(report.error_log_uri.is_some());
        // The manifest lists only the file that is there, and it verifies.
        let v = verify_clean(&drive);
        assert_eq!(v.drive_log.blobs.len(), 1);
    });
}

#[test]
fn a_cancelled_export_leaves_no_partial_file() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let local = fx.store();
        let first = put(local.as_ref(), "docs/a.bin", &random_bytes(10 << 20, 60)).await;
        put(local.as_ref(), "docs/b.bin", &random_bytes(1000, 61)).await;
        let token = CancellationToken::new();
        let store = Arc::new(ChangeOnRead {
            inner: local,
            target: first,
            done: AtomicBool::new(false),
            cancel: Some(token.clone()),
        });
        let drive = fx.tmp.path().join("drive-c");
        std::fs::create_dir_all(&drive).unwrap();
        let mut cfg = export_config(&drive, engine, all_blobs());
        cfg.blobs_in_flight = 1;
        cfg.ranges_per_blob = 1;
        let events = Arc::new(CollectEvents::default());
        let report = export_drive(&cfg, store, events, token).await.unwrap();
        assert!(report.cancelled);
        assert!(report
            .drive_log
            .blobs
            .iter()
            .all(|b| b.status == BlobStatus::Failed));
        // Only the manifest (listing nothing) is on the drive.
        assert_eq!(tree(&drive), ["EXPORT02.manifest"]);
        let manifest =
            DriveManifest::parse(&std::fs::read(drive.join("EXPORT02.manifest")).unwrap()).unwrap();
        assert_eq!(manifest.blobs().count(), 0);
    });
}

#[test]
fn a_content_md5_mismatch_is_an_error_in_the_log() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let store = fx.store();
        let p = put(store.as_ref(), "docs/liar.bin", &random_bytes(9 << 20, 30)).await;
        let good = put(
            store.as_ref(),
            "docs/honest.bin",
            &random_bytes(6 << 20, 31),
        )
        .await;
        let honest_md5 = Md5Digest::of(&store.read_range(&good, None).await.unwrap());
        for (path, md5) in [(&p, Md5Digest::of(b"something else")), (&good, honest_md5)] {
            let content = ContentProperties {
                content_md5: Some(md5),
                ..Default::default()
            };
            store
                .set_properties(path, content, Condition::None)
                .await
                .unwrap();
        }
        let drive = fx.tmp.path().join("drive-m");
        std::fs::create_dir_all(&drive).unwrap();
        let (report, events) =
            run_export(&export_config(&drive, engine, all_blobs()), store.clone()).await;
        assert_eq!(report.drive_log.status, DriveLogStatus::CompletedWithErrors);
        let (honest, liar) = (&report.drive_log.blobs[0], &report.drive_log.blobs[1]);
        assert_eq!(honest.status, BlobStatus::Completed);
        assert_eq!(liar.status, BlobStatus::CompletedWithErrors);
        assert_eq!(
            liar.properties.as_ref().map(|p| &p.status),
            Some(&FileLogStatus::Corrupted)
        );
        assert_eq!(warnings(&events, "ContentMd5Mismatch"), 1);
        // The error log blob carries it.
        let errors = store.list_blobs("waimportexport", "waies/").await.unwrap();
        let err = errors
            .iter()
            .find(|b| b.name.ends_with("_error.xml"))
            .unwrap();
        let log = DriveLog::parse(
            &store
                .read_range(&blob(&format!("waimportexport/{}", err.name)), None)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(log.blobs.len(), 1);
        assert_eq!(log.blobs[0].blob_path, "docs/liar.bin");
    });
}

#[test]
fn verify_reports_a_corrupted_block_in_drive_log_form() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let store = fx.store();
        put(store.as_ref(), "docs/a.bin", &random_bytes(10 << 20, 40)).await;
        let drive = fx.tmp.path().join("drive-v");
        std::fs::create_dir_all(&drive).unwrap();
        let (report, _) =
            run_export(&export_config(&drive, engine, all_blobs()), store.clone()).await;
        assert_eq!(report.drive_log.status, DriveLogStatus::Completed);
        verify_clean(&drive);
        let file = drive.join("docs/a.bin");
        let mut data = std::fs::read(&file).unwrap();
        data[(4 << 20) + 17] ^= 0x55;
        std::fs::write(&file, &data).unwrap();
        let v = verify_drive(&VerifyConfig {
            drive_root: drive.clone(),
            manifest_file: Some(r"\EXPORT02.manifest".into()),
            threads: Some(1),
        })
        .unwrap();
        assert!(!v.is_clean());
        assert_eq!(v.ranges_failed, 1);
        let errors = v.drive_log.errors_only();
        let Some(RangeList::BlockList(blocks)) = &errors.blobs[0].list else {
            panic!("{errors:?}");
        };
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].offset_bytes, 4 << 20);
        assert_eq!(blocks[0].status, RangeStatus::Corrupted);
        assert_eq!(blocks[0].id.as_deref(), Some("AQAAAA=="));
    });
}

#[test]
fn a_malformed_blob_list_is_a_drive_failure_with_an_error_log() {
    each_engine(|engine| async move {
        let fx = Fixture::new();
        let store = fx.store();
        let drive = fx.tmp.path().join("drive-b");
        std::fs::create_dir_all(&drive).unwrap();
        let list =
            BlobListSource::Document(b"<BlobList><BlobPath>/bad</BlobPath></BlobList>".to_vec());
        let (report, _) = run_export(&export_config(&drive, engine, list), store.clone()).await;
        assert_eq!(
            report.drive_log.status,
            DriveLogStatus::BlobListFormatInvalid
        );
        assert!(report.is_drive_failure());
        assert!(report.error_log_uri.is_some());
        assert!(tree(&drive).is_empty());
    });
}

// The binary.

fn drivecopy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

#[test]
fn binary_plan_export_export_and_verify_agree() {
    let fx = Fixture::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = fx.store();
        for i in 0..5u64 {
            put(
                store.as_ref(),
                &format!("music/s{i}.mp3"),
                &random_bytes(400_000, 50 + i),
            )
            .await;
        }
    });
    let list = fx.tmp.path().join("list.xml");
    std::fs::write(
        &list,
        "<BlobList><BlobPathPrefix>/music/</BlobPathPrefix></BlobList>",
    )
    .unwrap();
    let source = fx.store_root.display().to_string();

    let plan = util::finish(
        drivecopy()
            .args(["plan-export", "--source", &source, "--blob-list"])
            .arg(&list)
            .args(["--drive-size", "3MB", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(plan.code, 0, "{}", plan.describe());
    let plan = plan.json();
    assert_eq!(plan["drivesNeeded"], 2);
    let first_count = plan["drives"][0]["blobs"].as_u64().unwrap();

    let drive = fx.tmp.path().join("bin-drive");
    std::fs::create_dir_all(&drive).unwrap();
    let run = util::finish(
        drivecopy()
            .args(["export", "--drive"])
            .arg(&drive)
            .args(["--source", &source, "--blob-list"])
            .arg(&list)
            .args(["--drive-id", "BIN01", "--capacity", "3MB", "--no-fsync"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    let result: serde_json::Value = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result event:\n{}", run.describe()));
    assert_eq!(result["command"], "export");
    assert_eq!(result["outcome"], "Completed");
    assert_eq!(result["driveStatus"]["state"], "Completed");
    assert_eq!(result["driveStatus"]["manifestFile"], r"\BIN01.manifest");
    assert_eq!(result["blobsTotal"].as_u64(), Some(first_count));
    assert!(
        result["incompleteBlobListUri"].as_str().is_some(),
        "{result}"
    );

    let ok = util::finish(
        drivecopy()
            .args(["verify", "--drive"])
            .arg(&drive)
            .output()
            .unwrap(),
    );
    assert_eq!(ok.code, 0, "{}", ok.describe());
    let file = drive.join("music/s0.mp3");
    let mut data = std::fs::read(&file).unwrap();
    data[10] ^= 1;
    std::fs::write(&file, data).unwrap();
    let bad = util::finish(
        drivecopy()
            .args(["verify", "--drive"])
            .arg(&drive)
            .output()
            .unwrap(),
    );
    assert_eq!(bad.code, 1, "{}", bad.describe());
    let log = DriveLog::parse(bad.stdout.as_bytes()).expect("verify prints a DriveLog");
    assert_eq!(log.blobs.len(), 1);
    assert_eq!(log.blobs[0].blob_path, "music/s0.mp3");

    let missing = util::finish(
        drivecopy()
            .args(["verify", "--drive"])
            .arg(fx.tmp.path().join("nope"))
            .output()
            .unwrap(),
    );
    assert_eq!(missing.code, 3, "{}", missing.describe());
}
