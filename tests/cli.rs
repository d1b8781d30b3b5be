//! End-to-end tests of the `drivecopy` binary: each test spawns the real executable and checks
//! what an orchestrator or an operator sees: exit codes, the JSON-lines stream on stdout, the
//! files it writes (drive manifest, blobs, error and verbose logs) and that secrets never leak.
//!
//! Fixtures are the sample documents of `tests/data/` (described in `tests/data/README.md`) and
//! drives made on the fly in temporary directories with `drivecopy prepare`.

mod util;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::{finish, Run};

use drivecopy::copylog::{DriveLog, RangeList, RangeStatus};
use md5::{Digest as _, Md5};
use serde_json::Value;

// ---- helpers --------------------------------------------------------------------------------

/// The binary under test.
fn drivecopy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    // Keep runs independent of the caller's environment.
    cmd.env_remove("DRIVECOPY_STORAGE_ACCOUNT_KEY")
        .env_remove("DRIVECOPY_CONTAINER_SAS")
        .env_remove("RUST_LOG");
    cmd
}

/// Run `drivecopy args...` to the end.
fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_with(drivecopy().args(args))
}

fn run_with(cmd: &mut Command) -> Run {
    finish(cmd.output().expect("spawn drivecopy"))
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(rel)
}

/// The files of a `tests/data` directory, sorted.
fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data(dir))
        .expect("list fixtures")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift64*), distinct per seed.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
    }
    std::fs::write(path, bytes).expect("write file");
}

/// Every regular file under `dir`, by path relative to `dir` (with `/`), skipping any directory
/// named in `skip` at the top level.
fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(base).expect("under base");
            let rel_text: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if dir == base && skip.contains(&rel_text[0].as_str()) {
                continue;
            }
            let kind = std::fs::symlink_metadata(&path).expect("stat");
            if kind.is_dir() {
                walk(base, &path, skip, out);
            } else if kind.is_file() {
                out.insert(rel_text.join("/"), std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// Parse stdout as JSON lines; every line must be one JSON object with a `type`.
fn events(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "stdout line is not JSON ({e}): {line:?}\n{}",
                    run.describe()
                )
            });
            assert!(
                v.get("type").and_then(Value::as_str).is_some(),
                "no type: {line}"
            );
            v
        })
        .collect()
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// The ARM `DriveStatus` field names (azure-import-export.md §4.1) the `result` may use.
const DRIVE_STATUS_FIELDS: &[&str] = &[
    "driveId",
    "manifestFile",
    "manifestHash",
    "driveHeaderHash",
    "state",
    "copyStatus",
    "percentComplete",
    "bytesSucceeded",
    "errorLogUri",
    "verboseLogUri",
    "manifestUri",
];

/// The `result` event of an import run, after checking the exit code matches it.
fn result_of(run: &Run) -> Value {
    let evs = events(run);
    let last = evs
        .last()
        .unwrap_or_else(|| panic!("no output\n{}", run.describe()));
    assert_eq!(kind(last), "result", "{}", run.describe());
    assert_eq!(
        last["exitCode"].as_i64(),
        Some(i64::from(run.code)),
        "{}",
        run.describe()
    );
    let status = last["driveStatus"]
        .as_object()
        .expect("driveStatus is an object");
    for key in status.keys() {
        assert!(
            DRIVE_STATUS_FIELDS.contains(&key.as_str()),
            "driveStatus has {key:?}: {last}"
        );
    }
    for key in ["driveId", "state", "percentComplete", "bytesSucceeded"] {
        assert!(status.contains_key(key), "driveStatus lacks {key}: {last}");
    }
    let pct = status["percentComplete"]
        .as_u64()
        .expect("percentComplete is a number");
    assert!(pct <= 100, "{last}");
    last.clone()
}

/// The orchestrator contract of an import's stdout: JSON lines, `start` first, exactly one
/// `result`, last; sane `progress` events.
fn assert_stream_shape(run: &Run) {
    let evs = events(run);
    assert!(!evs.is_empty(), "{}", run.describe());
    assert_eq!(
        kind(&evs[0]),
        "start",
        "first line must be start\n{}",
        run.describe()
    );
    assert_eq!(evs[0]["schemaVersion"].as_u64(), Some(1));
    let results = evs.iter().filter(|e| kind(e) == "result").count();
    assert_eq!(results, 1, "{}", run.describe());
    assert_eq!(kind(evs.last().expect("non-empty")), "result");
    assert_eq!(evs.iter().filter(|e| kind(e) == "start").count(), 1);
    for e in &evs {
        match kind(e) {
            "start" | "result" => {}
            "progress" => {
                let done = e["bytesDone"].as_u64().expect("bytesDone");
                let total = e["bytesTotal"].as_u64().expect("bytesTotal");
                let pct = e["percentComplete"].as_u64().expect("percentComplete");
                assert!(done <= total, "{e}");
                assert!(pct <= 100, "{e}");
                assert!(e["blobsDone"].as_u64() <= e["blobsTotal"].as_u64(), "{e}");
            }
            "warning" => {
                assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
                assert!(e["message"].as_str().is_some(), "{e}");
            }
            other => panic!("unknown event type {other:?}: {e}"),
        }
    }
}

