//! The `raaft-relay` binary: parses the command line, sets up logging and
//! hands over to the library.

use clap::Parser;
use raaft_relay::cli::{run, Cli};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    raaft_relay::telemetry::init(cli.log_format);
    run(cli).await
}
