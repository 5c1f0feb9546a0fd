//! Compaction of real partition logs on DMA files: latest value per key, tombstones and
//! `delete.retention.ms`, reads inside offset gaps, reopen with and without index files, a crash at
//! each swap step, and the offset map's memory cap.

use std::collections::BTreeMap;
use std::path::Path;

use ringbroker_protocol::batch::batches;
use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

use super::batch_filter::plain_records;
use super::swap::SWAP_STEPS;
use super::transactions::AbortedRange;
use super::*;
use crate::storage::tests::{open_temp_log, run, small_config, NO_EPOCH};
use crate::storage::{PartitionLog, ReadChunk};

/// Far in the past, so the compaction lag never holds a segment back.
const TIMESTAMP: i64 = 1_000;

/// One stored record as the tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// A batch of (key, value) records; `None` value is a tombstone.
fn batch(records: &[(String, Option<String>)], codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(codec);
    for (key, value) in records {
        builder
            .push(&Record {
                key: Some(key.as_bytes()),
                value: value.as_deref().map(str::as_bytes),
                headers: &[],
                timestamp_ms: TIMESTAMP,
            })
            .expect("push");
    }
    builder.finish().expect("finish").to_vec()
}

fn policy(max_keys: usize) -> CompactionPolicy {
    CompactionPolicy {
        min_compaction_lag_ms: 0,
        delete_retention_ms: 60_000,
        max_keys,
    }
}

/// Appends `updates` updates over `keys` keys, 4 per batch, alternating codecs; returns the latest
/// value of every key.
async fn fill(log: &PartitionLog, keys: usize, updates: usize) -> BTreeMap<String, String> {
    fill_keys(log, "key", keys, updates).await
}

/// [`fill`] with keys `<prefix>-<n>`.
async fn fill_keys(
    log: &PartitionLog,
    prefix: &str,
    keys: usize,
    updates: usize,
) -> BTreeMap<String, String> {
    let mut latest = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..updates {
        let key = format!("{prefix}-{}", i % keys);
        let value = format!("value-{i}-{}", "x".repeat(40));
        latest.insert(key.clone(), value.clone());
        pending.push((key, Some(value)));
        if pending.len() == 4 {
            let codec = if i % 8 == 3 {
                Compression::Lz4
            } else {
                Compression::None
            };
            log.append(&batch(&pending, codec), NO_EPOCH)
                .await
                .expect("append");
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log.append(&batch(&pending, Compression::None), NO_EPOCH)
            .await
            .expect("append");
    }
    log.wait_seals_done().await;
    latest
}

/// One pass over `log` at `now_ms` with the default key cap, on a partition without transactions.
async fn pass(
    log: &PartitionLog,
    now_ms: i64,
    memo: &mut CompactionMemo,
) -> Result<Option<CompactionOutcome>, StorageError> {
    log.compact(
        &policy(DEFAULT_MAX_KEYS),
        &CleanerTxns::none(),
        now_ms,
        memo,
    )
    .await
}

/// One pass at a time after every record's timestamp (no lag holds a segment back); the pass must
/// find work.
async fn compact_expecting_work(
    log: &PartitionLog,
    memo: &mut CompactionMemo,
) -> CompactionOutcome {
    pass(log, TIMESTAMP + 10, memo)
        .await
        .expect("compact")
        .expect("work to do")
}

/// Every record from the log start to the high watermark, via `PartitionLog::read`.
async fn read_all(log: &PartitionLog) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let result = log.read(offset, 4096).await.expect("read");
        if result.chunks.is_empty() {
            break;
        }
        for chunk in &result.chunks {
            let bytes = match chunk {
                ReadChunk::Memory(bytes) => bytes.to_vec(),
                ReadChunk::File {
                    path,
                    position,
                    len,
                    records,
                    inode,
                } => {
                    assert_eq!(path_inode(path), *inode, "the path names the planned file");
                    let file = std::fs::read(path).expect("segment");
                    let range = file[*position as usize..(*position + *len) as usize].to_vec();
                    assert_eq!(*records, crate::storage::tests::records_in(&range));
                    range
                }
            };
            for item in batches(&bytes) {
                let (header, raw) = item.expect("batch");
                validate_log_batch(raw).expect("valid stored batch");
                let plain = plain_records(raw).expect("plain");
                for record in plain.records().expect("records") {
                    if record.offset < offset {
                        continue;
                    }
                    let value_of = plain_value(record.raw);
                    out.push(Seen {
                        offset: record.offset,
                        key: record.key.map(<[u8]>::to_vec),
                        value: value_of,
                    });
                }
                offset = offset.max(header.last_offset() + 1);
            }
        }
    }
    out
}

