//! Consumer-protocol groups (KIP-848) through the coordinator's public API, with simulated clients that
//! do what the Java consumer does: heartbeat with their epoch, report the partitions they own, give up
//! revoked partitions at once and take new ones as the answers bring them.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as HbTopicPartitions;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use uuid::Uuid;

use super::*;
use crate::metadata::{TopicMeta, TopicTable};

const CONSUMER_SESSION_MS: u64 = 1_000;
const REBALANCE_TIMEOUT_MS: i32 = 300;

fn consumer_config() -> GroupConfig {
    GroupConfig {
        consumer_session_timeout_ms: CONSUMER_SESSION_MS,
        consumer_regex_refresh_interval_ms: 0,
        ..test_config()
    }
}

fn consumer_coordinator() -> (GroupCoordinator, Rc<MemoryOffsetStore>) {
    let store = Rc::new(MemoryOffsetStore::new());
    (
        GroupCoordinator::new(consumer_config(), store.clone()),
        store,
    )
}

fn topic_id(name: &str) -> Uuid {
    let mut id = [0u8; 16];
    for (i, b) in name.bytes().enumerate() {
        id[i % 16] ^= b.wrapping_add(i as u8);
    }
    id[15] |= 1;
    Uuid::from_bytes(id)
}

fn table(topics: &[(&str, i32)]) -> TopicTable {
    let mut table = TopicTable::default();
    for (name, partitions) in topics {
        table.topics.insert(
            name.to_string(),
            TopicMeta {
                id: *topic_id(name).as_bytes(),
                partitions: *partitions,
                configs: Default::default(),
                assignments: Vec::new(),
            },
        );
    }
    table
}

type Owned = BTreeMap<Uuid, BTreeSet<i32>>;

/// One simulated consumer-protocol client.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    epoch: i32,
    owned: Owned,
    instance: Option<String>,
    topics: Vec<String>,
    regex: Option<String>,
    assignor: Option<String>,
}

impl Client {
    fn new(member_id: &str, topics: &[&str]) -> Self {
        Self {
            member_id: member_id.to_string(),
            epoch: 0,
            owned: Owned::new(),
            instance: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            regex: None,
            assignor: None,
        }
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }

    fn request(&self, group: &str) -> ConsumerGroupHeartbeatRequest {
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = s(group).into();
        req.member_id = s(&self.member_id);
        req.member_epoch = self.epoch;
        req.instance_id = self.instance.as_deref().map(s);
        req.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
        if self.regex.is_some() {
            req.subscribed_topic_regex = self.regex.as_deref().map(s);
        } else {
            req.subscribed_topic_names = Some(self.topics.iter().map(|t| s(t).into()).collect());
        }
        req.server_assignor = self.assignor.as_deref().map(s);
        req.topic_partitions = Some(
            self.owned
                .iter()
                .map(|(id, ps)| {
                    let mut t = HbTopicPartitions::default();
                    t.topic_id = *id;
                    t.partitions = ps.iter().copied().collect();
                    t
                })
                .collect(),
        );
        req
    }

    /// Heartbeats once and applies the answer like the Java client: the new assignment replaces what
    /// it owns (revoked partitions are given up at once).
    async fn beat(&mut self, c: &GroupCoordinator, group: &str, topics: &TopicTable) -> i16 {
        let response = c
            .consumer_group_heartbeat(self.request(group), 1, &ClientInfo::default(), topics)
            .await;
        if response.error_code != NONE {
            return response.error_code;
        }
        self.epoch = response.member_epoch;
        if let Some(assignment) = response.assignment {
            self.owned = assignment
                .topic_partitions
                .iter()
                .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                .collect();
        }
        NONE
    }
}

/// Heartbeats every client in turn until a round changes nothing; checks after every heartbeat that no
/// partition is owned by two clients. Returns the number of rounds.
async fn converge(
    c: &GroupCoordinator,
    group: &str,
    topics: &TopicTable,
    clients: &mut [Client],
) -> usize {
    for round in 1..=20 {
        let before: Vec<(i32, Owned)> =
            clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
        for i in 0..clients.len() {
            assert_eq!(
                clients[i].beat(c, group, topics).await,
                NONE,
                "{}",
                clients[i].member_id
            );
            let mut seen = BTreeSet::new();
            for client in clients.iter() {
                for (t, ps) in &client.owned {
                    for p in ps {
                        assert!(
                            seen.insert((*t, *p)),
                            "{t}-{p} owned by two clients at once"
                        );
                    }
                }
            }
        }
        let after: Vec<(i32, Owned)> = clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
        if before == after {
            return round;
        }
    }
    panic!("group did not converge: {clients:?}");
}

