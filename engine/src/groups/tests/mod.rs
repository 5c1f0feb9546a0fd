//! Behaviour tests of the coordinator in real glommio executors with short timeouts and no initial
//! rebalance delay: membership flows, timers, error codes, offsets, restart over the same store, and
//! encodability of every response at every version.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use glommio::timer::sleep;
use glommio::LocalExecutorBuilder;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Message, StrBytes};

use super::responses::*;
use super::*;

mod consumer;
mod restart;
mod transactions;

const SESSION_MS: i32 = 300;
const REBALANCE_MS: i32 = 600;

fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .io_memory(1 << 16)
        .spawn(test)
        .expect("executor starts")
        .join()
        .expect("test body completes");
}

fn test_config() -> GroupConfig {
    GroupConfig {
        session_timeout_min_ms: 10,
        session_timeout_max_ms: 60_000,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn coordinator() -> (GroupCoordinator, Rc<MemoryOffsetStore>) {
    let store = Rc::new(MemoryOffsetStore::new());
    (GroupCoordinator::new(test_config(), store.clone()), store)
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn join_req(
    group: &str,
    member: &str,
    instance: Option<&str>,
    protocols: &[(&str, &[u8])],
) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = s(group).into();
    req.member_id = s(member);
    req.group_instance_id = instance.map(s);
    req.session_timeout_ms = SESSION_MS;
    req.rebalance_timeout_ms = REBALANCE_MS;
    req.protocol_type = s("consumer");
    req.protocols = protocols
        .iter()
        .map(|(name, metadata)| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s(name);
            p.metadata = Bytes::copy_from_slice(metadata);
            p
        })
        .collect();
    req
}

fn range() -> Vec<(&'static str, &'static [u8])> {
    vec![("range", b"sub")]
}

fn sync_req(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default();
    req.group_id = s(group).into();
    req.generation_id = generation;
    req.member_id = s(member);
    req.assignments = assignments
        .iter()
        .map(|(m, a)| {
            let mut assignment = SyncGroupRequestAssignment::default();
            assignment.member_id = s(m);
            assignment.assignment = Bytes::copy_from_slice(a);
            assignment
        })
        .collect();
    req
}

async fn heartbeat(c: &GroupCoordinator, group: &str, generation: i32, member: &str) -> i16 {
    let mut req = HeartbeatRequest::default();
    req.group_id = s(group).into();
    req.generation_id = generation;
    req.member_id = s(member);
    c.heartbeat(req, 4).await.error_code
}

fn spawn_join(
    c: &GroupCoordinator,
    req: JoinGroupRequest,
    version: i16,
) -> glommio::Task<JoinGroupResponse> {
    let c = c.clone();
    glommio::spawn_local(async move { c.join_group(req, version).await })
}

fn spawn_sync(c: &GroupCoordinator, req: SyncGroupRequest) -> glommio::Task<SyncGroupResponse> {
    let c = c.clone();
    glommio::spawn_local(async move { c.sync_group(req, 3).await })
}

/// Joins one dynamic member with the v4+ two-step flow; returns the (parked) join task and member id.
async fn two_step_join(
    c: &GroupCoordinator,
    group: &str,
) -> (glommio::Task<JoinGroupResponse>, String) {
    let first = c.join_group(join_req(group, "", None, &range()), 5).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member_id = first.member_id.to_string();
    assert!(!member_id.is_empty());
    (
        spawn_join(c, join_req(group, &member_id, None, &range()), 5),
        member_id,
    )
}

/// A single member group, Stable; returns (member id, generation).
async fn stable_single(c: &GroupCoordinator, group: &str) -> (String, i32) {
    let joined = c.join_group(join_req(group, "", None, &range()), 3).await;
    assert_eq!(joined.error_code, NONE);
    let member = joined.member_id.to_string();
    let synced = c
        .sync_group(
            sync_req(group, joined.generation_id, &member, &[(&member, b"a")]),
            3,
        )
        .await;
    assert_eq!(synced.error_code, NONE);
    (member, joined.generation_id)
}

fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = s(group).into();
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member);
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        if topics.last().is_none_or(|t| t.name.0.as_str() != *topic) {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = s(topic).into();
            topics.push(t);
        }
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = metadata.map(s);
        topics.last_mut().expect("pushed above").partitions.push(p);
    }
    req.topics = topics;
    req
}

fn commit_codes(response: &OffsetCommitResponse) -> Vec<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

fn fetch_req(group: &str, topics: Option<&[(&str, &[i32])]>) -> OffsetFetchRequest {
    let mut req = OffsetFetchRequest::default();
    req.group_id = s(group).into();
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|(name, partitions)| {
                let mut t = OffsetFetchRequestTopic::default();
                t.name = s(name).into();
                t.partition_indexes = partitions.to_vec();
                t
            })
            .collect()
    });
    req
}

