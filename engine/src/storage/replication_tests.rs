//! Tests of what replication needs from a partition log: leader epochs stamped and cached (with
//! their checkpoint), follower appends of another log's batches, truncation (across segments,
//! after rolls, then new batches), the high watermark apart from the written end (with its
//! checkpoint), and recovery after a kill -9 at each of these points.

use std::path::Path;

use bytes::Bytes;
use ringbroker_protocol::batch::{batches, build_simple_batch, validate_log_batch};

use super::tests::{
    batch_offsets, read_all, read_bytes, read_bytes_counted, run, segment_files, small_config,
    NO_EPOCH,
};
use super::*;

/// A replicated log's configuration: `small_config` with the high watermark set from outside.
fn replicated_config() -> LogConfig {
    LogConfig {
        high_watermark_follows_log_end: false,
        ..small_config()
    }
}

/// A ~870-byte batch of 2 records (9 fit a `small_config` segment) whose values name `tag` and `n` (so that logs of different
/// leaders hold different bytes at the same offsets).
fn named_batch(tag: &str, n: usize) -> Vec<u8> {
    let value = format!("{tag}-{n:05}-").repeat(50);
    build_simple_batch(1_000 + n as i64, &[value.as_bytes(), value.as_bytes()])
}

/// Appends `count` batches tagged `tag` in `epoch`, numbered from `first`.
async fn append_leader(log: &PartitionLog, tag: &str, first: usize, count: usize, epoch: i32) {
    for n in first..first + count {
        log.append(&named_batch(tag, n), epoch)
            .await
            .expect("leader append");
    }
}

/// Every byte a follower may fetch from `from` to the written end, in reads of `max_bytes`.
async fn read_replica_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.written_end_offset() {
        let bytes = read_bytes(&log.read_for_replica(offset, max_bytes).await.expect("read"));
        let (_, last) = *batch_offsets(&bytes)
            .last()
            .expect("data below the written end");
        out.extend_from_slice(&bytes);
        offset = last + 1;
    }
    out
}

/// What a consumer reads from offset 0 in reads of `max_bytes`, until a read returns nothing.
async fn read_visible(log: &PartitionLog, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let bytes = read_bytes(&log.read(offset, max_bytes).await.expect("read"));
        let Some(&(_, last)) = batch_offsets(&bytes).last() else {
            return out;
        };
        out.extend_from_slice(&bytes);
        offset = last + 1;
    }
}

/// Copies the leader's log from `from` into the follower as a replica fetching `max_bytes` at a
/// time would.
async fn replicate(leader: &PartitionLog, follower: &PartitionLog, max_bytes: usize) {
    while follower.log_end_offset() < leader.written_end_offset() {
        let from = follower.log_end_offset();
        let fetched = read_bytes(
            &leader
                .read_for_replica(from, max_bytes)
                .await
                .expect("leader read"),
        );
        follower
            .append_as_follower(Bytes::from(fetched))
            .await
            .expect("follower append");
    }
}

/// (epoch, start) pairs of the log's leader-epoch cache.
fn epochs_of(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|entry| (entry.epoch, entry.start_offset))
        .collect()
}

/// The leader epoch of each batch in `bytes`, checking each batch's CRC.
fn stamped_epochs(bytes: &[u8]) -> Vec<i32> {
    batches(bytes)
        .map(|item| {
            let (_, batch) = item.expect("batch");
            validate_log_batch(batch)
                .expect("valid CRC")
                .partition_leader_epoch
        })
        .collect()
}

fn epoch_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_FILE_NAME)).expect("leader-epoch-checkpoint")
}

/// A copy of `dir` as a kill -9 would leave it (the log not closed: no clean-shutdown files). A
/// checkpoint's temporary file may be renamed while the copy runs: a file gone is skipped, as it
/// would be missing after a kill at that moment.
fn crash_copy(dir: &Path, to: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        match std::fs::copy(entry.path(), to.join(entry.file_name())) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("copy {}: {error}", entry.path().display()),
        }
    }
    to.to_path_buf()
}