/// `file:///abs/path` to the path.
fn file_uri_path(uri: &str) -> PathBuf {
    PathBuf::from(
        uri.strip_prefix("file://")
            .unwrap_or_else(|| panic!("not a file URI: {uri}")),
    )
}

/// `drivecopy prepare --drive D --src S --dst DST --drive-id ID --json` with `extra` args; the
/// parsed JSON report.
fn prepare(drive: &Path, src: &Path, dst: &str, id: &str, extra: &[&str]) -> Value {
    let r = run_with(
        drivecopy()
            .args(["prepare", "--json", "--drive-id", id, "--dst", dst])
            .arg("--drive")
            .arg(drive)
            .arg("--src")
            .arg(src)
            .args(extra),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()))
}

fn import(drive: &Path, store: &Path, extra: &[&str]) -> Run {
    run_with(
        drivecopy()
            .args(["import", "--no-fsync"])
            .arg("--drive")
            .arg(drive)
            .arg("--dest")
            .arg(store)
            .args(extra),
    )
}

/// A small source tree: a multi-block file, a one-block file, an empty file, in two directories.
fn small_source(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = [
        ("big.bin", random_bytes(1, 2_500_000)),
        ("sub/one.txt", random_bytes(2, 70_000)),
        ("sub/empty", Vec::new()),
    ];
    let mut out = BTreeMap::new();
    for (name, bytes) in files {
        write(&dir.join(name), &bytes);
        out.insert(name.to_string(), bytes);
    }
    out
}

// ---- 1. manifest validate / show, log show ---------------------------------------------------

/// Expected place of the one defect of each `invalid-*.xml` (tests/data/README.md): element,
/// item index and byte offset within the blob.
fn expected_defect(name: &str) -> (&'static str, Option<u64>, Option<u64>) {
    match name {
        "invalid-block-gap.xml" => ("Block", Some(1), Some(4_194_816)),
        "invalid-block-id-mixed-length.xml" => ("Block", Some(1), Some(10)),
        "invalid-block-too-long.xml" => ("Block", Some(0), Some(0)),
        "invalid-container-name.xml" => ("BlobPath", None, None),
        "invalid-file-path-parent.xml" => ("FilePath", None, None),
        "invalid-page-range-unaligned.xml" => ("PageRange", Some(1), Some(1000)),
        "invalid-page-ranges-overlap.xml" => ("PageRange", Some(1), Some(512)),
        "invalid-page-ranges-unsorted.xml" => ("PageRange", Some(1), Some(0)),
        other => panic!("{other}: add the expected defect of this new fixture"),
    }
}

