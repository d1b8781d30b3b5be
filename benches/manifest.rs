//! Drive manifest parse, write and validate throughput on a 50,000-block manifest (the per-blob block
//! limit, about 5 MB of XML), the largest single blob a manifest can describe at 4 MiB blocks.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drivecopy::digest::Md5Digest;
use drivecopy::manifest::{
    Blob, BlobList, Block, Credential, Drive, DriveManifest, Limits, Secret, SourceOffset,
};

const BLOCKS: u64 = 50_000;
const BLOCK_BYTES: u64 = 4 * 1024 * 1024;

/// One block blob of 50,000 4 MiB blocks with tool-style `MD5/` ids.
fn big_manifest() -> DriveManifest {
    let blocks = (0..BLOCKS)
        .map(|i| {
            let hash = Md5Digest::of(&i.to_le_bytes());
            Block {
                offset: i * BLOCK_BYTES,
                length: BLOCK_BYTES,
                id: Some(format!("MD5/{}", hash.to_base64())),
                hash,
            }
        })
        .collect();
    DriveManifest {
        version: Some("2014-11-01".into()),
        drive: Drive {
            drive_id: "9WM35C3U".into(),
            credential: Some(Credential::StorageAccountKey(Secret::new("a2V5"))),
            client_creator: Some("drivecopy bench".into()),
            blob_lists: vec![BlobList {
                id: Some("session#1-0".into()),
                metadata_path: None,
                properties_path: None,
                blobs: vec![Blob {
                    blob_path: "vhds/big.bin".into(),
                    file_path: r"\vhds\big.bin".into(),
                    client_data: None,
                    snapshot: None,
                    length: BLOCKS * BLOCK_BYTES,
                    import_disposition: None,
                    page_range_list: None,
                    block_list: Some(blocks),
                    metadata_path: None,
                    properties_path: None,
                    source_offset: SourceOffset(None),
                }],
                source_offset: SourceOffset(None),
            }],
            source_offset: SourceOffset(None),
        },
    }
}

fn bench(c: &mut Criterion) {
    let model = big_manifest();
    let xml = model.to_xml();
    let mut group = c.benchmark_group("manifest_50000_blocks");
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.sample_size(10);
    group.bench_function("parse", |b| {
        b.iter(|| DriveManifest::parse(black_box(xml.as_bytes())))
    });
    group.bench_function("write", |b| b.iter(|| black_box(&model).to_xml()));
    group.bench_function("validate", |b| {
        b.iter(|| black_box(&model).validate(&Limits::default()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