#[test]
fn leader_appends_stamp_the_epoch_and_keep_the_epoch_cache() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(
            log.end_offset_for_epoch(0),
            None,
            "UNDEFINED on an empty log"
        );
        // Epoch -1 ("no epoch", data from before epochs were stamped) records nothing.
        append_leader(&log, "a", 0, 2, NO_EPOCH).await;
        append_leader(&log, "a", 2, 3, 0).await;
        append_leader(&log, "a", 5, 4, 2).await;
        append_leader(&log, "a", 9, 3, 5).await;
        assert_eq!(epochs_of(&log), vec![(0, 4), (2, 10), (5, 18)]);
        assert_eq!(log.latest_epoch(), Some(5));
        // Kafka's OffsetForLeaderEpoch: the latest epoch ends at the log end; an older one where
        // the next began; an epoch that never wrote maps to the one before it.
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 24)));
        assert_eq!(log.end_offset_for_epoch(4), Some((2, 18)));
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 10)));
        assert_eq!(log.end_offset_for_epoch(6), None);
        assert_eq!(log.end_offset_for_epoch(-1), None);
        // Every stored batch carries its epoch, and its CRC still holds (the epoch is outside it).
        let stored = read_all(&log, 0, 1 << 20).await;
        let mut expected_epochs = vec![NO_EPOCH; 2];
        expected_epochs.extend([0; 3].iter().chain(&[2; 4]).chain(&[5; 3]));
        assert_eq!(stamped_epochs(&stored), expected_epochs);
        // Written ahead of the data, in Kafka's format.
        assert_eq!(epoch_file(&dir), "0\n3\n0 4\n2 10\n5 18\n");
        // A leader behind a leader change is refused, and the log does not move.
        let stale = log.append(&named_batch("a", 99), 4).await;
        assert!(
            matches!(
                stale,
                Err(StorageError::StaleLeaderEpoch {
                    epoch: 4,
                    latest_epoch: 5
                })
            ),
            "{stale:?}"
        );
        assert_eq!(log.log_end_offset(), 24);
        append_leader(&log, "a", 12, 1, 5).await;
        assert_eq!(log.high_watermark(), 26);
        // Kill -9 now, and a clean restart: the same epochs.
        let crashed = crash_copy(&dir, &temp.path().join("crashed"));
        log.close().await.expect("close");
        for reopened_dir in [&dir, &crashed] {
            let reopened = PartitionLog::open(reopened_dir, small_config())
                .await
                .expect("reopen");
            assert_eq!(epochs_of(&reopened), vec![(0, 4), (2, 10), (5, 18)]);
            assert_eq!(reopened.end_offset_for_epoch(5), Some((5, 26)));
            reopened.close().await.expect("close");
        }
    });
}

#[test]
fn the_epoch_checkpoint_is_rebuilt_when_missing_or_damaged_and_cut_to_the_log() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        // Several segments, epochs in the sealed ones and the active one.
        append_leader(&log, "a", 0, 10, 1).await;
        append_leader(&log, "a", 10, 10, 3).await;
        append_leader(&log, "a", 20, 5, 4).await;
        assert!(segment_files(&dir, "log").len() >= 3);
        let entries = vec![(1, 0), (3, 20), (4, 40)];
        assert_eq!(epochs_of(&log), entries);
        drop(log);
        for damage in ["", "0\n3\n1 0\n3 20\n", "7\n1\n1 0\n", "0\n2\n3 20\n1 0\n"] {
            std::fs::write(dir.join(LEADER_EPOCH_FILE_NAME), damage).expect("damage");
            let reopened = PartitionLog::open(&dir, small_config())
                .await
                .expect("reopen");
            assert_eq!(epochs_of(&reopened), entries, "after {damage:?}");
            assert_eq!(epoch_file(&dir), "0\n3\n1 0\n3 20\n4 40\n", "rewritten");
        }
        std::fs::remove_file(dir.join(LEADER_EPOCH_FILE_NAME)).expect("rm");
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(
            epochs_of(&reopened),
            entries,
            "rebuilt from the batch headers"
        );
        drop(reopened);
        // The file leads the data: after a crash it may name an epoch whose batches never made
        // it to disk. Recovery drops what starts at or past the recovered log end.
        std::fs::write(
            dir.join(LEADER_EPOCH_FILE_NAME),
            "0\n4\n1 0\n3 20\n4 40\n6 50\n",
        )
        .expect("write");
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(epochs_of(&reopened), entries);
        assert_eq!(epoch_file(&dir), "0\n3\n1 0\n3 20\n4 40\n");
        // Retention and DeleteRecords move the epochs' start with the log start (Kafka's
        // truncateFromStart).
        assert_eq!(
            reopened.delete_records_before(25).await.expect("delete"),
            25
        );
        assert_eq!(epochs_of(&reopened), vec![(3, 25), (4, 40)]);
        reopened.close().await.expect("close");
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(epochs_of(&reopened), vec![(3, 25), (4, 40)]);
    });
}