/// Byte offsets of every `<Blob>` start tag in a document.
fn blob_tags(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(6)
        .enumerate()
        .filter(|(_, w)| w == b"<Blob>")
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn manifest_validate_accepts_valid_samples_and_locates_each_defect() {
    let mut valid = 0;
    let mut invalid = 0;
    for path in fixtures("manifests") {
        let name = file_name(&path);
        let bytes = std::fs::read(&path).expect("read fixture");
        let json = run([
            "manifest".as_ref(),
            "validate".as_ref(),
            "--json".as_ref(),
            path.as_os_str(),
        ]);
        let text = run(["manifest".as_ref(), "validate".as_ref(), path.as_os_str()]);
        let v: Value = serde_json::from_str(json.stdout.trim())
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", json.describe()));
        let problems = v["problems"].as_array().expect("problems array").clone();
        if name.starts_with("invalid-") {
            invalid += 1;
            assert_eq!(
                (json.code, text.code),
                (4, 4),
                "{name}\n{}\n{}",
                json.describe(),
                text.describe()
            );
            assert_eq!(v["valid"], Value::Bool(false), "{name}: {v}");
            assert_eq!(problems.len(), 1, "{name}: {v}");
            let p = &problems[0];
            let (element, item, offset) = expected_defect(&name);
            assert_eq!(p["element"].as_str(), Some(element), "{name}: {p}");
            assert_eq!(p["listIndex"].as_u64(), Some(0), "{name}: {p}");
            assert_eq!(p["blobIndex"].as_u64(), Some(1), "{name}: {p}");
            assert_eq!(p["itemIndex"].as_u64(), item, "{name}: {p}");
            assert_eq!(p["offsetBytes"].as_u64(), offset, "{name}: {p}");
            // The document offset points at the second <Blob> start tag.
            let second_blob = blob_tags(&bytes)[1] as u64;
            assert_eq!(
                p["documentOffset"].as_u64(),
                Some(second_blob),
                "{name}: {p}"
            );
            assert!(
                p["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: {p}"
            );
            // The text form names the blob and the document byte too.
            assert!(
                text.stdout.contains("blob 1"),
                "{name}\n{}",
                text.describe()
            );
            assert!(
                text.stdout
                    .contains(&format!("document byte {second_blob}")),
                "{name}\n{}",
                text.describe()
            );
        } else if name == "schema-tool-output-placeholder.xml" {
            // As published: both lists on one blob, and a block list that starts at 1 GiB.
            assert_eq!(
                (json.code, text.code),
                (4, 4),
                "{name}\n{}",
                json.describe()
            );
            let elements: Vec<&str> = problems
                .iter()
                .filter_map(|p| p["element"].as_str())
                .collect();
            assert_eq!(elements, ["Blob", "Block"], "{name}: {v}");
            assert_eq!(
                problems[1]["offsetBytes"].as_u64(),
                Some(1_073_741_824),
                "{v}"
            );
        } else {
            valid += 1;
            assert_eq!(json.code, 0, "{name}\n{}", json.describe());
            assert_eq!(text.code, 0, "{name}\n{}", text.describe());
            assert_eq!(v["valid"], Value::Bool(true), "{name}: {v}");
            assert!(problems.is_empty(), "{name}: {v}");
            assert!(text.stdout.contains("valid"), "{name}: {}", text.describe());
        }
    }
    assert_eq!(
        (valid, invalid),
        (3, 8),
        "fixtures changed: update this test"
    );
}

#[test]
fn manifest_validate_honours_the_block_size_limit() {
    let path = data("manifests/invalid-block-too-long.xml");
    let r = run_with(
        drivecopy()
            .args(["manifest", "validate", "--max-block-bytes", "4194305"])
            .arg(&path),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
}

/// The text of each `<StorageAccountKey>`/`<ContainerSas>` in a manifest, raw and unescaped.
fn secrets_in(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in ["StorageAccountKey", "ContainerSas"] {
        let open = format!("<{tag}>");
        if let Some(start) = xml.find(&open) {
            let rest = &xml[start + open.len()..];
            let end = rest.find('<').expect("closing tag");
            let raw = rest[..end].trim().to_string();
            out.push(raw.replace("&amp;", "&"));
            // Each `sig=`, key material on its own, must not appear either.
            if let Some(sig) = raw.split("sig=").nth(1) {
                out.push(sig.to_string());
            }
            out.push(raw);
        }
    }
    out
}

#[test]
fn manifest_show_prints_json_with_credentials_redacted() {
    let mut with_credential = 0;
    for path in fixtures("manifests") {
        let name = file_name(&path);
        let xml = std::fs::read_to_string(&path).expect("read fixture");
        let r = run(["manifest".as_ref(), "show".as_ref(), path.as_os_str()]);
        assert_eq!(r.code, 0, "{name}\n{}", r.describe());
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v["drive"]["driveId"].as_str().is_some(), "{name}: {v}");
        let secrets = secrets_in(&xml);
        if !secrets.is_empty() {
            with_credential += 1;
            let cred = v["drive"]["credential"]
                .as_object()
                .expect("credential shown");
            assert_eq!(cred.len(), 1, "{name}: {v}");
            for value in cred.values() {
                assert_eq!(value.as_str(), Some("<redacted>"), "{name}: {v}");
            }
        }
        for s in secrets {
            assert!(
                !r.stdout.contains(&s) && !r.stderr.contains(&s),
                "{name} leaks {s:?}"
            );
        }
    }
    assert!(with_credential >= 2, "the fixtures carry keys and a SAS");
}

#[test]
fn unparseable_documents_exit_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.xml");
    write(&garbage, b"this is not XML at all");
    let truncated = dir.path().join("truncated.xml");
    let full = std::fs::read(data("manifests/import-tool-output.xml")).expect("fixture");
    write(&truncated, &full[..full.len() / 2]);
    let log_truncated = dir.path().join("log-truncated.xml");
    let log = std::fs::read(data("logs/import-verbose.xml")).expect("fixture");
    write(&log_truncated, &log[..log.len() / 2]);
    let empty = dir.path().join("empty.xml");
    write(&empty, b"");

    for doc in [&garbage, &truncated, &empty] {
        for args in [
            &["manifest", "validate"][..],
            &["manifest", "validate", "--json"],
            &["manifest", "show"],
        ] {
            let r = run_with(drivecopy().args(args).arg(doc));
            assert_eq!(r.code, 4, "{args:?} {}\n{}", doc.display(), r.describe());
        }
        let r = run_with(
            drivecopy()
                .args(["manifest", "validate", "--json"])
                .arg(doc),
        );
        let v: Value = serde_json::from_str(r.stdout.trim()).expect("json even when unparseable");
        assert_eq!(v["valid"], Value::Bool(false));
        assert!(
            v["parseError"].as_str().is_some_and(|e| !e.is_empty()),
            "{v}"
        );
    }
    // A manifest is not a drive log, and a cut log is not one either.
    for doc in [
        &garbage,
        &log_truncated,
        &empty,
        &data("manifests/import-tool-output.xml"),
    ] {
        for args in [&["log", "show"][..], &["log", "show", "--json"]] {
            let r = run_with(drivecopy().args(args).arg(doc));
            assert_eq!(r.code, 4, "{args:?} {}\n{}", doc.display(), r.describe());
            assert!(r.stdout.is_empty(), "{}", r.describe());
            assert!(r.stderr.contains("cannot be parsed"), "{}", r.describe());
        }
    }
}

/// exit.rs: 4 is "a document given to `manifest validate` or `log show` could not be read".
#[test]
fn a_document_that_cannot_be_read_exits_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.xml");
    for args in [
        &["manifest", "validate"][..],
        &["manifest", "show"],
        &["log", "show"],
    ] {
        let r = run_with(drivecopy().args(args).arg(&missing));
        assert_eq!(r.code, 4, "{args:?}\n{}", r.describe());
    }
}

