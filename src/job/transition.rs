//! Every transition of a [`Job`]: Put Job, Update Job, drive arrival, copy start, progress and
//! finish, faults, ship-back, the timeouts and delete. Each either applies completely (bumping
//! `version` and returning the [`Changes`]) or returns a [`JobError`] and leaves the job as it was.
//!
//! Rules: azure-import-export.md §4.1 (Put and Update Job) and §6 (states, timeouts, cancellation),
//! narrowed by issue 6; the choices where they conflict are listed in the module docs of
//! [`crate::job`].

use super::drive::{CopyStatus, DriveState, DriveStatus};
use super::model::{
    DriveBook, ErrorEvent, ExtraDrive, Fault, Job, JobType, PackageInformation,
    UpdateJobParameters, MAX_ERROR_EVENTS,
};
use super::put::{check_drive_id, validate_import_drives};
use super::{JobError, JobState, Result};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// The default `diagnosticsPath` (§4.1; §0 "Default log container").
pub const DEFAULT_DIAGNOSTICS_PATH: &str = "waimportexport";
/// Most drives on a job (§4.1 "up to ten drives").
pub const MAX_DRIVES: usize = 10;

/// One state change made by a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The job moved.
    Job {
        /// The state left.
        from: JobState,
        /// The state entered.
        to: JobState,
    },
    /// A drive moved, or appeared (`from: None`, an export drive arriving).
    Drive {
        /// The drive id.
        drive_id: String,
        /// The state left.
        from: Option<DriveState>,
        /// The state entered.
        to: DriveState,
    },
}

/// What a timeout did (§6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutEvent {
    /// The job was deleted (14 days in `Creating`, or 90 days in `Completed` or `Closed`).
    Deleted {
        /// Drives at the data centre that must still be returned (arrived early, or extra).
        drives_to_return: Vec<String>,
    },
    /// 14 days in `Shipping` with nothing received: operators are notified.
    OperatorsNotified {
        /// The drives that became `NeverReceived`.
        never_received: Vec<String>,
    },
    /// 30 more days with nothing received: the job is `Closed`.
    Closed,
}

/// The effect of one applied transition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The job's version after the transition.
    pub version: u64,
    /// State changes, in the order they happened.
    pub transitions: Vec<Change>,
    /// Timeouts that fired ([`Job::tick`] only).
    pub timeouts: Vec<TimeoutEvent>,
}

/// The end of a drive copy, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The DriveLog drive status (§2.4).
    pub status: CopyStatus,
    /// Bytes successfully transferred.
    pub bytes_succeeded: u64,
    /// URI of the error log blob.
    pub error_log_uri: Option<String>,
    /// URI of the verbose log blob.
    pub verbose_log_uri: Option<String>,
    /// URI of the manifest backup blob.
    pub manifest_uri: Option<String>,
    /// Export only: URI of the list of blobs that did not fit.
    pub incomplete_blob_list_uri: Option<String>,
}

impl CopyOutcome {
    /// An outcome with `status` and nothing else.
    pub fn new(status: CopyStatus) -> Self {
        CopyOutcome {
            status,
            bytes_succeeded: 0,
            error_log_uri: None,
            verbose_log_uri: None,
            manifest_uri: None,
            incomplete_blob_list_uri: None,
        }
    }
}

/// A transition in progress, on a copy of the job.
pub(super) struct Txn {
    pub(super) job: Job,
    pub(super) now: OffsetDateTime,
    pub(super) changes: Changes,
    /// False when nothing happened and nothing must be written (an idle tick).
    pub(super) commit: bool,
}

impl Txn {
    pub(super) fn name(&self) -> String {
        self.job.name.clone()
    }

    pub(super) fn state(&self) -> JobState {
        self.job.properties.state
    }

    pub(super) fn refuse(&self, event: &'static str) -> JobError {
        JobError::JobState {
            job: self.name(),
            event,
            state: self.state(),
        }
    }

    pub(super) fn set_job(&mut self, to: JobState) {
        let from = self.job.properties.state;
        if from != to {
            self.job.properties.state = to;
            self.job.drivecopy.state_entered_at = self.now;
            self.changes.transitions.push(Change::Job { from, to });
        }
    }

    pub(super) fn drive_index(&self, drive_id: &str) -> Result<usize> {
        self.job
            .properties
            .drive_list
            .iter()
            .position(|drive| drive.drive_id == drive_id)
            .ok_or_else(|| JobError::UnknownDrive {
                job: self.name(),
                drive: drive_id.to_owned(),
            })
    }

    pub(super) fn drive_refuse(&self, index: usize, event: &'static str) -> JobError {
        let drive = self.job.properties.drive_list.get(index);
        JobError::DriveState {
            job: self.name(),
            drive: drive.map(|d| d.drive_id.clone()).unwrap_or_default(),
            event,
            state: drive.map_or(DriveState::Specified, |d| d.state),
        }
    }

    pub(super) fn drive_book(&mut self, drive_id: &str) -> &mut DriveBook {
        let now = self.now;
        self.job
            .drivecopy
            .drives
            .entry(drive_id.to_owned())
            .or_insert_with(|| DriveBook {
                state_entered_at: now,
                fault: None,
                total_bytes: None,
                arrived_early_at: None,
            })
    }

    pub(super) fn set_drive(&mut self, index: usize, to: DriveState) {
        let Some(drive) = self.job.properties.drive_list.get_mut(index) else {
            return;
        };
        let from = drive.state;
        if from == to {
            return;
        }
        drive.state = to;
        let drive_id = drive.drive_id.clone();
        let now = self.now;
        self.drive_book(&drive_id).state_entered_at = now;
        self.changes.transitions.push(Change::Drive {
            drive_id,
            from: Some(from),
            to,
        });
    }

    fn add_drive(&mut self, drive_id: &str, state: DriveState) {
        self.job
            .properties
            .drive_list
            .push(DriveStatus::new(drive_id, state));
        let now = self.now;
        self.drive_book(drive_id).state_entered_at = now;
        self.changes.transitions.push(Change::Drive {
            drive_id: drive_id.to_owned(),
            from: None,
            to: state,
        });
    }

    pub(super) fn record_error(&mut self, event: ErrorEvent) {
        if self.job.drivecopy.errors.len() < MAX_ERROR_EVENTS {
            self.job.drivecopy.errors.push(event);
        } else {
            self.job.drivecopy.errors_dropped += 1;
        }
    }

    /// Whether a drive needs nothing more before the job can go to `Packaging`.
    fn drive_done(&self, drive: &DriveStatus) -> bool {
        match drive.state {
            DriveState::Completed | DriveState::CompletedMoreInfo | DriveState::NeverReceived => {
                true
            }
            DriveState::Received => self.job.properties.cancel_requested,
            _ => false,
        }
    }

    /// Apply the automatic moves until nothing changes: all drives in → `Received`; cancelled
    /// before any arrival → `Completed`; every received drive done → `Packaging`.
    fn settle(&mut self) {
        loop {
            let before = self.state();
            let cancelled = self.job.properties.cancel_requested;
            let drives = &self.job.properties.drive_list;
            match before {
                JobState::Creating | JobState::Shipping
                    if cancelled && !self.job.any_drive_arrived() =>
                {
                    self.set_job(JobState::Completed);
                }
                JobState::Shipping
                    if drives.iter().any(|d| d.state.is_on_site())
                        && drives.iter().all(|d| d.state != DriveState::Specified) =>
                {
                    self.set_job(JobState::Received);
                }
                JobState::Received | JobState::Transferring
                    if (before == JobState::Transferring || cancelled)
                        && drives.iter().all(|d| self.drive_done(d)) =>
                {
                    self.set_job(JobState::Packaging);
                }
                _ => {}
            }
            if self.state() == before {
                break;
            }
        }
    }
}

