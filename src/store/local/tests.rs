//! Tests of [`LocalStore`]: the conformance suite with fsync on and off, plus what only a local
//! store promises (readable paths, zero-copy commits, resume after restart, crash recovery).

use std::os::unix::fs::MetadataExt as _;

use super::*;
use crate::store::conformance;

fn store(dir: &tempfile::TempDir) -> LocalStore {
    LocalStore::open(dir.path()).expect("open")
}

fn bp(container: &str, name: &str) -> BlobPath {
    BlobPath {
        container: container.to_string(),
        name: name.to_string(),
    }
}

fn staged(n: u32, data: &[u8], offset: Option<u64>) -> StageBlock {
    let data = Bytes::copy_from_slice(data);
    StageBlock {
        id: BlockId::new(format!("{n:08}").into_bytes()).expect("id"),
        checksum: BlockChecksum::Md5Verified(Md5Digest::of(&data)),
        data,
        offset_hint: offset,
    }
}

fn ids(n: u32) -> Vec<BlockId> {
    (0..n)
        .map(|i| BlockId::new(format!("{i:08}").into_bytes()).expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::run_all(&store(&dir), "sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_without_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::run_all(&store(&dir).with_fsync(false), "nosync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_sidecar_records_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).with_inline_records(false);
    conformance::run_all(&s, "sidecar").await;
}

/// The sidecar record file of a blob, if it has one.
fn sidecar_of(s: &LocalStore, p: &BlobPath) -> Option<Vec<u8>> {
    std::fs::read(s.root().join(layout::record_rel(&p.container, &p.name))).ok()
}

/// A new blob's record is an extended attribute of its data file: no sidecar record file, the
/// same properties on every read and in listings, and the blob can be changed and deleted like
/// any other (its first change moves the record to a sidecar file).
#[tokio::test]
async fn a_new_blob_keeps_its_record_in_its_data_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("inl").await.expect("container");
    let p = bp("inl", "dir/a.txt");
    let md5 = Md5Digest::of(b"inline");
    let opts = CommitOptions {
        content: ContentProperties {
            content_md5: Some(md5),
            ..ContentProperties::default()
        },
        ..CommitOptions::default()
    };
    let put = s
        .put_blob(&p, Bytes::from_static(b"inline"), opts)
        .await
        .expect("put");
    assert_eq!(sidecar_of(&s, &p), None, "no sidecar record file");
    let data = s.root().join("inl/dir/a.txt");
    let value = xattr::get(&data, INLINE_ATTR)
        .expect("getxattr")
        .expect("an inline record");
    assert!(
        value.len() <= 60,
        "fits in an ext4 inode: {} bytes",
        value.len()
    );
    // Blob `dir` beside blob `dir/a.txt` takes an alternate path, so a sidecar record.
    let beside = bp("inl", "dir");
    s.put_blob(&beside, Bytes::from_static(b"x"), CommitOptions::default())
        .await
        .expect("put beside");
    assert!(
        sidecar_of(&s, &beside).is_some(),
        "an alternate path has a sidecar record"
    );
    let read = s.get_properties(&p).await.expect("properties");
    assert_eq!(read, put, "read back as written");
    assert_eq!(read.content.content_md5, Some(md5));
    assert_eq!(read.length, 6);
    let listed = s.list_blobs("inl", "").await.expect("list");
    let names: Vec<&str> = listed.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["dir", "dir/a.txt"]);
    assert_eq!(listed[1].properties, put);
    assert_eq!(s.list_blobs("inl", "dir/").await.expect("list").len(), 1);
    assert!(s.list_blobs("inl", "x").await.expect("list").is_empty());

    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let changed = s
        .set_metadata(&p, meta.clone(), Condition::IfMatch(put.etag.clone()))
        .await
        .expect("set metadata");
    assert_ne!(changed.etag, put.etag);
    assert!(
        sidecar_of(&s, &p).is_some(),
        "a change writes a sidecar record"
    );
    assert_eq!(s.get_properties(&p).await.expect("props").metadata, meta);
    s.put_blob(&p, Bytes::from_static(b"second"), CommitOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"second"[..]);
    s.delete_blob(&p, Condition::None).await.expect("delete");
    assert!(matches!(
        s.get_properties(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(sidecar_of(&s, &p), None);
    // New again: inline again.
    s.put_blob(&p, Bytes::from_static(b"third"), CommitOptions::default())
        .await
        .expect("put again");
    assert_eq!(sidecar_of(&s, &p), None);
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"third"[..]);
}

/// A sidecar record left behind with no version in place (a delete cut short between removing
/// the data file and the record) does not hide a blob written inline after it, and is removed.
#[tokio::test]
async fn a_stale_sidecar_record_gives_way_to_an_inline_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("inl").await.expect("container");
    let p = bp("inl", "b");
    let sidecar = s.clone().with_inline_records(false);
    sidecar
        .put_blob(&p, Bytes::from_static(b"old"), CommitOptions::default())
        .await
        .expect("put");
    let stale = sidecar_of(&s, &p).expect("a sidecar record");
    std::fs::remove_file(s.root().join("inl/b")).expect("the delete's first step");
    assert!(matches!(
        s.get_properties(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    let s = s.with_inline_records(true);
    s.put_blob(&p, Bytes::from_static(b"new!"), CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(
        sidecar_of(&s, &p),
        None,
        "the stale record {stale:?} is gone"
    );
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"new!"[..]);
}

#[tokio::test]
async fn committed_blobs_are_plain_files_at_readable_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("pictures").await.expect("container");
    let p = bp("pictures", "bob/wild/desert.jpg");
    s.put_blob(&p, Bytes::from_static(b"jpeg"), CommitOptions::default())
        .await
        .expect("put");
    let file = s.root().join("pictures/bob/wild/desert.jpg");
    assert_eq!(std::fs::read(&file).expect("plain file"), b"jpeg");
    assert_eq!(s.blob_url(&p).await.expect("url"), layout::file_url(&file));
    assert!(s.blob_url(&p).await.expect("url").starts_with("file:///"));
}

#[tokio::test]
async fn file_and_directory_names_coexist_and_nothing_escapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outer = dir.path().join("store");
    let s = LocalStore::open(&outer).expect("open");
    s.create_container("c1c").await.expect("container");
    for name in ["a/b", "a", "..", "../../x", "./.", "a//b", "a/"] {
        s.put_blob(
            &bp("c1c", name),
            Bytes::from(name.to_string()),
            CommitOptions::default(),
        )
        .await
        .expect("put");
    }
    assert_eq!(
        std::fs::read(s.root().join("c1c/a/b")).expect("a/b"),
        b"a/b"
    );
    assert_eq!(
        std::fs::read(s.root().join("c1c/a%+1")).expect("a as alternate"),
        b"a"
    );
    assert_eq!(
        std::fs::read(s.root().join("c1c/%2E%2E")).expect(".."),
        b".."
    );
    assert_eq!(
        std::fs::read(s.root().join("c1c/a/%/b")).expect("a//b"),
        b"a//b"
    );
    // Nothing was written beside the store root.
    let siblings: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(siblings.len(), 1);
    for name in ["..", "../../x"] {
        let url = s.blob_url(&bp("c1c", name)).await.expect("url");
        let file = layout::percent_decode(&url["file://".len()..]).expect("decode");
        let file = PathBuf::from(String::from_utf8(file).expect("utf8"));
        assert!(file.starts_with(s.root().join("c1c")), "{file:?}");
        assert!(file
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir)));
    }
}

