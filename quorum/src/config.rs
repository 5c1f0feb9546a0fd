//! The quorum's configuration: who the voters are, where this node listens and keeps its data,
//! its timing, and the limits of its queues. Defaults follow KRaft where KRaft has a setting
//! (see the crate README for the comparison).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::QuorumError;
use crate::limits::MAX_ENTRY_BYTES_CEILING;

/// How often raft-rs is ticked. With [`DEFAULT_ELECTION_TICKS`] a follower waits 1 s to 2 s
/// without hearing from a leader before it campaigns (KRaft: `controller.quorum.election.timeout.ms`
/// = 1000, randomised up to twice that).
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Ticks without a leader's message before a follower campaigns; raft-rs randomises the
/// timeout in `[election_ticks, 2 * election_ticks)`.
pub const DEFAULT_ELECTION_TICKS: usize = 10;

/// Ticks between a leader's heartbeats: 100 ms, ten per election timeout, so a few lost ones
/// never cost an election.
pub const DEFAULT_HEARTBEAT_TICKS: usize = 1;

/// Applied entries between two snapshots. Metadata records are small (hundreds of bytes), so
/// 10,000 keeps the log to a few MiB and a restart re-applies at most that many entries.
pub const DEFAULT_SNAPSHOT_INTERVAL_ENTRIES: u64 = 10_000;

/// Entries kept below a snapshot when the log is compacted, so that a follower a little behind
/// (a slow disk, a restart) catches up by entries instead of receiving the whole snapshot.
pub const DEFAULT_COMPACTION_RETAINED_ENTRIES: u64 = 1_000;

/// Largest proposal. KRaft metadata records are far smaller; a big one (a topic with thousands
/// of partitions) is still well below this.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1 << 20;

/// Proposals queued or in flight (proposed, not yet applied) at once; more get
/// [`crate::ProposeError::TooManyPending`]. Bounds the memory a burst of proposals can hold.
pub const DEFAULT_MAX_PENDING_PROPOSALS: usize = 1024;

/// How long `propose` waits for its entry to be applied. Longer than an election (at most 2 s
/// with the defaults) plus a few fsyncs, so a healthy quorum never times out.
pub const DEFAULT_PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of entries per append message to a follower (raft-rs `max_size_per_msg`): large enough
/// to catch up quickly, small enough that one message does not monopolise a connection.
pub const DEFAULT_MAX_APPEND_BYTES: u64 = 1 << 20;

/// Append messages in flight to one follower before the leader waits for acknowledgements
/// (raft-rs `max_inflight_msgs`); with [`DEFAULT_MAX_APPEND_BYTES`] at most 256 MiB in the
/// worst case, in practice a few KiB each.
pub const DEFAULT_MAX_INFLIGHT_APPENDS: usize = 256;

/// A metadata quorum member's configuration.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's id (Kafka's `node.id`); must be one of `voters`.
    pub node_id: u64,
    /// Every voter's id and controller address (Kafka's `controller.quorum.voters`). Static:
    /// the data dir remembers the set and refuses another.
    pub voters: BTreeMap<u64, SocketAddr>,
    /// Where this node accepts Raft traffic and RPC requests. `None` only for a single-voter
    /// quorum with no peers (nothing would connect).
    pub listen: Option<SocketAddr>,
    /// The quorum's own directory (raft log and snapshot).
    pub data_dir: PathBuf,
    pub tick_interval: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub snapshot_interval_entries: u64,
    pub compaction_retained_entries: u64,
    pub max_entry_bytes: usize,
    pub max_pending_proposals: usize,
    pub propose_timeout: Duration,
    pub max_append_bytes: u64,
    pub max_inflight_appends: usize,
}

impl QuorumConfig {
    /// A configuration with every default.
    pub fn new(
        node_id: u64,
        voters: BTreeMap<u64, SocketAddr>,
        listen: Option<SocketAddr>,
        data_dir: PathBuf,
    ) -> Self {
        QuorumConfig {
            node_id,
            voters,
            listen,
            data_dir,
            tick_interval: DEFAULT_TICK_INTERVAL,
            election_ticks: DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: DEFAULT_HEARTBEAT_TICKS,
            snapshot_interval_entries: DEFAULT_SNAPSHOT_INTERVAL_ENTRIES,
            compaction_retained_entries: DEFAULT_COMPACTION_RETAINED_ENTRIES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_pending_proposals: DEFAULT_MAX_PENDING_PROPOSALS,
            propose_timeout: DEFAULT_PROPOSE_TIMEOUT,
            max_append_bytes: DEFAULT_MAX_APPEND_BYTES,
            max_inflight_appends: DEFAULT_MAX_INFLIGHT_APPENDS,
        }
    }

