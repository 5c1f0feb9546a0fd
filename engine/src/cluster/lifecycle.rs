//! A broker's life in the cluster, driven from shard 0: it registers with the active controller
//! (a new incarnation per process start), heartbeats every `broker.heartbeat.interval.ms` with the
//! metadata index it has applied (the controller unfences it once it has caught up with its own
//! registration) and whether its data directory is offline (`replication::log_dir`), re-registers
//! when the controller no longer knows its epoch, and on shutdown asks
//! the controller to move its leaderships away before it stops serving (controlled shutdown).
//! A broker that is not a voter also follows the metadata log by fetching it from the controller.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::agent::{ClusterAgent, ControllerError};
use super::controller::{
    Heartbeat, Registration, DUPLICATE_BROKER_REGISTRATION, STALE_BROKER_EPOCH,
};
use super::records::BrokerEndpoint;
use super::rpc_api::{self, FetchMetadata};
use crate::replication::log_dir::LogDirHealth;

/// Heartbeat interval while the broker is fenced: it is waiting to be let in, so it asks often.
pub const FENCED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// How often a broker that is not a voter fetches the metadata log when nothing new came.
pub const METADATA_FETCH_INTERVAL: Duration = Duration::from_millis(100);
/// A registration refused as a duplicate is retried for this many session timeouts: the previous
/// incarnation of a restarted broker is fenced within one; a second live process is not.
pub const DUPLICATE_RETRY_SESSIONS: u32 = 2;
/// Pause between two registration attempts refused as duplicates.
pub const DUPLICATE_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How long a heartbeat or a registration waits for the controller's answer (independent of the
/// heartbeat interval: a busy controller may take a moment, and a dead one closes the connection).
pub const HEARTBEAT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a controlled shutdown waits for the controller before the broker stops anyway.
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a broker cannot join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the controller refused the registration of node {node_id}: {message}")]
    Refused { node_id: i32, message: String },
    #[error("could not reach the controller quorum: {0}")]
    Unreachable(ControllerError),
}

/// The broker's registration state.
pub struct BrokerLifecycle {
    agent: Rc<ClusterAgent>,
    /// The data directory's health, reported in every heartbeat (`replication::log_dir`).
    log_dir: Arc<LogDirHealth>,
    incarnation: [u8; 16],
    /// The current registration's epoch (-1: not registered).
    pub epoch: Cell<i64>,
    pub fenced: Cell<bool>,
    /// Set on SIGTERM: the next heartbeats ask for a controlled shutdown.
    shutting_down: Cell<bool>,
    shutdown_done: ringbroker_quorum::watch::Watch,
    stopped: Cell<bool>,
}

impl BrokerLifecycle {
    pub fn new(agent: Rc<ClusterAgent>, log_dir: Arc<LogDirHealth>) -> Rc<BrokerLifecycle> {
        Rc::new(BrokerLifecycle {
            agent,
            log_dir,
            incarnation: *uuid::Uuid::new_v4().as_bytes(),
            epoch: Cell::new(-1),
            fenced: Cell::new(true),
            shutting_down: Cell::new(false),
            shutdown_done: ringbroker_quorum::watch::Watch::new(0),
            stopped: Cell::new(false),
        })
    }

