//! Resuming an interrupted import (issue 4 item 5): blocks an earlier run staged but never
//! committed are reused when their content-addressed Id and length match the manifest's, blobs an
//! earlier run committed are skipped, and the re-run ends byte-identical having sent less than
//! half the bytes.
//!
//! Each scenario takes the base store as an `Arc<dyn BlobStore>` so the same check can run against
//! any backend (the local store here; Azurite where the emulator is available). Bytes sent are
//! measured twice: by the engine (`ImportReport::bytes_sent`) and, independently, by a counting
//! [`FaultyStore`] with no faults in front of the store.

mod util;

use std::sync::Arc;

use bytes::Bytes;
use drivecopy::copylog::{DriveLogStatus, RangeList, RangeStatus};
use drivecopy::digest::Md5Digest;
use drivecopy::engine::read::IoEngine;
use drivecopy::store::faulty::{FaultPlan, FaultyStore};
use drivecopy::store::{BlobStore, BlockChecksum, BlockId, StageBlock};
use tokio_util::sync::CancellationToken;
use util::{blob, each_backend, random_bytes, run_import, Fixture};

const KIB: usize = 1024;
const BLOCK_64K: u64 = 64 * 1024;

/// A drive with one large multi-block blob (most of the bytes) and a few small files.
fn drive(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("big.bin", random_bytes(48 * 64 * KIB + 1000, 21)),
        ("a.txt", random_bytes(700, 22)),
        ("dir/b.bin", random_bytes(3 * 64 * KIB, 23)),
    ];
    let out = files
        .into_iter()
        .map(|(name, data)| {
            let data = fx.source_file(name, data);
            (format!("c1c/{name}"), data)
        })
        .collect();
    fx.prepare("c1c", BLOCK_64K);
    out
}

async fn assert_identical(base: &dyn BlobStore, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        let back = base
            .read_range(&blob(name), None)
            .await
            .unwrap_or_else(|e| panic!("read {name}: {e}"));
        assert!(back[..] == data[..], "{name} differs after the import");
    }
}

/// Every block and range of every blob in the log is `Completed`.
fn all_completed(log: &drivecopy::copylog::DriveLog) -> bool {
    log.blobs.iter().all(|b| match &b.list {
        Some(RangeList::BlockList(blocks)) => {
            blocks.iter().all(|x| x.status == RangeStatus::Completed)
        }
        Some(RangeList::PageRangeList(ranges)) => {
            ranges.iter().all(|x| x.status == RangeStatus::Completed)
        }
        None => true,
    })
}

/// A drive with one page blob of many separate page ranges (32 KiB written, 32 KiB hole).
fn vhd_drive(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut disk = vec![0u8; 64 * 64 * KIB];
    for i in 0..64 {
        let at = i * 64 * KIB;
        disk[at..at + 32 * KIB].copy_from_slice(&random_bytes(32 * KIB, 40 + i as u64));
    }
    let disk = fx.source_file("disk.vhd", disk);
    fx.prepare("c1c", BLOCK_64K);
    vec![("c1c/disk.vhd".to_string(), disk)]
}

/// Cancel an import once 70 % of the drive's bytes have landed, then run it again: the re-run
/// completes byte-identical and sends less than half of the bytes.
pub async fn resume_after_cancel(
    fx: &Fixture,
    files: &[(String, Vec<u8>)],
    base: Arc<dyn BlobStore>,
    engine: IoEngine,
) {
    let mut config = fx.config(engine);
    // Few buffers, so that few blocks are in flight when the run is cancelled.
    config.memory_bytes = 4 * BLOCK_64K;

    let first = Arc::new(FaultyStore::new(Arc::clone(&base), FaultPlan::default()));
    let cancel = CancellationToken::new();
    let total = fx.manifest().blobs().map(|(_, b)| planned(b)).sum::<u64>();
    first.cancel_after_bytes(total * 7 / 10, cancel.clone());
    let (report, _) = run_import(&config, first.clone(), cancel).await;
    assert!(report.cancelled, "the first run was not interrupted");
    assert_eq!(report.bytes_total, total);
    assert!(
        report.blobs_failed() > 0,
        "the first run finished a blob it should not have"
    );

    let second = Arc::new(FaultyStore::new(Arc::clone(&base), FaultPlan::default()));
    let (report, _) = run_import(&config, second.clone(), CancellationToken::new()).await;
    assert_eq!(
        report.status(),
        &DriveLogStatus::Completed,
        "{}",
        report.drive_log.to_error_xml()
    );
    assert!(!report.cancelled);
    assert!(all_completed(&report.drive_log));
    assert_identical(base.as_ref(), files).await;
    assert!(report.bytes_reused > 0, "nothing was reused");
    // Data bytes sent by the engine, as the store counted them (log writes are Put Blobs too;
    // they are no more than a few KiB here).
    assert!(
        second.bytes_offered() < total / 2,
        "the re-run sent {} of {total} bytes",
        second.bytes_offered()
    );
    assert!(report.bytes_sent <= second.bytes_offered());
    assert!(report.bytes_sent + report.bytes_reused <= total);
}

