//! End-to-end tests of `PartitionLog` on real DMA files: round trips across segment rolls, offset
//! order under concurrency, Fetch semantics, restart, crash recovery, torn writes, timestamps, long
//! polling, removal, and an ignored throughput measurement.

use std::cell::Cell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringbroker_protocol::batch::{batches, build_simple_batch, BatchHeader};

use super::checkpoint::CHECKPOINT_FILE_NAME;
use super::*;

/// The leader epoch the tests that are not about epochs append with: -1 ("no epoch", what
/// clients send), so the stored bytes are the produced bytes with only the base offset set.
pub(crate) const NO_EPOCH: i32 = -1;

/// Runs `make()` on a fresh glommio executor with the engine's io_memory budget.
pub(crate) fn run<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(make)
        .expect("spawn executor")
        .join()
        .expect("test body panicked");
}

/// Small segments and a small index interval so that a few KiB exercise rolls and index jumps.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 10,
        index_interval_bytes: 256,
        flush: FlushPolicy::Never,
        tail_cache_bytes: 0,
        max_inflight_writes: 4,
        write_buffer_bytes: 8 << 10,
        preallocate: true,
        high_watermark_follows_log_end: true,
    }
}

/// A log with `small_config` in a fresh temporary directory (`<temp>/t-0`). Keep the `TempDir`
/// alive while the log is used: dropping it removes the directory.
pub(crate) async fn open_temp_log() -> (tempfile::TempDir, PathBuf, PartitionLog) {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("t-0");
    let log = PartitionLog::open(&dir, small_config())
        .await
        .expect("open");
    (temp, dir, log)
}

/// A batch of `records` records of `value_bytes` each, all at `timestamp`.
pub(crate) fn test_batch(timestamp: i64, records: usize, value_bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; value_bytes];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    build_simple_batch(timestamp, &values)
}

/// The bytes a read returned, chunk by chunk; checks each file range's record count.
pub(crate) fn read_bytes(result: &ReadResult) -> Vec<u8> {
    read_bytes_counted(result, true)
}

/// [`read_bytes`], checking the record counts only if `counted` (a reopened log whose segments
/// have offset gaps the files do not reveal counts them as dense: see `Segment::offsets_dense`).
pub(crate) fn read_bytes_counted(result: &ReadResult, counted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in &result.chunks {
        match chunk {
            ReadChunk::Memory(bytes) => out.extend_from_slice(bytes),
            ReadChunk::File {
                path,
                position,
                len,
                records,
                inode,
            } => {
                use std::os::unix::fs::MetadataExt;
                let named = std::fs::metadata(path).expect("segment metadata").ino();
                assert_eq!(
                    named, *inode,
                    "the path names the file the read was planned on"
                );
                let file = std::fs::read(path).expect("read segment");
                let range = &file[*position as usize..(*position + *len) as usize];
                if counted {
                    assert_eq!(*records, records_in(range), "records of a file range");
                }
                out.extend_from_slice(range);
            }
        }
    }
    out
}

/// Records of the whole batches in `bytes`, from their headers.
pub(crate) fn records_in(bytes: &[u8]) -> u64 {
    batches(bytes)
        .map(|item| item.expect("valid batch").0.record_count as u64)
        .sum()
}

/// (base offset, last offset) of each batch in `bytes`, checking every batch is complete.
pub(crate) fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut iter = batches(bytes);
    let offsets = iter
        .by_ref()
        .map(|item| {
            let (header, _) = item.expect("valid batch");
            (header.base_offset, header.last_offset())
        })
        .collect();
    assert_eq!(iter.remaining(), 0, "reads end on a batch boundary");
    offsets
}

/// Reads everything from `from` to the high watermark in `max_bytes` steps.
pub(crate) async fn read_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.high_watermark() {
        let result = log.read(offset, max_bytes).await.expect("read");
        let bytes = read_bytes(&result);
        let offsets = batch_offsets(&bytes);
        let (_, last) = *offsets
            .last()
            .expect("a read below the high watermark returns data");
        out.extend_from_slice(&bytes);
        offset = last + 1;
    }
    out
}

/// `batch` as stored at `base_offset`.
pub(crate) fn with_base_offset(batch: &[u8], base_offset: i64) -> Vec<u8> {
    let mut stored = batch.to_vec();
    ringbroker_protocol::batch::set_base_offset(&mut stored, base_offset);
    stored
}

