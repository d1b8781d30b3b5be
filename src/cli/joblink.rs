//! `import --job NAME --job-store STORE`: the copy engine feeding an Import/Export job.
//!
//! Before copying, the drive (and so the job) moves to `Transferring`; a drive that is already
//! `Transferring` is an interrupted run being resumed. While copying, `percentComplete` and
//! `bytesSucceeded` are recorded at most every [`RECORD_INTERVAL`]. At the end, the drive's final
//! state, copy status and log URIs are recorded; the job moves to `Packaging` when its last drive
//! finishes (the `job` module's rule). A cancelled job, or a job or drive whose state does not
//! allow copying, refuses the copy before anything is read.
//!
//! Every write goes through `jobstore::update`, conditional on the version read, so copy stations
//! importing other drives of the same job at the same time lose no update.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use drivecopy::engine::import::LogLevel;
use drivecopy::events::{warning, Event, EventSink};
use drivecopy::job::{CopyOutcome, DriveState, DriveStatus, Job, JobError};
use drivecopy::jobstore::{update, JobStore, JobStoreError};

use super::exit::Exit;
use super::output::bare_result;

/// The least time between two progress records in the job.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(5);

/// One drive of one job in a job store.
pub struct JobLink {
    store: Arc<dyn JobStore>,
    job: String,
    drive_id: String,
}

/// What the job says about this drive's copy (ARM JobDetails and DriveStatus, §4.1); flags
/// given on the command line win over these.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// `diagnosticsPath`.
    pub diagnostics_path: String,
    /// `logLevel`.
    pub log_level: drivecopy::job::LogLevel,
    /// `backupDriveManifest`.
    pub backup_drive_manifest: bool,
    /// The drive's `manifestFile`.
    pub manifest_file: Option<String>,
    /// The drive's `manifestHash`.
    pub manifest_hash: Option<String>,
}

impl JobSettings {
    /// Take the job's diagnosticsPath and logLevel, each unless its flag was given on the command
    /// line.
    pub fn apply_logs(
        &self,
        diagnostics_path: &mut String,
        log_level: &mut LogLevel,
        (diagnostics_flag, log_level_flag): (bool, bool),
    ) {
        if !diagnostics_flag {
            diagnostics_path.clone_from(&self.diagnostics_path);
        }
        if !log_level_flag {
            *log_level = match self.log_level {
                drivecopy::job::LogLevel::Verbose => LogLevel::Verbose,
                drivecopy::job::LogLevel::Error => LogLevel::Error,
            };
        }
    }

    fn of(job: &Job, drive_id: &str) -> Self {
        let drive = job.drive(drive_id);
        JobSettings {
            diagnostics_path: job.properties.diagnostics_path.clone(),
            log_level: job.properties.log_level,
            backup_drive_manifest: job.properties.backup_drive_manifest,
            manifest_file: drive.and_then(|d| d.manifest_file.clone()),
            manifest_hash: drive.and_then(|d| d.manifest_hash.clone()),
        }
    }
}

/// Why the copy may not start.
pub enum Refusal {
    /// The job was cancelled: the copy step is skipped (azure-import-export.md §6.3).
    Cancelled(String),
    /// The job's or drive's state does not allow copying, or the job or drive is unknown.
    Refused(String),
}

impl Refusal {
    /// The result event's `outcome` (`JobCancelled` or `Refused`) and the message.
    pub fn outcome(self) -> (&'static str, String) {
        match self {
            Refusal::Cancelled(m) => (
                "JobCancelled",
                format!("the job was cancelled: copy skipped ({m})"),
            ),
            Refusal::Refused(m) => ("Refused", m),
        }
    }
}

impl JobLink {
    /// Link drive `drive_id` of job `job` in `store`.
    pub fn new(store: Arc<dyn JobStore>, job: String, drive_id: String) -> Self {
        JobLink {
            store,
            job,
            drive_id,
        }
    }

