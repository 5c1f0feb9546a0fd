//! What a coordinator's store asks the broker's replication before and after it writes one of its
//! partitions (`__consumer_offsets` for the group coordinator, `__transaction_state` for the
//! transaction coordinator). With replication, a coordinator is the leader of its partition: only
//! the leader may append (a follower's copy is written by its fetcher, byte for byte), and a write
//! counts as done only once every in-sync replica holds it, as Kafka's coordinators append with
//! acks=all. A broker without replication (one replica per partition) writes every partition it
//! owns and is done when its own write is.

use super::error::GroupError;
use super::store::LocalBoxFuture;

/// The replication state of a coordinator's partitions, as its store needs it.
pub trait ReplicaGate {
    /// The leader epoch to stamp on `partition`'s batches, or why this broker may not write it
    /// now (it follows the partition, or its ISR is below `min.insync.replicas`).
    fn writable(&self, partition: i32) -> Result<i32, GroupError>;

    /// Resolves once every record of `partition` below `end_offset`, appended in
    /// `leader_epoch`, is on every in-sync replica; an error when that cannot be known (the
    /// leadership moved, the commit timeout passed).
    fn committed(
        &self,
        partition: i32,
        leader_epoch: i32,
        end_offset: i64,
    ) -> LocalBoxFuture<'_, Result<(), GroupError>>;

    /// Whether `partition` has other replicas: its log must keep its offsets (followers copy
    /// them), so the store does not rewrite it.
    fn is_replicated(&self, partition: i32) -> bool;

    /// Whether this broker leads `partition` now, ready (its coordinator state loaded): always
    /// for a partition with one replica. What memory holds of a partition it does not lead is a
    /// stale copy, not served.
    fn leads(&self, partition: i32) -> bool;
}

/// The gate of a store with no replication: every owned partition is writable, with no leader
/// epoch, and done when written.
pub struct Unreplicated;

impl ReplicaGate for Unreplicated {
    fn writable(&self, _partition: i32) -> Result<i32, GroupError> {
        Ok(-1)
    }

    fn committed(
        &self,
        _partition: i32,
        _leader_epoch: i32,
        _end_offset: i64,
    ) -> LocalBoxFuture<'_, Result<(), GroupError>> {
        Box::pin(async { Ok(()) })
    }

    fn is_replicated(&self, _partition: i32) -> bool {
        false
    }

    fn leads(&self, _partition: i32) -> bool {
        true
    }
}
