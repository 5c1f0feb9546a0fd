//! Classic groups across a coordinator restart (issue 21, part 1): the group metadata written to the store
//! brings members, generation, leader and assignments back, sessions restart at load time, static members
//! keep their assignment, Empty and deleted groups stay so, and a failed write is answered as Kafka does.

use std::cell::Cell;

use super::*;
use crate::groups::store::LocalBoxFuture;

/// A store whose writes can be made to fail, over an in-memory log.
#[derive(Default)]
struct FlakyStore {
    log: MemoryOffsetStore,
    failing: Cell<bool>,
}

impl OffsetStore for FlakyStore {
    fn persist<'a>(
        &'a self,
        records: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>> {
        if self.failing.get() {
            return Box::pin(async { Err(GroupError::Storage("injected failure".into())) });
        }
        self.log.persist(records)
    }

    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>> {
        self.log.load_all()
    }
}

/// Lets detached metadata writes (an emptied group's) reach the store before a simulated restart.
async fn settle() {
    sleep(Duration::from_millis(20)).await;
}

async fn reopen(store: Rc<dyn OffsetStore>) -> GroupCoordinator {
    GroupCoordinator::open(test_config(), store)
        .await
        .expect("recovery")
}

/// Two members, Stable, with assignments "a" (leader) and "b"; returns (leader, follower, generation).
async fn stable_pair(c: &GroupCoordinator, group: &str) -> (String, String, i32) {
    let first = c.join_group(join_req(group, "", None, &range()), 3).await;
    let m1 = first.member_id.to_string();
    let j2 = spawn_join(c, join_req(group, "", None, &range()), 3);
    let r1 = c.join_group(join_req(group, &m1, None, &range()), 3).await;
    let r2 = j2.await;
    assert_eq!((r1.error_code, r2.error_code), (NONE, NONE));
    let m2 = r2.member_id.to_string();
    let generation = r1.generation_id;
    let follower = spawn_sync(c, sync_req(group, generation, &m2, &[]));
    let plan: [(&str, &[u8]); 2] = [(&m1, b"a"), (&m2, b"b")];
    let leader = c
        .sync_group(sync_req(group, generation, &m1, &plan), 3)
        .await;
    assert_eq!(&leader.assignment[..], b"a");
    assert_eq!(&follower.await.assignment[..], b"b");
    (m1, m2, generation)
}

fn heartbeat_v3(group: &str, generation: i32, member: &str, instance: &str) -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default();
    req.group_id = s(group).into();
    req.generation_id = generation;
    req.member_id = s(member);
    req.group_instance_id = Some(s(instance));
    req
}

#[test]
fn stable_group_survives_a_restart_without_a_rebalance() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let (m1, m2, generation) = {
            let c = GroupCoordinator::new(test_config(), store.clone());
            let pair = stable_pair(&c, "g").await;
            let commit = commit_req("g", pair.2, &pair.0, &[("t", 0, 42, None)]);
            assert_eq!(commit_codes(&c.offset_commit(commit, 7).await), vec![NONE]);
            pair
        };
        // Down for longer than a session: sessions restart when the group is loaded.
        sleep(Duration::from_millis(SESSION_MS as u64 + 100)).await;
        let c = reopen(store).await;

        assert_eq!(heartbeat(&c, "g", generation, &m1).await, NONE);
        assert_eq!(heartbeat(&c, "g", generation, &m2).await, NONE);
        let described = c.describe_group("g");
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.protocol_data.as_str(), "range");
        let members: Vec<(String, Vec<u8>)> = described
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.member_assignment.to_vec()))
            .collect();
        assert_eq!(
            members,
            vec![(m1.clone(), b"a".to_vec()), (m2.clone(), b"b".to_vec())]
        );
        // A follower that syncs again gets its assignment; a commit of this generation is accepted.
        let synced = c.sync_group(sync_req("g", generation, &m2, &[]), 3).await;
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (NONE, &b"b"[..])
        );
        let commit = commit_req("g", generation, &m2, &[("t", 1, 7, None)]);
        assert_eq!(commit_codes(&c.offset_commit(commit, 7).await), vec![NONE]);
        assert_eq!(
            c.committed_offsets("g"),
            vec![("t".into(), 0, 42), ("t".into(), 1, 7)]
        );
        // A follower rejoining with unchanged metadata gets the current generation back.
        let rejoined = c.join_group(join_req("g", &m2, None, &range()), 5).await;
        assert_eq!(
            (rejoined.error_code, rejoined.generation_id),
            (NONE, generation)
        );
        assert_eq!(rejoined.leader.as_str(), m1);
    });
}