#[test]
fn a_follower_stores_another_logs_batches_byte_for_byte() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let leader = PartitionLog::open(&temp.path().join("leader"), small_config())
            .await
            .expect("open leader");
        append_leader(&leader, "a", 0, 12, 0).await;
        append_leader(&leader, "a", 12, 15, 3).await;
        let follower_dir = temp.path().join("follower");
        let follower = PartitionLog::open(&follower_dir, replicated_config())
            .await
            .expect("open follower");
        // Fetch sizes that split the log differently from the leader's segments.
        replicate(&leader, &follower, 3_000).await;
        let leader_bytes = read_replica_all(&leader, 0, 1 << 20).await;
        assert_eq!(read_replica_all(&follower, 0, 1 << 20).await, leader_bytes);
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(epochs_of(&follower), epochs_of(&leader));
        assert_eq!(epochs_of(&follower), vec![(0, 0), (3, 24)]);
        assert!(segment_files(&follower_dir, "log").len() > 2, "it rolled");
        // Consumers of the follower see nothing until the leader says what is replicated.
        assert_eq!(follower.high_watermark(), 0);
        assert_eq!(follower.set_high_watermark(30), 30);
        assert_eq!(read_all(&follower, 0, 1 << 20).await, {
            let mut below = Vec::new();
            for item in batches(&leader_bytes) {
                let (header, batch) = item.expect("batch");
                if header.base_offset < 30 {
                    below.extend_from_slice(batch);
                }
            }
            below
        });

        // Refused whole, the log unchanged: offsets going back, an overlap, a bad CRC, an epoch
        // going back.
        let end = follower.log_end_offset();
        let mut more = Vec::new();
        let extra = PartitionLog::open(&temp.path().join("extra"), small_config())
            .await
            .expect("open");
        append_leader(&extra, "b", 0, end as usize / 2 + 3, 3).await;
        for item in batches(&read_replica_all(&extra, 0, 1 << 20).await) {
            let (header, batch) = item.expect("batch");
            if header.base_offset >= end {
                more.push(batch.to_vec());
            }
        }
        let mut backwards = more[1].clone();
        backwards.extend_from_slice(&more[0]);
        let backwards = follower.append_as_follower(Bytes::from(backwards)).await;
        assert!(
            matches!(backwards, Err(StorageError::UnexpectedAppendOffset { expected, found }) if expected == end + 4 && found == end),
            "{backwards:?}"
        );
        let overlap = follower
            .append_as_follower(Bytes::from(leader_bytes.clone()))
            .await;
        assert!(
            matches!(
                overlap,
                Err(StorageError::UnexpectedAppendOffset { found: 0, .. })
            ),
            "{overlap:?}"
        );
        let mut corrupt = more[0].clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        assert!(matches!(
            follower.append_as_follower(Bytes::from(corrupt)).await,
            Err(StorageError::InvalidBatch(_))
        ));
        let mut stale = more[0].clone();
        ringbroker_protocol::batch::set_partition_leader_epoch(&mut stale, 2);
        assert!(matches!(
            follower.append_as_follower(Bytes::from(stale)).await,
            Err(StorageError::StaleLeaderEpoch {
                epoch: 2,
                latest_epoch: 3
            })
        ));
        assert_eq!(follower.log_end_offset(), end);
        // Two good batches in one append, the second starting a new epoch.
        let mut two = more[0].clone();
        let mut next = more[1].clone();
        ringbroker_protocol::batch::set_partition_leader_epoch(&mut next, 7);
        two.extend_from_slice(&next);
        let outcome = follower
            .append_as_follower(Bytes::from(two.clone()))
            .await
            .expect("append");
        assert_eq!((outcome.base_offset, outcome.last_offset), (end, end + 3));
        assert_eq!(epochs_of(&follower).last(), Some(&(7, end + 2)));
        let expected: Vec<u8> = leader_bytes.iter().chain(&two).copied().collect();
        // A kill -9 and a clean restart keep the same bytes, offsets and epochs.
        let crashed = crash_copy(&follower_dir, &temp.path().join("crashed"));
        follower.close().await.expect("close");
        for dir in [&follower_dir, &crashed] {
            let reopened = PartitionLog::open(dir, replicated_config())
                .await
                .expect("reopen");
            assert_eq!(read_replica_all(&reopened, 0, 1 << 20).await, expected);
            assert_eq!(epochs_of(&reopened).last(), Some(&(7, end + 2)));
            reopened.close().await.expect("close");
        }
    });
}

/// The batches of a leader whose compaction removed whole batches: 40 batches of 2 records (epoch
/// 0, then 3 from offset 40), without every third one, nor batches 9 to 16 (a gap longer than a
/// segment), nor batch 20 (the first of epoch 3). Returns the kept batches, one `Vec` each.
async fn compacted_leader_batches(dir: &Path) -> Vec<Vec<u8>> {
    let leader = PartitionLog::open(dir, small_config()).await.expect("open");
    append_leader(&leader, "c", 0, 20, 0).await;
    append_leader(&leader, "c", 20, 20, 3).await;
    let all = read_replica_all(&leader, 0, 1 << 20).await;
    leader.close().await.expect("close");
    batches(&all)
        .map(|item| item.expect("batch").1.to_vec())
        .enumerate()
        .filter(|(n, _)| n % 3 != 1 && !(9..=16).contains(n) && *n != 20)
        .map(|(_, batch)| batch)
        .collect()
}