/// (topic, partition, offset, metadata) of a single-group OffsetFetch response.
fn fetched(response: &OffsetFetchResponse) -> Vec<(String, i32, i64, String)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or("<null>").to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn single_member_join_sync_stable() {
    run(|| async {
        let (c, _) = coordinator();
        let joined = c.join_group(join_req("g", "", None, &range()), 3).await;
        assert_eq!(joined.error_code, NONE);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id);
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        assert_eq!(joined.members.len(), 1);
        assert_eq!(&joined.members[0].metadata[..], b"sub");
        let member = joined.member_id.to_string();
        assert_eq!(
            c.describe_group("g").group_state.as_str(),
            "CompletingRebalance"
        );
        let synced = c
            .sync_group(sync_req("g", 1, &member, &[(&member, b"p0,p1")]), 3)
            .await;
        assert_eq!(synced.error_code, NONE);
        assert_eq!(&synced.assignment[..], b"p0,p1");
        assert_eq!(heartbeat(&c, "g", 1, &member).await, NONE);
        let described = c.describe_group("g");
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.protocol_data.as_str(), "range");
        assert_eq!(&described.members[0].member_assignment[..], b"p0,p1");
    });
}

#[test]
fn three_members_share_one_generation_and_get_their_assignments() {
    run(|| async {
        let (c, _) = coordinator();
        let (j1, m1) = two_step_join(&c, "g").await;
        // The first joiner forms generation 1 alone (no initial delay in tests); the others join into a
        // rebalance of generation 2.
        let first = j1.await;
        assert_eq!((first.error_code, first.generation_id), (NONE, 1));
        let (j2, m2) = two_step_join(&c, "g").await;
        let (j3, m3) = two_step_join(&c, "g").await;
        let rejoin = spawn_join(&c, join_req("g", &m1, None, &range()), 5);
        let responses = [rejoin.await, j2.await, j3.await];
        let generation = responses[0].generation_id;
        assert_eq!(generation, 2);
        for r in &responses {
            assert_eq!((r.error_code, r.generation_id), (NONE, generation));
            assert_eq!(r.leader.as_str(), m1);
        }
        assert_eq!(
            responses[0].members.len(),
            3,
            "the leader sees every member"
        );
        assert!(responses[1].members.is_empty() && responses[2].members.is_empty());
        let f2 = spawn_sync(&c, sync_req("g", generation, &m2, &[]));
        let f3 = spawn_sync(&c, sync_req("g", generation, &m3, &[]));
        let plan: [(&str, &[u8]); 3] = [(&m1, b"a"), (&m2, b"b"), (&m3, b"c")];
        let leader = c.sync_group(sync_req("g", generation, &m1, &plan), 3).await;
        assert_eq!(&leader.assignment[..], b"a");
        assert_eq!(&f2.await.assignment[..], b"b");
        assert_eq!(&f3.await.assignment[..], b"c");
        assert_eq!(c.describe_group("g").group_state.as_str(), "Stable");
    });
}

#[test]
fn silent_member_expires_and_the_rest_rebalance() {
    run(|| async {
        let (c, _) = coordinator();
        let j1 = spawn_join(&c, join_req("g", "", None, &range()), 3);
        let r1 = j1.await;
        let m1 = r1.member_id.to_string();
        let j2 = spawn_join(&c, join_req("g", "", None, &range()), 3);
        let rejoin1 = spawn_join(&c, join_req("g", &m1, None, &range()), 3);
        let (r1, r2) = (rejoin1.await, j2.await);
        let (m2, generation) = (r2.member_id.to_string(), r1.generation_id);
        assert_eq!(r1.generation_id, r2.generation_id);
        let f2 = spawn_sync(&c, sync_req("g", generation, &m2, &[]));
        c.sync_group(
            sync_req("g", generation, &m1, &[(&m1, b"x"), (&m2, b"y")]),
            3,
        )
        .await;
        f2.await;
        // m2 goes silent; m1 keeps heartbeating until told to rejoin.
        let mut told = false;
        for _ in 0..40 {
            sleep(Duration::from_millis(SESSION_MS as u64 / 4)).await;
            match heartbeat(&c, "g", generation, &m1).await {
                NONE => {}
                REBALANCE_IN_PROGRESS => {
                    told = true;
                    break;
                }
                other => panic!("unexpected heartbeat error {other}"),
            }
        }
        assert!(told, "the survivor was never told to rejoin");
        let rejoined = c.join_group(join_req("g", &m1, None, &range()), 3).await;
        assert_eq!(rejoined.error_code, NONE);
        assert_eq!(rejoined.generation_id, generation + 1);
        assert_eq!(rejoined.members.len(), 1);
        assert_eq!(
            heartbeat(&c, "g", rejoined.generation_id, &m2).await,
            UNKNOWN_MEMBER_ID
        );
    });
}

