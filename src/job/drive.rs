//! Drives of a job: the [`DriveState`] machine, the ARM `DriveStatus` record, the drive copy
//! status and the redacted BitLocker key. Pure data and rules; transitions live in `transition.rs`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of one drive of a job (azure-import-export.md §6.2; ARM enum `DriveState`, plus
/// `Faulted` from the Faulted section).
///
/// ```mermaid
/// stateDiagram-v2
///     [*] --> Specified: import, put job
///     [*] --> Received: export, drive arrives
///     Specified --> Received: arrives (job Shipping or later)
///     Specified --> NeverReceived: package without it, or 14 days in Shipping
///     NeverReceived --> Received: turns up later
///     Received --> Transferring: copy starts
///     Received --> ShippedBack: shipped back uncopied (cancelled job or late arrival)
///     Transferring --> Completed: copy status Completed
///     Transferring --> CompletedMoreInfo: warnings, errors or a drive-level failure
///     Completed --> ShippedBack
///     CompletedMoreInfo --> ShippedBack
///     Received --> Faulted
///     Transferring --> Faulted
///     Completed --> Faulted
///     CompletedMoreInfo --> Faulted
///     Faulted --> Received: resolved (from Received or Transferring)
///     Faulted --> Completed: resolved
///     Faulted --> CompletedMoreInfo: resolved
///     ShippedBack --> [*]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DriveState {
    /// Listed by Put Job; not yet at the data centre (import only).
    /// Exits: `Received`, `NeverReceived`.
    Specified,
    /// At the data centre and processed in by an operator; the initial state of an export drive.
    /// Exits: `Transferring`, `ShippedBack`, `Faulted`.
    Received,
    /// The package arrived without it, or 14 days passed in `Shipping` with nothing received.
    /// Exits: `Received`.
    NeverReceived,
    /// Being copied.
    /// Exits: `Completed`, `CompletedMoreInfo`, `Faulted`.
    Transferring,
    /// Copied with copy status `Completed`.
    /// Exits: `ShippedBack`, `Faulted`.
    Completed,
    /// Copied with warnings or errors, or stopped by a drive-level failure (see `copyStatus`).
    /// Exits: `ShippedBack`, `Faulted`.
    CompletedMoreInfo,
    /// Shipped to the return address.
    /// Exits: none.
    ShippedBack,
    /// Put aside by an operator with a reason.
    /// Exits: `Received` (resolved from `Received` or `Transferring`), `Completed`,
    /// `CompletedMoreInfo`.
    Faulted,
}

impl DriveState {
    /// Every state.
    pub const ALL: [DriveState; 8] = [
        DriveState::Specified,
        DriveState::Received,
        DriveState::NeverReceived,
        DriveState::Transferring,
        DriveState::Completed,
        DriveState::CompletedMoreInfo,
        DriveState::ShippedBack,
        DriveState::Faulted,
    ];

    /// The states this state may move to directly (the diagram above).
    pub fn exits(self) -> &'static [DriveState] {
        use DriveState::*;
        match self {
            Specified => &[Received, NeverReceived],
            Received => &[Transferring, ShippedBack, Faulted],
            NeverReceived => &[Received],
            Transferring => &[Completed, CompletedMoreInfo, Faulted],
            Completed | CompletedMoreInfo => &[ShippedBack, Faulted],
            ShippedBack => &[],
            Faulted => &[Received, Completed, CompletedMoreInfo],
        }
    }

    /// Whether the drive is physically at the data centre.
    pub fn is_on_site(self) -> bool {
        use DriveState::*;
        matches!(
            self,
            Received | Transferring | Completed | CompletedMoreInfo | Faulted
        )
    }

    /// Azure's spelling of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            DriveState::Specified => "Specified",
            DriveState::Received => "Received",
            DriveState::NeverReceived => "NeverReceived",
            DriveState::Transferring => "Transferring",
            DriveState::Completed => "Completed",
            DriveState::CompletedMoreInfo => "CompletedMoreInfo",
            DriveState::ShippedBack => "ShippedBack",
            DriveState::Faulted => "Faulted",
        }
    }
}

impl fmt::Display for DriveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of copying one drive: the DriveLog drive status codes (azure-import-export.md §2.4),
/// used as the DriveStatus `copyStatus` ((inferred) in §4.1: the values are not enumerated).
///
/// The same type as the drive log's status, so a copy's result goes into the job unchanged.
pub type CopyStatus = crate::copylog::DriveLogStatus;

impl crate::copylog::DriveLogStatus {
    /// The drive state a drive with this copy status ends in (§6.2, (inferred) mapping):
    /// `Completed` gives `Completed`; everything else gives `CompletedMoreInfo`.
    pub fn drive_state(&self) -> DriveState {
        match self {
            CopyStatus::Completed => DriveState::Completed,
            _ => DriveState::CompletedMoreInfo,
        }
    }