/// The inode `path` names now.
fn path_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("segment metadata").ino()
}

/// The value of a raw record (the tests need it; the cleaner only needs "is null").
fn plain_value(raw: &[u8]) -> Option<Vec<u8>> {
    let decoded = raw;
    // length, attributes, timestamp delta, offset delta, key, value
    let mut at = 0usize;
    let varint = |at: &mut usize| -> i64 {
        let mut raw_value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = decoded[*at];
            *at += 1;
            raw_value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        ((raw_value >> 1) as i64) ^ -((raw_value & 1) as i64)
    };
    varint(&mut at);
    at += 1;
    varint(&mut at);
    varint(&mut at);
    let key_len = varint(&mut at);
    if key_len > 0 {
        at += key_len as usize;
    }
    let value_len = varint(&mut at);
    (value_len >= 0).then(|| decoded[at..at + value_len as usize].to_vec())
}

/// The latest value per key among `records` (a later record wins), tombstoned keys removed.
fn latest_values(records: &[Seen]) -> BTreeMap<String, String> {
    let mut latest = BTreeMap::new();
    for record in records {
        let key = String::from_utf8(record.key.clone().expect("keyed")).expect("utf8");
        match &record.value {
            Some(value) => {
                latest.insert(key, String::from_utf8(value.clone()).expect("utf8"));
            }
            None => {
                latest.remove(&key);
            }
        }
    }
    latest
}

/// Offsets strictly increase and no key appears twice below `sealed_end`.
fn assert_compacted(records: &[Seen], sealed_end: i64) {
    assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
    let mut keys = std::collections::HashSet::new();
    for record in records.iter().filter(|r| r.offset < sealed_end) {
        assert!(
            keys.insert(record.key.clone()),
            "key {:?} twice in sealed segments",
            record.key
        );
    }
}

/// Base offset of the active segment (everything below is sealed).
fn active_base(dir: &Path) -> i64 {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| {
            let name = e.expect("entry").file_name();
            crate::storage::segment::parse_log_file_name(name.to_str()?)
        })
        .collect();
    bases.sort_unstable();
    *bases.last().expect("a segment")
}

#[test]
fn keeps_the_latest_record_per_key_across_reopen_and_index_loss() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        // With a tail cache: reads must not see the original batches of cleaned segments.
        let config = crate::storage::LogConfig {
            tail_cache_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(&dir, config).await.expect("open");
        let latest = fill(&log, 10, 600).await;
        let before = log.size_bytes();
        let mut memo = CompactionMemo::default();
        let outcome = compact_expecting_work(&log, &mut memo).await;
        assert!(outcome.segments_cleaned > 0 && outcome.records_removed > 0);
        assert!(log.size_bytes() < before);
        let records = read_all(&log).await;
        assert_compacted(&records, active_base(&dir));
        assert_eq!(latest_values(&records), latest);
        // Rewritten segments know the records before each index entry: big reads jump and count.
        let inner = log.inner_for_tests();
        let counted = |inner: &LogInner| {
            let state = inner.state.borrow();
            state.segments.iter().any(|s| s.index_records.is_some())
        };
        assert!(counted(&inner));
        assert_big_reads_count_records(&log).await;
        // Nothing new: the next pass has nothing to do.
        assert_eq!(
            pass(&log, TIMESTAMP + 10, &mut memo)
                .await
                .expect("compact"),
            None
        );
        // A read inside a gap starts at the next retained batch.
        let gap = (records[0].offset + 1..records[1].offset).next();
        if let Some(gap) = gap {
            let result = log.read(gap, 1).await.expect("read in gap");
            assert!(!result.chunks.is_empty());
        }
        log.close().await.expect("close");
        drop(log);

        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(read_all(&log).await, records);
        // Reopened: the counts are unknown and reads walk the compacted segments.
        assert!(!counted(&log.inner_for_tests()));
        assert_big_reads_count_records(&log).await;
        log.close().await.expect("close");
        drop(log);
        // Without index files the sealed (compacted, gapped) segments are scanned.
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
            {
                std::fs::remove_file(path).expect("remove index");
            }
        }
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(read_all(&log).await, records);
        // The scan that rebuilt the indexes counted the records too.
        assert!(counted(&log.inner_for_tests()));
        assert_big_reads_count_records(&log).await;
    });
}

