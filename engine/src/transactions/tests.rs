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
fn a_new_leader_rebuilds_a_followers_transaction_state_from_everything_it_holds() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("t-0");
        let config = crate::storage::LogConfig {
            high_watermark_follows_log_end: false,
            ..small_config()
        };
        let log = PartitionLog::open(&dir, config).await.expect("open");
        // As a follower copies them: producer 1's aborted transaction, producer 2's open one, all
        // above the high watermark (the followers of the new leader have not fetched them yet).
        let table = super::PartitionTxnTable::default();
        table.ensure_flagged("t", 0, &dir).expect("flag");
        log.append(&txn_batch(1, 2), NO_EPOCH)
            .await
            .expect("append");
        log.append(&control_batch(1, 0, false, 0).expect("marker"), NO_EPOCH)
            .await
            .expect("append");
        log.append(&txn_batch(2, 1), NO_EPOCH)
            .await
            .expect("append");
        assert_eq!(log.high_watermark(), 0);
        let below = PartitionTxns::recover(&log).await.expect("recover");
        assert!(
            below.aborted_between(0, 4).is_empty(),
            "nothing below the high watermark"
        );
        let all = PartitionTxns::recover_to(&log, crate::groups::ScanBound::WrittenEnd)
            .await
            .expect("recover");
        assert_eq!(all.first_unstable_offset(), Some(3));
        assert_eq!(
            all.aborted_between(0, 4),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 2
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

/// A replicated `__transaction_state` partition is compacted in place by the retention task on
/// every replica (offsets kept): a new leader's coordinator loads the same transactions from it.
#[test]
fn a_state_log_compacted_in_place_loads_the_same_transactions() {
    use crate::storage::{CleanerTxns, CompactionMemo, CompactionPolicy};
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let ids = ["busy-a", "busy-b", "busy-c"];
        let partitions: Vec<i32> = ids
            .iter()
            .map(|id| super::state_partition_for(id))
            .collect();
        let store = TxnLogStore::open(temp.path(), &partitions, &small_config())
            .await
            .expect("open");
        for round in 0..100 {
            for (n, id) in ids.iter().enumerate() {
                let mut txn = TxnMetadata::new(id, 10 + n as i64, 60_000, 1);
                txn = txn
                    .add_partitions(&[("t".into(), round % 3)], 2)
                    .expect("add")
                    .unwrap_or(txn);
                store.persist(&txn, 3).await.expect("persist");
                if round < 99 || n != 0 {
                    let ended = txn
                        .prepare_end(true, 4)
                        .expect("end")
                        .expect("prepared")
                        .complete(5);
                    store.persist(&ended, 6).await.expect("persist");
                }
            }
        }
        let before = store.load_all().await.expect("load");
        let policy = CompactionPolicy {
            min_compaction_lag_ms: 0,
            delete_retention_ms: 86_400_000,
            max_keys: 1 << 16,
        };
        let mut shrank = 0;
        for partition in partitions {
            let log = store.open_log(partition).expect("open log");
            let (size, end) = (log.size_bytes(), log.log_end_offset());
            log.wait_seals_done().await;
            log.compact(
                &policy,
                &CleanerTxns::none(),
                crate::groups::now_ms(),
                &mut CompactionMemo::default(),
            )
            .await
            .expect("compact");
            assert_eq!(log.log_end_offset(), end, "offsets stay");
            shrank += size.saturating_sub(log.size_bytes());
        }
        assert!(shrank > 0, "nothing compacted");
        let after = store.load_all().await.expect("load after compaction");
        assert_eq!(after, before);
        assert_eq!(after["busy-a"].status, TxnStatus::Ongoing);
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
        // A follower (no transaction table) reads the same view from its log.
        let from_log = crate::retention::txn_scan::cleaner_txns(&log)
            .await
            .expect("the log's transactions");
        assert_eq!(from_log, txns);
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

/// Replication of `__transaction_state`: what a new leader's coordinator does with the
/// partition's log (`TxnCoordinator::load_partition`, `complete_loaded`) and with a write its
/// replica gate refuses.
mod failover {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::rc::Rc;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use kafka_protocol::ResponseError;

    use super::super::config::TxnConfig;
    use super::super::coordinator::TxnCoordinator;
    use super::super::log_store::{state_partition_for, TxnLogStore};
    use super::super::metadata::{TxnMetadata, TxnStatus};
    use super::super::TRANSACTION_STATE_PARTITIONS;
    use crate::cluster::MetadataImage;
    use crate::config::BrokerConfig;
    use crate::groups::{
        GroupConfig, GroupCoordinator, GroupError, LocalBoxFuture, MemoryOffsetStore, ReplicaGate,
    };
    use crate::metadata::{PartitionState, TopicMeta, TopicTable};
    use crate::shard::mesh::MeshMessage;
    use crate::shard::{Mesh, Shard};
    use crate::storage::tests::{run, small_config};
    use crate::storage::{PartitionLog, TruncateOptions};

    /// Another transactional id in `partition` than `not`.
    fn id_in(partition: i32, not: &str) -> String {
        (0..)
            .map(|i| format!("id-{i}"))
            .find(|id| state_partition_for(id) == partition && id != not)
            .expect("an id of the partition")
    }

    pub(super) async fn coordinator_over(dir: &Path) -> TxnCoordinator {
        let owned: Vec<i32> = (0..TRANSACTION_STATE_PARTITIONS).collect();
        let store = TxnLogStore::open(dir, &owned, &small_config())
            .await
            .expect("open store");
        TxnCoordinator::open(TxnConfig::default(), store)
            .await
            .expect("open coordinator")
    }

    /// A one-shard broker (node 0) whose image has topic `t` (one partition, led here) and that
    /// is live, as after joining its cluster.
    pub(super) async fn broker(dir: &Path) -> Rc<Shard> {
        let config = BrokerConfig {
            data_dir: dir.to_path_buf(),
            shard_cpus: vec![None],
            ..BrokerConfig::default()
        };
        let mesh = glommio::channels::channel_mesh::MeshBuilder::<MeshMessage, _>::full(1, 16);
        let (senders, _receivers) = mesh.join().await.expect("mesh");
        let groups = GroupCoordinator::open(
            GroupConfig::default(),
            Rc::new(MemoryOffsetStore::default()),
        )
        .await
        .expect("groups");
        let shard = Rc::new(Shard::new(
            0,
            Rc::new(config),
            Mesh::new(senders),
            Rc::new(groups),
            Arc::new(AtomicBool::new(false)),
        ));
        let topic = TopicMeta {
            id: [7; 16],
            partitions: 1,
            configs: BTreeMap::new(),
            assignments: vec![PartitionState {
                replicas: vec![0],
                isr: vec![0],
                leader: 0,
                leader_epoch: 0,
                partition_epoch: 0,
            }],
        };
        let mut image = MetadataImage::default();
        image.topics = Rc::new(TopicTable {
            topics: [("t".to_string(), topic)].into(),
        });
        shard.set_image(Rc::new(image));
        let log = PartitionLog::open(&dir.join("t-0"), small_config())
            .await
            .expect("open t-0");
        shard.insert_log("t", 0, log);
        shard.live.set(1);
        shard
    }

    #[test]
    fn a_new_leader_loads_its_partition_and_replaces_a_stale_copy() {
        run(|| async {
            let temp = tempfile::tempdir().expect("temp dir");
            let c = coordinator_over(temp.path()).await;
            let partition = state_partition_for("a");
            let lost = id_in(partition, "a");
            let elsewhere = (0..)
                .map(|i| format!("other-{i}"))
                .find(|id| state_partition_for(id) != partition)
                .expect("an id of another partition");
            // This broker led the partition and wrote two states; the second never reached the
            // other replicas.
            let a0 = TxnMetadata::new("a", 1, 60_000, 1)
                .add_partitions(&[("t".into(), 0)], 2)
                .expect("add")
                .expect("changed");
            let stale = TxnMetadata::new(&lost, 2, 60_000, 3);
            let other = TxnMetadata::new(&elsewhere, 3, 60_000, 4);
            for state in [&a0, &stale, &other] {
                c.store().persist(state, 5).await.expect("persist");
            }
            assert_eq!(c.load_partition(partition).await.expect("load"), 2);
            let other_partition = state_partition_for(&elsewhere);
            assert_eq!(c.load_partition(other_partition).await.expect("load"), 1);
            assert_eq!(c.describe("a"), Some(a0.clone()));
            // Another broker led meanwhile: it fenced the producer and aborted (epoch 1). This
            // broker, its follower, was truncated to that leader's log and copied what it wrote.
            let log = c.store().open_log(partition).expect("state log");
            log.truncate_to(
                1,
                TruncateOptions {
                    allow_below_high_watermark: true,
                },
            )
            .await
            .expect("truncate");
            let a1 = a0.fence_and_abort(6).expect("fenced").complete(7);
            c.store().persist(&a1, 8).await.expect("persist");
            // Leading again: the log is the truth, not the copy in memory.
            assert_eq!(c.load_partition(partition).await.expect("reload"), 1);
            assert_eq!(c.describe("a"), Some(a1.clone()));
            assert_eq!(c.describe("a").map(|t| t.producer_epoch), Some(1));
            assert_eq!(c.describe(&lost), None, "a state the cluster lost is gone");
            assert_eq!(
                c.describe(&elsewhere),
                Some(other),
                "other partitions' ids are untouched"
            );
            // Losing the leadership drops the partition's ids.
            assert_eq!(c.unload_partition(partition), 1);
            assert_eq!(c.describe("a"), None);
        });
    }

    #[test]
    fn a_prepared_commit_is_completed_after_load_and_an_ongoing_one_left_to_its_timeout() {
        run(|| async {
            let temp = tempfile::tempdir().expect("temp dir");
            let shard = broker(temp.path()).await;
            let c = coordinator_over(temp.path()).await;
            let partition = state_partition_for("committing");
            let open_id = id_in(partition, "committing");
            let prepared = TxnMetadata::new("committing", 11, 60_000, 1)
                .add_partitions(&[("t".into(), 0)], 2)
                .expect("add")
                .expect("changed")
                .prepare_end(true, 3)
                .expect("end")
                .expect("prepared");
            let ongoing = TxnMetadata::new(&open_id, 12, 60_000, crate::groups::now_ms())
                .add_partitions(&[("t".into(), 0)], crate::groups::now_ms())
                .expect("add")
                .expect("changed");
            for state in [&prepared, &ongoing] {
                c.store().persist(state, 4).await.expect("persist");
            }
            c.load_partition(partition).await.expect("load");
            assert_eq!(c.complete_loaded(&shard, partition).await, 1);
            let done = c.describe("committing").expect("state");
            assert_eq!(done.status, TxnStatus::CompleteCommit);
            assert_eq!(done.producer_epoch, 0, "completing does not bump the epoch");
            assert_eq!(
                c.describe(&open_id).map(|t| t.status),
                Some(TxnStatus::Ongoing)
            );
            // The commit marker is in the data partition, written once.
            let log = shard.log("t", 0).expect("t-0");
            assert_eq!(log.log_end_offset(), 1);
            // The completed state is in the log: a later leader sees the transaction done.
            let reloaded = c.store().load_partition(partition).await.expect("replay");
            assert_eq!(reloaded["committing"].status, TxnStatus::CompleteCommit);
        });
    }

    /// A gate that refuses every write, as one of a broker that lost its leadership.
    struct NotLeading;

    impl ReplicaGate for NotLeading {
        fn writable(&self, partition: i32) -> Result<i32, GroupError> {
            Err(GroupError::NotCommitted {
                topic: "__transaction_state",
                partition,
                reason: "this broker does not lead it".into(),
            })
        }

        fn committed(&self, _: i32, _: i32, _: i64) -> LocalBoxFuture<'_, Result<(), GroupError>> {
            Box::pin(async { Ok(()) })
        }

        fn is_replicated(&self, _: i32) -> bool {
            true
        }

        fn leads(&self, _: i32) -> bool {
            true
        }
    }

    #[test]
    fn a_refused_write_answers_not_coordinator_and_changes_nothing() {
        run(|| async {
            let temp = tempfile::tempdir().expect("temp dir");
            let shard = broker(temp.path()).await;
            let c = coordinator_over(temp.path()).await;
            c.set_gate(Rc::new(NotLeading));
            let answer = c.init_producer_id(&shard, "z", 60_000, None, true).await;
            assert_eq!(answer, Err(ResponseError::NotCoordinator.code()));
            assert_eq!(c.describe("z"), None);
            assert!(
                c.store()
                    .open_log(state_partition_for("z"))
                    .is_none_or(|l| l.log_end_offset() == 0),
                "nothing appended"
            );
        });
    }
}

/// KIP-890 verification on one broker: a transactional batch reaches a partition's log only when
/// its coordinator says the partition is in the producer's transaction, and only until the
/// transaction's marker.
mod verification {
    use std::rc::Rc;

    use kafka_protocol::ResponseError;

    use super::failover::{broker, coordinator_over};
    use super::txn_batch;
    use crate::produce::{append_local, Acks};
    use crate::storage::tests::run;
    use crate::transactions::ProducerIdAndEpoch;

    const ACKS: Acks = Acks {
        acks: 1,
        timeout_ms: 5_000,
    };

    #[test]
    fn a_batch_outside_the_transaction_is_refused_and_a_verified_one_appended() {
        run(|| async {
            let temp = tempfile::tempdir().expect("temp dir");
            let shard = broker(temp.path()).await;
            let c = Rc::new(coordinator_over(temp.path()).await);
            shard.set_transactions(c.clone());
            let producer: ProducerIdAndEpoch = c
                .init_producer_id(&shard, "v", 60_000, None, true)
                .await
                .expect("init");
            let batch = txn_batch(producer.producer_id, 2);
            let invalid_state = ResponseError::InvalidTxnState.code();
            let log = shard.log("t", 0).expect("t-0");

            // Never added: refused, nothing written, no open transaction left on the partition.
            let refused = append_local(&shard, "t", 0, &batch, ACKS, Some("v")).await;
            assert_eq!(refused.error_code, invalid_state);
            assert_eq!(log.log_end_offset(), 0);
            assert!(!shard
                .txn_partitions
                .in_transaction("t", 0, producer.producer_id, 0));

            // Added: the first batch asks the coordinator, the next ones find it known here.
            c.add_partitions("v", producer, &[("t".into(), 0)], true)
                .await
                .expect("add");
            let first = append_local(&shard, "t", 0, &batch, ACKS, Some("v")).await;
            assert_eq!((first.error_code, first.base_offset), (0, 0));
            assert!(shard
                .txn_partitions
                .in_transaction("t", 0, producer.producer_id, 0));
            assert!(
                c.verify_partitions("v", producer, &[("t".into(), 1)]) == Ok(vec![invalid_state])
            );

            // The marker ends what was verified: a late batch of the ended transaction is refused.
            c.end_txn(&shard, "v", producer, false, true)
                .await
                .expect("abort");
            assert!(!shard
                .txn_partitions
                .in_transaction("t", 0, producer.producer_id, 0));
            let end = log.log_end_offset();
            let late = append_local(&shard, "t", 0, &batch, ACKS, Some("v")).await;
            assert_eq!(late.error_code, invalid_state);
            assert_eq!(log.log_end_offset(), end);
        });
    }

    #[test]
    fn the_coordinator_answers_kafkas_verification_errors() {
        run(|| async {
            let temp = tempfile::tempdir().expect("temp dir");
            let c = coordinator_over(temp.path()).await;
            let shard = broker(temp.path()).await;
            let producer = c
                .init_producer_id(&shard, "w", 60_000, None, true)
                .await
                .expect("init");
            let t0 = [("t".to_string(), 0)];
            let unknown = c.verify_partitions("nobody", producer, &t0);
            assert_eq!(unknown, Err(ResponseError::InvalidProducerIdMapping.code()));
            let other_id = ProducerIdAndEpoch {
                producer_id: producer.producer_id + 1,
                ..producer
            };
            assert_eq!(
                c.verify_partitions("w", other_id, &t0),
                Err(ResponseError::InvalidProducerIdMapping.code())
            );
            let other_epoch = ProducerIdAndEpoch {
                producer_epoch: producer.producer_epoch + 1,
                ..producer
            };
            assert_eq!(
                c.verify_partitions("w", other_epoch, &t0),
                Err(ResponseError::ProducerFenced.code())
            );
            c.add_partitions("w", producer, &t0, true)
                .await
                .expect("add");
            assert_eq!(c.verify_partitions("w", producer, &t0), Ok(vec![0]));
        });
    }
}
