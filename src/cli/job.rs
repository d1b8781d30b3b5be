//! `drivecopy job ...`: the Import/Export job lifecycle from the command line (issue 6, item 4).
//!
//! Each subcommand opens the job store, applies one transition of [`drivecopy::job`] through
//! [`drivecopy::jobstore::update`] (read, apply, conditional write, re-read and re-apply on a
//! conflict), and prints the job as the ARM Get Job `JobResponse` (pretty JSON) on stdout.
//!
//! Exit codes (see [`Exit`]): 0 done; 2 (`Usage`) for bad input: an unknown job or drive, a job
//! that already exists, an unreadable or invalid JSON body, a bad name; 6 (`IllegalTransition`)
//! when the job's or the drive's state does not allow the command; 10 for a failing store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use drivecopy::job::{
    Job, JobError, PackageInformation, PutJobParameters, ResourceScope, UpdateJobParameters,
};
use drivecopy::jobstore::{
    self, BlobJobStore, DirJobStore, JobStore, JobStoreError, DEFAULT_JOB_CONTAINER,
    DEFAULT_JOB_DIR,
};
use drivecopy::store::azure::{self, display_destination, is_remote};
use drivecopy::store::local::LocalStore;
use drivecopy::store::retry::{RetryPolicy, RetryStore};
use drivecopy::store::{open_url, OpenOptions};
use tokio_util::sync::CancellationToken;

use super::exit::Exit;

/// Manage Import/Export jobs in a job store.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 done; 2 bad input (unknown job or drive, job already \
exists, invalid JSON body or name); 6 illegal transition (the job's or drive's state does not \
allow the command); 10 store failure."
)]
pub struct JobArgs {
    /// Where jobs are kept: a directory (one `<name>.json` per job), or a local blob store given
    /// as `blob:PATH` or `file:///PATH` (blobs `jobs/<name>.json` in container `drivecopy-jobs`).
    #[arg(
        long,
        global = true,
        env = "DRIVECOPY_JOB_STORE",
        default_value = DEFAULT_JOB_DIR,
        value_name = "PATH_OR_URL"
    )]
    job_store: String,
    /// The time to apply transitions at (RFC 3339), instead of the clock: for replays and tests.
    #[arg(long, global = true, value_parser = parse_time, value_name = "RFC3339")]
    now: Option<OffsetDateTime>,
    /// The job command.
    #[command(subcommand)]
    command: JobCommand,
}

