//! The Azure backend against Azurite: the store conformance suite, each credential path (SAS in
//! the URL, connection string, account name + key), a wrong block MD5, and that no error text
//! carries the SAS signature. Every test skips (with one line saying why) when
//! `DRIVECOPY_TEST_AZURITE` is not set; `scripts/test.sh` starts Azurite and sets it.

mod util;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use drivecopy::digest::Md5Digest;
use drivecopy::names::BlobPath;
use drivecopy::store::azure::credential::CredentialSource;
use drivecopy::store::azure::{open_url, sas, OpenOptions, Secret};
use drivecopy::store::{
    BlobStore, BlockChecksum, BlockId, CommitOptions, Condition, StageBlock, StoreError,
};
use util::{azurite_endpoint, azurite_store, unique};

/// Azurite's well-known development key (public, documented by Microsoft).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn signed_sas() -> Secret {
    let now = time::OffsetDateTime::now_utc();
    sas::account_sas(
        "devstoreaccount1",
        &Secret::new(DEV_KEY.to_string()),
        now - time::Duration::minutes(5),
        now + time::Duration::hours(1),
        false,
    )
    .expect("sign")
}

fn the_signature(sas: &Secret) -> String {
    let q = sas.expose();
    let sig = q.split("sig=").nth(1).expect("a sig parameter");
    sig.split('&').next().unwrap_or(sig).to_string()
}

fn path(container: &str, name: &str) -> BlobPath {
    BlobPath {
        container: container.to_string(),
        name: name.to_string(),
    }
}

fn open(dest: &str, env: &[(&str, &str)]) -> Arc<dyn BlobStore> {
    let mut options = OpenOptions::new(8);
    options.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    open_url(dest, &options, |s| s).unwrap_or_else(|e| panic!("open {dest}: {e}"))
}

/// A round trip through a store: create a container, stage, commit, read.
async fn round_trip(store: &dyn BlobStore, container: &str) {
    store.create_container(container).await.expect("create");
    let p = path(container, "dir/file.bin");
    let data = Bytes::from(util::random_bytes(70_000, 5));
    let id = BlockId::new(*b"0000").unwrap();
    store
        .stage_block(
            &p,
            StageBlock {
                id: id.clone(),
                data: data.clone(),
                checksum: BlockChecksum::Md5Verified(Md5Digest::of(&data)),
                offset_hint: Some(0),
            },
        )
        .await
        .expect("stage");
    let props = store
        .commit_block_list(&p, &[id], CommitOptions::default())
        .await
        .expect("commit");
    assert_eq!(props.length, 70_000);
    assert_eq!(store.read_range(&p, None).await.expect("read"), data);
    let url = store.blob_url(&p).await.expect("url");
    assert!(
        url.ends_with(&format!("/{container}/dir%2Ffile.bin")),
        "{url}"
    );
    assert!(!url.contains('?'));
}

/// Without the `testing` feature the conformance module is not compiled: say so.
#[cfg(not(feature = "testing"))]
#[test]
fn conformance_suite() {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipping conformance_suite against Azurite: needs --features testing (scripts/test.sh uses --all-features)"
    );
}

#[cfg(feature = "testing")]
#[test]
fn conformance_suite() {
    let Some(endpoint) = azurite_endpoint("conformance_suite") else {
        return;
    };
    let store = azurite_store(&endpoint);
    rt().block_on(async {
        use drivecopy::store::conformance as c;
        let s: &dyn BlobStore = store.as_ref();
        let n = |k: u32| format!("{}-{k}", unique("cf"));
        c::stage_out_of_order_commit_in_order(s, &n(1)).await;
        c::stage_same_id_twice(s, &n(2)).await;
        c::uncommitted_is_invisible(s, &n(3)).await;
        c::commit_is_atomic_and_replaces(s, &n(4)).await;
        c::unknown_block_is_rejected(s, &n(5)).await;
        c::md5_mismatch_is_rejected(s, &n(6)).await;
        c::if_none_match_on_existing(s, &n(7)).await;
        c::stale_if_match(s, &n(8)).await;
        c::page_blob_round_trip(s, &n(9)).await;
        c::list_by_prefix(s, &n(10)).await;
        // properties_and_metadata_round_trip expects metadata names back in their case: the
        // test metadata_names_come_back_lowercased covers it with Azure's lowercase names.
        c::zero_byte_blob(s, &n(13)).await;
        c::block_list_committed_vs_uncommitted(s, &n(14)).await;
        // put_blob_for_logs also asserts that Put Blob discards staged blocks, which Azurite
        // 3.35 does not do: the test put_blob_for_logs_without_staging covers the rest.
        c::concurrent_stages(s, &n(16)).await;
        every_addressable_name(s, &n(12)).await;
    });
}