#[test]
fn log_show_summarises_failed_ranges_and_json_is_the_model() {
    for path in fixtures("logs") {
        let name = file_name(&path);
        let bytes = std::fs::read(&path).expect("read fixture");
        let model = DriveLog::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));

        let json = run([
            "log".as_ref(),
            "show".as_ref(),
            "--json".as_ref(),
            path.as_os_str(),
        ]);
        assert_eq!(json.code, 0, "{name}\n{}", json.describe());
        let shown: DriveLog = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{name}: --json is not the DriveLog model: {e}"));
        assert_eq!(shown, model, "{name}");

        let text = run(["log".as_ref(), "show".as_ref(), path.as_os_str()]);
        assert_eq!(text.code, 0, "{name}\n{}", text.describe());
        let first = text.stdout.lines().next().unwrap_or("");
        assert!(first.contains(&model.drive_id), "{name}: {first}");
        assert!(first.contains(&model.status.to_string()), "{name}: {first}");
        for blob in &model.blobs {
            let listed = text.stdout.contains(&format!("{} <- ", blob.blob_path));
            assert_eq!(
                listed,
                blob.has_errors(),
                "{name}: {}\n{}",
                blob.blob_path,
                text.stdout
            );
            let ranges: Vec<(u64, u64, RangeStatus)> = match &blob.list {
                Some(RangeList::BlockList(b)) => b
                    .iter()
                    .map(|b| (b.offset_bytes, b.length_bytes, b.status.clone()))
                    .collect(),
                Some(RangeList::PageRangeList(r)) => r
                    .iter()
                    .map(|r| (r.offset_bytes, r.length_bytes, r.status.clone()))
                    .collect(),
                None => Vec::new(),
            };
            for (offset, length, status) in ranges {
                let line = format!("at {offset} ({length} bytes): {status}");
                let failed = status != RangeStatus::Completed;
                assert_eq!(
                    text.stdout.contains(&line),
                    failed,
                    "{name}: {line:?}\n{}",
                    text.stdout
                );
            }
        }
    }
    // The published samples, spelled out.
    let r = run([
        "log".as_ref(),
        "show".as_ref(),
        data("logs/import-verbose.xml").as_os_str(),
    ]);
    assert!(
        r.stdout.contains("pictures/bob/animals/koala.jpg"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("page range at 65536 (65536 bytes): Corrupted"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("desert.jpg"),
        "completed blobs are not listed: {}",
        r.stdout
    );
    let r = run([
        "log".as_ref(),
        "show".as_ref(),
        data("logs/repair-export.xml").as_os_str(),
    ]);
    assert!(
        r.stdout.contains("block at 65536 (65536 bytes): Failed"),
        "{}",
        r.stdout
    );
    let r = run([
        "log".as_ref(),
        "show".as_ref(),
        data("logs/export-error-properties.xml").as_os_str(),
    ]);
    assert!(r.stdout.contains("properties: Failed"), "{}", r.stdout);
}

// ---- 2. import: the orchestrator interface ---------------------------------------------------

#[test]
fn import_of_a_clean_drive_completes_with_exit_0() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    let files = small_source(&src);
    let info = prepare(
        &drive,
        &src,
        "photos/2026/",
        "CLEAN01",
        &["--block-size", "1MiB"],
    );

    let r = import(
        &drive,
        &store,
        &[
            "--job",
            "job1",
            "--log-level",
            "verbose",
            "--drive-id",
            "CLEAN01",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let result = result_of(&r);
    assert_stream_shape(&r);
    let status = &result["driveStatus"];
    assert_eq!(result["outcome"], "Completed");
    assert_eq!(status["driveId"], "CLEAN01");
    assert_eq!(status["state"], "Completed");
    assert_eq!(status["copyStatus"], "Completed");
    assert_eq!(status["percentComplete"], 100);
    assert_eq!(status["manifestFile"], r"\DriveManifest.xml");
    assert_eq!(status["manifestHash"], info["manifestHash"]);
    let total: u64 = files.values().map(|f| f.len() as u64).sum();
    assert_eq!(status["bytesSucceeded"].as_u64(), Some(total), "{result}");
    assert_eq!(result["bytesTotal"].as_u64(), Some(total));
    assert_eq!(result["blobsTotal"].as_u64(), Some(files.len() as u64));
    assert_eq!(result["blobsFailed"].as_u64(), Some(0));
    assert!(
        status.get("errorLogUri").is_none(),
        "no error log for a clean drive: {result}"
    );

    // The verbose log exists, is a drive log, and lists every blob Completed.
    let verbose = file_uri_path(status["verboseLogUri"].as_str().expect("verbose log"));
    assert!(verbose.starts_with(&store), "{}", verbose.display());
    let log_name = file_name(&verbose);
    assert!(
        log_name.starts_with("job1_CLEAN01_") && log_name.ends_with("_verbose.xml"),
        "{log_name}"
    );
    let log =
        DriveLog::parse(&std::fs::read(&verbose).expect("verbose log exists")).expect("parses");
    assert_eq!(log.blobs.len(), files.len());
    assert!(log.blobs.iter().all(|b| !b.has_errors()), "{log:?}");

    // Every blob is byte-identical to its source.
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (format!("photos/2026/{k}"), v.clone()))
        .collect();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(stored == expected, "blob bytes differ from the sources");
}

/// The std reader (forced here; chosen when io_uring is unavailable, as under Docker's default
/// seccomp profile) copies the same bytes, and its `IoEngineFallback` warning must not come
/// before `start`.
#[test]
fn import_with_the_std_engine_keeps_start_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    let files = small_source(&src);
    prepare(&drive, &src, "photos/", "STD01", &["--block-size", "1MiB"]);
    let r = run_with(
        drivecopy()
            .env("DRIVECOPY_IO_ENGINE", "std")
            .args(["import", "--no-fsync"])
            .arg("--drive")
            .arg(&drive)
            .arg("--dest")
            .arg(&store),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (format!("photos/{k}"), v.clone()))
        .collect();
    assert!(
        stored == expected,
        "{:?}",
        stored.keys().collect::<Vec<_>>()
    );
    let evs = events(&r);
    let start = evs
        .iter()
        .find(|e| kind(e) == "start")
        .expect("a start event");
    assert_eq!(start["ioEngine"], "std", "{start}");
    assert_stream_shape(&r);
}

