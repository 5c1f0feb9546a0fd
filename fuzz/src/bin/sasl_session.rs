//! Fuzz target `sasl_session`: see `ringbroker_fuzz::security::sasl_session` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::security::sasl_session(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(
        ringbroker_fuzz::security::sasl_session,
        std::env::args().skip(1),
    ) {
        Ok(count) => {
            eprintln!("sasl_session: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sasl_session: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