#[cfg(feature = "testing")]
/// `conformance::every_legal_name` without the names `.` and `..`, which no URL can address
/// (URL parsers remove dot segments), and names with `\`, which the service stores as `/`;
/// those must fail cleanly instead.
async fn every_addressable_name(store: &dyn BlobStore, container: &str) {
    store.create_container(container).await.expect("create");
    let names: Vec<String> = drivecopy::store::conformance::awkward_names()
        .into_iter()
        .filter(|n| n != "." && n != ".." && !n.contains('\\'))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let data = Bytes::from(format!("{i}:{name}"));
        store
            .put_blob(&path(container, name), data, CommitOptions::default())
            .await
            .unwrap_or_else(|e| panic!("put {name:?}: {e:?}"));
    }
    for (i, name) in names.iter().enumerate() {
        let got = store
            .read_range(&path(container, name), None)
            .await
            .unwrap();
        assert_eq!(got, format!("{i}:{name}").as_bytes(), "{name:?}");
    }
    let mut listed: Vec<String> = store
        .list_blobs(container, "")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    let mut expected = names.clone();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
    for dots in [".", "..", "back\\slash"] {
        let err = store
            .put_blob(
                &path(container, dots),
                Bytes::new(),
                CommitOptions::default(),
            )
            .await
            .expect_err("dot names are refused");
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    }
}

/// `conformance::put_blob_for_logs` without its check that Put Blob discards uncommitted blocks
/// (Azurite 3.35 keeps them).
#[test]
fn put_blob_for_logs_without_staging() {
    let Some(endpoint) = azurite_endpoint("put_blob_for_logs_without_staging") else {
        return;
    };
    let store = azurite_store(&endpoint);
    rt().block_on(put_blob_for_logs_in(store.as_ref(), &unique("logs")));
}