#[test]
fn import_of_a_drive_with_one_corrupted_byte_exits_1_with_an_error_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    let files = small_source(&src);
    prepare(
        &drive,
        &src,
        "photos/",
        "CORRUPT1",
        &["--block-size", "1MiB"],
    );
    // Flip one byte in the second 1 MiB block of the big file, on the drive.
    let victim = drive.join("photos").join("big.bin");
    let mut bytes = std::fs::read(&victim).expect("file on the drive");
    bytes[1_500_000] ^= 0x5A;
    std::fs::write(&victim, &bytes).expect("corrupt");

    let r = import(&drive, &store, &[]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let result = result_of(&r);
    assert_stream_shape(&r);
    let status = &result["driveStatus"];
    assert_eq!(result["outcome"], "CompletedMoreInfo");
    assert_eq!(status["state"], "CompletedMoreInfo");
    assert_eq!(status["copyStatus"], "CompletedWithErrors");
    assert_eq!(result["blobsFailed"].as_u64(), Some(1), "{result}");
    let total: u64 = files.values().map(|f| f.len() as u64).sum();
    assert!(
        status["bytesSucceeded"].as_u64().is_some_and(|b| b < total),
        "{result}"
    );

    let error_log = file_uri_path(status["errorLogUri"].as_str().expect("errorLogUri set"));
    assert!(
        error_log.is_file(),
        "{} does not exist",
        error_log.display()
    );
    let log = DriveLog::parse(&std::fs::read(&error_log).expect("read")).expect("error log parses");
    assert_eq!(log.blobs.len(), 1, "{log:?}");
    assert_eq!(log.blobs[0].blob_path, "photos/big.bin");
    // `log show` on it names the corrupted block: the one at 1 MiB.
    let shown = run(["log".as_ref(), "show".as_ref(), error_log.as_os_str()]);
    assert_eq!(shown.code, 0, "{}", shown.describe());
    assert!(
        shown
            .stdout
            .contains("block at 1048576 (1048576 bytes): Corrupted"),
        "{}",
        shown.stdout
    );

    // The intact blobs made it.
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    assert_eq!(stored.get("photos/sub/one.txt"), files.get("sub/one.txt"));
    assert_eq!(stored.get("photos/sub/empty"), files.get("sub/empty"));
}

#[test]
fn import_with_a_manifest_hash_mismatch_exits_3() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    small_source(&src);
    let info = prepare(&drive, &src, "photos/", "HASH01", &[]);
    let good = info["manifestHash"].as_str().expect("hash").to_string();
    let wrong = if good.starts_with('0') {
        good.replacen('0', "1", 1)
    } else {
        format!("0{}", &good[1..])
    };

    let r = import(&drive, &store, &["--manifest-hash", &wrong]);
    assert_eq!(r.code, 3, "{}", r.describe());
    let result = result_of(&r);
    assert_eq!(result["outcome"], "DriveFailed");
    assert_eq!(
        result["driveStatus"]["copyStatus"], "ManifestCorrupted",
        "{result}"
    );
    assert!(
        tree(&store, &[".drivecopy", "waimportexport"]).is_empty(),
        "nothing imported"
    );

    // The right hash (either case) imports.
    let ok = import(&drive, &store, &["--manifest-hash", &good.to_lowercase()]);
    assert_eq!(ok.code, 0, "{}", ok.describe());
    assert_stream_shape(&ok);
    assert_stream_shape(&r);
}