pub(crate) fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn round_trip_across_segment_rolls() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("topic-0");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        let mut expected = Vec::new();
        for i in 0..40 {
            let batch = test_batch(1000 + i, 1 + (i as usize % 3), 300);
            let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
            assert_eq!(outcome.base_offset, expected_offsets(&expected));
            expected.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
            assert_eq!(log.high_watermark(), outcome.last_offset + 1);
        }
        assert_eq!(log.log_end_offset(), log.high_watermark());
        assert_eq!(log.size_bytes(), expected.len() as u64);
        let logs = segment_files(&dir, "log");
        assert!(logs.len() > 3, "segments rolled: {logs:?}");
        assert_eq!(logs[0].file_name().unwrap(), "00000000000000000000.log");
        // Sealed segments are truncated to their data and have index files (seals run beside
        // the appends to the next segment, so wait for the last one).
        log.wait_seals_done().await;
        assert_eq!(segment_files(&dir, "index").len(), logs.len() - 1);
        for sealed in &logs[..logs.len() - 1] {
            assert!(std::fs::metadata(sealed).unwrap().len() <= small_config().segment_bytes);
        }
        for max_bytes in [1, 700, 5000, 1 << 20] {
            assert_eq!(
                read_all(&log, 0, max_bytes).await,
                expected,
                "max_bytes {max_bytes}"
            );
        }
        log.close().await.expect("close");
    });
}

/// Next offset after the batches in `stored`.
fn expected_offsets(stored: &[u8]) -> i64 {
    batch_offsets(stored).last().map_or(0, |(_, last)| last + 1)
}

#[test]
fn concurrent_appends_get_offsets_in_call_order() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            tail_cache_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(temp.path(), config).await.expect("open");
        let mut tasks = Vec::new();
        let mut batches_sent = Vec::new();
        for i in 0..300usize {
            let batch = test_batch(i as i64, 1 + i % 4, 50 + i % 200);
            // Offsets are assigned here, at call time, not when the task first runs.
            let append = log.append(&batch, NO_EPOCH);
            tasks.push(glommio::spawn_local(append));
            batches_sent.push(batch);
        }
        let offsets_sent: i64 = batches_sent
            .iter()
            .map(|batch| {
                i64::from(BatchHeader::parse(batch).expect("header").last_offset_delta) + 1
            })
            .sum();
        assert_eq!(
            log.log_end_offset(),
            offsets_sent,
            "assigned before any append ran"
        );
        let mut next = 0;
        let mut expected = Vec::new();
        // Await in reverse to show completion order does not matter.
        let mut outcomes = Vec::new();
        for task in tasks.into_iter().rev() {
            outcomes.push(task.await.expect("append"));
        }
        outcomes.reverse();
        for (outcome, batch) in outcomes.iter().zip(&batches_sent) {
            assert_eq!(outcome.base_offset, next);
            next = outcome.last_offset + 1;
            expected.extend_from_slice(&with_base_offset(batch, outcome.base_offset));
        }
        assert_eq!(log.high_watermark(), next);
        // From the tail cache (memory) and, for older data, from files.
        assert_eq!(read_all(&log, 0, 4096).await, expected);
        let tail = log.read(next - 1, 1 << 20).await.expect("tail read");
        assert!(matches!(tail.chunks[0], ReadChunk::Memory(_)));
        log.close().await.expect("close");
        // After a restart the same bytes come from files.
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(read_all(&log, 0, 4096).await, expected);
    });
}

