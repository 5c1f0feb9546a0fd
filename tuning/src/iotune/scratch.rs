//! The scratch files iotune measures on: opened with O_DIRECT inside the data directory, preallocated, and
//! removed when dropped (also on error), so a failed run leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::TuneError;

/// An O_DIRECT file that deletes itself on drop.
pub struct ScratchFile {
    file: File,
    path: PathBuf,
}

impl ScratchFile {
    /// Creates `<dir>/.ringbroker-<label>-<pid>.tmp` with O_DIRECT and preallocates `bytes` (0 = none).
    pub fn create(dir: &Path, label: &str, bytes: u64) -> Result<ScratchFile, TuneError> {
        let path = dir.join(format!(".ringbroker-{label}-{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|e| TuneError::io(format!("open {} with O_DIRECT", path.display()), e))?;
        let scratch = ScratchFile { file, path };
        if bytes > 0 {
            scratch.preallocate(bytes)?;
        }
        Ok(scratch)
    }

    fn preallocate(&self, bytes: u64) -> Result<(), TuneError> {
        let len = libc::off_t::try_from(bytes)
            .map_err(|_| TuneError::Invalid(format!("{bytes} bytes is too large")))?;
        // SAFETY: fallocate on an fd we own; mode 0 allocates and extends the file size.
        let rc = unsafe { libc::fallocate(self.fd(), 0, 0, len) };
        if rc != 0 {
            let what = format!(
                "preallocate {bytes} bytes in {} (is the disk full?)",
                self.path.display()
            );
            return Err(TuneError::io(what, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The open file, for positional std I/O (`FileExt::write_all_at`).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        // Best effort: a leftover dot-file in the data dir is harmless and named after iotune.
        let _ = std::fs::remove_file(&self.path);
    }
}