#[tokio::test]
async fn in_place_commit_renames_the_staging_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "big.bin");
    let blocks: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 4096]).collect();
    for i in [3usize, 1, 0, 2] {
        s.stage_block(&p, staged(i as u32, &blocks[i], Some(4096 * i as u64)))
            .await
            .expect("stage");
    }
    let staging_data = s
        .root()
        .join(layout::staging_rel("c1c", "big.bin"))
        .join("data");
    let staging_ino = std::fs::metadata(&staging_data)
        .expect("staging file")
        .ino();
    s.commit_block_list(&p, &ids(4), CommitOptions::default())
        .await
        .expect("commit");
    let data = s.root().join("c1c/big.bin");
    assert_eq!(
        std::fs::metadata(&data).expect("data").ino(),
        staging_ino,
        "renamed, not copied"
    );
    assert_eq!(std::fs::read(&data).expect("read"), blocks.concat());
    assert!(!staging_data.exists(), "staging discarded");
}

#[tokio::test]
async fn identical_blocks_at_several_offsets_commit_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "zeros.img");
    let zeros = vec![0u8; 8192];
    for i in (0..4u64).rev() {
        s.stage_block(&p, staged(0, &zeros, Some(8192 * i)))
            .await
            .expect("stage");
    }
    let staging_data = s
        .root()
        .join(layout::staging_rel("c1c", "zeros.img"))
        .join("data");
    let staging_ino = std::fs::metadata(&staging_data)
        .expect("staging file")
        .ino();
    let same = vec![ids(1)[0].clone(); 4];
    s.commit_block_list(&p, &same, CommitOptions::default())
        .await
        .expect("commit");
    let data = s.root().join("c1c/zeros.img");
    assert_eq!(std::fs::metadata(&data).expect("data").ino(), staging_ino);
    assert_eq!(std::fs::read(&data).expect("read"), vec![0u8; 32768]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_racing_a_commit_never_mixes_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).with_fsync(false);
    s.create_container("c1c").await.expect("container");
    let (a, b) = (vec![b'A'; 65536], vec![b'B'; 65536]);
    for round in 0..24 {
        let p = bp("c1c", &format!("race/{round}"));
        s.stage_block(&p, staged(0, &a, Some(0)))
            .await
            .expect("stage A");
        let list = ids(1);
        let (committed, restaged) = tokio::join!(
            s.commit_block_list(&p, &list, CommitOptions::default()),
            s.stage_block(&p, staged(0, &b, Some(0)))
        );
        committed.expect("commit");
        restaged.expect("stage B");
        let blob = s.read_range(&p, None).await.expect("read");
        let pending = s.get_block_list(&p).await.expect("list").uncommitted;
        if blob == a {
            // The stage came second: B waits, uncommitted.
            assert_eq!(pending, vec![(ids(1)[0].clone(), 65536)], "round {round}");
        } else {
            assert_eq!(blob, b, "round {round}: the blob is one version, whole");
            assert!(pending.is_empty(), "round {round}");
        }
    }
}