    /// Whether this status is an error for the Completed-or-Closed decision (§6.1): everything but
    /// `Completed` and `CompletedWithWarnings` (warnings alone still give `Completed`).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            CopyStatus::Completed | CopyStatus::CompletedWithWarnings
        )
    }
}

/// A BitLocker recovery key (48-digit numerical password, azure-import-export.md §4.3).
///
/// Debug and Display print `<redacted>`; only serde sees the value (the job document needs it,
/// and [`crate::job::JobResponse`] leaves it out unless an operator asks).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BitLockerKey(String);

impl BitLockerKey {
    /// Wrap a key. Nothing is checked here; [`BitLockerKey::is_well_formed`] checks the format.
    pub fn new(key: impl Into<String>) -> Self {
        BitLockerKey(key.into())
    }

    /// The key itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the key is 8 groups of 6 ASCII digits separated by `-` (§4.3).
    pub fn is_well_formed(&self) -> bool {
        let groups: Vec<&str> = self.0.split('-').collect();
        groups.len() == 8
            && groups
                .iter()
                .all(|group| group.len() == 6 && group.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl fmt::Debug for BitLockerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BitLockerKey(<redacted>)")
    }
}

impl fmt::Display for BitLockerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One drive of a job: the ARM `DriveStatus` (azure-import-export.md §4.1), camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveStatus {
    /// The drive's hardware serial number (no spaces).
    #[serde(default)]
    pub drive_id: String,
    /// The BitLocker key; left out of responses unless an operator asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_locker_key: Option<BitLockerKey>,
    /// The manifest's path relative to the drive root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_file: Option<String>,
    /// Base16 MD5 of the manifest file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_hash: Option<String>,
    /// Hash of the drive header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_header_hash: Option<String>,
    /// The drive state.
    #[serde(default = "specified")]
    pub state: DriveState,
    /// The copy status; absent until the drive is `Transferring` (§4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_status: Option<CopyStatus>,
    /// Percent of the drive copied, 0 to 100.
    #[serde(default)]
    pub percent_complete: u8,
    /// URI of the verbose log blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbose_log_uri: Option<String>,
    /// URI of the error log blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_log_uri: Option<String>,
    /// URI of the manifest backup blob (when backupDriveManifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_uri: Option<String>,
    /// Bytes successfully transferred for the drive.
    #[serde(default)]
    pub bytes_succeeded: u64,
}

fn specified() -> DriveState {
    DriveState::Specified
}

impl DriveStatus {
    /// A drive record in `state` with nothing else known but its id.
    pub fn new(drive_id: impl Into<String>, state: DriveState) -> Self {
        DriveStatus {
            drive_id: drive_id.into(),
            bit_locker_key: None,
            manifest_file: None,
            manifest_hash: None,
            drive_header_hash: None,
            state,
            copy_status: None,
            percent_complete: 0,
            verbose_log_uri: None,
            error_log_uri: None,
            manifest_uri: None,
            bytes_succeeded: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_status_maps_to_drive_state_and_error() {
        let check = |status: CopyStatus, state: DriveState, error: bool| {
            assert_eq!(status.drive_state(), state, "{status}");
            assert_eq!(status.is_error(), error, "{status}");
        };
        check(CopyStatus::Completed, DriveState::Completed, false);
        check(
            CopyStatus::CompletedWithWarnings,
            DriveState::CompletedMoreInfo,
            false,
        );
        check(
            CopyStatus::CompletedWithErrors,
            DriveState::CompletedMoreInfo,
            true,
        );
        check(
            CopyStatus::BitLockerKeyInvalid,
            DriveState::CompletedMoreInfo,
            true,
        );
        check(
            CopyStatus::ManifestCorrupted,
            DriveState::CompletedMoreInfo,
            true,
        );
    }

    #[test]
    fn bit_locker_key_is_redacted_and_checked() {
        let key = BitLockerKey::new("238810-662376-448998-450120-652806-203390-606320-483076");
        assert!(key.is_well_formed());
        assert!(!format!("{key:?} {key}").contains("238810"));
        assert!(!BitLockerKey::new("238810-662376").is_well_formed());
        assert!(
            !BitLockerKey::new("23881a-662376-448998-450120-652806-203390-606320-483076")
                .is_well_formed()
        );
    }

    #[test]
    fn drive_state_serializes_with_azure_spelling() {
        for state in DriveState::ALL {
            let json = format!("\"{}\"", state.as_str());
            assert_eq!(serde_json::to_string(&state).ok(), Some(json.clone()));
            assert_eq!(serde_json::from_str::<DriveState>(&json).ok(), Some(state));
        }
    }
}
