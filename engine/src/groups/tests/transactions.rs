//! Offsets of transactions (TxnOffsetCommit) held by the group coordinator, as Kafka's: pending
//! until their producer's marker, committed or dropped by it, and rebuilt from the
//! `__consumer_offsets` log (transactional batches, then their markers) after a restart or by a
//! new leader, compaction included.

use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};

use super::*;

/// TxnOffsetCommit v3 of `producer` (id, epoch) for `group`, outside the group (generation -1).
fn txn_commit_req(
    group: &str,
    producer: (i64, i16),
    offsets: &[(i32, i64)],
) -> TxnOffsetCommitRequest {
    let mut topic = TxnOffsetCommitRequestTopic::default();
    topic.name = s("t").into();
    topic.partitions = offsets
        .iter()
        .map(|(partition, offset)| {
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = *partition;
            p.committed_offset = *offset;
            p.committed_leader_epoch = -1;
            p
        })
        .collect();
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = s("app").into();
    req.group_id = s(group).into();
    req.producer_id = ProducerId(producer.0);
    req.producer_epoch = producer.1;
    req.generation_id = -1;
    req.topics = vec![topic];
    req
}

async fn txn_commit(
    c: &GroupCoordinator,
    group: &str,
    producer: (i64, i16),
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let response = c
        .txn_offset_commit(txn_commit_req(group, producer, offsets), 3)
        .await;
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

async fn marker(c: &GroupCoordinator, group: &str, producer: (i64, i16), commit: bool) {
    c.write_txn_marker(TxnMarkerRecord {
        partition: offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS),
        producer_id: producer.0,
        producer_epoch: producer.1,
        commit,
        coordinator_epoch: 0,
    })
    .await
    .expect("marker written");
}

/// (partition, offset, error code) of OffsetFetch v7 for partitions 0-3 of "t", stable or not.
async fn fetch(c: &GroupCoordinator, group: &str, require_stable: bool) -> Vec<(i32, i64, i16)> {
    let mut req = fetch_req(group, Some(&[("t", &[0, 1, 2, 3])]));
    req.require_stable = require_stable;
    let response = c.offset_fetch(req, 7).await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect()
}

#[test]
fn a_transactions_offsets_wait_for_its_marker() {
    run(|| async {
        let (c, _) = coordinator();
        assert_eq!(
            txn_commit(&c, "g", (7, 0), &[(0, 10), (1, 11)]).await,
            vec![NONE, NONE]
        );
        assert_eq!(txn_commit(&c, "g", (8, 0), &[(2, 20)]).await, vec![NONE]);
        // Pending: not visible, and unstable for a fetch that wants stable offsets.
        assert_eq!(
            fetch(&c, "g", false).await,
            vec![(0, -1, NONE), (1, -1, NONE), (2, -1, NONE), (3, -1, NONE)]
        );
        let unstable = UNSTABLE_OFFSET_COMMIT;
        assert_eq!(
            fetch(&c, "g", true).await,
            vec![
                (0, -1, unstable),
                (1, -1, unstable),
                (2, -1, unstable),
                (3, -1, NONE)
            ]
        );
        marker(&c, "g", (7, 0), true).await;
        marker(&c, "g", (8, 0), false).await;
        assert_eq!(
            fetch(&c, "g", true).await,
            vec![(0, 10, NONE), (1, 11, NONE), (2, -1, NONE), (3, -1, NONE)]
        );
    });
}

#[test]
fn a_zombie_producer_is_fenced_and_a_later_plain_commit_wins() {
    run(|| async {
        let (c, _) = coordinator();
        assert_eq!(txn_commit(&c, "g", (7, 1), &[(0, 10)]).await, vec![NONE]);
        // Its coordinator fenced it (abort marker at the bumped epoch).
        marker(&c, "g", (7, 2), false).await;
        assert_eq!(
            txn_commit(&c, "g", (7, 1), &[(0, 99)]).await,
            vec![PRODUCER_FENCED]
        );
        // A plain commit after a transaction's offset of the same partition outranks it.
        assert_eq!(
            txn_commit(&c, "g", (7, 2), &[(0, 30), (1, 31)]).await,
            vec![NONE, NONE]
        );
        let plain = commit_req("g", -1, "", &[("t", 0, 5, None)]);
        assert_eq!(commit_codes(&c.offset_commit(plain, 7).await), vec![NONE]);
        marker(&c, "g", (7, 2), true).await;
        assert_eq!(
            fetch(&c, "g", true).await,
            vec![(0, 5, NONE), (1, 31, NONE), (2, -1, NONE), (3, -1, NONE)]
        );
    });
}

