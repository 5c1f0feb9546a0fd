//! The crate's errors: starting a quorum, proposing to it, reading compacted entries, waiting on a
//! stopped quorum. RPC errors live with the RPC client (`rpc::RpcError`).

use std::net::SocketAddr;

use thiserror::Error;

use crate::storage::StorageError;

/// Why a quorum did not start or stopped with an error.
#[derive(Debug, Error)]
pub enum QuorumError {
    #[error("invalid quorum configuration: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on the controller listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("raft-rs refused the state or configuration: {0}")]
    Raft(#[from] raft::Error),
}

/// Why a proposal did not commit.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader (or lost leadership before the entry committed: the entry may
    /// still commit under the new leader, so proposals should be idempotent or checked).
    #[error("this node is not the quorum leader; {}", match leader {
        Some(id) => format!("node {id} is"),
        None => "no leader is known right now".to_string(),
    })]
    NotLeader { leader: Option<u64> },
    #[error("{limit} proposals are already waiting to commit (max_pending_proposals); retry when some complete")]
    TooManyPending { limit: usize },
    #[error("the proposal is {bytes} bytes, above max_entry_bytes ({max})")]
    TooLarge { bytes: usize, max: usize },
    /// Not applied within `propose_timeout`; the entry may still commit later.
    #[error("not applied within {timeout_ms} ms (propose_timeout); it may still commit")]
    Timeout { timeout_ms: u64 },
    #[error("the quorum has stopped")]
    Stopped,
}

/// The entries asked for were compacted into a snapshot: read the snapshot (at
/// `snapshot_index`), then continue from `snapshot_index + 1`.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("entries up to {snapshot_index} are compacted: read the snapshot, then continue from {}", snapshot_index + 1)]
pub struct Compacted {
    pub snapshot_index: u64,
}

/// The quorum stopped while a caller waited on it.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the quorum has stopped")]
pub struct Stopped;
