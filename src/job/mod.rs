//! The Import/Export job and drive state machines. Pure: no I/O, no clock reads, no async.
//!
//! This module owns the [`Job`] document (the ARM `JobDetails` of api-version 2021-01-01 plus the
//! bookkeeping the lifecycle rules need), the [`JobState`] and [`DriveState`] machines, and every
//! transition between them, as methods on [`Job`] that either apply completely and return the
//! [`Changes`] they made, or leave the job untouched and return a typed [`JobError`].
//!
//! It must not do I/O, read the clock (every transition takes `now`), print, or know about the job
//! store, the CLI or the copy engine: those call in.
//!
//! Sources: azure-import-export.md §4.1 (JobDetails, DriveStatus, Update Job rules) and §6
//! (states, faults, cancellation, timeouts), as narrowed by issue 6.
//!
//! # Choices where the sources conflict
//! - **Cancellation** (§6.3): allowed while the job is `Creating`, `Shipping`, `Received` or
//!   `Transferring` (the 2017 API rule, "before Packaging"), not only in `Creating` (2021 portal).
//!   A cancelled job skips the copy step and otherwise follows the same transitions; when no drive
//!   has arrived yet it moves straight to `Completed` (2017: "a canceled job is moved to
//!   Completed"), rather than staying `Creating` while cancellation runs asynchronously as the live
//!   service shows it.
//! - **Delete** (§6.3): allowed in `Creating`, `Completed` and `Closed` (issue 6), where the ARM
//!   spec names only `Creating` and `Completed`.
//! - **Received with a missing drive** (§6.1, §6.2): a package is one arrival event; listed drives
//!   not in it become `NeverReceived`. The job is `Received` once no listed drive is still
//!   `Specified` and at least one drive is `Received`, so that the drives that did arrive are
//!   processed. A `NeverReceived` drive that turns up later becomes `Received`.
//! - **Errors** (§6.1 "Completed or Closed", an (inferred) mapping): a drive whose copy status is
//!   `CompletedWithErrors` or a drive-level failure, a `NeverReceived` drive, a fault entered while
//!   the job is being processed (`Received`, `Transferring`, `Packaging`) or on a drive, a drive that
//!   arrives after processing ended, and the 30-day shipping timeout. On a cancelled job a
//!   `NeverReceived` drive is not an error (the customer no longer needs it), so a job cancelled
//!   before any drive arrived ends `Completed`.
//! - **Faulted** (§6.1): entered by an operator with a reason; resolving returns to the state the
//!   job (or drive) left, except that a drive faulted while `Transferring` returns to `Received`
//!   (its copy must start again).
//!
//! # Other choices (not settled by the sources)
//! - A `Faulted` job refuses Update Job, arrivals and copy starts; a copy already in flight may
//!   still record progress and its result, so nothing is lost while an operator looks.
//! - Update Job is refused from `Packaging` on (the 2016 portal rule for the carrier account,
//!   applied to every property); `driveList` may be replaced only in `Creating`.
//! - Timeouts fire at their nominal deadlines ([`Job::tick`] may run late without changing the
//!   outcome); a tick that finds nothing due does not change the job or its version.
//! - Deletion marks the job deleted rather than dropping it, so that the store can remove it and
//!   every later transition fails with [`JobError::Deleted`].

mod drive;
mod model;
mod put;
mod serde_time;
mod timeout;
mod transition;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;

