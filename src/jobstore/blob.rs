//! [`BlobJobStore`]: job documents as blobs `jobs/<name>.json` in a container of any
//! [`BlobStore`], written conditionally on ETags (create with `If-None-Match: *`, replace and
//! delete with `If-Match`), so that copy stations on many machines share a job through Azure
//! Storage.
//!
//! # Reading a version
//! [`BlobStore`] has no read that returns the bytes and their ETag together, so [`JobStore::get`]
//! reads the properties first and the bytes second. The bytes are then at least as new as the
//! ETag: when they are newer, the next conditional write fails with a conflict (and [`update`]
//! re-reads), so a stale document can never be written over a newer one.
//!
//! # Stores whose conditions are atomic only within a process
//! [`LocalStore`](crate::store::local::LocalStore) checks conditions atomically within one process
//! only. For several processes sharing one local store, [`BlobJobStore::with_process_lock`] makes
//! every write of a job also hold an exclusive lock on `<lock dir>/<name>.lock`.
//!
//! [`update`]: super::update

use super::{
    check_name, from_document, to_document, Job, JobStore, JobStoreError, Stored, Version,
};
use crate::names::BlobPath;
use crate::store::{BlobStore, CommitOptions, Condition, ContentProperties, ETag, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The default container of the blob job store.
pub const DEFAULT_JOB_CONTAINER: &str = "drivecopy-jobs";

/// The blob name prefix of job documents.
const PREFIX: &str = "jobs/";

/// Job documents in a blob container (see the module docs).
#[derive(Debug, Clone)]
pub struct BlobJobStore {
    store: Arc<dyn BlobStore>,
    container: String,
    lock_dir: Option<PathBuf>,
}

fn store_err(name: &str) -> impl FnOnce(StoreError) -> JobStoreError + '_ {
    move |source| JobStoreError::Store {
        name: name.to_owned(),
        source,
    }
}

impl BlobJobStore {
    /// Keep jobs in `container` (created on the first [`JobStore::create`]) of `store`.
    pub fn new(store: Arc<dyn BlobStore>, container: impl Into<String>) -> Self {
        BlobJobStore {
            store,
            container: container.into(),
            lock_dir: None,
        }
    }

    /// Also hold an exclusive lock on `<dir>/<name>.lock` around every write of job `name`, for a
    /// backend whose conditions are atomic only within a process (a local store shared by several
    /// processes). `dir` is created when needed.
    pub fn with_process_lock(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    fn path(&self, name: &str) -> BlobPath {
        BlobPath {
            container: self.container.clone(),
            name: format!("{PREFIX}{name}.json"),
        }
    }

    /// Take the process lock of job `name`, when configured; released when dropped.
    async fn lock(&self, name: &str) -> Result<Option<File>, JobStoreError> {
        let Some(dir) = self.lock_dir.clone() else {
            return Ok(None);
        };
        let owned = name.to_owned();
        let locked = tokio::task::spawn_blocking(move || {
            let path = dir.join(format!("{owned}.lock"));
            let file = fs::create_dir_all(&dir)
                .and_then(|()| {
                    OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                })
                .and_then(|file| super::lock_exclusive(&file).map(|()| file));
            file.map_err(|source| JobStoreError::Io {
                name: owned,
                op: "lock",
                file: path,
                source,
            })
        })
        .await;
        match locked {
            Ok(file) => file.map(Some),
            Err(join) => Err(JobStoreError::Io {
                name: name.to_owned(),
                op: "lock",
                file: self.lock_dir.clone().unwrap_or_default(),
                source: std::io::Error::other(join),
            }),
        }
    }

    async fn put(
        &self,
        job: &Job,
        condition: Condition,
    ) -> Result<Result<Version, StoreError>, JobStoreError> {
        let data = Bytes::from(to_document(job)?);
        let options = CommitOptions {
            content: ContentProperties {
                content_type: Some("application/json".to_owned()),
                ..ContentProperties::default()
            },
            condition,
            ..CommitOptions::default()
        };
        let _lock = self.lock(&job.name).await?;
        Ok(self
            .store
            .put_blob(&self.path(&job.name), data, options)
            .await
            .map(|props| Version(props.etag.0)))
    }
}

#[async_trait]
impl JobStore for BlobJobStore {
    async fn get(&self, name: &str) -> Result<Option<Stored>, JobStoreError> {
        check_name(name)?;
        let path = self.path(name);
        let props = match self.store.get_properties(&path).await {
            Ok(props) => props,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(name)(e)),
        };
        let bytes = match self.store.read_range(&path, None).await {
            Ok(bytes) => bytes,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(name)(e)),
        };
        Ok(Some(Stored {
            job: from_document(name, &bytes)?,
            version: Version(props.etag.0),
        }))
    }

    async fn create(&self, job: &Job) -> Result<Version, JobStoreError> {
        let name = job.name.as_str();
        check_name(name)?;
        let mut created_container = false;
        loop {
            match self.put(job, Condition::IfNoneMatchStar).await? {
                Ok(version) => return Ok(version),
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(JobStoreError::AlreadyExists {
                        name: name.to_owned(),
                    })
                }
                Err(StoreError::NotFound { .. }) if !created_container => {
                    self.store
                        .create_container(&self.container)
                        .await
                        .map_err(store_err(name))?;
                    created_container = true;
                }
                Err(e) => return Err(store_err(name)(e)),
            }
        }
    }

    async fn replace(&self, job: &Job, expected: &Version) -> Result<Version, JobStoreError> {
        let name = job.name.as_str();
        check_name(name)?;
        let condition = Condition::IfMatch(ETag(expected.0.clone()));
        match self.put(job, condition).await? {
            Ok(version) => Ok(version),
            Err(StoreError::ConditionNotMet { .. }) => Err(JobStoreError::Conflict {
                name: name.to_owned(),
            }),
            Err(StoreError::NotFound { .. }) => Err(JobStoreError::NotFound {
                name: name.to_owned(),
            }),
            Err(e) => Err(store_err(name)(e)),
        }
    }

    async fn list(&self) -> Result<Vec<Job>, JobStoreError> {
        let items = match self.store.list_blobs(&self.container, PREFIX).await {
            Ok(items) => items,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(store_err("")(e)),
        };
        let mut jobs = Vec::with_capacity(items.len());
        for item in items {
            let Some(name) = item
                .name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            // A job removed since the listing is simply not listed.
            if let Some(stored) = self.get(name).await? {
                jobs.push(stored.job);
            }
        }
        Ok(jobs)
    }

    async fn remove(&self, name: &str, expected: &Version) -> Result<(), JobStoreError> {
        check_name(name)?;
        let condition = Condition::IfMatch(ETag(expected.0.clone()));
        let _lock = self.lock(name).await?;
        match self.store.delete_blob(&self.path(name), condition).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionNotMet { .. }) => Err(JobStoreError::Conflict {
                name: name.to_owned(),
            }),
            Err(StoreError::NotFound { .. }) => Err(JobStoreError::NotFound {
                name: name.to_owned(),
            }),
            Err(e) => Err(store_err(name)(e)),
        }
    }
}
