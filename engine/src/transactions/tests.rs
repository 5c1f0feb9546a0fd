//! The transaction state on real logs: `__transaction_state` replay after a restart, and a data
//! partition's transaction index rebuilt from its log.

use super::log_store::TxnLogStore;
use super::markers::control_batch;
use super::metadata::{TxnMetadata, TxnStatus};
use super::partition_state::{create_flag_file, AbortedTxn, PartitionTxns};
use crate::storage::tests::{run, small_config, NO_EPOCH};
use crate::storage::PartitionLog;
use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

fn txn_batch(producer_id: i64, records: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(producer_id, 0, 0);
    builder.set_transactional(true);
    for _ in 0..records {
        builder
            .push(&Record {
                key: None,
                value: Some(b"v"),
                headers: &[],
                timestamp_ms: 1,
            })
            .expect("push");
    }
    builder.finish().expect("finish").to_vec()
}

#[test]
fn the_latest_state_of_each_id_survives_a_restart() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let owned: Vec<i32> = (0..super::TRANSACTION_STATE_PARTITIONS).collect();
        let store = TxnLogStore::open(temp.path(), &owned, &small_config())
            .await
            .expect("open");
        let a = TxnMetadata::new("a", 1, 60_000, 1);
        let ongoing = a
            .add_partitions(&[("t".into(), 0)], 2)
            .expect("add")
            .expect("changed");
        let b = TxnMetadata::new("b", 2, 30_000, 3);
        for state in [&a, &b, &ongoing] {
            store.persist(state, 4).await.expect("persist");
        }
        store.close().await.expect("close");
        drop(store);
        let reopened = TxnLogStore::open(temp.path(), &owned, &small_config())
            .await
            .expect("reopen");
        let loaded = reopened.load_all().await.expect("load");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["a"], ongoing);
        assert_eq!(loaded["a"].status, TxnStatus::Ongoing);
        assert_eq!(loaded["b"], b);
    });
}

#[test]
fn a_partitions_transactions_are_rebuilt_from_its_log() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("t-0");
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("open");
        // Producer 1 aborts (offsets 0-1, marker 3), producer 2 stays open from offset 2.
        log.append(&txn_batch(1, 2), NO_EPOCH)
            .await
            .expect("append");
        log.append(&txn_batch(2, 1), NO_EPOCH)
            .await
            .expect("append");
        let abort = control_batch(1, 0, false, 0).expect("marker");
        log.append(&abort, NO_EPOCH).await.expect("append");
        log.close().await.expect("close");
        drop(log);

        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        let unflagged = PartitionTxns::recover(&log).await.expect("recover");
        assert_eq!(
            unflagged.first_unstable_offset(),
            None,
            "no flag file, no scan"
        );
        create_flag_file(&dir).expect("flag");
        let state = PartitionTxns::recover(&log).await.expect("recover");
        assert_eq!(state.last_stable_offset(log.high_watermark()), 2);
        assert_eq!(
            state.aborted_between(0, 4),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 3
            }]
        );
    });
}

#[test]
fn a_large_state_log_is_compacted_to_its_live_records() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = super::state_partition_for("busy");
        let store = TxnLogStore::open(temp.path(), &[partition], &small_config())
            .await
            .expect("open")
            .with_compaction_min_bytes(4096);
        let mut txn = TxnMetadata::new("busy", 1, 60_000, 1);
        for round in 0..100 {
            txn = txn
                .add_partitions(&[("t".into(), round % 3)], 2)
                .expect("add")
                .unwrap_or(txn);
            store.persist(&txn, 3).await.expect("persist");
            txn = txn
                .prepare_end(true, 4)
                .expect("end")
                .expect("prepared")
                .complete(5);
            store.persist(&txn, 6).await.expect("persist");
        }
        assert!(store.wants_compaction(partition));
        assert!(store
            .compact_if_needed(partition, &[&txn], 7)
            .await
            .expect("compact"));
        assert!(!store.wants_compaction(partition));
        store
            .persist(&txn, 8)
            .await
            .expect("persist after compaction");
        store.close().await.expect("close");
        drop(store);
        let reopened = TxnLogStore::open(temp.path(), &[partition], &small_config())
            .await
            .expect("reopen");
        let loaded = reopened.load_all().await.expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded["busy"], txn);
    });
}

