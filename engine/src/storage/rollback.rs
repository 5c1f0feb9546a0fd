//! Surviving a full disk without a restart. A write that fails for lack of space (ENOSPC, EDQUOT, a
//! short DMA write) suspends the log instead of fencing it: appends are answered with
//! `StorageError::NoSpace` (KAFKA_STORAGE_ERROR), the appender rolls the log back to its high
//! watermark (the end of the last acknowledged append), and the first append after
//! `APPEND_RETRY_INTERVAL` tries again. Nothing acknowledged is touched, and offsets stay
//! contiguous: the next append gets the high watermark.
//!
//! Why only lack of space: it is refused before the device is touched (an allocation in fallocate,
//! a file create, an extent for a write), so the media holds exactly what the completed writes put
//! there and rewriting from the acknowledged end is sound. EIO (and every other error) stays fenced
//! until a restart: the device failed a write or a writeback, which pages reached the media is
//! unknown, and after a failed fsync Linux may drop the dirty pages and clear the error, so a
//! retried fsync "succeeds" without the data (PostgreSQL's fsyncgate). Only the recovery scan at
//! start-up can be trusted then, and a failing device should not be hammered with retries.
//!
//! Rolling back (one `roll_back` run in the appender task, no seal in flight, appends refused):
//! - memory: the log end goes back to the high watermark; queued appends and their commit marks
//!   are dropped; segments holding no acknowledged offset are removed (the first of them is kept
//!   empty as the active segment when the one before it is full); the tail cache is emptied; a
//!   segment whose seal failed is sealed again later;
//! - the indexes of the cut segment are rebuilt exactly as recovery does it: entries past the cut
//!   dropped, the batches after the last kept entry re-scanned from disk
//!   (`scan_valid_batches_from`);
//! - disk: the cut segment is zeroed past the acknowledged end (`recovery::zero_after`: a later
//!   scan must not resurrect batches of the failed round) and files of removed segments deleted.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;

use super::config::align_up;
use super::error::StorageError;
use super::files;
use super::log::{LogInner, LogState};
use super::recovery;
use super::scan::scan_valid_batches_from;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// A suspended log tries an append again at most this often: each failed try costs a rollback (a
/// page rewrite, a hole punch and an fdatasync), and producers retry every ~100 ms.
pub const APPEND_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// A retryable write failure: appends are refused until a retry succeeds.
#[derive(Debug)]
pub(crate) struct Suspension {
    pub reason: String,
    /// A failure happened since the last rollback started.
    pub rollback_pending: bool,
    /// `roll_back` is running.
    pub rollback_running: bool,
    /// Rollbacks that failed (themselves out of space); after one, the next waits for `retry_at`.
    pub rollback_failures: u32,
    /// No retry before this.
    pub retry_at: Instant,
}

impl Suspension {
    /// Whether the next append may try again (clearing the suspension).
    pub(crate) fn may_retry(&self, now: Instant) -> bool {
        !self.rollback_pending && !self.rollback_running && now >= self.retry_at
    }
}

/// Whether `error` is a lack of space, which a rollback and a later retry can survive (module doc).
pub(crate) fn is_retryable(error: &StorageError) -> bool {
    let StorageError::Io(io) = error else {
        return false;
    };
    // A short O_DIRECT write is how the kernel reports running out of room after part of a write.
    matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            io.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::WriteZero
        )
}

/// Suspends the log after a retryable failure; the appender rolls it back next.
pub(crate) fn suspend(state: &mut LogState, error: &StorageError) {
    let retry_at = Instant::now() + APPEND_RETRY_INTERVAL;
    match &mut state.suspension {
        Some(suspension) => {
            suspension.rollback_pending = true;
            suspension.retry_at = retry_at;
        }
        None => {
            state.suspension = Some(Suspension {
                reason: error.to_string(),
                rollback_pending: true,
                rollback_running: false,
                rollback_failures: 0,
                retry_at,
            });
        }
    }
}