#[test]
fn leave_group_rebalances_immediately() {
    run(|| async {
        let (c, _) = coordinator();
        let r1 = c.join_group(join_req("g", "", None, &range()), 3).await;
        let m1 = r1.member_id.to_string();
        let j2 = spawn_join(&c, join_req("g", "", None, &range()), 3);
        let r1 = c.join_group(join_req("g", &m1, None, &range()), 3).await;
        let m2 = j2.await.member_id.to_string();
        let generation = r1.generation_id;
        let f2 = spawn_sync(&c, sync_req("g", generation, &m2, &[]));
        c.sync_group(sync_req("g", generation, &m1, &[]), 3).await;
        f2.await;

        let mut leave = LeaveGroupRequest::default();
        leave.group_id = s("g").into();
        let mut identity = MemberIdentity::default();
        identity.member_id = s(&m2);
        leave.members = vec![identity];
        let left = c.leave_group(leave, 3).await;
        assert_eq!(left.error_code, NONE);
        assert_eq!(left.members[0].error_code, NONE);
        assert_eq!(
            heartbeat(&c, "g", generation, &m1).await,
            REBALANCE_IN_PROGRESS
        );
        let rejoined = c.join_group(join_req("g", &m1, None, &range()), 3).await;
        assert_eq!(rejoined.generation_id, generation + 1);

        // v0 LeaveGroup of an unknown member reports the member's error at the top level.
        let mut old = LeaveGroupRequest::default();
        old.group_id = s("g").into();
        old.member_id = s("nobody");
        assert_eq!(c.leave_group(old, 0).await.error_code, UNKNOWN_MEMBER_ID);
    });
}

#[test]
fn member_id_required_and_pending_ids_expire() {
    run(|| async {
        let (c, _) = coordinator();
        let first = c.join_group(join_req("g", "", None, &range()), 4).await;
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        assert_eq!(first.generation_id, -1);
        let member = first.member_id.to_string();
        let joined = c
            .join_group(join_req("g", &member, None, &range()), 4)
            .await;
        assert_eq!(
            (joined.error_code, joined.member_id.as_str()),
            (NONE, member.as_str())
        );

        // An id handed out but never used expires after the session timeout.
        let pending = c
            .join_group(join_req("h", "", None, &range()), 4)
            .await
            .member_id
            .to_string();
        sleep(Duration::from_millis(SESSION_MS as u64 * 2)).await;
        let late = c
            .join_group(join_req("h", &pending, None, &range()), 4)
            .await;
        assert_eq!(late.error_code, UNKNOWN_MEMBER_ID);
    });
}

#[test]
fn static_member_rejoins_without_rebalance() {
    run(|| async {
        let (c, _) = coordinator();
        let joined = c
            .join_group(join_req("g", "", Some("instance-1"), &range()), 5)
            .await;
        assert_eq!(
            joined.error_code, NONE,
            "static members skip MEMBER_ID_REQUIRED"
        );
        let old = joined.member_id.to_string();
        assert!(old.starts_with("instance-1-"));
        let generation = joined.generation_id;
        c.sync_group(sync_req("g", generation, &old, &[(&old, b"mine")]), 3)
            .await;

        // Restarted process: same instance id, no member id, same protocols.
        let again = c
            .join_group(join_req("g", "", Some("instance-1"), &range()), 5)
            .await;
        assert_eq!(again.error_code, NONE);
        assert_eq!(again.generation_id, generation, "no rebalance");
        let new = again.member_id.to_string();
        assert_ne!(new, old);
        assert_eq!(c.describe_group("g").group_state.as_str(), "Stable");
        let synced = c.sync_group(sync_req("g", generation, &new, &[]), 3).await;
        assert_eq!(&synced.assignment[..], b"mine");

        let mut fenced = HeartbeatRequest::default();
        fenced.group_id = s("g").into();
        fenced.generation_id = generation;
        fenced.member_id = s(&old);
        fenced.group_instance_id = Some(s("instance-1"));
        assert_eq!(c.heartbeat(fenced, 3).await.error_code, FENCED_INSTANCE_ID);

        // A changed protocol preference (the vote would now pick roundrobin) forces a rebalance.
        let preferences: [(&str, &[u8]); 2] = [("roundrobin", b"x"), ("range", b"sub")];
        let changed = c
            .join_group(join_req("g", "", Some("instance-1"), &preferences), 5)
            .await;
        assert_eq!(changed.error_code, NONE);
        assert_eq!(changed.generation_id, generation + 1);
        assert_eq!(changed.protocol_name.as_deref(), Some("roundrobin"));
    });
}

