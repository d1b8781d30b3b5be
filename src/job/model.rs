//! The job document: ARM `JobDetails` (api-version 2021-01-01, camelCase) and its parts, the
//! internal bookkeeping the lifecycle rules need, the ARM request bodies (`PutJobParameters`,
//! `UpdateJobParameters`) and the Get Job and List Jobs views. Data only; no transitions.
//!
//! Source for every field name: azure-import-export.md §4.1.

use super::drive::{DriveState, DriveStatus};
use super::serde_time;
use super::JobState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The ARM resource type of a job (§4.1 JobResponse `type`).
pub const JOB_RESOURCE_TYPE: &str = "Microsoft.ImportExport/jobs";

/// Import (customer drives into blobs) or export (blobs onto customer drives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobType {
    /// Drives are copied into Blob Storage.
    Import,
    /// Blobs are copied onto drives.
    Export,
}

/// How much the copy logs record (§4.1 `logLevel`, default `Error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    /// Only the error log.
    #[default]
    Error,
    /// The error log and the verbose log.
    Verbose,
}

/// Where the drives go back to (§4.1 ReturnAddress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnAddress {
    /// Recipient.
    pub recipient_name: String,
    /// First street line.
    pub street_address1: String,
    /// Second street line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address2: Option<String>,
    /// City.
    pub city: String,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_or_province: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// Country or region.
    pub country_or_region: String,
    /// Phone.
    pub phone: String,
    /// Email.
    pub email: String,
}

/// The customer's carrier account for the return (§4.1 ReturnShipping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnShipping {
    /// Carrier name.
    pub carrier_name: String,
    /// Carrier account number.
    pub carrier_account_number: String,
}

/// The data centre address the drives are shipped to (§4.1 ShippingInformation; service-filled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingInformation {
    /// Recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_name: Option<String>,
    /// First street line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address1: Option<String>,
    /// Second street line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address2: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_or_province: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_or_region: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Read-only extra information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<String>,
}

/// The customer's shipment to the data centre (§4.1 DeliveryPackageInformation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPackageInformation {
    /// Carrier name.
    pub carrier_name: String,
    /// Tracking number.
    pub tracking_number: String,
    /// Number of drives in the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_count: Option<u64>,
    /// Ship date, as the customer wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_date: Option<String>,
}

/// The return shipment (§4.1 PackageInformation; absent until the drives are returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageInformation {
    /// Carrier name.
    pub carrier_name: String,
    /// Tracking number.
    pub tracking_number: String,
    /// Number of drives in the package.
    pub drive_count: u64,
    /// Ship date.
    pub ship_date: String,
}

/// An inline export blob list (§4.1 Export.blobList).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportBlobList {
    /// Exact blob paths (`container/blob`).
    #[serde(default)]
    pub blob_path: Vec<String>,
    /// Blob path prefixes (`/container/prefix`).
    #[serde(default)]
    pub blob_path_prefix: Vec<String>,
}

/// What an export job exports (§4.1 Export): an inline list or a blob holding one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// The inline list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_list: Option<ExportBlobList>,
    /// Relative URI of a block blob holding the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_list_blob_path: Option<String>,
}

/// Who holds the key that encrypts the BitLocker keys (§4.1 EncryptionKeyDetails).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionKeyDetails {
    /// `MicrosoftManaged` (default) or `CustomerManaged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_type: Option<String>,
    /// Key URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_url: Option<String>,
    /// Key vault resource id.
    #[serde(
        default,
        rename = "kekVaultResourceID",
        skip_serializing_if = "Option::is_none"
    )]
    pub kek_vault_resource_id: Option<String>,
}