async fn put_blob_for_logs_in(store: &dyn BlobStore, container: &str) {
    store.create_container(container).await.expect("create");
    let p = path(container, "waies/job_drive_20260101_error.xml");
    let log = Bytes::from_static(b"<?xml version=\"1.0\"?>\r\n<DriveLog/>\r\n");
    let props = store
        .put_blob(&p, log.clone(), CommitOptions::default())
        .await
        .expect("put");
    assert_eq!(props.content.content_md5, Some(Md5Digest::of(&log)));
    assert_eq!(
        store
            .get_properties(&p)
            .await
            .expect("props")
            .content
            .content_md5,
        Some(Md5Digest::of(&log)),
        "the stored Content-MD5"
    );
    let log2 = Bytes::from_static(b"<DriveLog>2</DriveLog>");
    store
        .put_blob(&p, log2.clone(), CommitOptions::default())
        .await
        .expect("replace");
    assert_eq!(store.read_range(&p, None).await.unwrap(), log2);
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
    let missing = path(&unique("nosuch"), "x");
    assert!(matches!(
        store
            .put_blob(&missing, log, CommitOptions::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Properties and metadata round trip, with one known difference from the local store: metadata
/// names are sent as HTTP headers (`x-ms-meta-NAME`) and the `http` crate under reqwest
/// lowercases every header name, so Azure stores (and returns) `uploadmethod` for `UploadMethod`.
/// Azure treats metadata names case-insensitively; the case itself is lost.
#[test]
fn metadata_names_come_back_lowercased() {
    let Some(endpoint) = azurite_endpoint("metadata_names_come_back_lowercased") else {
        return;
    };
    let store = azurite_store(&endpoint);
    rt().block_on(metadata_round_trip(store.as_ref(), &unique("meta")));
}

async fn metadata_round_trip(store: &dyn BlobStore, container: &str) {
    use drivecopy::store::ContentProperties;
    store.create_container(container).await.expect("create");
    let p = path(container, "props");
    let content = ContentProperties {
        content_type: Some("image/jpeg".to_string()),
        content_encoding: Some("gzip".to_string()),
        content_language: Some("en-US".to_string()),
        cache_control: Some("no-cache".to_string()),
        content_disposition: Some("attachment".to_string()),
        // Put Blob checks x-ms-blob-content-md5 against the body (unlike a block commit).
        content_md5: Some(Md5Digest::of(b"not gzip at all")),
    };
    let metadata = BTreeMap::from([(
        "UploadMethod".to_string(),
        "Import/Export service".to_string(),
    )]);
    let data = Bytes::from_static(b"not gzip at all");
    let committed = store
        .put_blob(
            &p,
            data.clone(),
            CommitOptions {
                content: content.clone(),
                metadata,
                condition: Condition::None,
            },
        )
        .await
        .expect("put");
    let got = store.get_properties(&p).await.expect("properties");
    assert_eq!((&got.content, &got.etag), (&content, &committed.etag));
    assert_eq!(
        got.metadata,
        BTreeMap::from([(
            "uploadmethod".to_string(),
            "Import/Export service".to_string()
        )])
    );
    assert_eq!(
        store.read_range(&p, None).await.expect("read"),
        data,
        "Content-Encoding: gzip is not decoded on download"
    );
    let new_content = ContentProperties {
        content_type: Some("text/plain".to_string()),
        ..ContentProperties::default()
    };
    let after = store
        .set_properties(&p, new_content.clone(), Condition::None)
        .await
        .expect("set properties");
    assert_ne!(after.etag, committed.etag);
    let meta = store
        .set_metadata(
            &p,
            BTreeMap::from([("dataset".to_string(), "x".to_string())]),
            Condition::None,
        )
        .await
        .expect("set metadata");
    assert_eq!(meta.content, new_content);
    assert_eq!(meta.metadata.get("dataset").map(String::as_str), Some("x"));
}

#[test]
fn sas_in_url_connection_string_and_account_key() {
    let Some(endpoint) = azurite_endpoint("sas_in_url_connection_string_and_account_key") else {
        return;
    };
    rt().block_on(async {
        let sas = signed_sas();
        let with_sas = format!("{endpoint}/?{}", sas.expose());
        // A SAS in the URL wins even over a wrong key in the environment.
        let store = open(&with_sas, &[("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"), ("AZURE_STORAGE_KEY", "d3Jvbmc=")]);
        round_trip(store.as_ref(), &unique("sas")).await;

        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint={endpoint};"
        );
        let store = open(&endpoint, &[("AZURE_STORAGE_CONNECTION_STRING", &cs)]);
        round_trip(store.as_ref(), &unique("cs")).await;
        let store = open("devstorage:", &[("AZURE_STORAGE_CONNECTION_STRING", &cs)]);
        round_trip(store.as_ref(), &unique("dev")).await;

        let store = open(
            &endpoint,
            &[("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"), ("AZURE_STORAGE_KEY", DEV_KEY)],
        );
        round_trip(store.as_ref(), &unique("key")).await;

        // A container URL: that container works, others are refused before any request.
        let container = unique("only");
        let scoped = open(
            &format!("{endpoint}/{container}?{}", sas.expose()),
            &[],
        );
        round_trip(scoped.as_ref(), &container).await;
        let err = scoped
            .create_container(&unique("other"))
            .await
            .expect_err("another container");
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");

        // A wrong key is refused by the service as PermissionDenied.
        let store = open(
            &endpoint,
            &[("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"), ("AZURE_STORAGE_KEY", "d3JvbmcgZGV2IGtleQ==")],
        );
        let err = store.create_container(&unique("deny")).await.expect_err("wrong key");
        assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err:?}");
    });
    let resolved = drivecopy::store::azure::resolve(
        &format!("{endpoint}?{}", signed_sas().expose()),
        &BTreeMap::new(),
        None,
    )
    .unwrap();
    assert_eq!(resolved.source, CredentialSource::UrlSas);
}

#[test]
fn a_wrong_block_md5_is_rejected_by_the_service() {
    let Some(endpoint) = azurite_endpoint("a_wrong_block_md5_is_rejected_by_the_service") else {
        return;
    };
    let store = azurite_store(&endpoint);
    rt().block_on(async {
        let container = unique("md5");
        store.create_container(&container).await.unwrap();
        let p = path(&container, "b");
        let data = Bytes::from(util::random_bytes(4096, 9));
        let wrong = Md5Digest::of(b"not these bytes");
        // Md5Verified is trusted locally, so only the service can catch the lie.
        let err = store
            .stage_block(
                &p,
                StageBlock {
                    id: BlockId::new(*b"0001").unwrap(),
                    data: data.clone(),
                    checksum: BlockChecksum::Md5Verified(wrong),
                    offset_hint: None,
                },
            )
            .await
            .expect_err("the service checks Content-MD5");
        match err {
            StoreError::Md5Mismatch {
                expected, actual, ..
            } => assert_eq!((expected, actual), (wrong, Md5Digest::of(&data))),
            other => panic!("expected Md5Mismatch, got {other:?}"),
        }
        assert!(matches!(
            store.get_block_list(&p).await,
            Err(StoreError::NotFound { .. })
        ));
    });
}

/// Every error this store returns, Display and Debug with the source chain, is free of the
/// SAS signature, also when the transport fails (connection refused on a dead port).
#[test]
fn no_error_text_contains_the_signature() {
    let Some(endpoint) = azurite_endpoint("no_error_text_contains_the_signature") else {
        return;
    };
    let sas = signed_sas();
    let sig = the_signature(&sas);
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/devstoreaccount1")
    };
    rt().block_on(async {
        let mut errors: Vec<StoreError> = Vec::new();
        for base in [&endpoint, &dead] {
            let store = open(&format!("{base}/?{}", sas.expose()), &[]);
            let missing = path(&unique("nope"), "x");
            errors.extend(store.get_properties(&missing).await.err());
            errors.extend(store.read_range(&missing, Some(0..10)).await.err());
            errors.extend(store.list_blobs(&missing.container, "").await.err());
            errors.extend(
                store
                    .put_blob(&missing, Bytes::from_static(b"x"), CommitOptions::default())
                    .await
                    .err(),
            );
            errors.extend(store.delete_blob(&missing, Condition::None).await.err());
            errors.extend(store.get_page_ranges(&missing).await.err());
        }
        assert!(errors.len() >= 10, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, StoreError::Connection { .. })),
            "the dead port gives connection errors: {errors:?}"
        );
        for e in &errors {
            let mut text = format!("{e} {e:?}");
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!text.contains(&sig), "the signature leaked: {text}");
        }
    });
}