#[test]
fn generation_and_member_errors() {
    run(|| async {
        let (c, _) = coordinator();
        let (member, generation) = stable_single(&c, "g").await;
        assert_eq!(
            heartbeat(&c, "g", generation + 7, &member).await,
            ILLEGAL_GENERATION
        );
        assert_eq!(
            heartbeat(&c, "g", generation, "stranger").await,
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            heartbeat(&c, "nope", generation, &member).await,
            UNKNOWN_MEMBER_ID
        );
        let bad_sync = c
            .sync_group(sync_req("g", generation - 1, &member, &[]), 3)
            .await;
        assert_eq!(bad_sync.error_code, ILLEGAL_GENERATION);
        let bad_commit = c
            .offset_commit(
                commit_req("g", generation + 1, &member, &[("t", 0, 5, None)]),
                7,
            )
            .await;
        assert_eq!(commit_codes(&bad_commit), vec![ILLEGAL_GENERATION]);
        let unknown_commit = c
            .offset_commit(
                commit_req("g", generation, "stranger", &[("t", 0, 5, None)]),
                7,
            )
            .await;
        assert_eq!(commit_codes(&unknown_commit), vec![UNKNOWN_MEMBER_ID]);
        let unknown_join = c
            .join_group(join_req("g", "stranger", None, &range()), 5)
            .await;
        assert_eq!(unknown_join.error_code, UNKNOWN_MEMBER_ID);
        let inconsistent = c
            .join_group(join_req("g", "", None, &[("roundrobin", b"")]), 3)
            .await;
        assert_eq!(inconsistent.error_code, INCONSISTENT_GROUP_PROTOCOL);
        let mut too_short = join_req("g", "", None, &range());
        too_short.session_timeout_ms = 1;
        assert_eq!(
            c.join_group(too_short, 3).await.error_code,
            INVALID_SESSION_TIMEOUT
        );
    });
}

#[test]
fn member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    run(|| async {
        let (c, _) = coordinator();
        let r1 = c.join_group(join_req("g", "", None, &range()), 3).await;
        let m1 = r1.member_id.to_string();
        c.sync_group(sync_req("g", r1.generation_id, &m1, &[]), 3)
            .await;
        // A newcomer starts a rebalance; m1 keeps heartbeating (so its session stays alive) but never rejoins.
        let j2 = spawn_join(&c, join_req("g", "", None, &range()), 3);
        let keep_alive = {
            let c = c.clone();
            let m1 = m1.clone();
            glommio::spawn_local(async move {
                for _ in 0..10 {
                    heartbeat(&c, "g", 1, &m1).await;
                    sleep(Duration::from_millis(SESSION_MS as u64 / 3)).await;
                }
            })
        };
        let r2 = j2.await;
        assert_eq!(r2.error_code, NONE);
        assert_eq!(r2.generation_id, 2);
        assert_eq!(
            r2.members.len(),
            1,
            "m1 was dropped after the rebalance timeout"
        );
        assert_eq!(r2.leader, r2.member_id);
        keep_alive.await;
    });
}

#[test]
fn protocol_vote_prefers_what_most_members_want() {
    run(|| async {
        let (c, _) = coordinator();
        let a = c
            .join_group(
                join_req("g", "", None, &[("range", b""), ("sticky", b"")]),
                3,
            )
            .await;
        let ma = a.member_id.to_string();
        let jb = spawn_join(
            &c,
            join_req("g", "", None, &[("sticky", b""), ("range", b"")]),
            3,
        );
        let jc = spawn_join(
            &c,
            join_req(
                "g",
                "",
                None,
                &[("sticky", b""), ("range", b""), ("rr", b"")],
            ),
            3,
        );
        sleep(Duration::from_millis(5)).await;
        let ra = c
            .join_group(
                join_req("g", &ma, None, &[("range", b""), ("sticky", b"")]),
                3,
            )
            .await;
        assert_eq!(ra.protocol_name.as_deref(), Some("sticky"));
        assert_eq!(jb.await.protocol_name.as_deref(), Some("sticky"));
        jc.await;
    });
}

