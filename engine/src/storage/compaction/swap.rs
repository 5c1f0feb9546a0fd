//! Crash-safe replacement of a segment by its cleaned copy (Kafka's `.cleaned` / `.swap` protocol).
//!
//! 1. the cleaner writes `<base>.log.cleaned` and fdatasyncs it (a leftover `.cleaned` is incomplete:
//!    recovery deletes it, the old segment is whole);
//! 2. [`stage_swap`]: `.cleaned` is renamed to `<base>.log.swap`, directory synced: from here on the
//!    new data is complete and recovery finishes the swap. The log serves new reads from `.swap`
//!    while `<base>.log` still holds the old data for reads planned earlier: Fetch hands out file
//!    ranges by path and `sendfile` opens the path later, so a path must never change content under a
//!    planned range. The cleaner waits [`SWAP_GRACE`] before step 3.
//! 3. [`replace_log`]: the old index files are removed (they describe the old positions), `.swap` is
//!    hard-linked to `<base>.log.tmp` and that renamed over `<base>.log` (atomic replace), directory
//!    synced; the log serves `<base>.log` again and the cleaner writes the new index files (a crash
//!    before leaves none: the next open rebuilds them by scanning the sealed segment);
//! 4. after another [`SWAP_GRACE`] (reads planned on `.swap`), [`remove_swap`] deletes `.swap`.
//!
//! At every point the name `<base>.log` holds either the old or the new segment, and recovery
//! ([`finish_interrupted_swaps`]) renames a `.swap` over it. A close (shutdown) after step 2 leaves
//! the files as they are for that recovery: reads may have been served the new data, so a restart
//! must not bring back the old (the cleaner removes a `.swap` only when its segment left the log). Readers that had a file open keep
//! reading its inode (Linux keeps it alive until the last fd closes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::error::StorageError;
use crate::storage::files;
use crate::storage::segment::{
    parse_log_file_name, segment_file_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Suffix (after `.log`) of a cleaned segment being written.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix (after `.log`) of a complete cleaned segment waiting to replace the original.
pub const SWAP_SUFFIX: &str = "swap";

/// How long a replaced segment file keeps its content under its old name for reads planned before
/// the swap (the path is opened by `sendfile` when the response is written, normally within
/// milliseconds; a slow client's earlier responses can delay it more).
#[cfg(not(test))]
pub const SWAP_GRACE: Duration = Duration::from_secs(2);
/// Tests do not wait for readers.
#[cfg(test)]
pub const SWAP_GRACE: Duration = Duration::from_millis(10);

/// Steps of the swap, for the crash tests.
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

/// Step 2: the synced `<base>.log.cleaned` becomes `<base>.log.swap`.
pub(crate) async fn stage_swap(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    glommio::io::rename(cleaned_path(dir, base_offset), swap_path(dir, base_offset)).await?;
    files::sync_directory(dir).await
}

/// Step 3: `<base>.log` gets the content of `.swap` (which stays, for reads planned on it).
/// `crash_after` stops after that step (tests simulate a crash with it).
pub(crate) async fn replace_log(
    dir: &Path,
    base_offset: i64,
    crash_after: Option<SwapStep>,
) -> Result<(), StorageError> {
    remove_indexes(dir, base_offset).await?;
    if crash_after == Some(SwapStep::RemovedIndexes) {
        return Ok(());
    }
    let log = segment_file_path(dir, base_offset, LOG_SUFFIX);
    let mut link = log.clone().into_os_string();
    link.push(".");
    link.push(files::TEMPORARY_SUFFIX);
    let link = PathBuf::from(link);
    files::remove_if_exists(&link).await?;
    // Blocking but tiny: glommio has no link(2).
    std::fs::hard_link(swap_path(dir, base_offset), &link)?;
    glommio::io::rename(&link, &log).await?;
    files::sync_directory(dir).await
}

/// Step 4: removes `.swap` once no read can still use it.
pub(crate) async fn remove_swap(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    files::remove_if_exists(&swap_path(dir, base_offset)).await
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
        // rename(2) does nothing when both names are links of one file (a crash after step 3).
        remove_swap(dir, base_offset).await?;
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
                stage_swap(temp.path(), 5).await.expect("stage");
                if step != SwapStep::RenamedToSwap {
                    replace_log(temp.path(), 5, Some(step))
                        .await
                        .expect("replace");
                }
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
            stage_swap(temp.path(), 5).await.expect("stage");
            replace_log(temp.path(), 5, None).await.expect("replace");
            assert_eq!(state(temp.path()), (NEW.to_vec(), false));
            remove_swap(temp.path(), 5).await.expect("remove swap");
            assert_eq!(leftovers(temp.path()), 0);
            finish_interrupted_swaps(temp.path()).await.expect("no-op");
            assert_eq!(state(temp.path()), (NEW.to_vec(), false));
        });
    }
}