/// What `plan` leaves to do on disk for the cut segment.
struct Cut {
    base_offset: i64,
    file: Rc<DmaFile>,
    /// The acknowledged end (`committed_bytes`).
    end_bytes: u64,
    /// Scratch copy of the segment's index state up to the last kept index entry.
    scratch: Segment,
    /// Where the re-scan starts (the last kept index entry's position, or 0).
    scan_from: u64,
}

/// Rolls the log back to its high watermark (module doc). Runs in the appender task.
pub(crate) async fn roll_back(inner: &Rc<LogInner>) -> Result<(), StorageError> {
    // Seals run in their own tasks and may be what failed: let them finish first.
    inner.wait_seals_done().await;
    let (cut, removed) = plan(inner);
    // Every append that is not acknowledged by now never will be: release their waiters.
    inner.high_watermark.interrupt();
    for path in &removed {
        files::remove_if_exists(path).await?;
    }
    if !removed.is_empty() {
        files::sync_directory(&inner.dir).await?;
    }
    if let Some(cut) = cut {
        rebuild_cut_segment(inner, cut).await?;
    }
    let high_watermark = inner.high_watermark.get();
    tracing::info!(dir = %inner.dir.display(), high_watermark, "partition log rolled back to its last acknowledged offset");
    Ok(())
}

/// The in-memory half of a rollback, under one borrow. Returns the segment to cut on disk and the
/// files to delete.
fn plan(inner: &LogInner) -> (Option<Cut>, Vec<PathBuf>) {
    let high_watermark = inner.high_watermark.get();
    let mut state = inner.state.borrow_mut();
    let state = &mut *state;
    debug_assert_eq!(state.seals_in_flight, 0);
    state.log_end_offset = high_watermark;
    state.tail_cache.clear();
    for segment in &mut state.segments {
        // A seal that failed ran no further than its failing step: it runs again from the start.
        if segment.sealing && !segment.sealed {
            segment.sealing = false;
        }
    }
    let below = state
        .segments
        .partition_point(|segment| segment.base_offset < high_watermark);
    let cut_index = below
        .checked_sub(1)
        .filter(|&index| state.segments[index].next_offset > high_watermark);
    // Keep the segments with acknowledged data; after a full one, keep the next one (emptied) as
    // the active segment, because a sealed segment never takes appends again.
    let keep = match cut_index {
        Some(_) => below,
        None => (below + 1).min(state.segments.len()),
    };
    let mut removed = Vec::new();
    for segment in state.segments.drain(keep..) {
        removed.extend(segment_paths(&inner.dir, segment.base_offset));
    }
    if cut_index.is_none() && keep > below {
        let emptied = &mut state.segments[below];
        debug_assert_eq!(emptied.base_offset, high_watermark);
        debug_assert!(!emptied.sealed && !emptied.sealing);
        removed.extend(segment_paths(&inner.dir, emptied.base_offset));
        *emptied = Segment::new(&inner.dir, emptied.base_offset);
    }
    let cut = cut_index
        .and_then(|index| plan_cut(&mut state.segments[index], high_watermark, &inner.dir));
    (cut, removed)
}

fn segment_paths(dir: &std::path::Path, base_offset: i64) -> [PathBuf; 3] {
    [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]
        .map(|suffix| segment_file_path(dir, base_offset, suffix))
}

