//! Surviving a full disk without a restart. A write that fails for lack of space (ENOSPC, EDQUOT, a
//! short DMA write) suspends the log instead of fencing it: appends are answered with
//! `StorageError::NoSpace` (KAFKA_STORAGE_ERROR), the appender rolls the log back to its written
//! end (the end of the last acknowledged append), and the first append after
//! `APPEND_RETRY_INTERVAL` tries again. Nothing acknowledged is touched, and offsets stay
//! contiguous: the next append gets the written end.
//!
//! Why only lack of space: it is refused before the device is touched (an allocation in fallocate,
//! a file create, an extent for a write), so the media holds exactly what the completed writes put
//! there and rewriting from the acknowledged end is sound. EIO (and every other error) stays fenced
//! until a restart: the device failed a write or a writeback, which pages reached the media is
//! unknown, and after a failed fsync Linux may drop the dirty pages and clear the error, so a
//! retried fsync "succeeds" without the data (PostgreSQL's fsyncgate). Only the recovery scan at
//! start-up can be trusted then, and a failing device should not be hammered with retries.
//!
//! Rolling back (one `roll_back` run in the appender task, no seal in flight, appends refused) is a
//! cut of the log at its written end (`cut`, shared with truncation): queued appends and their
//! commit marks are dropped, segments holding no acknowledged offset removed, the tail cache and
//! leader epochs cut, the cut segment's indexes rebuilt from disk and its file zeroed past the
//! acknowledged end (a later scan must not resurrect batches of the failed round); a segment whose
//! seal failed is sealed again later.

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::cut::{self, CutAt};
use super::error::StorageError;
use super::log::{LogInner, LogState};

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

/// Rolls the log back to its written end (module doc). Runs in the appender task.
pub(crate) async fn roll_back(inner: &Rc<LogInner>) -> Result<(), StorageError> {
    // Seals run in their own tasks and may be what failed: let them finish first.
    inner.wait_seals_done().await;
    let written = inner.written.get();
    let plan = {
        let mut state = inner.state.borrow_mut();
        debug_assert_eq!(state.seals_in_flight, 0);
        cut::plan(
            inner,
            &mut state,
            CutAt {
                offset: written,
                position: None,
            },
        )
    };
    // The replication layer never saw offsets past the log end it had; keep the invariant.
    let replicated = inner.replicated_high_watermark.get();
    inner.replicated_high_watermark.set(replicated.min(written));
    // Every append that is not acknowledged by now never will be: release their waiters.
    inner.written.interrupt();
    cut::apply(inner, plan).await?;
    tracing::info!(dir = %inner.dir.display(), written, "partition log rolled back to its last acknowledged offset");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ringbroker_protocol::batch::{batches, build_simple_batch, set_base_offset};

    use super::super::appender::test_hook;
    use super::super::tests::{open_temp_log, run, small_config, NO_EPOCH};
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
            if let Ok(outcome) = log.append(batch, NO_EPOCH).await {
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
        let outcome = log
            .append(batch, NO_EPOCH)
            .await
            .expect("append acknowledged");
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
                    .map(|i| log.append(&numbered_batch(900_000 + i), NO_EPOCH))
                    .collect();
                for append in failing {
                    let error = append.await.expect_err("append on a full disk");
                    assert!(matches!(error, StorageError::NoSpace(_)), "{error}");
                }
                let refused = log.append(&numbered_batch(n), NO_EPOCH).await;
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
                match log.append(&numbered_batch(n), NO_EPOCH).await {
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
            assert!(log.append(&numbered_batch(99), NO_EPOCH).await.is_err());
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
            let error = log
                .append(&numbered_batch(1), NO_EPOCH)
                .await
                .expect_err("EIO");
            assert!(matches!(error, StorageError::Fenced(_)), "{error}");
            assert_eq!(log.health(), LogHealth::Fenced);
            glommio::timer::sleep(APPEND_RETRY_INTERVAL + Duration::from_millis(20)).await;
            let error = log
                .append(&numbered_batch(2), NO_EPOCH)
                .await
                .expect_err("still fenced");
            assert!(matches!(error, StorageError::Fenced(_)), "{error}");
            assert_eq!(read_everything(&log).await, expected);
        });
    }
}