#[test]
fn a_reopened_log_counts_only_segments_below_the_cleaner_checkpoint_as_rewritten() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        fill(&log, 10, 600).await;
        let mut memo = CompactionMemo::default();
        let outcome = compact_expecting_work(&log, &mut memo).await;
        // Appended after the pass: never rewritten, offsets dense.
        fill_keys(&log, "late", 50, 600).await;
        let records = read_all(&log).await;
        log.close().await.expect("close");
        drop(log);

        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        let density: Vec<(i64, bool)> = {
            let inner = log.inner_for_tests();
            let state = inner.state.borrow();
            state
                .segments
                .iter()
                .map(|segment| (segment.base_offset, segment.offsets_dense))
                .collect()
        };
        assert!(density.iter().any(|(_, dense)| *dense));
        assert!(density.iter().any(|(_, dense)| !*dense));
        for (base_offset, dense) in density {
            assert_eq!(
                dense,
                base_offset >= outcome.cleaned_up_to,
                "segment {base_offset}"
            );
        }
        // Every read still reports exact record counts (read_all checks each chunk).
        assert_eq!(read_all(&log).await, records);
        assert_big_reads_count_records(&log).await;
    });
}

/// Reads of up to 64 KiB from a few offsets report the records of the batches they return.
async fn assert_big_reads_count_records(log: &PartitionLog) {
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    for offset in [start, start + 1, (start + end) / 2] {
        let result = log.read(offset, 64 << 10).await.expect("read");
        for chunk in &result.chunks {
            if let ReadChunk::File {
                path,
                position,
                len,
                records,
                ..
            } = chunk
            {
                let file = std::fs::read(path).expect("segment");
                let range = &file[*position as usize..(*position + *len) as usize];
                assert_eq!(*records, crate::storage::tests::records_in(range));
            }
        }
    }
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let mut latest = fill(&log, 10, 100).await;
        let tombstones: Vec<(String, Option<String>)> = ["key-1", "key-2"]
            .iter()
            .map(|key| (key.to_string(), None))
            .collect();
        log.append(&batch(&tombstones, Compression::None), NO_EPOCH)
            .await
            .expect("tombstones");
        latest.remove("key-1");
        latest.remove("key-2");
        // Push the tombstones into a sealed segment.
        latest.extend(fill_keys(&log, "other", 3, 300).await);
        let now = super::system_time_ms(SystemTime::now());
        let mut memo = CompactionMemo::default();
        pass(&log, now, &mut memo)
            .await
            .expect("compact")
            .expect("work");
        let records = read_all(&log).await;
        assert_eq!(latest_values(&records), latest);
        let tombstone_count = records.iter().filter(|r| r.value.is_none()).count();
        assert_eq!(
            tombstone_count, 2,
            "tombstones kept within delete.retention.ms"
        );
        // Before delete.retention.ms passed nothing changes.
        assert_eq!(
            pass(&log, now + 1_000, &mut memo).await.expect("compact"),
            None
        );
        // After it, the tombstones go.
        let later = now + policy(DEFAULT_MAX_KEYS).delete_retention_ms + 1_000;
        let outcome = pass(&log, later, &mut memo)
            .await
            .expect("compact")
            .expect("work");
        assert_eq!(outcome.records_removed, 2);
        let records = read_all(&log).await;
        assert!(records.iter().all(|r| r.value.is_some()));
        assert_eq!(latest_values(&records), latest);
        assert_compacted(&records, active_base(&dir));
    });
}

