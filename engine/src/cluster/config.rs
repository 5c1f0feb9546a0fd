//! Cluster settings: this node's roles, the controller quorum's voters, and the timeouts of broker
//! registration (Kafka's names in the doc comments). With no cluster flags a broker is a
//! single-node cluster of its own: node 0, broker and controller, the only voter, no controller
//! listener.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

/// `broker.heartbeat.interval.ms` (Kafka's default is 2000). Shorter here so that a broker whose
/// controller connection merely broke heartbeats again well within
/// `agent::CLOSED_CONNECTION_FENCE_GRACE`, which is what lets a killed broker be fenced (and its
/// partitions led elsewhere) about a second after its process died. A heartbeat is a small
/// in-memory exchange with the active controller.
pub const DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// Kafka's `broker.session.timeout.ms` default: a broker silent this long is fenced.
pub const DEFAULT_BROKER_SESSION_TIMEOUT_MS: u64 = 9_000;
/// Kafka's `default.replication.factor` default.
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;
/// Kafka's `offsets.topic.replication.factor` default (capped by the live brokers at creation).
pub const DEFAULT_OFFSETS_TOPIC_REPLICATION_FACTOR: i16 = 3;
/// Kafka's `transaction.state.log.replication.factor` default (capped by the live brokers at
/// creation).
pub const DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR: i16 = 3;
/// Kafka's `transaction.state.log.min.isr` default: the `min.insync.replicas` of
/// `__transaction_state` (capped by its replication factor).
pub const DEFAULT_TRANSACTION_STATE_MIN_ISR: i32 = 2;
/// Kafka's `initial.broker.registration.timeout.ms` default: how long a starting broker waits to
/// register with the controller quorum (and be let in) before it gives up, naming the voters it
/// could not reach.
pub const DEFAULT_CONTROLLER_STARTUP_TIMEOUT_MS: u64 = 60_000;

/// Kafka's `min.insync.replicas` default: acks=all needs this many in-sync replicas.
pub const DEFAULT_MIN_INSYNC_REPLICAS: i32 = 1;
/// Kafka's `replica.lag.time.max.ms` default: a follower that has not caught up with the leader's
/// log end for this long leaves the ISR.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;
/// Kafka's `replica.fetch.max.bytes` default: bytes a follower asks per partition and fetch.
pub const DEFAULT_REPLICA_FETCH_MAX_BYTES: i32 = 1 << 20;
/// Kafka's `replica.fetch.wait.max.ms` default: how long a leader holds a follower's fetch that
/// finds nothing new (the follower's long poll).
pub const DEFAULT_REPLICA_FETCH_WAIT_MAX_MS: i32 = 500;

/// Kafka's `offsets.commit.timeout.ms` default: how long a group coordinator waits for its
/// offsets partition's in-sync replicas to hold a write.
pub const DEFAULT_OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// Kafka's `leader.imbalance.check.interval.seconds` default.
pub const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_S: u64 = 300;

/// How partitions are replicated between brokers (Kafka's names in the doc comments).
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Kafka `min.insync.replicas` (the broker default; topics may override it).
    pub min_insync_replicas: i32,
    /// Kafka `replica.lag.time.max.ms`.
    pub replica_lag_time_max: Duration,
    /// Kafka `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// Kafka `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: i32,
    /// Kafka `unclean.leader.election.enable` (the broker default; topics may override it).
    pub unclean_leader_election: bool,
    /// Kafka `auto.leader.rebalance.enable`: preferred replicas lead again once back in sync.
    pub auto_leader_rebalance: bool,
    /// Kafka `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// Kafka `offsets.commit.timeout.ms`.
    pub offsets_commit_timeout: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            min_insync_replicas: DEFAULT_MIN_INSYNC_REPLICAS,
            replica_lag_time_max: Duration::from_millis(DEFAULT_REPLICA_LAG_TIME_MAX_MS),
            replica_fetch_max_bytes: DEFAULT_REPLICA_FETCH_MAX_BYTES,
            replica_fetch_wait_max_ms: DEFAULT_REPLICA_FETCH_WAIT_MAX_MS,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(
                DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_S,
            ),
            offsets_commit_timeout: Duration::from_millis(DEFAULT_OFFSETS_COMMIT_TIMEOUT_MS),
        }
    }
}