#[tokio::test]
async fn a_block_list_cannot_replace_a_page_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "disk");
    s.create_page_blob(&p, 512, CommitOptions::default())
        .await
        .expect("create");
    s.stage_block(&p, staged(0, b"x", None))
        .await
        .expect("stage");
    let err = s
        .commit_block_list(&p, &ids(1), CommitOptions::default())
        .await
        .expect_err("type");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(matches!(
        s.get_block_list(&p).await,
        Err(StoreError::InvalidInput { .. })
    ));
    // Put Blob may change the type, as on Azure.
    s.put_blob(
        &p,
        Bytes::from_static(b"now a block blob"),
        CommitOptions::default(),
    )
    .await
    .expect("put");
    assert_eq!(
        s.get_properties(&p).await.expect("props").kind,
        BlobKind::BlockBlob
    );
}

#[tokio::test]
async fn out_of_place_commit_assembles_a_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "moved.bin");
    // Hints that disagree with the committed order.
    s.stage_block(&p, staged(0, b"AAAA", Some(4)))
        .await
        .expect("stage");
    s.stage_block(&p, staged(1, b"BB", Some(0)))
        .await
        .expect("stage");
    s.stage_block(&p, staged(2, b"unused", None))
        .await
        .expect("stage");
    s.commit_block_list(&p, &ids(2), CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(
        std::fs::read(s.root().join("c1c/moved.bin")).expect("read"),
        b"AAAABB"
    );
    assert_eq!(s.get_properties(&p).await.expect("props").length, 6);
}

