//! End-to-end tests of `drivecopy job ...` on both job stores (a directory, and a local blob
//! store): the CLI round trip of an import job, and concurrent processes updating different drives
//! of one job without losing an update.

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use util::{finish, Run};

use drivecopy::job::Job;
use drivecopy::jobstore::{BlobJobStore, DirJobStore, JobStore, DEFAULT_JOB_CONTAINER};
use drivecopy::store::local::LocalStore;
use serde_json::{json, Value};

const KEY: &str = "238810-662376-448998-450120-652806-203390-606320-483076";

/// The credential the Azurite job store is opened with (drivecopy signs its own SAS with the
/// emulator's well-known key); harmless for the local stores.
const DEV_STORAGE: &str = "UseDevelopmentStorage=true";

fn drivecopy(store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    cmd.env_remove("DRIVECOPY_JOB_STORE")
        .env_remove("RUST_LOG")
        .env("AZURE_STORAGE_CONNECTION_STRING", DEV_STORAGE)
        .args(["job", "--job-store", store]);
    cmd
}

fn job(store: &str, args: &[&str]) -> Run {
    finish(drivecopy(store).args(args).output().expect("run drivecopy"))
}

fn ok(store: &str, args: &[&str]) -> Value {
    let run = job(store, args);
    assert_eq!(run.code, 0, "{args:?}: {}", run.describe());
    run.json()
}

fn write_json(path: &Path, value: &Value) -> String {
    std::fs::write(path, serde_json::to_vec(value).expect("json")).expect("write body");
    path.display().to_string()
}

fn put_body(drives: &[String]) -> Value {
    let fake_hash = "109B21108597EF36D5785F08303F3638".to_owned();
    let infos: Vec<(String, String)> = drives
        .iter()
        .map(|d| (d.clone(), fake_hash.clone()))
        .collect();
    put_body_for(&infos)
}

/// A Put Job body for drives given as (driveId, manifestHash), as `drivecopy prepare` prints them.
fn put_body_for(drives: &[(String, String)]) -> Value {
    json!({
        "location": "West US",
        "properties": {
            "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            "jobType": "Import",
            "returnAddress": {
                "recipientName": "Tets", "streetAddress1": "Street1", "city": "Redmond",
                "postalCode": "98007", "countryOrRegion": "USA", "phone": "4250000000",
                "email": "test@contoso.com"
            },
            "driveList": drives.iter().map(|(id, hash)| json!({
                "driveId": id,
                "bitLockerKey": KEY,
                "manifestFile": "\\DriveManifest.xml",
                "manifestHash": hash,
            })).collect::<Vec<_>>(),
        }
    })
}

/// The stores under test, as `--job-store` values: a directory and a local blob store rooted in
/// `root`, and, when `scripts/test.sh` started Azurite, a container of it (shared by copy
/// stations on many machines through ETags alone).
fn store_specs(root: &Path, test: &str) -> Vec<(String, &'static str)> {
    let mut specs = vec![
        (root.join("dir").display().to_string(), "dir"),
        (format!("blob:{}", root.join("blob").display()), "blob"),
    ];
    if let Some(endpoint) = util::azurite_endpoint(test) {
        specs.push((format!("{endpoint}/{}", util::unique("jobs")), "azurite"));
    }
    specs
}

/// Read job `name` (document and version counter) through the library.
fn stored(spec: &str, name: &str) -> Job {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store: Box<dyn JobStore> = if let Some(path) = spec.strip_prefix("blob:") {
            Box::new(BlobJobStore::new(
                std::sync::Arc::new(LocalStore::open(Path::new(path)).expect("local store")),
                DEFAULT_JOB_CONTAINER,
            ))
        } else if let Some((endpoint, container)) = spec
            .strip_prefix("http")
            .and_then(|_| spec.rsplit_once('/'))
        {
            Box::new(BlobJobStore::new(util::azurite_store(endpoint), container))
        } else {
            Box::new(DirJobStore::open(spec).expect("dir store"))
        };
        store.get(name).await.expect("get").expect("job exists").job
    })
}