fn moved(before: &[Client], after: &[Client]) -> usize {
    after
        .iter()
        .map(|a| {
            let old = before.iter().find(|b| b.member_id == a.member_id);
            a.owned
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .filter(|(t, p)| {
                    !old.is_some_and(|o| o.owned.get(t).is_some_and(|s| s.contains(p)))
                })
                .count()
        })
        .sum()
}

#[test]
fn members_share_partitions_and_a_joiner_takes_only_its_share() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 12)]);
        let mut clients: Vec<Client> = (1..=3)
            .map(|i| Client::new(&format!("m{i}"), &["orders"]))
            .collect();
        converge(&c, "g", &topics, &mut clients).await;
        assert!(clients.iter().all(|m| m.count() == 4), "{clients:?}");
        let described = c.consumer_group_describe("g", &topics);
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.assignor_name.as_str(), "uniform");

        let before = clients.clone();
        clients.push(Client::new("m4", &["orders"]));
        converge(&c, "g", &topics, &mut clients).await;
        assert!(clients.iter().all(|m| m.count() == 3), "{clients:?}");
        assert_eq!(
            moved(&before, &clients),
            3,
            "only the newcomer's share moved"
        );
        let epochs: BTreeSet<i32> = clients.iter().map(|m| m.epoch).collect();
        assert_eq!(epochs.len(), 1, "everyone at the same epoch: {epochs:?}");

        // A member leaving: its partitions go to the others, nothing else moves.
        let mut leaver = clients.remove(1);
        leaver.epoch = -1;
        assert_eq!(leaver.beat(&c, "g", &topics).await, NONE);
        let before = clients.clone();
        converge(&c, "g", &topics, &mut clients).await;
        assert!(clients.iter().all(|m| m.count() == 4), "{clients:?}");
        assert_eq!(moved(&before, &clients), 3);
    });
}

#[test]
fn epochs_from_the_future_or_the_past_are_fenced() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 4)]);
        let mut clients = vec![Client::new("a", &["orders"]), Client::new("b", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        let a = &clients[0];
        let mut future = a.clone();
        future.epoch += 1;
        assert_eq!(future.beat(&c, "g", &topics).await, FENCED_MEMBER_EPOCH);
        let mut past = a.clone();
        past.epoch = 1;
        past.owned.values_mut().for_each(|p| {
            p.insert(99);
        });
        assert_eq!(past.beat(&c, "g", &topics).await, FENCED_MEMBER_EPOCH);
        let mut stranger = a.clone();
        stranger.member_id = "nobody".into();
        assert_eq!(stranger.beat(&c, "g", &topics).await, UNKNOWN_MEMBER_ID);
        // The fenced requests changed nothing.
        let mut again = clients.clone();
        assert_eq!(converge(&c, "g", &topics, &mut again).await, 1);
        assert_eq!(again[0].owned, clients[0].owned);
    });
}