#[tokio::test]
async fn staged_blocks_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = bp("c1c", "resume.bin");
    {
        let s = store(&dir);
        s.create_container("c1c").await.expect("container");
        s.stage_block(&p, staged(0, b"first-", Some(0)))
            .await
            .expect("stage");
        s.stage_block(&p, staged(1, b"second", Some(6)))
            .await
            .expect("stage");
    }
    let s = store(&dir);
    let listing = s.get_block_list(&p).await.expect("list after restart");
    assert_eq!(listing.uncommitted.len(), 2);
    s.stage_block(&p, staged(2, b"!", Some(12)))
        .await
        .expect("stage after restart");
    s.commit_block_list(&p, &ids(3), CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(
        s.read_range(&p, None).await.expect("read"),
        &b"first-second!"[..]
    );
}

#[tokio::test]
async fn torn_staging_index_lines_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = bp("c1c", "torn");
    {
        let s = store(&dir);
        s.create_container("c1c").await.expect("container");
        s.stage_block(&p, staged(0, b"kept", Some(0)))
            .await
            .expect("stage");
    }
    let index = dir
        .path()
        .join(layout::staging_rel("c1c", "torn"))
        .join("index");
    let mut f = OpenOptions::new().append(true).open(&index).expect("index");
    f.write_all(b"{\"id\":\"MDAwMDAwMDE=\",\"off\":4,\"len\":99,\"md5\":\"00000000000000000000000000000000\"}\n{\"id\":")
        .expect("write");
    let s = store(&dir);
    let listing = s.get_block_list(&p).await.expect("list");
    assert_eq!(
        listing.uncommitted,
        vec![(ids(1)[0].clone(), 4)],
        "entry past the data file and torn line dropped"
    );
}

#[tokio::test]
async fn a_crash_before_or_after_the_rename_shows_a_whole_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "crash");
    let v1 = s
        .put_blob(&p, Bytes::from_static(b"old"), CommitOptions::default())
        .await
        .expect("put");
    let inner = Arc::clone(&s.inner);
    // Simulate steps 1 and 2 of a commit, then a crash: the intent is recorded, no rename.
    let (mut f, rel) = inner.tmp_file(&p).expect("tmp");
    f.write_all(b"new!").expect("write");
    let rec = inner.read_record(&p).expect("read").expect("record").0;
    // The last commit left its version as `pending` (folded into `current` by the next writer).
    let seen = inner.resolve(&rec).expect("current");
    let mut next = seen.clone();
    next.ino = f.metadata().expect("stat").ino();
    next.length = 4;
    next.etag = "\"new\"".to_string();
    let intent = Record {
        name: p.name.clone(),
        current: Some(seen.clone()),
        pending: Some(Pending {
            version: next.clone(),
            source: rel.to_string_lossy().into_owned(),
        }),
    };
    inner.write_record(&p, &intent, true).expect("intent");
    assert_eq!(
        s.get_properties(&p).await.expect("props").etag,
        v1.etag,
        "before the rename: old version"
    );
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"old"[..]);
    // The rename happened, the final record did not: the new version, whole.
    std::fs::rename(inner.root.join(&rel), inner.root.join(&next.data)).expect("rename");
    let props = s.get_properties(&p).await.expect("props");
    assert_eq!((props.etag.as_str(), props.length), ("\"new\"", 4));
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"new!"[..]);
    // The next writer settles the record.
    s.set_metadata(&p, BTreeMap::new(), Condition::IfMatch(props.etag))
        .await
        .expect("settle");
    assert!(inner
        .read_record(&p)
        .expect("read")
        .expect("record")
        .0
        .pending
        .is_none());

    // An abandoned intent whose temporary file never moved is undone and its file removed.
    let (_f, rel) = inner.tmp_file(&p).expect("tmp");
    let mut orphan = next.clone();
    orphan.ino = std::fs::metadata(inner.root.join(&rel))
        .expect("stat")
        .ino();
    let rec = inner.read_record(&p).expect("read").expect("record").0;
    let intent = Record {
        pending: Some(Pending {
            version: orphan,
            source: rel.to_string_lossy().into_owned(),
        }),
        ..rec
    };
    inner.write_record(&p, &intent, true).expect("intent");
    s.put_blob(&p, Bytes::from_static(b"final"), CommitOptions::default())
        .await
        .expect("put");
    assert!(
        !inner.root.join(&rel).exists(),
        "orphaned temporary file removed"
    );
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"final"[..]);
}