#[test]
fn members_silent_after_a_restart_expire_one_session_after_the_load() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let (m1, m2, generation) = {
            let c = GroupCoordinator::new(test_config(), store.clone());
            stable_pair(&c, "g").await
        };
        let c = reopen(store).await;
        let loaded = std::time::Instant::now();
        // Only m1 heartbeats; m2's session (started at the load) runs out and the group rebalances.
        let mut code = NONE;
        while code == NONE {
            assert!(
                loaded.elapsed() < Duration::from_secs(5),
                "m2 never expired"
            );
            sleep(Duration::from_millis(50)).await;
            code = heartbeat(&c, "g", generation, &m1).await;
        }
        assert_eq!(code, REBALANCE_IN_PROGRESS);
        assert!(
            loaded.elapsed() >= Duration::from_millis(SESSION_MS as u64 - 50),
            "m2 expired {:?} after the load, before its session timeout",
            loaded.elapsed()
        );
        let rejoined = c.join_group(join_req("g", &m1, None, &range()), 3).await;
        assert_eq!(rejoined.generation_id, generation + 1);
        assert_eq!(rejoined.members.len(), 1, "m2 is gone");
        assert_eq!(
            heartbeat(&c, "g", rejoined.generation_id, &m2).await,
            UNKNOWN_MEMBER_ID
        );
    });
}

#[test]
fn static_member_keeps_its_assignment_across_broker_and_own_restarts() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let (old_id, generation) = {
            let c = GroupCoordinator::new(test_config(), store.clone());
            let joined = c
                .join_group(join_req("g", "", Some("instance-1"), &range()), 5)
                .await;
            let member = joined.member_id.to_string();
            let synced = c
                .sync_group(
                    sync_req("g", joined.generation_id, &member, &[(&member, b"mine")]),
                    3,
                )
                .await;
            assert_eq!(synced.error_code, NONE);
            (member, joined.generation_id)
        };
        let c = reopen(store.clone()).await;
        assert_eq!(
            c.heartbeat(heartbeat_v3("g", generation, &old_id, "instance-1"), 3)
                .await
                .error_code,
            NONE
        );
        // The member's process restarts too: it joins with its instance id and no member id.
        let again = c
            .join_group(join_req("g", "", Some("instance-1"), &range()), 5)
            .await;
        assert_eq!((again.error_code, again.generation_id), (NONE, generation));
        let new_id = again.member_id.to_string();
        assert_ne!(new_id, old_id);
        let synced = c
            .sync_group(sync_req("g", generation, &new_id, &[]), 3)
            .await;
        assert_eq!(&synced.assignment[..], b"mine");
        drop(c);

        // The new member id was made durable before the join was answered.
        let c = reopen(store).await;
        let beat =
            |member: &str| c.heartbeat(heartbeat_v3("g", generation, member, "instance-1"), 3);
        assert_eq!(beat(&new_id).await.error_code, NONE);
        assert_eq!(beat(&old_id).await.error_code, FENCED_INSTANCE_ID);
        assert_eq!(
            &c.describe_group("g").members[0].member_assignment[..],
            b"mine"
        );
    });
}

#[test]
fn empty_group_keeps_its_generation_and_a_deleted_group_stays_deleted() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let emptied_generation = {
            let c = GroupCoordinator::new(test_config(), store.clone());
            let (member, generation) = stable_single(&c, "g").await;
            let mut leave = LeaveGroupRequest::default();
            leave.group_id = s("g").into();
            leave.member_id = s(&member);
            assert_eq!(c.leave_group(leave, 0).await.error_code, NONE);
            settle().await;
            assert_eq!(c.describe_group("g").group_state.as_str(), "Empty");
            generation + 1
        };
        let c = reopen(store.clone()).await;
        assert_eq!(c.describe_group("g").group_state.as_str(), "Empty");
        assert_eq!(c.list_groups(&[])[0].protocol_type.as_str(), "consumer");
        let joined = c.join_group(join_req("g", "", None, &range()), 3).await;
        assert_eq!(joined.generation_id, emptied_generation + 1);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = s("g").into();
        leave.member_id = joined.member_id.clone();
        c.leave_group(leave, 0).await;
        settle().await;
        assert_eq!(c.delete_group("g").await, NONE);
        drop(c);

        let c = reopen(store).await;
        assert_eq!(c.describe_group("g").group_state.as_str(), "Dead");
        let fresh = c.join_group(join_req("g", "", None, &range()), 3).await;
        assert_eq!(fresh.generation_id, 1, "a deleted group starts over");
    });
}

#[test]
fn an_unused_empty_group_is_tombstoned_by_the_retention_sweep() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        {
            let c = GroupCoordinator::new(test_config(), store.clone());
            let (member, _) = stable_single(&c, "g").await;
            let mut leave = LeaveGroupRequest::default();
            leave.group_id = s("g").into();
            leave.member_id = s(&member);
            c.leave_group(leave, 0).await;
            settle().await;
            // Empty, no offsets: the sweep deletes the group, with a metadata tombstone.
            c.expire_offsets().await.expect("sweep");
            assert!(c.list_groups(&[]).is_empty());
        }
        let c = reopen(store).await;
        assert!(c.list_groups(&[]).is_empty(), "the group came back");
    });
}

