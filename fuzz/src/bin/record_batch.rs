//! Fuzz target `record_batch`: see `ringbroker_fuzz::record_batch` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::record_batch(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(ringbroker_fuzz::record_batch, std::env::args().skip(1)) {
        Ok(count) => {
            eprintln!("record_batch: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("record_batch: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