/// A new blob's record is written in place and flushed before its data file is renamed into
/// place, so a crash can leave it torn: empty, cut short, or (on a file system without a journal)
/// holding another file's stale bytes. Each reads as no blob, is left out of listings, and the
/// next Put Blob replaces it.
#[tokio::test]
async fn a_torn_record_of_a_new_blob_reads_as_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).with_inline_records(false);
    s.create_container("c1c").await.expect("container");
    let other = bp("c1c", "other");
    s.put_blob(
        &other,
        Bytes::from_static(b"other"),
        CommitOptions::default(),
    )
    .await
    .expect("put other");
    let inner = Arc::clone(&s.inner);
    let other_record =
        std::fs::read(inner.root.join(layout::record_rel("c1c", "other"))).expect("other's record");
    let partial = br#"{"name":"torn","current":nu"#.to_vec();
    for (i, torn) in [Vec::new(), partial, other_record].into_iter().enumerate() {
        let p = bp("c1c", &format!("torn{i}"));
        let record = inner.root.join(layout::record_rel("c1c", &p.name));
        std::fs::create_dir_all(record.parent().expect("shard")).expect("shard");
        std::fs::write(&record, &torn).expect("torn record");
        assert!(
            matches!(s.get_properties(&p).await, Err(StoreError::NotFound { .. })),
            "torn record {i}: no blob"
        );
        let names: Vec<String> = s
            .list_blobs("c1c", "")
            .await
            .expect("list")
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["other"], "torn record {i} listed nothing");
        let opts = CommitOptions {
            condition: Condition::IfNoneMatchStar,
            ..CommitOptions::default()
        };
        s.put_blob(&p, Bytes::from_static(b"whole"), opts)
            .await
            .expect("put over a torn record");
        assert_eq!(s.read_range(&p, None).await.expect("read"), &b"whole"[..]);
        let rec = inner.read_record(&p).expect("read").expect("record").0;
        assert_eq!(rec.name, p.name, "torn record {i} replaced");
        s.delete_blob(&p, Condition::None).await.expect("delete");
    }
    assert_eq!(
        s.read_range(&other, None).await.expect("read"),
        &b"other"[..]
    );
}

