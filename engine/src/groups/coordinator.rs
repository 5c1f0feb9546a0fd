//! The public face of one shard's group coordinator: typed async handlers the server calls with decoded
//! Kafka requests, the shared state they work on, recovery of committed offsets at start-up, and the
//! background offset-retention sweep.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use glommio::sync::Semaphore;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribedGroup;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::config::GroupConfig;
use super::error::GroupError;
use super::group::Group;
use super::partitioner::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
use super::persist_queue::QueuedPersist;
use super::responses;
use super::store::{OffsetStore, TxnMarkerRecord};
use super::txn_offsets::PendingTxnOffsets;
use super::waiter::Reply;
use crate::metadata::TopicTable;

/// Who sent a JoinGroup (from the request header and the socket): shown by DescribeGroups and used as the
/// prefix of new member ids, as Kafka does.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

/// State shared by the handlers and the timer tasks (which hold a `Weak` to it, so dropping the
/// coordinator stops them).
pub(crate) struct Inner {
    pub config: GroupConfig,
    pub store: Rc<dyn OffsetStore>,
    pub groups: RefCell<HashMap<String, Group>>,
    /// Serialises persist-then-apply of offset changes so the in-memory view applies them in log order.
    pub persist_lock: Semaphore,
    /// Offset changes waiting for the flusher (see `persist_queue`).
    pub persist_queue: RefCell<Vec<QueuedPersist>>,
    /// Whether a flusher task is draining `persist_queue`.
    pub flusher_running: Cell<bool>,
    /// Offsets of open transactions, by producer (see `txn_offsets`).
    pub pending_txn: RefCell<PendingTxnOffsets>,
}

