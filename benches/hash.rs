//! Block hashing throughput: per-block MD5 + CRC32C through `HashPool` with 1 and 2 threads, by
//! block size, and the single-stream MD5 ceiling over the same 256 MiB.
//!
//! Run: `cargo bench --bench hash -- --warm-up-time 1 --measurement-time 3`.
//! The target is 2 threads ≥ 1.8 × 1 thread; "the MD5 ceiling" is cores × `md5_stream`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use drivecopy::engine::hash::HashPool;
use md5::{Digest as _, Md5};

/// The bytes hashed per iteration.
const SET_BYTES: usize = 256 << 20;

/// Blocks in flight at once, as the pipeline's buffer pool would allow.
const IN_FLIGHT_BLOCKS: usize = 16;

const BLOCK_SIZES_BYTES: [usize; 3] = [64 << 10, 1 << 20, 4 << 20];

/// 256 MiB of xorshift noise (incompressible, deterministic).
fn data_set() -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(SET_BYTES);
    while out.len() < SET_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

/// Hash every `block`-sized slice of `data` through `pool`, at most `IN_FLIGHT_BLOCKS` at once.
async fn hash_all(pool: &'static HashPool, data: &Bytes, block: usize) -> u32 {
    let mut in_flight = tokio::task::JoinSet::new();
    let mut acc = 0u32;
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + block).min(data.len());
        let slice = data.slice(offset..end);
        in_flight.spawn(async move { pool.digest(slice).await.crc32c });
        offset = end;
        if in_flight.len() >= IN_FLIGHT_BLOCKS {
            if let Some(done) = in_flight.join_next().await {
                acc ^= done.expect("hash task");
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        acc ^= done.expect("hash task");
    }
    acc
}

fn bench_hash(c: &mut Criterion) {
    let data = data_set();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group("block_md5_crc32c");
    group.throughput(Throughput::Bytes(SET_BYTES as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for threads in [1usize, 2] {
        let pool: &'static HashPool =
            Box::leak(Box::new(HashPool::new(Some(threads)).expect("hash pool")));
        for block in BLOCK_SIZES_BYTES {
            let id = BenchmarkId::new(format!("{threads}_threads"), format!("{}KiB", block >> 10));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        std::hint::black_box(runtime.block_on(hash_all(pool, &data, block)));
                        total += start.elapsed();
                    }
                    total
                });
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("md5_stream");
    group.throughput(Throughput::Bytes(SET_BYTES as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function("1_thread", |b| {
        b.iter(|| {
            let mut md5 = Md5::new();
            for chunk in data.chunks(1 << 20) {
                md5.update(chunk);
            }
            std::hint::black_box(md5.finalize())
        });
    });
    group.finish();
}

criterion_group!(benches, bench_hash);
criterion_main!(benches);
