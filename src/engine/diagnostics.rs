//! Where the drive logs and manifest backups go: the diagnostics path and the `waies/` blob names.
//!
//! Source: azure-import-export.md §2.2. With an account-level credential the diagnostics path names a
//! container (default `waimportexport`); a longer path `container/dir` places the blobs in a virtual
//! directory of that container. Blob names are `waies/<job>_<driveid>_<timestamp>_<kind>.xml` with the
//! timestamp `yyyyMMdd-HHmmss-fff` in UTC (the documented example is
//! `myjob_9WM35C2V_20130921-034307-902_error.xml`).

use time::OffsetDateTime;

use crate::names::{validate_container_name, BlobPath, NameError};

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
}

impl DiagnosticsKind {
    fn suffix(self) -> &'static str {
        match self {
            DiagnosticsKind::Error => "error",
            DiagnosticsKind::Verbose => "verbose",
            DiagnosticsKind::Manifest => "manifest",
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