/// Drops the unacknowledged tail of `segment` from memory and prepares the index re-scan.
fn plan_cut(segment: &mut Segment, high_watermark: i64, dir: &std::path::Path) -> Option<Cut> {
    assert!(
        !segment.sealed && !segment.sealing,
        "a segment with unacknowledged data is never sealed"
    );
    assert_eq!(
        segment.written_bytes, segment.committed_bytes,
        "rounds end on append boundaries"
    );
    let end_bytes = segment.committed_bytes;
    segment.size_bytes = end_bytes;
    segment.write.queued.clear();
    segment.write.queued_bytes = 0;
    segment.write.commits.clear();
    // The index state as it was when the batch at the last kept entry was noted.
    segment.offset_index.truncate_from_position(end_bytes);
    let (scan_from, resume_relative) = segment.offset_index.last().map_or((0, 0), |entry| {
        (u64::from(entry.position), entry.relative_offset)
    });
    segment.time_index.truncate_from_offset(resume_relative);
    let base_offset = segment.base_offset;
    segment.max_timestamp = segment.time_index.last().map(|entry| {
        (
            entry.timestamp,
            base_offset + i64::from(entry.relative_offset),
        )
    });
    segment.next_offset = base_offset + i64::from(resume_relative);
    segment.bytes_since_index_entry = 0;
    debug_assert!(segment.next_offset <= high_watermark);
    // Acknowledged data exists below the cut, so the file does too.
    let file = segment.file.clone()?;
    let mut scratch = Segment::new(dir, base_offset);
    scratch.offset_index = segment.offset_index.clone();
    scratch.time_index = segment.time_index.clone();
    scratch.max_timestamp = segment.max_timestamp;
    scratch.next_offset = segment.next_offset;
    Some(Cut {
        base_offset,
        file,
        end_bytes,
        scratch,
        scan_from,
    })
}