#[test]
fn reads_follow_fetch_semantics() {
    for tail_cache_bytes in [0usize, 1 << 20] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                tail_cache_bytes,
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let log = PartitionLog::open(temp.path(), config).await.expect("open");
            let mut sizes = Vec::new();
            for i in 0..20 {
                let batch = test_batch(i, 5, 100);
                sizes.push(batch.len());
                log.append(&batch, NO_EPOCH).await.expect("append");
            }
            // Offset 7 is inside the second batch (offsets 5..=9): the read starts at offset 5.
            let one = log.read(7, 1).await.expect("read");
            assert_eq!(batch_offsets(&read_bytes(&one)), vec![(5, 9)]);
            assert_eq!(one.high_watermark, 100);
            assert_eq!(one.log_start_offset, 0);
            // Two whole batches fit, the third would exceed max_bytes.
            let two = log
                .read(7, sizes[1] + sizes[2] + sizes[3] - 1)
                .await
                .expect("read");
            assert_eq!(batch_offsets(&read_bytes(&two)), vec![(5, 9), (10, 14)]);
            let exact = log.read(5, sizes[1] + sizes[2]).await.expect("read");
            assert_eq!(exact.total_bytes() as usize, sizes[1] + sizes[2]);
            // The last batch, then empty at the high watermark, then out of range beyond it.
            let last = log.read(99, 1 << 20).await.expect("read");
            assert_eq!(batch_offsets(&read_bytes(&last)), vec![(95, 99)]);
            assert!(log
                .read(100, 1 << 20)
                .await
                .expect("read at hw")
                .chunks
                .is_empty());
            assert!(matches!(
                log.read(101, 1).await,
                Err(StorageError::OffsetOutOfRange { offset: 101, .. })
            ));
            assert!(matches!(
                log.read(-1, 1).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            // The whole log in one read when max_bytes allows.
            let all = log.read(0, 1 << 20).await.expect("read");
            assert_eq!(batch_offsets(&read_bytes(&all)).len(), 20);
        });
    }
}

#[test]
fn file_reads_count_the_records_they_return() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(temp.path(), config).await.expect("open");
        let mut total = 0u64;
        for i in 0..40 {
            let records = 1 + (i % 7);
            total += records as u64;
            log.append(&test_batch(i as i64, records, 60), NO_EPOCH)
                .await
                .expect("append");
        }
        // Small reads walk headers only; big ones jump over batches with the offset index.
        for max_bytes in [1, 700, 3000, 1 << 20] {
            for offset in [0, 3, 50, 100] {
                let result = log.read(offset, max_bytes).await.expect("read");
                let ReadChunk::File { records, .. } = &result.chunks[0] else {
                    panic!("no tail cache: reads come from the file");
                };
                assert_eq!(*records, records_in(&read_bytes(&result)));
                assert!(*records > 0);
            }
        }
        let all = log.read(0, 1 << 20).await.expect("read");
        assert!(matches!(all.chunks[..], [ReadChunk::File { records, .. }] if records == total));
    });
}

#[test]
fn restart_keeps_data_and_continues_offsets() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("open");
        let mut expected = Vec::new();
        for i in 0..30 {
            let batch = test_batch(i, 2, 200);
            let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
            expected.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
        }
        log.close().await.expect("close");
        assert!(matches!(
            log.append(&test_batch(0, 1, 1), NO_EPOCH).await,
            Err(StorageError::Closed)
        ));
        assert!(temp.path().join(CHECKPOINT_FILE_NAME).exists());

        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert!(
            !temp.path().join(CHECKPOINT_FILE_NAME).exists(),
            "checkpoint consumed at open"
        );
        assert_eq!(log.high_watermark(), 60);
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(log.max_timestamp(), Some((29, 58)));
        assert_eq!(read_all(&log, 0, 1000).await, expected);
        for i in 30..40 {
            let batch = test_batch(i, 2, 200);
            let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
            assert_eq!(outcome.base_offset, i * 2);
            expected.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
        }
        log.close().await.expect("close");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(log.high_watermark(), 80);
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        assert_eq!(read_all(&log, 41, 300).await, expected_from(&expected, 40));
    });
}

/// The stored bytes from the batch whose base offset is `base_offset` on.
fn expected_from(stored: &[u8], base_offset: i64) -> Vec<u8> {
    let mut position = 0;
    for item in batches(stored) {
        let (header, bytes) = item.expect("batch");
        if header.base_offset == base_offset {
            return stored[position..].to_vec();
        }
        position += bytes.len();
    }
    Vec::new()
}

