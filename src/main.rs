//! The `raaft-relay` binary: parses the command line, sets up logging and
//! hands over to the library.

use clap::Parser;
use raaft_relay::cli::{run, Cli};
use std::process::ExitCode;

/// mimalloc: ingest allocates many small, short-lived objects (the parsed
/// event, SQL arguments) across threads, where it is markedly faster than
/// the system allocator. Without transparent huge pages (`no_thp`), which
/// would nearly double the idle footprint.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    raaft_relay::telemetry::init(cli.log_format);
    run(cli).await
}