impl Job {
    /// Run `step` on a copy of the job; on success settle, derive percentComplete, bump the
    /// version and replace `self`; on error leave `self` untouched.
    pub(super) fn apply(
        &mut self,
        now: OffsetDateTime,
        step: impl FnOnce(&mut Txn) -> Result<()>,
    ) -> Result<Changes> {
        if self.is_deleted() {
            return Err(JobError::Deleted {
                job: self.name.clone(),
            });
        }
        let mut txn = Txn {
            job: self.clone(),
            now,
            changes: Changes::default(),
            commit: true,
        };
        step(&mut txn)?;
        if !txn.commit {
            txn.changes.version = self.drivecopy.version;
            return Ok(txn.changes);
        }
        if !txn.job.is_deleted() {
            txn.settle();
        }
        txn.job.properties.percent_complete = txn.job.derived_percent_complete();
        txn.job.drivecopy.version += 1;
        txn.changes.version = txn.job.drivecopy.version;
        *self = txn.job;
        Ok(txn.changes)
    }

    /// Update Job Properties (§4.1 Jobs_Update; §6.1, §6.3), allowed in `Creating`, `Shipping`,
    /// `Received` and `Transferring`.
    ///
    /// - In `Creating`, any update restarts the 14-day timer.
    /// - `state` may only be `Shipping`, only from `Creating`, and only when deliveryPackage and
    ///   returnAddress are set by this request or an earlier one. Drives recorded as arriving early
    ///   are then processed as a package: they become `Received` and the other listed drives
    ///   `NeverReceived`.
    /// - `cancelRequested` may only be `true`; the job skips copying from now on. With no drive
    ///   arrived the job is `Completed` at once.
    /// - `driveList` replaces the drives of an import job, only in `Creating`, validated as in
    ///   [`Job::create`].
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] in another state (event `cancel` when
    /// cancellation is asked); [`JobError::CancelMustBeTrue`]; [`JobError::StateMustBeShipping`];
    /// [`JobError::ShippingNeeds`]; the drive-list errors of [`Job::create`].
    pub fn update(&mut self, params: UpdateJobParameters, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            let props = params.properties;
            let state = txn.state();
            let open = matches!(
                state,
                JobState::Creating
                    | JobState::Shipping
                    | JobState::Received
                    | JobState::Transferring
            );
            if props.cancel_requested == Some(false) {
                return Err(JobError::CancelMustBeTrue { job: txn.name() });
            }
            if !open {
                let event = if props.cancel_requested == Some(true) {
                    "cancel"
                } else {
                    "update"
                };
                return Err(txn.refuse(event));
            }
            let to_shipping = match props.state.as_deref() {
                None => false,
                Some("Shipping") if state == JobState::Creating => true,
                Some("Shipping") => return Err(txn.refuse("move to Shipping")),
                Some(other) => {
                    return Err(JobError::StateMustBeShipping {
                        job: txn.name(),
                        requested: other.to_owned(),
                    })
                }
            };
            if let Some(mut drives) = props.drive_list {
                if state != JobState::Creating {
                    return Err(txn.refuse("replace the drive list of"));
                }
                if txn.job.properties.job_type == JobType::Export {
                    return Err(JobError::ExportDriveList { job: txn.name() });
                }
                validate_import_drives(&txn.job.name, &mut drives)?;
                let now = txn.now;
                let early: BTreeMap<String, DriveBook> =
                    std::mem::take(&mut txn.job.drivecopy.drives);
                txn.job.drivecopy.drives = drives
                    .iter()
                    .map(|d| {
                        let book = early.get(&d.drive_id).cloned().unwrap_or(DriveBook {
                            state_entered_at: now,
                            fault: None,
                            total_bytes: None,
                            arrived_early_at: None,
                        });
                        (d.drive_id.clone(), book)
                    })
                    .collect();
                // A drive that arrived early but is no longer listed is an extra drive now.
                for (id, book) in &early {
                    if let (Some(at), false) = (
                        book.arrived_early_at,
                        txn.job.drivecopy.drives.contains_key(id),
                    ) {
                        txn.job.drivecopy.extra_drives.push(ExtraDrive {
                            drive_id: id.clone(),
                            arrived_at: at,
                            shipped_back: false,
                        });
                    }
                }
                txn.job.properties.drive_list = drives;
            }
            let p = &mut txn.job.properties;
            if let Some(address) = props.return_address {
                p.return_address = Some(address);
            }
            if let Some(shipping) = props.return_shipping {
                p.return_shipping = Some(shipping);
            }
            if let Some(package) = props.delivery_package {
                p.delivery_package = Some(package);
            }
            if let Some(level) = props.log_level {
                p.log_level = level;
            }
            if let Some(backup) = props.backup_drive_manifest {
                p.backup_drive_manifest = backup;
            }
            if let Some(tags) = params.tags {
                txn.job.tags = tags;
            }
            if to_shipping {
                if txn.job.properties.delivery_package.is_none() {
                    return Err(JobError::ShippingNeeds {
                        job: txn.name(),
                        missing: "deliveryPackage",
                    });
                }
                if txn.job.properties.return_address.is_none() {
                    return Err(JobError::ShippingNeeds {
                        job: txn.name(),
                        missing: "returnAddress",
                    });
                }
                txn.set_job(JobState::Shipping);
                txn.process_early_arrivals();
            } else if state == JobState::Creating {
                txn.job.drivecopy.creating_timer_from = txn.now;
            }
            if props.cancel_requested == Some(true) {
                txn.job.properties.cancel_requested = true;
            }
            Ok(())
        })
    }

    /// Drives arrive at the data centre in one package (§6.1 error events, §6.2), allowed in
    /// `Creating` through `Packaging`.
    ///
    /// - A listed drive that is `Specified` or `NeverReceived` becomes `Received`; in `Packaging`
    ///   it arrived too late to copy, which is recorded as an error.
    /// - Listed drives not in the package become `NeverReceived` (from `Shipping` on).
    /// - An unlisted drive of an import job is recorded as an extra drive: never processed,
    ///   returned with the job.
    /// - An export job's drives are added in `Received` (up to 10; more are extra drives).
    /// - In `Creating` arrivals are recorded but nothing is processed until the job is `Shipping`.
    ///
    /// The job is `Received` once no listed drive is `Specified` and at least one has arrived.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] in `Completed`, `Closed` or `Faulted`;
    /// [`JobError::DriveState`] for a drive that has already arrived; [`JobError::DuplicateDrive`]
    /// for an id given twice or an extra drive already recorded; [`JobError::DriveId`],
    /// [`JobError::DriveField`] for a malformed id.
    pub fn receive_drives<S: AsRef<str>>(
        &mut self,
        drive_ids: &[S],
        now: OffsetDateTime,
    ) -> Result<Changes> {
        self.apply(now, |txn| {
            let state = txn.state();
            if matches!(
                state,
                JobState::Completed | JobState::Closed | JobState::Faulted
            ) {
                return Err(txn.refuse("receive drives for"));
            }
            let mut seen = BTreeSet::new();
            for id in drive_ids {
                let id = id.as_ref();
                check_drive_id(&txn.job.name, id)?;
                if !seen.insert(id) {
                    return Err(JobError::DuplicateDrive {
                        job: txn.name(),
                        drive: id.to_owned(),
                    });
                }
                txn.receive_one(id)?;
            }
            if state != JobState::Creating {
                let specified: Vec<usize> = (0..txn.job.properties.drive_list.len())
                    .filter(|&i| txn.job.properties.drive_list[i].state == DriveState::Specified)
                    .collect();
                for index in specified {
                    txn.set_drive(index, DriveState::NeverReceived);
                }
            }
            Ok(())
        })
    }

    /// A drive starts copying (§6.1 `Transferring`, §6.2): the drive goes `Received` →
    /// `Transferring`, and the job `Received` → `Transferring`.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] unless the job is `Received` or
    /// `Transferring`; [`JobError::Cancelled`] when cancellation was requested (the copy is
    /// skipped); [`JobError::UnknownDrive`]; [`JobError::DriveState`] unless the drive is
    /// `Received`.
    pub fn start_copy(&mut self, drive_id: &str, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            if !matches!(txn.state(), JobState::Received | JobState::Transferring) {
                return Err(txn.refuse("start copying a drive of"));
            }
            let index = txn.drive_index(drive_id)?;
            if txn.job.properties.cancel_requested {
                return Err(JobError::Cancelled {
                    job: txn.name(),
                    drive: drive_id.to_owned(),
                });
            }
            if txn.job.properties.drive_list[index].state != DriveState::Received {
                return Err(txn.drive_refuse(index, "start copying"));
            }
            let drive = &mut txn.job.properties.drive_list[index];
            drive.copy_status = None;
            drive.percent_complete = 0;
            drive.bytes_succeeded = 0;
            txn.set_drive(index, DriveState::Transferring);
            txn.set_job(JobState::Transferring);
            Ok(())
        })
    }

    /// Progress of a drive copy (§4.1 `percentComplete`, `bytesSucceeded`). `total_bytes`, when
    /// known, weights the drive in the job's percentComplete.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::UnknownDrive`]; [`JobError::DriveState`] unless the
    /// drive is `Transferring`; [`JobError::Percent`] above 100.
    pub fn record_progress(
        &mut self,
        drive_id: &str,
        percent_complete: u8,
        bytes_succeeded: u64,
        total_bytes: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Changes> {
        self.apply(now, |txn| {
            let index = txn.drive_index(drive_id)?;
            if txn.job.properties.drive_list[index].state != DriveState::Transferring {
                return Err(txn.drive_refuse(index, "record progress of"));
            }
            if percent_complete > 100 {
                return Err(JobError::Percent {
                    job: txn.name(),
                    drive: drive_id.to_owned(),
                    percent: percent_complete,
                });
            }
            let drive = &mut txn.job.properties.drive_list[index];
            drive.percent_complete = percent_complete;
            drive.bytes_succeeded = bytes_succeeded;
            if total_bytes.is_some() {
                txn.drive_book(drive_id).total_bytes = total_bytes;
            }
            Ok(())
        })
    }

    /// A drive copy ends (§6.2 derivation): copy status `Completed` gives `Completed`, anything
    /// else (`CompletedWithWarnings`, `CompletedWithErrors`, a drive-level failure) gives
    /// `CompletedMoreInfo` with the status as `copyStatus`. The log URIs, bytesSucceeded and (export)
    /// incompleteBlobListUri are recorded, and the drive's percentComplete becomes 100. When every
    /// received drive is done the job moves to `Packaging`. Allowed while the job is `Faulted`, so
    /// that a copy in flight can land its result.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::UnknownDrive`]; [`JobError::DriveState`] unless the
    /// drive is `Transferring`.
    pub fn finish_copy(
        &mut self,
        drive_id: &str,
        outcome: CopyOutcome,
        now: OffsetDateTime,
    ) -> Result<Changes> {
        self.apply(now, |txn| {
            let index = txn.drive_index(drive_id)?;
            if txn.job.properties.drive_list[index].state != DriveState::Transferring {
                return Err(txn.drive_refuse(index, "finish copying"));
            }
            let to = outcome.status.drive_state();
            let drive = &mut txn.job.properties.drive_list[index];
            drive.copy_status = Some(outcome.status);
            drive.bytes_succeeded = outcome.bytes_succeeded;
            drive.percent_complete = 100;
            if outcome.error_log_uri.is_some() {
                drive.error_log_uri = outcome.error_log_uri;
            }
            if outcome.verbose_log_uri.is_some() {
                drive.verbose_log_uri = outcome.verbose_log_uri;
            }
            if outcome.manifest_uri.is_some() {
                drive.manifest_uri = outcome.manifest_uri;
            }
            if outcome.incomplete_blob_list_uri.is_some() {
                txn.job.properties.incomplete_blob_list_uri = outcome.incomplete_blob_list_uri;
            }
            txn.set_drive(index, to);
            Ok(())
        })
    }

    /// An operator faults the job with a reason (§6.1 `Faulted`), from `Creating` through
    /// `Packaging`. A fault while the job is being processed (`Received`, `Transferring`,
    /// `Packaging`) is an error for the Completed-or-Closed decision.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] in `Completed`, `Closed` or `Faulted`.
    pub fn fault(&mut self, reason: &str, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            let state = txn.state();
            if matches!(
                state,
                JobState::Completed | JobState::Closed | JobState::Faulted
            ) {
                return Err(txn.refuse("fault"));
            }
            if matches!(
                state,
                JobState::Received | JobState::Transferring | JobState::Packaging
            ) {
                txn.record_error(ErrorEvent::JobFault {
                    reason: reason.to_owned(),
                    at: txn.now,
                });
            }
            txn.job.drivecopy.fault = Some(Fault {
                reason: reason.to_owned(),
                return_to: state,
                at: txn.now,
            });
            txn.set_job(JobState::Faulted);
            Ok(())
        })
    }

    /// An operator resolves the job's fault: it returns to the state it left (the timers of
    /// `Creating` and `Shipping` restart), then continues as the rules say (for example to
    /// `Packaging` if every drive finished meanwhile).
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] unless the job is `Faulted`.
    pub fn resolve(&mut self, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            let Some(fault) = txn.job.drivecopy.fault.take() else {
                return Err(txn.refuse("resolve"));
            };
            if txn.state() != JobState::Faulted {
                return Err(txn.refuse("resolve"));
            }
            txn.set_job(fault.return_to);
            if fault.return_to == JobState::Creating {
                txn.job.drivecopy.creating_timer_from = txn.now;
            }
            if fault.return_to == JobState::Shipping
                && txn.job.drivecopy.operators_notified_at.is_some()
            {
                // Operators are in contact again: the 30 days without a response restart.
                txn.job.drivecopy.operators_notified_at = Some(txn.now);
            }
            Ok(())
        })
    }

    /// An operator faults a drive with a reason (§6.1 `Faulted`, §6.2), from `Received`,
    /// `Transferring`, `Completed` or `CompletedMoreInfo`. A drive fault is an error for the
    /// Completed-or-Closed decision.
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::UnknownDrive`]; [`JobError::DriveState`] in another
    /// drive state.
    pub fn fault_drive(
        &mut self,
        drive_id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Changes> {
        self.apply(now, |txn| {
            let index = txn.drive_index(drive_id)?;
            let state = txn.job.properties.drive_list[index].state;
            let return_to = match state {
                DriveState::Transferring => DriveState::Received,
                DriveState::Received | DriveState::Completed | DriveState::CompletedMoreInfo => {
                    state
                }
                _ => return Err(txn.drive_refuse(index, "fault")),
            };
            txn.record_error(ErrorEvent::DriveFault {
                drive_id: drive_id.to_owned(),
                reason: reason.to_owned(),
                at: txn.now,
            });
            let at = txn.now;
            txn.drive_book(drive_id).fault = Some(Fault {
                reason: reason.to_owned(),
                return_to,
                at,
            });
            txn.set_drive(index, DriveState::Faulted);
            Ok(())
        })
    }

    /// An operator resolves a drive's fault: it returns to the state it left, except that a drive
    /// faulted while `Transferring` returns to `Received` with its progress cleared (its copy must
    /// start again).
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::UnknownDrive`]; [`JobError::DriveState`] unless the
    /// drive is `Faulted`.
    pub fn resolve_drive(&mut self, drive_id: &str, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            let index = txn.drive_index(drive_id)?;
            if txn.job.properties.drive_list[index].state != DriveState::Faulted {
                return Err(txn.drive_refuse(index, "resolve"));
            }
            let fault = txn.drive_book(drive_id).fault.take();
            let to = fault.map_or(DriveState::Received, |f| f.return_to);
            if to == DriveState::Received {
                let drive = &mut txn.job.properties.drive_list[index];
                drive.copy_status = None;
                drive.percent_complete = 0;
                drive.bytes_succeeded = 0;
            }
            txn.set_drive(index, to);
            Ok(())
        })
    }

    /// The drives go back (§6.1 `Packaging` → `Completed` or `Closed`): every drive at the data
    /// centre becomes `ShippedBack`, extra drives go back too, returnPackage is recorded, and the
    /// job is `Completed` without errors or `Closed` with errors (see [`Job::has_errors`]).
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] unless the job is `Packaging`;
    /// [`JobError::DriveState`] while a drive is `Faulted`.
    pub fn ship_back(
        &mut self,
        package: PackageInformation,
        now: OffsetDateTime,
    ) -> Result<Changes> {
        self.apply(now, |txn| {
            if txn.state() != JobState::Packaging {
                return Err(txn.refuse("ship back"));
            }
            let drives = &txn.job.properties.drive_list;
            if let Some(index) = drives.iter().position(|d| d.state == DriveState::Faulted) {
                return Err(txn.drive_refuse(index, "ship back"));
            }
            let on_site: Vec<usize> = (0..drives.len())
                .filter(|&i| drives[i].state.is_on_site())
                .collect();
            for index in on_site {
                txn.set_drive(index, DriveState::ShippedBack);
            }
            for extra in &mut txn.job.drivecopy.extra_drives {
                extra.shipped_back = true;
            }
            txn.job.properties.return_package = Some(package);
            let end = if txn.job.has_errors() {
                JobState::Closed
            } else {
                JobState::Completed
            };
            txn.set_job(end);
            Ok(())
        })
    }

    /// Delete Job (§4.1 Jobs_Delete, §6.3), allowed only in `Creating`, `Completed` or `Closed`.
    /// The job is marked deleted; every later transition fails with [`JobError::Deleted`].
    ///
    /// # Errors
    /// [`JobError::Deleted`]; [`JobError::JobState`] in another state.
    pub fn delete(&mut self, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            if !matches!(
                txn.state(),
                JobState::Creating | JobState::Completed | JobState::Closed
            ) {
                return Err(txn.refuse("delete"));
            }
            txn.job.drivecopy.deleted_at = Some(txn.now);
            Ok(())
        })
    }
}

