//! The command line: clap definitions, one file per subcommand, stdout output and exit codes.
//!
//! Only this module (and `main.rs`) knows about clap, `anyhow`, stdout and process exit codes. Each
//! subcommand turns its arguments into a plain library configuration, runs it, and returns an
//! [`exit::Exit`]. Errors that reach `main` are internal failures (exit 10).

mod args;
pub mod exit;
mod export;
mod import;
mod inspect;
mod job;
mod joblink;
mod output;
mod plan;
mod prepare;
mod verify;

use clap::{Parser, Subcommand};

use exit::Exit;

/// drivecopy: the data path of an Azure Import/Export-style service.
///
/// Imports a drive into blob storage, verified block by block against its manifest, and reports
/// the drive state for the job; exports blobs onto drives; prepares and verifies drives; inspects
/// manifests and drive logs.
#[derive(Debug, Parser)]
#[command(name = "drivecopy", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a drive into a blob store (the service side of an import job).
    Import(import::ImportArgs),
    /// Export blobs onto a drive (the service side of an export job), with the export manifest.
    Export(export::ExportArgs),
    /// Plan an export: drives needed for a blob list, and what goes on each (PreviewExport).
    PlanExport(plan::PlanArgs),
    /// Verify a drive (import or export) against its manifest; prints the bad ranges as a DriveLog.
    Verify(verify::VerifyArgs),
    /// Prepare a drive: copy files onto it (or leave them in place) and write its manifest.
    Prepare(prepare::PrepareArgs),
    /// Inspect drive manifests.
    #[command(subcommand)]
    Manifest(inspect::ManifestCommand),
    /// Inspect drive logs (error and verbose logs).
    #[command(subcommand)]
    Log(inspect::LogCommand),
    /// Manage Import/Export jobs: create, show, list, update, arrivals, faults, ship-back, delete.
    Job(job::JobArgs),
}

/// Run the parsed command line.
///
/// # Errors
/// Internal failures only (a broken station, a bug); every expected outcome is an [`Exit`].
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
        Command::PlanExport(args) => plan::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Prepare(args) => prepare::run(args),
        Command::Manifest(cmd) => inspect::manifest(cmd),
        Command::Log(cmd) => inspect::log(cmd),
        Command::Job(args) => job::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