/// Bytes the manifest lists for a blob (its blocks or page ranges).
fn planned(b: &drivecopy::manifest::Blob) -> u64 {
    let blocks = b.block_list.iter().flatten().map(|x| x.length);
    let ranges = b.page_range_list.iter().flatten().map(|x| x.length);
    blocks.chain(ranges).sum()
}

/// A store already holding most blocks of the large blob, staged (as an interrupted run leaves
/// them), plus one block under the right Id with the wrong length: the matching blocks are reused,
/// the mismatched one is sent again, and the blob commits byte-identical.
/// With `put_md5`, the reused blocks are read again to hash the whole blob, but still not sent.
pub async fn resume_from_staged_blocks(
    fx: &Fixture,
    files: &[(String, Vec<u8>)],
    base: Arc<dyn BlobStore>,
    engine: IoEngine,
    put_md5: bool,
) {
    let manifest = fx.manifest();
    let (_, big) = manifest
        .blobs()
        .find(|(_, b)| b.blob_path == "c1c/big.bin")
        .expect("the large blob in the manifest");
    let blocks = big.block_list.clone().expect("a block blob");
    let data = &files
        .iter()
        .find(|(n, _)| n == "c1c/big.bin")
        .expect("the large file")
        .1;
    let path = blob("c1c/big.bin");
    base.create_container("c1c").await.expect("container");
    let seeded = blocks.len() * 3 / 4;
    let mut reusable = 0u64;
    for (i, b) in blocks.iter().enumerate().take(seeded + 1) {
        let id = BlockId::from_base64(b.id.as_deref().expect("a manifest Id")).expect("an Id");
        let start = b.offset as usize;
        let mut bytes = Bytes::copy_from_slice(&data[start..start + b.length as usize]);
        if i == seeded {
            // The right Id, the wrong length: must not be reused.
            bytes.truncate(bytes.len() - 1);
        } else {
            reusable += b.length;
        }
        let block = StageBlock {
            id,
            data: bytes,
            checksum: BlockChecksum::None,
            offset_hint: Some(b.offset),
        };
        base.stage_block(&path, block).await.expect("stage");
    }

    let counting = Arc::new(FaultyStore::new(Arc::clone(&base), FaultPlan::default()));
    let mut config = fx.config(engine);
    config.put_md5 = put_md5;
    let (report, _) = run_import(&config, counting.clone(), CancellationToken::new()).await;
    assert_eq!(
        report.status(),
        &DriveLogStatus::Completed,
        "{}",
        report.drive_log.to_error_xml()
    );
    assert!(all_completed(&report.drive_log));
    assert_identical(base.as_ref(), files).await;
    assert_eq!(report.bytes_reused, reusable);
    assert_eq!(report.bytes_sent, report.bytes_total - reusable);
    assert!(counting.bytes_offered() >= report.bytes_sent);
    assert!(counting.bytes_offered() < report.bytes_total / 2);
    let md5 = base
        .get_properties(&path)
        .await
        .expect("props")
        .content
        .content_md5;
    assert_eq!(md5, put_md5.then(|| Md5Digest::of(data)), "whole-blob MD5");
}

#[test]
fn a_cancelled_import_resumes_with_its_staged_blocks() {
    let test = "a_cancelled_import_resumes_with_its_staged_blocks";
    each_backend(test, |backend, engine| async move {
        let fx = Fixture::on(backend);
        let files = drive(&fx);
        resume_after_cancel(&fx, &files, fx.target(), engine).await;
    });
}

#[test]
fn a_cancelled_page_blob_import_writes_only_the_missing_ranges() {
    let test = "a_cancelled_page_blob_import_writes_only_the_missing_ranges";
    each_backend(test, |backend, engine| async move {
        let fx = Fixture::on(backend);
        let files = vhd_drive(&fx);
        resume_after_cancel(&fx, &files, fx.target(), engine).await;
    });
}

#[test]
fn staged_blocks_are_reused_only_when_id_and_length_match() {
    let test = "staged_blocks_are_reused_only_when_id_and_length_match";
    each_backend(test, |backend, engine| async move {
        let fx = Fixture::on(backend);
        let files = drive(&fx);
        resume_from_staged_blocks(&fx, &files, fx.target(), engine, false).await;
    });
}

#[test]
fn reused_blocks_still_feed_the_whole_blob_md5() {
    let test = "reused_blocks_still_feed_the_whole_blob_md5";
    each_backend(test, |backend, engine| async move {
        let fx = Fixture::on(backend);
        let files = drive(&fx);
        resume_from_staged_blocks(&fx, &files, fx.target(), engine, true).await;
    });
}