#[test]
fn a_follower_takes_the_gaps_of_a_compacted_leader_and_keeps_them_across_restarts() {
    for tail_cache_bytes in [0, 64 << 10] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let kept = compacted_leader_batches(&temp.path().join("leader")).await;
            let config = LogConfig {
                tail_cache_bytes,
                ..replicated_config()
            };
            let dir = temp.path().join("follower");
            let follower = PartitionLog::open(&dir, config.clone())
                .await
                .expect("open");
            // Fetches of three batches: gaps inside appends and between them.
            for fetched in kept.chunks(3) {
                let outcome = follower
                    .append_as_follower(Bytes::from(fetched.concat()))
                    .await
                    .expect("a gap is accepted");
                let (first, _) = batch_offsets(&fetched[0])[0];
                assert_eq!(outcome.base_offset, first);
            }
            let expected = kept.concat();
            let (_, last) = *batch_offsets(&expected).last().expect("batches");
            assert_eq!(follower.log_end_offset(), last + 1);
            assert_eq!(epochs_of(&follower), vec![(0, 0), (3, 42)]);
            assert!(segment_files(&dir, "log").len() > 2, "it rolled");
            follower.set_high_watermark(last + 1);
            check_gapped_log(&follower, &expected, true).await;
            // A kill -9 (recovery scans the active segment across its gaps) and a clean restart.
            let crashed = crash_copy(&dir, &temp.path().join("crashed"));
            follower.close().await.expect("close");
            for dir in [&dir, &crashed] {
                let reopened = PartitionLog::open(dir, config.clone())
                    .await
                    .expect("reopen");
                assert_eq!(reopened.log_end_offset(), last + 1);
                assert_eq!(epochs_of(&reopened), vec![(0, 0), (3, 42)]);
                reopened.set_high_watermark(last + 1);
                check_gapped_log(&reopened, &expected, false).await;
                // A truncation inside a gap (batch 37, offsets 74 and 75, went) ends the log
                // there; the batches after it leave the gap again.
                let allow = TruncateOptions {
                    allow_below_high_watermark: true,
                };
                reopened
                    .truncate_to(75, allow)
                    .await
                    .expect("truncate in a gap");
                assert_eq!(reopened.log_end_offset(), 75);
                assert_eq!(epochs_of(&reopened), vec![(0, 0), (3, 42)]);
                let (tail, _) = batch_offsets(&kept[kept.len() - 2])[0];
                assert_eq!(tail, 76);
                reopened
                    .append_as_follower(Bytes::from(kept[kept.len() - 2..].concat()))
                    .await
                    .expect("append after the gap");
                reopened.set_high_watermark(last + 1);
                check_gapped_log(&reopened, &expected, false).await;
                reopened.close().await.expect("close");
            }
        });
    }
}

/// Reads of a follower log holding `expected` (batches with gaps): every byte from 0, in reads of
/// several sizes, a read at an offset inside a gap starts at the next batch, and timestamps find
/// their batches. `counted`: the reads' record counts are exact (not after a reopen, see
/// `Segment::offsets_dense`).
async fn check_gapped_log(log: &PartitionLog, expected: &[u8], counted: bool) {
    for max_bytes in [1 << 20, 3_000, 1] {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < log.high_watermark() {
            let read = log.read(offset, max_bytes).await.expect("read");
            let bytes = read_bytes_counted(&read, counted);
            let (_, last) = *batch_offsets(&bytes).last().expect("a batch");
            out.extend_from_slice(&bytes);
            offset = last + 1;
        }
        assert_eq!(out, expected, "reads of {max_bytes} bytes");
    }
    let offsets = batch_offsets(expected);
    for pair in offsets.windows(2) {
        let ((_, last), (next_base, _)) = (pair[0], pair[1]);
        if next_base > last + 1 {
            let read = log.read(last + 1, 1).await.expect("read in a gap");
            let read = read_bytes_counted(&read, counted);
            assert_eq!(batch_offsets(&read)[0].0, next_base, "read at {}", last + 1);
        }
    }
    // named_batch(n) is stamped 1000 + n and starts at offset 2n.
    let (base, _) = offsets[offsets.len() / 2];
    let found = log
        .offset_for_timestamp(1_000 + base / 2)
        .await
        .expect("lookup");
    assert_eq!(found.map(|(offset, _)| offset), Some(base));
}

/// The stored batches of `bytes` whose base offset is below `end`.
fn below(bytes: &[u8], end: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for item in batches(bytes) {
        let (header, batch) = item.expect("batch");
        if header.base_offset < end {
            out.extend_from_slice(batch);
        }
    }
    out
}

/// The batches of a leader `tag` that continue a log at `from`: a log of `tag` batches from 0,
/// read back from `from` on (its offsets and epoch are the leader's).
async fn diverging_leader(
    dir: &Path,
    prefix: &[u8],
    tag: &str,
    count: usize,
    epoch: i32,
) -> PartitionLog {
    let log = PartitionLog::open(dir, small_config()).await.expect("open");
    if !prefix.is_empty() {
        log.append_as_follower(Bytes::copy_from_slice(prefix))
            .await
            .expect("prefix");
    }
    append_leader(&log, tag, 0, count, epoch).await;
    log
}