impl Txn {
    /// Record the arrival of one drive (see [`Job::receive_drives`]).
    fn receive_one(&mut self, id: &str) -> Result<()> {
        let state = self.state();
        let is_import = self.job.properties.job_type == JobType::Import;
        let listed = self
            .job
            .properties
            .drive_list
            .iter()
            .position(|d| d.drive_id == id);
        match listed {
            Some(index) => {
                let drive_state = self.job.properties.drive_list[index].state;
                let early = self
                    .job
                    .drivecopy
                    .drives
                    .get(id)
                    .is_some_and(|b| b.arrived_early_at.is_some());
                if !matches!(
                    drive_state,
                    DriveState::Specified | DriveState::NeverReceived
                ) || early
                {
                    return Err(self.drive_refuse(index, "receive"));
                }
                if state == JobState::Creating {
                    let now = self.now;
                    self.drive_book(id).arrived_early_at = Some(now);
                } else {
                    self.arrive(index, id);
                }
            }
            None if is_import || self.export_drive_count() >= MAX_DRIVES => self.add_extra(id)?,
            None if state == JobState::Creating => {
                if self.job.drivecopy.drives.contains_key(id) {
                    return Err(JobError::DuplicateDrive {
                        job: self.name(),
                        drive: id.to_owned(),
                    });
                }
                let now = self.now;
                self.drive_book(id).arrived_early_at = Some(now);
            }
            None => {
                self.add_drive(id, DriveState::Received);
                self.late_check(id);
            }
        }
        Ok(())
    }