/// The consumer-group coordinator of one shard. Cheap to clone (shares its state); lives on one glommio
/// executor and must only be used there.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Rc<Inner>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl GroupCoordinator {
    /// A coordinator with no groups, over `store`; call [`GroupCoordinator::recover`] (or use
    /// [`GroupCoordinator::open`]) before serving so committed offsets come back.
    pub fn new(config: GroupConfig, store: Rc<dyn OffsetStore>) -> Self {
        assert!(
            config.session_timeout_min_ms <= config.session_timeout_max_ms,
            "session timeout bounds inverted"
        );
        assert!(
            config.group_members_max > 0,
            "group_members_max must be positive"
        );
        Self {
            inner: Rc::new(Inner {
                config,
                store,
                groups: RefCell::new(HashMap::new()),
                persist_lock: Semaphore::new(1),
                persist_queue: RefCell::new(Vec::new()),
                flusher_running: Cell::new(false),
                pending_txn: RefCell::new(PendingTxnOffsets::default()),
            }),
        }
    }

    /// [`GroupCoordinator::new`] + [`GroupCoordinator::recover`] + the offset-retention sweep task. Must
    /// run inside the shard's glommio executor.
    pub async fn open(config: GroupConfig, store: Rc<dyn OffsetStore>) -> Result<Self, GroupError> {
        let coordinator = Self::new(config, store);
        coordinator.recover().await?;
        coordinator.spawn_retention_sweep();
        Ok(coordinator)
    }

    /// Replays the store: last write per key wins (offsets by group, topic and partition; metadata by
    /// group), tombstones delete; then groups with stored metadata get their members back, each member's
    /// session running from now. Returns the number of committed offsets recovered.
    pub async fn recover(&self) -> Result<usize, GroupError> {
        let records = self.inner.store.load_all().await?;
        let (now, now_ms) = (Instant::now(), now_ms());
        let offsets = self.inner.replay_records(&records, now, now_ms);
        let members = self.inner.restore_groups(now, now_ms, &|_| true);
        let consumer_members = self.inner.restore_consumer_groups(now, &|_| true);
        tracing::debug!(
            offsets,
            members,
            consumer_members,
            "group coordinator recovered"
        );
        Ok(offsets)
    }

    /// Takes over the groups of offsets `partition` as its new leader: what memory held for them
    /// (a stale copy from before) is dropped and the partition's log replayed, up to everything
    /// this broker wrote; members' sessions start now, as at start-up. Returns the number of
    /// committed offsets loaded.
    pub async fn load_partition(&self, partition: i32) -> Result<usize, GroupError> {
        let records = self.inner.store.load_partition(partition).await?;
        // After the await: nothing is applied to this partition's groups between the drop and
        // the replay.
        let dropped = self.unload_partition(partition);
        let (now, now_ms) = (Instant::now(), now_ms());
        let in_partition =
            |group: &str| offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS) == partition;
        self.inner.replay_records(&records, now, now_ms);
        let offsets: usize = self
            .inner
            .groups
            .borrow()
            .iter()
            .filter(|(id, _)| in_partition(id))
            .map(|(_, group)| group.offsets.len())
            .sum();
        let members = self.inner.restore_groups(now, now_ms, &in_partition);
        let consumer_members = self.inner.restore_consumer_groups(now, &in_partition);
        tracing::info!(
            partition,
            dropped,
            offsets,
            members,
            consumer_members,
            "took over the groups of an offsets partition"
        );
        Ok(offsets)
    }

    /// Forgets the groups of offsets `partition`: this broker no longer leads it (its leader
    /// coordinates them; a follower's copy of the log is written by replication alone). Parked
    /// JoinGroup/SyncGroup calls end, and their clients find the new coordinator. Returns how many
    /// groups were dropped.
    pub fn unload_partition(&self, partition: i32) -> usize {
        let in_partition =
            |group: &str| offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS) == partition;
        self.inner.pending_txn.borrow_mut().forget(in_partition);
        let mut groups = self.inner.groups.borrow_mut();
        let before = groups.len();
        groups.retain(|id, _| !in_partition(id));
        before - groups.len()
    }

    /// Starts the periodic expiry of old offsets of empty groups (Kafka's offsets.retention.minutes).
    pub fn spawn_retention_sweep(&self) {
        let weak: Weak<Inner> = Rc::downgrade(&self.inner);
        let interval = self.inner.config.retention_check_interval();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(error) = inner.expire_offsets(now_ms()).await {
                    tracing::warn!(%error, "offset retention sweep failed; retrying next interval");
                }
            }
        })
        .detach();
    }

    /// JoinGroup from a client whose id and host are unknown (see [`GroupCoordinator::join_group_from`]).
    pub async fn join_group(&self, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
        self.join_group_from(req, version, &ClientInfo::default())
            .await
    }

    /// JoinGroup (v0-9): parks until the rebalance completes, or answers at once (errors,
    /// MEMBER_ID_REQUIRED, a static member's rejoin without rebalance).
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: &ClientInfo,
    ) -> JoinGroupResponse {
        let outcome = match self.inner.join(&req, version, client) {
            Reply::Later(handle) => handle.wait().await.unwrap_or_else(|| {
                super::member::JoinOutcome::error(responses::REBALANCE_IN_PROGRESS, &req.member_id)
            }),
            Reply::Now(outcome) => outcome,
        };
        responses::join_response(outcome, version)
    }

    /// SyncGroup (v0-5): the leader's call stores every member's assignment; followers park until then.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let outcome = match self.inner.sync(&req, version) {
            Reply::Later(handle) => handle.wait().await.unwrap_or_else(|| {
                super::member::SyncOutcome::error(responses::REBALANCE_IN_PROGRESS)
            }),
            Reply::Now(outcome) => outcome,
        };
        responses::sync_response(outcome, version)
    }

    /// Heartbeat (v0-4).
    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        responses::heartbeat_response(self.inner.heartbeat(&req, version))
    }

    /// LeaveGroup (v0-5; v3+ carries a batch of members): the group rebalances at once.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let (error_code, members) = self.inner.leave(&req, version);
        responses::leave_response(error_code, members, version)
    }

    /// ConsumerGroupHeartbeat (v0-1, KIP-848): joins, heartbeats and leaves of consumer-protocol members,
    /// answered once the change is durable. `topics` is the broker's topic table (subscriptions are by
    /// name or regular expression, assignments by topic id).
    pub async fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo,
        topics: &TopicTable,
    ) -> ConsumerGroupHeartbeatResponse {
        self.inner
            .consumer_heartbeat(&req, version, client, topics)
            .await
    }

    /// One group for ConsumerGroupDescribe; classic and unknown groups are GROUP_ID_NOT_FOUND.
    pub fn consumer_group_describe(
        &self,
        group_id: &str,
        topics: &TopicTable,
    ) -> ConsumerDescribedGroup {
        self.inner.consumer_group_describe(group_id, topics)
    }

    /// OffsetCommit (v0-9): answers once the offsets are durable in the store.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.inner.offset_commit(&req, version).await
    }

    /// TxnOffsetCommit (v0-4): the offsets wait, pending, for the transaction's marker.
    pub async fn txn_offset_commit(
        &self,
        req: TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        self.inner.txn_offset_commit(&req, version).await
    }

    /// A transaction's marker for offsets `marker.partition`: written to its log, then the
    /// producer's pending offsets of its groups are committed or dropped.
    pub async fn write_txn_marker(&self, marker: TxnMarkerRecord) -> Result<(), GroupError> {
        self.inner.write_txn_marker(marker).await
    }

    /// OffsetFetch (v0-9): single-group form below v8, the `groups` batch from v8.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.inner.offset_fetch(&req, version)
    }

    /// One group for DescribeGroups; unknown groups are reported in state "Dead" without error, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> DescribedGroup {
        self.inner.describe_group(group_id)
    }

    /// ListGroups: groups whose state name matches one of `states_filter` (case-insensitive; empty = all).
    pub fn list_groups(&self, states_filter: &[String]) -> Vec<ListedGroup> {
        self.inner.list_groups(states_filter)
    }

    /// DeleteGroups for one group: its error code (0, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, ...).
    pub async fn delete_group(&self, group_id: &str) -> i16 {
        self.inner.delete_group(group_id).await
    }

    /// OffsetDelete (v0).
    pub async fn offset_delete(&self, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
        self.inner.offset_delete(&req).await
    }

    /// Committed offsets of a group as (topic, partition, offset), sorted; empty for unknown groups.
    pub fn committed_offsets(&self, group_id: &str) -> Vec<(String, i32, i64)> {
        self.inner
            .groups
            .borrow()
            .get(group_id)
            .map(|group| {
                group
                    .offsets
                    .iter()
                    .map(|((topic, partition), c)| (topic.clone(), *partition, c.offset))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of every group this coordinator knows (for `groups list` style tools and metrics).
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.groups.borrow().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Deletes offsets of empty groups older than the retention (and empty groups left with none);
    /// returns how many offsets expired. Runs periodically after [`GroupCoordinator::open`].
    pub async fn expire_offsets(&self) -> Result<usize, GroupError> {
        self.inner.expire_offsets(now_ms()).await
    }
}
