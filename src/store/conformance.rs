//! The [`BlobStore`] conformance suite: one async scenario per rule of the trait's `# Contract`,
//! run against every backend (style.md §6 item 7, after object_store's `integration.rs`).
//!
//! Each scenario takes the store and a container name of its own (created here), and panics
//! with a message on the first broken rule, like a test. [`run_all`] runs every scenario in
//! its own container. This module is compiled for tests and under the `testing` feature only;
//! it must not depend on any one backend.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{
    BlobKind, BlobStore, BlockChecksum, BlockId, CommitOptions, Condition, ContentProperties,
    StageBlock, StoreError,
};
use crate::digest::Md5Digest;
use crate::names::BlobPath;

fn path(container: &str, name: &str) -> BlobPath {
    BlobPath {
        container: container.to_string(),
        name: name.to_string(),
    }
}

fn id(n: u32) -> BlockId {
    BlockId::new(format!("{n:08}").into_bytes()).expect("8-byte id")
}

/// Deterministic test bytes: `len` bytes derived from `seed`.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn block(n: u32, data: &Bytes, offset: Option<u64>) -> StageBlock {
    StageBlock {
        id: id(n),
        data: data.clone(),
        checksum: BlockChecksum::Md5Verified(Md5Digest::of(data)),
        offset_hint: offset,
    }
}

async fn setup(store: &dyn BlobStore, container: &str) {
    store
        .create_container(container)
        .await
        .expect("create container");
    store
        .create_container(container)
        .await
        .expect("create container twice is fine");
}

async fn read_all(store: &dyn BlobStore, p: &BlobPath) -> Bytes {
    store
        .read_range(p, None)
        .await
        .unwrap_or_else(|e| panic!("read {p}: {e:?}"))
}

/// Blocks staged out of order (with offset hints) and committed in order read back in order.
pub async fn stage_out_of_order_commit_in_order(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "dir/ordered.bin");
    let parts = [pattern(1, 1000), pattern(2, 1000), pattern(3, 17)];
    for i in [2usize, 0, 1] {
        let offset = 1000 * i as u64;
        store
            .stage_block(&p, block(i as u32, &parts[i], Some(offset)))
            .await
            .expect("stage");
    }
    let props = store
        .commit_block_list(&p, &[id(0), id(1), id(2)], CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(props.length, 2017);
    assert_eq!(props.kind, BlobKind::BlockBlob);
    let expected: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(read_all(store, &p).await, expected);
    // Without hints, and listed in an order other than staged.
    let q = path(container, "unhinted.bin");
    for i in [1u32, 0] {
        store
            .stage_block(&q, block(i, &parts[i as usize], None))
            .await
            .expect("stage");
    }
    store
        .commit_block_list(&q, &[id(0), id(1), id(0)], CommitOptions::default())
        .await
        .expect("commit");
    let expected: Vec<u8> = [&parts[0], &parts[1], &parts[0]]
        .iter()
        .flat_map(|b| b.iter().copied())
        .collect();
    assert_eq!(read_all(store, &q).await, expected);
}

