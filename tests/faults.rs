//! Imports through a store that fails: [`FaultyStore`] injects retryable failures (refused
//! requests, and connections cut mid-body whose writes may or may not have landed), and
//! [`RetryStore`] retries them. The import must complete with every blob byte-identical, and the
//! progress events, the report and the verbose log must show the retries (issue 4 item 4).
//!
//! The scenario takes the base store as an `Arc<dyn BlobStore>`, so the same check can run
//! against any backend (the local store here; Azurite where the emulator is available).

mod util;

use std::sync::Arc;
use std::time::Duration;

use drivecopy::copylog::{DriveLog, DriveLogStatus};
use drivecopy::engine::import::LogLevel;
use drivecopy::engine::read::IoEngine;
use drivecopy::events::Event;
use drivecopy::store::faulty::{FaultKind, FaultPlan, FaultyStore};
use drivecopy::store::retry::{RetryPolicy, RetryStore};
use drivecopy::store::BlobStore;
use tokio_util::sync::CancellationToken;
use util::{blob, each_backend, random_bytes, run_import, Fixture};

const KIB: usize = 1024;
const BLOCK_64K: u64 = 64 * 1024;

/// Source files: a multi-block blob, a blob of one block, small files (one empty), a page blob
/// with holes. Returns each blob's name and bytes.
fn drive(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut disk = vec![0u8; 2048 * KIB];
    for (i, page) in [0usize, 1, 2, 300, 301, 2000, 4095].into_iter().enumerate() {
        disk[page * 512..(page + 1) * 512].copy_from_slice(&random_bytes(512, 90 + i as u64));
    }
    let files = vec![
        ("big.bin", random_bytes(20 * 64 * KIB + 123, 1)),
        ("one.bin", random_bytes(40 * KIB, 2)),
        ("a.txt", random_bytes(300, 3)),
        ("dir/b.txt", random_bytes(5000, 4)),
        ("dir/empty.txt", Vec::new()),
        ("disk.vhd", disk),
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

/// Retries fast enough for a test: many tries, millisecond backoffs.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_tries: 12,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

/// Import the fixture's drive into `RetryStore(FaultyStore(base, plan))` and check the outcome
/// through `base`.
pub async fn import_through_faults(
    fx: &Fixture,
    files: &[(String, Vec<u8>)],
    base: Arc<dyn BlobStore>,
    plan: FaultPlan,
    engine: IoEngine,
) {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&base), plan));
    let cancel = CancellationToken::new();
    let retrying = Arc::new(RetryStore::new(faulty.clone(), policy(), cancel.clone()));
    let store: Arc<dyn BlobStore> = retrying.clone();
    let mut config = fx.config(engine);
    config.log_level = LogLevel::Verbose;
    let (report, events) = run_import(&config, store, cancel).await;

    assert_eq!(
        report.status(),
        &DriveLogStatus::Completed,
        "{}",
        report.drive_log.to_error_xml()
    );
    assert_eq!(report.blobs_failed(), 0);
    assert!(!report.cancelled);
    assert_eq!(report.bytes_succeeded, report.bytes_total);
    for (name, data) in files {
        let back = base
            .read_range(&blob(name), None)
            .await
            .unwrap_or_else(|e| panic!("read {name}: {e}"));
        assert!(back[..] == data[..], "{name} differs after the import");
    }

    // The faults happened, and the run says how often it retried.
    // Every injected fault cost exactly one retry (none made a request give up). The report
    // counts up to the end of the copy; the log writes come after it.
    assert!(faulty.faults() > 0, "no fault was injected");
    assert_eq!(retrying.retries(), faulty.faults());
    assert!(report.retries > 0);
    assert!(report.retries <= retrying.retries());
    let last_progress = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Progress(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a progress event");
    assert_eq!(last_progress.retries, report.retries);

    // The verbose log is the Azure document with the retries in a trailing comment.
    let logs = base
        .list_blobs("waimportexport", "waies/")
        .await
        .expect("list the logs");
    let verbose = logs
        .iter()
        .find(|b| b.name.ends_with("_verbose.xml"))
        .expect("a verbose log");
    let xml = base
        .read_range(&blob(&format!("waimportexport/{}", verbose.name)), None)
        .await
        .expect("read the verbose log");
    let text = String::from_utf8(xml.to_vec()).expect("utf-8 log");
    let comment = text
        .lines()
        .find(|l| l.starts_with("<!-- drivecopy: retries="))
        .expect("the retries comment");
    let logged: u64 = comment
        .split('"')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a retry count");
    assert_eq!(logged, report.retries);
    let parsed = DriveLog::parse(&xml).expect("the verbose log parses");
    assert_eq!(parsed.blobs.len(), files.len());
}

#[test]
fn twenty_percent_of_requests_refused() {
    each_backend(
        "twenty_percent_of_requests_refused",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let files = drive(&fx);
            let plan = FaultPlan {
                fraction: 0.2,
                seed: 11,
                kind: FaultKind::Refuse,
                ..FaultPlan::default()
            };
            import_through_faults(&fx, &files, fx.target(), plan, engine).await;
        },
    );
}

#[test]
fn twenty_percent_of_connections_cut_mid_body() {
    each_backend(
        "twenty_percent_of_connections_cut_mid_body",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let files = drive(&fx);
            let plan = FaultPlan {
                fraction: 0.2,
                seed: 12,
                kind: FaultKind::Cut,
                ..FaultPlan::default()
            };
            import_through_faults(&fx, &files, fx.target(), plan, engine).await;
        },
    );
}

#[test]
fn the_first_two_tries_of_every_request_fail() {
    each_backend(
        "the_first_two_tries_of_every_request_fail",
        |backend, engine| async move {
            let fx = Fixture::on(backend);
            let files = drive(&fx);
            let plan = FaultPlan {
                first_tries: 2,
                seed: 13,
                kind: FaultKind::Cut,
                ..FaultPlan::default()
            };
            import_through_faults(&fx, &files, fx.target(), plan, engine).await;
        },
    );
}