#[test]
fn crash_without_close_recovers_everything_acknowledged() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut expected = Vec::new();
        {
            let log = PartitionLog::open(temp.path(), small_config())
                .await
                .expect("open");
            for i in 0..25 {
                let batch = test_batch(i, 3, 150);
                let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
                expected.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
            }
            // Dropped without close: no checkpoint, the active segment gets scanned.
        }
        assert!(!temp.path().join(CHECKPOINT_FILE_NAME).exists());
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(log.high_watermark(), 75);
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        assert_eq!(
            log.append(&test_batch(99, 1, 10), NO_EPOCH)
                .await
                .expect("append")
                .base_offset,
            75
        );
        // Sealed segments whose index files vanished are rebuilt by a scan.
        drop(log);
        for index in segment_files(temp.path(), "index") {
            std::fs::remove_file(index).expect("remove index");
        }
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(log.high_watermark(), 76);
        assert_eq!(
            &read_all(&log, 0, 1 << 20).await[..expected.len()],
            &expected[..]
        );
    });
}

/// Builds a one-segment log of `count` batches, dropped without close; returns the directory, the
/// stored bytes and the position of the last batch.
async fn build_crashed_log(dir: &Path, count: i64) -> (Vec<u8>, usize) {
    let log = PartitionLog::open(dir, small_config()).await.expect("open");
    let mut stored = Vec::new();
    let mut last_position = 0;
    for i in 0..count {
        let batch = test_batch(100 * i, 2, 20);
        let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
        last_position = stored.len();
        stored.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
    }
    (stored, last_position)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Opens a damaged copy and checks recovery kept exactly `keep` bytes of `stored` and appends after.
async fn check_recovery(dir: &Path, stored: &[u8], keep: usize) {
    let log = PartitionLog::open(dir, small_config())
        .await
        .expect("open damaged log");
    let kept = &stored[..keep];
    let next = expected_offsets(kept);
    assert_eq!(log.high_watermark(), next);
    assert_eq!(log.log_end_offset(), next);
    assert_eq!(read_all(&log, 0, 1 << 20).await, kept);
    let outcome = log
        .append(&test_batch(7, 1, 5), NO_EPOCH)
        .await
        .expect("append after recovery");
    assert_eq!(outcome.base_offset, next);
    drop(log);
    // A second crash recovery sees the recovered prefix plus the new batch, nothing resurrected.
    let log = PartitionLog::open(dir, small_config())
        .await
        .expect("reopen");
    assert_eq!(log.high_watermark(), next + 1);
    assert_eq!(&read_all(&log, 0, 1 << 20).await[..keep], kept);
}

#[test]
fn torn_last_batch_is_dropped_at_every_cut_and_flip() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let pristine = temp.path().join("pristine");
        let (stored, last_position) = build_crashed_log(&pristine, 5).await;
        let segment = segment_file_path(&pristine);
        let original = std::fs::read(&segment).expect("read segment");
        assert_eq!(&original[..stored.len()], &stored[..]);
        let mut case = 0;
        let mut damage = |damaged: Vec<u8>, truncate: bool| {
            case += 1;
            let dir = temp.path().join(format!("case-{case}"));
            copy_dir(&pristine, &dir);
            let path = segment_file_path(&dir);
            if truncate {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open");
                file.set_len(damaged.len() as u64).expect("truncate");
            } else {
                std::fs::write(&path, damaged).expect("write damaged");
            }
            dir
        };
        // Cut at every byte inside the last batch: zeroes from the cut on (torn DMA write), or a
        // file that ends there.
        for cut in last_position..stored.len() {
            let mut zeroed = original.clone();
            zeroed[cut..stored.len()].fill(0);
            // Zeroing bytes that are already zero (the batch's last byte is a zero header count)
            // leaves the batch intact.
            let intact = original[cut..stored.len()].iter().all(|&byte| byte == 0);
            let dir = damage(zeroed, false);
            check_recovery(
                &dir,
                &stored,
                if intact { stored.len() } else { last_position },
            )
            .await;
            let dir = damage(original[..cut].to_vec(), true);
            check_recovery(&dir, &stored, last_position).await;
        }
        // Flip every byte of the last batch. The partition leader epoch (bytes 12..16) and the base
        // offset (bytes 0..8) are outside the CRC by design (Kafka's format): an epoch flip keeps
        // the batch, and so does a base offset flip that leaves it past the batch before and within
        // the segment's 32-bit relative offsets (recovery takes the jump for a gap, as Kafka's
        // does: followers store compacted logs with gaps); one that does not drops it.
        let next_offset = expected_offsets(&stored[..last_position]);
        for flip in last_position..stored.len() {
            let mut flipped = original.clone();
            flipped[flip] ^= 0xFF;
            let relative = flip - last_position;
            let base_bytes: [u8; 8] = flipped[last_position..last_position + 8]
                .try_into()
                .expect("8 bytes");
            let flipped_base = i64::from_be_bytes(base_bytes);
            let taken_as_gap = (0..8).contains(&relative)
                && flipped_base >= next_offset
                && flipped_base < i64::from(u32::MAX);
            let dir = damage(flipped, false);
            let keep = if (12..16).contains(&relative) || taken_as_gap {
                stored.len()
            } else {
                last_position
            };
            if keep == stored.len() {
                let log = PartitionLog::open(&dir, small_config())
                    .await
                    .expect("open");
                let end = if taken_as_gap {
                    flipped_base + 2
                } else {
                    expected_offsets(&stored)
                };
                assert_eq!(log.high_watermark(), end, "flip of byte {relative}");
            } else {
                check_recovery(&dir, &stored, keep).await;
            }
        }
    });
}