fn drive_states(response: &Value) -> Vec<String> {
    response["properties"]["driveList"]
        .as_array()
        .expect("driveList")
        .iter()
        .map(|d| d["state"].as_str().expect("state").to_owned())
        .collect()
}

#[test]
fn cli_round_trip_on_every_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drives = vec!["D1".to_owned(), "D2".to_owned()];
    let put = write_json(&tmp.path().join("put.json"), &put_body(&drives));
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping"}}),
    );
    let ship_with_package = write_json(
        &tmp.path().join("ship2.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "123456"}}}),
    );
    for (spec, kind) in store_specs(tmp.path(), "cli_round_trip_on_every_store") {
        let created = ok(&spec, &["create", "imp1", "--from", &put]);
        assert_eq!(created["type"], "Microsoft.ImportExport/jobs", "{kind}");
        assert_eq!(created["properties"]["state"], "Creating", "{kind}");
        assert!(!created.to_string().contains(KEY), "{kind}: key leaked");

        let again = job(&spec, &["create", "imp1", "--from", &put]);
        assert_eq!(again.code, 2, "{kind}: {}", again.describe());

        let refused = job(&spec, &["update", "imp1", "--from", &ship]);
        assert_eq!(refused.code, 6, "{kind}: {}", refused.describe());
        assert!(
            refused.stderr.contains("deliveryPackage"),
            "{kind}: {}",
            refused.stderr
        );
        assert!(refused.stdout.is_empty(), "{kind}");
        assert_eq!(
            stored(&spec, "imp1").drivecopy.version,
            1,
            "{kind}: nothing written"
        );

        let shipping = ok(&spec, &["update", "imp1", "--from", &ship_with_package]);
        assert_eq!(shipping["properties"]["state"], "Shipping", "{kind}");
        assert_eq!(
            shipping["properties"]["deliveryPackage"]["trackingNumber"],
            "123456"
        );

        let unknown = job(&spec, &["receive", "nosuchjob", "D1"]);
        assert_eq!(unknown.code, 2, "{kind}: {}", unknown.describe());

        ok(&spec, &["receive", "imp1", "D1", "D2"]);
        let shown = ok(&spec, &["show", "imp1"]);
        assert_eq!(shown["name"], "imp1");
        assert_eq!(shown["properties"]["state"], "Received", "{kind}");
        assert_eq!(drive_states(&shown), ["Received", "Received"], "{kind}");
        assert!(!shown.to_string().contains("bitLockerKey"), "{kind}");
        let operator = ok(&spec, &["show", "imp1", "--show-bitlocker-keys"]);
        assert_eq!(operator["properties"]["driveList"][0]["bitLockerKey"], KEY);

        let delete = job(&spec, &["delete", "imp1"]);
        assert_eq!(
            delete.code,
            6,
            "{kind}: delete in Received: {}",
            delete.describe()
        );

        let faulted = ok(
            &spec,
            &["fault", "imp1", "--drive", "D2", "--reason", "cracked"],
        );
        assert_eq!(drive_states(&faulted), ["Received", "Faulted"], "{kind}");
        let resolved = ok(&spec, &["resolve", "imp1", "--drive", "D2"]);
        assert_eq!(drive_states(&resolved), ["Received", "Received"], "{kind}");

        let list = ok(&spec, &["list"]);
        let items = list.as_array().expect("array");
        assert_eq!(items.len(), 1, "{kind}");
        assert_eq!(items[0]["name"], "imp1");
        assert!(items[0]["properties"].get("driveList").is_none(), "{kind}");
        assert_eq!(stored(&spec, "imp1").drivecopy.version, 5, "{kind}");
    }
}

/// Start one `drivecopy job` process per drive, all at once, and wait for every one.
fn all_at_once(spec: &str, drives: &[String], args: impl Fn(&str) -> Vec<String>) {
    let children: Vec<_> = drives
        .iter()
        .map(|id| {
            drivecopy(spec)
                .args(args(id))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn drivecopy")
        })
        .collect();
    for (child, id) in children.into_iter().zip(drives) {
        let run = finish(child.wait_with_output().expect("wait"));
        assert_eq!(run.code, 0, "{spec} drive {id}: {}", run.describe());
    }
}