#[test]
fn offsets_commit_fetch_round_trip() {
    run(|| async {
        let (c, store) = coordinator();
        // A standalone consumer (assign) commits with generation -1 to an unknown group.
        let committed = c
            .offset_commit(
                commit_req(
                    "solo",
                    -1,
                    "",
                    &[
                        ("t", 0, 10, Some("meta-0")),
                        ("t", 1, 11, None),
                        ("u", 0, 3, Some("")),
                    ],
                ),
                7,
            )
            .await;
        assert_eq!(commit_codes(&committed), vec![NONE, NONE, NONE]);
        assert_eq!(store.len(), 3);
        let got = c
            .offset_fetch(fetch_req("solo", Some(&[("t", &[0, 1, 2])])), 5)
            .await;
        assert_eq!(got.error_code, NONE);
        assert_eq!(
            fetched(&got),
            vec![
                ("t".into(), 0, 10, "meta-0".into()),
                ("t".into(), 1, 11, "".into()),
                ("t".into(), 2, -1, "".into()),
            ]
        );
        let all = c.offset_fetch(fetch_req("solo", None), 5).await;
        assert_eq!(fetched(&all).len(), 3);
        let unknown = c
            .offset_fetch(fetch_req("nobody", Some(&[("t", &[0])])), 5)
            .await;
        assert_eq!(fetched(&unknown), vec![("t".into(), 0, -1, "".into())]);
        assert_eq!(
            c.committed_offsets("solo"),
            vec![("t".into(), 0, 10), ("t".into(), 1, 11), ("u".into(), 0, 3)]
        );
        // A commit with a generation to a group that does not exist is from a stale member.
        let stale = c
            .offset_commit(commit_req("other", 3, "m", &[("t", 0, 1, None)]), 7)
            .await;
        assert_eq!(commit_codes(&stale), vec![ILLEGAL_GENERATION]);
        let long = "x".repeat(5_000);
        let too_large = c
            .offset_commit(commit_req("solo", -1, "", &[("t", 0, 99, Some(&long))]), 7)
            .await;
        assert_eq!(commit_codes(&too_large), vec![OFFSET_METADATA_TOO_LARGE]);
        assert_eq!(c.committed_offsets("solo")[0].2, 10);

        // Members of a live group commit with their generation.
        let (member, generation) = stable_single(&c, "live").await;
        let ok = c
            .offset_commit(
                commit_req("live", generation, &member, &[("t", 0, 42, Some("m"))]),
                7,
            )
            .await;
        assert_eq!(commit_codes(&ok), vec![NONE]);
        // v8 batched fetch.
        let mut batched = OffsetFetchRequest::default();
        let mut g =
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = s("live").into();
        g.topics = None;
        batched.groups = vec![g];
        let got = c.offset_fetch(batched, 8).await;
        assert_eq!(got.groups[0].topics[0].partitions[0].committed_offset, 42);
    });
}

#[test]
fn offsets_survive_a_restart_over_the_same_store() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let first = GroupCoordinator::new(test_config(), store.clone());
        first
            .offset_commit(
                commit_req("g", -1, "", &[("t", 0, 5, Some("a")), ("t", 1, 6, None)]),
                7,
            )
            .await;
        first
            .offset_commit(commit_req("g", -1, "", &[("t", 0, 7, Some("b"))]), 7)
            .await;
        first
            .offset_commit(commit_req("gone", -1, "", &[("t", 0, 1, None)]), 7)
            .await;
        assert_eq!(first.delete_group("gone").await, NONE);
        drop(first);

        let second = GroupCoordinator::open(test_config(), store.clone())
            .await
            .expect("recovery");
        assert_eq!(
            second.committed_offsets("g"),
            vec![("t".into(), 0, 7), ("t".into(), 1, 6)]
        );
        assert!(second.committed_offsets("gone").is_empty());
        let got = second
            .offset_fetch(fetch_req("g", Some(&[("t", &[0])])), 5)
            .await;
        assert_eq!(fetched(&got), vec![("t".into(), 0, 7, "b".into())]);
        assert_eq!(second.describe_group("g").group_state.as_str(), "Empty");
        assert_eq!(second.describe_group("gone").group_state.as_str(), "Dead");
    });
}

#[test]
fn delete_group_only_when_empty() {
    run(|| async {
        let (c, _) = coordinator();
        let (member, generation) = stable_single(&c, "g").await;
        c.offset_commit(
            commit_req("g", generation, &member, &[("t", 0, 1, None)]),
            7,
        )
        .await;
        assert_eq!(c.delete_group("g").await, NON_EMPTY_GROUP);
        assert_eq!(c.delete_group("missing").await, GROUP_ID_NOT_FOUND);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = s("g").into();
        leave.member_id = s(&member);
        assert_eq!(c.leave_group(leave, 1).await.error_code, NONE);
        assert_eq!(c.describe_group("g").group_state.as_str(), "Empty");
        assert_eq!(c.list_groups(&["empty".to_string()]).len(), 1);
        assert_eq!(c.delete_group("g").await, NONE);
        assert_eq!(c.delete_group("g").await, GROUP_ID_NOT_FOUND);
        assert!(c.list_groups(&[]).is_empty());
    });
}

#[test]
fn offset_delete_respects_subscriptions() {
    run(|| async {
        let (c, _) = coordinator();
        // Consumer protocol subscription v0 to topic "t": version, topics ["t"], user data null.
        let subscription: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let joined = c
            .join_group(join_req("g", "", None, &[("range", subscription)]), 3)
            .await;
        let member = joined.member_id.to_string();
        c.sync_group(sync_req("g", joined.generation_id, &member, &[]), 3)
            .await;
        c.offset_commit(
            commit_req(
                "g",
                joined.generation_id,
                &member,
                &[("t", 0, 1, None), ("u", 0, 2, None)],
            ),
            7,
        )
        .await;
        let mut req = OffsetDeleteRequest::default();
        req.group_id = s("g").into();
        req.topics = ["t", "u"]
            .iter()
            .map(|name| {
                let mut topic = OffsetDeleteRequestTopic::default();
                topic.name = s(name).into();
                let mut partition = OffsetDeleteRequestPartition::default();
                partition.partition_index = 0;
                topic.partitions = vec![partition];
                topic
            })
            .collect();
        let response = c.offset_delete(req.clone()).await;
        assert_eq!(response.error_code, NONE);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            GROUP_SUBSCRIBED_TO_TOPIC
        );
        assert_eq!(response.topics[1].partitions[0].error_code, NONE);
        assert_eq!(c.committed_offsets("g"), vec![("t".into(), 0, 1)]);
        req.group_id = s("missing").into();
        assert_eq!(c.offset_delete(req).await.error_code, GROUP_ID_NOT_FOUND);
    });
}

