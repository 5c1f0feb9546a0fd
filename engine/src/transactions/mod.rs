//! Kafka transactions (exactly-once): the transaction coordinator and the partitions' side.
//!
//! Coordinator side (one per shard, for the transactional ids whose `__transaction_state`
//! partition the shard owns): `metadata` (one id's state and Kafka's state machine, no I/O),
//! `codec` (Kafka's `__transaction_state` record formats), `log_store` (those records in the
//! shard's `__transaction_state` logs, replayed at start-up, and in a cluster by each new leader
//! of a partition: the topic is replicated and its coordinator follows the leadership),
//! `coordinator` (the requests:
//! InitProducerId with fencing, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! the timeout sweep), `markers` (commit/abort control batches, written on the partition's shard),
//! `remote_markers` (markers for partitions another broker leads: Kafka's WriteTxnMarkers),
//! `verification` (KIP-890: a partition leader, or a group coordinator, asks the coordinator
//! whether a partition is in the producer's transaction before its first write there).
//!
//! Partition side (on each partition's owning shard): `partition_state` (open transactions, the
//! last stable offset, aborted transactions, rebuilt from the log on open) and `table` (all of a
//! shard's partitions), used by produce, markers and read_committed fetches (`fetch_view`).

mod codec;
pub mod config;
mod coordinator;
pub mod error;
pub mod fetch_view;
mod log_store;
pub mod markers;
pub mod metadata;
pub mod partition_state;
pub mod remote_markers;
mod table;
#[cfg(test)]
mod tests;
pub mod verification;

pub use config::{
    TxnConfig, TRANSACTION_STATE_COMMIT_TIMEOUT, TRANSACTION_STATE_PARTITIONS,
    TRANSACTION_STATE_TOPIC,
};
pub use coordinator::{offsets_group_partition, ProducerIdAndEpoch, TxnCoordinator};
pub use error::TxnError;
pub use log_store::{state_partition_for, TxnLogStore};
pub use partition_state::{AbortedTxn, PartitionTxns, CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT};
pub use table::PartitionTxnTable;

use crate::shard::Shard;

/// Produce path, right before a partition's append at `base_offset` (synchronously, no await in
/// between): checks and records transactional batches. Non-transactional records cost one walk
/// over the batch headers.
pub fn before_append(
    shard: &Shard,
    topic: &str,
    partition: i32,
    dir: &std::path::Path,
    records: &[u8],
    base_offset: i64,
) -> Result<(), i16> {
    if !crate::produce::any_transactional(records) {
        return Ok(());
    }
    shard.txn_partitions.check_and_note(
        topic,
        partition,
        dir,
        records,
        base_offset,
        shard.config.transaction_partition_verification,
    )
}

/// Produce path: the append at `base_offset` failed; forget what `before_append` recorded.
pub fn append_failed(shard: &Shard, topic: &str, partition: i32, base_offset: i64) {
    shard.txn_partitions.rollback(topic, partition, base_offset);
}