/// A one-record batch setting `key` to `value`, transactional for a producer id, else plain.
fn keyed_batch(producer_id: Option<i64>, key: &str, value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some(producer_id) = producer_id {
        builder.set_producer(producer_id, 0, 0);
        builder.set_transactional(true);
    }
    builder
        .push(&Record {
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp_ms: 1,
        })
        .expect("push");
    builder.finish().expect("finish").to_vec()
}

/// (producer id, key) of every data record from the log start, in offset order.
async fn data_records(log: &PartitionLog) -> Vec<(i64, String)> {
    use crate::storage::compaction::batch_filter::plain_records;
    use ringbroker_protocol::batch::batches;
    let mut out = Vec::new();
    crate::groups::scan_log(log, log.log_start_offset(), "test", |bytes, from| {
        for item in batches(bytes) {
            let (header, raw) = item.map_err(|e| e.to_string())?;
            if header.is_control() || header.last_offset() < from {
                continue;
            }
            let plain = plain_records(raw).map_err(|e| e.to_string())?;
            for record in plain.records().map_err(|e| e.to_string())? {
                let key = String::from_utf8_lossy(record.key.unwrap_or_default()).into_owned();
                out.push((header.producer_id, key));
            }
        }
        Ok(())
    })
    .await
    .expect("scan");
    out
}

/// Kafka Connect's exactly-once workers read their offsets topic (compacted) with read_committed:
/// a value of an aborted transaction must neither survive compaction nor remove the committed
/// value of its key.
#[test]
fn compaction_drops_aborted_values_and_keeps_the_committed_ones() {
    use crate::storage::{CompactionMemo, CompactionPolicy};
    run(|| async {
        let (_temp, dir, log) = crate::storage::tests::open_temp_log().await;
        create_flag_file(&dir).expect("flag");
        let keys: Vec<String> = (0..5).map(|i| format!("source-{i}")).collect();
        for (producer_id, commit) in [(1, true), (2, false)] {
            for key in &keys {
                let value = if commit { "committed" } else { "aborted" };
                log.append(&keyed_batch(Some(producer_id), key, value), NO_EPOCH)
                    .await
                    .expect("append");
            }
            let marker = control_batch(producer_id, 0, commit, 0).expect("marker");
            log.append(&marker, NO_EPOCH).await.expect("append");
        }
        // Plain records on other keys, so the segments above are sealed and cleanable.
        for i in 0..400 {
            let batch = keyed_batch(None, &format!("filler-{}", i % 10), &"x".repeat(40));
            log.append(&batch, NO_EPOCH).await.expect("append");
        }
        log.wait_seals_done().await;
        let table = super::PartitionTxnTable::default();
        table.insert("t", 0, PartitionTxns::recover(&log).await.expect("recover"));
        let txns = crate::retention::compaction::cleaner_txns(&table, "t", 0, &log);
        let policy = CompactionPolicy {
            min_compaction_lag_ms: 0,
            delete_retention_ms: 60_000,
            max_keys: 1 << 16,
        };
        // Markers carry the wall clock time: the pass runs "later" so no segment is too young.
        let later = crate::groups::now_ms() + 60_000;
        log.compact(&policy, &txns, later, &mut CompactionMemo::default())
            .await
            .expect("compact")
            .expect("work to do");
        let left = data_records(&log).await;
        for key in &keys {
            let owners: Vec<i64> = left
                .iter()
                .filter(|(_, k)| k == key)
                .map(|(producer_id, _)| *producer_id)
                .collect();
            assert_eq!(owners, vec![1], "{key}: only the committed value stays");
        }
        // The abort marker stays; with its data gone, a restart rebuilds no aborted transaction.
        log.close().await.expect("close");
        drop(log);
        let log = PartitionLog::open(&dir, small_config())
            .await
            .expect("reopen");
        let state = PartitionTxns::recover(&log).await.expect("recover");
        let high_watermark = log.high_watermark();
        assert_eq!(state.last_stable_offset(high_watermark), high_watermark);
        assert_eq!(state.aborted_between(0, high_watermark), Vec::new());
    });
}