#[test]
fn import_of_a_drive_without_a_manifest_exits_3() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (drive, store) = (tmp.path().join("drive"), tmp.path().join("store"));
    write(&drive.join("photos").join("a.jpg"), b"no manifest here");
    let r = import(&drive, &store, &[]);
    assert_eq!(r.code, 3, "{}", r.describe());
    let result = result_of(&r);
    assert_eq!(result["outcome"], "DriveFailed");
    assert_eq!(
        result["driveStatus"]["copyStatus"], "ManifestNotFound",
        "{result}"
    );
    assert_stream_shape(&r);
}

#[test]
fn bad_arguments_exit_2_with_nothing_on_stdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("utf-8 temp path");
    let cases: &[&[&str]] = &[
        &["import"],
        &["import", "--drive", d, "--memory", "12XB"],
        &["import", "--drive", d, "--log-level", "chatty"],
        &["import", "--drive", d, "--no-such-flag"],
        &[
            "prepare",
            "--drive",
            d,
            "--src",
            d,
            "--src",
            d,
            "--dst",
            "photos/",
            "--drive-id",
            "X",
        ],
        &["prepare", "--drive", d, "--dataset", "a.csv", "--src", d],
        &["manifest", "validate"],
        &["frobnicate"],
    ];
    for args in cases {
        let r = run(*args);
        assert_eq!(r.code, 2, "{args:?}\n{}", r.describe());
        assert!(r.stdout.is_empty(), "{args:?}\n{}", r.describe());
        assert!(!r.stderr.is_empty(), "{args:?}: say what is wrong");
    }
}

// ---- 3. clean cancellation -------------------------------------------------------------------

#[test]
fn sigterm_cancels_cleanly_and_a_rerun_completes() {
    const FILES: u64 = 240;
    const FILE_BYTES: usize = 1 << 20;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    let mut sources = BTreeMap::new();
    for i in 0..FILES {
        let bytes = random_bytes(1000 + i, FILE_BYTES);
        let name = format!("f{i:03}.bin");
        write(&src.join(&name), &bytes);
        sources.insert(format!("bulk/{name}"), bytes);
    }
    prepare(&drive, &src, "bulk/", "CANCEL01", &[]);

    let mut child = drivecopy()
        .args([
            "import",
            "--no-fsync",
            "--memory",
            "8MiB",
            "--concurrency",
            "2",
        ])
        .arg("--drive")
        .arg(&drive)
        .arg("--dest")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    let mut signalled = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        // Right after the start: the copy of 240 blobs has begun and cannot have finished
        // (signalling on a progress event raced with fast runs that end before the first one).
        if !signalled && line.contains(r#""type":"start""#) {
            let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
            #[allow(unsafe_code)]
            // SAFETY: kill(2) takes plain integers; `pid` is our own child, not yet reaped
            // (`wait` comes later), so it cannot name another process.
            let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
            assert_eq!(rc, 0, "kill failed");
            signalled = true;
        }
        lines.push(line);
    }
    let output = child.wait_with_output().expect("wait");
    let r = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: lines.join("\n"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(signalled, "no start line before the end\n{}", r.describe());
    assert_eq!(r.code, 5, "{}", r.describe());
    let result = result_of(&r);
    assert_eq!(result["outcome"], "Cancelled", "{result}");
    assert_stream_shape(&r);

    // No partial blob: every blob is complete and identical, or absent.
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    for (name, bytes) in &stored {
        let source = sources
            .get(name)
            .unwrap_or_else(|| panic!("unexpected blob {name}"));
        assert!(
            bytes == source,
            "{name} is partial or differs ({} bytes)",
            bytes.len()
        );
    }
    assert!(
        stored.len() < sources.len(),
        "the import was not interrupted: make the drive bigger"
    );

    let r = run_with(
        drivecopy()
            .args([
                "import",
                "--no-fsync",
                "--memory",
                "8MiB",
                "--concurrency",
                "2",
            ])
            .arg("--drive")
            .arg(&drive)
            .arg("--dest")
            .arg(&store),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_stream_shape(&r);
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    assert_eq!(
        stored.len(),
        sources.len(),
        "{:?}",
        stored.keys().collect::<Vec<_>>()
    );
    assert!(
        stored == sources,
        "blobs differ from their sources after the re-run"
    );
}

// ---- 4. prepare ------------------------------------------------------------------------------

#[test]
fn prepare_json_reports_the_drive_info_and_skips_symlinks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive) = (tmp.path().join("src"), tmp.path().join("drive"));
    std::fs::create_dir_all(&drive).expect("mkdir");
    let files = small_source(&src);
    let link = src.join("sub").join("link-to-big");
    std::os::unix::fs::symlink(src.join("big.bin"), &link).expect("symlink");

    let r = run_with(
        drivecopy()
            .args([
                "prepare",
                "--json",
                "--drive-id",
                "PREP01",
                "--dst",
                "photos/",
            ])
            .arg("--drive")
            .arg(&drive)
            .arg("--src")
            .arg(&src),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one JSON object: {}",
        r.describe()
    );
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    let info = &v;
    assert_eq!(info["driveId"], "PREP01");
    assert_eq!(info["manifestFile"], r"\DriveManifest.xml");
    let manifest = std::fs::read(drive.join("DriveManifest.xml")).expect("manifest written");
    assert_eq!(
        info["manifestHash"].as_str(),
        Some(md5_hex(&manifest).as_str()),
        "{v}"
    );
    assert_eq!(v["blobs"].as_u64(), Some(files.len() as u64), "{v}");

    // The link is reported on stderr and is in neither the manifest nor the drive.
    assert!(
        r.stderr.contains("link-to-big") && r.stderr.contains("symbolic link"),
        "{}",
        r.describe()
    );
    assert!(!String::from_utf8_lossy(&manifest).contains("link-to-big"));
    assert!(!drive
        .join("photos")
        .join("sub")
        .join("link-to-big")
        .exists());
    // The copies on the drive are the sources.
    let on_drive = tree(&drive.join("photos"), &[]);
    let expected: BTreeMap<String, Vec<u8>> = files.clone();
    assert!(
        on_drive == expected,
        "{:?}",
        on_drive.keys().collect::<Vec<_>>()
    );

    // The text form prints the same DriveInfo.
    let drive2 = tmp.path().join("drive2");
    std::fs::create_dir_all(&drive2).expect("mkdir");
    let r = run_with(
        drivecopy()
            .args(["prepare", "--drive-id", "PREP01", "--dst", "photos/"])
            .arg("--drive")
            .arg(&drive2)
            .arg("--src")
            .arg(&src),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let hash2 = md5_hex(&std::fs::read(drive2.join("DriveManifest.xml")).expect("manifest"));
    assert!(r.stdout.contains(&hash2), "{}", r.describe());
}