/// The ARM `JobDetails` (§4.1, api-version 2021-01-01), camelCase. Service-controlled fields
/// (`state`, `percentComplete`, drive states...) are reset by [`Job::create`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetails {
    /// ARM id of the storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_id: Option<String>,
    /// `Import` or `Export`.
    pub job_type: JobType,
    /// Return address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_address: Option<ReturnAddress>,
    /// Return carrier account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_shipping: Option<ReturnShipping>,
    /// Data centre address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_information: Option<ShippingInformation>,
    /// The customer's shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_package: Option<DeliveryPackageInformation>,
    /// The return shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_package: Option<PackageInformation>,
    /// Virtual blob directory for copy logs and manifest backups (default `waimportexport`).
    #[serde(default = "default_diagnostics_path")]
    pub diagnostics_path: String,
    /// `Error` (default) or `Verbose`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Whether to back up each drive manifest to the diagnostics path.
    #[serde(default)]
    pub backup_drive_manifest: bool,
    /// The job state.
    #[serde(default = "creating")]
    pub state: JobState,
    /// Whether cancellation was requested.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Overall percent complete, 0 to 100, derived from the drives.
    #[serde(default)]
    pub percent_complete: u8,
    /// Export only: blobs not exported for lack of drive space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_blob_list_uri: Option<String>,
    /// The drives (import: listed by Put Job; export: recorded on arrival).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drive_list: Vec<DriveStatus>,
    /// Export only: what to export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Export>,
    /// ARM provisioning state (`Succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Encryption of the BitLocker keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<EncryptionKeyDetails>,
}

fn default_diagnostics_path() -> String {
    super::DEFAULT_DIAGNOSTICS_PATH.to_owned()
}

fn creating() -> JobState {
    JobState::Creating
}

/// The ARM Put Job body `{location, tags, properties: JobDetails}` (§4.1 PutJobParameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutJobParameters {
    /// Azure region of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Resource tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The job.
    pub properties: JobDetails,
}

/// The properties an Update Job may change (§4.1 UpdateJobParameters.properties).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateJobProperties {
    /// If given, must be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// If given, must be `Shipping` (kept as text so a wrong value gets a precise error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// New return address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_address: Option<ReturnAddress>,
    /// New return carrier account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_shipping: Option<ReturnShipping>,
    /// The customer's shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_package: Option<DeliveryPackageInformation>,
    /// New log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// New manifest backup flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_drive_manifest: Option<bool>,
    /// A replacement drive list (import jobs in `Creating` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_list: Option<Vec<DriveStatus>>,
}

/// The ARM Update Job body `{tags, properties}` (§4.1 UpdateJobParameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateJobParameters {
    /// Replacement resource tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The properties to change.
    #[serde(default)]
    pub properties: UpdateJobProperties,
}

/// The ARM scope a job lives in, used to build its resource `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group name.
    pub resource_group: String,
}

impl ResourceScope {
    /// The resource id of job `name`:
    /// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ImportExport/jobs/{name}`.
    pub fn job_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{JOB_RESOURCE_TYPE}/{name}",
            self.subscription_id, self.resource_group
        )
    }
}

/// An operator fault: why, when, and the state to return to when resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault<S> {
    /// The operator's reason.
    pub reason: String,
    /// The state left, to return to.
    pub return_to: S,
    /// When the fault was entered.
    #[serde(with = "serde_time")]
    pub at: OffsetDateTime,
}

/// An unlisted drive that arrived with the job: recorded, never processed, returned with the job
/// (§6.1 error events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraDrive {
    /// Its id.
    pub drive_id: String,
    /// When it arrived.
    #[serde(with = "serde_time")]
    pub arrived_at: OffsetDateTime,
    /// Whether it has been shipped back.
    pub shipped_back: bool,
}

/// Something that makes the job end `Closed` rather than `Completed` and is not visible in a
/// drive's state or copy status (§6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ErrorEvent {
    /// The job was faulted while being processed.
    JobFault {
        /// The operator's reason.
        reason: String,
        /// When.
        #[serde(with = "serde_time")]
        at: OffsetDateTime,
    },
    /// A drive was faulted.
    DriveFault {
        /// The drive id.
        drive_id: String,
        /// The operator's reason.
        reason: String,
        /// When.
        #[serde(with = "serde_time")]
        at: OffsetDateTime,
    },
    /// A drive arrived after processing ended; it goes back uncopied.
    LateArrival {
        /// The drive id.
        drive_id: String,
        /// When.
        #[serde(with = "serde_time")]
        at: OffsetDateTime,
    },
    /// Nothing was received 14 + 30 days after Shipping; the job was closed.
    ShippingTimeout {
        /// When.
        #[serde(with = "serde_time")]
        at: OffsetDateTime,
    },
}

