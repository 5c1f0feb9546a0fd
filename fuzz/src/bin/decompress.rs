//! Fuzz target `decompress`: see `ringbroker_fuzz::decompress` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::decompress(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(ringbroker_fuzz::decompress, std::env::args().skip(1)) {
        Ok(count) => {
            eprintln!("decompress: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("decompress: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
