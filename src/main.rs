//! The `drivecopy` binary: parse the command line, set up tracing on stderr, run, exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::exit::Exit;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("drivecopy: error: {err:#}");
            Exit::Internal.into()
        }
    }
}