/// Staging the same id twice keeps the last bytes; identical blocks at several offsets work.
pub async fn stage_same_id_twice(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "twice");
    store
        .stage_block(&p, block(0, &pattern(1, 512), Some(0)))
        .await
        .expect("stage");
    store
        .stage_block(&p, block(0, &pattern(9, 512), Some(0)))
        .await
        .expect("stage again");
    store
        .commit_block_list(&p, &[id(0)], CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(read_all(store, &p).await, pattern(9, 512));

    let zeros = Bytes::from(vec![0u8; 4096]);
    let z = path(container, "zeros");
    for i in 0..4u64 {
        store
            .stage_block(&z, block(7, &zeros, Some(i * 4096)))
            .await
            .expect("stage zeros");
    }
    let listing = store.get_block_list(&z).await.expect("block list");
    assert_eq!(listing.uncommitted, vec![(id(7), 4096)]);
    store
        .commit_block_list(&z, &[id(7), id(7), id(7), id(7)], CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(read_all(store, &z).await, Bytes::from(vec![0u8; 16384]));
}

/// Uncommitted blocks are invisible to properties, reads and listings.
pub async fn uncommitted_is_invisible(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "pending");
    store
        .stage_block(&p, block(0, &pattern(1, 100), None))
        .await
        .expect("stage");
    assert!(matches!(
        store.get_properties(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.read_range(&p, None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .list_blobs(container, "")
        .await
        .expect("list")
        .is_empty());
    let listing = store.get_block_list(&p).await.expect("block list");
    assert!(listing.committed.is_empty());
    assert_eq!(listing.uncommitted, vec![(id(0), 100)]);
}

/// A commit replaces the whole blob at once; staging a new version leaves the old one readable.
pub async fn commit_is_atomic_and_replaces(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "replace");
    let v1 = pattern(1, 3000);
    store
        .stage_block(&p, block(0, &v1, Some(0)))
        .await
        .expect("stage");
    let first = store
        .commit_block_list(&p, &[id(0)], CommitOptions::default())
        .await
        .expect("commit");
    let v2 = [pattern(2, 100), pattern(3, 50)];
    store
        .stage_block(&p, block(1, &v2[0], Some(0)))
        .await
        .expect("stage");
    store
        .stage_block(&p, block(2, &v2[1], Some(100)))
        .await
        .expect("stage");
    assert_eq!(
        read_all(store, &p).await,
        v1,
        "old version still whole while new blocks are staged"
    );
    let second = store
        .commit_block_list(&p, &[id(1), id(2)], CommitOptions::default())
        .await
        .expect("commit");
    assert_ne!(first.etag, second.etag);
    assert_eq!(second.length, 150);
    let expected: Vec<u8> = v2.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(read_all(store, &p).await, expected);
    let listing = store.get_block_list(&p).await.expect("block list");
    assert!(
        listing.uncommitted.is_empty(),
        "a commit discards uncommitted blocks"
    );
    // A commit may reuse committed blocks (Azure "Latest": uncommitted first, then committed).
    store
        .commit_block_list(&p, &[id(2), id(1)], CommitOptions::default())
        .await
        .expect("recommit");
    let expected: Vec<u8> = v2[1].iter().chain(v2[0].iter()).copied().collect();
    assert_eq!(read_all(store, &p).await, expected);
}

/// A commit naming an unknown block fails with `InvalidBlockList` and changes nothing.
pub async fn unknown_block_is_rejected(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "unknown");
    store
        .stage_block(&p, block(0, &pattern(1, 10), None))
        .await
        .expect("stage");
    let err = store
        .commit_block_list(&p, &[id(0), id(5)], CommitOptions::default())
        .await
        .expect_err("unknown id");
    assert!(
        matches!(err, StoreError::InvalidBlockList { .. }),
        "{err:?}"
    );
    assert!(matches!(
        store.get_properties(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    let mixed = BlockId::new(vec![1u8; 3]).expect("id");
    let err = store
        .commit_block_list(&p, &[id(0), mixed], CommitOptions::default())
        .await
        .expect_err("mixed");
    assert!(
        matches!(err, StoreError::InvalidBlockList { .. }),
        "{err:?}"
    );
    // The staged block survived the failed commits.
    store
        .commit_block_list(&p, &[id(0)], CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(read_all(store, &p).await, pattern(1, 10));
}

/// A block whose bytes do not match its MD5 is rejected and nothing is stored.
pub async fn md5_mismatch_is_rejected(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "corrupt");
    let data = pattern(1, 700);
    let wrong = Md5Digest::of(b"something else");
    let bad = StageBlock {
        id: id(0),
        data: data.clone(),
        checksum: BlockChecksum::Md5(wrong),
        offset_hint: Some(0),
    };
    match store.stage_block(&p, bad).await {
        Err(StoreError::Md5Mismatch {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (wrong, Md5Digest::of(&data)));
        }
        other => panic!("expected Md5Mismatch, got {other:?}"),
    }
    assert!(matches!(
        store.get_block_list(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    let good = StageBlock {
        checksum: BlockChecksum::Md5(Md5Digest::of(&data)),
        ..block(0, &data, Some(0))
    };
    store
        .stage_block(&p, good)
        .await
        .expect("a correct MD5 is accepted");
}

/// `If-None-Match: *` on an existing blob fails with `AlreadyExists` and keeps the blob.
pub async fn if_none_match_on_existing(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "once");
    let create = || CommitOptions {
        condition: Condition::IfNoneMatchStar,
        ..CommitOptions::default()
    };
    store
        .put_blob(&p, Bytes::from_static(b"first"), create())
        .await
        .expect("create");
    let err = store
        .put_blob(&p, Bytes::from_static(b"second"), create())
        .await
        .expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    store
        .stage_block(&p, block(0, &pattern(1, 5), None))
        .await
        .expect("stage");
    let err = store
        .commit_block_list(&p, &[id(0)], create())
        .await
        .expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(read_all(store, &p).await, Bytes::from_static(b"first"));
}

/// A stale `If-Match` fails with `ConditionNotMet`, on writes and on reads; the current ETag
/// succeeds.
pub async fn stale_if_match(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "versioned");
    let v1 = store
        .put_blob(&p, Bytes::from_static(b"one"), CommitOptions::default())
        .await
        .expect("put");
    let if_match = |tag| CommitOptions {
        condition: Condition::IfMatch(tag),
        ..CommitOptions::default()
    };
    let v2 = store
        .put_blob(&p, Bytes::from_static(b"two"), if_match(v1.etag.clone()))
        .await
        .expect("current etag");
    let err = store
        .put_blob(&p, Bytes::from_static(b"three"), if_match(v1.etag.clone()))
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::ConditionNotMet { .. }), "{err:?}");
    let err = store
        .set_metadata(&p, BTreeMap::new(), Condition::IfMatch(v1.etag.clone()))
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::ConditionNotMet { .. }), "{err:?}");
    // Reads: the current ETag reads the range, a stale one reads nothing, also for an empty range.
    let read = store
        .read_range_if_match(&p, Some(1..3), &v2.etag)
        .await
        .expect("read with current etag");
    assert_eq!(read, Bytes::from_static(b"wo"));
    for range in [Some(0..3), Some(1..1), None] {
        let err = store
            .read_range_if_match(&p, range.clone(), &v1.etag)
            .await
            .expect_err("stale read");
        assert!(
            matches!(err, StoreError::ConditionNotMet { .. }),
            "{range:?}: {err:?}"
        );
    }
    let absent = path(container, "absent");
    let err = store
        .put_blob(&absent, Bytes::new(), if_match(v2.etag.clone()))
        .await
        .expect_err("absent");
    assert!(matches!(err, StoreError::ConditionNotMet { .. }), "{err:?}");
    assert_eq!(read_all(store, &p).await, Bytes::from_static(b"two"));
    store
        .delete_blob(&p, Condition::IfMatch(v2.etag))
        .await
        .expect("delete with current etag");
}

/// Page blobs: zeros after create, pages visible at once, ranges merged, alignment enforced.
pub async fn page_blob_round_trip(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "disk.vhd");
    let len = 64 * 1024;
    let props = store
        .create_page_blob(&p, len, CommitOptions::default())
        .await
        .expect("create");
    assert_eq!((props.kind, props.length), (BlobKind::PageBlob, len));
    assert_eq!(
        read_all(store, &p).await,
        Bytes::from(vec![0u8; len as usize])
    );
    assert!(store.get_page_ranges(&p).await.expect("ranges").is_empty());
    let a = pattern(1, 1024);
    let b = pattern(2, 512);
    let c = pattern(3, 2048);
    store
        .put_pages(&p, 0, a.clone(), BlockChecksum::Md5(Md5Digest::of(&a)))
        .await
        .expect("page a");
    store
        .put_pages(&p, 1024, b.clone(), BlockChecksum::None)
        .await
        .expect("page b");
    store
        .put_pages(
            &p,
            8192,
            c.clone(),
            BlockChecksum::Md5Verified(Md5Digest::of(&c)),
        )
        .await
        .expect("page c");
    assert_eq!(
        store.get_page_ranges(&p).await.expect("ranges"),
        vec![0..1536, 8192..10240]
    );
    let got = store
        .read_range(&p, Some(1000..1600))
        .await
        .expect("ranged read");
    let mut expected = a[1000..].to_vec();
    expected.extend_from_slice(&b);
    expected.extend_from_slice(&[0u8; 64]);
    assert_eq!(got, expected);
    for (offset, data) in [
        (100u64, pattern(1, 512)),
        (0, pattern(1, 100)),
        (len, pattern(1, 512)),
    ] {
        let err = store
            .put_pages(&p, offset, data, BlockChecksum::None)
            .await
            .expect_err("misaligned or past end");
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    }
    let err = store
        .put_pages(&p, 0, a.clone(), BlockChecksum::Md5(Md5Digest::of(b"x")))
        .await
        .expect_err("md5");
    assert!(matches!(err, StoreError::Md5Mismatch { .. }), "{err:?}");
    assert_eq!(
        store.read_range(&p, Some(0..1024)).await.expect("read"),
        a,
        "rejected page left no trace"
    );
    assert!(store
        .create_page_blob(&path(container, "odd"), 1000, CommitOptions::default())
        .await
        .is_err());
    let blk = path(container, "block");
    store
        .put_blob(&blk, Bytes::from(vec![1u8; 512]), CommitOptions::default())
        .await
        .expect("put");
    assert!(matches!(
        store.put_pages(&blk, 0, a, BlockChecksum::None).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

/// Listing by prefix: sorted, committed only, this container only.
pub async fn list_by_prefix(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let other = format!("{container}-x");
    setup(store, &other).await;
    for name in ["b/2", "a/1", "b/1", "c", "b/10"] {
        store
            .put_blob(
                &path(container, name),
                Bytes::from(name.to_string()),
                CommitOptions::default(),
            )
            .await
            .expect("put");
    }
    store
        .put_blob(&path(&other, "b/3"), Bytes::new(), CommitOptions::default())
        .await
        .expect("put other");
    store
        .stage_block(
            &path(container, "b/uncommitted"),
            block(0, &pattern(1, 5), None),
        )
        .await
        .expect("stage");
    let names = |items: Vec<super::BlobItem>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_blobs(container, "b/").await.expect("list")),
        ["b/1", "b/10", "b/2"]
    );
    assert_eq!(
        names(store.list_blobs(container, "").await.expect("list")),
        ["a/1", "b/1", "b/10", "b/2", "c"]
    );
    let items = store.list_blobs(container, "c").await.expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].properties.length, 1);
    let containers = store.list_containers().await.expect("containers");
    assert!(containers.contains(&container.to_string()) && containers.contains(&other));
    assert!(matches!(
        store.list_blobs("nosuchcontainer", "").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Properties and metadata round trip; each change makes a new ETag.
pub async fn properties_and_metadata_round_trip(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "props");
    let content = ContentProperties {
        content_type: Some("image/jpeg".to_string()),
        content_encoding: Some("gzip".to_string()),
        content_language: Some("en-US".to_string()),
        cache_control: Some("no-cache".to_string()),
        content_disposition: Some("attachment".to_string()),
        content_md5: Some(Md5Digest::of(b"whole")),
    };
    let metadata = BTreeMap::from([(
        "UploadMethod".to_string(),
        "Import/Export service".to_string(),
    )]);
    let opts = CommitOptions {
        content: content.clone(),
        metadata: metadata.clone(),
        condition: Condition::None,
    };
    store
        .stage_block(&p, block(0, &pattern(1, 5), None))
        .await
        .expect("stage");
    let committed = store
        .commit_block_list(&p, &[id(0)], opts)
        .await
        .expect("commit");
    let got = store.get_properties(&p).await.expect("properties");
    assert_eq!(
        (&got.content, &got.metadata, &got.etag),
        (&content, &metadata, &committed.etag)
    );
    let new_content = ContentProperties {
        content_type: Some("text/plain".to_string()),
        ..ContentProperties::default()
    };
    let after_props = store
        .set_properties(&p, new_content.clone(), Condition::None)
        .await
        .expect("set properties");
    assert_ne!(after_props.etag, committed.etag);
    let new_meta = BTreeMap::from([("DataSetName".to_string(), "SampleData".to_string())]);
    let after_meta = store
        .set_metadata(&p, new_meta.clone(), Condition::None)
        .await
        .expect("set metadata");
    assert_ne!(after_meta.etag, after_props.etag);
    let got = store.get_properties(&p).await.expect("properties");
    assert_eq!((got.content, got.metadata), (new_content, new_meta));
    assert_eq!(
        read_all(store, &p).await,
        pattern(1, 5),
        "properties do not touch the bytes"
    );
    let bad = BTreeMap::from([("not-an-identifier".to_string(), "x".to_string())]);
    assert!(matches!(
        store.set_metadata(&p, bad, Condition::None).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

/// The blob names that a file system cannot hold as-is; every one stores and reads back.
pub fn awkward_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "a",
        "a/b",
        "a/b/c",
        ".",
        "..",
        "../escape",
        "a/../../b",
        "./x",
        "a//b",
        "a/",
        "/lead",
        "with space.txt",
        "100%",
        "%25",
        "%2E",
        "back\\slash",
        "c:colon",
        "star*",
        "what?",
        "ünïcødé/ファイル",
        "😀",
        "a%+1",
        ".drivecopy",
        "a/.",
        "a/..",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("n".repeat(1024));
    names.push("é".repeat(1024));
    names.push(format!("long/{}", "s".repeat(300)));
    names.push(format!("{}/tail", "ß".repeat(200)));
    names.push(vec!["x"; 254].join("/"));
    names.push("/".repeat(253));
    // 16 segments of 252 bytes: over Linux PATH_MAX once mapped to directories.
    names.push(vec!["😀".repeat(63); 16].join("/"));
    names
}

/// Every legal blob name is stored, read back, listed and deleted on its own.
pub async fn every_legal_name(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let names = awkward_names();
    for (i, name) in names.iter().enumerate() {
        crate::names::validate_blob_name(name)
            .unwrap_or_else(|e| panic!("test name {name:?} is illegal: {e}"));
        let data = Bytes::from(format!("{i}:{name}"));
        store
            .put_blob(&path(container, name), data, CommitOptions::default())
            .await
            .unwrap_or_else(|e| panic!("put {name:?}: {e:?}"));
    }
    for (i, name) in names.iter().enumerate() {
        let got = read_all(store, &path(container, name)).await;
        assert_eq!(got, format!("{i}:{name}").as_bytes(), "{name:?}");
    }
    let mut listed: Vec<String> = store
        .list_blobs(container, "")
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut expected = names.clone();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
    store
        .delete_blob(&path(container, "a"), Condition::None)
        .await
        .expect("delete a");
    assert_eq!(
        read_all(store, &path(container, "a/b")).await,
        "1:a/b".as_bytes()
    );
    store
        .put_blob(
            &path(container, "a"),
            Bytes::from_static(b"again"),
            CommitOptions::default(),
        )
        .await
        .expect("put a");
    assert_eq!(
        read_all(store, &path(container, "a")).await,
        Bytes::from_static(b"again")
    );
    for name in &names {
        let url = store.blob_url(&path(container, name)).await.expect("url");
        assert!(!url.contains('?') && !url.contains("sig="), "{url}");
    }
}

/// 0-byte blobs, from an empty commit and from Put Blob, read as empty.
pub async fn zero_byte_blob(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "empty-commit");
    let props = store
        .commit_block_list(&p, &[], CommitOptions::default())
        .await
        .expect("empty commit");
    assert_eq!(props.length, 0);
    assert!(read_all(store, &p).await.is_empty());
    let q = path(container, "empty-put");
    store
        .put_blob(&q, Bytes::new(), CommitOptions::default())
        .await
        .expect("empty put");
    assert!(read_all(store, &q).await.is_empty());
    assert_eq!(store.get_properties(&q).await.expect("props").length, 0);
    assert!(store
        .read_range(&q, Some(0..0))
        .await
        .expect("empty range")
        .is_empty());
}

/// Get Block List separates committed from uncommitted blocks.
pub async fn block_list_committed_vs_uncommitted(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "lists");
    assert!(matches!(
        store.get_block_list(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .stage_block(&p, block(0, &pattern(1, 10), Some(0)))
        .await
        .expect("stage");
    store
        .stage_block(&p, block(1, &pattern(2, 20), Some(10)))
        .await
        .expect("stage");
    store
        .commit_block_list(&p, &[id(0), id(1)], CommitOptions::default())
        .await
        .expect("commit");
    store
        .stage_block(&p, block(2, &pattern(3, 30), None))
        .await
        .expect("stage");
    let listing = store.get_block_list(&p).await.expect("list");
    assert_eq!(listing.committed, vec![(id(0), 10), (id(1), 20)]);
    assert_eq!(listing.uncommitted, vec![(id(2), 30)]);
    let err = store
        .stage_block(&p, block(3, &Bytes::new(), None))
        .await
        .expect_err("empty block");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    let short = StageBlock {
        id: BlockId::new(vec![1u8; 3]).expect("id"),
        ..block(4, &pattern(1, 1), None)
    };
    assert!(matches!(
        store.stage_block(&p, short).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

/// Put Blob (the log upload path): atomic replace, stored Content-MD5, discards staged blocks.
pub async fn put_blob_for_logs(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "waies/job_drive_20260101_error.xml");
    let log = Bytes::from_static(b"<?xml version=\"1.0\"?>\r\n<DriveLog/>\r\n");
    let props = store
        .put_blob(&p, log.clone(), CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(
        props.content.content_md5,
        Some(Md5Digest::of(&log)),
        "the store computes Content-MD5"
    );
    store
        .stage_block(&p, block(0, &pattern(1, 10), None))
        .await
        .expect("stage");
    let log2 = Bytes::from_static(b"<DriveLog>2</DriveLog>");
    store
        .put_blob(&p, log2.clone(), CommitOptions::default())
        .await
        .expect("replace");
    assert_eq!(read_all(store, &p).await, log2);
    let listing = store.get_block_list(&p).await.expect("list");
    assert!(
        listing.uncommitted.is_empty(),
        "Put Blob discards uncommitted blocks"
    );
    store
        .delete_blob(&p, Condition::None)
        .await
        .expect("delete");
    assert!(matches!(
        store.get_properties(&p).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_blob(&p, Condition::None).await,
        Err(StoreError::NotFound { .. })
    ));
    let missing = path("nosuchcontainer", "x");
    assert!(matches!(
        store
            .put_blob(&missing, log, CommitOptions::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Concurrent stages of one blob, then a commit, give the right bytes.
pub async fn concurrent_stages(store: &dyn BlobStore, container: &str) {
    setup(store, container).await;
    let p = path(container, "parallel");
    let size = 64 * 1024;
    let parts: Vec<Bytes> = (0..8u8).map(|i| pattern(i, size)).collect();
    let stage =
        |i: usize| store.stage_block(&p, block(i as u32, &parts[i], Some((i * size) as u64)));
    let (r0, r1, r2, r3, r4, r5, r6, r7) = tokio::join!(
        stage(7),
        stage(3),
        stage(5),
        stage(1),
        stage(0),
        stage(6),
        stage(2),
        stage(4)
    );
    for r in [r0, r1, r2, r3, r4, r5, r6, r7] {
        r.expect("stage");
    }
    let ids: Vec<BlockId> = (0..8).map(id).collect();
    store
        .commit_block_list(&p, &ids, CommitOptions::default())
        .await
        .expect("commit");
    let expected: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(read_all(store, &p).await, expected);
    let got = store
        .read_range(&p, Some(size as u64 - 3..size as u64 + 3))
        .await
        .expect("ranged");
    assert_eq!(got, expected[size - 3..size + 3]);
    let err = store
        .read_range(&p, Some(expected.len() as u64..expected.len() as u64 + 1))
        .await
        .expect_err("past end");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
}

/// Run every scenario, each in a container named `<prefix>-<n>`.
pub async fn run_all(store: &dyn BlobStore, prefix: &str) {
    let c = |n: u32| format!("{prefix}-{n}");
    stage_out_of_order_commit_in_order(store, &c(1)).await;
    stage_same_id_twice(store, &c(2)).await;
    uncommitted_is_invisible(store, &c(3)).await;
    commit_is_atomic_and_replaces(store, &c(4)).await;
    unknown_block_is_rejected(store, &c(5)).await;
    md5_mismatch_is_rejected(store, &c(6)).await;
    if_none_match_on_existing(store, &c(7)).await;
    stale_if_match(store, &c(8)).await;
    page_blob_round_trip(store, &c(9)).await;
    list_by_prefix(store, &c(10)).await;
    properties_and_metadata_round_trip(store, &c(11)).await;
    every_legal_name(store, &c(12)).await;
    zero_byte_blob(store, &c(13)).await;
    block_list_committed_vs_uncommitted(store, &c(14)).await;
    put_blob_for_logs(store, &c(15)).await;
    concurrent_stages(store, &c(16)).await;
}
