//! `ringbroker serve`: parses the server flags and hands over to the engine.
//! (Owned by the broker-core work; the engine wiring lands with it.)

use std::process::ExitCode;

/// Flags of `ringbroker serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address the Kafka listener binds on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: String,
}

/// Runs the broker until SIGINT/SIGTERM.
pub fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("ringbroker serve: not wired to the engine yet");
    ExitCode::FAILURE
}