    fn registration(&self) -> Registration {
        let config = &self.agent.config;
        // Every client listener as it advertises itself, the inter-broker one first: the
        // registration's one-endpoint fields carry the first, for readers from before
        // `listeners`. Other brokers find it by name (`inter.broker.listener.name`).
        let inter_broker = config.security.inter_broker.listener_name();
        let mut listeners: Vec<BrokerEndpoint> = config
            .client_listeners()
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name().to_string(),
                host: l.advertised_host.clone(),
                port: i32::from(l.advertised_port),
                protocol: l.protocol,
            })
            .collect();
        listeners.sort_by_key(|l| l.name != inter_broker);
        Registration {
            node_id: config.node_id,
            incarnation: self.incarnation,
            listeners,
            rack: config.cluster.rack.clone(),
            cluster_id: super::meta_properties::read_cluster_id(&config.data_dir),
        }
    }

    /// Registers with the active controller, waiting for one up to `patience`. A registration
    /// refused because the node's previous incarnation still holds a session (a broker restarted
    /// quickly after a crash) is retried until that session has had time to expire.
    pub async fn register(&self, patience: Duration) -> Result<(), JoinError> {
        let node_id = self.agent.node_id;
        let payload = rpc_api::encode_registration(&self.registration());
        let session = self.agent.config.cluster.broker_session_timeout;
        let started = std::time::Instant::now();
        let reply = loop {
            let bytes = self
                .agent
                .call_controller(rpc_api::API_REGISTER_BROKER, payload.clone(), patience)
                .await
                .map_err(JoinError::Unreachable)?;
            let reply =
                rpc_api::decode_registration_reply(&bytes).map_err(|e| JoinError::Refused {
                    node_id,
                    message: e.to_string(),
                })?;
            let waiting_for_old_session = reply.error_code == DUPLICATE_BROKER_REGISTRATION
                && started.elapsed() < session * DUPLICATE_RETRY_SESSIONS;
            if !waiting_for_old_session {
                break reply;
            }
            tracing::info!(node_id, "the previous incarnation of this node still has a session; waiting for it to expire");
            glommio::timer::sleep(DUPLICATE_RETRY_INTERVAL).await;
        };
        if reply.error_code != 0 {
            return Err(JoinError::Refused {
                node_id,
                message: reply.message.unwrap_or_default(),
            });
        }
        self.epoch.set(reply.epoch);
        self.fenced.set(true);
        tracing::info!(
            node_id,
            epoch = reply.epoch,
            "registered with the controller"
        );
        Ok(())
    }

    /// Heartbeats until the broker stops: unfencing, re-registration, controlled shutdown.
    pub async fn run_heartbeats(self: Rc<Self>) {
        let config = self.agent.config.clone();
        // The first heartbeat goes at once: a registered broker that has caught up is let in
        // without waiting an interval.
        let mut interval = Duration::ZERO;
        while !self.stopped.get() {
            glommio::timer::sleep(interval).await;
            interval = if self.fenced.get() || self.shutting_down.get() {
                FENCED_HEARTBEAT_INTERVAL
            } else {
                config.cluster.broker_heartbeat_interval
            };
            let beat = Heartbeat {
                node_id: self.agent.node_id,
                epoch: self.epoch.get(),
                applied_index: self.agent.applied.get(),
                want_shutdown: self.shutting_down.get(),
                log_dir_offline: self.log_dir.offline(),
            };
            let reply = self
                .agent
                .call_controller(
                    rpc_api::API_HEARTBEAT,
                    rpc_api::encode_heartbeat(&beat),
                    HEARTBEAT_REQUEST_TIMEOUT,
                )
                .await
                .and_then(|bytes| {
                    rpc_api::decode_heartbeat_reply(&bytes)
                        .map_err(|e| ControllerError::Remote(e.to_string()))
                });
            match reply {
                Ok(reply) if reply.error_code == STALE_BROKER_EPOCH => {
                    tracing::warn!(message = reply.message.as_deref().unwrap_or(""), "the controller no longer knows this broker's registration; registering again");
                    if let Err(error) = self.register(HEARTBEAT_REQUEST_TIMEOUT).await {
                        tracing::warn!(%error, "registration failed; retrying");
                    }
                }
                Ok(reply) if reply.error_code != 0 => {
                    tracing::warn!(
                        error_code = reply.error_code,
                        message = reply.message.as_deref().unwrap_or(""),
                        "heartbeat refused"
                    );
                }
                Ok(reply) => {
                    if self.fenced.get() != reply.fenced && !self.shutting_down.get() {
                        tracing::info!(
                            node_id = self.agent.node_id,
                            fenced = reply.fenced,
                            "broker state changed"
                        );
                    }
                    self.fenced.set(reply.fenced);
                    if self.shutting_down.get() && reply.shutdown_complete {
                        self.shutdown_done.set(1);
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "heartbeat not answered");
                }
            }
        }
    }

    /// Controlled shutdown: asks the controller to move this broker's leaderships away and waits
    /// (bounded) until it has.
    pub async fn shut_down(&self) {
        self.shutting_down.set(true);
        let done = self.shutdown_done.wait_until(|d| d != 0);
        let timer = glommio::timer::sleep(CONTROLLED_SHUTDOWN_TIMEOUT);
        futures::pin_mut!(done, timer);
        match futures::future::select(done, timer).await {
            futures::future::Either::Left(_) => {
                tracing::info!("controlled shutdown done: this broker leads no partition")
            }
            futures::future::Either::Right(_) => tracing::warn!(
                timeout_ms = CONTROLLED_SHUTDOWN_TIMEOUT.as_millis() as u64,
                "controlled shutdown not confirmed by the controller in time; stopping anyway"
            ),
        }
        self.stopped.set(true);
    }
}

/// Follows the metadata log from the active controller (brokers that are not voters).
pub async fn follow_metadata(agent: Rc<ClusterAgent>, stopped: Rc<Cell<bool>>) {
    while !stopped.get() {
        let from_index = agent.applied.get() + 1;
        let request = rpc_api::encode_fetch_metadata(&FetchMetadata {
            node_id: agent.node_id,
            from_index,
            max_bytes: super::agent::FETCH_METADATA_MAX_BYTES,
        });
        let reply = agent
            .call_controller(
                rpc_api::API_FETCH_METADATA,
                request,
                METADATA_FETCH_INTERVAL * 10,
            )
            .await
            .and_then(|bytes| {
                rpc_api::decode_metadata_chunk(&bytes)
                    .map_err(|e| ControllerError::Remote(e.to_string()))
            });
        let mut progressed = false;
        match reply {
            Ok(chunk) => {
                if let Some((index, snapshot)) = chunk.snapshot {
                    if index >= from_index {
                        agent.restore_snapshot(index, &snapshot);
                        progressed = true;
                    }
                }
                for (index, entry) in chunk.entries {
                    if index < agent.applied.get() + 1 {
                        continue;
                    }
                    if entry.is_empty() {
                        // A new leader's empty entry: nothing to apply, but the index moves on.
                        agent.apply_entry(index, &super::records::encode(&[]));
                    } else {
                        agent.apply_entry(index, &entry);
                    }
                    progressed = true;
                }
            }
            Err(error) => tracing::debug!(%error, "metadata fetch failed"),
        }
        if !progressed {
            glommio::timer::sleep(METADATA_FETCH_INTERVAL).await;
        }
    }
}
