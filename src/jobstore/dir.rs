//! [`DirJobStore`]: the embedded default job store, a directory with one pretty-JSON document per
//! job, `<dir>/<name>.json`.
//!
//! # Atomicity
//! A document is only ever replaced whole: the new bytes go to a uniquely named temporary file
//! (`.<name>.json.<pid>-<n>-<nanos>.tmp`, created with `create_new`), are flushed, and are renamed
//! onto `<name>.json`, after which the directory is flushed; a reader sees the old document or
//! the new one, never a mix. The compare-and-swap (read the current document, compare its version,
//! rename) runs under an exclusive lock on `<dir>/<name>.lock` (`File::lock`, an `flock` on Linux),
//! so it is atomic across threads and processes. Reads take no lock. Lock files stay after a job
//! is removed (removing them would race with a writer waiting on one); they are empty.
//!
//! # Versions
//! `<counter>-<hash>`: the job's `drivecopy.version` and the first 16 hex digits of the SHA-256 of
//! the stored bytes. Only identical bytes give an identical version.

use super::{
    check_name, from_document, to_document, Job, JobStore, JobStoreError, Stored, Version,
};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The default directory of the directory store (relative to the working directory).
pub const DEFAULT_JOB_DIR: &str = "drivecopy-jobs";

/// A directory of job documents (see the module docs).
#[derive(Debug, Clone)]
pub struct DirJobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    counter: AtomicU64,
}

impl DirJobStore {
    /// Open (creating it if needed) the store in directory `dir`.
    ///
    /// # Errors
    /// [`JobStoreError::Io`] when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, JobStoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err("", "create", &dir))?;
        Ok(DirJobStore {
            inner: Arc::new(Inner {
                dir,
                counter: AtomicU64::new(0),
            }),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, JobStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, JobStoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(result) => result,
            Err(join) => Err(JobStoreError::Io {
                name: String::new(),
                op: "run blocking task",
                file: self.inner.dir.clone(),
                source: io::Error::other(join),
            }),
        }
    }
}

fn io_err<'a>(
    name: &'a str,
    op: &'static str,
    file: &'a Path,
) -> impl FnOnce(io::Error) -> JobStoreError + 'a {
    move |source| JobStoreError::Io {
        name: name.to_owned(),
        op,
        file: file.to_owned(),
        source,
    }
}

fn version_of(job: &Job, bytes: &[u8]) -> Version {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Version(format!("{}-{hex}", job.drivecopy.version))
}

impl Inner {
    fn doc_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Take the exclusive lock of job `name`; released when the file is dropped.
    fn lock(&self, name: &str) -> Result<File, JobStoreError> {
        let path = self.dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(name, "open", &path))?;
        super::lock_exclusive(&file).map_err(io_err(name, "lock", &path))?;
        Ok(file)
    }

    /// The current document and its version, or `None`.
    fn read(&self, name: &str) -> Result<Option<Stored>, JobStoreError> {
        let path = self.doc_path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(name, "read", &path)(e)),
        };
        let job = from_document(name, &bytes)?;
        let version = version_of(&job, &bytes);
        Ok(Some(Stored { job, version }))
    }

    /// Write `bytes` as the document of `name` atomically (temp file + rename + directory sync).
    /// The caller holds the job's lock.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), JobStoreError> {
        let (mut file, tmp) = loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            let tmp = self.dir.join(format!(
                ".{name}.json.{}-{n}-{nanos}.tmp",
                std::process::id()
            ));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => break (file, tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(name, "create", &tmp)(e)),
            }
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err(name, "write", &tmp));
        drop(file);
        let path = self.doc_path(name);
        let renamed =
            written.and_then(|()| fs::rename(&tmp, &path).map_err(io_err(name, "rename", &tmp)));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir(name)
    }

    fn sync_dir(&self, name: &str) -> Result<(), JobStoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(name, "fsync", &self.dir))
    }
}

#[async_trait]
impl JobStore for DirJobStore {
    async fn get(&self, name: &str) -> Result<Option<Stored>, JobStoreError> {
        check_name(name)?;
        let name = name.to_owned();
        self.blocking(move |inner| inner.read(&name)).await
    }

    async fn create(&self, job: &Job) -> Result<Version, JobStoreError> {
        check_name(&job.name)?;
        let bytes = to_document(job)?;
        let job = job.clone();
        self.blocking(move |inner| {
            let name = job.name.as_str();
            let _lock = inner.lock(name)?;
            if inner.doc_path(name).exists() {
                return Err(JobStoreError::AlreadyExists {
                    name: name.to_owned(),
                });
            }
            inner.write(name, &bytes)?;
            Ok(version_of(&job, &bytes))
        })
        .await
    }

    async fn replace(&self, job: &Job, expected: &Version) -> Result<Version, JobStoreError> {
        check_name(&job.name)?;
        let bytes = to_document(job)?;
        let job = job.clone();
        let expected = expected.clone();
        self.blocking(move |inner| {
            let name = job.name.as_str();
            let _lock = inner.lock(name)?;
            let Some(current) = inner.read(name)? else {
                return Err(JobStoreError::NotFound {
                    name: name.to_owned(),
                });
            };
            if current.version != expected {
                return Err(JobStoreError::Conflict {
                    name: name.to_owned(),
                });
            }
            inner.write(name, &bytes)?;
            Ok(version_of(&job, &bytes))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Job>, JobStoreError> {
        self.blocking(|inner| {
            let entries = fs::read_dir(&inner.dir).map_err(io_err("", "list", &inner.dir))?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err("", "list", &inner.dir))?;
                let file_name = entry.file_name();
                let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                if check_name(name).is_ok() {
                    names.push(name.to_owned());
                }
            }
            names.sort();
            let mut jobs = Vec::with_capacity(names.len());
            for name in names {
                // A job removed since the directory was read is simply not listed.
                if let Some(stored) = inner.read(&name)? {
                    jobs.push(stored.job);
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn remove(&self, name: &str, expected: &Version) -> Result<(), JobStoreError> {
        check_name(name)?;
        let name = name.to_owned();
        let expected = expected.clone();
        self.blocking(move |inner| {
            let _lock = inner.lock(&name)?;
            let Some(current) = inner.read(&name)? else {
                return Err(JobStoreError::NotFound { name });
            };
            if current.version != expected {
                return Err(JobStoreError::Conflict { name });
            }
            let path = inner.doc_path(&name);
            fs::remove_file(&path).map_err(io_err(&name, "remove", &path))?;
            inner.sync_dir(&name)
        })
        .await
    }
}