    /// Move the drive to `Transferring`, or accept it already there (a resumed run), and return
    /// the job's settings for the copy.
    ///
    /// # Errors
    /// `Ok(Err(refusal))` when the job refuses the copy; `Err` for a store failure.
    pub async fn start(&self) -> Result<Result<JobSettings, Refusal>, JobStoreError> {
        let drive = self.drive_id.clone();
        let started = update(
            self.store.as_ref(),
            &self.job,
            OffsetDateTime::now_utc(),
            |job, now| job.start_copy(&drive, now),
        )
        .await;
        match started {
            Ok(done) => Ok(Ok(JobSettings::of(&done.job, &self.drive_id))),
            Err(JobStoreError::Transition { source, .. }) => {
                let job = self.store.get(&self.job).await?.map(|s| s.job);
                // A cancelled job refuses for that reason whatever state it has moved on to
                // (cancelling a received job sends it to `Packaging` without a copy).
                if matches!(source, JobError::Cancelled { .. })
                    || job.as_ref().is_some_and(|j| j.properties.cancel_requested)
                {
                    return Ok(Err(Refusal::Cancelled(source.to_string())));
                }
                let resumed = job.filter(|j| {
                    j.properties
                        .drive_list
                        .iter()
                        .any(|d| d.drive_id == self.drive_id && d.state == DriveState::Transferring)
                });
                if let (JobError::DriveState { .. }, Some(job)) = (&source, resumed) {
                    return Ok(Ok(JobSettings::of(&job, &self.drive_id)));
                }
                Ok(Err(Refusal::Refused(source.to_string())))
            }
            Err(e @ (JobStoreError::NotFound { .. } | JobStoreError::Name { .. })) => {
                Ok(Err(Refusal::Refused(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    /// Record the finished copy: state, copy status, bytes and log URIs.
    ///
    /// # Errors
    /// The store failure or the refused transition.
    pub async fn finish(&self, outcome: CopyOutcome) -> Result<(), JobStoreError> {
        let drive = self.drive_id.clone();
        update(
            self.store.as_ref(),
            &self.job,
            OffsetDateTime::now_utc(),
            move |job, now| job.finish_copy(&drive, outcome.clone(), now),
        )
        .await
        .map(|_| ())
    }
}

/// The link `--job-store SPEC --job NAME --drive-id ID` ask for: `None` without `--job-store`.
///
/// # Errors
/// `Ok(Err(message))` for a usage error (a missing `--job` or `--drive-id`, a bad store spec);
/// `Err` when the job store cannot be opened.
pub fn open_link(
    job_store: Option<&str>,
    job: Option<&str>,
    drive_id: Option<&str>,
) -> anyhow::Result<Result<Option<Arc<JobLink>>, String>> {
    Ok(match (job_store, job, drive_id) {
        (None, _, _) => Ok(None),
        (Some(spec), Some(job), Some(drive)) => super::job::open_store(spec)?
            .map(|store| Some(Arc::new(JobLink::new(store, job.into(), drive.into())))),
        (Some(_), _, _) => Err("--job-store needs --job NAME and --drive-id ID".into()),
    })
}

/// An event sink that forwards every event and records progress in the job, at most every
/// [`RECORD_INTERVAL`], one record in flight at a time.
pub struct RecordingSink {
    inner: Arc<dyn EventSink>,
    link: Arc<JobLink>,
    runtime: tokio::runtime::Handle,
    last: Mutex<Option<Instant>>,
    busy: Arc<AtomicBool>,
}

impl RecordingSink {
    /// Forward to `inner`, record through `link` on `runtime`.
    pub fn new(
        inner: Arc<dyn EventSink>,
        link: Arc<JobLink>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        RecordingSink {
            inner,
            link,
            runtime,
            last: Mutex::new(None),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl EventSink for RecordingSink {
    fn emit(&self, event: Event) {
        if let Event::Progress(p) = &event {
            let due = self
                .last
                .lock()
                .map(|mut last| {
                    let due = last.is_none_or(|t| t.elapsed() >= RECORD_INTERVAL);
                    if due {
                        *last = Some(Instant::now());
                    }
                    due
                })
                .unwrap_or(false);
            if due && !self.busy.swap(true, Ordering::AcqRel) {
                let (link, busy, inner) = (
                    Arc::clone(&self.link),
                    Arc::clone(&self.busy),
                    Arc::clone(&self.inner),
                );
                let (percent, bytes, total) =
                    (p.percent_complete.min(99), p.bytes_done, p.bytes_total);
                self.runtime.spawn(async move {
                    let drive = link.drive_id.clone();
                    let recorded = update(
                        link.store.as_ref(),
                        &link.job,
                        OffsetDateTime::now_utc(),
                        |job, now| job.record_progress(&drive, percent, bytes, Some(total), now),
                    )
                    .await;
                    if let Err(e) = recorded {
                        inner.emit(warning("JobUpdateFailed", e.to_string(), None));
                    }
                    busy.store(false, Ordering::Release);
                });
            }
        }
        self.inner.emit(event);
    }
}

/// Why a copy run copied nothing.
pub enum NoCopy {
    /// The job refused the copy.
    Refused(Refusal),
    /// The station failed (reader, hash pool, writer, job store).
    Failed(anyhow::Error),
}

/// Run a copy under its job, when it has one: move the drive to `Transferring` (or take the
/// job's refusal), run `copy` with the job's settings and an event sink that also records
/// progress in the job, and record the outcome `outcome_of` derives from the report (`None`
/// for a cancelled run, which leaves the drive `Transferring` for the re-run). The report comes
/// back when the copy ran (completely, with errors, or cancelled by a signal).
pub async fn run_linked<R, F, Fut>(
    link: Option<Arc<JobLink>>,
    sink: Arc<dyn EventSink>,
    copy: F,
    outcome_of: impl Fn(&R) -> Option<CopyOutcome>,
) -> Result<Box<R>, NoCopy>
where
    F: FnOnce(Option<JobSettings>, Arc<dyn EventSink>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>>,
{
    let Some(link) = link else {
        return copy(None, sink).await.map(Box::new).map_err(NoCopy::Failed);
    };
    let settings = match link.start().await {
        Ok(Ok(settings)) => settings,
        Ok(Err(refusal)) => return Err(NoCopy::Refused(refusal)),
        Err(e) => {
            return Err(NoCopy::Failed(
                anyhow::Error::new(e).context("move the drive to Transferring in its job"),
            ))
        }
    };
    let events: Arc<dyn EventSink> = Arc::new(RecordingSink::new(
        sink,
        Arc::clone(&link),
        tokio::runtime::Handle::current(),
    ));
    let report = match copy(Some(settings), events).await {
        Ok(report) => report,
        Err(e) => return Err(NoCopy::Failed(e)),
    };
    if let Some(outcome) = outcome_of(&report) {
        if let Err(e) = link.finish(outcome).await {
            return Err(NoCopy::Failed(
                anyhow::Error::new(e).context("record the finished copy in its job"),
            ));
        }
    }
    Ok(Box::new(report))
}

/// End a run that copied nothing: tell stderr, send the `result` (`JobCancelled` or `Refused`
/// with exit 6, or `Internal` with exit 10) and return the exit code.
pub fn end_without_copy(
    command: &str,
    why: NoCopy,
    drive_id: String,
    manifest_file: String,
    started: Instant,
    sink: &dyn EventSink,
) -> Exit {
    match why {
        NoCopy::Refused(refusal) => {
            let (outcome, message) = refusal.outcome();
            eprintln!("drivecopy: {message}");
            let mut drive_status = DriveStatus::new(drive_id, DriveState::Received);
            drive_status.manifest_file = Some(manifest_file);
            let exit = Exit::IllegalTransition;
            sink.emit(bare_result(
                command,
                outcome,
                exit,
                drive_status,
                started,
                message,
            ));
            exit
        }
        NoCopy::Failed(e) => {
            // The station itself failed: still end the stream with a result.
            let error = format!("{e:#}");
            let mut drive_status = DriveStatus::new(drive_id, DriveState::Transferring);
            drive_status.manifest_file = Some(manifest_file);
            drive_status.copy_status = Some(drivecopy::copylog::DriveLogStatus::InternalError);
            let exit = Exit::Internal;
            sink.emit(bare_result(
                command,
                "Internal",
                exit,
                drive_status,
                started,
                error.clone(),
            ));
            eprintln!("drivecopy: error: {error}");
            exit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivecopy::events::{CollectEvents, ProgressEvent};
    use drivecopy::job::{Job, PutJobParameters, ResourceScope, UpdateJobParameters};
    use drivecopy::jobstore::DirJobStore;

    const JOB: &str = "progressjob";
    const DRIVE: &str = "DRIVE01";

    /// A job whose one drive is `Transferring`, in a directory job store.
    async fn transferring_job(dir: &std::path::Path) -> Arc<dyn JobStore> {
        let put: PutJobParameters = serde_json::from_value(serde_json::json!({
            "location": "West US",
            "properties": {
                "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
                "jobType": "Import",
                "returnAddress": {
                    "recipientName": "R", "streetAddress1": "S", "city": "C", "postalCode": "1",
                    "countryOrRegion": "USA", "phone": "1", "email": "r@example.com"
                },
                "driveList": [{
                    "driveId": DRIVE,
                    "bitLockerKey": "238810-662376-448998-450120-652806-203390-606320-483076",
                    "manifestFile": "\\DriveManifest.xml",
                    "manifestHash": "109B21108597EF36D5785F08303F3638"
                }]
            }
        }))
        .expect("put body");
        let now = OffsetDateTime::now_utc();
        let scope = ResourceScope {
            subscription_id: "x".into(),
            resource_group: "rg".into(),
        };
        let mut job = Job::create(JOB, &scope, put, now).expect("create");
        let ship: UpdateJobParameters = serde_json::from_value(serde_json::json!({
            "properties": {
                "state": "Shipping",
                "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "1"}
            }
        }))
        .expect("update body");
        job.update(ship, now).expect("ship");
        job.receive_drives(&[DRIVE], now).expect("receive");
        job.start_copy(DRIVE, now).expect("start");
        let store: Arc<dyn JobStore> = Arc::new(DirJobStore::open(dir).expect("job store"));
        store.create(&job).await.expect("store the job");
        store
    }

    fn progress(bytes_done: u64, bytes_total: u64, percent_complete: u8) -> Event {
        Event::Progress(ProgressEvent {
            bytes_done,
            bytes_total,
            percent_complete,
            blobs_done: 0,
            blobs_total: 1,
            bytes_per_second: 0.0,
            elapsed_seconds: 0.0,
            retries: 0,
        })
    }

    fn drive_progress(job: &Job) -> (u8, u64) {
        let d = job.drive(DRIVE).expect("the drive");
        (d.percent_complete, d.bytes_succeeded)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn progress_is_recorded_at_most_once_per_interval_and_forwarded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = transferring_job(dir.path()).await;
        let link = Arc::new(JobLink::new(Arc::clone(&store), JOB.into(), DRIVE.into()));
        let collected = Arc::new(CollectEvents::default());
        let sink = RecordingSink::new(collected.clone(), link, tokio::runtime::Handle::current());

        sink.emit(progress(300, 1000, 30));
        // The record runs on the runtime; wait for it to land (bounded: the store is local).
        let mut recorded = (0, 0);
        for _ in 0..500 {
            let job = store.get(JOB).await.expect("get").expect("job").job;
            recorded = drive_progress(&job);
            if recorded != (0, 0) && !sink.busy.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(recorded, (30, 300));

        // A second event inside the interval is forwarded but not recorded.
        sink.emit(progress(900, 1000, 100));
        let job = store.get(JOB).await.expect("get").expect("job").job;
        assert_eq!(drive_progress(&job), (30, 300));
        assert!(
            !sink.busy.load(Ordering::Acquire),
            "no second record started"
        );

        let forwarded = collected.0.lock().expect("events").len();
        assert_eq!(forwarded, 2, "every event reaches the inner sink");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_never_records_100_percent_before_it_finishes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = transferring_job(dir.path()).await;
        let link = Arc::new(JobLink::new(Arc::clone(&store), JOB.into(), DRIVE.into()));
        let sink = RecordingSink::new(
            Arc::new(drivecopy::events::NoEvents),
            link,
            tokio::runtime::Handle::current(),
        );
        sink.emit(progress(1000, 1000, 100));
        let mut recorded = (0, 0);
        for _ in 0..500 {
            let job = store.get(JOB).await.expect("get").expect("job").job;
            recorded = drive_progress(&job);
            if recorded != (0, 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(recorded, (99, 1000), "100 % is the finish record's to set");
    }
}