#[test]
fn truncation_across_segments_then_new_batches_read_back_never_the_old() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let old_leader = PartitionLog::open(&temp.path().join("old"), small_config())
            .await
            .expect("open");
        append_leader(&old_leader, "old", 0, 10, 1).await;
        append_leader(&old_leader, "old", 10, 30, 2).await;
        let old_bytes = read_replica_all(&old_leader, 0, 1 << 20).await;
        let dir = temp.path().join("follower");
        let follower = PartitionLog::open(&dir, replicated_config())
            .await
            .expect("open");
        replicate(&old_leader, &follower, 1 << 20).await;
        follower.set_high_watermark(12);
        let segments_before = segment_files(&dir, "log");
        assert!(segments_before.len() >= 4, "{segments_before:?}");
        follower.wait_seals_done().await;

        // Not at a batch start, below the high watermark, below the log start: refused, nothing
        // changes. Past the end: nothing to do.
        assert!(matches!(
            follower.truncate_to(21, TruncateOptions::default()).await,
            Err(StorageError::NotBatchBoundary {
                offset: 21,
                batch_base_offset: 20
            })
        ));
        assert!(matches!(
            follower.truncate_to(10, TruncateOptions::default()).await,
            Err(StorageError::BelowHighWatermark {
                offset: 10,
                high_watermark: 12
            })
        ));
        assert_eq!(
            follower
                .truncate_to(500, TruncateOptions::default())
                .await
                .expect("no-op"),
            80
        );
        assert_eq!(follower.log_end_offset(), 80);

        // Into the second segment: every later segment goes, the cut one becomes active again.
        assert_eq!(
            follower
                .truncate_to(20, TruncateOptions::default())
                .await
                .expect("truncate"),
            20
        );
        assert_eq!(follower.log_end_offset(), 20);
        assert_eq!(follower.written_end_offset(), 20);
        assert_eq!(follower.high_watermark(), 12);
        assert_eq!(epochs_of(&follower), vec![(1, 0)]);
        let segments_after = segment_files(&dir, "log");
        assert!(segments_after.len() < segments_before.len());
        assert!(segment_files(&dir, "index").len() < segments_after.len());
        assert_eq!(
            read_replica_all(&follower, 0, 1 << 20).await,
            below(&old_bytes, 20)
        );
        assert!(matches!(
            follower.read(21, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));

        // The new leader's log shares the first 20 offsets and goes on with other batches.
        let new_leader = diverging_leader(
            &temp.path().join("new"),
            &below(&old_bytes, 20),
            "new",
            40,
            4,
        )
        .await;
        replicate(&new_leader, &follower, 5_000).await;
        let new_bytes = read_replica_all(&new_leader, 0, 1 << 20).await;
        assert_ne!(new_bytes, old_bytes);
        assert_eq!(read_replica_all(&follower, 0, 1 << 20).await, new_bytes);
        // Byte for byte the same from memory (tail cache) and from files, at every read size.
        for max_bytes in [1, 2_000, 1 << 20] {
            assert_eq!(read_replica_all(&follower, 0, max_bytes).await, new_bytes);
        }
        assert_eq!(epochs_of(&follower), vec![(1, 0), (4, 20)]);
        follower.set_high_watermark(follower.log_end_offset());
        assert_eq!(read_all(&follower, 0, 1 << 20).await, new_bytes);

        // A kill -9 right now, and a clean restart: the new bytes, never the old ones.
        let crashed = crash_copy(&dir, &temp.path().join("crashed"));
        follower.close().await.expect("close");
        for reopened_dir in [&dir, &crashed] {
            let reopened = PartitionLog::open(reopened_dir, replicated_config())
                .await
                .expect("reopen");
            assert_eq!(read_replica_all(&reopened, 0, 1 << 20).await, new_bytes);
            assert_eq!(epochs_of(&reopened), vec![(1, 0), (4, 20)]);
            reopened.close().await.expect("close");
        }
    });
}

