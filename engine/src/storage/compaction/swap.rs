//! Crash-safe replacement of a segment by its cleaned copy (Kafka's `.cleaned` / `.swap` protocol).
//!
//! 1. the cleaner writes `<base>.log.cleaned` and fdatasyncs it (a leftover `.cleaned` is incomplete:
//!    recovery deletes it, the old segment is whole);
//! 2. `.cleaned` is renamed to `<base>.log.swap`, directory synced: from here on the new data is
//!    complete and recovery finishes the swap;
//! 3. the old segment's index files are removed (they describe the old positions);
//! 4. `.swap` is renamed over `<base>.log` (atomic replace), directory synced;
//! 5. the cleaner writes the new index files atomically (a crash before leaves no index files: the
//!    next open rebuilds them by scanning the sealed segment).
//!
//! At every point the name `<base>.log` holds either the old or the new segment. Readers that had
//! the old file open keep reading the old inode (Linux keeps it alive until the last fd closes).

use std::path::{Path, PathBuf};

use crate::storage::error::StorageError;
use crate::storage::files;
use crate::storage::segment::{
    parse_log_file_name, segment_file_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Suffix (after `.log`) of a cleaned segment being written.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix (after `.log`) of a complete cleaned segment waiting to replace the original.
pub const SWAP_SUFFIX: &str = "swap";

/// Steps of [`commit_swap`], for the crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SwapStep {
    RenamedToSwap,
    RemovedIndexes,
    /// The log is replaced, the new index files are not written yet.
    #[cfg(test)]
    ReplacedLog,
}

/// Every step, in order.
#[cfg(test)]
pub(crate) const SWAP_STEPS: [SwapStep; 3] = [
    SwapStep::RenamedToSwap,
    SwapStep::RemovedIndexes,
    SwapStep::ReplacedLog,
];

fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut name = path.into_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// `<dir>/<base>.log.cleaned`.
pub(crate) fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    with_suffix(
        segment_file_path(dir, base_offset, LOG_SUFFIX),
        CLEANED_SUFFIX,
    )
}

/// `<dir>/<base>.log.swap`.
pub(crate) fn swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    with_suffix(segment_file_path(dir, base_offset, LOG_SUFFIX), SWAP_SUFFIX)
}

/// Steps 2-4: installs the synced `<base>.log.cleaned` as `<base>.log`. `crash_after` stops after
/// that step (tests simulate a crash with it).
pub(crate) async fn commit_swap(
    dir: &Path,
    base_offset: i64,
    crash_after: Option<SwapStep>,
) -> Result<(), StorageError> {
    let swap = swap_path(dir, base_offset);
    glommio::io::rename(cleaned_path(dir, base_offset), &swap).await?;
    files::sync_directory(dir).await?;
    if crash_after == Some(SwapStep::RenamedToSwap) {
        return Ok(());
    }
    remove_indexes(dir, base_offset).await?;
    if crash_after == Some(SwapStep::RemovedIndexes) {
        return Ok(());
    }
    glommio::io::rename(&swap, segment_file_path(dir, base_offset, LOG_SUFFIX)).await?;
    files::sync_directory(dir).await?;
    Ok(())
}

async fn remove_indexes(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        files::remove_if_exists(&segment_file_path(dir, base_offset, suffix)).await?;
    }
    Ok(())
}

/// Recovery: deletes incomplete `.cleaned` files and finishes every `.swap` (steps 3-4). Runs before
/// the segments are listed.
pub(crate) async fn finish_interrupted_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    // Blocking, but once per partition open and tiny.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(log_name) = name.strip_suffix(&format!(".{CLEANED_SUFFIX}")) {
            if parse_log_file_name(log_name).is_some() {
                cleaned.push(entry.path());
            }
        } else if let Some(log_name) = name.strip_suffix(&format!(".{SWAP_SUFFIX}")) {
            if let Some(base_offset) = parse_log_file_name(log_name) {
                swaps.push(base_offset);
            }
        }
    }
    for path in &cleaned {
        files::remove_if_exists(path).await?;
    }
    for &base_offset in &swaps {
        tracing::info!(dir = %dir.display(), base_offset, "finishing an interrupted segment swap");
        remove_indexes(dir, base_offset).await?;
        glommio::io::rename(
            swap_path(dir, base_offset),
            segment_file_path(dir, base_offset, LOG_SUFFIX),
        )
        .await?;
    }
    if !cleaned.is_empty() || !swaps.is_empty() {
        files::sync_directory(dir).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::run;

    const OLD: &[u8] = b"old segment bytes";
    const NEW: &[u8] = b"new";

    fn setup(dir: &Path) {
        std::fs::write(segment_file_path(dir, 5, LOG_SUFFIX), OLD).expect("log");
        std::fs::write(segment_file_path(dir, 5, INDEX_SUFFIX), b"i").expect("index");
        std::fs::write(segment_file_path(dir, 5, TIME_INDEX_SUFFIX), b"t").expect("tindex");
    }

    fn state(dir: &Path) -> (Vec<u8>, bool) {
        let log = std::fs::read(segment_file_path(dir, 5, LOG_SUFFIX)).expect("a log file");
        let index = segment_file_path(dir, 5, INDEX_SUFFIX).exists();
        (log, index)
    }

    fn leftovers(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("list")
            .filter(|entry| {
                let name = entry.as_ref().expect("entry").file_name();
                let name = name.to_string_lossy().into_owned();
                name.ends_with(CLEANED_SUFFIX) || name.ends_with(SWAP_SUFFIX)
            })
            .count()
    }

    #[test]
    fn a_crash_at_any_step_leaves_the_old_or_the_new_segment() {
        run(|| async {
            // Crash while the cleaned file is still being written: the old segment stays.
            let temp = tempfile::tempdir().expect("tempdir");
            setup(temp.path());
            std::fs::write(cleaned_path(temp.path(), 5), &NEW[..1]).expect("partial");
            finish_interrupted_swaps(temp.path())
                .await
                .expect("recover");
            assert_eq!(state(temp.path()), (OLD.to_vec(), true));
            assert_eq!(leftovers(temp.path()), 0);

            for step in SWAP_STEPS {
                let temp = tempfile::tempdir().expect("tempdir");
                setup(temp.path());
                std::fs::write(cleaned_path(temp.path(), 5), NEW).expect("cleaned");
                commit_swap(temp.path(), 5, Some(step)).await.expect("swap");
                finish_interrupted_swaps(temp.path())
                    .await
                    .expect("recover");
                // Once `.swap` exists the new data wins, and the old indexes never describe it.
                assert_eq!(state(temp.path()), (NEW.to_vec(), false), "{step:?}");
                assert_eq!(leftovers(temp.path()), 0, "{step:?}");
            }

            let temp = tempfile::tempdir().expect("tempdir");
            setup(temp.path());
            std::fs::write(cleaned_path(temp.path(), 5), NEW).expect("cleaned");
            commit_swap(temp.path(), 5, None).await.expect("swap");
            assert_eq!(state(temp.path()), (NEW.to_vec(), false));
            finish_interrupted_swaps(temp.path()).await.expect("no-op");
            assert_eq!(state(temp.path()), (NEW.to_vec(), false));
        });
    }
}
