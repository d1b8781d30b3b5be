//! Where the drive logs and manifest backups go: the diagnostics path and the `waies/` blob names.
//!
//! Source: azure-import-export.md §2.2. With an account-level credential the diagnostics path names a
//! container (default `waimportexport`); a longer path `container/dir` places the blobs in a virtual
//! directory of that container. Blob names are `waies/<job>_<driveid>_<timestamp>_<kind>.xml` with the
//! timestamp `yyyyMMdd-HHmmss-fff` in UTC (the documented example is
//! `myjob_9WM35C2V_20130921-034307-902_error.xml`).

use bytes::Bytes;
use time::OffsetDateTime;

use crate::events::{warning, EventSink};
use crate::names::{validate_container_name, BlobPath, NameError};
use crate::store::{BlobStore, CommitOptions, ContentProperties};

/// The default diagnostics path (ARM `diagnosticsPath`).
pub const DEFAULT_DIAGNOSTICS_PATH: &str = "waimportexport";

/// What a diagnostics blob holds; its name ends in `_<kind>.xml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticsKind {
    /// The error log: failed entries only.
    Error,
    /// The verbose log: every blob.
    Verbose,
    /// A copy of the drive manifest (`backupDriveManifest`).
    Manifest,
    /// An export's list of the blobs that did not fit on the drive (`incompleteBlobListUri`).
    IncompleteBlobList,
}

impl DiagnosticsKind {
    fn suffix(self) -> &'static str {
        match self {
            DiagnosticsKind::Error => "error",
            DiagnosticsKind::Verbose => "verbose",
            DiagnosticsKind::Manifest => "manifest",
            DiagnosticsKind::IncompleteBlobList => "incompleteblobs",
        }
    }
}

/// The blob path of a diagnostics blob.
///
/// `diagnostics_path` is `container` or `container/virtual/dir`; `job` and `drive_id` go into the
/// name as given (a job name is used verbatim, an absent one is written `drivecopy`).
///
/// # Errors
/// [`NameError`] if the diagnostics container is not a valid container name or the resulting blob name
/// breaks the blob-name rules.
pub fn diagnostics_blob(
    diagnostics_path: &str,
    job: &str,
    drive_id: &str,
    at: OffsetDateTime,
    kind: DiagnosticsKind,
) -> Result<BlobPath, NameError> {
    let trimmed = diagnostics_path.trim_matches('/');
    let (container, dir) = match trimmed.split_once('/') {
        Some((c, d)) => (c, format!("{}/", d.trim_matches('/'))),
        None => (trimmed, String::new()),
    };
    validate_container_name(container)?;
    let at = at.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:03}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    );
    let name = format!("{dir}waies/{job}_{drive_id}_{stamp}_{}.xml", kind.suffix());
    BlobPath::parse(&format!("{container}/{name}"))
}

/// Where one run's diagnostics blobs go: the diagnostics path, and the job, drive and time that
/// name them.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosticsTarget<'a> {
    /// `container` or `container/virtual/dir`.
    pub diagnostics_path: &'a str,
    /// The job name (`drivecopy` when the run has none).
    pub job: &'a str,
    /// The drive id.
    pub drive_id: &'a str,
    /// The run's start, which stamps every blob name of the run.
    pub at: OffsetDateTime,
}

/// Put each `(kind, XML)` document as its diagnostics blob (content type `application/xml`,
/// creating the container) and return the URLs of those written, in order. A document that
/// cannot be written is reported as a `LogWriteFailed` warning and left out; the run goes on.
pub async fn write_diagnostics(
    store: &dyn BlobStore,
    events: &dyn EventSink,
    target: DiagnosticsTarget<'_>,
    documents: Vec<(DiagnosticsKind, Bytes)>,
) -> Vec<(DiagnosticsKind, String)> {
    let mut written = Vec::new();
    for (kind, xml) in documents {
        let path = match diagnostics_blob(
            target.diagnostics_path,
            target.job,
            target.drive_id,
            target.at,
            kind,
        ) {
            Ok(p) => p,
            Err(e) => {
                events.emit(warning("LogWriteFailed", e.to_string(), None));
                continue;
            }
        };
        let put = async {
            store.create_container(&path.container).await?;
            let options = CommitOptions {
                content: ContentProperties {
                    content_type: Some("application/xml".to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            store.put_blob(&path, xml, options).await?;
            store.blob_url(&path).await
        }
        .await;
        match put {
            Ok(url) => written.push((kind, url)),
            Err(e) => events.emit(warning(
                "LogWriteFailed",
                e.to_string(),
                Some(path.to_string()),
            )),
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn matches_the_documented_example() {
        let at = datetime!(2013-09-21 03:43:07.902 UTC);
        let p = diagnostics_blob(
            "waimportexport",
            "myjob",
            "9WM35C2V",
            at,
            DiagnosticsKind::Error,
        )
        .unwrap();
        assert_eq!(
            p.to_string(),
            "waimportexport/waies/myjob_9WM35C2V_20130921-034307-902_error.xml"
        );
    }

    #[test]
    fn virtual_directory_and_kinds() {
        let at = datetime!(2026-01-02 03:04:05.006 +01:00);
        let p =
            diagnostics_blob("/logs/station1/", "j", "D1", at, DiagnosticsKind::Manifest).unwrap();
        assert_eq!(p.container, "logs");
        assert_eq!(
            p.name,
            "station1/waies/j_D1_20260102-020405-006_manifest.xml"
        );
        assert!(diagnostics_blob("Bad_Container", "j", "d", at, DiagnosticsKind::Verbose).is_err());
    }
}