#[test]
fn bad_requests_get_kafkas_errors_and_leave_the_group_alone() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 4)]);
        let mut clients = vec![Client::new("a", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        let epoch_before = c.consumer_group_describe("g", &topics).group_epoch;

        let mut assignor = Client::new("x", &["orders"]);
        assignor.assignor = Some("sticky".into());
        assert_eq!(assignor.beat(&c, "g", &topics).await, UNSUPPORTED_ASSIGNOR);
        let mut regex = Client::new("y", &[]);
        regex.regex = Some("orders(".into());
        assert_eq!(
            regex.beat(&c, "g", &topics).await,
            INVALID_REGULAR_EXPRESSION
        );
        let mut no_id = Client::new("", &["orders"]);
        assert_eq!(
            no_id.beat(&c, "g", &topics).await,
            INVALID_REQUEST,
            "v1 needs a member id"
        );
        let mut bad_epoch = clients[0].clone();
        bad_epoch.epoch = -3;
        assert_eq!(bad_epoch.beat(&c, "g", &topics).await, INVALID_REQUEST);
        let mut no_timeout = Client::new("z", &["orders"]).request("g");
        no_timeout.rebalance_timeout_ms = -1;
        let answer = c
            .consumer_group_heartbeat(no_timeout, 1, &ClientInfo::default(), &topics)
            .await;
        assert_eq!(answer.error_code, INVALID_REQUEST);
        assert!(answer.error_message.is_some());

        let described = c.consumer_group_describe("g", &topics);
        assert_eq!(described.group_epoch, epoch_before);
        assert_eq!(described.members.len(), 1);
        let mut again = clients.clone();
        assert_eq!(converge(&c, "g", &topics, &mut again).await, 1);
    });
}

#[test]
fn range_is_chosen_by_the_members_and_lays_out_ranges() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("a", 4), ("b", 4)]);
        let mut clients: Vec<Client> = ["m1", "m2"]
            .iter()
            .map(|id| {
                let mut client = Client::new(id, &["a", "b"]);
                client.assignor = Some("range".into());
                client
            })
            .collect();
        converge(&c, "g", &topics, &mut clients).await;
        assert_eq!(
            c.consumer_group_describe("g", &topics)
                .assignor_name
                .as_str(),
            "range"
        );
        for name in ["a", "b"] {
            assert_eq!(clients[0].owned[&topic_id(name)], BTreeSet::from([0, 1]));
            assert_eq!(clients[1].owned[&topic_id(name)], BTreeSet::from([2, 3]));
        }
    });
}

#[test]
fn a_regex_subscription_follows_topics_as_they_appear() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let mut client = Client::new("m", &[]);
        client.regex = Some("orders-.*".into());
        let mut clients = vec![client];
        let topics = table(&[("orders-eu", 2), ("payments", 2), ("__orders-internal", 1)]);
        converge(&c, "g", &topics, &mut clients).await;
        assert_eq!(
            clients[0].owned.keys().copied().collect::<Vec<_>>(),
            vec![topic_id("orders-eu")]
        );
        let more = table(&[("orders-eu", 2), ("orders-us", 3), ("payments", 2)]);
        converge(&c, "g", &more, &mut clients).await;
        assert_eq!(clients[0].count(), 5, "orders-us joined the subscription");
        let described = c.consumer_group_describe("g", &more);
        assert_eq!(
            described.members[0].subscribed_topic_regex.as_deref(),
            Some("orders-.*")
        );
    });
}

#[test]
fn silent_members_and_slow_revokers_are_removed() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 4)]);
        let mut clients = vec![Client::new("a", &["orders"]), Client::new("b", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        // b goes silent; a keeps heartbeating and gets everything once b's session ends.
        let mut a = clients[0].clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while a.count() < 4 {
            assert!(std::time::Instant::now() < deadline, "b never expired");
            sleep(Duration::from_millis(50)).await;
            assert_eq!(a.beat(&c, "g", &topics).await, NONE);
        }
        // A newcomer; a is told to revoke half but never does (it keeps reporting all four).
        let mut newcomer = Client::new("n", &["orders"]);
        assert_eq!(newcomer.beat(&c, "g", &topics).await, NONE);
        let stubborn = a.clone();
        let mut req = stubborn.request("g");
        req.member_epoch = a.epoch;
        c.consumer_group_heartbeat(req, 1, &ClientInfo::default(), &topics)
            .await;
        sleep(Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 150)).await;
        let mut after = stubborn.clone();
        assert_eq!(
            after.beat(&c, "g", &topics).await,
            UNKNOWN_MEMBER_ID,
            "fenced after its rebalance timeout"
        );
        let mut rest = vec![newcomer];
        converge(&c, "g", &topics, &mut rest).await;
        assert_eq!(rest[0].count(), 4);
    });
}