#[test]
fn expired_offsets_of_empty_groups_are_tombstoned() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let config = GroupConfig {
            offsets_retention_ms: 0,
            ..test_config()
        };
        let c = GroupCoordinator::new(config, store.clone());
        c.offset_commit(commit_req("g", -1, "", &[("t", 0, 5, None)]), 7)
            .await;
        assert_eq!(c.expire_offsets().await.expect("sweep"), 1);
        assert!(c.committed_offsets("g").is_empty());
        assert!(c.list_groups(&[]).is_empty());
        assert_eq!(store.len(), 2, "commit then tombstone");
    });
}

fn encodes<M: Encodable + Message>(message: &M, version: i16) {
    if version < M::VERSIONS.min || version > M::VERSIONS.max {
        return;
    }
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("version {version}: {e}"));
}

#[test]
fn every_response_encodes_at_every_version() {
    run(|| async {
        let (c, _) = coordinator();
        for version in 0..=9 {
            let group = format!("g{version}");
            let mut joined = c
                .join_group(join_req(&group, "", Some("i"), &range()), version)
                .await;
            if joined.error_code == MEMBER_ID_REQUIRED {
                let id = joined.member_id.to_string();
                encodes(&joined, version);
                joined = c
                    .join_group(join_req(&group, &id, Some("i"), &range()), version)
                    .await;
            }
            assert_eq!(joined.error_code, NONE, "join v{version}");
            encodes(&joined, version);
            let member = joined.member_id.to_string();
            if version <= 5 {
                let synced = c
                    .sync_group(
                        sync_req(&group, joined.generation_id, &member, &[]),
                        version,
                    )
                    .await;
                encodes(&synced, version);
                encodes(
                    &c.sync_group(sync_req(&group, 99, &member, &[]), version)
                        .await,
                    version,
                );
            }
            if version <= 4 {
                let mut hb = HeartbeatRequest::default();
                hb.group_id = s(&group).into();
                hb.member_id = s(&member);
                encodes(&c.heartbeat(hb, version).await, version);
            }
            let commit = c
                .offset_commit(
                    commit_req(&group, joined.generation_id, &member, &[("t", 0, 1, None)]),
                    version,
                )
                .await;
            encodes(&commit, version);
            if version <= 7 {
                encodes(
                    &c.offset_fetch(fetch_req(&group, Some(&[("t", &[0, 1])])), version)
                        .await,
                    version,
                );
            }
            if version <= 5 {
                let mut leave = LeaveGroupRequest::default();
                leave.group_id = s(&group).into();
                leave.member_id = s("nobody");
                let mut identity = MemberIdentity::default();
                identity.member_id = s("nobody");
                leave.members = if version >= 3 {
                    vec![identity]
                } else {
                    Vec::new()
                };
                encodes(&c.leave_group(leave, version).await, version);
            }
        }
        let mut described = DescribeGroupsResponse::default();
        described.groups = vec![c.describe_group("g3"), c.describe_group("missing")];
        let mut listed = ListGroupsResponse::default();
        listed.groups = c.list_groups(&[]);
        for version in 0..=6 {
            encodes(&described, version);
            encodes(&listed, version);
        }
    });
}

/// A store over `dir` owning offsets `partition`, with small segments and compaction from 4 KiB on.
async fn compacting_store(dir: &std::path::Path, partition: i32) -> LogOffsetStore {
    LogOffsetStore::open(
        dir,
        &[partition],
        OFFSETS_TOPIC_PARTITIONS,
        small_log_config(),
    )
    .await
    .expect("open store")
    .with_compaction_min_bytes(4096)
}

/// Runs the offsets sweep (which compacts `partition`'s log) and checks the log shrank to less
/// than `1 / factor` of its size.
async fn sweep_and_check_compacted(
    c: &GroupCoordinator,
    store: &LogOffsetStore,
    partition: i32,
    factor: u64,
) {
    let before = store.log(partition).expect("owned").size_bytes();
    c.expire_offsets().await.expect("sweep and compaction");
    let after = store.log(partition).expect("owned").size_bytes();
    assert!(
        after * factor < before,
        "compaction shrank {before} bytes only to {after}"
    );
}

fn small_log_config() -> crate::storage::LogConfig {
    crate::storage::LogConfig {
        segment_bytes: 8 << 10,
        index_interval_bytes: 256,
        flush: crate::storage::FlushPolicy::Never,
        // No tail cache: replay reads segment files, the path a restarted broker takes.
        tail_cache_bytes: 0,
        max_inflight_writes: 4,
        write_buffer_bytes: 8 << 10,
        preallocate: false,
        high_watermark_follows_log_end: true,
    }
}

