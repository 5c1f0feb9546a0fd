//! The clean-shutdown checkpoint: written by `close` after every byte is written, synced and every
//! index file is in place; read and deleted by the next `open`. Present means "trust the files, no
//! scan"; absent means the last run did not shut down cleanly and the active segment is scanned.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::files;

/// File name of the checkpoint inside the partition directory.
pub const CHECKPOINT_FILE_NAME: &str = "clean-shutdown.checkpoint";

/// Format version; a checkpoint of another version is ignored (forces a scan, never wrong data).
const CHECKPOINT_VERSION: u32 = 1;

/// What a clean shutdown knows about the active (last) segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CleanShutdown {
    pub version: u32,
    pub active_base_offset: i64,
    pub active_size_bytes: u64,
    pub next_offset: i64,
}

impl CleanShutdown {
    pub(crate) fn new(active_base_offset: i64, active_size_bytes: u64, next_offset: i64) -> Self {
        CleanShutdown {
            version: CHECKPOINT_VERSION,
            active_base_offset,
            active_size_bytes,
            next_offset,
        }
    }
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE_NAME)
}

/// Writes the checkpoint atomically (and syncs the directory).
pub(crate) async fn write(dir: &Path, checkpoint: CleanShutdown) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(&checkpoint)
        .map_err(|error| StorageError::Corrupt(format!("encoding checkpoint: {error}")))?;
    files::write_file_atomically(&checkpoint_path(dir), bytes).await
}

/// Reads and deletes the checkpoint: from now on the log is open for writing and a crash must force
/// a scan. An unreadable checkpoint counts as absent.
pub(crate) async fn take(dir: &Path) -> Result<Option<CleanShutdown>, StorageError> {
    let path = checkpoint_path(dir);
    let Some(bytes) = files::read_small_file(&path).await? else {
        return Ok(None);
    };
    files::remove_if_exists(&path).await?;
    files::sync_directory(dir).await?;
    let checkpoint = match serde_json::from_slice::<CleanShutdown>(&bytes) {
        Ok(checkpoint) if checkpoint.version == CHECKPOINT_VERSION => Some(checkpoint),
        Ok(checkpoint) => {
            tracing::warn!(
                ?checkpoint,
                "ignoring checkpoint of another version; scanning the log"
            );
            None
        }
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "ignoring unreadable checkpoint; scanning the log");
            None
        }
    };
    Ok(checkpoint)
}