/// A 0-byte page blob (an empty `.vhd` on a drive) exists, reads empty and has no page ranges.
#[test]
fn an_empty_page_blob() {
    let Some(endpoint) = azurite_endpoint("an_empty_page_blob") else {
        return;
    };
    let store = azurite_store(&endpoint);
    rt().block_on(async {
        let container = unique("empty");
        store.create_container(&container).await.unwrap();
        let p = path(&container, "empty.vhd");
        store
            .create_page_blob(&p, 0, CommitOptions::default())
            .await
            .expect("create");
        assert_eq!(store.get_properties(&p).await.unwrap().length, 0);
        assert!(store.read_range(&p, None).await.unwrap().is_empty());
        assert_eq!(store.get_page_ranges(&p).await.expect("ranges"), vec![]);
    });
}

/// Interop with the standard tool: a blob AzCopy uploads with `--put-md5` and metadata reads
/// back through the store byte-exact, with AzCopy's Content-MD5 and the metadata name in its
/// case (AzCopy's own client keeps it; the store recovers it from List Blobs).
#[test]
fn a_blob_uploaded_by_azcopy_reads_back_with_its_md5() {
    let test = "a_blob_uploaded_by_azcopy_reads_back_with_its_md5";
    let Some(endpoint) = azurite_endpoint(test) else {
        return;
    };
    let Some(azcopy) = util::AzCopy::find(test) else {
        return;
    };
    let store = azurite_store(&endpoint);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.bin");
    let data = util::random_bytes(300_000, 77);
    std::fs::write(&file, &data).unwrap();
    let container = unique("azc");
    rt().block_on(store.create_container(&container)).unwrap();
    let sas = signed_sas();
    azcopy.copy(
        tmp.path(),
        &[
            file.to_str().expect("utf-8 path"),
            &format!("{endpoint}/{container}/dir/f.bin?{}", sas.expose()),
            "--from-to",
            "LocalBlob",
            "--put-md5",
            "--metadata",
            "UploadMethod=azcopy",
        ],
    );
    rt().block_on(async {
        let p = path(&container, "dir/f.bin");
        let props = store.get_properties(&p).await.unwrap();
        assert_eq!(props.content.content_md5, Some(Md5Digest::of(&data)));
        assert_eq!(
            props.metadata,
            BTreeMap::from([("UploadMethod".to_string(), "azcopy".to_string())])
        );
        let got = store.read_range(&p, None).await.unwrap();
        assert_eq!(Md5Digest::of(&got), Md5Digest::of(&data));
        assert!(got == data);
    });
}

