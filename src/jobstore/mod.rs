//! The job store: where [`Job`] documents live, with optimistic concurrency, so that copy
//! stations on many machines (or many processes on one) update one job without losing each
//! other's writes (issue 6, item 3).
//!
//! This module owns the [`JobStore`] trait, its two backends ([`DirJobStore`], a directory of
//! JSON documents, and [`BlobJobStore`], the same documents as blobs in any
//! [`BlobStore`](crate::store::BlobStore)), and the one read-modify-write loop every write goes
//! through, [`update`]. It must not decide what a transition does (that is [`crate::job`], which
//! stays pure) and it never prints.
//!
//! # Concurrency model
//! Every stored document has an opaque [`Version`] that changes on every write. A write is
//! conditional on the version the writer read ([`JobStore::replace`], [`JobStore::remove`]) and
//! fails with [`JobStoreError::Conflict`] when another writer got there first; [`update`] then
//! re-reads the job and re-applies the transition to the fresh copy, so no write is lost and a
//! transition that became illegal meanwhile fails with its [`JobError`].
//!
//! # Job names
//! A stored job's name is 1 to 64 characters from `[A-Za-z0-9_-]` (the rule of
//! [`Job::create`]; the ARM limit is narrower, 3 to 24), so that a name can never escape the
//! store's directory or container prefix.

mod blob;
mod dir;

pub use blob::{BlobJobStore, DEFAULT_JOB_CONTAINER};
pub use dir::{DirJobStore, DEFAULT_JOB_DIR};

use crate::job::{Job, JobError};
use crate::store::StoreError;
use async_trait::async_trait;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;

/// How many times [`update`] re-reads and re-applies after a [`JobStoreError::Conflict`].
pub const MAX_UPDATE_ATTEMPTS: u32 = 100;

/// The opaque version of a stored job document: an ETag for blob stores, a content hash (prefixed
/// by the job's version counter) for the directory store. Two reads return equal versions only
/// when the document did not change in between (or changed back to identical bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

impl Version {
    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job as read from a store, with the version to make the next write conditional on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The job document.
    pub job: Job,
    /// Its stored version.
    pub version: Version,
}

/// A job store operation that failed. Every variant names the job.
#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
    /// The name is empty, longer than 64 characters or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid job name {name:?}: 1 to 64 letters, digits, '-' or '_'")]
    Name {
        /// The rejected name.
        name: String,
    },
    /// [`JobStore::create`] of a job that already exists.
    #[error("job {name} already exists")]
    AlreadyExists {
        /// The job name.
        name: String,
    },
    /// The job does not exist.
    #[error("job {name} not found")]
    NotFound {
        /// The job name.
        name: String,
    },
    /// The stored version is not the one the write was conditional on.
    #[error("job {name} changed since it was read")]
    Conflict {
        /// The job name.
        name: String,
    },
    /// [`update`] met a conflict on every one of its attempts.
    #[error("job {name} still conflicted after {attempts} attempts")]
    Contended {
        /// The job name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The transition refused (nothing was written).
    #[error("job {name}: transition refused")]
    Transition {
        /// The job name.
        name: String,
        /// Why.
        #[source]
        source: JobError,
    },
    /// The stored document is not a job document.
    #[error("job document of {name} is unreadable")]
    Corrupt {
        /// The job name.
        name: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A file-system operation of the directory store failed.
    #[error("{op} {file:?} for job {name} failed")]
    Io {
        /// The job name (empty for a whole-store operation).
        name: String,
        /// The operation (`"open"`, `"lock"`, `"write"`, `"rename"`, ...).
        op: &'static str,
        /// The file touched.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The blob store failed.
    #[error("blob store failed for job {name}")]
    Store {
        /// The job name (empty for a whole-store operation).
        name: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// Where jobs are kept. Every write is conditional (see the module docs); implementations make
/// the compare-and-swap atomic against every other writer of the same store, in this process or
/// another.
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Read job `name`, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`JobStoreError::Name`], [`JobStoreError::Corrupt`], I/O or store errors.
    async fn get(&self, name: &str) -> Result<Option<Stored>, JobStoreError>;

    /// Store a new job under `job.name`, only if no job has that name.
    ///
    /// # Errors
    /// [`JobStoreError::AlreadyExists`], [`JobStoreError::Name`], I/O or store errors.
    async fn create(&self, job: &Job) -> Result<Version, JobStoreError>;

    /// Replace job `job.name`, only if its stored version is `expected`; returns the new version.
    ///
    /// # Errors
    /// [`JobStoreError::Conflict`] when the stored version is another; [`JobStoreError::NotFound`]
    /// when the job is gone (a blob store may report a vanished job as `Conflict`);
    /// [`JobStoreError::Name`], I/O or store errors.
    async fn replace(&self, job: &Job, expected: &Version) -> Result<Version, JobStoreError>;

    /// Every stored job, sorted by name. A document that cannot be read fails the listing.
    ///
    /// # Errors
    /// [`JobStoreError::Corrupt`], I/O or store errors.
    async fn list(&self) -> Result<Vec<Job>, JobStoreError>;

    /// Remove job `name`, only if its stored version is `expected`.
    ///
    /// # Errors
    /// As [`JobStore::replace`].
    async fn remove(&self, name: &str, expected: &Version) -> Result<(), JobStoreError>;
}

/// What [`update`] did.
#[derive(Debug, Clone)]
pub struct Updated<T> {
    /// The transition's result.
    pub value: T,
    /// The job after the transition (marked deleted when it was removed).
    pub job: Job,
    /// The stored version after the write; `None` when the job was deleted and so removed from
    /// the store. Unchanged when the transition changed nothing (an idle tick).
    pub version: Option<Version>,
}

/// Check a job name (see the module docs).
///
/// # Errors
/// [`JobStoreError::Name`].
pub fn check_name(name: &str) -> Result<(), JobStoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(JobStoreError::Name {
            name: name.to_owned(),
        })
    }
}

