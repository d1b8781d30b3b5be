//! End-to-end export throughput: blobs in a local store (in the page cache) exported onto a drive
//! directory on the same file system, at default settings (fsync and `O_DIRECT` on).
//!
//! Cases (issue 5, "Performance"): one 2 GiB block blob (committed in 4 MiB blocks); 2 GiB of
//! 256 KiB blobs. Beside them, `md5_ceiling/stream` measures single-thread MD5 over 256 MiB: the MD5
//! ceiling is cores × that figure (the goal is at least 0.75 of it).
//!
//! The stores are generated once under `target/bench-data/` (pseudo-random bytes) and reused; each
//! iteration exports onto a fresh drive directory beside them. Set `DRIVECOPY_BENCH_SCALE` (a
//! divisor, e.g. `256`) for a quick run on smaller data.
//!
//! Run: `cargo bench --bench export`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use md5::{Digest as _, Md5};
use tokio_util::sync::CancellationToken;

use drivecopy::digest::Md5Digest;
use drivecopy::engine::export::{export_drive, BlobListSource, ExportConfig};
use drivecopy::engine::read::IoEngine;
use drivecopy::events::NoEvents;
use drivecopy::names::BlobPath;
use drivecopy::store::local::LocalStore;
use drivecopy::store::{BlobStore, BlockChecksum, BlockId, CommitOptions, StageBlock};

/// One bench store: `blobs` blobs of `blob_bytes` each.
struct Case {
    name: &'static str,
    blobs: u64,
    blob_bytes: u64,
}

const GIB: u64 = 1 << 30;
const BLOCK: u64 = 4 << 20;

fn cases(scale: u64) -> [Case; 2] {
    [
        Case {
            name: "2GiB_of_256KiB_files",
            blobs: (8192 / scale).max(1),
            blob_bytes: 256 << 10,
        },
        Case {
            name: "one_2GiB_file",
            blobs: 1,
            blob_bytes: (2 * GIB / scale).max(BLOCK),
        },
    ]
}

fn bench_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data")
}

/// Fill `buf` with xorshift noise continuing from `state`.
fn noise(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Create (once) the store for `case` and return its root.
fn store_for(runtime: &tokio::runtime::Runtime, case: &Case) -> PathBuf {
    let root = bench_root().join(format!(
        "export-{}-{}x{}",
        case.name, case.blobs, case.blob_bytes
    ));
    let done = root.join(".filled");
    if done.exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&root);
    let store = LocalStore::open(&root)
        .expect("open bench store")
        .with_fsync(false);
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ case.blob_bytes;
    runtime.block_on(async {
        store.create_container("bench").await.expect("container");
        for i in 0..case.blobs {
            let path = BlobPath::parse(&format!("bench/{:03}/f{i:06}.bin", i % 256)).expect("path");
            if case.blob_bytes <= BLOCK {
                let mut data = vec![0u8; case.blob_bytes as usize];
                noise(&mut state, &mut data);
                store
                    .put_blob(&path, Bytes::from(data), CommitOptions::default())
                    .await
                    .expect("put blob");
                continue;
            }
            let mut ids = Vec::new();
            let mut offset = 0;
            while offset < case.blob_bytes {
                let n = (case.blob_bytes - offset).min(BLOCK);
                let mut data = vec![0u8; n as usize];
                noise(&mut state, &mut data);
                let id = BlockId::new((ids.len() as u32).to_le_bytes()).expect("id");
                let checksum = BlockChecksum::Md5Verified(Md5Digest::of(&data));
                let block = StageBlock {
                    id: id.clone(),
                    data: Bytes::from(data),
                    checksum,
                    offset_hint: Some(offset),
                };
                store.stage_block(&path, block).await.expect("stage");
                ids.push(id);
                offset += n;
            }
            store
                .commit_block_list(&path, &ids, CommitOptions::default())
                .await
                .expect("commit");
        }
    });
    fs::write(&done, b"").expect("mark bench store");
    root
}

/// Read every file under `dir` once so the export reads from the page cache.
fn warm(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            warm(&path);
        } else {
            let _ = fs::read(&path);
        }
    }
}

fn export_once(
    runtime: &tokio::runtime::Runtime,
    store_dir: &Path,
    drive: &Path,
    case: &Case,
) -> Duration {
    let _ = fs::remove_dir_all(drive);
    fs::create_dir_all(drive).expect("create bench drive");
    let store = Arc::new(LocalStore::open(store_dir).expect("open store"));
    let (engine, _) = IoEngine::probe();
    let list = BlobListSource::Document(
        b"<BlobList><BlobPathPrefix>/bench/</BlobPathPrefix></BlobList>".to_vec(),
    );
    let config = ExportConfig::new(drive, "BENCH", list, engine);
    let start = Instant::now();
    let report = runtime
        .block_on(export_drive(
            &config,
            store,
            Arc::new(NoEvents),
            CancellationToken::new(),
        ))
        .expect("export");
    let elapsed = start.elapsed();
    // Every blob, whole: a drive too full for the set would otherwise "complete" at once with
    // everything in the incomplete blob list.
    assert_eq!(
        (report.bytes_total, report.bytes_succeeded),
        (case.blobs * case.blob_bytes, case.blobs * case.blob_bytes),
        "bench export must copy every blob: {:?}",
        report.drive_log.status
    );
    elapsed
}

fn bench_export(c: &mut Criterion) {
    let scale: u64 = std::env::var("DRIVECOPY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut ceiling = c.benchmark_group("md5_ceiling");
    let data = {
        let mut state = 7u64;
        let mut v = vec![0u8; (256 << 20) / scale as usize];
        noise(&mut state, &mut v);
        v
    };
    ceiling.throughput(Throughput::Bytes(data.len() as u64));
    ceiling.sample_size(10);
    ceiling.bench_function("stream", |b| {
        b.iter(|| Md5::digest(std::hint::black_box(&data)))
    });
    ceiling.finish();
    drop(data);

    let mut group = c.benchmark_group("export");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    let mut kept = Vec::new();
    for case in cases(scale) {
        let store = store_for(&runtime, &case);
        warm(&store);
        let drives = bench_root().join(format!("export-drives-{}", case.name));
        let _ = fs::remove_dir_all(&drives);
        let mut n = 0u64;
        group.throughput(Throughput::Bytes(case.blobs * case.blob_bytes));
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        // One file: reuse one drive (deleting it frees a few inodes). Many files:
                        // a fresh drive each time, kept to the end (11 or so of 2 GiB each).
                        n += u64::from(case.blobs > 1);
                        export_once(&runtime, &store, &drives.join(n.to_string()), &case)
                    })
                    .sum()
            })
        });
        kept.push(drives);
    }
    group.finish();
    // Deleted only now: on ext4 without a journal, creating files soon after thousands were
    // deleted scans the recently freed inodes, which would time the previous iteration's cleanup
    // (see benches/import.rs).
    for d in kept {
        let _ = fs::remove_dir_all(d);
    }
}

criterion_group!(benches, bench_export);
criterion_main!(benches);