/// The binary imports a drive into Azurite through a SAS URL; no output stream, event, log
/// blob or log URI carries the signature, and the URIs are plain blob URLs.
#[test]
fn the_cli_imports_through_a_sas_url_without_showing_it() {
    let test = "the_cli_imports_through_a_sas_url_without_showing_it";
    let Some(endpoint) = azurite_endpoint(test) else {
        return;
    };
    let fx = util::Fixture::new();
    let good = fx.source_file("a.txt", util::random_bytes(5000, 1));
    fx.source_file("bad.bin", util::random_bytes(70_000, 2));
    let container = unique("cli");
    fx.prepare(&container, 64 * 1024);
    // Corrupt one file so that an error log is written too.
    let on_drive = fx.drive.join(&container).join("bad.bin");
    let mut bytes = std::fs::read(&on_drive).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&on_drive, &bytes).unwrap();

    let sas = signed_sas();
    let sig = the_signature(&sas);
    let diagnostics = unique("diag");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"))
        .arg("import")
        .arg("--drive")
        .arg(&fx.drive)
        .args(["--dest", &format!("{endpoint}/?{}", sas.expose())])
        .args([
            "--job",
            "clijob",
            "--log-level",
            "verbose",
            "--no-direct-io",
        ])
        .args(["--diagnostics-path", &diagnostics])
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .output()
        .expect("run drivecopy");
    let run = util::finish(out);
    assert_eq!(run.code, 1, "CompletedMoreInfo: {}", run.describe());
    assert!(
        !run.stdout.contains(&sig) && !run.stderr.contains(&sig),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains("sig="), "{}", run.describe());
    let start: serde_json::Value =
        serde_json::from_str(run.stdout.lines().next().unwrap_or_default()).unwrap();
    assert_eq!(
        start["destination"],
        serde_json::Value::from(format!("{endpoint}/"))
    );

    let store = azurite_store(&endpoint);
    rt().block_on(async {
        util::assert_blob(store.as_ref(), &format!("{container}/a.txt"), &good).await;
        let logs = store.list_blobs(&diagnostics, "").await.unwrap();
        assert_eq!(logs.len(), 2, "error and verbose logs");
        for log in logs {
            let p = path(&diagnostics, &log.name);
            let text = store.read_range(&p, None).await.unwrap();
            assert!(!String::from_utf8_lossy(&text).contains(&sig));
            let url = store.blob_url(&p).await.unwrap();
            assert!(
                run.stdout.contains(&url),
                "the result names {url}: {}",
                run.stdout
            );
        }
    });
}

