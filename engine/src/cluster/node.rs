//! Starting and stopping this node's part of the cluster, on shard 0: the data directory's node id
//! is checked, the metadata quorum member starts (voters: its log replays into the image), the
//! image is published to the shards, a pre-cluster `topics.json` is moved into the metadata log,
//! the start-up SCRAM credentials reach the metadata log, and the broker registers with the
//! active controller and starts heartbeating.

use std::cell::Cell;
use std::rc::Rc;

use ringbroker_quorum::{Quorum, QuorumConfig, RpcHandler, StateMachine};

use super::agent::{raft_id_of_node, ClusterAgent, ControllerRequests};
use super::lifecycle::{self, BrokerLifecycle};
use super::{meta_properties, migrate, publish};
use crate::shard::Shard;

/// The quorum's directory inside the data directory (Kafka's name for the metadata log).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// This node's running cluster membership.
pub struct ClusterNode {
    pub agent: Rc<ClusterAgent>,
    lifecycle: Option<Rc<BrokerLifecycle>>,
    following: Rc<Cell<bool>>,
}

/// Starts the cluster membership on shard 0. Errors are fatal: the broker must not start.
pub async fn start(shard: &Rc<Shard>) -> Result<ClusterNode, String> {
    let config = shard.config.clone();
    let cluster = &config.cluster;
    meta_properties::check_node(&config.data_dir, config.node_id).map_err(|e| e.to_string())?;
    let agent = ClusterAgent::new(config.clone());
    shard.set_agent(agent.clone());
    if cluster.roles.controller {
        let quorum = Quorum::start(
            quorum_config(shard),
            agent.clone() as Rc<dyn StateMachine>,
            Some(Rc::new(ControllerRequests(Rc::downgrade(&agent))) as Rc<dyn RpcHandler>),
        )
        .await
        .map_err(|e| format!("cannot start the metadata quorum: {e}"))?;
        agent.set_quorum(quorum);
        tracing::debug!("metadata quorum started");
        glommio::spawn_local(agent.clone().run_controller_duties()).detach();
    }
    if let Some(cluster_id) = agent.image().cluster_id {
        if let Some(found) = meta_properties::read_cluster_id(&config.data_dir) {
            if found != cluster_id {
                return Err(meta_properties::MetaPropertiesError::OtherCluster {
                    dir: config.data_dir.clone(),
                    found,
                    wanted: cluster_id,
                }
                .to_string());
            }
        }
    }
    glommio::spawn_local(publish::run_publisher(agent.clone(), shard.clone())).detach();
    agent.changed.bump();
    migrate::topics_json(&agent).await?;
    glommio::spawn_local(migrate::acls_json(agent.clone())).detach();
    tracing::debug!("registering");
    let following = Rc::new(Cell::new(false));
    let mut node = ClusterNode {
        agent: agent.clone(),
        lifecycle: None,
        following: following.clone(),
    };
    if cluster.roles.broker && !cluster.roles.controller {
        glommio::spawn_local(lifecycle::follow_metadata(agent.clone(), following)).detach();
    }
    // Before registering: the broker is let in, and every shard serves clients, only with an
    // image that holds these credentials (installed for all shards before that image reaches
    // them), so no client finds a start-up user missing.
    migrate::scram_credentials(&agent).await?;
    if cluster.roles.broker {
        let lifecycle = BrokerLifecycle::new(agent.clone(), shard.log_dir.clone());
        lifecycle
            .register(cluster.controller_startup_timeout)
            .await
            .map_err(|e| e.to_string())?;
        glommio::spawn_local(lifecycle.clone().run_heartbeats()).detach();
        node.lifecycle = Some(lifecycle);
    }
    Ok(node)
}

fn quorum_config(shard: &Shard) -> QuorumConfig {
    let config = &shard.config;
    let voters = config
        .cluster
        .voters
        .iter()
        .map(|(id, addr)| (raft_id_of_node(*id), *addr))
        .collect();
    let mut quorum = QuorumConfig::new(
        raft_id_of_node(config.node_id),
        voters,
        config.cluster.controller_listen,
        config.data_dir.join(METADATA_LOG_DIR),
    );
    quorum.election_ticks = ELECTION_TICKS;
    quorum
}

/// Ticks (100 ms each) without a leader before a voter campaigns; raft-rs randomises it to
/// [0.8 s, 1.6 s). Below the quorum crate's 1-2 s so that a new active controller is in place
/// within 2 s of losing one (issue 17's target); pre-vote and check-quorum keep a slow or paused
/// node from deposing a healthy leader.
pub const ELECTION_TICKS: usize = 8;

impl ClusterNode {
    /// Controlled shutdown (the broker's leaderships move away), then the quorum member stops.
    pub async fn stop(&self) {
        if let Some(lifecycle) = &self.lifecycle {
            lifecycle.shut_down().await;
        }
        self.following.set(true);
        self.agent.stopping.set(true);
        if let Some(quorum) = self.agent.quorum() {
            if let Err(error) = quorum.shutdown().await {
                tracing::warn!(%error, "the metadata quorum stopped with an error");
            }
        }
    }
}
