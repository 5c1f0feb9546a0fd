//! Truncating a log to an offset: what a follower does to match a new leader's log (Kafka's
//! `UnifiedLog.truncateTo`), after OffsetForLeaderEpoch told it where the logs diverge.
//!
//! One truncation at a time, never beside appends, a compaction pass or queued writes: appends are
//! refused (`StorageError::Truncating`) from the start, queued writes are waited for, and the
//! log's maintenance semaphore (also held by compaction) is taken. Then:
//! 1. the offset is checked: inside `[log_start_offset, log_end_offset]`, at a batch start (found
//!    with the sparse index and a header walk), not below the high watermark unless allowed;
//! 2. the high watermark moves back first (consumers must not read what goes), waiters of the
//!    written end are released (their appends were written: they are acknowledged);
//! 3. the log is cut (`cut`, shared with the full-disk rollback): later segments deleted, the
//!    tail of the cut segment zeroed on disk, indexes rebuilt, tail cache and epochs cut;
//! 4. the leader-epoch checkpoint and, for a replicated log, the high-watermark checkpoint are
//!    written before the truncation returns, so no later append's data can precede them on disk.
//!
//! A failure in step 3 or 4 fences the log (the files may be cut only partly; a restart's recovery
//! finds a prefix of the old log, and the follower truncates again).

use std::rc::Rc;

use super::appender;
use super::cut::{self, CutAt};
use super::error::StorageError;
use super::log::LogInner;
use super::scan::HeaderScanner;

/// How far `PartitionLog::truncate_to` may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncateOptions {
    /// Allow removing records below the high watermark. Kafka's followers never do that except
    /// after an unclean leader election (`unclean.leader.election.enable`): those records were
    /// acknowledged to acks=all producers and may have been read by consumers.
    pub allow_below_high_watermark: bool,
}

pub(crate) async fn truncate_to(
    inner: &Rc<LogInner>,
    offset: i64,
    options: TruncateOptions,
) -> Result<i64, StorageError> {
    begin(inner)?;
    let result = run(inner, offset, options).await;
    inner.state.borrow_mut().truncating = false;
    // `close` may be waiting for the truncation to end.
    inner.flusher_runs.advance(inner.flusher_runs.get() + 1);
    result
}

/// Marks the truncation started (appends refused from now on); `full_truncation` starts the same way.
pub(crate) fn begin(inner: &LogInner) -> Result<(), StorageError> {
    let mut state = inner.state.borrow_mut();
    if let Some(failure) = &state.failure {
        return Err(StorageError::Fenced(failure.clone()));
    }
    if state.closed {
        return Err(StorageError::Closed);
    }
    if state.truncating {
        return Err(StorageError::Truncating);
    }
    state.truncating = true;
    Ok(())
}

async fn run(
    inner: &Rc<LogInner>,
    offset: i64,
    options: TruncateOptions,
) -> Result<i64, StorageError> {
    let _permit = quiesce(inner).await?;
    let log_end_offset = check(inner, offset, options)?;
    if offset >= log_end_offset {
        return Ok(log_end_offset);
    }
    let position = locate(inner, offset).await?;
    lower_high_watermark(inner, offset);
    inner.written.interrupt();
    let plan = {
        let mut state = inner.state.borrow_mut();
        cut::plan(inner, &mut state, CutAt { offset, position })
    };
    inner.written.reset(offset);
    if let Err(error) = cut::apply(inner, plan).await {
        appender::fence(inner, &error);
        return Err(error);
    }
    {
        let mut state = inner.state.borrow_mut();
        state.max_timestamp = state
            .segments
            .iter()
            .filter_map(|segment| segment.max_timestamp)
            .fold(None, |max: Option<(i64, i64)>, candidate| match max {
                Some(current) if current.0 >= candidate.0 => Some(current),
                _ => Some(candidate),
            });
        // Written before any later append's data: a restart must not take an older, higher
        // high watermark over records appended after the truncation.
        state.high_watermark_checkpoint_due = !inner.high_watermark_follows_log_end.get();
    }
    appender::kick(inner);
    inner.wait_appender_idle().await;
    if inner.state.borrow().failure.is_some() {
        return Err(inner.fenced_error());
    }
    tracing::info!(dir = %inner.dir.display(), offset, log_end_offset, "truncated the partition log");
    Ok(offset)
}