/// Interop with the standard tool: a drive imported into Azurite with `--put-md5` downloads
/// through AzCopy with `--check-md5 FailIfDifferentOrMissing` (which fails on a missing or
/// different Content-MD5) byte-identical with the drive's source files.
#[test]
fn azcopy_downloads_an_imported_drive_with_md5_checks() {
    let test = "azcopy_downloads_an_imported_drive_with_md5_checks";
    let Some(endpoint) = azurite_endpoint(test) else {
        return;
    };
    let Some(azcopy) = util::AzCopy::find(test) else {
        return;
    };
    let fx = util::Fixture::new();
    let files = [
        ("big.bin", util::random_bytes(5 * 64 * 1024 + 999, 31)),
        ("exact.bin", util::random_bytes(3 * 64 * 1024, 32)),
        ("dir/small file.txt", util::random_bytes(1234, 33)),
        ("dir/sub/naïve café.dat", util::random_bytes(70_000, 34)),
        ("empty.txt", Vec::new()),
    ];
    for (name, data) in &files {
        fx.source_file(name, data.clone());
    }
    let container = unique("azd");
    fx.prepare(&container, 64 * 1024);
    let sas = signed_sas();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"))
        .arg("import")
        .arg("--drive")
        .arg(&fx.drive)
        .args(["--dest", &format!("{endpoint}/?{}", sas.expose())])
        .arg("--put-md5")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .output()
        .expect("run drivecopy");
    let run = util::finish(out);
    assert_eq!(run.code, 0, "{}", run.describe());

    let down = fx.tmp.path().join("down");
    let text = azcopy.copy(
        fx.tmp.path(),
        &[
            &format!("{endpoint}/{container}?{}", sas.expose()),
            down.to_str().expect("utf-8 path"),
            "--recursive",
            "--from-to",
            "BlobLocal",
            "--check-md5",
            "FailIfDifferentOrMissing",
        ],
    );
    assert!(
        text.contains(&format!(
            "Number of File Transfers Completed: {}",
            files.len()
        )),
        "{text}"
    );
    for (name, data) in &files {
        let got = std::fs::read(down.join(&container).join(name))
            .unwrap_or_else(|e| panic!("azcopy's copy of {name}: {e}"));
        assert!(got == *data, "{name} differs after the round trip");
    }
}

/// Export of a set AzCopy uploaded into Azurite: a page-blob VHD with holes, a 0-byte blob, names
/// with spaces and non-ASCII letters, nested prefixes and the root container (`$root`). Every file
/// comes out byte-identical, the VHD's file is sparse, and the export manifest verifies.
#[test]
fn export_of_a_set_azcopy_uploaded() {
    let test = "export_of_a_set_azcopy_uploaded";
    let Some(endpoint) = azurite_endpoint(test) else {
        return;
    };
    let Some(azcopy) = util::AzCopy::find(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // 8 MiB disk image: 64 KiB of data at 0 and at 4 MiB + 512, zeros (holes) elsewhere.
    let mut vhd = vec![0u8; 8 << 20];
    vhd[..64 << 10].copy_from_slice(&util::random_bytes(64 << 10, 51));
    let at = (4 << 20) + 512;
    vhd[at..at + (64 << 10)].copy_from_slice(&util::random_bytes(64 << 10, 52));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("disk.vhd", vhd),
        ("empty.bin", Vec::new()),
        ("dir a/sub b/naïve café.txt", util::random_bytes(5000, 53)),
        ("nested/x/y/z.bin", util::random_bytes(300_000, 54)),
    ];
    for (name, data) in &files {
        util::write_file(&src.join(name), data);
    }
    let root_file = util::random_bytes(777, 55);
    util::write_file(&tmp.path().join("root.txt"), &root_file);

    let container = unique("exp");
    let sas = signed_sas();
    let azcopy_run = |from: String, to: String| {
        let args = [
            &*from,
            &*to,
            "--recursive",
            "--from-to",
            "LocalBlob",
            "--put-md5",
        ];
        azcopy.copy(tmp.path(), &args);
    };
    let store = azurite_store(&endpoint);
    rt().block_on(async {
        store.create_container(&container).await.unwrap();
        store.create_container("$root").await.unwrap();
    });
    azcopy_run(
        format!("{}/*", src.display()),
        format!("{endpoint}/{container}?{}", sas.expose()),
    );
    azcopy_run(
        tmp.path().join("root.txt").display().to_string(),
        format!("{endpoint}/$root/{container}.txt?{}", sas.expose()),
    );
    let kind = rt()
        .block_on(store.get_properties(&path(&container, "disk.vhd")))
        .unwrap()
        .kind;
    assert_eq!(
        kind,
        drivecopy::store::BlobKind::PageBlob,
        "AzCopy made a page blob"
    );

    let list = tmp.path().join("list.xml");
    std::fs::write(
        &list,
        format!(
            "<BlobList><BlobPathPrefix>/{container}/</BlobPathPrefix>\
             <BlobPath>$root/{container}.txt</BlobPath></BlobList>"
        ),
    )
    .unwrap();
    let drive = tmp.path().join("drive");
    std::fs::create_dir_all(&drive).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"))
        .arg("export")
        .arg("--drive")
        .arg(&drive)
        .args(["--source", &format!("{endpoint}/?{}", sas.expose())])
        .arg("--blob-list")
        .arg(&list)
        .args(["--drive-id", "AZEXPORT1"])
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .output()
        .expect("run drivecopy export");
    let run = util::finish(out);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        !run.stdout.contains(&the_signature(&sas)),
        "{}",
        run.describe()
    );

    for (name, data) in &files {
        let file = drive.join(&container).join(name);
        let got = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(got == *data, "{name} differs after the export");
    }
    let rooted = std::fs::read(drive.join("$root").join(format!("{container}.txt"))).unwrap();
    assert!(rooted == root_file, "the $root blob differs");
    let meta = std::fs::metadata(drive.join(&container).join("disk.vhd")).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "the VHD is not sparse: {} bytes allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"))
        .arg("verify")
        .arg("--drive")
        .arg(&drive)
        .args(["--manifest", r"\AZEXPORT1.manifest"])
        .output()
        .expect("run drivecopy verify");
    let run = util::finish(out);
    assert_eq!(run.code, 0, "verify: {}", run.describe());
}

