//! Test fixtures for the job module: ARM bodies, a fixed start time and a fake clock.

use super::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A fake clock: starts at a fixed instant and only moves when told to.
pub(crate) struct FakeClock(OffsetDateTime);

impl FakeClock {
    pub(crate) fn new() -> Self {
        FakeClock(datetime!(2026-01-05 09:00 UTC))
    }
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.0
    }
    pub(crate) fn advance(&mut self, by: Duration) -> OffsetDateTime {
        self.0 += by;
        self.0
    }
}

pub(crate) const KEY: &str = "238810-662376-448998-450120-652806-203390-606320-483076";

pub(crate) fn scope() -> ResourceScope {
    ResourceScope {
        subscription_id: "00000000-0000-0000-0000-000000000000".into(),
        resource_group: "rg".into(),
    }
}

pub(crate) fn drive_json(id: &str) -> serde_json::Value {
    serde_json::json!({
        "driveId": id,
        "bitLockerKey": KEY,
        "manifestFile": "\\DriveManifest.xml",
        "manifestHash": "109B21108597EF36D5785F08303F3638",
    })
}

pub(crate) fn address_json() -> serde_json::Value {
    serde_json::json!({
        "recipientName": "Tets", "streetAddress1": "Street1", "city": "Redmond",
        "postalCode": "98007", "countryOrRegion": "USA", "phone": "4250000000",
        "email": "test@contoso.com"
    })
}

pub(crate) fn put_import(drives: &[&str]) -> PutJobParameters {
    let body = serde_json::json!({
        "location": "West US",
        "properties": {
            "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            "jobType": "Import",
            "returnShipping": {"carrierName": "FedEx", "carrierAccountNumber": "989ffff"},
            "driveList": drives.iter().map(|d| drive_json(d)).collect::<Vec<_>>(),
        }
    });
    serde_json::from_value(body).expect("fixture is a valid PutJobParameters")
}

pub(crate) fn put_export() -> PutJobParameters {
    let body = serde_json::json!({
        "location": "West US",
        "properties": {"jobType": "Export", "export": {"blobList": {"blobPathPrefix": ["/"]}}}
    });
    serde_json::from_value(body).expect("fixture is a valid PutJobParameters")
}

pub(crate) fn import_job(drives: &[&str], clock: &FakeClock) -> Job {
    Job::create("job1", &scope(), put_import(drives), clock.now()).expect("valid import job")
}

/// The Update Job body that moves a job to Shipping with everything it needs.
pub(crate) fn ship_update() -> UpdateJobParameters {
    serde_json::from_value(serde_json::json!({
        "properties": {
            "state": "Shipping",
            "returnAddress": address_json(),
            "deliveryPackage": {"carrierName": "FedEx", "trackingNumber": "123456", "driveCount": 2}
        }
    }))
    .expect("fixture is a valid UpdateJobParameters")
}

pub(crate) fn cancel_update() -> UpdateJobParameters {
    serde_json::from_value(serde_json::json!({"properties": {"cancelRequested": true}}))
        .expect("fixture is a valid UpdateJobParameters")
}

pub(crate) fn return_package() -> PackageInformation {
    PackageInformation {
        carrier_name: "FedEx".into(),
        tracking_number: "654321".into(),
        drive_count: 2,
        ship_date: "2026-02-01".into(),
    }
}
