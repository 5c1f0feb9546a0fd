//! What the quorum replicates into: the user's state machine (for ringbroker, the cluster
//! metadata image), fed committed entries in log order on the quorum's executor.

/// The replicated state. Every method runs on the quorum's driver task, between raft steps, so
/// it should be quick; it must not block the thread (no blocking I/O) and must not await.
pub trait StateMachine {
    /// Applies the committed entry at `index`. Called once per non-empty entry, in index order,
    /// on every node; entries with empty data (a new leader's first entry) are skipped.
    fn apply(&self, index: u64, data: &[u8]);

    /// The whole state as of the last applied index, in a form `restore` reads back. It must
    /// stay below [`crate::limits::MAX_SNAPSHOT_BYTES`]; a bigger one is not stored (logged).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state by a snapshot taken at `index` (at start-up from the local
    /// snapshot, or when the leader sends one because this node fell too far behind).
    fn restore(&self, index: u64, data: &[u8]);
}
