//! Truncating a log fully and restarting it at an offset past its end (Kafka's
//! `UnifiedLog.truncateFullyAndStartAt`): what a follower does when its whole log lies below its
//! leader's log start (retention on the leader deleted what it would fetch next, or it is new to a
//! partition whose start moved). Every segment goes, the log starts and ends at the new offset, the
//! leader-epoch cache is emptied (the leader's batches bring their epochs) and the high watermark
//! is the new start.
//!
//! Crash safety comes from one durable intent written before anything is removed: the log start
//! offset file (the one DeleteRecords keeps, `retention::LOG_START_FILE_NAME`) holding the new
//! offset. A log never ends below its start, so an open that finds the saved start past the end of
//! the recovered data knows the data is older than the start and finishes the job
//! ([`finish_at_open`]): a kill -9 before the intent leaves the old log, after it the new one,
//! whichever segments were already deleted.
//!
//! Like `truncation`, it runs alone: appends are refused (`Truncating`) from the start, queued
//! writes are waited for and the maintenance semaphore (compaction, retention) is held.

use std::path::Path;
use std::rc::Rc;

use super::appender;
use super::compaction::swap;
use super::config::LogConfig;
use super::error::StorageError;
use super::files;
use super::leader_epoch::LeaderEpochCache;
use super::log::{wall_clock_ms, LogInner};
use super::recovery::{self, Recovered};
use super::retention::LOG_START_FILE_NAME;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::truncation;

pub(crate) async fn truncate_fully_and_start_at(
    inner: &Rc<LogInner>,
    offset: i64,
) -> Result<(), StorageError> {
    truncation::begin(inner)?;
    let result = run(inner, offset).await;
    inner.state.borrow_mut().truncating = false;
    // `close` may be waiting for the truncation to end.
    inner.flusher_runs.advance(inner.flusher_runs.get() + 1);
    result
}

async fn run(inner: &Rc<LogInner>, offset: i64) -> Result<(), StorageError> {
    let _permit = truncation::quiesce(inner).await?;
    check(inner, offset)?;
    // The intent, durable before any file goes (module doc).
    files::write_file_atomically(
        &inner.dir.join(LOG_START_FILE_NAME),
        offset.to_string().into_bytes(),
    )
    .await?;
    test_hook::crash_point(test_hook::Step::IntentWritten)?;
    let dropped = reset_state(inner, offset);
    if let Err(error) = remove_segments(&inner.dir, &dropped).await {
        // The intent is on disk: the next open finishes the removal. Until then the files of
        // the old segments may be half gone, so nothing more is written here.
        appender::fence(inner, &error);
        return Err(error);
    }
    {
        let mut state = inner.state.borrow_mut();
        state.epochs.mark_dirty();
        state.high_watermark_checkpoint_due = !inner.high_watermark_follows_log_end.get();
    }
    appender::kick(inner);
    inner.wait_appender_idle().await;
    if inner.state.borrow().failure.is_some() {
        return Err(inner.fenced_error());
    }
    tracing::info!(dir = %inner.dir.display(), start_offset = offset, segments_removed = dropped.len(), "truncated the partition log fully; it starts at the new offset");
    Ok(())
}

/// Refuses a fenced, closed or still rolling-back log, and an offset a non-empty log reaches (that
/// is a truncation or a start move, not a restart). An empty log may restart anywhere: a follower
/// restarted at a leader's log start that DeleteRecords put inside a batch restarts again at that
/// batch's base offset (Kafka's follower does the same), and either start leaves a usable log
/// after a kill (the empty old one, or the new one).
fn check(inner: &LogInner, offset: i64) -> Result<(), StorageError> {
    let state = inner.state.borrow();
    let rolling_back = state
        .suspension
        .as_ref()
        .is_some_and(|suspension| suspension.rollback_pending || suspension.rollback_running);
    if state.failure.is_some() || rolling_back {
        drop(state);
        return Err(inner.fenced_error());
    }
    if state.closed {
        return Err(StorageError::Closed);
    }
    let empty = state.log_start_offset == state.log_end_offset;
    if offset < 0 || (offset <= state.log_end_offset && !empty) {
        // The offsets a restart may take: past the log end.
        return Err(StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: state.log_end_offset + 1,
            end_offset: i64::MAX,
        });
    }
    Ok(())
}