fn segment_file_path(dir: &Path) -> PathBuf {
    dir.join("00000000000000000000.log")
}

#[test]
fn stale_batches_after_a_truncation_are_not_resurrected() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (stored, _) = build_crashed_log(temp.path(), 3).await;
        let batch_bytes = stored.len() / 3;
        // Corrupt the middle batch's records: recovery keeps only the first.
        let path = segment_file_path(temp.path());
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[batch_bytes + 70] ^= 0x55;
        std::fs::write(&path, bytes).expect("write");
        {
            let log = PartitionLog::open(temp.path(), small_config())
                .await
                .expect("open");
            assert_eq!(log.high_watermark(), 2);
            // Same size as the dropped batch: it ends exactly where the stale third batch began.
            let outcome = log
                .append(&test_batch(100, 2, 20), NO_EPOCH)
                .await
                .expect("append");
            assert_eq!(outcome.base_offset, 2);
        }
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(
            log.high_watermark(),
            4,
            "the stale batch (offsets 4..5) stays dead"
        );
    });
}

#[test]
fn timestamp_lookup_finds_first_batch_at_or_after() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("open");
        assert_eq!(log.offset_for_timestamp(0).await.expect("lookup"), None);
        assert_eq!(log.max_timestamp(), None);
        for i in 0..60i64 {
            // Timestamps 1000, 1010, ... with one step back to check "first with ts >= target".
            let timestamp = if i == 30 { 1005 } else { 1000 + 10 * i };
            log.append(&test_batch(timestamp, 2, 250), NO_EPOCH)
                .await
                .expect("append");
        }
        assert!(segment_files(temp.path(), "log").len() > 2);
        let lookup = |target| {
            let log = log.clone();
            async move { log.offset_for_timestamp(target).await.expect("lookup") }
        };
        assert_eq!(lookup(0).await, Some((0, 1000)));
        assert_eq!(lookup(1000).await, Some((0, 1000)));
        assert_eq!(lookup(1001).await, Some((2, 1010)));
        assert_eq!(lookup(1200).await, Some((40, 1200)));
        assert_eq!(lookup(1590).await, Some((118, 1590)));
        assert_eq!(lookup(1591).await, None);
        assert_eq!(log.max_timestamp(), Some((1590, 118)));
        log.close().await.expect("close");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(
            log.offset_for_timestamp(1200).await.expect("lookup"),
            Some((40, 1200))
        );
        assert_eq!(log.max_timestamp(), Some((1590, 118)));
    });
}

#[test]
fn wait_for_data_wakes_on_append() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("open");
        let woke = Rc::new(Cell::new(false));
        let waiter = {
            let log = log.clone();
            let woke = woke.clone();
            glommio::spawn_local(async move {
                log.wait_for_data(0).await;
                woke.set(true);
            })
        };
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert!(!woke.get(), "no data yet");
        log.append(&test_batch(1, 1, 10), NO_EPOCH)
            .await
            .expect("append");
        waiter.await;
        assert!(woke.get());
        // Already satisfied: returns at once.
        log.wait_for_data(0).await;
    });
}

