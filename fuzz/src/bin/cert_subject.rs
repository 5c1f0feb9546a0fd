//! Fuzz target `cert_subject`: see `ringbroker_fuzz::security::cert_subject` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::security::cert_subject(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(
        ringbroker_fuzz::security::cert_subject,
        std::env::args().skip(1),
    ) {
        Ok(count) => {
            eprintln!("cert_subject: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cert_subject: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