/// The unit the cluster relies on: a new coordinator (restart, fail-over) rebuilds the pending
/// offsets from the log, the ended ones as their markers decided, and compaction keeps that.
#[test]
fn pending_offsets_are_rebuilt_from_the_log_and_survive_compaction() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        let open_store = || compacting_store(temp.path(), partition);
        {
            let store = Rc::new(open_store().await);
            let c = GroupCoordinator::open(test_config(), store.clone())
                .await
                .expect("open");
            txn_commit(&c, "g", (7, 0), &[(0, 10)]).await;
            txn_commit(&c, "g", (8, 0), &[(1, 20)]).await;
            txn_commit(&c, "g", (9, 0), &[(2, 30)]).await;
            // Superseded by a later plain commit: its commit will not materialise it.
            txn_commit(&c, "g", (9, 0), &[(3, 40)]).await;
            let plain = commit_req("g", -1, "", &[("t", 3, 4, None)]);
            assert_eq!(commit_codes(&c.offset_commit(plain, 7).await), vec![NONE]);
            marker(&c, "g", (7, 0), true).await;
            marker(&c, "g", (8, 0), false).await;
            // Producer 9 stays open across the restart.
            store.close().await.expect("close");
        }
        let unstable = UNSTABLE_OFFSET_COMMIT;
        let expected_open = vec![
            (0, 10, NONE),
            (1, -1, NONE),
            (2, -1, unstable),
            (3, -1, unstable),
        ];
        {
            let store = Rc::new(open_store().await);
            let c = GroupCoordinator::open(test_config(), store.clone())
                .await
                .expect("recover");
            assert_eq!(fetch(&c, "g", true).await, expected_open);
            // Garbage enough for compaction, then the sweep compacts.
            for round in 0..200 {
                let plain = commit_req("g", -1, "", &[("u", 0, round, Some("padding padding"))]);
                assert_eq!(commit_codes(&c.offset_commit(plain, 7).await), vec![NONE]);
            }
            sweep_and_check_compacted(&c, &store, partition, 4).await;
            store.close().await.expect("close");
        }
        let store = Rc::new(open_store().await);
        let c = GroupCoordinator::open(test_config(), store.clone())
            .await
            .expect("recover after compaction");
        // Still open, but the superseded offset (3) was left out of the compacted log.
        assert_eq!(
            fetch(&c, "g", true).await,
            vec![
                (0, 10, NONE),
                (1, -1, NONE),
                (2, -1, unstable),
                (3, 4, NONE)
            ]
        );
        marker(&c, "g", (9, 0), true).await;
        assert_eq!(
            fetch(&c, "g", true).await,
            vec![(0, 10, NONE), (1, -1, NONE), (2, 30, NONE), (3, 4, NONE)]
        );
    });
}

/// A new leader of one offsets partition loads its pending offsets; the old one forgets them.
#[test]
fn a_new_leader_takes_over_the_pending_offsets_of_its_partition() {
    run(|| async {
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        let store = Rc::new(MemoryOffsetStore::new());
        let old_leader = GroupCoordinator::new(test_config(), store.clone());
        txn_commit(&old_leader, "g", (7, 0), &[(0, 10)]).await;
        let new_leader = GroupCoordinator::new(test_config(), store.clone());
        new_leader.load_partition(partition).await.expect("load");
        old_leader.unload_partition(partition);
        let unstable = UNSTABLE_OFFSET_COMMIT;
        assert_eq!(fetch(&new_leader, "g", true).await[0], (0, -1, unstable));
        assert_eq!(fetch(&old_leader, "g", true).await[0], (0, -1, NONE));
        marker(&new_leader, "g", (7, 0), true).await;
        assert_eq!(fetch(&new_leader, "g", true).await[0], (0, 10, NONE));
    });
}

/// One in-place compaction pass of a replicated offsets partition's log, as the retention task
/// runs it on every replica (offsets kept, transactions read from the log itself); the bytes it
/// removed.
async fn compact_in_place(log: &crate::storage::PartitionLog) -> u64 {
    let txns = crate::retention::txn_scan::cleaner_txns(log)
        .await
        .expect("the log's transactions");
    let policy = crate::storage::CompactionPolicy {
        min_compaction_lag_ms: 0,
        delete_retention_ms: 86_400_000,
        max_keys: 1 << 16,
    };
    let mut memo = crate::storage::CompactionMemo::default();
    let outcome = log
        .compact(&policy, &txns, crate::retention::now_ms(), &mut memo)
        .await
        .expect("compaction pass");
    outcome.map_or(0, |o| o.bytes_before - o.bytes_after)
}

