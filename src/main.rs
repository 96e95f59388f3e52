//! `ftpmonitor`: parse the command line, install the logger, run, exit.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Before any thread exists: one malloc arena for all of them, and the
    // logger reads the local time offset.
    ftpmonitor::daemon::one_malloc_arena();
    ftpmonitor::logging::init(log::LevelFilter::Info);
    match ftpmonitor::cli::Cli::try_parse() {
        Ok(cli) => ftpmonitor::app::run(cli),
        Err(e) => ftpmonitor::cli::report(&e),
    }
}