#[test]
fn a_crash_at_each_swap_step_leaves_a_valid_log() {
    for step in SWAP_STEPS {
        run(move || async move {
            let (_temp, dir, log) = open_temp_log().await;
            let latest = fill(&log, 7, 400).await;
            let original = read_all(&log).await;
            let mut memo = CompactionMemo::default();
            compact_with_crash(
                &log.inner_for_tests(),
                &policy(DEFAULT_MAX_KEYS),
                &CleanerTxns::none(),
                TIMESTAMP + 10,
                &mut memo,
                Some(step),
            )
            .await
            .expect("compact until the crash");
            drop(log); // kill -9: no close, no checkpoint

            let log = PartitionLog::open(&dir, small_config())
                .await
                .expect("recover");
            let recovered = read_all(&log).await;
            assert_eq!(latest_values(&recovered), latest, "{step:?}");
            assert!(
                recovered.len() < original.len(),
                "{step:?}: the swap was finished"
            );
            let mut memo = CompactionMemo::default();
            pass(&log, TIMESTAMP + 10, &mut memo)
                .await
                .expect("compact after recovery");
            let records = read_all(&log).await;
            assert_compacted(&records, active_base(&dir));
            assert_eq!(latest_values(&records), latest, "{step:?}");
        });
    }
}

/// Whether some segment is served from its staged `.swap` (cleaned, `<base>.log` not replaced yet).
fn serving_a_staged_swap(log: &PartitionLog) -> bool {
    let inner = log.inner_for_tests();
    let state = inner.state.borrow();
    state
        .segments
        .iter()
        .any(|segment| segment.log_path.extension().is_some_and(|e| e == "swap"))
}

/// Starts a compaction pass in its own task and returns once it serves a segment from a staged
/// swap (within the swap's grace period).
async fn pass_until_a_swap_is_staged(
    log: &PartitionLog,
) -> glommio::task::JoinHandle<Result<Option<CompactionOutcome>, StorageError>> {
    let inner = log.inner_for_tests();
    let pass = glommio::spawn_local(async move {
        let mut memo = CompactionMemo::default();
        compact(
            &inner,
            &policy(DEFAULT_MAX_KEYS),
            &CleanerTxns::none(),
            TIMESTAMP + 10,
            &mut memo,
        )
        .await
    })
    .detach();
    while !serving_a_staged_swap(log) {
        glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
    }
    pass
}

/// Shuts `log` down while `pass` runs, lets the pass end, and opens the log again (a restart).
async fn close_during_pass_and_reopen(
    log: PartitionLog,
    pass: glommio::task::JoinHandle<Result<Option<CompactionOutcome>, StorageError>>,
    dir: &Path,
) -> PartitionLog {
    log.close().await.expect("close");
    pass.await
        .expect("pass task")
        .expect("compaction after close");
    drop(log);
    PartitionLog::open(dir, small_config())
        .await
        .expect("reopen")
}

#[test]
fn a_close_during_the_swap_grace_keeps_the_cleaned_data_reads_were_served() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let latest = fill(&log, 7, 400).await;
        let original = read_all(&log).await;
        let pass = pass_until_a_swap_is_staged(&log).await;
        // Reads are served the cleaned data now; a shutdown lands in the swap's grace period.
        let served = read_all(&log).await;
        assert!(served.len() < original.len(), "reads see the cleaned data");
        let log = close_during_pass_and_reopen(log, pass, &dir).await;
        let reopened = read_all(&log).await;
        assert_eq!(reopened, served, "the cleaned data survives the restart");
        assert_eq!(latest_values(&reopened), latest);
    });
}

#[test]
fn a_segment_deleted_while_its_swap_is_staged_stays_deleted_after_a_close() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let latest = fill(&log, 7, 400).await;
        let pass = pass_until_a_swap_is_staged(&log).await;
        // DeleteRecords past the first segments, then a shutdown, both within the swap's grace.
        let start = {
            let inner = log.inner_for_tests();
            let state = inner.state.borrow();
            state.segments[2].base_offset
        };
        assert_eq!(
            log.delete_records_before(start).await.expect("delete"),
            start
        );
        let log = close_during_pass_and_reopen(log, pass, &dir).await;
        assert_eq!(
            log.log_start_offset(),
            start,
            "deleted segments stay deleted"
        );
        let first_base = {
            let inner = log.inner_for_tests();
            let state = inner.state.borrow();
            state.segments[0].base_offset
        };
        assert_eq!(first_base, start);
        let records = read_all(&log).await;
        assert!(records.iter().all(|record| record.offset >= start));
        // Every key still in the log holds its latest value.
        for (key, value) in latest_values(&records) {
            assert_eq!(latest.get(&key), Some(&value), "{key}");
        }
    });
}