/// `manifest show` of a drive's manifest: (blobPath, is a page blob) of every blob.
fn shown_blobs(drive: &Path) -> Vec<(String, bool)> {
    let r = run([
        "manifest".as_ref(),
        "show".as_ref(),
        drive.join("DriveManifest.xml").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let mut out: Vec<(String, bool)> = v["drive"]["blobLists"]
        .as_array()
        .expect("blobLists")
        .iter()
        .flat_map(|l| l["blobs"].as_array().expect("blobs").clone())
        .map(|b| {
            (
                b["blobPath"].as_str().expect("blobPath").to_string(),
                !b["pageRangeList"].is_null(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn prepare_reads_both_dataset_csv_spellings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    write(&src.join("docs").join("a.txt"), &random_bytes(7, 3000));
    write(
        &src.join("docs").join("deep").join("b.txt"),
        &random_bytes(8, 100),
    );
    write(&src.join("disk.img"), &random_bytes(9, 8192));
    let expected = vec![
        ("archive/2026/docs/a.txt".to_string(), false),
        ("archive/2026/docs/deep/b.txt".to_string(), false),
        ("vhds/disk.img".to_string(), true),
    ];
    // The WAImportExport v1 spelling (BlobType, BlockBlob/PageBlob, quoted, "None") and the v2
    // one (DstItemPathOrPrefix, ItemType); BasePath is relative to the CSV's directory.
    let csvs = [
        "BasePath,DstBlobPathOrPrefix,BlobType,Disposition,MetadataFile,PropertiesFile\r\n\
         \"src/docs/\",\"archive/2026/docs/\",BlockBlob,rename,\"None\",None\r\n\
         \"src/disk.img\",\"vhds/disk.img\",PageBlob,overwrite,None,None\r\n",
        "BasePath,DstItemPathOrPrefix,ItemType,Disposition,MetadataFile,PropertiesFile\n\
         src/docs/,archive/2026/docs/,BlockBlob,rename,None,None\n\
         src/disk.img,vhds/disk.img,PageBlob,overwrite,None,None\n",
    ];
    for (i, csv) in csvs.iter().enumerate() {
        let csv_path = tmp.path().join(format!("dataset{i}.csv"));
        write(&csv_path, csv.as_bytes());
        let drive = tmp.path().join(format!("drive{i}"));
        std::fs::create_dir_all(&drive).expect("mkdir");
        let r = run_with(
            drivecopy()
                .args(["prepare", "--json", "--drive-id", "DS01"])
                .arg("--drive")
                .arg(&drive)
                .arg("--dataset")
                .arg(&csv_path),
        );
        assert_eq!(r.code, 0, "dataset {i}\n{}", r.describe());
        assert_eq!(shown_blobs(&drive), expected, "dataset {i}");
        let v = run_with(
            drivecopy()
                .args(["manifest", "validate"])
                .arg(drive.join("DriveManifest.xml")),
        );
        assert_eq!(
            v.code,
            0,
            "dataset {i}: the prepared manifest validates\n{}",
            v.describe()
        );
    }
}

#[test]
fn prepare_in_place_writes_only_the_manifest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drive = tmp.path().join("drive");
    let files = small_source(&drive.join("data"));
    let before = tree(&drive, &[]);
    let mtimes: Vec<_> = files
        .keys()
        .map(|k| {
            std::fs::metadata(drive.join("data").join(k))
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect();

    let info = prepare(
        &drive,
        &drive.join("data"),
        "inplace/",
        "INPLACE1",
        &["--in-place"],
    );
    let after = tree(&drive, &[]);
    let mut added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    added.sort();
    assert_eq!(
        added,
        [&"DriveManifest.xml".to_string()],
        "only the manifest is new"
    );
    for (k, v) in &before {
        assert!(after.get(k) == Some(v), "{k} changed");
    }
    let mtimes_after: Vec<_> = files
        .keys()
        .map(|k| {
            std::fs::metadata(drive.join("data").join(k))
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect();
    assert_eq!(mtimes, mtimes_after, "sources were rewritten");
    let manifest = String::from_utf8(after["DriveManifest.xml"].clone()).expect("utf-8");
    assert!(
        manifest.contains(r"<FilePath>\data\sub\one.txt</FilePath>"),
        "{manifest}"
    );
    assert_eq!(
        info["manifestHash"].as_str(),
        Some(md5_hex(manifest.as_bytes()).as_str())
    );

    // And the drive imports as it is.
    let store = tmp.path().join("store");
    let r = import(&drive, &store, &[]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let stored = tree(&store, &[".drivecopy", "waimportexport"]);
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (format!("inplace/{k}"), v.clone()))
        .collect();
    assert!(
        stored == expected,
        "{:?}",
        stored.keys().collect::<Vec<_>>()
    );
}

// ---- 5. secrets ------------------------------------------------------------------------------

#[test]
fn the_account_key_reaches_the_manifest_and_nothing_else() {
    // Recognisable, and valid Base64 like a real key.
    const KEY: &str = "U2VjcmV0S2V5Rm9yRHJpdmVjb3B5Q2xpVGVzdHMtZG8tbm90LWxlYWs=";
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, drive, store) = (
        tmp.path().join("src"),
        tmp.path().join("drive"),
        tmp.path().join("store"),
    );
    std::fs::create_dir_all(&drive).expect("mkdir");
    small_source(&src);
    let with_key =
        |cmd: &mut Command| -> Run { run_with(cmd.env("DRIVECOPY_STORAGE_ACCOUNT_KEY", KEY)) };
    let mut outputs: Vec<(String, Run)> = Vec::new();

    let r = with_key(
        drivecopy()
            .args([
                "prepare",
                "--json",
                "--drive-id",
                "SECRET01",
                "--dst",
                "photos/",
                "--block-size",
                "1MiB",
            ])
            .arg("--drive")
            .arg(&drive)
            .arg("--src")
            .arg(&src),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    outputs.push(("prepare".into(), r));
    let manifest_path = drive.join("DriveManifest.xml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    assert!(
        manifest.contains(&format!("<StorageAccountKey>{KEY}</StorageAccountKey>")),
        "the service needs the key in the manifest:\n{manifest}"
    );

    let show = with_key(drivecopy().args(["manifest", "show"]).arg(&manifest_path));
    assert_eq!(show.code, 0, "{}", show.describe());
    assert!(show.stdout.contains("<redacted>"), "{}", show.describe());
    outputs.push(("manifest show".into(), show));
    for json in [
        &["manifest", "validate", "--json"][..],
        &["manifest", "validate"],
    ] {
        outputs.push((
            format!("{json:?}"),
            with_key(drivecopy().args(json).arg(&manifest_path)),
        ));
    }

    // A corrupted byte, so an error log is written; verbose, so the verbose log is too.
    let victim = drive.join("photos").join("big.bin");
    let mut bytes = std::fs::read(&victim).expect("file on the drive");
    bytes[10] ^= 1;
    std::fs::write(&victim, &bytes).expect("corrupt");
    let imported = with_key(
        drivecopy()
            .args([
                "import",
                "--no-fsync",
                "--log-level",
                "verbose",
                "--job",
                "secretjob",
            ])
            .arg("--drive")
            .arg(&drive)
            .arg("--dest")
            .arg(&store),
    );
    assert_eq!(imported.code, 1, "{}", imported.describe());
    let result = result_of(&imported);
    let logs: Vec<PathBuf> = ["errorLogUri", "verboseLogUri"]
        .iter()
        .map(|k| {
            file_uri_path(
                result["driveStatus"][k]
                    .as_str()
                    .unwrap_or_else(|| panic!("{k}: {result}")),
            )
        })
        .collect();
    outputs.push(("import".into(), imported));
    for log in &logs {
        for args in [&["log", "show"][..], &["log", "show", "--json"]] {
            let r = with_key(drivecopy().args(args).arg(log));
            assert_eq!(r.code, 0, "{}", r.describe());
            outputs.push((format!("{args:?} {}", log.display()), r));
        }
    }
    // A usage error with the key in the environment.
    let usage = with_key(drivecopy().args(["prepare", "--drive-id", "X"]));
    assert_eq!(usage.code, 2, "{}", usage.describe());
    outputs.push(("usage error".into(), usage));

    for (what, r) in &outputs {
        assert!(!r.stdout.contains(KEY), "{what} prints the key on stdout");
        assert!(!r.stderr.contains(KEY), "{what} prints the key on stderr");
    }
    // No blob, log or sidecar file in the store holds the key.
    let stored = tree(&store, &[]);
    assert!(
        stored.keys().any(|k| k.starts_with("waimportexport/")),
        "logs are in the store"
    );
    for (name, bytes) in &stored {
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{name} in the store holds the key"
        );
    }
}