pub use drive::{BitLockerKey, CopyStatus, DriveState, DriveStatus};
pub use model::{
    DeliveryPackageInformation, DriveBook, EncryptionKeyDetails, ErrorEvent, Export,
    ExportBlobList, ExtraDrive, Fault, Job, JobBook, JobDetails, JobListItem, JobResponse, JobType,
    LogLevel, PackageInformation, PutJobParameters, ResourceScope, ReturnAddress, ReturnShipping,
    ShippingInformation, UpdateJobParameters, UpdateJobProperties, JOB_RESOURCE_TYPE,
};
pub use timeout::{CREATING_TIMEOUT, RETENTION, SHIPPING_CLOSE_AFTER, SHIPPING_NOTIFY_AFTER};
pub use transition::{
    Change, Changes, CopyOutcome, TimeoutEvent, DEFAULT_DIAGNOSTICS_PATH, MAX_DRIVES,
};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of an Import/Export job (azure-import-export.md §6.1), spelled as Azure spells it.
///
/// ```mermaid
/// stateDiagram-v2
///     [*] --> Creating: put job
///     Creating --> Shipping: update state=Shipping
///     Creating --> Completed: cancelled, no drive arrived
///     Shipping --> Received: drives arrived
///     Shipping --> Completed: cancelled, no drive arrived
///     Shipping --> Closed: 14 + 30 days with nothing received
///     Received --> Transferring: a drive starts copying
///     Received --> Packaging: cancelled, copy skipped
///     Transferring --> Packaging: every received drive finished
///     Packaging --> Completed: shipped back, no errors
///     Packaging --> Closed: shipped back, errors
///     Creating --> Faulted
///     Shipping --> Faulted
///     Received --> Faulted
///     Transferring --> Faulted
///     Packaging --> Faulted
///     Faulted --> Creating: resolved
///     Faulted --> Shipping: resolved
///     Faulted --> Received: resolved
///     Faulted --> Transferring: resolved
///     Faulted --> Packaging: resolved
///     Creating --> [*]: deleted (14 days, or on request)
///     Completed --> [*]: deleted (90 days, or on request)
///     Closed --> [*]: deleted (90 days, or on request)
/// ```
///
/// A single event may take several edges at once (for example, resolving a fault back to
/// `Received` on a cancelled job continues to `Packaging`); each edge taken is reported in
/// [`Changes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobState {
    /// Created by Put Job; the service assumes no drive has shipped. Deleted after 14 days without
    /// an update.
    /// Exits: `Shipping`, `Completed` (cancelled), `Faulted`, deletion.
    Creating,
    /// The customer has shipped the drives (Update Job `state: Shipping`).
    /// Exits: `Received`, `Completed` (cancelled), `Closed` (timeout), `Faulted`.
    Shipping,
    /// Every listed drive has arrived or been declared `NeverReceived`, and at least one arrived.
    /// Exits: `Transferring`, `Packaging` (cancelled), `Faulted`.
    Received,
    /// At least one drive has started copying.
    /// Exits: `Packaging`, `Faulted`.
    Transferring,
    /// Every received drive has finished (or was skipped by cancellation); waiting to ship back.
    /// Exits: `Completed`, `Closed`, `Faulted`.
    Packaging,
    /// Drives shipped back and no errors (or cancelled before any drive arrived).
    /// Exits: deletion only (after 90 days or on request).
    Completed,
    /// Drives shipped back with errors, or closed after the shipping timeout.
    /// Exits: deletion only (after 90 days or on request).
    Closed,
    /// Put aside by an operator with a reason.
    /// Exits: the state it left, when resolved.
    Faulted,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Creating,
        JobState::Shipping,
        JobState::Received,
        JobState::Transferring,
        JobState::Packaging,
        JobState::Completed,
        JobState::Closed,
        JobState::Faulted,
    ];

    /// The states this state may move to directly (the diagram above; deletion is not a state).
    pub fn exits(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            Creating => &[Shipping, Completed, Faulted],
            Shipping => &[Received, Completed, Closed, Faulted],
            Received => &[Transferring, Packaging, Faulted],
            Transferring => &[Packaging, Faulted],
            Packaging => &[Completed, Closed, Faulted],
            Completed | Closed => &[],
            Faulted => &[Creating, Shipping, Received, Transferring, Packaging],
        }
    }

    /// Azure's spelling of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Creating => "Creating",
            JobState::Shipping => "Shipping",
            JobState::Received => "Received",
            JobState::Transferring => "Transferring",
            JobState::Packaging => "Packaging",
            JobState::Completed => "Completed",
            JobState::Closed => "Closed",
            JobState::Faulted => "Faulted",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition or a job document that the rules refuse. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job has been deleted; no transition leaves deletion.
    #[error("job {job} has been deleted")]
    Deleted {
        /// The job name.
        job: String,
    },
    /// The event is not allowed in the job's current state.
    #[error("cannot {event} job {job} in state {state}")]
    JobState {
        /// The job name.
        job: String,
        /// What was attempted, as a verb phrase.
        event: &'static str,
        /// The job's state.
        state: JobState,
    },
    /// The event is not allowed in the drive's current state.
    #[error("cannot {event} drive {drive} of job {job} in state {state}")]
    DriveState {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
        /// What was attempted, as a verb phrase.
        event: &'static str,
        /// The drive's state.
        state: DriveState,
    },
    /// No drive with that id is listed on the job.
    #[error("job {job} has no drive {drive}")]
    UnknownDrive {
        /// The job name.
        job: String,
        /// The drive id asked for.
        drive: String,
    },
    /// The job name is empty, too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid job name {job:?}: 1 to 64 letters, digits, '-' or '_'")]
    JobName {
        /// The rejected name.
        job: String,
    },
    /// An import job lists fewer than 1 or more than 10 drives (§4.1 "up to ten drives").
    #[error("import job {job} lists {count} drives; it needs 1 to 10")]
    DriveCount {
        /// The job name.
        job: String,
        /// How many drives were listed.
        count: usize,
    },
    /// A required drive field is missing or empty (§4.3).
    #[error("drive {drive} of job {job} has no {field}")]
    DriveField {
        /// The job name.
        job: String,
        /// The drive id (empty when the id itself is missing).
        drive: String,
        /// The ARM field name.
        field: &'static str,
    },
    /// A drive id that is empty or has whitespace or a path separator (§4.1: "no spaces").
    #[error("invalid drive id {drive:?} on job {job}: no whitespace, '/' or '\\'")]
    DriveId {
        /// The job name.
        job: String,
        /// The rejected id.
        drive: String,
    },
    /// Two drives share a drive id.
    #[error("drive {drive} is listed twice on job {job}")]
    DuplicateDrive {
        /// The job name.
        job: String,
        /// The repeated id.
        drive: String,
    },
    /// A manifestHash that is not 32 or 64 hexadecimal digits (§4.1: Base16 MD5).
    #[error("manifestHash {hash:?} of drive {drive} on job {job} is not 32 or 64 hex digits")]
    ManifestHash {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
        /// The rejected value.
        hash: String,
    },
    /// A manifestFile that is not a drive-relative path.
    #[error("manifestFile of drive {drive} on job {job} is not a drive-relative path")]
    ManifestFile {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
        /// Why the path was rejected.
        #[source]
        source: crate::names::PathError,
    },
    /// A bitLockerKey that is not a 48-digit numerical password (§4.3). The key is not echoed.
    #[error("bitLockerKey of drive {drive} on job {job} is not 8 groups of 6 digits")]
    BitLockerKey {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
    },
    /// An export job without `export.blobList` or `export.blobListBlobPath` (§4.1).
    #[error("export job {job} needs export.blobList or export.blobListBlobPath")]
    ExportBlobList {
        /// The job name.
        job: String,
    },
    /// An export job given a driveList: its drives are recorded when they arrive (§6.2).
    #[error("export job {job} must not list drives; they are recorded on arrival")]
    ExportDriveList {
        /// The job name.
        job: String,
    },
    /// Update Job with `cancelRequested: false` (§4.1: if given, it must be true).
    #[error("cancelRequested on job {job} may only be set to true")]
    CancelMustBeTrue {
        /// The job name.
        job: String,
    },
    /// Update Job with a `state` other than `Shipping` (§4.1).
    #[error("update of job {job} may only set state to Shipping, not {requested:?}")]
    StateMustBeShipping {
        /// The job name.
        job: String,
        /// The requested state, as sent.
        requested: String,
    },
    /// Update Job `state: Shipping` without deliveryPackage or returnAddress, now or before (§4.1).
    #[error("job {job} cannot move to Shipping without {missing}")]
    ShippingNeeds {
        /// The job name.
        job: String,
        /// The missing ARM field.
        missing: &'static str,
    },
    /// The copy of a drive may not start because the job was cancelled: the copy is skipped.
    #[error("job {job} was cancelled; the copy of drive {drive} is skipped")]
    Cancelled {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
    },
    /// A drive percentComplete above 100.
    #[error("percentComplete {percent} of drive {drive} on job {job} is above 100")]
    Percent {
        /// The job name.
        job: String,
        /// The drive id.
        drive: String,
        /// The rejected value.
        percent: u8,
    },
}

/// The result of a transition.
pub type Result<T, E = JobError> = std::result::Result<T, E>;