#[test]
fn offsets_survive_a_restart_over_partition_logs() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let groups: Vec<String> = (0..6).map(|i| format!("group-{i}")).collect();
        let mut owned: Vec<i32> = groups
            .iter()
            .map(|g| offsets_partition_for(g, OFFSETS_TOPIC_PARTITIONS))
            .collect();
        owned.sort_unstable();
        owned.dedup();
        {
            let store = LogOffsetStore::open(
                temp.path(),
                &owned,
                OFFSETS_TOPIC_PARTITIONS,
                small_log_config(),
            )
            .await
            .expect("open store");
            let c = GroupCoordinator::open(test_config(), Rc::new(store))
                .await
                .expect("open");
            // Enough commits to roll several 8 KiB segments.
            for round in 0..40i64 {
                for group in &groups {
                    let metadata = format!("round {round}");
                    let req = commit_req(
                        group,
                        -1,
                        "",
                        &[
                            ("orders", 0, round, Some(&metadata)),
                            ("orders", 1, round * 2, None),
                        ],
                    );
                    assert_eq!(
                        commit_codes(&c.offset_commit(req, 7).await),
                        vec![NONE, NONE]
                    );
                }
            }
            assert_eq!(c.delete_group("group-5").await, NONE);
            // A group whose partition this shard does not own is refused, not silently lost.
            let foreign = (0..1000)
                .map(|i| format!("foreign-{i}"))
                .find(|g| !owned.contains(&offsets_partition_for(g, OFFSETS_TOPIC_PARTITIONS)))
                .expect("some group maps elsewhere");
            let refused = c
                .offset_commit(commit_req(&foreign, -1, "", &[("t", 0, 1, None)]), 7)
                .await;
            assert_eq!(commit_codes(&refused), vec![NOT_COORDINATOR]);
            assert!(c.committed_offsets(&foreign).is_empty());
        }
        let store = LogOffsetStore::open(
            temp.path(),
            &owned,
            OFFSETS_TOPIC_PARTITIONS,
            small_log_config(),
        )
        .await
        .expect("reopen store");
        let c = GroupCoordinator::open(test_config(), Rc::new(store))
            .await
            .expect("recover");
        for group in &groups[..5] {
            assert_eq!(
                c.committed_offsets(group),
                vec![("orders".into(), 0, 39), ("orders".into(), 1, 78)],
                "{group}"
            );
            let got = c
                .offset_fetch(fetch_req(group, Some(&[("orders", &[0, 1])])), 5)
                .await;
            assert_eq!(fetched(&got)[0].3, "round 39");
            assert_eq!(fetched(&got)[1].3, "");
        }
        assert!(c.committed_offsets("group-5").is_empty());
        assert_eq!(c.describe_group("group-5").group_state.as_str(), "Dead");
    });
}

#[test]
fn compaction_keeps_only_live_offsets_and_survives_restart() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        let open_store = || compacting_store(temp.path(), partition);
        {
            let store = Rc::new(open_store().await);
            let c = GroupCoordinator::open(test_config(), store.clone())
                .await
                .expect("open");
            for round in 0..200i64 {
                let req = commit_req(
                    "g",
                    -1,
                    "",
                    &[("t", 0, round, Some("m")), ("t", 1, round, None)],
                );
                assert_eq!(
                    commit_codes(&c.offset_commit(req, 7).await),
                    vec![NONE, NONE]
                );
            }
            let before = store.log(partition).expect("owned").size_bytes();
            assert_eq!(
                c.expire_offsets().await.expect("sweep"),
                0,
                "nothing is old enough to expire"
            );
            let after = store.log(partition).expect("owned").size_bytes();
            assert!(
                after * 10 < before,
                "compaction shrank {before} bytes only to {after}"
            );
            // Commits after the swap land in the new log.
            c.offset_commit(commit_req("g", -1, "", &[("t", 0, 1_000, Some("late"))]), 7)
                .await;
            store.close().await.expect("close");
        }
        // Debris of a compaction interrupted before completion is discarded at open.
        let debris = temp
            .path()
            .join(format!("{OFFSETS_TOPIC_NAME}-{partition}.compacting"));
        std::fs::create_dir_all(&debris).expect("debris dir");
        std::fs::write(debris.join("00000000000000000000.log"), b"torn").expect("debris file");
        let store = Rc::new(open_store().await);
        assert!(!debris.exists());
        let c = GroupCoordinator::open(test_config(), store)
            .await
            .expect("recover");
        assert_eq!(
            c.committed_offsets("g"),
            vec![("t".into(), 0, 1_000), ("t".into(), 1, 199)]
        );
        let got = c
            .offset_fetch(fetch_req("g", Some(&[("t", &[0])])), 5)
            .await;
        assert_eq!(fetched(&got)[0].3, "late");
    });
}