    /// Every check a start needs, with an error that names the setting.
    pub fn validate(&self) -> Result<(), QuorumError> {
        let invalid = |message: String| Err(QuorumError::InvalidConfig(message));
        if self.node_id == 0 {
            return invalid("node.id 0 is reserved by raft (it means \"no node\")".into());
        }
        if self.voters.contains_key(&0) {
            return invalid("controller.quorum.voters names node 0, which raft reserves".into());
        }
        if !self.voters.contains_key(&self.node_id) {
            return invalid(format!(
                "node.id {} is not among controller.quorum.voters {:?}",
                self.node_id,
                self.voters.keys().collect::<Vec<_>>()
            ));
        }
        if self.listen.is_none() && self.voters.len() > 1 {
            return invalid(format!(
                "a quorum of {} voters needs a controller listener (listen)",
                self.voters.len()
            ));
        }
        if self.tick_interval.is_zero() {
            return invalid("tick_interval must be above zero".into());
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return invalid(format!(
                "election_ticks ({}) must exceed heartbeat_ticks ({}), which must be at least 1",
                self.election_ticks, self.heartbeat_ticks
            ));
        }
        if self.snapshot_interval_entries == 0 {
            return invalid("snapshot_interval_entries must be at least 1".into());
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > MAX_ENTRY_BYTES_CEILING {
            return invalid(format!(
                "max_entry_bytes ({}) must be in 1..={MAX_ENTRY_BYTES_CEILING}",
                self.max_entry_bytes
            ));
        }
        if self.max_pending_proposals == 0 || self.max_inflight_appends == 0 {
            return invalid(
                "max_pending_proposals and max_inflight_appends must be at least 1".into(),
            );
        }
        if self.propose_timeout.is_zero() {
            return invalid("propose_timeout must be above zero".into());
        }
        Ok(())
    }

    /// The peers: every voter but this node.
    pub fn peers(&self) -> impl Iterator<Item = (u64, SocketAddr)> + '_ {
        self.voters
            .iter()
            .filter(move |(id, _)| **id != self.node_id)
            .map(|(id, addr)| (*id, *addr))
    }

    /// raft-rs's configuration, resuming after `applied`.
    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: self.max_append_bytes,
            max_inflight_msgs: self.max_inflight_appends,
            // A leader that cannot reach a majority for an election timeout steps down, and
            // followers that heard from a leader recently ignore votes: with pre_vote, a node cut
            // off and healed cannot depose a healthy leader.
            check_quorum: true,
            pre_vote: true,
            max_committed_size_per_ready: crate::limits::MAX_APPLY_BYTES_PER_READY,
            ..raft::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> BTreeMap<u64, SocketAddr> {
        ids.iter()
            .map(|id| (*id, SocketAddr::from(([127, 0, 0, 1], 9000 + *id as u16))))
            .collect()
    }

    #[test]
    fn defaults_validate_and_bad_settings_are_named() {
        let listen = Some(SocketAddr::from(([127, 0, 0, 1], 9001)));
        let good = QuorumConfig::new(1, voters(&[1, 2, 3]), listen, "/tmp/q".into());
        assert!(good.validate().is_ok());
        assert!(good.raft_config(0).validate().is_ok());

        let message = |config: QuorumConfig| match config.validate() {
            Err(QuorumError::InvalidConfig(message)) => message,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert!(message(QuorumConfig::new(
            4,
            voters(&[1, 2, 3]),
            listen,
            "/q".into()
        ))
        .contains("not among controller.quorum.voters"));
        assert!(
            message(QuorumConfig::new(1, voters(&[1, 2, 3]), None, "/q".into()))
                .contains("needs a controller listener")
        );
        let mut ticks = good.clone();
        ticks.election_ticks = 1;
        assert!(message(ticks).contains("election_ticks"));
        let mut entry = good;
        entry.max_entry_bytes = MAX_ENTRY_BYTES_CEILING + 1;
        assert!(message(entry).contains("max_entry_bytes"));
        assert!(QuorumConfig::new(1, voters(&[1]), None, "/q".into())
            .validate()
            .is_ok());
    }
}