#[test]
fn static_members_keep_their_partitions_across_their_restarts() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 4)]);
        let mut a = Client::new("a-1", &["orders"]);
        a.instance = Some("instance-a".into());
        let mut clients = vec![a, Client::new("b", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        let owned_before = clients[0].owned.clone();
        let epoch_before = c.consumer_group_describe("g", &topics).group_epoch;

        // The static member shuts down for a restart (epoch -2), then comes back under a new member id.
        let mut leaving = clients[0].clone();
        leaving.epoch = -2;
        assert_eq!(leaving.beat(&c, "g", &topics).await, NONE);
        let mut impostor = Client::new("a-x", &["orders"]);
        impostor.instance = Some("instance-b".into());
        let mut back = Client::new("a-2", &["orders"]);
        back.instance = Some("instance-a".into());
        assert_eq!(back.beat(&c, "g", &topics).await, NONE);
        assert_eq!(back.owned, owned_before, "same partitions, no rebalance");
        assert_eq!(
            c.consumer_group_describe("g", &topics).group_epoch,
            epoch_before
        );
        // The old incarnation is fenced; a second holder of the instance id is refused while it is held.
        assert_eq!(clients[0].beat(&c, "g", &topics).await, FENCED_INSTANCE_ID);
        let mut twin = Client::new("a-3", &["orders"]);
        twin.instance = Some("instance-a".into());
        assert_eq!(twin.beat(&c, "g", &topics).await, UNRELEASED_INSTANCE_ID);
        drop(impostor);
    });
}

#[test]
fn groups_convert_between_protocols_only_when_empty() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 2)]);
        // A classic group with a member cannot be joined with the consumer protocol.
        let (member, _) = stable_single(&c, "classic").await;
        let mut newcomer = Client::new("n", &["orders"]);
        assert_eq!(
            newcomer.beat(&c, "classic", &topics).await,
            GROUP_ID_NOT_FOUND
        );
        // Once it is empty, it converts, and its offsets stay.
        c.offset_commit(
            commit_req("classic", 1, &member, &[("orders", 0, 7, None)]),
            7,
        )
        .await;
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = s("classic").into();
        leave.member_id = s(&member);
        c.leave_group(leave, 0).await;
        sleep(Duration::from_millis(20)).await;
        let mut clients = vec![newcomer];
        converge(&c, "classic", &topics, &mut clients).await;
        assert_eq!(clients[0].count(), 2);
        assert_eq!(
            c.committed_offsets("classic"),
            vec![("orders".into(), 0, 7)]
        );
        assert_eq!(
            c.describe_group("classic").group_state.as_str(),
            "Dead",
            "not a classic group now"
        );
        let listed = c.list_groups(&[]);
        assert_eq!(listed[0].group_type.as_str(), "consumer");
        assert_eq!(listed[0].group_state.as_str(), "Stable");

        // A classic member cannot join while consumer members are there, nor can the group be deleted.
        let refused = c
            .join_group(join_req("classic", "", None, &range()), 5)
            .await;
        assert_eq!(refused.error_code, INCONSISTENT_GROUP_PROTOCOL);
        assert_eq!(c.delete_group("classic").await, NON_EMPTY_GROUP);
        // Empty again: a classic join converts it back.
        let mut leaver = clients.remove(0);
        leaver.epoch = -1;
        assert_eq!(leaver.beat(&c, "classic", &topics).await, NONE);
        let joined = c
            .join_group(join_req("classic", "", None, &range()), 3)
            .await;
        assert_eq!(joined.error_code, NONE);
        assert_eq!(
            c.consumer_group_describe("classic", &topics).error_code,
            GROUP_ID_NOT_FOUND
        );
    });
}