/// What a new leader of the partition (a fail-over) rebuilds from the log as it is now.
async fn new_leader_fetch(store: &Rc<LogOffsetStore>, partition: i32) -> Vec<(i32, i64, i16)> {
    let new_leader = GroupCoordinator::new(test_config(), store.clone());
    new_leader.load_partition(partition).await.expect("load");
    fetch(&new_leader, "g", true).await
}

/// A replicated `__consumer_offsets` partition is compacted in place on each replica (its
/// offsets stay, so the replicas' copies agree): nothing at or after an open transaction's first
/// offset is cleaned, an aborted transaction's offset never hides the committed one before it,
/// and a new leader rebuilds exactly the state the old one held, before and after the
/// transaction ends.
#[test]
fn a_log_compacted_in_place_rebuilds_the_same_offsets() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        // Default compaction threshold: the coordinator's own rewrite never runs here.
        let store = Rc::new(
            LogOffsetStore::open(
                temp.path(),
                &[partition],
                OFFSETS_TOPIC_PARTITIONS,
                small_log_config(),
            )
            .await
            .expect("open store"),
        );
        let c = GroupCoordinator::open(test_config(), store.clone())
            .await
            .expect("open");
        let plain = |partition: i32, offset: i64| {
            commit_req("g", -1, "", &[("t", partition, offset, None)])
        };
        let pad = |round: i64| {
            commit_req(
                "g",
                -1,
                "",
                &[("u", 0, round, Some("padding padding padding"))],
            )
        };
        assert_eq!(
            commit_codes(&c.offset_commit(plain(0, 5), 7).await),
            vec![NONE]
        );
        assert_eq!(
            commit_codes(&c.offset_commit(plain(1, 15), 7).await),
            vec![NONE]
        );
        for round in 0..100 {
            c.offset_commit(pad(round), 7).await;
        }
        txn_commit(&c, "g", (7, 0), &[(0, 10)]).await;
        txn_commit(&c, "g", (8, 0), &[(1, 20)]).await;
        for round in 100..200 {
            c.offset_commit(pad(round), 7).await;
        }
        marker(&c, "g", (7, 0), true).await;
        // Aborted: a pass must not take it as partition 1's latest and drop the 15 before it.
        marker(&c, "g", (8, 0), false).await;
        for round in 200..300 {
            c.offset_commit(pad(round), 7).await;
        }
        // Producer 9 stays open: the cleaner stops at its first offset.
        txn_commit(&c, "g", (9, 0), &[(2, 30)]).await;
        for round in 300..600 {
            c.offset_commit(pad(round), 7).await;
        }
        let log = store.log(partition).expect("owned");
        let end = log.log_end_offset();
        let open_state = fetch(&c, "g", true).await;
        assert_eq!(
            open_state,
            vec![
                (0, 10, NONE),
                (1, 15, NONE),
                (2, -1, UNSTABLE_OFFSET_COMMIT),
                (3, -1, NONE)
            ]
        );
        let size = log.size_bytes();
        assert!(
            compact_in_place(&log).await > 0,
            "nothing compacted below the open transaction"
        );
        assert!(
            log.size_bytes() * 2 > size,
            "cleaned past the open transaction"
        );
        assert_eq!(log.log_end_offset(), end, "offsets stay");
        assert_eq!(new_leader_fetch(&store, partition).await, open_state);

        marker(&c, "g", (9, 0), true).await;
        for round in 600..900 {
            c.offset_commit(pad(round), 7).await;
        }
        let ended_state = fetch(&c, "g", true).await;
        assert_eq!(ended_state[2], (2, 30, NONE));
        let size = log.size_bytes();
        compact_in_place(&log).await;
        assert!(
            log.size_bytes() * 4 < size,
            "compaction shrank {size} bytes only to {}",
            log.size_bytes()
        );
        assert_eq!(new_leader_fetch(&store, partition).await, ended_state);
        // The padding's latest value survived too.
        let new_leader = GroupCoordinator::new(test_config(), store.clone());
        new_leader.load_partition(partition).await.expect("load");
        let padded = new_leader
            .offset_fetch(fetch_req("g", Some(&[("u", &[0])])), 7)
            .await;
        assert_eq!(padded.topics[0].partitions[0].committed_offset, 899);
        store.close().await.expect("close");
    });
}