/// With no SAS in the URL and nothing in the environment, the import uses the credential the
/// drive manifest carries (`StorageAccountKey`), as the service does, and never shows it.
#[test]
fn the_manifest_account_key_is_the_last_resort() {
    let test = "the_manifest_account_key_is_the_last_resort";
    let Some(endpoint) = azurite_endpoint(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (src, drive) = (tmp.path().join("src"), tmp.path().join("drive"));
    let data = util::random_bytes(100_000, 61);
    util::write_file(&src.join("k.bin"), &data);
    std::fs::create_dir_all(&drive).unwrap();
    let container = unique("mkey");
    let clean_env = |cmd: &mut std::process::Command| {
        for var in [
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_ACCOUNT",
            "AZURE_STORAGE_KEY",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "IDENTITY_ENDPOINT",
            "MSI_ENDPOINT",
            "DRIVECOPY_AZURE_AUTH",
        ] {
            cmd.env_remove(var);
        }
    };
    let mut prepare = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    prepare
        .arg("prepare")
        .arg("--drive")
        .arg(&drive)
        .arg("--src")
        .arg(&src)
        .args(["--dst", &format!("{container}/"), "--drive-id", "MKEY1"])
        .env("DRIVECOPY_STORAGE_ACCOUNT_KEY", DEV_KEY);
    let run = util::finish(prepare.output().expect("run prepare"));
    assert_eq!(run.code, 0, "{}", run.describe());
    let manifest = std::fs::read_to_string(drive.join("DriveManifest.xml")).unwrap();
    assert!(manifest.contains("<StorageAccountKey>"), "{manifest}");

    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    import
        .arg("import")
        .arg("--drive")
        .arg(&drive)
        .args(["--dest", &format!("{endpoint}/")]);
    clean_env(&mut import);
    let run = util::finish(import.output().expect("run import"));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        !run.stdout.contains(DEV_KEY) && !run.stderr.contains(DEV_KEY),
        "{}",
        run.describe()
    );
    let store = azurite_store(&endpoint);
    rt().block_on(util::assert_blob(
        store.as_ref(),
        &format!("{container}/k.bin"),
        &data,
    ));
}
