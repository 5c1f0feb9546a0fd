//! Consumer-group coordinator of one shard: the Kafka classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup with client-side assignors), the consumer group protocol of KIP-848
//! (ConsumerGroupHeartbeat with server-side assignors, ConsumerGroupDescribe), committed offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete) and group administration (DescribeGroups, ListGroups,
//! DeleteGroups).
//!
//! One [`GroupCoordinator`] runs per shard, inside that shard's glommio executor (single thread: state
//! lives in `RefCell`s that are never borrowed across an await). The server routes a group's requests to
//! the shard that owns `__consumer_offsets` partition [`offsets_partition_for`]`(group, `
//! [`OFFSETS_TOPIC_PARTITIONS`]`)`, the way Kafka places its coordinators.
//!
//! Committed offsets and the groups' state (a classic group's generation, leader, members and
//! assignments; a consumer-protocol group's epochs, members, target and current assignments) are durable
//! through an [`OffsetStore`], as Kafka's `__consumer_offsets` records: [`LogOffsetStore`] writes Kafka v2
//! record batches to `__consumer_offsets` partition logs on the engine's storage, and
//! [`MemoryOffsetStore`] serves tests. A broker restart is invisible to a stable group: its members keep
//! their ids and generation (or member epoch).
//!
//! Module map: `config` (limits and timeouts), `partitioner` (group → offsets partition), `store` (the
//! persistence trait, records, in-memory store), `record_codec` (Kafka's key/value formats),
//! `membership_log` (classic group metadata written and loaded), `log_store` (the PartitionLog-backed
//! store and its compaction), `replica_gate` (what the store asks replication before and after a write), `group`/`member` (the per-group state machine data), `waiter` (parked
//! JoinGroup/SyncGroup calls), `coordinator` (the public handlers), `membership` (join/sync/heartbeat/
//! leave), `rebalance` (generations and timers), `consumer` (the KIP-848 protocol: its own map),
//! `offsets` (commit/fetch/delete/retention), `persist_queue` (group commit of record writes), `admin`
//! (describe, list, delete), `responses` (shaping results for each request version), `txn_offsets` (offsets of
//! open transactions) and `txn_offset_commit` (TxnOffsetCommit and the transaction markers of offsets
//! partitions).

mod admin;
mod config;
mod consumer;
mod coordinator;
mod error;
mod group;
mod log_store;
pub(crate) mod member;
mod membership;
mod membership_log;
mod offsets;
mod partitioner;
mod persist_queue;
mod rebalance;
pub(crate) mod record_codec;
mod replica_gate;
pub(crate) mod responses;
mod store;
#[cfg(test)]
mod tests;
mod txn_offset_commit;
mod txn_offsets;
mod waiter;

pub use config::{
    GroupConfig, DEFAULT_CONSUMER_HEARTBEAT_INTERVAL_MS, DEFAULT_CONSUMER_SESSION_TIMEOUT_MS,
};
pub(crate) use coordinator::now_ms;
pub use coordinator::{ClientInfo, GroupCoordinator};
pub use error::GroupError;
pub use group::GroupState;
pub use log_store::{
    finish_interrupted_compaction, offsets_log_config, scan_log, scan_log_to,
    swap_in_rewritten_log, LogOffsetStore, ScanBound, OFFSETS_SEGMENT_BYTES, OFFSETS_TOPIC_NAME,
};
pub use partitioner::{java_string_hashcode, offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
pub use replica_gate::{ReplicaGate, Unreplicated};
pub use store::{
    CommittedOffset, CoordinatorRecord, GroupMetadata, GroupMetadataRecord, LocalBoxFuture,
    MemoryOffsetStore, OffsetKey, OffsetRecord, OffsetStore, StoredMember, TxnMarkerRecord,
    TxnOffsetRecord,
};
