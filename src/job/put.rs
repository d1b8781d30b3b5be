//! Put Job: validating an ARM `PutJobParameters` body and creating the [`Job`] in `Creating`
//! (azure-import-export.md §4.1 Jobs_Create, JobDetails, DriveStatus; §4.3 what a submitter
//! supplies per drive). Also used by Update Job to validate a replacement drive list.

use super::drive::{BitLockerKey, DriveState, DriveStatus};
use super::model::{DriveBook, Job, JobBook, JobDetails, JobType, PutJobParameters, ResourceScope};
use super::{JobError, JobState, Result, DEFAULT_DIAGNOSTICS_PATH, MAX_DRIVES};
use crate::names::DrivePath;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

fn valid_job_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn check_drive_id(job: &str, drive_id: &str) -> Result<()> {
    if drive_id.is_empty() {
        return Err(JobError::DriveField {
            job: job.to_owned(),
            drive: String::new(),
            field: "driveId",
        });
    }
    if drive_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\')
    {
        return Err(JobError::DriveId {
            job: job.to_owned(),
            drive: drive_id.to_owned(),
        });
    }
    Ok(())
}

/// Validate an import drive list (§4.1, §4.3) and reset its service-controlled fields.
pub(super) fn validate_import_drives(job: &str, drives: &mut [DriveStatus]) -> Result<()> {
    if drives.is_empty() || drives.len() > MAX_DRIVES {
        return Err(JobError::DriveCount {
            job: job.to_owned(),
            count: drives.len(),
        });
    }
    let mut seen = BTreeSet::new();
    for drive in drives.iter_mut() {
        check_drive_id(job, &drive.drive_id)?;
        if !seen.insert(drive.drive_id.clone()) {
            return Err(JobError::DuplicateDrive {
                job: job.to_owned(),
                drive: drive.drive_id.clone(),
            });
        }
        let missing = |field| JobError::DriveField {
            job: job.to_owned(),
            drive: drive.drive_id.clone(),
            field,
        };
        let key = drive
            .bit_locker_key
            .as_ref()
            .filter(|key| !key.expose().is_empty())
            .ok_or_else(|| missing("bitLockerKey"))?;
        if !key.is_well_formed() {
            return Err(JobError::BitLockerKey {
                job: job.to_owned(),
                drive: drive.drive_id.clone(),
            });
        }
        let file = drive
            .manifest_file
            .as_deref()
            .filter(|file| !file.is_empty())
            .ok_or_else(|| missing("manifestFile"))?;
        DrivePath::parse(file).map_err(|source| JobError::ManifestFile {
            job: job.to_owned(),
            drive: drive.drive_id.clone(),
            source,
        })?;
        let hash = drive
            .manifest_hash
            .as_deref()
            .filter(|hash| !hash.is_empty())
            .ok_or_else(|| missing("manifestHash"))?;
        if !matches!(hash.len(), 32 | 64) || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JobError::ManifestHash {
                job: job.to_owned(),
                drive: drive.drive_id.clone(),
                hash: hash.to_owned(),
            });
        }
        let kept = DriveStatus {
            drive_id: drive.drive_id.clone(),
            bit_locker_key: Some(BitLockerKey::new(key.expose())),
            manifest_file: Some(file.to_owned()),
            manifest_hash: Some(hash.to_owned()),
            drive_header_hash: drive.drive_header_hash.clone(),
            ..DriveStatus::new("", DriveState::Specified)
        };
        *drive = kept;
    }
    Ok(())
}