#[test]
fn retention_deletes_whole_sealed_segments_from_the_head() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("open");
        for i in 0..40i64 {
            log.append(&test_batch(1000 * i, 1, 900), NO_EPOCH)
                .await
                .expect("append");
        }
        let segments_before = segment_files(temp.path(), "log").len();
        assert!(segments_before >= 4);
        // Nothing is old or large enough yet.
        let keep_all = RetentionPolicy {
            retention_ms: Some(1_000_000),
            retention_bytes: Some(1 << 30),
        };
        assert_eq!(
            log.apply_retention(keep_all, 40_000)
                .await
                .expect("retention"),
            0
        );
        // By time: segments whose newest batch is older than 20_000 - 5_000 go.
        let by_time = RetentionPolicy {
            retention_ms: Some(5_000),
            retention_bytes: None,
        };
        let deleted = log
            .apply_retention(by_time, 20_000)
            .await
            .expect("retention");
        assert!(deleted >= 1);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 15, "log start {start}");
        assert!(matches!(
            log.read(start - 1, 1).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            batch_offsets(&read_bytes(&log.read(start, 1).await.expect("read"))),
            vec![(start, start)]
        );
        // By size: keep at least ~2 segments' worth, the active segment always stays.
        let by_size = RetentionPolicy {
            retention_ms: None,
            retention_bytes: Some(1),
        };
        log.apply_retention(by_size, 0).await.expect("retention");
        assert_eq!(segment_files(temp.path(), "log").len(), 1);
        assert_eq!(segment_files(temp.path(), "index").len(), 0);
        let start = log.log_start_offset();
        assert_eq!(log.high_watermark(), 40);
        assert_eq!(
            read_all(&log, start, 1 << 20).await.len() as u64,
            log.size_bytes()
        );
        log.close().await.expect("close");
        let log = PartitionLog::open(temp.path(), small_config())
            .await
            .expect("reopen");
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.high_watermark(), 40);
    });
}

#[test]
fn active_segment_is_preallocated_in_steps() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(temp.path(), config.clone())
            .await
            .expect("open");
        log.append(&test_batch(1, 1, 100), NO_EPOCH)
            .await
            .expect("append");
        let path = segment_file_path(temp.path());
        let file_size = || std::fs::metadata(&path).expect("stat").len();
        // One step ahead of the data, not a whole 1 GiB segment.
        assert!(file_size() >= config::PREALLOCATE_STEP_BYTES);
        assert!(file_size() <= config::PREALLOCATE_STEP_BYTES + PAGE_BYTES);
        let big = test_batch(2, 1, 1 << 20);
        let mut stored_bytes = 0;
        while stored_bytes <= config::PREALLOCATE_STEP_BYTES {
            log.append(&big, NO_EPOCH).await.expect("append");
            stored_bytes += big.len() as u64;
        }
        assert!(file_size() > config::PREALLOCATE_STEP_BYTES);
        assert!(file_size() <= log.size_bytes() + 2 * config::PREALLOCATE_STEP_BYTES);
        let bytes = log.size_bytes();
        log.close().await.expect("close");
        // Files of older versions reserved a whole segment: reopening gives the excess back.
        let oversized = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        oversized.set_len(256 << 20).expect("extend");
        let log = PartitionLog::open(temp.path(), config.clone())
            .await
            .expect("reopen");
        assert_eq!(log.size_bytes(), bytes);
        assert!(file_size() <= bytes + config::PREALLOCATE_STEP_BYTES + PAGE_BYTES);
        drop(log);
        let log = PartitionLog::open(temp.path(), config)
            .await
            .expect("reopen after crash");
        assert_eq!(log.size_bytes(), bytes);
    });
}

#[test]
fn remove_deletes_the_partition_directory() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-3");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        for i in 0..20 {
            log.append(&test_batch(i, 1, 500), NO_EPOCH)
                .await
                .expect("append");
        }
        log.remove().await.expect("remove");
        assert!(!dir.exists());
    });
}