/// A new blob's Put Blob has two flush points (intent record with data, then the rename): its
/// record is written in place. Replacing a blob keeps the temporary record: three.
#[tokio::test]
async fn a_new_blob_commits_in_two_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "new");
    let flushes = |s: &LocalStore| s.inner.durable.finished();
    let before = flushes(&s);
    s.put_blob(&p, Bytes::from_static(b"new"), CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(flushes(&s) - before, 2, "new blob");
    let before = flushes(&s);
    s.put_blob(&p, Bytes::from_static(b"newer"), CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(flushes(&s) - before, 3, "replaced blob");
    assert_eq!(s.read_range(&p, None).await.expect("read"), &b"newer"[..]);
}

/// Bytes whose owner notes how many group flushes had finished when it was dropped.
fn watched(s: &LocalStore, data: &'static [u8]) -> (Bytes, Arc<AtomicU64>) {
    struct Watch(&'static [u8], LocalStore, Arc<AtomicU64>);
    impl AsRef<[u8]> for Watch {
        fn as_ref(&self) -> &[u8] {
            self.0
        }
    }
    impl Drop for Watch {
        fn drop(&mut self) {
            let n = self.1.inner.durable.finished();
            self.2.store(n, Ordering::SeqCst);
        }
    }
    let seen = Arc::new(AtomicU64::new(u64::MAX));
    let bytes = Bytes::from_owner(Watch(data, s.clone(), Arc::clone(&seen)));
    (bytes, seen)
}

/// The caller's buffer (a pool buffer of the import engine) comes back once its bytes are
/// written, before the flushes that make them durable: Put Blob's two, Put Block's and Put
/// Page's one each.
#[tokio::test]
async fn the_caller_buffer_is_released_before_the_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let flushes = |s: &LocalStore| s.inner.durable.finished();

    let (data, dropped_at) = watched(&s, b"whole blob");
    s.put_blob(&bp("c1c", "put"), data, CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(
        flushes(&s) - dropped_at.load(Ordering::SeqCst),
        2,
        "put blob"
    );

    let (data, dropped_at) = watched(&s, b"one block");
    let block = StageBlock {
        id: BlockId::new(b"00000000".to_vec()).expect("id"),
        checksum: BlockChecksum::Md5Verified(Md5Digest::of(b"one block")),
        data,
        offset_hint: Some(0),
    };
    s.stage_block(&bp("c1c", "staged"), block)
        .await
        .expect("stage");
    assert_eq!(
        flushes(&s) - dropped_at.load(Ordering::SeqCst),
        1,
        "put block"
    );

    let page = bp("c1c", "pages");
    s.create_page_blob(&page, 512, CommitOptions::default())
        .await
        .expect("create");
    let (data, dropped_at) = watched(&s, &[7; 512]);
    s.put_pages(&page, 0, data, BlockChecksum::None)
        .await
        .expect("put pages");
    assert!(
        flushes(&s) - dropped_at.load(Ordering::SeqCst) >= 1,
        "put page"
    );
}

#[tokio::test]
async fn page_blobs_are_sparse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let p = bp("c1c", "disk.vhd");
    let len = 1 << 30;
    s.create_page_blob(&p, len, CommitOptions::default())
        .await
        .expect("create");
    s.put_pages(
        &p,
        512 * 1024,
        Bytes::from(vec![7u8; 4096]),
        BlockChecksum::None,
    )
    .await
    .expect("put");
    let meta = std::fs::metadata(s.root().join("c1c/disk.vhd")).expect("data");
    assert_eq!(meta.len(), len);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "only written pages are allocated: {} blocks",
        meta.blocks()
    );
    assert_eq!(
        s.get_page_ranges(&p).await.expect("ranges"),
        vec![512 * 1024..512 * 1024 + 4096]
    );
}

#[test]
fn from_url_accepts_paths_and_file_urls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spaced = dir.path().join("with space");
    let url = layout::file_url(&spaced);
    let s = LocalStore::from_url(&url).expect("file url");
    assert_eq!(s.root(), std::fs::canonicalize(&spaced).expect("canonical"));
    let plain = dir.path().join("plain");
    assert!(LocalStore::from_url(plain.to_str().expect("utf8")).is_ok());
    assert!(matches!(
        LocalStore::from_url("https://acct.blob.core.windows.net/c"),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        LocalStore::from_url("file://relative/x"),
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(DEFAULT_LOCAL_STORE_DIR, "./drivecopy-store");
}

#[tokio::test]
async fn list_files_follow_their_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir);
    s.create_container("c1c").await.expect("container");
    let lists = s.root().join(layout::SIDECAR_DIR).join("lists");
    let count = || std::fs::read_dir(&lists).expect("lists").count();
    let p = bp("c1c", "blocks");
    for round in 0..3u8 {
        s.stage_block(&p, staged(0, &[round; 10], None))
            .await
            .expect("stage");
        s.commit_block_list(&p, &ids(1), CommitOptions::default())
            .await
            .expect("commit");
        assert_eq!(count(), 1, "only the current block list is kept");
    }
    let d = bp("c1c", "disk");
    s.create_page_blob(&d, 4096, CommitOptions::default())
        .await
        .expect("create");
    s.put_pages(&d, 0, Bytes::from(vec![1u8; 512]), BlockChecksum::None)
        .await
        .expect("put");
    assert_eq!(count(), 2);
    s.put_blob(&p, Bytes::from_static(b"whole"), CommitOptions::default())
        .await
        .expect("put blob");
    assert_eq!(count(), 1, "a Put Blob has no block list");
    s.delete_blob(&d, Condition::None).await.expect("delete");
    assert_eq!(count(), 0);
    assert!(std::fs::read_dir(s.root().join(layout::tmp_rel()))
        .expect("tmp")
        .next()
        .is_none());
}