#[test]
fn ten_concurrent_processes_lose_no_update_on_every_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drives: Vec<String> = (0..10).map(|i| format!("DRIVE{i}")).collect();
    let put = write_json(&tmp.path().join("put.json"), &put_body(&drives));
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "1"}}}),
    );
    for (spec, kind) in store_specs(
        tmp.path(),
        "ten_concurrent_processes_lose_no_update_on_every_store",
    ) {
        ok(&spec, &["create", "shared", "--from", &put]);
        ok(&spec, &["update", "shared", "--from", &ship]);
        assert_eq!(stored(&spec, "shared").drivecopy.version, 2);

        // Each process receives its own drive. The first arrival marks the others NeverReceived;
        // each later one must still find its drive and move it to Received.
        all_at_once(&spec, &drives, |id| {
            ["receive", "shared", id].map(str::to_owned).to_vec()
        });
        let after = stored(&spec, "shared");
        for drive in &after.properties.drive_list {
            assert_eq!(
                drive.state.as_str(),
                "Received",
                "{kind}: {}",
                drive.drive_id
            );
        }
        assert_eq!(
            after.drivecopy.version,
            2 + 10,
            "{kind}: one version per change"
        );

        // Each process faults its own drive.
        all_at_once(&spec, &drives, |id| {
            [
                "fault",
                "shared",
                "--drive",
                id,
                "--reason",
                &format!("check {id}"),
            ]
            .map(str::to_owned)
            .to_vec()
        });
        let after = stored(&spec, "shared");
        for drive in &after.properties.drive_list {
            assert_eq!(
                drive.state.as_str(),
                "Faulted",
                "{kind}: {}",
                drive.drive_id
            );
        }
        assert_eq!(
            after.drivecopy.errors.len(),
            10,
            "{kind}: every fault recorded"
        );
        assert_eq!(after.drivecopy.version, 2 + 10 + 10, "{kind}");
    }
}

#[test]
fn cancel_ship_back_delete_and_timeouts_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("jobs").display().to_string();
    let put = write_json(&tmp.path().join("put.json"), &put_body(&["D1".to_owned()]));
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "1"}}}),
    );
    let t0 = "2026-01-05T09:00:00Z";
    ok(&spec, &["--now", t0, "create", "c1", "--from", &put]);
    ok(&spec, &["update", "c1", "--from", &ship]);
    ok(&spec, &["receive", "c1", "D1"]);
    let early = job(
        &spec,
        &["ship-back", "c1", "--carrier", "UPS", "--tracking", "9"],
    );
    assert_eq!(
        early.code,
        6,
        "ship back before Packaging: {}",
        early.describe()
    );

    // A cancelled job skips the copy: Received -> Packaging, then back to the customer.
    let cancelled = ok(&spec, &["cancel", "c1"]);
    assert_eq!(cancelled["properties"]["cancelRequested"], true);
    assert_eq!(cancelled["properties"]["state"], "Packaging");
    let back = ok(
        &spec,
        &[
            "ship-back",
            "c1",
            "--carrier",
            "UPS",
            "--tracking",
            "9",
            "--ship-date",
            "2026-02-01",
        ],
    );
    assert_eq!(back["properties"]["state"], "Completed");
    assert_eq!(drive_states(&back), ["ShippedBack"]);
    assert_eq!(back["properties"]["returnPackage"]["driveCount"], 1);
    let deleted = ok(&spec, &["delete", "c1"]);
    assert_eq!(deleted, json!({"name": "c1", "deleted": true}));
    assert_eq!(job(&spec, &["show", "c1"]).code, 2, "deleted jobs are gone");

    // 14 days in Creating without an update: the tick deletes the job; before that, nothing.
    ok(&spec, &["--now", t0, "create", "c2", "--from", &put]);
    let idle = ok(&spec, &["--now", "2026-01-10T09:00:00Z", "tick", "c2"]);
    assert_eq!(idle["properties"]["state"], "Creating");
    assert_eq!(
        stored(&spec, "c2").drivecopy.version,
        1,
        "an idle tick writes nothing"
    );
    let expired = ok(&spec, &["--now", "2026-01-19T09:00:00Z", "tick", "c2"]);
    assert_eq!(expired["deleted"], true);
    assert_eq!(job(&spec, &["show", "c2"]).code, 2);
}