/// The in-memory half, under one borrow: one empty segment at `offset` (its file is created by
/// the first append, or by the next open), offsets, tail cache, epochs and watches moved there.
/// Returns the base offsets of the segments taken out.
fn reset_state(inner: &Rc<LogInner>, offset: i64) -> Vec<i64> {
    let dropped = {
        let mut state = inner.state.borrow_mut();
        debug_assert!(state.segments.iter().all(|s| s.write_idle()));
        let dropped: Vec<i64> = state.segments.drain(..).map(|s| s.base_offset).collect();
        state.segments.push(Segment::new(&inner.dir, offset));
        state.log_start_offset = offset;
        state.log_end_offset = offset;
        state.max_timestamp = None;
        state.tail_cache.clear();
        state.epochs = LeaderEpochCache::default();
        dropped
    };
    inner.active_since_ms.set(wall_clock_ms());
    // Waiters of the old written end resolve (their appends were written). The new end is past
    // every old value, except when an empty log restarts lower.
    inner.written.interrupt();
    for watch in [&inner.written, &inner.high_watermark] {
        if watch.get() < offset {
            watch.advance(offset);
        } else {
            watch.reset(offset);
        }
    }
    inner.replicated_high_watermark.set(offset);
    dropped
}

/// Deletes the files of the segments at `bases` (a compaction's leftovers first, index files
/// before data), highest first, and syncs the directory.
async fn remove_segments(dir: &Path, bases: &[i64]) -> Result<(), StorageError> {
    for (removed, &base_offset) in bases.iter().rev().enumerate() {
        files::remove_if_exists(&swap::swap_path(dir, base_offset)).await?;
        files::remove_if_exists(&swap::cleaned_path(dir, base_offset)).await?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            files::remove_if_exists(&segment_file_path(dir, base_offset, suffix)).await?;
        }
        if removed == 0 {
            test_hook::crash_point(test_hook::Step::FirstSegmentRemoved)?;
        }
    }
    files::sync_directory(dir).await
}

/// At open: the saved log start `start` lies past the end of the recovered data, so a full
/// truncation was interrupted (module doc). Removes what is left of the old segments and returns
/// the log as the truncation leaves it: one empty active segment at `start`.
pub(crate) async fn finish_at_open(
    dir: &Path,
    recovered: Recovered,
    start: i64,
    config: &LogConfig,
) -> Result<Recovered, StorageError> {
    debug_assert!(start > recovered.log_end_offset);
    tracing::warn!(dir = %dir.display(), start_offset = start, log_end_offset = recovered.log_end_offset, "finishing a full truncation interrupted by a crash");
    let mut bases = Vec::with_capacity(recovered.segments.len());
    for mut segment in recovered.segments {
        bases.push(segment.base_offset);
        if let Some(file) = segment
            .file
            .take()
            .and_then(|file| Rc::try_unwrap(file).ok())
        {
            file.close().await?;
        }
    }
    // The active segment's file is created empty when the log had none at `start` yet.
    bases.retain(|&base| base != start);
    remove_segments(dir, &bases).await?;
    let active = recovery::open_active(dir, start, None, config).await?;
    files::sync_directory(dir).await?;
    Ok(Recovered {
        segments: vec![active],
        log_end_offset: start,
        max_timestamp: None,
    })
}

/// Simulated kills for the tests: the full truncation stops (with an error, leaving the files as
/// they are) at a chosen step. Compiled to nothing outside tests.
pub(crate) mod test_hook {
    use super::StorageError;

    /// Where a test may stop a full truncation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Step {
        /// The intent is durable, nothing is removed.
        IntentWritten,
        /// The highest segment's files are gone, the others remain.
        FirstSegmentRemoved,
    }

    #[cfg(test)]
    thread_local! {
        static STOP_AT: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
    }

    /// Makes the next full truncation on this thread stop at `step`.
    #[cfg(test)]
    pub(crate) fn stop_at(step: Step) {
        STOP_AT.with(|stop| stop.set(Some(step)));
    }

    #[cfg(test)]
    pub(crate) fn crash_point(step: Step) -> Result<(), StorageError> {
        STOP_AT.with(|stop| {
            if stop.get() != Some(step) {
                return Ok(());
            }
            stop.set(None);
            Err(StorageError::Corrupt(format!("test stop at {step:?}")))
        })
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn crash_point(_step: Step) -> Result<(), StorageError> {
        Ok(())
    }
}