#[tokio::test]
async fn idle_staging_areas_are_closed_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).with_fsync(false);
    s.create_container("c1c").await.expect("container");
    let n = MAX_IDLE_STAGING as u32 + 40;
    for i in 0..n {
        let p = bp("c1c", &format!("abandoned/{i}"));
        s.stage_block(&p, staged(0, &i.to_le_bytes(), Some(0)))
            .await
            .expect("stage");
    }
    assert!(
        lock(&s.inner.staging).len() <= MAX_IDLE_STAGING + 1,
        "bounded"
    );
    let first = bp("c1c", "abandoned/0");
    assert_eq!(
        s.get_block_list(&first)
            .await
            .expect("list")
            .uncommitted
            .len(),
        1
    );
    s.commit_block_list(&first, &ids(1), CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(
        s.read_range(&first, None).await.expect("read"),
        &0u32.to_le_bytes()[..]
    );
}

/// Every blob of `s` in container `c` as the store reads it: name, ETag, length, bytes, committed
/// block list and page ranges.
async fn everything(
    s: &LocalStore,
    c: &str,
) -> Vec<(
    String,
    ETag,
    u64,
    Bytes,
    Vec<(BlockId, u64)>,
    Vec<Range<u64>>,
)> {
    let mut out = Vec::new();
    for item in s.list_blobs(c, "").await.expect("list") {
        let p = bp(c, &item.name);
        let props = s.get_properties(&p).await.expect("properties");
        let bytes = s.read_range(&p, None).await.expect("read");
        let (blocks, pages) = match props.kind {
            BlobKind::BlockBlob => (
                s.get_block_list(&p).await.expect("blocks").committed,
                vec![],
            ),
            BlobKind::PageBlob => (vec![], s.get_page_ranges(&p).await.expect("pages")),
        };
        out.push((item.name, props.etag, props.length, bytes, blocks, pages));
    }
    out
}

/// Copy the directory tree `from` to `to` file by file: new inodes throughout. With `keep`, each
/// file keeps its modification time and extended attributes, as `cp -a` and `rsync -aX` do;
/// without, as `cp -r` and `rsync -r`.
fn copy_tree(from: &Path, to: &Path, keep: bool) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target, keep);
            continue;
        }
        std::fs::copy(entry.path(), &target).expect("copy");
        if keep {
            for attr in xattr::list(entry.path()).expect("list attributes") {
                let value = xattr::get(entry.path(), &attr)
                    .expect("get")
                    .expect("value");
                xattr::set(&target, &attr, &value).expect("set");
            }
            let modified = entry.metadata().expect("stat").modified().expect("mtime");
            let f = File::options().write(true).open(&target).expect("open");
            f.set_modified(modified).expect("set mtime");
        }
    }
}

/// A store copied file by file keeping times and extended attributes (`cp -a`, `rsync -aX`)
/// gets new inode numbers, which its sidecar records pin; opening the copy re-pins them (module
/// docs, "Copies"), so it reads as the original did, takes writes, and leaves the original alone.
#[tokio::test]
async fn a_store_copied_file_by_file_reads_as_the_original() {
    copied_store_reads_as_the_original(true).await;
}

/// A store with sidecar records only may be copied without extended attributes (`rsync -a`).
#[tokio::test]
async fn a_sidecar_only_store_copied_without_attributes_reads_as_the_original() {
    copied_store_reads_as_the_original(false).await;
}

