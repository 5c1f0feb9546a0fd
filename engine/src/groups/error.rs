//! Errors of the group coordinator's persistence path (protocol errors are Kafka error codes in the
//! responses, not Rust errors).

/// What can go wrong persisting or recovering committed offsets.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The log under the offsets store failed (I/O, full disk, corrupt segment).
    #[error("offsets log storage failed: {0}")]
    Storage(String),
    /// A stored `__consumer_offsets` record does not parse; the log was written by something else or is
    /// damaged past what the storage layer's CRC check catches.
    #[error("malformed __consumer_offsets record: {0}")]
    MalformedRecord(String),
    /// The store has no log for the offsets partition that owns this group: the server routed the group
    /// to a shard that does not own its `__consumer_offsets` partition.
    #[error("this shard does not own __consumer_offsets partition {partition} (group {group_id})")]
    PartitionNotOwned { group_id: String, partition: i32 },
    /// This broker may not write (or could not commit) a coordinator's partition (of
    /// `__consumer_offsets`, or `__transaction_state` through the same gate): it does not lead it
    /// (any more), or too few replicas are in sync. The client finds the coordinator again.
    #[error("{topic} partition {partition}: {reason}")]
    NotCommitted {
        topic: &'static str,
        partition: i32,
        reason: String,
    },
}