/// `drivecopy prepare` a drive with id `drive_id` holding a few files of generated data; returns
/// the drive root and the manifest hash prepare printed (the DriveInfo a job is created with).
fn prepare_drive(root: &Path, drive_id: &str, seed: u64) -> (std::path::PathBuf, String) {
    let src = root.join(format!("src-{drive_id}"));
    let drive = root.join(format!("drive-{drive_id}"));
    std::fs::create_dir_all(&src).expect("mkdir src");
    std::fs::create_dir_all(&drive).expect("mkdir drive");
    for i in 0..4u64 {
        let data = util::random_bytes(300_000 + i as usize * 1000, seed + i);
        std::fs::write(src.join(format!("file{i}.bin")), data).expect("write source");
    }
    let run = finish(
        Command::new(env!("CARGO_BIN_EXE_drivecopy"))
            .args(["prepare", "--drive"])
            .arg(&drive)
            .arg("--src")
            .arg(&src)
            .args([
                "--dst",
                &format!("data/{}/", drive_id.to_lowercase()),
                "--drive-id",
                drive_id,
                "--block-size",
                "65536",
                "--json",
            ])
            .output()
            .expect("run prepare"),
    );
    assert_eq!(run.code, 0, "prepare: {}", run.describe());
    let info: Value = serde_json::from_str(run.stdout.trim()).expect("prepare --json");
    let hash = info["manifestHash"]
        .as_str()
        .expect("manifestHash")
        .to_owned();
    (drive, hash)
}