impl Job {
    /// Put Job (§4.1 Jobs_Create, §6.1 `Creating`): validate `params` and create job `name` in
    /// `Creating`, version 1.
    ///
    /// Import jobs need 1 to 10 drives, each with a driveId (no whitespace or path separator,
    /// unique), a bitLockerKey (8 groups of 6 digits), a drive-relative manifestFile and a
    /// manifestHash of 32 or 64 hex digits; the drives start `Specified`. Export jobs need
    /// `export.blobList` (non-empty) or `export.blobListBlobPath`, and list no drives. An empty or
    /// absent diagnosticsPath becomes `waimportexport`; logLevel defaults to `Error`. Fields the
    /// service controls (`state`, `cancelRequested`, `percentComplete`, `returnPackage`,
    /// `incompleteBlobListUri`, each drive's progress) are reset; `provisioningState` is
    /// `Succeeded`.
    ///
    /// # Errors
    /// [`JobError::JobName`], [`JobError::DriveCount`], [`JobError::DriveField`],
    /// [`JobError::DriveId`], [`JobError::DuplicateDrive`], [`JobError::BitLockerKey`],
    /// [`JobError::ManifestFile`], [`JobError::ManifestHash`], [`JobError::ExportBlobList`],
    /// [`JobError::ExportDriveList`].
    pub fn create(
        name: &str,
        scope: &ResourceScope,
        params: PutJobParameters,
        now: OffsetDateTime,
    ) -> Result<Job> {
        if !valid_job_name(name) {
            return Err(JobError::JobName {
                job: name.to_owned(),
            });
        }
        let mut properties: JobDetails = params.properties;
        match properties.job_type {
            JobType::Import => validate_import_drives(name, &mut properties.drive_list)?,
            JobType::Export => {
                if !properties.drive_list.is_empty() {
                    return Err(JobError::ExportDriveList {
                        job: name.to_owned(),
                    });
                }
                let export = properties.export.as_ref();
                let has_list = export
                    .and_then(|e| e.blob_list.as_ref())
                    .is_some_and(|l| !l.blob_path.is_empty() || !l.blob_path_prefix.is_empty());
                let has_blob = export
                    .and_then(|e| e.blob_list_blob_path.as_deref())
                    .is_some_and(|p| !p.is_empty());
                if !has_list && !has_blob {
                    return Err(JobError::ExportBlobList {
                        job: name.to_owned(),
                    });
                }
            }
        }
        if properties.diagnostics_path.is_empty() {
            properties.diagnostics_path = DEFAULT_DIAGNOSTICS_PATH.to_owned();
        }
        properties.state = JobState::Creating;
        properties.cancel_requested = false;
        properties.percent_complete = 0;
        properties.return_package = None;
        properties.incomplete_blob_list_uri = None;
        properties.provisioning_state = Some("Succeeded".to_owned());
        let drives: BTreeMap<String, DriveBook> = properties
            .drive_list
            .iter()
            .map(|drive| {
                let book = DriveBook {
                    state_entered_at: now,
                    fault: None,
                    total_bytes: None,
                    arrived_early_at: None,
                };
                (drive.drive_id.clone(), book)
            })
            .collect();
        Ok(Job {
            id: scope.job_id(name),
            name: name.to_owned(),
            location: params.location,
            tags: params.tags,
            properties,
            drivecopy: JobBook {
                version: 1,
                created_at: now,
                state_entered_at: now,
                creating_timer_from: now,
                operators_notified_at: None,
                deleted_at: None,
                fault: None,
                extra_drives: Vec::new(),
                errors: Vec::new(),
                errors_dropped: 0,
                drives,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;

    fn states(job: &Job) -> Vec<DriveState> {
        job.properties.drive_list.iter().map(|d| d.state).collect()
    }

    #[test]
    fn put_import_job_starts_creating_with_defaults() {
        let clock = FakeClock::new();
        let job = import_job(&["D1", "D2"], &clock);
        assert_eq!(job.properties.state, JobState::Creating);
        assert_eq!(job.properties.diagnostics_path, "waimportexport");
        assert_eq!(job.properties.log_level, LogLevel::Error);
        assert!(!job.properties.backup_drive_manifest);
        assert_eq!(
            job.properties.provisioning_state.as_deref(),
            Some("Succeeded")
        );
        assert_eq!(states(&job), vec![DriveState::Specified; 2]);
        assert_eq!(job.drivecopy.version, 1);
        assert_eq!(
            job.id,
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/job1"
        );
    }

    #[test]
    fn put_job_resets_service_controlled_fields() {
        let clock = FakeClock::new();
        let mut params = put_import(&["D1"]);
        params.properties.state = JobState::Completed;
        params.properties.cancel_requested = true;
        params.properties.percent_complete = 77;
        params.properties.drive_list[0].state = DriveState::ShippedBack;
        params.properties.drive_list[0].bytes_succeeded = 5;
        let job = Job::create("j", &scope(), params, clock.now()).expect("valid");
        assert_eq!(job.properties.state, JobState::Creating);
        assert!(!job.properties.cancel_requested);
        assert_eq!(job.properties.percent_complete, 0);
        assert_eq!(states(&job), vec![DriveState::Specified]);
        assert_eq!(job.properties.drive_list[0].bytes_succeeded, 0);
    }

    #[test]
    fn put_job_validation_table() {
        let clock = FakeClock::new();
        let check =
            |name: &str, edit: &dyn Fn(&mut PutJobParameters), ok: fn(&JobError) -> bool| {
                let mut params = put_import(&["D1", "D2"]);
                edit(&mut params);
                match Job::create(name, &scope(), params, clock.now()) {
                    Err(error) => assert!(ok(&error), "{name}: unexpected {error:?}"),
                    Ok(_) => panic!("{name}: accepted"),
                }
            };
        check("no-drives", &|p| p.properties.drive_list.clear(), |e| {
            matches!(e, JobError::DriveCount { count: 0, .. })
        });
        check(
            "eleven",
            &|p| {
                let one = p.properties.drive_list[0].clone();
                p.properties.drive_list = (0..11)
                    .map(|i| DriveStatus {
                        drive_id: format!("D{i}"),
                        ..one.clone()
                    })
                    .collect();
            },
            |e| matches!(e, JobError::DriveCount { count: 11, .. }),
        );
        check(
            "no-key",
            &|p| p.properties.drive_list[0].bit_locker_key = None,
            |e| {
                matches!(
                    e,
                    JobError::DriveField {
                        field: "bitLockerKey",
                        ..
                    }
                )
            },
        );
        check(
            "bad-key",
            &|p| p.properties.drive_list[0].bit_locker_key = Some(BitLockerKey::new("123")),
            |e| matches!(e, JobError::BitLockerKey { .. }),
        );
        check(
            "no-manifest",
            &|p| p.properties.drive_list[1].manifest_file = None,
            |e| matches!(e, JobError::DriveField { field: "manifestFile", drive, .. } if drive == "D2"),
        );
        check(
            "escaping-manifest",
            &|p| p.properties.drive_list[0].manifest_file = Some("..\\x.xml".into()),
            |e| matches!(e, JobError::ManifestFile { .. }),
        );
        check(
            "no-hash",
            &|p| p.properties.drive_list[0].manifest_hash = None,
            |e| {
                matches!(
                    e,
                    JobError::DriveField {
                        field: "manifestHash",
                        ..
                    }
                )
            },
        );
        check(
            "short-hash",
            &|p| p.properties.drive_list[0].manifest_hash = Some("ABC".into()),
            |e| matches!(e, JobError::ManifestHash { .. }),
        );
        check(
            "non-hex-hash",
            &|p| p.properties.drive_list[0].manifest_hash = Some("Z".repeat(32)),
            |e| matches!(e, JobError::ManifestHash { .. }),
        );
        check(
            "no-id",
            &|p| p.properties.drive_list[0].drive_id.clear(),
            |e| {
                matches!(
                    e,
                    JobError::DriveField {
                        field: "driveId",
                        ..
                    }
                )
            },
        );
        check(
            "spaced-id",
            &|p| p.properties.drive_list[0].drive_id = "A B".into(),
            |e| matches!(e, JobError::DriveId { .. }),
        );
        check(
            "dup",
            &|p| p.properties.drive_list[1].drive_id = "D1".into(),
            |e| matches!(e, JobError::DuplicateDrive { .. }),
        );
        check("bad/name", &|_| {}, |e| {
            matches!(e, JobError::JobName { .. })
        });
    }

    #[test]
    fn put_job_accepts_a_64_hex_manifest_hash_and_keeps_diagnostics_path() {
        let clock = FakeClock::new();
        let mut params = put_import(&["D1"]);
        params.properties.drive_list[0].manifest_hash = Some("ab".repeat(32));
        params.properties.diagnostics_path = "mylogs".into();
        params.properties.log_level = LogLevel::Verbose;
        let job = Job::create("j", &scope(), params, clock.now()).expect("valid");
        assert_eq!(job.properties.diagnostics_path, "mylogs");
        assert_eq!(job.properties.log_level, LogLevel::Verbose);
    }

    #[test]
    fn put_export_job_needs_a_blob_list_and_no_drives() {
        let clock = FakeClock::new();
        let job = Job::create("e", &scope(), put_export(), clock.now()).expect("valid");
        assert!(job.properties.drive_list.is_empty());

        let mut empty = put_export();
        empty.properties.export = Some(Export {
            blob_list: Some(ExportBlobList::default()),
            blob_list_blob_path: None,
        });
        assert!(matches!(
            Job::create("e", &scope(), empty, clock.now()),
            Err(JobError::ExportBlobList { .. })
        ));
        let mut by_blob = put_export();
        by_blob.properties.export = Some(Export {
            blob_list: None,
            blob_list_blob_path: Some("/exportlist/list.xml".into()),
        });
        assert!(Job::create("e", &scope(), by_blob, clock.now()).is_ok());
        let mut with_drives = put_export();
        with_drives.properties.drive_list = put_import(&["D1"]).properties.drive_list;
        assert!(matches!(
            Job::create("e", &scope(), with_drives, clock.now()),
            Err(JobError::ExportDriveList { .. })
        ));
    }

    // ---- Update Job ----

    #[test]
    fn parses_the_arm_put_and_update_bodies() {
        let put: PutJobParameters = serde_json::from_str(
            r#"{"location":"West US","tags":{"tag1":"value1"},"properties":{
                "storageAccountId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
                "jobType":"Export","returnAddress":{"recipientName":"Tets","streetAddress1":"Street1",
                "streetAddress2":"street2","city":"Redmond","stateOrProvince":"wa","postalCode":"98007",
                "countryOrRegion":"USA","phone":"4250000000","email":"Test@contoso.com"},
                "returnShipping":{"carrierName":"FedEx","carrierAccountNumber":"989ffff"},
                "diagnosticsPath":"waimportexport","logLevel":"Verbose","backupDriveManifest":true,
                "export":{"blobListBlobPath":"/exportcontainer/list.xml"},
                "encryptionKey":{"kekType":"MicrosoftManaged"}}}"#,
        )
        .expect("put body");
        assert_eq!(put.tags.get("tag1").map(String::as_str), Some("value1"));
        assert_eq!(put.properties.job_type, JobType::Export);
        assert_eq!(put.properties.log_level, LogLevel::Verbose);
        assert!(put.properties.backup_drive_manifest);

        let update: UpdateJobParameters = serde_json::from_str(
            r#"{"tags":{},"properties":{"state":"Shipping","cancelRequested":true,
                "deliveryPackage":{"carrierName":"FedEx","trackingNumber":"1","driveCount":1,"shipDate":"2026-01-01"},
                "logLevel":"Error","backupDriveManifest":false}}"#,
        )
        .expect("update body");
        assert_eq!(update.properties.state.as_deref(), Some("Shipping"));
        assert_eq!(update.properties.cancel_requested, Some(true));
        assert_eq!(
            update
                .properties
                .delivery_package
                .and_then(|p| p.drive_count),
            Some(1)
        );
    }
}