/// The job subcommands.
#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Put Job: create job NAME from an ARM PutJobParameters body.
    Create {
        /// The job name (1 to 64 letters, digits, '-' or '_').
        name: String,
        /// The ARM PutJobParameters JSON body (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Subscription id for the job's resource id.
        #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
        subscription_id: String,
        /// Resource group for the job's resource id.
        #[arg(long, default_value = "drivecopy")]
        resource_group: String,
    },
    /// Get Job: print the ARM JobResponse (bitLockerKey left out unless asked).
    Show {
        /// The job name.
        name: String,
        /// Operators only: include each drive's bitLockerKey.
        #[arg(long)]
        show_bitlocker_keys: bool,
    },
    /// List Jobs: print every job as a JobResponse without driveList, as a JSON array.
    List,
    /// Update Job Properties from an ARM UpdateJobParameters body (state: Shipping, cancel, ...).
    Update {
        /// The job name.
        name: String,
        /// The ARM UpdateJobParameters JSON body (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Request cancellation (Update Job with cancelRequested: true).
    Cancel {
        /// The job name.
        name: String,
    },
    /// Drives arrive at the data centre in one package.
    Receive {
        /// The job name.
        name: String,
        /// The drive ids in the package.
        #[arg(required = true)]
        drive_ids: Vec<String>,
    },
    /// Ship the drives back (from Packaging): the job ends Completed, or Closed with errors.
    ShipBack {
        /// The job name.
        name: String,
        /// Return carrier name.
        #[arg(long)]
        carrier: String,
        /// Return tracking number.
        #[arg(long)]
        tracking: String,
        /// Ship date (default: the UTC date of the transition).
        #[arg(long)]
        ship_date: Option<String>,
    },
    /// An operator faults the job, or one drive with --drive.
    Fault {
        /// The job name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Fault this drive instead of the job.
        #[arg(long, value_name = "ID")]
        drive: Option<String>,
    },
    /// An operator resolves the job's fault, or one drive's with --drive.
    Resolve {
        /// The job name.
        name: String,
        /// Resolve this drive instead of the job.
        #[arg(long, value_name = "ID")]
        drive: Option<String>,
    },
    /// Apply the timeouts due now (14 days Creating, 14 + 30 days Shipping, 90 days retention).
    Tick {
        /// The job name.
        name: String,
    },
    /// Delete Job (only in Creating, Completed or Closed).
    Delete {
        /// The job name.
        name: String,
    },
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

/// Open the job store named by `--job-store` (see [`JobArgs`]).
pub(crate) fn open_store(spec: &str) -> anyhow::Result<Result<Arc<dyn JobStore>, String>> {
    if is_remote(spec) {
        // Shared through Azure Storage: conditional on ETags alone (no process lock can span
        // machines); the documents go into the container the URL names, or the default one.
        let options = OpenOptions::new(4);
        let container = match azure::resolve(spec, &options.env, None) {
            Ok(r) => r
                .endpoint
                .container
                .unwrap_or_else(|| DEFAULT_JOB_CONTAINER.to_string()),
            Err(e) => return Ok(Err(format!("--job-store: {e}"))),
        };
        let store = open_url(spec, &options, |store| {
            Arc::new(RetryStore::new(
                store,
                RetryPolicy::default(),
                CancellationToken::new(),
            ))
        })
        .with_context(|| format!("open the job store {}", display_destination(spec)))?;
        return Ok(Ok(Arc::new(BlobJobStore::new(store, container))));
    }
    let local = if let Some(rest) = spec.strip_prefix("blob:") {
        Some(rest)
    } else if spec.starts_with("file://") {
        Some(spec)
    } else if spec.contains("://") {
        return Ok(Err(format!(
            "--job-store {spec:?}: only a directory, blob:PATH, file:///PATH or an http(s) blob \
             service URL is supported"
        )));
    } else {
        None
    };
    Ok(Ok(match local {
        Some(url) => {
            let store = LocalStore::from_url(url)
                .with_context(|| format!("open the local blob store {url}"))?;
            let locks = store.root().join(".drivecopy-joblocks");
            Arc::new(
                BlobJobStore::new(Arc::new(store), DEFAULT_JOB_CONTAINER).with_process_lock(locks),
            )
        }
        None => Arc::new(
            DirJobStore::open(spec).with_context(|| format!("open the job directory {spec}"))?,
        ),
    }))
}

fn read_body(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("read stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value).context("serialize the output")?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        // Nobody reads the output any more: the command itself succeeded.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("write stdout"))
        }
        _ => Ok(()),
    }
}

/// Print the job (or that it was deleted) after a transition.
fn print_job(job: &Job) -> anyhow::Result<()> {
    if job.is_deleted() {
        print_json(&serde_json::json!({"name": job.name, "deleted": true}))
    } else {
        print_json(&job.to_response(false))
    }
}

/// Whether a refused transition is an illegal transition (exit 6) rather than bad input (exit 2).
fn is_illegal(error: &JobError) -> bool {
    matches!(
        error,
        JobError::Deleted { .. }
            | JobError::JobState { .. }
            | JobError::DriveState { .. }
            | JobError::ShippingNeeds { .. }
            | JobError::Cancelled { .. }
    )
}