    /// Drives of an export job: listed ones plus those recorded arriving before `Shipping`.
    fn export_drive_count(&self) -> usize {
        let early = self
            .job
            .drivecopy
            .drives
            .iter()
            .filter(|(id, book)| book.arrived_early_at.is_some() && self.job.drive(id).is_none())
            .count();
        self.job.properties.drive_list.len() + early
    }

    /// A listed drive is processed in: `Received`; an error if processing already ended.
    fn arrive(&mut self, index: usize, id: &str) {
        self.set_drive(index, DriveState::Received);
        self.late_check(id);
    }

    fn late_check(&mut self, id: &str) {
        if self.state() == JobState::Packaging {
            let at = self.now;
            self.record_error(ErrorEvent::LateArrival {
                drive_id: id.to_owned(),
                at,
            });
        }
    }

    fn add_extra(&mut self, id: &str) -> Result<()> {
        if self
            .job
            .drivecopy
            .extra_drives
            .iter()
            .any(|e| e.drive_id == id)
        {
            return Err(JobError::DuplicateDrive {
                job: self.name(),
                drive: id.to_owned(),
            });
        }
        self.job.drivecopy.extra_drives.push(ExtraDrive {
            drive_id: id.to_owned(),
            arrived_at: self.now,
            shipped_back: false,
        });
        Ok(())
    }

    /// On entering `Shipping`: drives recorded as arriving early are processed as a package.
    fn process_early_arrivals(&mut self) {
        let early: Vec<String> = self
            .job
            .drivecopy
            .drives
            .iter_mut()
            .filter_map(|(id, book)| book.arrived_early_at.take().map(|_| id.clone()))
            .collect();
        if early.is_empty() {
            return;
        }
        for id in &early {
            match self.drive_index(id) {
                Ok(index) => self.arrive(index, id),
                Err(_) => self.add_drive(id, DriveState::Received),
            }
        }
        let specified: Vec<usize> = (0..self.job.properties.drive_list.len())
            .filter(|&i| self.job.properties.drive_list[i].state == DriveState::Specified)
            .collect();
        for index in specified {
            self.set_drive(index, DriveState::NeverReceived);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use time::Duration;

    fn states(job: &Job) -> Vec<DriveState> {
        job.properties.drive_list.iter().map(|d| d.state).collect()
    }

    /// A two-drive import job moved to `Shipping`.
    fn shipping(clock: &mut FakeClock) -> Job {
        let mut job = import_job(&["D1", "D2"], clock);
        job.update(ship_update(), clock.advance(Duration::hours(1)))
            .expect("to Shipping");
        job
    }

    /// A two-drive import job with both drives received.
    fn received(clock: &mut FakeClock) -> Job {
        let mut job = shipping(clock);
        job.receive_drives(&["D1", "D2"], clock.advance(Duration::days(2)))
            .expect("receive");
        job
    }

    fn finish(job: &mut Job, drive: &str, status: CopyStatus, clock: &mut FakeClock) {
        job.finish_copy(
            drive,
            CopyOutcome::new(status),
            clock.advance(Duration::hours(3)),
        )
        .expect("finish copy");
    }

    /// Both drives copied with the given statuses; the job is `Packaging`.
    fn packaging(a: CopyStatus, b: CopyStatus, clock: &mut FakeClock) -> Job {
        let mut job = received(clock);
        job.start_copy("D1", clock.now()).expect("start D1");
        job.start_copy("D2", clock.now()).expect("start D2");
        finish(&mut job, "D1", a, clock);
        finish(&mut job, "D2", b, clock);
        assert_eq!(job.properties.state, JobState::Packaging);
        job
    }

    fn end_state(a: CopyStatus, b: CopyStatus) -> JobState {
        let mut clock = FakeClock::new();
        let mut job = packaging(a, b, &mut clock);
        job.ship_back(return_package(), clock.advance(Duration::days(1)))
            .expect("ship back");
        assert!(states(&job).iter().all(|s| *s == DriveState::ShippedBack));
        job.properties.state
    }

    #[test]
    fn shipping_is_refused_until_delivery_package_and_return_address_are_set() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        let before = job.clone();
        let mut update = ship_update();
        update.properties.delivery_package = None;
        let refused = job.update(update, clock.now());
        assert!(matches!(
            refused,
            Err(JobError::ShippingNeeds {
                missing: "deliveryPackage",
                ..
            })
        ));
        // Refused requests change nothing: the returnAddress sent with it was not kept.
        assert_eq!(job, before);

        let mut address_only = UpdateJobParameters::default();
        address_only.properties.return_address = ship_update().properties.return_address;
        job.update(address_only, clock.advance(Duration::hours(1)))
            .expect("address only");
        let mut state_only = ship_update();
        state_only.properties.return_address = None;
        state_only.properties.delivery_package = None;
        assert!(matches!(
            job.update(state_only.clone(), clock.now()),
            Err(JobError::ShippingNeeds {
                missing: "deliveryPackage",
                ..
            })
        ));
        let mut package_only = UpdateJobParameters::default();
        package_only.properties.delivery_package = ship_update().properties.delivery_package;
        job.update(package_only, clock.now()).expect("package only");
        let changes = job.update(state_only, clock.now()).expect("now allowed");
        assert_eq!(
            changes.transitions,
            vec![Change::Job {
                from: JobState::Creating,
                to: JobState::Shipping
            }]
        );
        assert_eq!(changes.version, 4, "create, address, package, state");
    }

    #[test]
    fn update_state_must_be_shipping_and_only_from_creating() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        assert!(matches!(
            job.update(ship_update(), clock.now()),
            Err(JobError::JobState {
                state: JobState::Shipping,
                ..
            })
        ));
        let mut other = UpdateJobParameters::default();
        other.properties.state = Some("Completed".into());
        assert!(matches!(
            job.update(other, clock.now()),
            Err(JobError::StateMustBeShipping { requested, .. }) if requested == "Completed"
        ));
    }