/// `drivecopy import` of `drive` as drive `drive_id` of job `name`, started (not waited for).
fn spawn_import(
    spec: &str,
    name: &str,
    drive_id: &str,
    drive: &Path,
    dest: &Path,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_drivecopy"))
        .env_remove("DRIVECOPY_JOB_STORE")
        .env("AZURE_STORAGE_CONNECTION_STRING", DEV_STORAGE)
        .args([
            "import",
            "--no-fsync",
            "--job",
            name,
            "--job-store",
            spec,
            "--drive-id",
            drive_id,
            "--drive",
        ])
        .arg(drive)
        .arg("--dest")
        .arg(dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import")
}

/// The `result` line of an import's stdout.
fn result_of(run: &Run) -> Value {
    let last = run.stdout.lines().last().unwrap_or_default();
    let value: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", run.describe()));
    assert_eq!(value["type"], "result", "{}", run.describe());
    value
}

#[test]
fn two_imports_at_once_feed_one_job_through_to_closed_on_every_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (clean, hash_a) = prepare_drive(tmp.path(), "DRIVEA", 1);
    let (corrupt, hash_b) = prepare_drive(tmp.path(), "DRIVEB", 100);
    let mut body = put_body_for(&[("DRIVEA".into(), hash_a), ("DRIVEB".into(), hash_b)]);
    body["properties"]["backupDriveManifest"] = json!(true);
    let put = write_json(&tmp.path().join("put.json"), &body);
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "123456"}}}),
    );
    // One byte flipped in the second 64 KiB block of one file of drive B.
    let victim = corrupt.join("data").join("driveb").join("file1.bin");
    let mut bytes = std::fs::read(&victim).expect("read victim");
    bytes[65_536 + 10] ^= 0xFF;
    std::fs::write(&victim, bytes).expect("corrupt victim");

    for (spec, kind) in store_specs(
        tmp.path(),
        "two_imports_at_once_feed_one_job_through_to_closed_on_every_store",
    ) {
        let name = format!("e2e{kind}");
        ok(&spec, &["create", &name, "--from", &put]);
        // Refused before anything arrives: the job is not Received yet.
        let early = finish(
            spawn_import(&spec, &name, "DRIVEA", &clean, &tmp.path().join("early"))
                .wait_with_output()
                .expect("wait"),
        );
        assert_eq!(early.code, 6, "{kind}: {}", early.describe());
        assert_eq!(result_of(&early)["outcome"], "Refused", "{kind}");
        ok(&spec, &["update", &name, "--from", &ship]);
        ok(&spec, &["receive", &name, "DRIVEA", "DRIVEB"]);
        assert_eq!(
            ok(&spec, &["show", &name])["properties"]["state"],
            "Received",
            "{kind}"
        );

        let dest = tmp.path().join(format!("store-{kind}"));
        let a = spawn_import(&spec, &name, "DRIVEA", &clean, &dest);
        let b = spawn_import(&spec, &name, "DRIVEB", &corrupt, &dest);
        let (a, b) = (
            finish(a.wait_with_output().expect("wait a")),
            finish(b.wait_with_output().expect("wait b")),
        );
        assert_eq!(a.code, 0, "{kind} clean drive: {}", a.describe());
        assert_eq!(b.code, 1, "{kind} corrupted drive: {}", b.describe());

        let shown = ok(&spec, &["show", &name]);
        let props = &shown["properties"];
        assert_eq!(props["state"], "Packaging", "{kind}: {shown}");
        let list = props["driveList"].as_array().expect("driveList");
        let drive = |id: &str| {
            list.iter()
                .find(|d| d["driveId"] == id)
                .expect("drive")
                .clone()
        };
        let (da, db) = (drive("DRIVEA"), drive("DRIVEB"));
        assert_eq!(
            (da["state"].as_str(), da["copyStatus"].as_str()),
            (Some("Completed"), Some("Completed")),
            "{kind}"
        );
        assert_eq!(da["percentComplete"], 100, "{kind}");
        assert_eq!(
            (db["state"].as_str(), db["copyStatus"].as_str()),
            (Some("CompletedMoreInfo"), Some("CompletedWithErrors")),
            "{kind}"
        );
        let error_log = db["errorLogUri"].as_str().expect("errorLogUri");
        assert!(
            error_log.starts_with("file:///") && error_log.ends_with("_error.xml"),
            "{error_log}"
        );
        assert_eq!(
            result_of(&b)["driveStatus"]["errorLogUri"].as_str(),
            Some(error_log),
            "{kind}: the job and the result name the same log"
        );
        assert!(da["bytesSucceeded"].as_u64().unwrap_or(0) > 0, "{kind}");
        // backupDriveManifest: each drive's manifest, byte for byte, in the diagnostics path.
        for (d, drive) in [(&da, &clean), (&db, &corrupt)] {
            let uri = d["manifestUri"].as_str().expect("manifestUri");
            assert!(
                uri.ends_with("_manifest.xml") && uri.contains("/waies/"),
                "{uri}"
            );
            let backup = std::fs::read(uri.trim_start_matches("file://")).expect("the backup");
            let original = std::fs::read(drive.join("DriveManifest.xml")).expect("the manifest");
            assert!(
                backup == original,
                "{kind}: {uri} is not the drive's manifest"
            );
        }

        let shipped = ok(
            &spec,
            &["ship-back", &name, "--carrier", "UPS", "--tracking", "77"],
        );
        assert_eq!(
            shipped["properties"]["state"], "Closed",
            "{kind}: a drive had errors"
        );
        assert_eq!(
            drive_states(&shipped),
            ["ShippedBack", "ShippedBack"],
            "{kind}"
        );
    }
}