/// Bookkeeping for one drive that the ARM record has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveBook {
    /// When the drive entered its current state.
    #[serde(with = "serde_time")]
    pub state_entered_at: OffsetDateTime,
    /// The open fault, when `Faulted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault<DriveState>>,
    /// Total bytes to copy, when the engine has reported it (weights the job percentComplete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// When it arrived while the job was not yet `Shipping` (recorded, not processed).
    #[serde(
        default,
        with = "serde_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub arrived_early_at: Option<OffsetDateTime>,
}

/// Most error events kept; later ones are counted in [`JobBook::errors_dropped`].
pub(crate) const MAX_ERROR_EVENTS: usize = 64;

/// Bookkeeping for the job that the ARM document has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobBook {
    /// Optimistic-concurrency version: incremented by every applied transition.
    pub version: u64,
    /// When Put Job created the job.
    #[serde(with = "serde_time")]
    pub created_at: OffsetDateTime,
    /// When the job entered its current state.
    #[serde(with = "serde_time")]
    pub state_entered_at: OffsetDateTime,
    /// Start of the 14-day `Creating` timer (reset by every update in `Creating`).
    #[serde(with = "serde_time")]
    pub creating_timer_from: OffsetDateTime,
    /// When operators were notified that nothing arrived 14 days after `Shipping`.
    #[serde(
        default,
        with = "serde_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub operators_notified_at: Option<OffsetDateTime>,
    /// When the job was deleted; no transition leaves deletion.
    #[serde(
        default,
        with = "serde_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
    /// The open fault, when `Faulted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault<JobState>>,
    /// Unlisted drives that arrived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_drives: Vec<ExtraDrive>,
    /// Error events, at most 64 of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorEvent>,
    /// Error events beyond the first 64.
    #[serde(default)]
    pub errors_dropped: u64,
    /// Per-drive bookkeeping, by drive id.
    #[serde(default)]
    pub drives: BTreeMap<String, DriveBook>,
}

/// One job: the document the job store keeps (JSON), holding the ARM resource fields, the
/// `JobDetails` and the bookkeeping (under `drivecopy`, never shown in ARM views).
///
/// Transitions (each takes `now`, applies completely or not at all, bumps
/// `drivecopy.version` and returns the [`Changes`](super::Changes) it made):
/// [`Job::create`] (Put Job), [`Job::update`] (Update Job: Shipping, cancel, properties),
/// [`Job::receive_drives`], [`Job::start_copy`], [`Job::record_progress`],
/// [`Job::finish_copy`], [`Job::fault`] / [`Job::resolve`], [`Job::fault_drive`] /
/// [`Job::resolve_drive`], [`Job::ship_back`], [`Job::delete`] and [`Job::tick`] (timeouts).
/// Views: [`Job::to_response`] (Get Job) and [`Job::to_list_item`] (List Jobs).
///
/// # Example
/// ```
/// use drivecopy::job::{Job, JobState, PutJobParameters, ResourceScope};
/// let body = r#"{"location":"West US","properties":{"jobType":"Import","driveList":[{
///     "driveId":"9WM35C2V",
///     "bitLockerKey":"238810-662376-448998-450120-652806-203390-606320-483076",
///     "manifestFile":"\\DriveManifest.xml",
///     "manifestHash":"109B21108597EF36D5785F08303F3638"}]}}"#;
/// let params: PutJobParameters = serde_json::from_str(body).unwrap();
/// let scope = ResourceScope { subscription_id: "sub".into(), resource_group: "rg".into() };
/// let now = time::macros::datetime!(2026-01-05 09:00 UTC);
/// let job = Job::create("myjob", &scope, params, now).unwrap();
/// assert_eq!(job.properties.state, JobState::Creating);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// ARM resource id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// Azure region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Resource tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The ARM JobDetails.
    pub properties: JobDetails,
    /// Bookkeeping (not part of the ARM shape).
    pub drivecopy: JobBook,
}