#[test]
fn a_failed_metadata_write_answers_not_coordinator_and_rebalances() {
    run(|| async {
        let store = Rc::new(FlakyStore::default());
        let c = GroupCoordinator::new(test_config(), store.clone());
        let joined = c.join_group(join_req("g", "", None, &range()), 3).await;
        let member = joined.member_id.to_string();
        store.failing.set(true);
        let synced = c
            .sync_group(
                sync_req("g", joined.generation_id, &member, &[(&member, b"x")]),
                3,
            )
            .await;
        assert_eq!(synced.error_code, NOT_COORDINATOR);
        assert_eq!(
            c.describe_group("g").group_state.as_str(),
            "PreparingRebalance"
        );
        store.failing.set(false);
        let rejoined = c
            .join_group(join_req("g", &member, None, &range()), 3)
            .await;
        assert_eq!(rejoined.generation_id, joined.generation_id + 1);
        let synced = c
            .sync_group(
                sync_req("g", rejoined.generation_id, &member, &[(&member, b"y")]),
                3,
            )
            .await;
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (NONE, &b"y"[..])
        );
        // What was never durable is not loaded: the restarted group has the second generation.
        drop(c);
        let c = reopen(store).await;
        assert_eq!(
            heartbeat(&c, "g", rejoined.generation_id, &member).await,
            NONE
        );
    });
}

#[test]
fn group_metadata_survives_compaction_and_restart_over_partition_logs() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        let open_store = || compacting_store(temp.path(), partition);
        let (member, generation) = {
            let store = Rc::new(open_store().await);
            let c = GroupCoordinator::open(test_config(), store.clone())
                .await
                .expect("open");
            let (member, mut generation) = stable_single(&c, "g").await;
            // Many generations (the leader rejoining forces one each time), each one record in the log.
            for round in 0..100 {
                let joined = c
                    .join_group(join_req("g", &member, None, &range()), 3)
                    .await;
                assert_eq!(joined.generation_id, generation + 1);
                generation = joined.generation_id;
                let assignment = format!("round {round}");
                let plan: [(&str, &[u8]); 1] = [(&member, assignment.as_bytes())];
                let synced = c
                    .sync_group(sync_req("g", generation, &member, &plan), 3)
                    .await;
                assert_eq!(synced.error_code, NONE);
            }
            sweep_and_check_compacted(&c, &store, partition, 10).await;
            store.close().await.expect("close");
            (member, generation)
        };
        let c = GroupCoordinator::open(test_config(), Rc::new(open_store().await))
            .await
            .expect("recover");
        assert_eq!(heartbeat(&c, "g", generation, &member).await, NONE);
        let described = c.describe_group("g");
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(&described.members[0].member_assignment[..], b"round 99");
    });
}

/// Replicated `__consumer_offsets` (issue 18): a broker that becomes leader of an offsets partition
/// loads that partition's groups (offsets, members, generation) from the log its predecessor wrote,
/// and only those; the old leader drops them; a later leadership replaces a stale copy.
#[test]
fn a_new_leader_takes_over_one_partitions_groups_from_the_log() {
    run(|| async {
        use crate::groups::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        assert_ne!(
            partition,
            offsets_partition_for("h", OFFSETS_TOPIC_PARTITIONS)
        );
        // One log both brokers hold (a follower's copy is byte for byte the leader's).
        let store = Rc::new(MemoryOffsetStore::new());
        let old_leader = GroupCoordinator::new(test_config(), store.clone());
        let (m1, m2, generation) = stable_pair(&old_leader, "g").await;
        let commit = commit_req("g", generation, &m1, &[("t", 0, 42, None)]);
        assert_eq!(
            commit_codes(&old_leader.offset_commit(commit, 7).await),
            vec![NONE]
        );
        let other = commit_req("h", -1, "", &[("t", 0, 9, None)]);
        assert_eq!(
            commit_codes(&old_leader.offset_commit(other, 7).await),
            vec![NONE]
        );

        let new_leader = GroupCoordinator::new(test_config(), store.clone());
        assert_eq!(new_leader.load_partition(partition).await.expect("load"), 1);
        assert_eq!(new_leader.group_ids(), vec!["g".to_string()]);
        assert_eq!(new_leader.committed_offsets("g"), vec![("t".into(), 0, 42)]);
        assert_eq!(heartbeat(&new_leader, "g", generation, &m1).await, NONE);
        assert_eq!(heartbeat(&new_leader, "g", generation, &m2).await, NONE);
        assert_eq!(
            new_leader.describe_group("g").group_state.as_str(),
            "Stable"
        );

        assert_eq!(old_leader.unload_partition(partition), 1);
        assert_eq!(old_leader.group_ids(), vec!["h".to_string()]);

        // The group commits on under its new coordinator; when the first broker leads again it
        // replaces nothing it kept: it loads the newest commit from the log.
        let commit = commit_req("g", generation, &m2, &[("t", 0, 50, None)]);
        assert_eq!(
            commit_codes(&new_leader.offset_commit(commit, 7).await),
            vec![NONE]
        );
        old_leader.load_partition(partition).await.expect("load");
        assert_eq!(old_leader.committed_offsets("g"), vec![("t".into(), 0, 50)]);
        assert_eq!(old_leader.committed_offsets("h"), vec![("t".into(), 0, 9)]);
    });
}