#[test]
fn a_crash_right_after_a_truncation_brings_nothing_back() {
    // Cuts at a segment boundary, inside a sealed segment, inside the active segment after a
    // roll, and at the start of the active segment.
    for cut in [0usize, 1, 2, 3] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let dir = temp.path().join("t-0");
            let log = PartitionLog::open(&dir, replicated_config())
                .await
                .expect("open");
            append_leader(&log, "a", 0, 25, 1).await;
            log.wait_seals_done().await;
            let stored = read_replica_all(&log, 0, 1 << 20).await;
            let bases: Vec<i64> = segment_files(&dir, "log")
                .iter()
                .map(|path| {
                    let name = path.file_stem().expect("stem").to_string_lossy();
                    name.parse::<i64>().expect("base offset")
                })
                .collect();
            let active_base = *bases.last().expect("segments");
            let offset = match cut {
                0 => bases[1],
                1 => bases[1] + 4,
                2 => active_base + 2,
                _ => active_base,
            };
            assert!(offset < log.log_end_offset());
            log.truncate_to(offset, TruncateOptions::default())
                .await
                .expect("truncate");
            let kept = below(&stored, offset);
            // Kill -9 right after the truncation returned: the files as they are.
            let crashed = crash_copy(&dir, &temp.path().join("crashed"));
            drop(log);
            for reopened_dir in [&dir, &crashed] {
                let reopened = PartitionLog::open(reopened_dir, replicated_config())
                    .await
                    .expect("reopen");
                assert_eq!(reopened.log_end_offset(), offset, "cut {cut}");
                assert_eq!(read_replica_all(&reopened, 0, 1 << 20).await, kept);
                // The same size of batch again: it ends where the old next batch began, which
                // a scan would have taken for a valid continuation had it not been zeroed.
                append_leader(&reopened, "z", 0, 1, 1).await;
                drop(reopened);
                let again = PartitionLog::open(reopened_dir, replicated_config())
                    .await
                    .expect("reopen again");
                assert_eq!(again.log_end_offset(), offset + 2, "cut {cut}");
            }
        });
    }
}

#[test]
fn truncation_below_the_high_watermark_only_when_allowed() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        // A single-replica log: the high watermark is the log end, so any truncation is below it.
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        append_leader(&log, "a", 0, 20, 0).await;
        let stored = read_all(&log, 0, 1 << 20).await;
        assert!(matches!(
            log.truncate_to(30, TruncateOptions::default()).await,
            Err(StorageError::BelowHighWatermark { .. })
        ));
        let unclean = TruncateOptions {
            allow_below_high_watermark: true,
        };
        assert_eq!(log.truncate_to(30, unclean).await.expect("truncate"), 30);
        assert_eq!(log.high_watermark(), 30);
        assert_eq!(read_all(&log, 0, 1 << 20).await, below(&stored, 30));
        // Appends go on at the cut, with the high watermark following them again.
        let outcome = log.append(&named_batch("b", 0), 1).await.expect("append");
        assert_eq!(outcome.base_offset, 30);
        assert_eq!(log.high_watermark(), 32);
        assert_eq!(epochs_of(&log), vec![(0, 0), (1, 30)]);
        log.close().await.expect("close");
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(reopened.high_watermark(), 32);
        assert_eq!(epochs_of(&reopened), vec![(0, 0), (1, 30)]);
        // Truncating everything leaves an empty log that starts over at its start.
        assert_eq!(reopened.truncate_to(0, unclean).await.expect("truncate"), 0);
        assert_eq!(epochs_of(&reopened), vec![]);
        assert_eq!(reopened.latest_epoch(), None);
        append_leader(&reopened, "c", 0, 3, 2).await;
        assert_eq!(reopened.log_end_offset(), 6);
        drop(reopened);
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(reopened.log_end_offset(), 6);
        assert_eq!(epochs_of(&reopened), vec![(2, 0)]);
    });
}

#[test]
fn consumers_read_below_the_high_watermark_that_replication_sets() {
    for tail_cache_bytes in [0usize, 1 << 20] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let dir = temp.path().join("t-0");
            let config = LogConfig {
                tail_cache_bytes,
                ..replicated_config()
            };
            let log = PartitionLog::open(&dir, config.clone())
                .await
                .expect("open");
            append_leader(&log, "a", 0, 10, 0).await;
            let stored = read_replica_all(&log, 0, 1 << 20).await;
            assert_eq!((log.high_watermark(), log.written_end_offset()), (0, 20));
            // Within the log but at or past the high watermark: empty, not out of range.
            assert!(log.read(0, 1 << 20).await.expect("read").chunks.is_empty());
            assert!(log.read(20, 1).await.expect("read").chunks.is_empty());
            assert!(matches!(
                log.read(21, 1).await,
                Err(StorageError::OffsetOutOfRange { end_offset: 20, .. })
            ));
            assert_eq!(log.offset_for_timestamp(0).await.expect("lookup"), None);
            // Long polls wake when the high watermark moves, not when data is written.
            let woke = std::rc::Rc::new(std::cell::Cell::new(false));
            let waiter = {
                let log = log.clone();
                let woke = woke.clone();
                glommio::spawn_local(async move {
                    log.wait_for_data(4).await;
                    woke.set(true);
                })
            };
            assert_eq!(log.set_high_watermark(4), 4);
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            assert!(!woke.get(), "offset 4 is not readable yet");
            assert_eq!(log.set_high_watermark(9), 9);
            waiter.await;
            assert!(woke.get());
            // Every read stops below it (9 is inside the batch 8..=9: that batch stays hidden).
            for max_bytes in [1, 1_500, 1 << 20] {
                assert!(read_visible(&log, max_bytes).await == below(&stored, 8));
            }
            let result = log.read(8, 1 << 20).await.expect("read");
            assert!(result.chunks.is_empty());
            assert_eq!(result.high_watermark, 9);
            assert_eq!(
                log.offset_for_timestamp(0).await.expect("lookup"),
                Some((0, 1_000))
            );
            assert_eq!(log.set_high_watermark(3), 9, "never backwards");
            assert_eq!(log.set_high_watermark(12), 12);
            // The checkpoint follows within the interval; a kill -9 then reopens at it, not
            // at the recovered log end (records 12..20 were never replicated).
            glommio::timer::sleep(std::time::Duration::from_millis(
                3 * HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS,
            ))
            .await;
            let crashed = crash_copy(&dir, &temp.path().join("crashed"));
            let reopened = PartitionLog::open(&crashed, config.clone())
                .await
                .expect("reopen");
            assert_eq!(reopened.high_watermark(), 12);
            assert_eq!(reopened.log_end_offset(), 20);
            assert_eq!(read_all(&reopened, 0, 1 << 20).await, below(&stored, 12));
            log.set_high_watermark(20);
            log.close().await.expect("close");
            let reopened = PartitionLog::open(&dir, config).await.expect("reopen");
            assert_eq!(reopened.high_watermark(), 20, "written at close");
            // Switching to a single replica: the high watermark follows the log end again.
            append_leader(&reopened, "a", 10, 1, 0).await;
            assert_eq!(reopened.high_watermark(), 20);
            reopened.set_high_watermark_follows_log_end(true);
            assert_eq!(reopened.high_watermark(), 22);
        });
    }
}