/// Re-scans the cut segment from its last kept index entry to the acknowledged end, zeroes the
/// file past that end, and installs the rebuilt indexes.
async fn rebuild_cut_segment(inner: &LogInner, mut cut: Cut) -> Result<(), StorageError> {
    let high_watermark = inner.high_watermark.get();
    let scanned_to = scan_valid_batches_from(
        &cut.file,
        &mut cut.scratch,
        cut.scan_from,
        cut.end_bytes,
        inner.config.index_interval_bytes,
    )
    .await?;
    if scanned_to != cut.end_bytes || cut.scratch.next_offset != high_watermark {
        return Err(StorageError::Corrupt(format!(
            "acknowledged data of segment {} ends at position {scanned_to} (offset {}), expected {} (offset {high_watermark})",
            cut.base_offset, cut.scratch.next_offset, cut.end_bytes
        )));
    }
    let file_size = cut.file.file_size().await?;
    recovery::zero_after(&cut.file, cut.end_bytes, file_size).await?;
    let mut state = inner.state.borrow_mut();
    let Some(segment) = state.segment_by_base_mut(cut.base_offset) else {
        return Err(StorageError::Corrupt(format!(
            "segment {} vanished during a rollback",
            cut.base_offset
        )));
    };
    segment.offset_index = cut.scratch.offset_index;
    segment.time_index = cut.scratch.time_index;
    segment.max_timestamp = cut.scratch.max_timestamp;
    segment.next_offset = cut.scratch.next_offset;
    segment.bytes_since_index_entry = cut.scratch.bytes_since_index_entry;
    // The space past the end was given back (hole punched): the next round reserves it again,
    // which is where a still-full disk fails, before any data is written.
    segment.allocated_bytes = align_up(cut.end_bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ringbroker_protocol::batch::{batches, build_simple_batch, set_base_offset};

    use super::super::appender::test_hook;
    use super::super::tests::{open_temp_log, run, small_config};
    use super::super::{LogHealth, PartitionLog, ReadChunk, StorageError};
    use super::APPEND_RETRY_INTERVAL;

    /// A ~900-byte batch whose values name `n`.
    fn numbered_batch(n: usize) -> Vec<u8> {
        let value = format!("record-{n:06}-").into_bytes().repeat(50);
        build_simple_batch(1_000 + n as i64, &[value.as_slice(), value.as_slice()])
    }

    /// Every byte from offset 0 to the high watermark.
    async fn read_everything(log: &PartitionLog) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < log.high_watermark() {
            let result = log.read(offset, 1 << 20).await.expect("read");
            let mut bytes = Vec::new();
            for chunk in &result.chunks {
                match chunk {
                    ReadChunk::Memory(memory) => bytes.extend_from_slice(memory),
                    ReadChunk::File {
                        path,
                        position,
                        len,
                        ..
                    } => {
                        let file = std::fs::read(path).expect("segment");
                        bytes.extend_from_slice(
                            &file[*position as usize..(*position + *len) as usize],
                        );
                    }
                }
            }
            let last = batches(&bytes)
                .map(|item| item.expect("valid batch").0.last_offset())
                .last()
                .expect("data below the high watermark");
            out.extend_from_slice(&bytes);
            offset = last + 1;
        }
        out
    }

    /// Waits out the retry interval (it starts when the rollback ends) and appends `batch`, as a
    /// producer retrying every interval would; at most `RETRIES_MAX` tries.
    async fn append_once_space_returns(log: &PartitionLog, batch: &[u8], expected: &mut Vec<u8>) {
        /// Tries before the test gives up: the rollback ends within milliseconds of the failure.
        const RETRIES_MAX: usize = 20;
        for _ in 0..RETRIES_MAX {
            glommio::timer::sleep(APPEND_RETRY_INTERVAL / 4).await;
            if let Ok(outcome) = log.append(batch).await {
                let mut stored = batch.to_vec();
                set_base_offset(&mut stored, outcome.base_offset);
                expected.extend_from_slice(&stored);
                return;
            }
        }
        panic!("appends still refused {RETRIES_MAX} tries after the failure");
    }

    /// Appends `batch` and records its stored form in `expected` if acknowledged.
    async fn append_ok(log: &PartitionLog, batch: &[u8], expected: &mut Vec<u8>) {
        let outcome = log.append(batch).await.expect("append acknowledged");
        assert_eq!(outcome.base_offset, log.high_watermark() - 2);
        let mut stored = batch.to_vec();
        set_base_offset(&mut stored, outcome.base_offset);
        expected.extend_from_slice(&stored);
    }

    #[test]
    fn out_of_space_rolls_back_and_appends_resume_without_reopen() {
        run(|| async {
            let (temp, dir, log) = open_temp_log().await;
            let mut expected = Vec::new();
            let mut n = 0;
            // Failures at different fill levels of the 8 KiB segments: inside a segment, on the
            // round that rolls, and when creating the next segment's file.
            for cycle in 0..12 {
                for _ in 0..(cycle % 4 + 1) {
                    append_ok(&log, &numbered_batch(n), &mut expected).await;
                    n += 1;
                }
                let acknowledged_end = log.high_watermark();
                test_hook::fail_next(libc::ENOSPC, 1, false);
                let failing: Vec<_> = (0..3)
                    .map(|i| log.append(&numbered_batch(900_000 + i)))
                    .collect();
                for append in failing {
                    let error = append.await.expect_err("append on a full disk");
                    assert!(matches!(error, StorageError::NoSpace(_)), "{error}");
                }
                let refused = log.append(&numbered_batch(n)).await;
                assert!(
                    matches!(refused, Err(StorageError::NoSpace(_))),
                    "suspended"
                );
                assert_eq!(log.health(), LogHealth::Suspended);
                assert_eq!(log.high_watermark(), acknowledged_end);
                assert_eq!(
                    log.log_end_offset(),
                    acknowledged_end,
                    "unacknowledged offsets given back"
                );
                append_once_space_returns(&log, &numbered_batch(n), &mut expected).await;
                n += 1;
                assert_eq!(log.health(), LogHealth::Online);
                assert_eq!(read_everything(&log).await, expected, "cycle {cycle}");
            }
            // A crash now (copy of the files) and a clean restart both find exactly that.
            let crashed = temp.path().join("crashed");
            std::fs::create_dir(&crashed).expect("mkdir");
            for entry in std::fs::read_dir(&dir).expect("list") {
                let path = entry.expect("entry").path();
                std::fs::copy(&path, crashed.join(path.file_name().expect("name"))).expect("copy");
            }
            log.close()
                .await
                .expect("close after recovering from a full disk");
            for reopened_dir in [&dir, &crashed] {
                let reopened = PartitionLog::open(reopened_dir, small_config())
                    .await
                    .expect("reopen");
                assert_eq!(read_everything(&reopened).await, expected);
                let mut more = expected.clone();
                append_ok(&reopened, &numbered_batch(n), &mut more).await;
                reopened.close().await.expect("close");
            }
        });
    }

    #[test]
    fn a_seal_out_of_space_is_retried_and_nothing_is_lost() {
        run(|| async {
            let (_temp, dir, log) = open_temp_log().await;
            let mut expected = Vec::new();
            test_hook::fail_next(libc::ENOSPC, 1, true);
            let mut n = 0;
            // Until a roll's seal fails: acknowledged appends may still complete, then appends are
            // refused while the log is suspended.
            let mut refused = 0;
            while refused == 0 {
                assert!(n < 64, "no seal ever failed");
                match log.append(&numbered_batch(n)).await {
                    Ok(outcome) => {
                        let mut stored = numbered_batch(n);
                        set_base_offset(&mut stored, outcome.base_offset);
                        expected.extend_from_slice(&stored);
                    }
                    Err(StorageError::NoSpace(_)) => refused += 1,
                    Err(error) => panic!("unexpected {error}"),
                }
                n += 1;
            }
            assert_eq!(read_everything(&log).await, expected);
            append_once_space_returns(&log, &numbered_batch(n), &mut expected).await;
            n += 1;
            for _ in 0..12 {
                append_ok(&log, &numbered_batch(n), &mut expected).await;
                n += 1;
            }
            log.close().await.expect("close");
            // Every rolled segment was sealed in the end: index files beside it.
            let mut logs: Vec<_> = std::fs::read_dir(&dir)
                .expect("list")
                .map(|entry| entry.expect("entry").path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
                .collect();
            logs.sort();
            assert!(logs.len() > 2, "the appends rolled several segments");
            for path in &logs[..logs.len() - 1] {
                assert!(
                    path.with_extension("index").exists(),
                    "{} unsealed",
                    path.display()
                );
            }
            let reopened = PartitionLog::open(&dir, small_config())
                .await
                .expect("reopen");
            assert_eq!(read_everything(&reopened).await, expected);
            reopened.close().await.expect("close");
        });
    }

    #[test]
    fn closing_a_suspended_log_keeps_what_was_acknowledged() {
        run(|| async {
            let (_temp, dir, log) = open_temp_log().await;
            let mut expected = Vec::new();
            for n in 0..10 {
                append_ok(&log, &numbered_batch(n), &mut expected).await;
            }
            test_hook::fail_next(libc::ENOSPC, 1, false);
            assert!(log.append(&numbered_batch(99)).await.is_err());
            // Closing right away: the log was rolled back, so close checkpoints what was
            // acknowledged (and nothing else).
            log.close().await.expect("close a rolled-back log");
            let reopened = PartitionLog::open(&dir, small_config())
                .await
                .expect("reopen");
            assert_eq!(read_everything(&reopened).await, expected);
            let mut more = expected.clone();
            append_ok(&reopened, &numbered_batch(10), &mut more).await;
            reopened.close().await.expect("close");
        });
    }

    #[test]
    fn io_errors_stay_fenced() {
        run(|| async {
            let temp = tempfile::tempdir().expect("tempdir");
            let log = PartitionLog::open(&temp.path().join("t-0"), small_config())
                .await
                .expect("open");
            let mut expected = Vec::new();
            append_ok(&log, &numbered_batch(0), &mut expected).await;
            test_hook::fail_next(libc::EIO, 1, false);
            assert_eq!(log.health(), LogHealth::Online);
            let error = log.append(&numbered_batch(1)).await.expect_err("EIO");
            assert!(matches!(error, StorageError::Fenced(_)), "{error}");
            assert_eq!(log.health(), LogHealth::Fenced);
            glommio::timer::sleep(APPEND_RETRY_INTERVAL + Duration::from_millis(20)).await;
            let error = log
                .append(&numbered_batch(2))
                .await
                .expect_err("still fenced");
            assert!(matches!(error, StorageError::Fenced(_)), "{error}");
            assert_eq!(read_everything(&log).await, expected);
        });
    }
}
