//! `ftpmonitor`: parse the command line, install the logger, run, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any thread exists: the logger reads the local time offset.
    ftpmonitor::logging::init(log::LevelFilter::Info);
    let cli = ftpmonitor::cli::Cli::parse();
    ftpmonitor::app::run(cli)
}