#[test]
fn a_small_offset_map_compacts_over_several_passes() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let latest = fill(&log, 30, 600).await;
        let mut memo = CompactionMemo::default();
        let mut passes = 0;
        let mut last_end = i64::MIN;
        while let Some(outcome) = log
            .compact(&policy(8), &CleanerTxns::none(), TIMESTAMP + 10, &mut memo)
            .await
            .expect("compact")
        {
            assert!(outcome.cleaned_up_to > last_end, "each pass gets further");
            last_end = outcome.cleaned_up_to;
            passes += 1;
            assert!(passes < 1_000, "passes end");
        }
        assert!(passes > 2, "the cap split the work ({passes} passes)");
        let records = read_all(&log).await;
        assert_eq!(latest_values(&records), latest);
        assert_compacted(&records, active_base(&dir));
    });
}

#[test]
fn the_tombstone_clock_starts_when_a_segment_is_first_cleaned_even_without_a_rewrite() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        // Unique keys and one tombstone: a pass has nothing to remove.
        log.append(
            &batch(&[("gone".to_string(), None)], Compression::None),
            NO_EPOCH,
        )
        .await
        .expect("tombstone");
        fill_keys(&log, "unique", 400, 400).await;
        let sealed_long_ago = SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .expect("open segment")
                    .set_modified(sealed_long_ago)
                    .expect("set mtime");
            }
        }
        let now = super::system_time_ms(SystemTime::now());
        let mut memo = CompactionMemo::default();
        let outcome = pass(&log, now, &mut memo)
            .await
            .expect("compact")
            .expect("dirty segments");
        assert_eq!(outcome.segments_cleaned, 0);
        // Within delete.retention.ms of that first cleaning the tombstone stays.
        assert_eq!(
            pass(&log, now + 1_000, &mut memo).await.expect("compact"),
            None
        );
        let records = read_all(&log).await;
        assert_eq!(records.iter().filter(|r| r.value.is_none()).count(), 1);
    });
}

#[test]
fn segments_emptied_by_compaction_still_expire_by_time() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        fill(&log, 10, 600).await;
        compact_expecting_work(&log, &mut CompactionMemo::default()).await;
        let active = active_base(&dir);
        // Every record is from TIMESTAMP, long ago: with cleanup.policy=compact,delete all sealed
        // segments are past a one-hour retention, including those compaction left without a
        // record (no timestamp: their file time counts, as Kafka's LogSegment.largestTimestamp).
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let two_hours_later = now_ms + 2 * 3_600_000;
        let deleted = log
            .apply_retention(
                crate::storage::RetentionPolicy {
                    retention_ms: Some(3_600_000),
                    retention_bytes: None,
                },
                two_hours_later,
            )
            .await
            .expect("retention");
        assert!(deleted > 0);
        assert_eq!(log.log_start_offset(), active);
    });
}

