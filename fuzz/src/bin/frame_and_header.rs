//! Fuzz target `frame_and_header`: see `ringbroker_fuzz::frame_and_header` for what it exercises and README.md for how to run it.

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = ringbroker_fuzz::frame_and_header(data);
    });
}

/// Plain build (`--no-default-features`): runs each file or directory named on the command line.
#[cfg(not(feature = "afl"))]
fn main() -> std::process::ExitCode {
    match ringbroker_fuzz::run_files(ringbroker_fuzz::frame_and_header, std::env::args().skip(1)) {
        Ok(count) => {
            eprintln!("frame_and_header: {count} inputs ran without a crash");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frame_and_header: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
