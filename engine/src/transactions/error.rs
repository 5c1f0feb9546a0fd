//! Errors of the transaction coordinator's persistence path (protocol errors are Kafka error
//! codes in the responses, not Rust errors).

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The `__transaction_state` log failed (I/O, full disk, corrupt segment).
    #[error("transaction state log failed: {0}")]
    Storage(String),
    /// A stored `__transaction_state` record does not parse.
    #[error("malformed __transaction_state record: {0}")]
    Malformed(String),
    /// The transactional id's state partition is not owned by this shard (a routing bug).
    #[error("this shard does not own __transaction_state partition {0}")]
    PartitionNotOwned(i32),
    /// This broker may not write (or could not commit) the id's `__transaction_state` partition:
    /// it does not lead it (any more), or too few replicas are in sync. Answered NOT_COORDINATOR,
    /// so the client finds the coordinator again.
    #[error("{0}")]
    NotCommitted(String),
}