/// Apply `transition` to job `name` with optimistic concurrency: read the job and its version,
/// run `transition(&mut job, now)` on it, and write the result conditionally on the version read.
/// On [`JobStoreError::Conflict`], wait a little (1 ms growing to at most 64 ms, jittered) and
/// start again from a fresh read, at most [`MAX_UPDATE_ATTEMPTS`] times. A transition that leaves
/// the job's `drivecopy.version` unchanged (an idle [`Job::tick`]) writes nothing; one that
/// deletes the job ([`Job::delete`], a timeout) removes it from the store.
///
/// `transition` may run several times, each time on a fresh copy of the stored job; it must have
/// no effect outside the job.
///
/// # Errors
/// [`JobStoreError::NotFound`]; [`JobStoreError::Transition`] when the transition refuses
/// (nothing written); [`JobStoreError::Contended`] after too many conflicts; the store's errors.
pub async fn update<T, F>(
    store: &dyn JobStore,
    name: &str,
    now: OffsetDateTime,
    mut transition: F,
) -> Result<Updated<T>, JobStoreError>
where
    F: FnMut(&mut Job, OffsetDateTime) -> Result<T, JobError> + Send,
    T: Send,
{
    check_name(name)?;
    for attempt in 0..MAX_UPDATE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let Some(Stored { mut job, version }) = store.get(name).await? else {
            return Err(JobStoreError::NotFound {
                name: name.to_owned(),
            });
        };
        let before = job.drivecopy.version;
        let value = transition(&mut job, now).map_err(|source| JobStoreError::Transition {
            name: name.to_owned(),
            source,
        })?;
        let written = if job.drivecopy.version == before {
            Ok(Some(version))
        } else if job.is_deleted() {
            store.remove(name, &version).await.map(|()| None)
        } else {
            store.replace(&job, &version).await.map(Some)
        };
        match written {
            Ok(version) => {
                return Ok(Updated {
                    value,
                    job,
                    version,
                })
            }
            Err(JobStoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(JobStoreError::Contended {
        name: name.to_owned(),
        attempts: MAX_UPDATE_ATTEMPTS,
    })
}

/// The wait before attempt `attempt` (1-based retries): a random duration up to
/// `min(2^attempt, 64)` milliseconds, at least 1 ms, so that colliding writers spread out.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let cap_ms = 1u64 << attempt.min(6);
    // RandomState is seeded per process and per instance: enough jitter without a rand crate.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let jitter = hasher.finish() % (cap_ms * 1000);
    Duration::from_micros(1000 + jitter)
}

/// Take an exclusive lock on `file` (an `flock` on Linux), blocking until it is free; released
/// when the file is closed. Used by both stores to make a compare-and-swap atomic across processes.
/// `File::lock` is stable since Rust 1.89, the crate's `rust-version`.
fn lock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    file.lock()
}

/// Serialize a job document as the stores keep it: pretty JSON with a final newline.
fn to_document(job: &Job) -> Result<Vec<u8>, JobStoreError> {
    let mut bytes = serde_json::to_vec_pretty(job).map_err(|source| JobStoreError::Corrupt {
        name: job.name.clone(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Parse a stored document of job `name`.
fn from_document(name: &str, bytes: &[u8]) -> Result<Job, JobStoreError> {
    serde_json::from_slice(bytes).map_err(|source| JobStoreError::Corrupt {
        name: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