#[test]
fn every_flush_policy_appends_and_bad_input_is_rejected() {
    for flush in [
        FlushPolicy::Always,
        FlushPolicy::IntervalMs(5),
        FlushPolicy::Never,
    ] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                flush,
                ..small_config()
            };
            let log = PartitionLog::open(temp.path(), config).await.expect("open");
            assert!(matches!(
                log.append(&[], NO_EPOCH).await,
                Err(StorageError::EmptyAppend)
            ));
            assert!(matches!(
                log.append(&[0u8; 100], NO_EPOCH).await,
                Err(StorageError::InvalidBatch(_))
            ));
            let batch = test_batch(1, 2, 10);
            assert!(matches!(
                log.append(&batch[..batch.len() - 1], NO_EPOCH).await,
                Err(StorageError::InvalidAppend(_))
            ));
            let mut two = batch.clone();
            two.extend_from_slice(&test_batch(2, 3, 10));
            let outcome = log.append(&two, NO_EPOCH).await.expect("append");
            assert_eq!((outcome.base_offset, outcome.last_offset), (0, 4));
            glommio::timer::sleep(Duration::from_millis(20)).await;
            log.close().await.expect("close");
        });
    }
}

/// CPU time of the calling thread (user + system), to separate the per-append cost from the wait
/// for the disk and from other processes competing for the cores.
fn thread_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let micros = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Throughput of 1 KiB batches, one batch per append, with `in_flight` appends outstanding (group
/// commit coalesces them), default production config except FlushPolicy::Never. Run with
/// `cargo test -p ringbroker-engine --release storage::tests::append_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn append_throughput_1k_batches() {
    for in_flight in [512usize, 4096, 16384] {
        run(move || async move {
            const TOTAL_BYTES: usize = 1 << 30;
            let dir = tempfile::tempdir_in("/work").expect("tempdir");
            let config = LogConfig {
                flush: FlushPolicy::Never,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.path(), config).await.expect("open");
            let batch = test_batch(0, 1, 1024 - 70);
            assert_eq!(batch.len(), 1024);
            let count = TOTAL_BYTES / batch.len();
            let started = Instant::now();
            let cpu_started = thread_cpu_time();
            let mut pending = std::collections::VecDeque::with_capacity(in_flight);
            for _ in 0..count {
                if pending.len() == in_flight {
                    let task: glommio::Task<Result<AppendOutcome, StorageError>> =
                        pending.pop_front().expect("non-empty");
                    task.await.expect("append");
                }
                pending.push_back(glommio::spawn_local(log.append(&batch, NO_EPOCH)));
            }
            for task in pending {
                task.await.expect("append");
            }
            let elapsed = started.elapsed();
            let cpu = thread_cpu_time() - cpu_started;
            let megabytes = (count * batch.len()) as f64 / 1e6;
            println!(
                "in flight {in_flight}: {count} appends of 1 KiB, {megabytes:.0} MB in {elapsed:.2?} = {:.0} MB/s, \
                 {:.0} appends/s; executor CPU {cpu:.2?} = {:.2} us/append",
                megabytes / elapsed.as_secs_f64(),
                count as f64 / elapsed.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / count as f64,
            );
            log.close().await.expect("close");
        });
    }
}

/// A kill -9 between a roll and the seal's truncate leaves the rolled segment at its preallocated
/// size without index files: recovery finishes the seal instead of refusing to open the log.
#[test]
fn a_seal_cut_short_by_a_crash_is_finished_by_recovery() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let mut stored = Vec::new();
        for i in 0..20 {
            let batch = test_batch(1_000 + i, 1, 900);
            let outcome = log.append(&batch, NO_EPOCH).await.expect("append");
            stored.extend_from_slice(&with_base_offset(&batch, outcome.base_offset));
        }
        log.close().await.expect("close");
        let logs = segment_files(&dir, "log");
        assert!(logs.len() >= 2, "the appends rolled a segment");
        let first = &logs[0];
        let data_bytes = std::fs::metadata(first).expect("stat").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(first)
            .expect("open segment")
            .set_len(1 << 20)
            .expect("extend like preallocation");
        std::fs::remove_file(first.with_extension("index")).expect("rm index");
        std::fs::remove_file(first.with_extension("timeindex")).expect("rm timeindex");
        std::fs::remove_file(dir.join(CHECKPOINT_FILE_NAME)).expect("rm checkpoint");

        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("recovery finishes the interrupted seal");
        assert_eq!(read_all(&reopened, 0, 1 << 20).await, stored);
        assert_eq!(std::fs::metadata(first).expect("stat").len(), data_bytes);
        assert!(first.with_extension("index").exists());
        reopened.close().await.expect("close");
    });
}
