//! Retention, DeleteRecords and per-topic log settings on real partition logs.

use std::collections::BTreeMap;

use ringbroker_protocol::batch::{build_simple_batch, validate_batch};

use super::apply_settings;
use crate::config::BrokerConfig;
use crate::storage::tests::{run, small_config};
use crate::storage::{PartitionLog, ReadChunk, StorageError};
use crate::topic_config::TopicSettings;

fn batch(timestamp: i64) -> Vec<u8> {
    let value = vec![b'v'; 1000];
    build_simple_batch(timestamp, &[value.as_slice(), value.as_slice()])
}

fn segment_count(log: &PartitionLog) -> usize {
    std::fs::read_dir(log.dir())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
}

fn settings(pairs: &[(&str, &str)]) -> TopicSettings {
    let configs: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TopicSettings::resolve(&BrokerConfig::default(), &configs)
}

#[test]
fn time_retention_deletes_old_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&path, small_config())
            .await
            .expect("open");
        let old = super::now_ms() - 60_000;
        for _ in 0..20 {
            log.append(&batch(old), -1).await.expect("append");
        }
        assert!(segment_count(&log) > 3);
        apply_settings(&log, &settings(&[("retention.ms", "1000")])).await;
        assert_eq!(segment_count(&log), 1, "only the active segment stays");
        let start = log.log_start_offset();
        assert!(start > 0 && start < log.high_watermark());
        assert!(matches!(
            log.read(0, 1 << 20).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(start, 1 << 20).await.is_ok());
        log.close().await.expect("close");
    });
}

#[test]
fn delete_records_moves_the_start_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&path, small_config())
            .await
            .expect("open");
        for _ in 0..20 {
            log.append(&batch(super::now_ms()), -1)
                .await
                .expect("append");
        }
        let segments_before = segment_count(&log);
        assert_eq!(log.delete_records_before(21).await.expect("delete"), 21);
        assert_eq!(log.log_start_offset(), 21);
        assert!(segment_count(&log) < segments_before);
        // Going backwards changes nothing; past the high watermark is out of range.
        assert_eq!(log.delete_records_before(3).await.expect("noop"), 21);
        assert!(log.delete_records_before(1000).await.is_err());
        // Retention after DeleteRecords never moves the start backwards.
        apply_settings(&log, &settings(&[("retention.bytes", "-1")])).await;
        assert_eq!(log.log_start_offset(), 21);
        log.close().await.expect("close");
        let reopened = PartitionLog::open(&path, small_config())
            .await
            .expect("reopen");
        assert_eq!(reopened.log_start_offset(), 21);
        reopened
            .remove()
            .await
            .expect("remove deletes the start file too");
    });
}

#[test]
fn log_append_time_and_segment_size_apply_to_open_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&path, small_config())
            .await
            .expect("open");
        apply_settings(
            &log,
            &settings(&[
                ("message.timestamp.type", "LogAppendTime"),
                ("segment.bytes", "1048576"),
            ]),
        )
        .await;
        let outcome = log.append(&batch(5), -1).await.expect("append");
        assert!(outcome.log_append_time_ms > 5);
        let read = log.read(0, 1 << 20).await.expect("read");
        let bytes = match &read.chunks[0] {
            ReadChunk::Memory(bytes) => bytes.to_vec(),
            ReadChunk::File {
                path,
                position,
                len,
                ..
            } => {
                let all = std::fs::read(path).expect("read file");
                all[*position as usize..(*position + *len) as usize].to_vec()
            }
        };
        let header = validate_batch(&bytes).expect("CRC valid after stamping");
        assert!(header.timestamp_type_log_append());
        assert_eq!(header.max_timestamp, outcome.log_append_time_ms);
        // 1 MiB segments: 20 more appends of 2 KiB stay in one segment (8 KiB would roll).
        for _ in 0..20 {
            log.append(&batch(5), -1).await.expect("append");
        }
        assert_eq!(segment_count(&log), 1);
        log.close().await.expect("close");
    });
}

#[test]
fn segment_ms_rolls_an_old_active_segment_on_the_next_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&path, small_config())
            .await
            .expect("open");
        apply_settings(
            &log,
            &settings(&[("segment.ms", "50"), ("segment.bytes", "1048576")]),
        )
        .await;
        log.append(&batch(5), -1).await.expect("append");
        log.append(&batch(5), -1).await.expect("append");
        assert_eq!(segment_count(&log), 1);
        glommio::timer::sleep(std::time::Duration::from_millis(80)).await;
        log.append(&batch(5), -1).await.expect("append");
        assert_eq!(segment_count(&log), 2, "the old segment rolled");
        log.close().await.expect("close");
    });
}
