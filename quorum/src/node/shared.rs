//! The state the driver task publishes and the [`super::Quorum`] handle reads: role, leader,
//! term, indexes, per-voter progress, and the waitable counters. Only the driver writes it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use raft::StateRole;

use crate::storage::LogState;
use crate::watch::Watch;

pub(crate) struct Shared {
    pub node_id: u64,
    pub role: Cell<StateRole>,
    /// The leader this node knows of, 0 for none (raft-rs's convention).
    pub leader: Cell<u64>,
    pub term: Cell<u64>,
    pub commit_index: Cell<u64>,
    pub applied: Watch,
    /// Counts leadership changes (a new leader, or none); `leader_changed` waits on it.
    pub leader_changes: Watch,
    /// 0 while running, 1 once a stop is asked (or the driver failed).
    pub stopping: Watch,
    /// Proposals queued or in flight; limited by `max_pending_proposals`.
    pub pending_proposals: Cell<usize>,
    /// The durable log's in-memory image, for `read_committed` and `snapshot`.
    pub log: Rc<RefCell<LogState>>,
    /// Each voter's match index as the leader tracks it (empty on followers).
    pub match_index: RefCell<BTreeMap<u64, u64>>,
    /// When this node last received a Raft message from each peer.
    pub last_contact: RefCell<BTreeMap<u64, Instant>>,
    /// Test fault injection: drop all Raft traffic to and from the peers, as a cut network would.
    pub isolated: Cell<bool>,
}

impl Shared {
    pub fn new(node_id: u64, log: Rc<RefCell<LogState>>, applied: u64) -> Self {
        Shared {
            node_id,
            role: Cell::new(StateRole::Follower),
            leader: Cell::new(0),
            term: Cell::new(0),
            commit_index: Cell::new(applied),
            applied: Watch::new(applied),
            leader_changes: Watch::new(0),
            stopping: Watch::new(0),
            pending_proposals: Cell::new(0),
            log,
            match_index: RefCell::new(BTreeMap::new()),
            last_contact: RefCell::new(BTreeMap::new()),
            isolated: Cell::new(false),
        }
    }

    pub fn leader_id(&self) -> Option<u64> {
        Some(self.leader.get()).filter(|id| *id != 0)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get() != 0
    }
}

/// Holds one of the `max_pending_proposals` slots; dropping it frees the slot, whatever became
/// of the proposal (applied, refused, or dropped with the driver).
pub(crate) struct PendingSlot {
    shared: Rc<Shared>,
}

impl PendingSlot {
    /// Takes a slot, or `None` when all `limit` are taken.
    pub fn try_take(shared: &Rc<Shared>, limit: usize) -> Option<PendingSlot> {
        let taken = shared.pending_proposals.get();
        if taken >= limit {
            return None;
        }
        shared.pending_proposals.set(taken + 1);
        Some(PendingSlot {
            shared: shared.clone(),
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let taken = self.shared.pending_proposals.get();
        debug_assert!(taken > 0);
        self.shared.pending_proposals.set(taken.saturating_sub(1));
    }
}