#[test]
fn initial_delay_gathers_a_starting_fleet_into_one_generation() {
    run(|| async {
        let config = GroupConfig {
            initial_rebalance_delay_ms: 200,
            ..test_config()
        };
        let c = GroupCoordinator::new(config, Rc::new(MemoryOffsetStore::new()));
        let (j1, _) = two_step_join(&c, "g").await;
        sleep(Duration::from_millis(50)).await;
        let (j2, _) = two_step_join(&c, "g").await;
        let (j3, _) = two_step_join(&c, "g").await;
        let responses = [j1.await, j2.await, j3.await];
        for r in &responses {
            assert_eq!((r.error_code, r.generation_id), (NONE, 1));
        }
        assert_eq!(
            responses.iter().map(|r| r.members.len()).sum::<usize>(),
            3,
            "one leader sees all three"
        );
    });
}

#[test]
fn members_that_never_sync_are_removed() {
    run(|| async {
        let (c, _) = coordinator();
        let r1 = c.join_group(join_req("g", "", None, &range()), 3).await;
        let m1 = r1.member_id.to_string();
        c.sync_group(sync_req("g", r1.generation_id, &m1, &[]), 3)
            .await;
        let j2 = spawn_join(&c, join_req("g", "", None, &range()), 3);
        let r1 = c.join_group(join_req("g", &m1, None, &range()), 3).await;
        let r2 = j2.await;
        let m2 = r2.member_id.to_string();
        assert_eq!(r1.leader.as_str(), m1);
        // The follower syncs and waits; the leader never sends its assignment.
        let follower = c
            .sync_group(sync_req("g", r2.generation_id, &m2, &[]), 3)
            .await;
        assert_eq!(
            follower.error_code, REBALANCE_IN_PROGRESS,
            "released when the late leader is dropped"
        );
        let rejoined = c.join_group(join_req("g", &m2, None, &range()), 3).await;
        assert_eq!(rejoined.error_code, NONE);
        assert_eq!(rejoined.generation_id, r2.generation_id + 1);
        assert_eq!(rejoined.leader.as_str(), m2);
        assert_eq!(
            heartbeat(&c, "g", rejoined.generation_id, &m1).await,
            UNKNOWN_MEMBER_ID
        );
    });
}

#[test]
fn join_group_v0_uses_the_session_timeout_as_rebalance_timeout() {
    run(|| async {
        let (c, _) = coordinator();
        let mut req = join_req("g", "", None, &range());
        req.rebalance_timeout_ms = 60_000; // not on the wire in v0: must be ignored
        let r1 = c.join_group(req, 0).await;
        let m1 = r1.member_id.to_string();
        c.sync_group(sync_req("g", r1.generation_id, &m1, &[]), 0)
            .await;
        let started = std::time::Instant::now();
        let keep_alive = {
            let (c, m1) = (c.clone(), m1.clone());
            glommio::spawn_local(async move {
                for _ in 0..6 {
                    heartbeat(&c, "g", 1, &m1).await;
                    sleep(Duration::from_millis(SESSION_MS as u64 / 3)).await;
                }
            })
        };
        let r2 = c.join_group(join_req("g", "", None, &range()), 0).await;
        assert_eq!(r2.members.len(), 1, "m1 did not rejoin and was dropped");
        assert!(
            started.elapsed() < Duration::from_millis(5_000),
            "bounded by the session timeout"
        );
        keep_alive.await;
    });
}

#[test]
fn offsets_partitions_never_preallocate_big_segments() {
    let broker = crate::storage::LogConfig::default();
    let offsets = offsets_log_config(&broker);
    assert!(!offsets.preallocate);
    assert!(offsets.segment_bytes <= OFFSETS_SEGMENT_BYTES);
    assert!(offsets.tail_cache_bytes < broker.tail_cache_bytes);
    assert_eq!(offsets.flush, broker.flush);
    offsets.validate().expect("valid storage config");
}

#[test]
fn concurrent_commits_are_group_committed_in_order() {
    run(|| async {
        let store = Rc::new(MemoryOffsetStore::new());
        let c = GroupCoordinator::new(test_config(), store.clone());
        let tasks: Vec<_> = (0..200i64)
            .map(|i| {
                let c = c.clone();
                glommio::spawn_local(async move {
                    let req = commit_req("g", -1, "", &[("t", (i % 3) as i32, i, None)]);
                    commit_codes(&c.offset_commit(req, 7).await)
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await, vec![NONE]);
        }
        let expected = vec![
            ("t".into(), 0, 198),
            ("t".into(), 1, 199),
            ("t".into(), 2, 197),
        ];
        assert_eq!(c.committed_offsets("g"), expected);
        assert_eq!(store.len(), 200);
        let restarted = GroupCoordinator::open(test_config(), store)
            .await
            .expect("recover");
        assert_eq!(
            restarted.committed_offsets("g"),
            expected,
            "memory and log agree on the order"
        );
    });
}