#[test]
fn a_cancelled_job_skips_the_copy_and_the_result_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drives = vec!["DRIVEC".to_owned()];
    let put = write_json(&tmp.path().join("put.json"), &put_body(&drives));
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "1"}}}),
    );
    let (drive, _) = prepare_drive(tmp.path(), "DRIVEC", 7);
    let spec = tmp.path().join("jobs").display().to_string();
    ok(&spec, &["create", "cj", "--from", &put]);
    ok(&spec, &["update", "cj", "--from", &ship]);
    ok(&spec, &["receive", "cj", "DRIVEC"]);
    ok(&spec, &["cancel", "cj"]);
    let dest = tmp.path().join("store");
    let run = finish(
        spawn_import(&spec, "cj", "DRIVEC", &drive, &dest)
            .wait_with_output()
            .expect("wait"),
    );
    assert_eq!(run.code, 6, "{}", run.describe());
    let result = result_of(&run);
    assert_eq!(result["outcome"], "JobCancelled");
    assert!(result["error"]
        .as_str()
        .unwrap_or_default()
        .contains("cancelled"));
    assert!(!dest.join("data").exists(), "nothing was copied");
}

/// `export --job --job-store`: an export job's drive arrives `Received`, the export moves it to
/// `Transferring` and records its final state, copy status and `incompleteBlobListUri` (a blob
/// that did not fit under `--capacity`); the job goes `Packaging`.
#[test]
fn an_export_feeds_its_export_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The source: a drive imported into a local store.
    let (drive, _) = prepare_drive(tmp.path(), "SRC1", 9);
    let source = tmp.path().join("source-store");
    let run = finish(
        Command::new(env!("CARGO_BIN_EXE_drivecopy"))
            .args(["import", "--no-fsync", "--drive"])
            .arg(&drive)
            .arg("--dest")
            .arg(&source)
            .output()
            .expect("run import"),
    );
    assert_eq!(run.code, 0, "{}", run.describe());

    let mut body = put_body(&[]);
    body["properties"]["jobType"] = json!("Export");
    body["properties"]["driveList"] = json!([]);
    body["properties"]["export"] = json!({"blobList": {"blobPathPrefix": ["/data/"]}});
    let put = write_json(&tmp.path().join("put.json"), &body);
    let ship = write_json(
        &tmp.path().join("ship.json"),
        &json!({"properties": {"state": "Shipping",
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "1"}}}),
    );
    let list = tmp.path().join("list.xml");
    std::fs::write(
        &list,
        "<BlobList><BlobPathPrefix>/data/</BlobPathPrefix></BlobList>",
    )
    .expect("write list");
    let spec = tmp.path().join("jobs").display().to_string();
    ok(&spec, &["create", "exp1", "--from", &put]);
    ok(&spec, &["update", "exp1", "--from", &ship]);
    ok(&spec, &["receive", "exp1", "EXPDRIVE1"]);

    let out = tmp.path().join("export-drive");
    std::fs::create_dir_all(&out).expect("mkdir");
    // Room for three of the four ~300 KB files: one goes to the incomplete list.
    let run = finish(
        Command::new(env!("CARGO_BIN_EXE_drivecopy"))
            .env_remove("DRIVECOPY_JOB_STORE")
            .args(["export", "--no-fsync", "--drive"])
            .arg(&out)
            .arg("--source")
            .arg(&source)
            .arg("--blob-list")
            .arg(&list)
            .args(["--drive-id", "EXPDRIVE1", "--capacity", "1000000"])
            .args(["--job", "exp1", "--job-store", &spec])
            .output()
            .expect("run export"),
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    let result = result_of(&run);
    let incomplete = result["incompleteBlobListUri"]
        .as_str()
        .expect("incompleteBlobListUri in the result")
        .to_owned();

    let shown = ok(&spec, &["show", "exp1"]);
    let props = &shown["properties"];
    assert_eq!(props["state"], "Packaging", "{shown}");
    let d = &props["driveList"][0];
    assert_eq!(d["driveId"], "EXPDRIVE1");
    assert_eq!(d["state"], "Completed", "{shown}");
    assert_eq!(d["copyStatus"], "Completed", "{shown}");
    assert_eq!(d["percentComplete"], 100);
    assert_eq!(
        props["incompleteBlobListUri"].as_str(),
        Some(incomplete.as_str()),
        "JobDetails names the incomplete list: {shown}"
    );
}