#[test]
fn a_high_watermark_above_the_log_end_is_a_bug() {
    let result = std::thread::spawn(|| {
        run(|| async {
            let temp = tempfile::tempdir().expect("tempdir");
            let log = PartitionLog::open(temp.path(), replicated_config())
                .await
                .expect("open");
            append_leader(&log, "a", 0, 1, 0).await;
            log.set_high_watermark(3);
        })
    })
    .join();
    assert!(
        result.is_err(),
        "set_high_watermark past the log end panics"
    );
}

#[test]
fn a_single_replica_log_keeps_the_high_watermark_at_its_written_end() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("t-0");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        append_leader(&log, "a", 0, 5, 0).await;
        assert_eq!(log.high_watermark(), 10);
        assert_eq!(log.set_high_watermark(2), 10, "ignored");
        drop(log);
        // Even with a stale checkpoint lying around, a crash reopens at the recovered end.
        std::fs::write(dir.join(HIGH_WATERMARK_FILE_NAME), "0\n1\n2\n").expect("write");
        let reopened = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        assert_eq!(reopened.high_watermark(), 10);
        // Opened as a replicated log, the checkpoint wins.
        drop(reopened);
        let replicated = PartitionLog::open(&dir, replicated_config())
            .await
            .expect("reopen");
        assert_eq!(replicated.high_watermark(), 2);
    });
}

/// A leader (epochs 1 then 3, several segments) whose log start DeleteRecords moved to
/// `LEADER_START`, and a follower that copied only its first 12 batches (24 offsets, two
/// segments): the follower's whole log lies below the leader's start.
const LEADER_START: i64 = 30;

async fn leader_past_a_follower(temp: &Path) -> (PartitionLog, PartitionLog, std::path::PathBuf) {
    let leader = PartitionLog::open(&temp.join("leader"), small_config())
        .await
        .expect("open leader");
    append_leader(&leader, "a", 0, 12, 1).await;
    let follower_dir = temp.join("follower");
    let follower = PartitionLog::open(&follower_dir, replicated_config())
        .await
        .expect("open follower");
    replicate(&leader, &follower, 3_000).await;
    follower.set_high_watermark(follower.log_end_offset());
    append_leader(&leader, "a", 12, 2, 1).await;
    append_leader(&leader, "b", 14, 12, 3).await;
    leader.wait_seals_done().await;
    assert_eq!(
        leader
            .delete_records_before(LEADER_START)
            .await
            .expect("delete records"),
        LEADER_START
    );
    assert!(
        segment_files(&follower_dir, "log").len() > 1,
        "the follower rolled"
    );
    assert!(follower.log_end_offset() < LEADER_START);
    (leader, follower, follower_dir)
}

/// What a follower restarted at `start` must look like before it fetched anything.
fn assert_restarted_at(log: &PartitionLog, dir: &Path, start: i64) {
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), start);
    assert_eq!(log.written_end_offset(), start);
    assert_eq!(log.high_watermark(), start);
    assert_eq!(epochs_of(log), Vec::<(i32, i64)>::new());
    let bases: Vec<String> = segment_files(dir, "log")
        .iter()
        .map(|path| {
            path.file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        bases
            .iter()
            .all(|base| base.parse::<i64>().expect("base") == start),
        "only a segment at the new start may be left: {bases:?}"
    );
}

