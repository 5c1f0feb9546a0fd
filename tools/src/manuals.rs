//! `ringbroker completions SHELL` and `ringbroker man`: shell completions and man pages generated
//! from the clap definitions, so they always match the binary they come with (the Debian package
//! runs both at build time).

use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: Shell) -> ExitCode {
    let mut command = crate::cli_command();
    clap_complete::generate(shell, &mut command, "ringbroker", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes `ringbroker.1` and a page per subcommand (`ringbroker-serve.1`, ...) into `out_dir`.
pub fn man_pages(out_dir: &Path) -> ExitCode {
    let written = std::fs::create_dir_all(out_dir)
        .and_then(|()| clap_mangen::generate_to(crate::cli_command(), out_dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: cannot write man pages into {}: {e}",
                out_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
