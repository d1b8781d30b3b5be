use super::*;
use crate::job::{DriveState, JobState, PutJobParameters, ResourceScope};
use crate::store::local::LocalStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-01-05 09:00 UTC);

fn job(name: &str, drives: &[&str]) -> Job {
    let drives: Vec<serde_json::Value> = drives
        .iter()
        .map(|id| {
            serde_json::json!({
                "driveId": id,
                "bitLockerKey": "238810-662376-448998-450120-652806-203390-606320-483076",
                "manifestFile": "\\DriveManifest.xml",
                "manifestHash": "109B21108597EF36D5785F08303F3638",
            })
        })
        .collect();
    let body = serde_json::json!({
        "location": "West US",
        "properties": {
            "jobType": "Import",
            "returnAddress": {
                "recipientName": "Tets", "streetAddress1": "Street1", "city": "Redmond",
                "postalCode": "98007", "countryOrRegion": "USA", "phone": "4250000000",
                "email": "test@contoso.com"
            },
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "123"},
            "driveList": drives,
        }
    });
    let params: PutJobParameters = serde_json::from_value(body).expect("valid body");
    let scope = ResourceScope {
        subscription_id: "sub".into(),
        resource_group: "rg".into(),
    };
    Job::create(name, &scope, params, NOW).expect("valid job")
}

fn shipping() -> crate::job::UpdateJobParameters {
    serde_json::from_value(serde_json::json!({"properties": {"state": "Shipping"}}))
        .expect("valid update")
}

struct Stores {
    _dirs: Vec<tempfile::TempDir>,
    stores: Vec<Arc<dyn JobStore>>,
}

fn stores() -> Stores {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let dir = DirJobStore::open(a.path().join("jobs")).expect("dir store");
    let local = LocalStore::open(b.path())
        .expect("local store")
        .with_fsync(false);
    let blob = BlobJobStore::new(Arc::new(local), DEFAULT_JOB_CONTAINER)
        .with_process_lock(b.path().join(".joblocks"));
    Stores {
        _dirs: vec![a, b],
        stores: vec![Arc::new(dir), Arc::new(blob)],
    }
}

#[tokio::test]
async fn create_get_list_and_already_exists() {
    let s = stores();
    for store in &s.stores {
        assert!(store.get("j1").await.expect("get").is_none());
        let v1 = store.create(&job("j1", &["D1"])).await.expect("create");
        store.create(&job("j0", &["D1"])).await.expect("create");
        let stored = store.get("j1").await.expect("get").expect("present");
        assert_eq!(stored.version, v1, "{store:?}");
        assert_eq!(stored.job, job("j1", &["D1"]));
        let again = store.create(&job("j1", &["D2"])).await;
        assert!(
            matches!(again, Err(JobStoreError::AlreadyExists { ref name }) if name == "j1"),
            "{again:?}"
        );
        let names: Vec<String> = store
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(names, ["j0", "j1"]);
    }
}

#[tokio::test]
async fn a_stale_version_conflicts_on_replace_and_remove() {
    let s = stores();
    for store in &s.stores {
        let v1 = store.create(&job("j", &["D1"])).await.expect("create");
        let mut changed = store.get("j").await.expect("get").expect("present").job;
        changed.update(shipping(), NOW).expect("to Shipping");
        let v2 = store.replace(&changed, &v1).await.expect("replace at v1");
        assert_ne!(v1, v2);
        // A second writer that also read v1 loses.
        let stale = store.replace(&job("j", &["D1"]), &v1).await;
        assert!(
            matches!(stale, Err(JobStoreError::Conflict { .. })),
            "{store:?}: {stale:?}"
        );
        let removed = store.remove("j", &v1).await;
        assert!(matches!(removed, Err(JobStoreError::Conflict { .. })));
        let kept = store.get("j").await.expect("get").expect("present");
        assert_eq!(kept.job.properties.state, JobState::Shipping);
        assert_eq!(kept.version, v2);
        store.remove("j", &v2).await.expect("remove at v2");
        assert!(store.get("j").await.expect("get").is_none());
    }
}

#[tokio::test]
async fn names_that_could_escape_are_refused() {
    let s = stores();
    for store in &s.stores {
        for bad in ["", "../x", "a/b", "a.json", &"x".repeat(65)] {
            let got = store.get(bad).await;
            assert!(matches!(got, Err(JobStoreError::Name { .. })), "{bad:?}");
        }
    }
}