/// What a node does (Kafka `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    pub const COMBINED: Roles = Roles {
        broker: true,
        controller: true,
    };

    /// Parses `broker`, `controller` or `broker,controller` (either order).
    pub fn parse(text: &str) -> Result<Roles, ClusterConfigError> {
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in text.split(',').map(str::trim) {
            match role {
                "broker" if !roles.broker => roles.broker = true,
                "controller" if !roles.controller => roles.controller = true,
                _ => return Err(ClusterConfigError::Roles(text.to_string())),
            }
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => write!(f, "broker,controller"),
            (true, false) => write!(f, "broker"),
            (false, true) => write!(f, "controller"),
            (false, false) => write!(f, "none"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterConfigError {
    #[error("process roles must be 'broker', 'controller' or 'broker,controller', got '{0}'")]
    Roles(String),
    #[error("controller quorum voter '{0}' is not ID@HOST:PORT (e.g. 1@10.0.0.1:9093)")]
    Voter(String),
    #[error("controller quorum voter id {0} appears twice")]
    DuplicateVoter(i32),
    #[error("cannot resolve controller address '{0}': {1}")]
    Resolve(String, String),
    #[error("node {node_id} has the controller role but is not among the voters {voters}")]
    NotAVoter { node_id: i32, voters: String },
    #[error("node {node_id} is a voter but has no controller role (add --process-roles broker,controller or controller)")]
    VoterWithoutRole { node_id: i32 },
    #[error("node {0} has the controller role in a quorum of several voters: --controller-listen is required")]
    NoControllerListener(i32),
    #[error("a broker-only node needs --controller-quorum-voters to find the controllers")]
    NoVoters,
}

/// Parses Kafka's `controller.quorum.voters`: `1@host:port,2@host:port,...`.
pub fn parse_voters(text: &str) -> Result<BTreeMap<i32, SocketAddr>, ClusterConfigError> {
    let mut voters = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| ClusterConfigError::Voter(item.to_string()))?;
        let id: i32 = id
            .parse()
            .map_err(|_| ClusterConfigError::Voter(item.to_string()))?;
        if id < 0 {
            return Err(ClusterConfigError::Voter(item.to_string()));
        }
        let address = resolve(address)?;
        if voters.insert(id, address).is_some() {
            return Err(ClusterConfigError::DuplicateVoter(id));
        }
    }
    Ok(voters)
}

/// Resolves `host:port` to its first address.
pub fn resolve(address: &str) -> Result<SocketAddr, ClusterConfigError> {
    address
        .to_socket_addrs()
        .map_err(|e| ClusterConfigError::Resolve(address.to_string(), e.to_string()))?
        .next()
        .ok_or_else(|| ClusterConfigError::Resolve(address.to_string(), "no address".into()))
}

/// This node's place in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub roles: Roles,
    /// The controller quorum (Kafka `controller.quorum.voters`).
    pub voters: BTreeMap<i32, SocketAddr>,
    /// Where this node's controller accepts peers and brokers (Kafka `listeners` CONTROLLER);
    /// `None` for a single voter that needs no peers, and for broker-only nodes.
    pub controller_listen: Option<SocketAddr>,
    /// Kafka `broker.rack`.
    pub rack: Option<String>,
    /// Set by the operator (`--cluster-id`, as `kafka-storage format --cluster-id`); otherwise the
    /// first active controller picks one.
    pub cluster_id: Option<String>,
    /// Kafka `default.replication.factor`.
    pub default_replication_factor: i16,
    /// Kafka `offsets.topic.replication.factor` (capped by the live brokers).
    pub offsets_topic_replication_factor: i16,
    /// Kafka `transaction.state.log.replication.factor` (capped by the live brokers).
    pub transaction_state_replication_factor: i16,
    /// Kafka `transaction.state.log.min.isr` (capped by the topic's replication factor).
    pub transaction_state_min_isr: i32,
    /// Kafka `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval: Duration,
    /// Kafka `broker.session.timeout.ms`.
    pub broker_session_timeout: Duration,
    /// How long start-up waits for the quorum before it fails, naming the unreachable voters
    /// (Kafka `initial.broker.registration.timeout.ms`).
    pub controller_startup_timeout: Duration,
    /// Follower fetching, the ISR and acks=all.
    pub replication: ReplicationConfig,
}