#[test]
fn a_follower_below_its_leaders_start_restarts_there_and_copies_the_rest() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (leader, follower, dir) = leader_past_a_follower(temp.path()).await;
        let end = follower.log_end_offset();
        for refused in [end, end - 2, 0] {
            assert!(
                matches!(
                    follower.truncate_fully_and_start_at(refused).await,
                    Err(StorageError::OffsetOutOfRange { .. })
                ),
                "an offset the log reaches ({refused}) is not a restart"
            );
        }
        follower
            .truncate_fully_and_start_at(LEADER_START)
            .await
            .expect("restart at the leader's start");
        assert_restarted_at(&follower, &dir, LEADER_START);
        // Empty, it may restart lower too (a leader's start inside a batch: at the batch's base).
        follower
            .truncate_fully_and_start_at(LEADER_START - 2)
            .await
            .expect("an empty log restarts lower");
        assert_restarted_at(&follower, &dir, LEADER_START - 2);
        follower
            .truncate_fully_and_start_at(LEADER_START)
            .await
            .expect("and higher again");
        assert_restarted_at(&follower, &dir, LEADER_START);
        assert_eq!(
            epoch_file(&dir),
            "0\n0\n",
            "the epoch checkpoint is emptied"
        );
        assert!(read_replica_all(&follower, LEADER_START, 1 << 20)
            .await
            .is_empty());
        assert!(matches!(
            follower.read(0, 1 << 20).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // A kill -9 now (before any append: the new segment's file does not exist yet).
        let crashed = crash_copy(&dir, &temp.path().join("crashed-empty"));
        replicate(&leader, &follower, 3_000).await;
        let leader_bytes = read_replica_all(&leader, LEADER_START, 1 << 20).await;
        assert_eq!(
            read_replica_all(&follower, LEADER_START, 1 << 20).await,
            leader_bytes
        );
        assert_eq!(epochs_of(&follower), epochs_of(&leader));
        // Epoch 3 began at offset 28, before the leader's start: its entry starts there now.
        assert_eq!(epochs_of(&follower), vec![(3, LEADER_START)]);
        follower.close().await.expect("close");
        let reopened = PartitionLog::open(&dir, replicated_config())
            .await
            .expect("reopen");
        assert_eq!(reopened.log_start_offset(), LEADER_START);
        assert_eq!(
            read_replica_all(&reopened, LEADER_START, 1 << 20).await,
            leader_bytes
        );
        assert_eq!(epochs_of(&reopened), epochs_of(&leader));
        let restarted = PartitionLog::open(&crashed, replicated_config())
            .await
            .expect("reopen the crash copy");
        assert_restarted_at(&restarted, &crashed, LEADER_START);
    });
}

#[test]
fn a_kill_during_a_full_truncation_leaves_the_old_or_the_new_log() {
    use super::full_truncation::test_hook::{stop_at, Step};
    for step in [
        None,
        Some(Step::IntentWritten),
        Some(Step::FirstSegmentRemoved),
    ] {
        run(move || async move {
            let temp = tempfile::tempdir().expect("tempdir");
            let (leader, follower, dir) = leader_past_a_follower(temp.path()).await;
            let old_end = follower.log_end_offset();
            let old_bytes = read_replica_all(&follower, 0, 1 << 20).await;
            let crashed = match step {
                // Killed before the truncation began: the old log, whole.
                None => {
                    let crashed = crash_copy(&dir, &temp.path().join("crashed"));
                    let reopened = PartitionLog::open(&crashed, replicated_config())
                        .await
                        .expect("reopen");
                    assert_eq!(reopened.log_end_offset(), old_end);
                    assert_eq!(read_replica_all(&reopened, 0, 1 << 20).await, old_bytes);
                    return;
                }
                Some(step) => {
                    stop_at(step);
                    follower
                        .truncate_fully_and_start_at(LEADER_START)
                        .await
                        .expect_err("stopped");
                    crash_copy(&dir, &temp.path().join("crashed"))
                }
            };
            drop(follower);
            // Killed after the intent: the open finishes the job, whatever was removed.
            let reopened = PartitionLog::open(&crashed, replicated_config())
                .await
                .expect("reopen");
            assert_restarted_at(&reopened, &crashed, LEADER_START);
            replicate(&leader, &reopened, 3_000).await;
            let leader_bytes = read_replica_all(&leader, LEADER_START, 1 << 20).await;
            assert_eq!(
                read_replica_all(&reopened, LEADER_START, 1 << 20).await,
                leader_bytes
            );
            assert_eq!(epochs_of(&reopened), epochs_of(&leader), "{step:?}");
            drop(reopened);
            let again = PartitionLog::open(&crashed, replicated_config())
                .await
                .expect("reopen after a kill");
            assert_eq!(again.log_start_offset(), LEADER_START);
            assert_eq!(
                read_replica_all(&again, LEADER_START, 1 << 20).await,
                leader_bytes
            );
        });
    }
}