/// Delegates to `inner`, but before the first `replace` another writer receives drive `D2`.
#[derive(Debug)]
struct Interfering {
    inner: Arc<dyn JobStore>,
    interfered: AtomicBool,
}

#[async_trait]
impl JobStore for Interfering {
    async fn get(&self, name: &str) -> Result<Option<Stored>, JobStoreError> {
        self.inner.get(name).await
    }
    async fn create(&self, job: &Job) -> Result<Version, JobStoreError> {
        self.inner.create(job).await
    }
    async fn replace(&self, job: &Job, expected: &Version) -> Result<Version, JobStoreError> {
        if !self.interfered.swap(true, Ordering::SeqCst) {
            let Stored { mut job, version } = self.inner.get(&job.name).await?.expect("present");
            job.receive_drives(&["D2"], NOW).expect("receive D2");
            self.inner.replace(&job, &version).await?;
        }
        self.inner.replace(job, expected).await
    }
    async fn list(&self) -> Result<Vec<Job>, JobStoreError> {
        self.inner.list().await
    }
    async fn remove(&self, name: &str, expected: &Version) -> Result<(), JobStoreError> {
        self.inner.remove(name, expected).await
    }
}

#[tokio::test]
async fn update_reapplies_its_transition_after_a_conflict() {
    let s = stores();
    for store in &s.stores {
        let mut created = job("j", &["D1", "D2"]);
        created.update(shipping(), NOW).expect("to Shipping");
        store.create(&created).await.expect("create");
        let racing = Interfering {
            inner: Arc::clone(store),
            interfered: AtomicBool::new(false),
        };
        let mut calls = 0;
        let done = update(&racing, "j", NOW, |job, now| {
            calls += 1;
            job.receive_drives(&["D1"], now)
        })
        .await
        .expect("update");
        assert_eq!(calls, 2, "applied once, conflicted, re-applied");
        let stored = store.get("j").await.expect("get").expect("present");
        assert_eq!(done.version.as_ref(), Some(&stored.version));
        for id in ["D1", "D2"] {
            let drive = stored.job.drive(id).expect("listed");
            assert_eq!(drive.state, DriveState::Received, "{store:?} {id}");
        }
        assert_eq!(stored.job.properties.state, JobState::Received);
        // created at 1, Shipping 2, the interfering write 3, ours 4.
        assert_eq!(stored.job.drivecopy.version, 4);
    }
}

#[tokio::test]
async fn update_refusal_writes_nothing_and_delete_removes() {
    let s = stores();
    for store in &s.stores {
        let v1 = store.create(&job("j", &["D1"])).await.expect("create");
        let refused = update(store.as_ref(), "j", NOW, |job, now| {
            job.fault_drive("D1", "x", now)
        })
        .await;
        assert!(
            matches!(refused, Err(JobStoreError::Transition { .. })),
            "{refused:?}"
        );
        assert_eq!(
            store.get("j").await.expect("get").expect("present").version,
            v1
        );
        let idle = update(store.as_ref(), "j", NOW, |job, now| job.tick(now))
            .await
            .expect("idle tick");
        assert_eq!(idle.version, Some(v1), "an idle tick writes nothing");
        let deleted = update(store.as_ref(), "j", NOW, |job, now| job.delete(now))
            .await
            .expect("delete");
        assert!(deleted.version.is_none() && deleted.job.is_deleted());
        assert!(store.get("j").await.expect("get").is_none());
        let missing = update(store.as_ref(), "j", NOW, |job, now| job.tick(now)).await;
        assert!(matches!(missing, Err(JobStoreError::NotFound { .. })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_in_one_process_lose_nothing() {
    let s = stores();
    let ids: Vec<String> = (0..10).map(|i| format!("D{i}")).collect();
    for store in &s.stores {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut created = job("j", &refs);
        created.update(shipping(), NOW).expect("to Shipping");
        store.create(&created).await.expect("create");
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let store = Arc::clone(store);
                let id = id.clone();
                tokio::spawn(async move {
                    update(store.as_ref(), "j", NOW, |job, now| {
                        job.receive_drives(&[id.as_str()], now)
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("update");
        }
        let stored = store.get("j").await.expect("get").expect("present").job;
        assert!(stored
            .properties
            .drive_list
            .iter()
            .all(|d| d.state == DriveState::Received));
        assert_eq!(stored.drivecopy.version, 2 + 10);
    }
}
