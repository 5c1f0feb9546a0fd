//! A point-in-time view of the quorum for DescribeQuorum-like answers and metrics.

use std::time::Instant;

/// This node's role in the quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    /// Campaigning for a pre-vote (not yet a candidate: its term is unchanged).
    PreCandidate,
    Candidate,
}

impl From<raft::StateRole> for Role {
    fn from(role: raft::StateRole) -> Self {
        match role {
            raft::StateRole::Leader => Role::Leader,
            raft::StateRole::Follower => Role::Follower,
            raft::StateRole::PreCandidate => Role::PreCandidate,
            raft::StateRole::Candidate => Role::Candidate,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: u64,
    pub role: Role,
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The latest snapshot's index (0: none yet).
    pub snapshot_index: u64,
    /// The first index `read_committed` still serves.
    pub first_index: u64,
    /// The last index in this node's durable log.
    pub last_index: u64,
    /// One per voter, by id.
    pub voters: Vec<VoterStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterStatus {
    pub node_id: u64,
    /// The highest index known to be in that voter's log: tracked by the leader only (`None` on
    /// other nodes, as Kafka's DescribeQuorum is answered by the leader).
    pub match_index: Option<u64>,
    /// When this node last received a Raft message from that voter (for this node itself: now).
    pub last_contact: Option<Instant>,
}