    #[test]
    fn update_in_creating_resets_the_14_day_timer() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        clock.advance(Duration::days(10));
        let tags = UpdateJobParameters {
            tags: Some([("k".to_owned(), "v".to_owned())].into()),
            ..UpdateJobParameters::default()
        };
        job.update(tags, clock.now()).expect("update");
        let changes = job.tick(clock.advance(Duration::days(13))).expect("tick");
        assert!(changes.timeouts.is_empty());
        assert!(!job.is_deleted());
        let changes = job.tick(clock.advance(Duration::days(1))).expect("tick");
        assert_eq!(
            changes.timeouts,
            vec![TimeoutEvent::Deleted {
                drives_to_return: vec![]
            }]
        );
        assert!(job.is_deleted());
    }

    #[test]
    fn cancel_requested_false_is_refused() {
        let clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        let mut update = UpdateJobParameters::default();
        update.properties.cancel_requested = Some(false);
        assert!(matches!(
            job.update(update, clock.now()),
            Err(JobError::CancelMustBeTrue { .. })
        ));
    }

    #[test]
    fn drive_list_may_be_replaced_only_in_creating() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        let mut update = UpdateJobParameters::default();
        update.properties.drive_list = Some(put_import(&["D7", "D8"]).properties.drive_list);
        job.update(update.clone(), clock.now())
            .expect("in Creating");
        assert_eq!(job.properties.drive_list.len(), 2);
        assert!(job.drivecopy.drives.contains_key("D7"));
        job.update(ship_update(), clock.advance(Duration::hours(1)))
            .expect("ship");
        assert!(matches!(
            job.update(update, clock.now()),
            Err(JobError::JobState {
                state: JobState::Shipping,
                ..
            })
        ));
    }

    // ---- Job-state table (§6.1), one test per row ----

    #[test]
    fn row_creating_is_deleted_after_14_days() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        assert!(job
            .tick(clock.advance(Duration::days(14) - Duration::seconds(1)))
            .expect("tick")
            .timeouts
            .is_empty());
        let version = job.drivecopy.version;
        assert_eq!(version, 1, "an idle tick does not bump the version");
        let changes = job.tick(clock.advance(Duration::seconds(1))).expect("tick");
        assert!(matches!(
            changes.timeouts.as_slice(),
            [TimeoutEvent::Deleted { .. }]
        ));
        assert!(matches!(
            job.tick(clock.now()),
            Err(JobError::Deleted { .. })
        ));
    }

    #[test]
    fn row_shipping_notifies_operators_after_14_days_and_closes_after_30_more() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        let changes = job.tick(clock.advance(Duration::days(14))).expect("tick");
        assert_eq!(
            changes.timeouts,
            vec![TimeoutEvent::OperatorsNotified {
                never_received: vec!["D1".into(), "D2".into()]
            }]
        );
        assert_eq!(states(&job), vec![DriveState::NeverReceived; 2]);
        assert_eq!(job.properties.state, JobState::Shipping);
        assert!(job
            .tick(clock.advance(Duration::days(29)))
            .expect("tick")
            .timeouts
            .is_empty());
        let changes = job.tick(clock.advance(Duration::days(1))).expect("tick");
        assert_eq!(changes.timeouts, vec![TimeoutEvent::Closed]);
        assert_eq!(job.properties.state, JobState::Closed);
        assert!(job.has_errors());
    }

    #[test]
    fn row_shipping_timeouts_do_not_depend_on_tick_frequency() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        let changes = job.tick(clock.advance(Duration::days(200))).expect("tick");
        assert_eq!(
            changes.timeouts.len(),
            3,
            "notified, closed, deleted: {changes:?}"
        );
        assert!(matches!(
            changes.timeouts.last(),
            Some(TimeoutEvent::Deleted { .. })
        ));
        assert!(job.is_deleted());
    }

    #[test]
    fn row_received_when_all_drives_arrive() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        let changes = job
            .receive_drives(&["D1", "D2"], clock.now())
            .expect("receive");
        assert_eq!(job.properties.state, JobState::Received);
        assert_eq!(states(&job), vec![DriveState::Received; 2]);
        assert!(changes.transitions.contains(&Change::Job {
            from: JobState::Shipping,
            to: JobState::Received
        }));
    }

    #[test]
    fn row_transferring_once_a_drive_starts_copying() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        assert_eq!(job.properties.state, JobState::Transferring);
        assert_eq!(
            states(&job),
            vec![DriveState::Transferring, DriveState::Received]
        );
        // A second start of the same drive is refused.
        assert!(matches!(
            job.start_copy("D1", clock.now()),
            Err(JobError::DriveState {
                state: DriveState::Transferring,
                ..
            })
        ));
        assert!(matches!(
            job.start_copy("D9", clock.now()),
            Err(JobError::UnknownDrive { .. })
        ));
    }

    #[test]
    fn row_packaging_once_every_received_drive_finished() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        assert_eq!(
            job.properties.state,
            JobState::Transferring,
            "D2 not copied yet"
        );
        job.start_copy("D2", clock.now()).expect("start");
        finish(&mut job, "D2", CopyStatus::Completed, &mut clock);
        assert_eq!(job.properties.state, JobState::Packaging);
        assert_eq!(job.properties.percent_complete, 100);
    }

    #[test]
    fn row_completed_without_errors_and_warnings_alone_still_complete() {
        assert_eq!(
            end_state(CopyStatus::Completed, CopyStatus::Completed),
            JobState::Completed
        );
        assert_eq!(
            end_state(CopyStatus::Completed, CopyStatus::CompletedWithWarnings),
            JobState::Completed
        );
    }

    #[test]
    fn row_closed_with_errors() {
        assert_eq!(
            end_state(CopyStatus::Completed, CopyStatus::CompletedWithErrors),
            JobState::Closed
        );
        assert_eq!(
            end_state(CopyStatus::BitLockerKeyInvalid, CopyStatus::Completed),
            JobState::Closed
        );
    }

    #[test]
    fn row_closed_when_a_drive_never_arrived() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.receive_drives(&["D1"], clock.now()).expect("receive");
        assert_eq!(
            states(&job),
            vec![DriveState::Received, DriveState::NeverReceived]
        );
        assert_eq!(job.properties.state, JobState::Received);
        job.start_copy("D1", clock.now()).expect("start");
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        assert_eq!(job.properties.state, JobState::Packaging);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(
            states(&job),
            vec![DriveState::ShippedBack, DriveState::NeverReceived]
        );
        assert_eq!(job.properties.state, JobState::Closed);
    }

    #[test]
    fn row_closed_after_a_fault_during_processing() {
        let mut clock = FakeClock::new();
        let mut job = packaging(CopyStatus::Completed, CopyStatus::Completed, &mut clock);
        job.fault("carrier lost the return label", clock.now())
            .expect("fault");
        job.resolve(clock.now()).expect("resolve");
        assert_eq!(job.properties.state, JobState::Packaging);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(job.properties.state, JobState::Closed);
    }

    #[test]
    fn row_completed_and_closed_are_deleted_after_90_days() {
        for (a, end) in [
            (CopyStatus::Completed, JobState::Completed),
            (CopyStatus::CompletedWithErrors, JobState::Closed),
        ] {
            let mut clock = FakeClock::new();
            let mut job = packaging(a, CopyStatus::Completed, &mut clock);
            job.ship_back(return_package(), clock.now())
                .expect("ship back");
            assert_eq!(job.properties.state, end);
            assert!(job
                .tick(clock.advance(Duration::days(89)))
                .expect("tick")
                .timeouts
                .is_empty());
            let changes = job.tick(clock.advance(Duration::days(1))).expect("tick");
            assert!(matches!(
                changes.timeouts.as_slice(),
                [TimeoutEvent::Deleted { .. }]
            ));
            assert!(job.is_deleted());
        }
    }

    #[test]
    fn row_faulted_round_trip() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        let changes = job.fault("drive bay failure", clock.now()).expect("fault");
        assert_eq!(
            changes.transitions,
            vec![Change::Job {
                from: JobState::Transferring,
                to: JobState::Faulted
            }]
        );
        assert_eq!(
            job.drivecopy.fault.as_ref().map(|f| f.reason.as_str()),
            Some("drive bay failure")
        );
        assert!(matches!(
            job.fault("again", clock.now()),
            Err(JobError::JobState { .. })
        ));
        assert!(matches!(
            job.start_copy("D2", clock.now()),
            Err(JobError::JobState { .. })
        ));
        // The copy in flight may still land its result.
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        job.resolve(clock.now()).expect("resolve");
        assert_eq!(job.properties.state, JobState::Transferring);
        assert!(job.drivecopy.fault.is_none());
        assert!(matches!(
            job.resolve(clock.now()),
            Err(JobError::JobState { .. })
        ));
    }

    #[test]
    fn resolving_a_notified_shipping_job_restarts_the_30_days() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.tick(clock.advance(Duration::days(14)))
            .expect("notified");
        job.fault(
            "customer reached; new tracking number coming",
            clock.advance(Duration::days(25)),
        )
        .expect("fault");
        job.resolve(clock.advance(Duration::days(10)))
            .expect("resolve");
        assert_eq!(job.properties.state, JobState::Shipping);
        assert!(job
            .tick(clock.advance(Duration::days(29)))
            .expect("tick")
            .timeouts
            .is_empty());
        let changes = job.tick(clock.advance(Duration::days(1))).expect("tick");
        assert_eq!(changes.timeouts, vec![TimeoutEvent::Closed]);
    }

    #[test]
    fn faulted_creating_job_resolves_to_creating_and_restarts_its_timer() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        job.fault(
            "customer asked for a hold",
            clock.advance(Duration::days(13)),
        )
        .expect("fault");
        job.resolve(clock.advance(Duration::days(5)))
            .expect("resolve");
        assert_eq!(job.properties.state, JobState::Creating);
        assert!(job
            .tick(clock.advance(Duration::days(13)))
            .expect("tick")
            .timeouts
            .is_empty());
        assert!(
            !job.has_errors(),
            "a fault before processing is not an error"
        );
    }

    // ---- Drive-state table (§6.2) ----

    #[test]
    fn drive_rows_specified_received_transferring_completed_shipped_back() {
        let clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        assert_eq!(states(&job), vec![DriveState::Specified]);
        job.update(ship_update(), clock.now()).expect("ship");
        job.receive_drives(&["D1"], clock.now()).expect("receive");
        assert_eq!(states(&job), vec![DriveState::Received]);
        job.start_copy("D1", clock.now()).expect("start");
        assert_eq!(states(&job), vec![DriveState::Transferring]);
        let mut outcome = CopyOutcome::new(CopyStatus::Completed);
        outcome.bytes_succeeded = 4096;
        outcome.error_log_uri = Some("https://a/waimportexport/waies/job1_D1_x_error.xml".into());
        job.finish_copy("D1", outcome, clock.now()).expect("finish");
        let drive = job.drive("D1").expect("listed");
        assert_eq!(drive.state, DriveState::Completed);
        assert_eq!(drive.copy_status, Some(CopyStatus::Completed));
        assert_eq!(drive.bytes_succeeded, 4096);
        assert!(drive.error_log_uri.is_some());
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(states(&job), vec![DriveState::ShippedBack]);
        assert_eq!(job.properties.return_package, Some(return_package()));
    }

    #[test]
    fn drive_rows_completed_more_info_for_warnings_errors_and_failures() {
        for status in [
            CopyStatus::CompletedWithWarnings,
            CopyStatus::CompletedWithErrors,
            CopyStatus::ManifestCorrupted,
        ] {
            let mut clock = FakeClock::new();
            let job = packaging(status.clone(), CopyStatus::Completed, &mut clock);
            let drive = job.drive("D1").expect("listed");
            assert_eq!(drive.state, DriveState::CompletedMoreInfo, "{status}");
            assert_eq!(drive.copy_status.as_ref(), Some(&status));
        }
    }

    #[test]
    fn drive_row_never_received_then_received() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.receive_drives(&["D1"], clock.now())
            .expect("package without D2");
        assert_eq!(
            job.drive("D2").map(|d| d.state),
            Some(DriveState::NeverReceived)
        );
        job.start_copy("D1", clock.now()).expect("start D1");
        job.receive_drives(&["D2"], clock.advance(Duration::days(3)))
            .expect("D2 turns up");
        assert_eq!(job.drive("D2").map(|d| d.state), Some(DriveState::Received));
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        assert_eq!(
            job.properties.state,
            JobState::Transferring,
            "D2 still to copy"
        );
        job.start_copy("D2", clock.now()).expect("start D2");
        finish(&mut job, "D2", CopyStatus::Completed, &mut clock);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(job.properties.state, JobState::Completed);
        // Receiving it again is refused.
        assert!(matches!(
            job.receive_drives(&["D2"], clock.now()),
            Err(JobError::JobState { .. })
        ));
    }

    #[test]
    fn drive_row_never_received_after_timeout_then_received() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.tick(clock.advance(Duration::days(15))).expect("tick");
        assert_eq!(states(&job), vec![DriveState::NeverReceived; 2]);
        job.receive_drives(&["D1", "D2"], clock.now())
            .expect("arrive late");
        assert_eq!(job.properties.state, JobState::Received);
        assert!(job
            .tick(clock.advance(Duration::days(60)))
            .expect("tick")
            .timeouts
            .is_empty());
    }

    #[test]
    fn drive_row_export_drives_appear_received() {
        let clock = FakeClock::new();
        let mut job = Job::create("e", &scope(), put_export(), clock.now()).expect("valid");
        job.update(ship_update(), clock.now()).expect("ship");
        let changes = job
            .receive_drives(&["X1", "X2"], clock.now())
            .expect("receive");
        assert!(changes.transitions.contains(&Change::Drive {
            drive_id: "X1".into(),
            from: None,
            to: DriveState::Received
        }));
        assert_eq!(job.properties.state, JobState::Received);
        job.start_copy("X1", clock.now()).expect("start");
        let mut outcome = CopyOutcome::new(CopyStatus::Completed);
        outcome.incomplete_blob_list_uri = Some("https://a/c/incomplete.xml".into());
        job.finish_copy("X1", outcome, clock.now()).expect("finish");
        assert!(job.properties.incomplete_blob_list_uri.is_some());
    }

    #[test]
    fn drive_fault_round_trip_restarts_the_copy() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        job.record_progress("D1", 40, 400, Some(1000), clock.now())
            .expect("progress");
        job.fault_drive("D1", "read errors; reseat drive", clock.now())
            .expect("fault");
        assert_eq!(job.drive("D1").map(|d| d.state), Some(DriveState::Faulted));
        assert!(matches!(
            job.record_progress("D1", 50, 500, None, clock.now()),
            Err(JobError::DriveState {
                state: DriveState::Faulted,
                ..
            })
        ));
        job.resolve_drive("D1", clock.now()).expect("resolve");
        let drive = job.drive("D1").expect("listed");
        assert_eq!(drive.state, DriveState::Received);
        assert_eq!(drive.percent_complete, 0);
        assert!(matches!(
            job.resolve_drive("D1", clock.now()),
            Err(JobError::DriveState {
                state: DriveState::Received,
                ..
            })
        ));
        job.start_copy("D1", clock.now()).expect("restart");
    }

    #[test]
    fn ship_back_is_refused_while_a_drive_is_faulted() {
        let mut clock = FakeClock::new();
        let mut job = packaging(CopyStatus::Completed, CopyStatus::Completed, &mut clock);
        job.fault_drive("D2", "cracked casing", clock.now())
            .expect("fault");
        assert!(matches!(
            job.ship_back(return_package(), clock.now()),
            Err(JobError::DriveState {
                state: DriveState::Faulted,
                ..
            })
        ));
        job.resolve_drive("D2", clock.now()).expect("resolve");
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(
            job.properties.state,
            JobState::Closed,
            "a drive fault is an error"
        );
    }

    // ---- Error events (§6.1) ----

    #[test]
    fn error_row_drives_arriving_while_creating_wait_for_shipping() {
        let clock = FakeClock::new();
        let mut job = import_job(&["D1", "D2"], &clock);
        job.receive_drives(&["D1"], clock.now()).expect("recorded");
        assert_eq!(
            states(&job),
            vec![DriveState::Specified; 2],
            "nothing processed"
        );
        assert!(matches!(
            job.start_copy("D1", clock.now()),
            Err(JobError::JobState {
                state: JobState::Creating,
                ..
            })
        ));
        job.update(ship_update(), clock.now()).expect("ship");
        assert_eq!(
            states(&job),
            vec![DriveState::Received, DriveState::NeverReceived]
        );
        assert_eq!(job.properties.state, JobState::Received);
    }

    #[test]
    fn error_row_drives_arriving_while_creating_are_returned_when_the_job_expires() {
        let mut clock = FakeClock::new();
        let mut job = import_job(&["D1", "D2"], &clock);
        job.receive_drives(&["D2", "EXTRA"], clock.now())
            .expect("recorded");
        let changes = job.tick(clock.advance(Duration::days(14))).expect("tick");
        assert_eq!(
            changes.timeouts,
            vec![TimeoutEvent::Deleted {
                drives_to_return: vec!["D2".into(), "EXTRA".into()]
            }]
        );
    }

    #[test]
    fn error_row_bad_return_address_while_transferring_or_packaging_faults_the_job() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        job.fault("return address undeliverable", clock.now())
            .expect("fault");
        let mut fix = UpdateJobParameters::default();
        fix.properties.return_address = ship_update().properties.return_address;
        assert!(matches!(
            job.update(fix, clock.now()),
            Err(JobError::JobState { .. })
        ));
        job.resolve(clock.now()).expect("resolve");
        assert_eq!(job.properties.state, JobState::Transferring);
        assert!(job.has_errors());
    }

    #[test]
    fn error_row_extra_drive_is_recorded_never_processed_and_returned() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.receive_drives(&["D1", "D2", "STRAY"], clock.now())
            .expect("receive");
        assert_eq!(job.properties.drive_list.len(), 2);
        assert_eq!(job.drivecopy.extra_drives.len(), 1);
        assert!(matches!(
            job.start_copy("STRAY", clock.now()),
            Err(JobError::UnknownDrive { .. })
        ));
        assert!(matches!(
            job.receive_drives(&["STRAY"], clock.now()),
            Err(JobError::DuplicateDrive { .. })
        ));
        for drive in ["D1", "D2"] {
            job.start_copy(drive, clock.now()).expect("start");
            finish(&mut job, drive, CopyStatus::Completed, &mut clock);
        }
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert!(job.drivecopy.extra_drives.iter().all(|e| e.shipped_back));
        assert_eq!(
            job.properties.state,
            JobState::Completed,
            "an extra drive is not an error"
        );
    }

    #[test]
    fn late_arrival_in_packaging_goes_back_uncopied_as_an_error() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.receive_drives(&["D1"], clock.now()).expect("receive");
        job.start_copy("D1", clock.now()).expect("start");
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        assert_eq!(job.properties.state, JobState::Packaging);
        job.receive_drives(&["D2"], clock.now()).expect("late");
        assert_eq!(job.properties.state, JobState::Packaging);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(states(&job), vec![DriveState::ShippedBack; 2]);
        assert_eq!(job.properties.state, JobState::Closed);
    }

    #[test]
    fn export_drives_beyond_ten_are_extra_even_when_they_arrive_early() {
        let clock = FakeClock::new();
        let mut job = Job::create("e", &scope(), put_export(), clock.now()).expect("valid");
        let ids: Vec<String> = (0..12).map(|i| format!("X{i}")).collect();
        job.receive_drives(&ids, clock.now()).expect("early");
        job.update(ship_update(), clock.now()).expect("ship");
        assert_eq!(job.properties.drive_list.len(), 10);
        assert_eq!(job.drivecopy.extra_drives.len(), 2);
    }

    #[test]
    fn an_early_drive_dropped_from_the_drive_list_becomes_an_extra_drive() {
        let clock = FakeClock::new();
        let mut job = import_job(&["D1", "D2"], &clock);
        job.receive_drives(&["D2"], clock.now()).expect("early");
        let update = UpdateJobParameters {
            properties: UpdateJobProperties {
                drive_list: Some(put_import(&["D1"]).properties.drive_list),
                ..UpdateJobProperties::default()
            },
            ..UpdateJobParameters::default()
        };
        job.update(update, clock.now()).expect("replace");
        assert_eq!(job.drivecopy.extra_drives.len(), 1);
        assert_eq!(job.drivecopy.extra_drives[0].drive_id, "D2");
    }

    // ---- Cancellation (§6.3 as narrowed by issue 6) ----

    #[test]
    fn cancel_in_creating_or_shipping_before_any_arrival_completes_the_job() {
        let mut clock = FakeClock::new();
        let mut creating = import_job(&["D1"], &clock);
        creating
            .update(cancel_update(), clock.now())
            .expect("cancel");
        assert_eq!(creating.properties.state, JobState::Completed);
        assert!(creating.properties.cancel_requested);
        assert!(!creating.has_errors());

        let mut job = shipping(&mut clock);
        job.update(cancel_update(), clock.now()).expect("cancel");
        assert_eq!(job.properties.state, JobState::Completed);
    }

    /// Found by the property test: a cancelled job whose drives were declared `NeverReceived`
    /// by the shipping timeout must end `Completed`, not `Completed` with errors.
    #[test]
    fn regression_cancel_after_never_received_timeout_completes_without_errors() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.tick(clock.advance(Duration::days(14))).expect("tick");
        job.update(cancel_update(), clock.now()).expect("cancel");
        assert_eq!(job.properties.state, JobState::Completed);
        assert!(!job.has_errors());
    }

    /// Found by the property test: a cancelled job with one drive received and one never
    /// received ships the received one back and ends `Completed`.
    #[test]
    fn regression_cancel_with_a_missing_drive_ships_back_and_completes() {
        let mut clock = FakeClock::new();
        let mut job = shipping(&mut clock);
        job.receive_drives(&["D1"], clock.now()).expect("receive");
        job.update(cancel_update(), clock.now()).expect("cancel");
        assert_eq!(job.properties.state, JobState::Packaging);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(
            states(&job),
            vec![DriveState::ShippedBack, DriveState::NeverReceived]
        );
        assert_eq!(job.properties.state, JobState::Completed);
    }

    #[test]
    fn cancel_in_received_skips_the_copy_and_ends_completed() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        let changes = job.update(cancel_update(), clock.now()).expect("cancel");
        assert_eq!(
            changes.transitions,
            vec![Change::Job {
                from: JobState::Received,
                to: JobState::Packaging
            }]
        );
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(job.properties.state, JobState::Completed);
        assert_eq!(states(&job), vec![DriveState::ShippedBack; 2]);
    }

    #[test]
    fn cancel_in_transferring_lets_copies_in_flight_finish_and_skips_the_rest() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        job.update(cancel_update(), clock.now()).expect("cancel");
        assert!(matches!(
            job.start_copy("D2", clock.now()),
            Err(JobError::Cancelled { .. })
        ));
        assert_eq!(job.properties.state, JobState::Transferring);
        finish(&mut job, "D1", CopyStatus::Completed, &mut clock);
        assert_eq!(job.properties.state, JobState::Packaging);
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        assert_eq!(job.properties.state, JobState::Completed);
    }

    #[test]
    fn cancel_with_drives_recorded_early_follows_the_same_transitions() {
        let clock = FakeClock::new();
        let mut job = import_job(&["D1"], &clock);
        job.receive_drives(&["D1"], clock.now()).expect("early");
        job.update(cancel_update(), clock.now()).expect("cancel");
        assert_eq!(
            job.properties.state,
            JobState::Creating,
            "a drive is on site"
        );
        job.update(ship_update(), clock.now()).expect("ship");
        assert_eq!(job.properties.state, JobState::Packaging);
    }

    #[test]
    fn cancel_is_refused_from_packaging_on_and_while_faulted() {
        let mut clock = FakeClock::new();
        let mut job = packaging(CopyStatus::Completed, CopyStatus::Completed, &mut clock);
        let refused = |job: &mut Job, state: JobState| {
            let before = job.clone();
            let result = job.update(cancel_update(), FakeClock::new().now());
            assert!(
                matches!(result, Err(JobError::JobState { event: "cancel", state: s, .. }) if s == state),
                "{state}"
            );
            assert_eq!(*job, before);
        };
        refused(&mut job, JobState::Packaging);
        job.fault("hold", clock.now()).expect("fault");
        refused(&mut job, JobState::Faulted);
        job.resolve(clock.now()).expect("resolve");
        job.ship_back(return_package(), clock.now())
            .expect("ship back");
        refused(&mut job, JobState::Closed);
        let mut done = packaging(CopyStatus::Completed, CopyStatus::Completed, &mut clock);
        done.ship_back(return_package(), clock.now())
            .expect("ship back");
        refused(&mut done, JobState::Completed);
    }

    // ---- Delete ----

    #[test]
    fn delete_only_in_creating_completed_or_closed() {
        let mut clock = FakeClock::new();
        let mut creating = import_job(&["D1"], &clock);
        creating.delete(clock.now()).expect("delete in Creating");
        assert!(matches!(
            creating.delete(clock.now()),
            Err(JobError::Deleted { .. })
        ));
        assert!(matches!(
            creating.update(cancel_update(), clock.now()),
            Err(JobError::Deleted { .. })
        ));

        let mut job = received(&mut clock);
        assert!(matches!(
            job.delete(clock.now()),
            Err(JobError::JobState {
                event: "delete",
                state: JobState::Received,
                ..
            })
        ));
        job.start_copy("D1", clock.now()).expect("start");
        assert!(matches!(
            job.delete(clock.now()),
            Err(JobError::JobState { .. })
        ));
        let mut closed = packaging(
            CopyStatus::CompletedWithErrors,
            CopyStatus::Completed,
            &mut clock,
        );
        assert!(matches!(
            closed.delete(clock.now()),
            Err(JobError::JobState { .. })
        ));
        closed
            .ship_back(return_package(), clock.now())
            .expect("ship back");
        closed.delete(clock.now()).expect("delete in Closed");
    }

    // ---- percentComplete and views ----

    #[test]
    fn percent_complete_is_weighted_by_bytes_where_known() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        job.start_copy("D2", clock.now()).expect("start");
        job.record_progress("D1", 50, 50, None, clock.now())
            .expect("progress");
        assert_eq!(
            job.properties.percent_complete, 25,
            "unweighted while D2's size is unknown"
        );
        job.record_progress("D2", 0, 0, Some(300), clock.now())
            .expect("progress");
        job.record_progress("D1", 100, 100, Some(100), clock.now())
            .expect("progress");
        assert_eq!(
            job.properties.percent_complete, 25,
            "100% of 100 bytes, 0% of 300"
        );
        job.record_progress("D2", 100, 300, Some(300), clock.now())
            .expect("progress");
        assert_eq!(job.properties.percent_complete, 100);
        assert!(matches!(
            job.record_progress("D2", 101, 300, None, clock.now()),
            Err(JobError::Percent { percent: 101, .. })
        ));
    }

    #[test]
    fn responses_leave_out_bit_locker_keys_and_list_leaves_out_drives() {
        let clock = FakeClock::new();
        let job = import_job(&["D1"], &clock);
        let shown = serde_json::to_value(job.to_response(false)).expect("json");
        assert_eq!(shown["type"], "Microsoft.ImportExport/jobs");
        assert_eq!(shown["name"], "job1");
        assert_eq!(shown["location"], "West US");
        assert_eq!(shown["properties"]["driveList"][0]["driveId"], "D1");
        assert_eq!(shown["properties"]["driveList"][0]["state"], "Specified");
        assert!(shown["properties"]["driveList"][0]
            .get("bitLockerKey")
            .is_none());
        assert!(shown.get("drivecopy").is_none());
        let operator = serde_json::to_value(job.to_response(true)).expect("json");
        assert_eq!(operator["properties"]["driveList"][0]["bitLockerKey"], KEY);
        let listed = serde_json::to_value(job.to_list_item()).expect("json");
        assert!(listed["properties"].get("driveList").is_none());
        assert_eq!(listed["properties"]["state"], "Creating");
        assert!(!format!("{job:?}").contains("238810"));
    }

    #[test]
    fn the_job_document_round_trips_through_json() {
        let mut clock = FakeClock::new();
        let mut job = received(&mut clock);
        job.start_copy("D1", clock.now()).expect("start");
        job.fault_drive("D1", "x", clock.now()).expect("fault");
        let text = serde_json::to_string(&job).expect("json");
        let back: Job = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, job);
    }
}