impl ClusterConfig {
    /// The embedded default: a single-node cluster of node `node_id`.
    pub fn single_node(node_id: i32) -> ClusterConfig {
        ClusterConfig {
            roles: Roles::COMBINED,
            voters: BTreeMap::from([(node_id, SocketAddr::from(([127, 0, 0, 1], 0)))]),
            controller_listen: None,
            rack: None,
            cluster_id: None,
            default_replication_factor: DEFAULT_REPLICATION_FACTOR,
            offsets_topic_replication_factor: DEFAULT_OFFSETS_TOPIC_REPLICATION_FACTOR,
            transaction_state_replication_factor: DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR,
            transaction_state_min_isr: DEFAULT_TRANSACTION_STATE_MIN_ISR,
            broker_heartbeat_interval: Duration::from_millis(DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS),
            broker_session_timeout: Duration::from_millis(DEFAULT_BROKER_SESSION_TIMEOUT_MS),
            controller_startup_timeout: Duration::from_millis(
                DEFAULT_CONTROLLER_STARTUP_TIMEOUT_MS,
            ),
            replication: ReplicationConfig::default(),
        }
    }

    /// Whether this node is the only voter and so needs no network to reach a quorum.
    pub fn is_single_voter(&self, node_id: i32) -> bool {
        self.voters.len() == 1 && self.voters.contains_key(&node_id)
    }

    /// Checks that roles, voters and listeners fit together for node `node_id`.
    pub fn validate(&self, node_id: i32) -> Result<(), ClusterConfigError> {
        let is_voter = self.voters.contains_key(&node_id);
        let voters = || {
            self.voters
                .iter()
                .map(|(id, a)| format!("{id}@{a}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if self.roles.controller && !is_voter {
            return Err(ClusterConfigError::NotAVoter {
                node_id,
                voters: voters(),
            });
        }
        if !self.roles.controller && is_voter {
            return Err(ClusterConfigError::VoterWithoutRole { node_id });
        }
        if self.voters.is_empty() {
            return Err(ClusterConfigError::NoVoters);
        }
        if self.roles.controller && self.voters.len() > 1 && self.controller_listen.is_none() {
            return Err(ClusterConfigError::NoControllerListener(node_id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_as_kafka_spells_them() {
        assert_eq!(Roles::parse("broker,controller"), Ok(Roles::COMBINED));
        assert_eq!(Roles::parse("controller, broker"), Ok(Roles::COMBINED));
        assert!(Roles::parse("broker").is_ok_and(|r| r.broker && !r.controller));
        assert!(Roles::parse("controller").is_ok_and(|r| !r.broker && r.controller));
        assert!(Roles::parse("broker,broker").is_err());
        assert!(Roles::parse("zookeeper").is_err());
        assert!(Roles::parse("").is_err());
    }

    #[test]
    fn voters_parse_and_refuse_bad_entries() {
        let voters = parse_voters("1@127.0.0.1:9093,2@127.0.0.1:9094").expect("voters");
        assert_eq!(voters.len(), 2);
        assert_eq!(voters[&2].port(), 9094);
        assert!(matches!(
            parse_voters("1@127.0.0.1:9093,1@127.0.0.1:9094"),
            Err(ClusterConfigError::DuplicateVoter(1))
        ));
        assert!(matches!(
            parse_voters("127.0.0.1:9093"),
            Err(ClusterConfigError::Voter(_))
        ));
        assert!(matches!(
            parse_voters("x@127.0.0.1:9093"),
            Err(ClusterConfigError::Voter(_))
        ));
    }

    #[test]
    fn roles_voters_and_listener_must_agree() {
        let mut config = ClusterConfig::single_node(0);
        assert!(config.validate(0).is_ok());
        assert!(config.is_single_voter(0));
        assert!(matches!(
            config.validate(5),
            Err(ClusterConfigError::NotAVoter { node_id: 5, .. })
        ));
        config.voters = parse_voters("1@127.0.0.1:9093,2@127.0.0.1:9094").expect("voters");
        assert!(matches!(
            config.validate(1),
            Err(ClusterConfigError::NoControllerListener(1))
        ));
        config.controller_listen = config.voters.get(&1).copied();
        assert!(config.validate(1).is_ok());
        config.roles = Roles::parse("broker").expect("roles");
        assert!(matches!(
            config.validate(1),
            Err(ClusterConfigError::VoterWithoutRole { node_id: 1 })
        ));
        assert!(config.validate(3).is_ok(), "a broker-only node");
    }
}