#[test]
fn offsets_are_committed_and_fetched_with_the_member_epoch() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 2)]);
        let mut clients = vec![Client::new("m", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        let epoch = clients[0].epoch;
        let ok = commit_req("g", epoch, "m", &[("orders", 0, 5, None)]);
        assert_eq!(commit_codes(&c.offset_commit(ok, 9).await), vec![NONE]);
        let stale = commit_req("g", epoch - 1, "m", &[("orders", 0, 6, None)]);
        assert_eq!(
            commit_codes(&c.offset_commit(stale, 9).await),
            vec![STALE_MEMBER_EPOCH]
        );
        let old_version = commit_req("g", epoch, "m", &[("orders", 0, 6, None)]);
        assert_eq!(
            commit_codes(&c.offset_commit(old_version, 8).await),
            vec![UNSUPPORTED_VERSION]
        );
        let stranger = commit_req("g", epoch, "x", &[("orders", 0, 6, None)]);
        assert_eq!(
            commit_codes(&c.offset_commit(stranger, 9).await),
            vec![UNKNOWN_MEMBER_ID]
        );
        assert_eq!(c.committed_offsets("g"), vec![("orders".into(), 0, 5)]);

        let fetch = |member: Option<&str>, epoch: i32| {
            let mut group = OffsetFetchRequestGroup::default();
            group.group_id = s("g").into();
            group.member_id = member.map(s);
            group.member_epoch = epoch;
            group.topics = None;
            let mut req = OffsetFetchRequest::default();
            req.groups = vec![group];
            req
        };
        let got = c.offset_fetch(fetch(Some("m"), epoch), 9).await;
        assert_eq!(got.groups[0].error_code, NONE);
        assert_eq!(got.groups[0].topics[0].partitions[0].committed_offset, 5);
        let got = c.offset_fetch(fetch(Some("m"), epoch + 1), 9).await;
        assert_eq!(got.groups[0].error_code, STALE_MEMBER_EPOCH);
        let admin = c.offset_fetch(fetch(None, -1), 9).await;
        assert_eq!(admin.groups[0].error_code, NONE);
    });
}

#[test]
fn consumer_groups_survive_a_restart_and_compaction() {
    run(|| async {
        let temp = tempfile::tempdir().expect("temp dir");
        let partition = offsets_partition_for("g", OFFSETS_TOPIC_PARTITIONS);
        let open_store = || compacting_store(temp.path(), partition);
        let topics = table(&[("orders", 6)]);
        let mut clients: Vec<Client> = {
            let store = Rc::new(open_store().await);
            let c = GroupCoordinator::open(consumer_config(), store.clone())
                .await
                .expect("open");
            let mut clients: Vec<Client> = (1..=2)
                .map(|i| Client::new(&format!("m{i}"), &["orders"]))
                .collect();
            converge(&c, "g", &topics, &mut clients).await;
            // Churn: a third member joins and leaves many times, growing the log.
            for _ in 0..30 {
                let mut extra = vec![
                    clients[0].clone(),
                    clients[1].clone(),
                    Client::new("m3", &["orders"]),
                ];
                converge(&c, "g", &topics, &mut extra).await;
                let mut leaver = extra.pop().expect("three");
                leaver.epoch = -1;
                assert_eq!(leaver.beat(&c, "g", &topics).await, NONE);
                converge(&c, "g", &topics, &mut extra).await;
                clients = extra;
            }
            sweep_and_check_compacted(&c, &store, partition, 4).await;
            store.close().await.expect("close");
            clients
        };
        let c = GroupCoordinator::open(consumer_config(), Rc::new(open_store().await))
            .await
            .expect("recover");
        let described = c.consumer_group_describe("g", &topics);
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.members.len(), 2);
        let before: Vec<(i32, Owned)> =
            clients.iter().map(|m| (m.epoch, m.owned.clone())).collect();
        assert_eq!(
            converge(&c, "g", &topics, &mut clients).await,
            1,
            "nothing moves after the restart"
        );
        let after: Vec<(i32, Owned)> = clients.iter().map(|m| (m.epoch, m.owned.clone())).collect();
        assert_eq!(before, after);
    });
}

#[test]
fn consumer_responses_encode_at_every_version() {
    run(|| async {
        let (c, _) = consumer_coordinator();
        let topics = table(&[("orders", 3)]);
        let mut clients = vec![Client::new("m", &["orders"])];
        converge(&c, "g", &topics, &mut clients).await;
        let response = c
            .consumer_group_heartbeat(clients[0].request("g"), 1, &ClientInfo::default(), &topics)
            .await;
        let described = ConsumerGroupDescribeResponse::default().with_groups(vec![
            c.consumer_group_describe("g", &topics),
            c.consumer_group_describe("none", &topics),
        ]);
        for version in 0..=1 {
            encodes(&response, version);
            encodes(&described, version);
        }
    });
}
