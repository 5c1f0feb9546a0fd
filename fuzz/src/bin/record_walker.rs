//! Fuzz target `record_walker`: see `ringbroker_fuzz::record_walker` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::record_walker(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(ringbroker_fuzz::record_walker, std::env::args().skip(1)) {
        Ok(count) => {
            eprintln!("record_walker: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("record_walker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
