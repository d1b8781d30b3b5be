//! Process exit codes: the one place they are defined.
//!
//! An orchestrator tells outcomes apart by these codes alone; the final `result` event on stdout
//! carries the same outcome in detail. The table is repeated in the README.

use std::process::ExitCode;

/// How a `drivecopy` run ended.
///
/// | code | variant | meaning |
/// |---|---|---|
/// | 0 | `Completed` | the drive copied with no error or warning (drive state `Completed`); a validated document is valid |
/// | 1 | `CompletedMoreInfo` | the copy finished with warnings or blob errors (drive state `CompletedMoreInfo`) |
/// | 2 | `Usage` | bad command-line arguments (clap's own code) |
/// | 3 | `DriveFailed` | a drive-level failure (`ManifestNotFound`, `ManifestCorrupted`, `BlobRequestForbidden`, ...): nothing or little was copied |
/// | 4 | `InvalidDocument` | a document given to `manifest validate` or `log show` could not be read or has problems |
/// | 5 | `Cancelled` | stopped by SIGINT or SIGTERM; no partially committed blob; a `result` event was still written |
/// | 6 | `IllegalTransition` | a job command that the job's state does not allow |
/// | 10 | `Internal` | a bug or an unexpected local failure (I/O on the station itself) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Code 0.
    Completed,
    /// Code 1.
    CompletedMoreInfo,
    /// Code 2.
    Usage,
    /// Code 3.
    DriveFailed,
    /// Code 4.
    InvalidDocument,
    /// Code 5.
    Cancelled,
    /// Code 6.
    IllegalTransition,
    /// Code 10.
    Internal,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Completed => 0,
            Exit::CompletedMoreInfo => 1,
            Exit::Usage => 2,
            Exit::DriveFailed => 3,
            Exit::InvalidDocument => 4,
            Exit::Cancelled => 5,
            Exit::IllegalTransition => 6,
            Exit::Internal => 10,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Exit::Completed,
            Exit::CompletedMoreInfo,
            Exit::Usage,
            Exit::DriveFailed,
            Exit::InvalidDocument,
            Exit::Cancelled,
            Exit::IllegalTransition,
            Exit::Internal,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(Exit::Usage.code(), 2, "clap exits with 2 on usage errors");
    }
}
