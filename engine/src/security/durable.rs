//! Small files of the data directory that must never be seen half-written (the SCRAM credentials,
//! the ACLs): written to a temporary file, synced, renamed over the old one, and the directory
//! synced so the rename itself survives a crash.

use std::io::Write;
use std::path::Path;

/// Replaces the file at `path` with `text`, atomically and durably.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
