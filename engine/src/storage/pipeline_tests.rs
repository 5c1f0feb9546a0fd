//! Tests of overlapping write rounds (`appender::Pipeline`): appends that arrive while rounds are
//! in flight start rounds of their own, and still every acknowledged byte is on disk once, in
//! offset order, across a crash (drop without close) and a clean restart, under every flush
//! policy; a failing round among overlapping ones loses nothing acknowledged.

use std::time::Duration;

use super::appender::test_hook;
use super::tests::{read_all, run, test_batch, with_base_offset, NO_EPOCH};
use super::*;

/// Segments large enough that many rounds share one; 8 KiB buffers so rounds have several writes.
fn pipeline_config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 256,
        flush,
        tail_cache_bytes: 0,
        max_inflight_writes: 4,
        write_buffer_bytes: 8 << 10,
        preallocate: true,
        high_watermark_follows_log_end: true,
    }
}

/// Appends `count` batches of uneven sizes (no round ends on a page boundary for long), pausing
/// briefly after some so that rounds are in flight when the next appends arrive. Returns the
/// stored bytes, in offset order, of every acknowledged append.
async fn append_while_rounds_are_in_flight(log: &PartitionLog, count: usize) -> Vec<u8> {
    let mut tasks = Vec::new();
    let mut sent = Vec::new();
    for i in 0..count {
        let batch = test_batch(i as i64, 1 + i % 3, 37 + (i * 131) % 2900);
        tasks.push(glommio::spawn_local(log.append(&batch, NO_EPOCH)));
        sent.push(batch);
        if i % 4 == 0 {
            glommio::timer::sleep(Duration::from_micros(30)).await;
        }
    }
    let mut expected = Vec::new();
    let mut next = 0;
    for (task, batch) in tasks.into_iter().zip(&sent) {
        let outcome = task.await.expect("append");
        assert_eq!(outcome.base_offset, next, "offsets in call order");
        next = outcome.last_offset + 1;
        expected.extend_from_slice(&with_base_offset(batch, outcome.base_offset));
    }
    assert_eq!(log.high_watermark(), next);
    expected
}

#[test]
fn overlapping_rounds_write_every_append_once_in_order_and_survive_a_crash() {
    for flush in [
        FlushPolicy::Never,
        FlushPolicy::Always,
        FlushPolicy::IntervalMs(5),
    ] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let dir = temp.path().join("t-0");
            let overlapping_before = test_hook::overlapping_rounds();
            let expected = {
                let log = PartitionLog::open(&dir, pipeline_config(flush))
                    .await
                    .expect("open");
                let expected = append_while_rounds_are_in_flight(&log, 600).await;
                assert_eq!(read_all(&log, 0, 1 << 20).await, expected, "{flush:?}");
                expected
                // Dropped without close: the reopen below scans the active segment.
            };
            assert!(
                test_hook::overlapping_rounds() > overlapping_before,
                "rounds overlapped ({flush:?})"
            );
            assert!(
                expected.len() > (1 << 20),
                "the log rolled to a second segment"
            );
            let log = PartitionLog::open(&dir, pipeline_config(flush))
                .await
                .expect("reopen after a crash");
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected, "{flush:?}");
            // Appends continue where recovery ended, overlapping again, and a clean restart
            // finds both parts.
            let more = append_while_rounds_are_in_flight_from(&log, &expected).await;
            log.close().await.expect("close");
            let log = PartitionLog::open(&dir, pipeline_config(flush))
                .await
                .expect("reopen after close");
            assert_eq!(read_all(&log, 0, 1 << 20).await, more, "{flush:?}");
        });
    }
}

/// Like `append_while_rounds_are_in_flight` on a log that already holds `before`; returns all.
async fn append_while_rounds_are_in_flight_from(log: &PartitionLog, before: &[u8]) -> Vec<u8> {
    let start = log.log_end_offset();
    let mut tasks = Vec::new();
    let mut sent = Vec::new();
    for i in 0..200usize {
        let batch = test_batch(i as i64, 2, 100 + (i * 37) % 1500);
        tasks.push(glommio::spawn_local(log.append(&batch, NO_EPOCH)));
        sent.push(batch);
        if i % 3 == 0 {
            glommio::timer::sleep(Duration::from_micros(30)).await;
        }
    }
    let mut all = before.to_vec();
    let mut next = start;
    for (task, batch) in tasks.into_iter().zip(&sent) {
        let outcome = task.await.expect("append");
        assert_eq!(outcome.base_offset, next);
        next = outcome.last_offset + 1;
        all.extend_from_slice(&with_base_offset(batch, outcome.base_offset));
    }
    all
}

#[test]
fn a_failed_round_among_overlapping_ones_loses_nothing_acknowledged() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        let log = PartitionLog::open(&dir, pipeline_config(FlushPolicy::Never))
            .await
            .expect("open");
        let mut acknowledged = append_while_rounds_are_in_flight(&log, 50).await;
        // Out of space on the next round while more appends keep arriving: every append of the
        // failed round and of the rounds behind it is refused, nothing before it is touched.
        test_hook::fail_next(libc::ENOSPC, 1, false);
        let mut tasks = Vec::new();
        for i in 0..40usize {
            let batch = test_batch(i as i64, 1, 200 + i * 50);
            tasks.push(glommio::spawn_local(log.append(&batch, NO_EPOCH)));
            if i % 4 == 0 {
                glommio::timer::sleep(Duration::from_micros(30)).await;
            }
        }
        let mut refused = 0;
        for task in tasks {
            match task.await {
                Err(StorageError::NoSpace(_)) => refused += 1,
                Err(error) => panic!("unexpected error {error}"),
                Ok(_) => assert_eq!(refused, 0, "nothing acknowledged after a refusal"),
            }
        }
        assert!(refused > 0, "the injected failure was hit");
        let acknowledged_end = log.high_watermark();
        // Whatever was acknowledged before the failure is readable; appends resume after the
        // retry interval and land right behind it.
        let read = read_all(&log, 0, 1 << 20).await;
        assert!(read.starts_with(&acknowledged));
        acknowledged = read;
        glommio::timer::sleep(rollback::APPEND_RETRY_INTERVAL + Duration::from_millis(50)).await;
        let batch = test_batch(7, 1, 10);
        let outcome = log
            .append(&batch, NO_EPOCH)
            .await
            .expect("append after retry");
        assert_eq!(outcome.base_offset, acknowledged_end);
        acknowledged.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
        drop(log);
        let log = PartitionLog::open(&dir, pipeline_config(FlushPolicy::Never))
            .await
            .expect("reopen");
        assert_eq!(read_all(&log, 0, 1 << 20).await, acknowledged);
    });
}