/// Waits for queued writes, takes the maintenance permit (no compaction or retention runs beside a
/// truncation) and waits again: one of those finishing meanwhile may have queued a checkpoint
/// write. How both kinds of truncation (this one and `full_truncation`) start.
pub(crate) async fn quiesce(
    inner: &Rc<LogInner>,
) -> Result<glommio::sync::Permit<'_>, StorageError> {
    inner.wait_appender_idle().await;
    let permit = inner
        .maintenance
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Closed)?;
    inner.wait_appender_idle().await;
    Ok(permit)
}

/// Checks the log and `offset` (module doc, step 1); returns the log end offset.
///
/// A log suspended for lack of space may be truncated once it is rolled back (its memory and its
/// files agree again): a follower must be able to match a new leader's log while its disk is full,
/// or it would never fetch the appends that end the suspension. Nothing to cut is never refused.
fn check(inner: &LogInner, offset: i64, options: TruncateOptions) -> Result<i64, StorageError> {
    let state = inner.state.borrow();
    let rolling_back = state
        .suspension
        .as_ref()
        .is_some_and(|suspension| suspension.rollback_pending || suspension.rollback_running);
    let nothing_to_cut = offset >= state.log_end_offset;
    if state.failure.is_some() || (rolling_back && !nothing_to_cut) {
        drop(state);
        return Err(inner.fenced_error());
    }
    if state.closed {
        return Err(StorageError::Closed);
    }
    let high_watermark = inner.high_watermark.get();
    if offset < state.log_start_offset {
        return Err(StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: state.log_start_offset,
            end_offset: state.log_end_offset,
        });
    }
    if offset < high_watermark
        && offset < state.log_end_offset
        && !options.allow_below_high_watermark
    {
        return Err(StorageError::BelowHighWatermark {
            offset,
            high_watermark,
        });
    }
    Ok(state.log_end_offset)
}

/// Position of the first byte to cut in the segment holding `offset`: the start of the batch
/// starting there, or of the first batch after it (a compacted gap), or the segment's end. `None`
/// when `offset` starts a segment (the cut removes that whole segment). `NotBatchBoundary` when a
/// batch holds `offset` but starts before it.
async fn locate(inner: &LogInner, offset: i64) -> Result<Option<u64>, StorageError> {
    let (file, scan_from, committed_bytes) = {
        let state = inner.state.borrow();
        let segment = state
            .segment_index_for(offset)
            .and_then(|index| state.segments.get(index))
            .ok_or_else(|| StorageError::Corrupt(format!("no segment holds offset {offset}")))?;
        if segment.base_offset == offset {
            return Ok(None);
        }
        let file = segment.file.clone().ok_or_else(|| {
            StorageError::Corrupt(format!("segment {} has no file", segment.base_offset))
        })?;
        let scan_from = segment.offset_index.lookup(segment.relative(offset));
        (file, scan_from, segment.committed_bytes)
    };
    let mut scanner = HeaderScanner::new(file, scan_from, committed_bytes);
    while let Some((position, header)) = scanner.next().await? {
        if header.last_offset() < offset {
            continue;
        }
        if header.base_offset < offset {
            return Err(StorageError::NotBatchBoundary {
                offset,
                batch_base_offset: header.base_offset,
            });
        }
        return Ok(Some(position));
    }
    Ok(Some(committed_bytes))
}

/// Moves the high watermark (and the replication layer's value) back to at most `offset`.
fn lower_high_watermark(inner: &LogInner, offset: i64) {
    let replicated = inner.replicated_high_watermark.get();
    inner.replicated_high_watermark.set(replicated.min(offset));
    if inner.high_watermark.get() > offset {
        inner.high_watermark.reset(offset);
    }
}