/// A truncation (an unclean leader election) may cut into a compacted segment: the segment is
/// re-scanned whole (its offsets have gaps), becomes the active segment again, and nothing past
/// the cut comes back after a crash.
#[test]
fn truncating_into_a_compacted_segment_keeps_the_cleaned_records_below_the_cut() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        fill(&log, 8, 600).await;
        let mut memo = CompactionMemo::default();
        compact_expecting_work(&log, &mut memo).await;
        let before = read_all(&log).await;
        let sealed_end = active_base(&dir);
        // Batches hold 4 records from a multiple of 4: such an offset is a batch start or lies
        // in a gap compaction left. Pick one in the middle of the compacted range.
        let cut = (sealed_end / 2) / 4 * 4;
        assert!(
            before
                .iter()
                .any(|seen| seen.offset > cut && seen.offset < sealed_end),
            "records above the cut in compacted segments"
        );
        let unclean = crate::storage::TruncateOptions {
            allow_below_high_watermark: true,
        };
        assert_eq!(log.truncate_to(cut, unclean).await.expect("truncate"), cut);
        let kept: Vec<Seen> = before
            .into_iter()
            .filter(|seen| seen.offset < cut)
            .collect();
        assert_eq!(read_all(&log).await, kept);
        assert_eq!(log.log_end_offset(), cut);
        let more = [("key-new".to_string(), Some("after the cut".to_string()))];
        let outcome = log
            .append(&batch(&more, Compression::None), 3)
            .await
            .expect("append");
        assert_eq!(outcome.base_offset, cut);
        let mut expected = kept.clone();
        expected.push(Seen {
            offset: cut,
            key: Some(b"key-new".to_vec()),
            value: Some(b"after the cut".to_vec()),
        });
        assert_eq!(read_all(&log).await, expected);
        // Killed now: the cut segment is the active one, scanned at open.
        drop(log);
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(read_all(&reopened).await, expected);
        assert_eq!(reopened.log_end_offset(), cut + 1);
    });
}

/// A transactional batch of producer `producer_id` setting each of `keys` to `value`.
fn transactional_batch(
    producer_id: i64,
    base_sequence: i32,
    keys: &[String],
    value: &str,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(producer_id, 0, base_sequence);
    builder.set_transactional(true);
    for key in keys {
        builder
            .push(&Record {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp_ms: TIMESTAMP,
            })
            .expect("push");
    }
    builder.finish().expect("finish").to_vec()
}

#[test]
fn aborted_transactions_go_and_never_shadow_the_committed_values() {
    run(|| async {
        let (_temp, dir, log) = open_temp_log().await;
        let committed = fill(&log, 5, 40).await;
        // An aborted transaction of producer 9 sets every key again (Kafka Connect's offsets topic
        // after a worker died inside a transaction).
        let keys: Vec<String> = committed.keys().cloned().collect();
        let first_offset = log.high_watermark();
        for i in 0..20 {
            let batch = transactional_batch(9, i * 5, &keys, &format!("aborted-{i}"));
            log.append(&batch, NO_EPOCH).await.expect("append");
        }
        // The abort marker's offset (the cleaner does not read markers: the range says it all).
        let last_offset = log.high_watermark();
        let mut latest = fill_keys(&log, "later", 5, 400).await;
        latest.extend(committed);
        let aborted = [AbortedRange {
            producer_id: 9,
            first_offset,
            last_offset,
        }];
        let txns = CleanerTxns::new(log.high_watermark(), &aborted);
        let mut memo = CompactionMemo::default();
        let outcome = log
            .compact(&policy(DEFAULT_MAX_KEYS), &txns, TIMESTAMP + 10, &mut memo)
            .await
            .expect("compact")
            .expect("work to do");
        assert!(outcome.records_removed >= 100, "{outcome:?}");
        let records = read_all(&log).await;
        assert_compacted(&records, active_base(&dir));
        let aborted_left = records
            .iter()
            .filter(|r| {
                r.value
                    .as_deref()
                    .is_some_and(|v| v.starts_with(b"aborted"))
            })
            .count();
        assert_eq!(aborted_left, 0, "aborted records stay after a pass");
        assert_eq!(latest_values(&records), latest);
    });
}

#[test]
fn nothing_at_or_after_the_last_stable_offset_is_cleaned() {
    run(|| async {
        let (_temp, _dir, log) = open_temp_log().await;
        let first_offset = log.high_watermark();
        let keys = vec!["k".to_string()];
        log.append(&transactional_batch(9, 0, &keys, "open"), NO_EPOCH)
            .await
            .expect("append");
        fill(&log, 3, 400).await;
        let mut memo = CompactionMemo::default();
        // The transaction is still open: the last stable offset is its first offset.
        let open = CleanerTxns::new(first_offset, &[]);
        let outcome = log
            .compact(&policy(DEFAULT_MAX_KEYS), &open, TIMESTAMP + 10, &mut memo)
            .await
            .expect("compact");
        assert_eq!(outcome, None, "nothing below the last stable offset");
        assert_eq!(read_all(&log).await.len(), 401);
    });
}
