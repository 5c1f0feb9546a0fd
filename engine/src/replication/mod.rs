//! Replication (issue 18): every partition with several replicas has a leader that takes produce
//! and followers that copy its log byte for byte, as Kafka does.
//!
//! - `leader`: what a leader knows of its followers (log ends, last caught up), the high
//!   watermark and the ISR changes that follow from it (pure state).
//! - `roles`: after each metadata image, which partitions this shard leads or follows; a new
//!   leader rebuilds its producer state, a new follower hands the partition to a fetcher.
//! - `fetcher`: one task per (shard, leader broker): truncates each new follower partition with
//!   OffsetForLeaderEpoch, then fetches (Kafka's replica Fetch) and appends what the leader wrote.
//! - `serve`: the leader side of a replica fetch (fencing by leader epoch, the follower's
//!   progress, the high watermark).
//! - `isr`: the leader's periodic ISR check and its AlterPartition requests to the controller.
//! - `log_dir`: the data directory's health (logs that cannot be written), which heartbeats report
//!   so that the controller takes the broker out of every ISR at once.
//! - `acks`: acks=all (the high watermark passing a produce) and `min.insync.replicas`.
//! - `client`: a broker's Kafka connection to another broker.
//! - `coordinator_gate`: `__consumer_offsets` writes by the group coordinator and
//!   `__transaction_state` writes by the transaction coordinator: leader only, done at the high
//!   watermark (the coordinator of a group or a transactional id is the leader of its partition).
//!
//! A partition with one replica takes none of these paths: its high watermark is its written
//! end, as before replication existed.

pub mod acks;
pub mod client;
pub mod coordinator_gate;
pub mod fetcher;
pub mod isr;
pub mod leader;
pub mod log_dir;
pub mod roles;
pub mod serve;

use std::cell::RefCell;
use std::collections::HashMap;

use ringbroker_quorum::watch::Watch;

use leader::LeaderState;

/// A partition: topic and index.
pub type PartitionKey = (String, i32);

/// A partition this shard follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub leader: i32,
    pub leader_epoch: i32,
    /// Truncated to the leader's log for this epoch (OffsetForLeaderEpoch done): may fetch.
    pub truncated: bool,
}

/// The replication state of the partitions one shard owns.
#[derive(Default)]
pub struct ShardReplication {
    /// Replicated partitions this shard leads, ready for produce (producer state rebuilt):
    /// topic → partition → state (nested: the produce path looks up by `&str`, no allocation).
    pub leaders: RefCell<HashMap<String, HashMap<i32, LeaderState>>>,
    /// Partitions this shard follows, by the fetcher of their leader.
    pub followed: RefCell<HashMap<PartitionKey, Followed>>,
    /// Leaders this shard runs a fetcher for.
    pub fetchers: RefCell<HashMap<i32, ()>>,
    /// Bumped when `followed` changes: fetchers pick up new partitions at once.
    pub followed_changed: Watch,
    /// The applied index of the last image installed on this shard: the roles task follows it.
    pub installed: Watch,
    /// Bumped when a follower's fetch may change an ISR: the ISR checker looks at once.
    pub isr_check: Watch,
    /// Bumped when a follower's fetch changed its log start: DeleteRecords waiting for the low
    /// watermark looks again.
    pub log_starts: Watch,
}

impl ShardReplication {
    /// Whether this shard leads `topic`/`partition` in `leader_epoch` with replicas, ready.
    pub fn leads(&self, topic: &str, partition: i32, leader_epoch: i32) -> bool {
        self.leaders
            .borrow()
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .is_some_and(|state| state.leader_epoch == leader_epoch)
    }

    /// Runs `f` on the leader state of a partition this shard leads.
    pub fn with_leader<T>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut LeaderState) -> T,
    ) -> Option<T> {
        self.leaders
            .borrow_mut()
            .get_mut(topic)
            .and_then(|partitions| partitions.get_mut(&partition))
            .map(f)
    }
}
