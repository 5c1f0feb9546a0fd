//! Persistence of committed offsets behind a small trait, so the group state machine is testable without
//! disk. A store keeps an ordered log of [`OffsetRecord`]s; replaying it (last write per key wins, a
//! tombstone deletes) rebuilds every group's committed offsets.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use super::error::GroupError;

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

/// One entry of the offsets log: a commit, or a tombstone (`value: None`) deleting the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub key: OffsetKey,
    pub value: Option<CommittedOffset>,
}

/// Durable storage of offset records. Implementations must make `persist` durable (to the storage's
/// acknowledgement policy) before returning `Ok`, keep records in call order, and return them all, in that
/// order, from `load_all`. The coordinator calls `persist` one call at a time.
pub trait OffsetStore {
    /// Appends `records` atomically enough that a replay sees each record whole or not at all.
    fn persist<'a>(
        &'a self,
        records: &'a [OffsetRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>>;
    /// Every record persisted so far, oldest first (for recovery at start-up).
    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<OffsetRecord>, GroupError>>;

    /// Whether the store has grown enough that [`OffsetStore::compact`] may be worth its cost.
    fn wants_compaction(&self) -> bool {
        false
    }

    /// Rewrites the store to hold only `live` (every current committed offset, as replay would give).
    /// Called under the same exclusion as `persist`. Returns how many logs were rewritten.
    fn compact<'a>(
        &'a self,
        live: &'a [OffsetRecord],
    ) -> LocalBoxFuture<'a, Result<usize, GroupError>> {
        let _ = live;
        Box::pin(async { Ok(0) })
    }
}

/// An in-memory [`OffsetStore`] for tests and for embedding without durability: share one between two
/// coordinators (through `Rc`) to simulate a restart.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    records: RefCell<Vec<OffsetRecord>>,
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
        records: &'a [OffsetRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>> {
        Box::pin(async move {
            self.records.borrow_mut().extend_from_slice(records);
            Ok(())
        })
    }

    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<OffsetRecord>, GroupError>> {
        Box::pin(async move { Ok(self.records.borrow().clone()) })
    }
}