/// Report `error` on stderr and choose the exit; store failures go back to `main` (exit 10).
fn refuse(error: JobStoreError) -> anyhow::Result<Exit> {
    match error {
        JobStoreError::Transition { source, .. } => {
            if is_illegal(&source) {
                eprintln!("drivecopy: illegal transition: {source}");
                Ok(Exit::IllegalTransition)
            } else {
                eprintln!("drivecopy: {source}");
                Ok(Exit::Usage)
            }
        }
        JobStoreError::NotFound { .. }
        | JobStoreError::AlreadyExists { .. }
        | JobStoreError::Name { .. } => {
            eprintln!("drivecopy: {error}");
            Ok(Exit::Usage)
        }
        other => Err(anyhow::Error::new(other)),
    }
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<Exit> {
    eprintln!("drivecopy: {message}");
    Ok(Exit::Usage)
}

/// Run `drivecopy job ...`.
///
/// # Errors
/// Store failures (I/O, a corrupt document, endless conflicts) and runtime start-up.
pub fn run(args: JobArgs) -> anyhow::Result<Exit> {
    let store = match open_store(&args.job_store)? {
        Ok(store) => store,
        Err(message) => return usage(message),
    };
    let now = args.now.unwrap_or_else(OffsetDateTime::now_utc);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(command(store.as_ref(), args.command, now))
}

/// Apply `transition` to job `name` and print the job after it.
async fn transition<T, F>(
    store: &dyn JobStore,
    name: &str,
    now: OffsetDateTime,
    step: F,
) -> anyhow::Result<Exit>
where
    F: FnMut(&mut Job, OffsetDateTime) -> Result<T, JobError> + Send,
    T: Send,
{
    match jobstore::update(store, name, now, step).await {
        Ok(done) => {
            print_job(&done.job)?;
            Ok(Exit::Completed)
        }
        Err(e) => refuse(e),
    }
}

async fn command(
    store: &dyn JobStore,
    command: JobCommand,
    now: OffsetDateTime,
) -> anyhow::Result<Exit> {
    match command {
        JobCommand::Create {
            name,
            from,
            subscription_id,
            resource_group,
        } => {
            let body = match read_body(&from) {
                Ok(body) => body,
                Err(message) => return usage(message),
            };
            let params: PutJobParameters = match serde_json::from_slice(&body) {
                Ok(params) => params,
                Err(e) => {
                    return usage(format!(
                        "{}: not a PutJobParameters body: {e}",
                        from.display()
                    ))
                }
            };
            let scope = ResourceScope {
                subscription_id,
                resource_group,
            };
            let job = match Job::create(&name, &scope, params, now) {
                Ok(job) => job,
                Err(e) => return usage(e),
            };
            match store.create(&job).await {
                Ok(_) => {
                    print_job(&job)?;
                    Ok(Exit::Completed)
                }
                Err(e) => refuse(e),
            }
        }
        JobCommand::Show {
            name,
            show_bitlocker_keys,
        } => match store.get(&name).await {
            Ok(Some(stored)) => {
                print_json(&stored.job.to_response(show_bitlocker_keys))?;
                Ok(Exit::Completed)
            }
            Ok(None) => usage(format!("job {name} not found")),
            Err(e) => refuse(e),
        },
        JobCommand::List => match store.list().await {
            Ok(jobs) => {
                let items: Vec<_> = jobs.iter().map(Job::to_list_item).collect();
                print_json(&items)?;
                Ok(Exit::Completed)
            }
            Err(e) => refuse(e),
        },
        JobCommand::Update { name, from } => {
            let body = match read_body(&from) {
                Ok(body) => body,
                Err(message) => return usage(message),
            };
            let params: UpdateJobParameters = match serde_json::from_slice(&body) {
                Ok(params) => params,
                Err(e) => {
                    return usage(format!(
                        "{}: not an UpdateJobParameters body: {e}",
                        from.display()
                    ))
                }
            };
            transition(store, &name, now, |job, now| {
                job.update(params.clone(), now)
            })
            .await
        }
        JobCommand::Cancel { name } => {
            let mut params = UpdateJobParameters::default();
            params.properties.cancel_requested = Some(true);
            transition(store, &name, now, |job, now| {
                job.update(params.clone(), now)
            })
            .await
        }
        JobCommand::Receive { name, drive_ids } => {
            transition(store, &name, now, |job, now| {
                job.receive_drives(&drive_ids, now)
            })
            .await
        }
        JobCommand::ShipBack {
            name,
            carrier,
            tracking,
            ship_date,
        } => {
            transition(store, &name, now, |job, now| {
                let on_site = job
                    .properties
                    .drive_list
                    .iter()
                    .filter(|d| d.state.is_on_site())
                    .count();
                let extra = job
                    .drivecopy
                    .extra_drives
                    .iter()
                    .filter(|e| !e.shipped_back)
                    .count();
                let package = PackageInformation {
                    carrier_name: carrier.clone(),
                    tracking_number: tracking.clone(),
                    drive_count: u64::try_from(on_site + extra).unwrap_or(u64::MAX),
                    ship_date: ship_date.clone().unwrap_or_else(|| now.date().to_string()),
                };
                job.ship_back(package, now)
            })
            .await
        }
        JobCommand::Fault {
            name,
            reason,
            drive,
        } => {
            transition(store, &name, now, |job, now| match &drive {
                Some(id) => job.fault_drive(id, &reason, now),
                None => job.fault(&reason, now),
            })
            .await
        }
        JobCommand::Resolve { name, drive } => {
            transition(store, &name, now, |job, now| match &drive {
                Some(id) => job.resolve_drive(id, now),
                None => job.resolve(now),
            })
            .await
        }
        JobCommand::Tick { name } => transition(store, &name, now, |job, now| job.tick(now)).await,
        JobCommand::Delete { name } => {
            transition(store, &name, now, |job, now| job.delete(now)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_store_specs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("d");
        let store = open_store(dir.to_str().expect("utf-8"))
            .expect("opens")
            .expect("a directory");
        assert!(format!("{store:?}").contains("DirJobStore"));
        assert!(dir.is_dir());
        let blob = format!("blob:{}", tmp.path().join("b").display());
        let store = open_store(&blob).expect("opens").expect("a blob store");
        assert!(format!("{store:?}").contains("BlobJobStore"));
        let url = format!("file://{}", tmp.path().join("c").display());
        let store = open_store(&url).expect("opens").expect("a blob store");
        assert!(format!("{store:?}").contains("BlobJobStore"));
        let azure = open_store("https://acct.blob.core.windows.net/jobs?sv=2022-11-02&sig=S")
            .expect("opening does no I/O")
            .expect("a blob store in Azure");
        assert!(format!("{azure:?}").contains("BlobJobStore"));
        assert!(!format!("{azure:?}").contains("sig=S"), "no SAS in Debug");
        let bad = open_store("ftp://host/jobs").expect("no I/O");
        assert!(bad.is_err(), "an unknown scheme is a usage error");
    }

    #[test]
    fn refusals_by_state_are_illegal_transitions_and_bad_input_is_usage() {
        let state = JobError::JobState {
            job: "j".into(),
            event: "delete",
            state: drivecopy::job::JobState::Received,
        };
        assert!(is_illegal(&state));
        let unknown = JobError::UnknownDrive {
            job: "j".into(),
            drive: "X".into(),
        };
        assert!(!is_illegal(&unknown));
        let exit = refuse(JobStoreError::Transition {
            name: "j".into(),
            source: state,
        })
        .expect("an exit");
        assert_eq!(exit, Exit::IllegalTransition);
        let exit = refuse(JobStoreError::NotFound { name: "j".into() }).expect("an exit");
        assert_eq!(exit, Exit::Usage);
        assert!(refuse(JobStoreError::Contended {
            name: "j".into(),
            attempts: 100
        })
        .is_err());
    }
}