/// The ARM Get Job response (§4.1 JobResponse): `{id, name, type, location, tags, properties}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResponse {
    /// ARM resource id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// Always [`JOB_RESOURCE_TYPE`].
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Azure region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Resource tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The job details.
    pub properties: JobDetails,
}

/// The List Jobs entry: a [`JobResponse`] whose properties carry no `driveList` (as the live
/// service returns it, §4.1).
pub type JobListItem = JobResponse;

impl Job {
    /// The drive record with id `drive_id`.
    pub fn drive(&self, drive_id: &str) -> Option<&DriveStatus> {
        self.properties
            .drive_list
            .iter()
            .find(|drive| drive.drive_id == drive_id)
    }

    /// Whether the job has been deleted.
    pub fn is_deleted(&self) -> bool {
        self.drivecopy.deleted_at.is_some()
    }

    /// Whether any drive has arrived (or been recorded arriving early).
    pub fn any_drive_arrived(&self) -> bool {
        self.properties
            .drive_list
            .iter()
            .any(|drive| drive.state.is_on_site() || drive.state == DriveState::ShippedBack)
            || self
                .drivecopy
                .drives
                .values()
                .any(|book| book.arrived_early_at.is_some())
    }

    /// Whether the job has an error that makes it end `Closed` (§6.1): an error event, a
    /// `NeverReceived` drive (unless cancellation was requested: the customer no longer needs
    /// it), or a drive copy status that is an error.
    pub fn has_errors(&self) -> bool {
        let cancelled = self.properties.cancel_requested;
        !self.drivecopy.errors.is_empty()
            || self.drivecopy.errors_dropped > 0
            || self.properties.drive_list.iter().any(|drive| {
                (drive.state == DriveState::NeverReceived && !cancelled)
                    || drive.copy_status.as_ref().is_some_and(|s| s.is_error())
            })
    }

    /// The job's percentComplete derived from its drives, 0 to 100: the mean of the drives'
    /// percentComplete (`NeverReceived` drives left out), weighted by each drive's total bytes when
    /// every counted drive has reported one, unweighted otherwise.
    pub fn derived_percent_complete(&self) -> u8 {
        let counted: Vec<&DriveStatus> = self
            .properties
            .drive_list
            .iter()
            .filter(|drive| drive.state != DriveState::NeverReceived)
            .collect();
        if counted.is_empty() {
            return 0;
        }
        let weights: Option<Vec<u128>> = counted
            .iter()
            .map(|drive| {
                self.drivecopy
                    .drives
                    .get(&drive.drive_id)
                    .and_then(|book| book.total_bytes)
                    .map(u128::from)
            })
            .collect();
        let weights = match weights {
            Some(weights) if weights.iter().sum::<u128>() > 0 => weights,
            _ => vec![1; counted.len()],
        };
        let total: u128 = weights.iter().sum();
        let done: u128 = counted
            .iter()
            .zip(&weights)
            .map(|(drive, weight)| u128::from(drive.percent_complete.min(100)) * weight)
            .sum();
        u8::try_from(done / total).unwrap_or(100).min(100)
    }

    /// The Get Job view. `bitLockerKey` is left out unless `show_bit_locker_keys` (an operator
    /// flag), as the live service does (§4.1).
    pub fn to_response(&self, show_bit_locker_keys: bool) -> JobResponse {
        let mut properties = self.properties.clone();
        if !show_bit_locker_keys {
            for drive in &mut properties.drive_list {
                drive.bit_locker_key = None;
            }
        }
        JobResponse {
            id: self.id.clone(),
            name: self.name.clone(),
            resource_type: JOB_RESOURCE_TYPE.to_owned(),
            location: self.location.clone(),
            tags: self.tags.clone(),
            properties,
        }
    }

    /// The List Jobs view: [`Job::to_response`] without `driveList` (§4.1).
    pub fn to_list_item(&self) -> JobListItem {
        let mut response = self.to_response(false);
        response.properties.drive_list.clear();
        response
    }
}