/// A copy that drops extended attributes loses the inline records: the blobs that had only
/// those are counted (and warned of when the copy is first opened), the others still read.
#[tokio::test]
async fn a_copy_without_attributes_counts_the_files_it_left_without_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (original, copy) = (dir.path().join("original"), dir.path().join("copy"));
    let s = LocalStore::open(&original).expect("open");
    s.create_container("cpy").await.expect("container");
    for name in ["a/one", "a/two", "three"] {
        s.put_blob(
            &bp("cpy", name),
            Bytes::from_static(b"x"),
            CommitOptions::default(),
        )
        .await
        .expect("put");
    }
    // Changed after it was written: a sidecar record, which a plain copy keeps.
    s.set_metadata(&bp("cpy", "three"), BTreeMap::new(), Condition::None)
        .await
        .expect("set metadata");
    assert_eq!(s.inner.unrecorded().expect("count"), 0);
    drop(s);
    copy_tree(&original, &copy, false);
    let c = LocalStore::open(&copy).expect("open the copy");
    assert_eq!(c.inner.unrecorded().expect("count"), 2);
    let names: Vec<String> = c
        .list_blobs("cpy", "")
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["three"]);
}

async fn copied_store_reads_as_the_original(inline: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (original, copy) = (dir.path().join("original"), dir.path().join("copy"));
    let s = LocalStore::open(&original)
        .expect("open")
        .with_inline_records(inline);
    s.create_container("cpy").await.expect("container");
    let whole = bp("cpy", "dir/whole.txt");
    s.put_blob(
        &whole,
        Bytes::from_static(b"whole"),
        CommitOptions::default(),
    )
    .await
    .expect("put");
    let blocks = bp("cpy", "blocks.bin");
    for (n, data) in [(0, &b"first "[..]), (1, &b"second"[..])] {
        s.stage_block(&blocks, staged(n, data, None))
            .await
            .expect("stage");
    }
    s.commit_block_list(&blocks, &ids(2), CommitOptions::default())
        .await
        .expect("commit");
    let pages = bp("cpy", "disk.vhd");
    s.create_page_blob(&pages, 4096, CommitOptions::default())
        .await
        .expect("create");
    s.put_pages(
        &pages,
        1024,
        Bytes::from(vec![7u8; 512]),
        BlockChecksum::None,
    )
    .await
    .expect("pages");
    // Overwritten twice: once settled, once pending; the last one changes the length.
    let over = bp("cpy", "over");
    for data in [&b"one"[..], b"two", b"three!"] {
        s.put_blob(
            &over,
            Bytes::copy_from_slice(data),
            CommitOptions::default(),
        )
        .await
        .expect("overwrite");
    }
    let before = everything(&s, "cpy").await;
    assert_eq!(before.len(), 4);
    drop(s);

    copy_tree(&original, &copy, inline);
    let c = LocalStore::open(&copy).expect("open the copy");
    assert_eq!(
        everything(&c, "cpy").await,
        before,
        "the copy reads as the original"
    );
    c.put_blob(
        &whole,
        Bytes::from_static(b"changed"),
        CommitOptions::default(),
    )
    .await
    .expect("write to the copy");
    c.put_pages(&pages, 0, Bytes::from(vec![1u8; 512]), BlockChecksum::None)
        .await
        .expect("pages into the copy");
    assert_eq!(
        c.read_range(&whole, None).await.expect("read"),
        &b"changed"[..]
    );
    assert_eq!(
        c.get_page_ranges(&pages).await.expect("ranges"),
        vec![0..512, 1024..1536]
    );
    drop(c);
    // Opened again, the copy is pinned already and keeps its writes.
    let c = LocalStore::open(&copy).expect("open the copy again");
    assert_eq!(
        c.read_range(&whole, None).await.expect("read"),
        &b"changed"[..]
    );
    let o = LocalStore::open(&original).expect("open the original");
    assert_eq!(
        everything(&o, "cpy").await,
        before,
        "the original is untouched"
    );
}
