//! Persistence of the coordinator's state behind a small trait, so the group state machine is testable
//! without disk. A store keeps an ordered log of [`CoordinatorRecord`]s, Kafka's `__consumer_offsets`
//! records: committed offsets and classic-group metadata. Replaying it (last write per key wins, a
//! tombstone deletes) rebuilds every group's committed offsets and membership; a transaction's
//! offsets stay pending until its marker follows them (`txn_offsets`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::consumer::values::ConsumerRecord;
use super::error::GroupError;
use super::partitioner::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};

/// A boxed, non-`Send` future: stores run on one glommio executor thread.
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Identity of one committed offset: Kafka's `OffsetCommitKey` (group, topic, partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset: Kafka's `OffsetCommitValue` (version 3 fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// Leader epoch the consumer saw at that offset; -1 when unknown.
    pub leader_epoch: i32,
    /// Client metadata, returned verbatim; a null from the client is stored as "" (as Kafka does).
    pub metadata: String,
    /// Wall-clock milliseconds of the commit; offset retention counts from here.
    pub commit_timestamp_ms: i64,
}

/// One committed offset in the log: a commit, or a tombstone (`value: None`) deleting the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub key: OffsetKey,
    pub value: Option<CommittedOffset>,
}

/// One member of a classic group as Kafka's `GroupMetadataValue.MemberMetadata` stores it: its identity,
/// timeouts, its metadata for the group's selected protocol and the leader's assignment for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol (a consumer's subscription).
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's membership snapshot: Kafka's `GroupMetadataValue`, written when a generation
/// completes (the leader's assignment is stored) and when the group becomes Empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// "" for a group that never had a member with a protocol type.
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// Wall-clock ms of the group's last state change (offset retention of an Empty group counts from it);
    /// -1 when unknown (Kafka's value versions 0 and 1).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

/// One group's metadata in the log, or a tombstone (`value: None`) when the group is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataRecord {
    pub group_id: String,
    pub value: Option<GroupMetadata>,
}

/// An offset committed inside a transaction (TxnOffsetCommit): in the log as a transactional
/// batch of its producer, pending (not visible to OffsetFetch) until the producer's marker in the
/// same partition commits or aborts it, as Kafka's `pendingTransactionalOffsetCommits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetRecord {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub offset: OffsetRecord,
}

/// A transaction marker (commit or abort control batch) in one offsets partition: the producer's
/// pending offsets of that partition's groups are committed or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarkerRecord {
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// One `__consumer_offsets` record (Kafka's coordinator records, by key type), or a transaction's
/// offset or marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorRecord {
    Offset(OffsetRecord),
    GroupMetadata(GroupMetadataRecord),
    /// The state of a consumer-protocol (KIP-848) group.
    Consumer(ConsumerRecord),
    /// An offset of an open transaction.
    TxnOffset(TxnOffsetRecord),
    /// The end of a transaction in one offsets partition (no group of its own).
    TxnMarker(TxnMarkerRecord),
}

impl CoordinatorRecord {
    /// The group the record belongs to (it decides the offsets partition); `None` for a marker,
    /// which belongs to a partition.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            CoordinatorRecord::Offset(record) => Some(&record.key.group_id),
            CoordinatorRecord::GroupMetadata(record) => Some(&record.group_id),
            CoordinatorRecord::Consumer(record) => Some(&record.group_id),
            CoordinatorRecord::TxnOffset(record) => Some(&record.offset.key.group_id),
            CoordinatorRecord::TxnMarker(_) => None,
        }
    }

    /// The offsets partition the record goes to, of `partition_count`.
    pub fn partition(&self, partition_count: i32) -> i32 {
        match self {
            CoordinatorRecord::TxnMarker(marker) => marker.partition,
            CoordinatorRecord::Offset(record) => {
                offsets_partition_for(&record.key.group_id, partition_count)
            }
            CoordinatorRecord::GroupMetadata(record) => {
                offsets_partition_for(&record.group_id, partition_count)
            }
            CoordinatorRecord::Consumer(record) => {
                offsets_partition_for(&record.group_id, partition_count)
            }
            CoordinatorRecord::TxnOffset(record) => {
                offsets_partition_for(&record.offset.key.group_id, partition_count)
            }
        }
    }

    /// Whether the record deletes its key.
    pub fn is_tombstone(&self) -> bool {
        match self {
            CoordinatorRecord::Offset(record) => record.value.is_none(),
            CoordinatorRecord::GroupMetadata(record) => record.value.is_none(),
            CoordinatorRecord::Consumer(record) => record.kind.is_tombstone(),
            CoordinatorRecord::TxnOffset(record) => record.offset.value.is_none(),
            CoordinatorRecord::TxnMarker(_) => false,
        }
    }
}

impl From<OffsetRecord> for CoordinatorRecord {
    fn from(record: OffsetRecord) -> Self {
        CoordinatorRecord::Offset(record)
    }
}

/// Durable storage of coordinator records. Implementations must make `persist` durable (to the storage's
/// acknowledgement policy) before returning `Ok`, keep records in call order, and return them all, in that
/// order, from `load_all`. The coordinator calls `persist` one call at a time.
pub trait OffsetStore {
    /// Appends `records` atomically enough that a replay sees each record whole or not at all.
    fn persist<'a>(
        &'a self,
        records: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>>;
    /// Every record persisted so far, oldest first (for recovery at start-up).
    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>>;

    /// Every record of one offsets partition, oldest first, including what this broker wrote
    /// above the high watermark (for a new leader of the partition, see `replica_gate`).
    fn load_partition(
        &self,
        partition: i32,
    ) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>> {
        Box::pin(async move {
            let records = self.load_all().await?;
            Ok(records
                .into_iter()
                .filter(|r| r.partition(OFFSETS_TOPIC_PARTITIONS) == partition)
                .collect())
        })
    }

    /// Whether the store has grown enough that [`OffsetStore::compact`] may be worth its cost.
    fn wants_compaction(&self) -> bool {
        false
    }

    /// Rewrites the store to hold only `live` (every current record, as replay would give).
    /// Called under the same exclusion as `persist`. Returns how many logs were rewritten.
    fn compact<'a>(
        &'a self,
        live: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<usize, GroupError>> {
        let _ = live;
        Box::pin(async { Ok(0) })
    }
}

/// An in-memory [`OffsetStore`] for tests and for embedding without durability: share one between two
/// coordinators (through `Rc`) to simulate a restart.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    records: RefCell<Vec<CoordinatorRecord>>,
}

impl MemoryOffsetStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records persisted so far (tombstones included).
    pub fn len(&self) -> usize {
        self.records.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.borrow().is_empty()
    }
}

impl OffsetStore for MemoryOffsetStore {
    fn persist<'a>(
        &'a self,
        records: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>> {
        Box::pin(async move {
            self.records.borrow_mut().extend_from_slice(records);
            Ok(())
        })
    }

    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>> {
        Box::pin(async move { Ok(self.records.borrow().clone()) })
    }
}
