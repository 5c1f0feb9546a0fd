//! Retention: deleting whole segments from the head of the log (Kafka's `retention.ms` and
//! `retention.bytes`). Only sealed segments below the high watermark go (Kafka's rule: records not
//! yet replicated are never deleted); the active one always stays, so the log never loses its end
//! offset. Moving the log start also moves the leader-epoch cache's start (Kafka's
//! `truncateFromStart`). Deleted segments leave the state first (reads stop using them), then their files
//! are removed, index files before the data file so that a crash in between leaves a data file whose
//! index is rebuilt, never an orphan index.

use std::rc::Rc;

use super::appender;
use super::compaction::swap;
use super::error::StorageError;
use super::files;
use super::log::{LogInner, LogState};
use super::segment::{segment_file_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// File (in the partition directory) holding the log start offset when DeleteRecords moved it
/// inside a segment (Kafka's log-start-offset checkpoint); without it the start is the first
/// segment's base offset.
pub(crate) const LOG_START_FILE_NAME: &str = "log-start-offset";

/// Retention limits of one log; `None` means unlimited (Kafka's -1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete a segment once its largest timestamp is older than `now_ms - retention_ms`.
    pub retention_ms: Option<i64>,
    /// Delete the oldest segments while the log stays at least this large without them.
    pub retention_bytes: Option<u64>,
}

/// Deletes the segments past `policy` at time `now_ms`; returns how many were deleted.
pub(crate) async fn apply(
    inner: &Rc<LogInner>,
    policy: RetentionPolicy,
    now_ms: i64,
) -> Result<usize, StorageError> {
    // A segment that just rolled is sealed in its own task; let it finish so it counts.
    inner.wait_seals_done().await;
    // Not beside a truncation or compaction rewriting the same segments.
    let _permit = inner
        .maintenance
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Closed)?;
    let high_watermark = inner.high_watermark.get();
    let (deleted_bases, epochs_dirty) = {
        let mut state = inner.state.borrow_mut();
        let mut remaining_bytes: u64 = state
            .segments
            .iter()
            .map(|segment| segment.size_bytes)
            .sum();
        let mut count = 0;
        let candidates = state.segments.len().saturating_sub(1);
        for segment in &state.segments[..candidates] {
            if !segment.sealed || segment.next_offset > high_watermark {
                break;
            }
            let expired = policy.retention_ms.is_some_and(|retention_ms| {
                // A segment without records (compaction emptied it) has no timestamp: its file's
                // modification time counts instead, as in Kafka's LogSegment.largestTimestamp.
                let largest_timestamp = segment.max_timestamp.map(|(ts, _)| ts).or_else(|| {
                    file_modified_ms(&segment_file_path(
                        &inner.dir,
                        segment.base_offset,
                        LOG_SUFFIX,
                    ))
                });
                largest_timestamp.is_some_and(|ts| ts < now_ms.saturating_sub(retention_ms))
            });
            let oversized = policy.retention_bytes.is_some_and(|retention_bytes| {
                remaining_bytes - segment.size_bytes >= retention_bytes
            });
            if !(expired || oversized) {
                break;
            }
            remaining_bytes -= segment.size_bytes;
            count += 1;
        }
        let deleted: Vec<i64> = state
            .segments
            .drain(..count)
            .map(|segment| segment.base_offset)
            .collect();
        if let Some(first) = state.segments.first() {
            // DeleteRecords may have moved the start inside the new first segment already.
            state.log_start_offset = state.log_start_offset.max(first.base_offset);
        }
        let epochs_dirty = move_epochs_start(&mut state);
        (deleted, epochs_dirty)
    };
    if epochs_dirty {
        appender::kick(inner);
    }
    remove_segment_files(inner, &deleted_bases).await?;
    Ok(deleted_bases.len())
}

/// The leader epochs start where the log starts now; the appender writes the checkpoint (a stale
/// one only holds entries below the start, which the next open drops too).
fn move_epochs_start(state: &mut LogState) -> bool {
    let start = state.log_start_offset;
    state.epochs.truncate_from_start(start);
    state.epochs.is_dirty()
}

/// Modification time of `path` in milliseconds since the epoch; `None` if it cannot be read (the
/// segment then waits for the next retention round rather than being deleted on a guess).
fn file_modified_ms(path: &std::path::Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}

/// Moves the log start offset to `offset` (DeleteRecords) and deletes the sealed segments that lie
/// wholly below it. Returns the new log start offset.
pub(crate) async fn delete_before(inner: &Rc<LogInner>, offset: i64) -> Result<i64, StorageError> {
    inner.wait_seals_done().await;
    let _permit = inner
        .maintenance
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Closed)?;
    let (deleted_bases, new_start, epochs_dirty) = {
        let mut state = inner.state.borrow_mut();
        let high_watermark = inner.high_watermark.get();
        if offset > high_watermark || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log_start_offset,
                end_offset: high_watermark,
            });
        }
        state.log_start_offset = state.log_start_offset.max(offset);
        let start = state.log_start_offset;
        // Segment i lies below `start` when the next segment begins at or before it; the active
        // (last) segment always stays.
        let candidates = state.segments.len().saturating_sub(1);
        let count = (0..candidates)
            .take_while(|&i| state.segments[i].sealed && state.segments[i + 1].base_offset <= start)
            .count();
        let deleted: Vec<i64> = state
            .segments
            .drain(..count)
            .map(|segment| segment.base_offset)
            .collect();
        let epochs_dirty = move_epochs_start(&mut state);
        (deleted, start, epochs_dirty)
    };
    if epochs_dirty {
        appender::kick(inner);
    }
    // Durable before any file goes: a crash in between restarts with the same start.
    files::write_file_atomically(
        &inner.dir.join(LOG_START_FILE_NAME),
        new_start.to_string().into_bytes(),
    )
    .await?;
    remove_segment_files(inner, &deleted_bases).await?;
    Ok(new_start)
}

/// The log start offset saved by DeleteRecords, if any (a damaged file counts as none: the start
/// falls back to the first segment, which only shows records DeleteRecords had hidden).
pub(crate) async fn saved_log_start(dir: &std::path::Path) -> Result<Option<i64>, StorageError> {
    let Some(bytes) = files::read_small_file(&dir.join(LOG_START_FILE_NAME)).await? else {
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok());
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring an unreadable log start offset file");
    }
    Ok(parsed)
}

/// Removes the files of segments already taken out of the state. A compaction's staged copy
/// (`.swap`) goes first: the next open would otherwise make it the segment again. (A `.cleaned`
/// being written is the cleaner's to drop when it sees the segment gone; an open deletes leftovers.)
async fn remove_segment_files(inner: &LogInner, deleted_bases: &[i64]) -> Result<(), StorageError> {
    for &base_offset in deleted_bases {
        files::remove_if_exists(&swap::swap_path(&inner.dir, base_offset)).await?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            files::remove_if_exists(&segment_file_path(&inner.dir, base_offset, suffix)).await?;
        }
    }
    if !deleted_bases.is_empty() {
        files::sync_directory(&inner.dir).await?;
        tracing::info!(dir = %inner.dir.display(), segments = deleted_bases.len(), "deleted segments below the log start");
    }
    Ok(())
}
