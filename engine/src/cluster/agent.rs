//! The cluster agent: this node's member of the cluster, on shard 0. It holds the authoritative
//! copy of the metadata image (fed by the local quorum when this node is a voter, or fetched from
//! the active controller when it is not), finds the active controller for requests, and, while
//! this node is the active controller, makes the controller's decisions and commits them.
//!
//! Decisions are made one at a time (`decisions` lock): each reads the image, proposes its
//! records and waits until they are applied, so the next decision sees them. Metadata changes are
//! rare and small; serialising them is what keeps them consistent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use kafka_protocol::ResponseError;
use ringbroker_quorum::watch::Watch;
use ringbroker_quorum::{ProposeError, Quorum, RpcClient, RpcError, RpcHandler, StateMachine};

use super::controller::{self, BrokerSessions, Context, Decision, TopicOutcome};
use super::image::MetadataImage;
use super::records::{self, MetadataRecord};
use super::rpc_api::{self, AdminReply, AdminRequest, NOT_CONTROLLER};
use super::{acl_control, liveness_probe, scram_control};
use crate::config::BrokerConfig;

/// How long one request to a controller may take before the next voter is tried.
pub const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two rounds over the voters when none is the active controller (an election).
pub const CONTROLLER_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long a forwarded admin request waits for the controller and for its change to reach
/// this broker's shards before it answers REQUEST_TIMED_OUT (Kafka's default request timeout).
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of committed entries one metadata fetch returns.
pub const FETCH_METADATA_MAX_BYTES: usize = 1 << 20;

/// Why a controller could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControllerError {
    #[error("no active controller answered within {waited_ms} ms (voters tried: {tried})")]
    Unavailable { waited_ms: u64, tried: String },
    #[error("the controller answered with an error: {0}")]
    Remote(String),
}

/// This node's member of the cluster (shard 0 only).
pub struct ClusterAgent {
    pub node_id: i32,
    pub config: Rc<BrokerConfig>,
    image: RefCell<MetadataImage>,
    /// The index applied to `image`.
    pub applied: Watch,
    /// Bumped on every change of `image` (the publisher waits on it).
    pub changed: Watch,
    /// The image index installed (and reconciled) on every shard of this node.
    pub published: Watch,
    quorum: RefCell<Option<Rc<Quorum>>>,
    rpc: Rc<RpcClient>,
    /// Set when the node stops: the controller duties end.
    pub stopping: Cell<bool>,
    /// Serialises the active controller's decisions.
    decisions: futures::lock::Mutex<()>,
    sessions: RefCell<BrokerSessions>,
    /// The leader to try first (the last one that answered, or a hint).
    leader_hint: Cell<Option<i32>>,
    /// Which broker heartbeats on which inbound controller connection (the active controller's
    /// view): a closed connection of a broker that has no other is how a crash shows first.
    heartbeat_connections: RefCell<std::collections::HashMap<u64, i32>>,
}

impl ClusterAgent {
    pub fn new(config: Rc<BrokerConfig>) -> Rc<ClusterAgent> {
        Rc::new(ClusterAgent {
            node_id: config.node_id,
            image: RefCell::new(MetadataImage::default()),
            applied: Watch::new(0),
            changed: Watch::new(0),
            published: Watch::new(0),
            quorum: RefCell::new(None),
            rpc: RpcClient::new(Default::default()),
            stopping: Cell::new(false),
            decisions: futures::lock::Mutex::new(()),
            sessions: RefCell::new(BrokerSessions::default()),
            leader_hint: Cell::new(None),
            heartbeat_connections: RefCell::new(std::collections::HashMap::new()),
            config,
        })
    }

    pub fn set_quorum(&self, quorum: Rc<Quorum>) {
        *self.quorum.borrow_mut() = Some(quorum);
    }

    pub fn quorum(&self) -> Option<Rc<Quorum>> {
        self.quorum.borrow().clone()
    }

    /// A copy of the current image (cheap: the topic table is shared).
    pub fn image(&self) -> MetadataImage {
        self.image.borrow().clone()
    }

    /// Whether this node is the active controller now.
    pub fn is_active_controller(&self) -> bool {
        self.quorum().is_some_and(|q| q.is_leader())
    }

    /// Applies committed entries (the quorum's state machine, or a broker's metadata fetch).
    pub fn apply_entry(&self, index: u64, data: &[u8]) {
        if index <= self.image.borrow().applied_index {
            return;
        }
        match records::decode(data) {
            Ok(records) => self.image.borrow_mut().apply(index, &records),
            Err(error) => {
                // Every node decodes the same bytes the same way: skipping keeps them equal.
                tracing::error!(index, %error, "skipping a metadata log entry that does not decode");
                self.image.borrow_mut().apply(index, &[]);
            }
        }
        self.applied.set(index);
        self.changed.bump();
    }

    /// Replaces the image by a snapshot taken at `index`.
    pub fn restore_snapshot(&self, index: u64, data: &[u8]) {
        match records::decode(data) {
            Ok(records) => *self.image.borrow_mut() = MetadataImage::from_records(index, &records),
            Err(error) => {
                tracing::error!(index, %error, "metadata snapshot does not decode; starting empty");
                *self.image.borrow_mut() = MetadataImage::from_records(index, &[]);
            }
        }
        self.applied.set(index);
        self.changed.bump();
    }

    // ------------------------------------------------------------------ reaching the controller

    /// Sends `payload` to the active controller (this node itself when it is): follows
    /// NOT_CONTROLLER hints, tries every voter in turn, and gives up after `patience`.
    pub async fn call_controller(
        self: &Rc<Self>,
        api: u16,
        payload: Vec<u8>,
        patience: Duration,
    ) -> Result<Bytes, ControllerError> {
        let started = Instant::now();
        let voters: Vec<(i32, std::net::SocketAddr)> = self
            .config
            .cluster
            .voters
            .iter()
            .map(|(id, addr)| (*id, *addr))
            .collect();
        let mut tried = Vec::new();
        let mut next_voter = 0usize;
        loop {
            tracing::trace!(
                api,
                active = self.is_active_controller(),
                "calling the controller"
            );
            if self.is_active_controller() {
                return self
                    .serve_request(api, Bytes::from(payload), Caller::ThisProcess)
                    .await
                    .map_err(ControllerError::Remote);
            }
            let hint = self
                .quorum()
                .and_then(|q| q.leader())
                .map(node_id_of_raft_id)
                .or(self.leader_hint.get())
                .filter(|l| *l != self.node_id);
            let target = match hint.and_then(|h| voters.iter().find(|(id, _)| *id == h)) {
                Some(voter) => *voter,
                None => {
                    let voter = voters[next_voter % voters.len()];
                    next_voter += 1;
                    voter
                }
            };
            if target.0 != self.node_id {
                let timeout = CONTROLLER_REQUEST_TIMEOUT.min(patience);
                match self.rpc.call(target.1, api, &payload, timeout).await {
                    Ok(reply) => {
                        self.leader_hint.set(Some(target.0));
                        return Ok(reply);
                    }
                    Err(RpcError::Remote { message, .. })
                        if message.starts_with(NOT_CONTROLLER) =>
                    {
                        let leader = message[NOT_CONTROLLER.len()..].trim().parse::<i32>().ok();
                        self.leader_hint.set(leader.filter(|l| *l >= 0));
                    }
                    Err(RpcError::Remote { message, .. }) => {
                        return Err(ControllerError::Remote(message))
                    }
                    Err(error) => {
                        tried.push(format!("{}@{} ({error})", target.0, target.1));
                        self.leader_hint.set(None);
                    }
                }
            }
            if started.elapsed() >= patience {
                tried.dedup();
                return Err(ControllerError::Unavailable {
                    waited_ms: started.elapsed().as_millis() as u64,
                    tried: if tried.is_empty() {
                        "none answered as the active controller".into()
                    } else {
                        tried.join(", ")
                    },
                });
            }
            glommio::timer::sleep(CONTROLLER_RETRY_BACKOFF).await;
        }
    }

    /// A topic-changing request from a client of this broker: sent to the active controller;
    /// answered once the change has reached every shard of this broker, so a client sees what it
    /// created on the broker it asked.
    pub async fn admin(self: &Rc<Self>, request: AdminRequest) -> AdminReply {
        let failed = |error: ResponseError, message: String| {
            AdminReply::failed(&request, error.code(), &message)
        };
        let reply = match self
            .call_controller(request.api(), request.encode(), ADMIN_REQUEST_TIMEOUT)
            .await
        {
            Ok(bytes) => match rpc_api::decode_admin_reply(&bytes) {
                Ok(reply) => reply,
                Err(e) => return failed(ResponseError::UnknownServerError, e.to_string()),
            },
            Err(ControllerError::Unavailable { waited_ms, tried }) => {
                return failed(
                    ResponseError::RequestTimedOut,
                    format!("no active controller within {waited_ms} ms ({tried})"),
                )
            }
            Err(ControllerError::Remote(message)) => {
                return failed(ResponseError::NotController, message)
            }
        };
        if let Some(index) = reply.index {
            let published = self.published.wait_until(move |p| p >= index);
            let timer = glommio::timer::sleep(ADMIN_REQUEST_TIMEOUT);
            futures::pin_mut!(published, timer);
            if let futures::future::Either::Right(_) =
                futures::future::select(published, timer).await
            {
                return failed(
                    ResponseError::RequestTimedOut,
                    format!(
                        "the change (metadata index {index}) did not reach this broker in time"
                    ),
                );
            }
        }
        reply
    }

    // ------------------------------------------------------------------ the active controller

    /// Decides with the current image and commits the decision's records. Returns the answer and
    /// the metadata index it rests on (its commit, or the image it was decided on when there was
    /// nothing to commit). `Err` is the error every requester of the decision gets (the quorum
    /// could not commit).
    pub async fn decide_and_commit<T>(
        &self,
        decide: impl FnOnce(&Context<'_>, &mut BrokerSessions) -> (T, Vec<MetadataRecord>),
    ) -> Result<(T, Option<u64>), (ResponseError, String)> {
        let _turn = self.decisions.lock().await;
        let quorum = self.quorum().ok_or((
            ResponseError::NotController,
            "this node is not a controller".to_string(),
        ))?;
        if !quorum.is_leader() {
            return Err((
                ResponseError::NotController,
                format!(
                    "{NOT_CONTROLLER}{}",
                    quorum.leader().map_or(-1, node_id_of_raft_id)
                ),
            ));
        }
        let (answer, records, seen_index) = {
            let image = self.image.borrow();
            let mut sessions = self.sessions.borrow_mut();
            let ctx = Context {
                broker: &self.config,
                cluster: &self.config.cluster,
                image: &image,
            };
            let (answer, records) = decide(&ctx, &mut sessions);
            (answer, records, image.applied_index)
        };
        if records.is_empty() {
            // Nothing to commit, but the answer rests on the image at `seen_index`: a broker
            // forwarding it waits until it has that image too (a TOPIC_ALREADY_EXISTS must not
            // reach a client before the topic does).
            return Ok((answer, Some(seen_index)));
        }
        match quorum.propose(records::encode(&records)).await {
            Ok(index) => Ok((answer, Some(index))),
            Err(ProposeError::NotLeader { leader }) => Err((
                ResponseError::NotController,
                format!("{NOT_CONTROLLER}{}", leader.map_or(-1, node_id_of_raft_id)),
            )),
            Err(e) => Err((ResponseError::RequestTimedOut, e.to_string())),
        }
    }

    /// Serves one request of a broker (or of this node) as the active controller.
    pub async fn serve_request(
        &self,
        api: u16,
        payload: Bytes,
        caller: Caller,
    ) -> Result<Bytes, String> {
        let leader = self.quorum().and_then(|q| q.leader());
        if !self.is_active_controller() {
            return Err(format!(
                "{NOT_CONTROLLER}{}",
                leader.map_or(-1, node_id_of_raft_id)
            ));
        }
        let reply = match api {
            rpc_api::API_REGISTER_BROKER => self.serve_registration(&payload, caller).await?,
            rpc_api::API_HEARTBEAT => self.serve_heartbeat(&payload).await?,
            rpc_api::API_FETCH_METADATA => self.serve_fetch_metadata(&payload)?,
            _ => {
                let request = AdminRequest::decode(api, &payload).map_err(|e| e.to_string())?;
                let reply = self.serve_admin(request).await;
                rpc_api::encode_admin_reply(&reply)
            }
        };
        Ok(Bytes::from(reply))
    }

    async fn serve_registration(&self, payload: &[u8], caller: Caller) -> Result<Vec<u8>, String> {
        let registration = rpc_api::decode_registration(payload).map_err(|e| e.to_string())?;
        // This process's own broker registering: whatever incarnation of this node the image
        // holds is a process that is gone (this one holds the node's quorum seat now).
        let replaces_dead = caller == Caller::ThisProcess && registration.node_id == self.node_id;
        let node_id = registration.node_id;
        let now = Instant::now();
        let committed = self
            .decide_and_commit(|ctx, sessions| {
                match controller::register_broker(ctx, sessions, &registration, replaces_dead, now)
                {
                    Ok(records) => (None, records),
                    Err(error) => (Some(error), Vec::new()),
                }
            })
            .await;
        let reply = match committed {
            Ok((Some((code, message)), _)) => rpc_api::RegistrationReply {
                error_code: code,
                message: Some(message),
                epoch: -1,
            },
            Ok((None, _)) => {
                self.sessions.borrow_mut().heard(node_id, now);
                let epoch = self
                    .image
                    .borrow()
                    .brokers
                    .get(&node_id)
                    .map_or(-1, |b| b.epoch);
                tracing::info!(node_id, epoch, "registered broker");
                rpc_api::RegistrationReply {
                    error_code: 0,
                    message: None,
                    epoch,
                }
            }
            Err((error, message)) => return Err(not_controller_or(error, message)),
        };
        Ok(rpc_api::encode_registration_reply(&reply))
    }

    async fn serve_heartbeat(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let beat = rpc_api::decode_heartbeat(payload).map_err(|e| e.to_string())?;
        let now = Instant::now();
        // Heard now, before waiting for the decisions ahead of it (a slow commit holds them): a
        // live broker's session must not run out while its heartbeat waits in line.
        let current = self
            .image
            .borrow()
            .brokers
            .get(&beat.node_id)
            .is_some_and(|b| b.epoch == beat.epoch);
        if current && self.is_active_controller() {
            self.sessions.borrow_mut().heard(beat.node_id, now);
        }
        let committed = self
            .decide_and_commit(|ctx, sessions| {
                let mut decision = controller::heartbeat(ctx, sessions, &beat, now);
                let records = std::mem::take(&mut decision.records);
                (decision, records)
            })
            .await;
        let decision = committed
            .map_err(|(error, message)| not_controller_or(error, message))?
            .0;
        if decision.error.is_none() && !decision.fenced && beat.want_shutdown {
            tracing::info!(node_id = beat.node_id, "controlled shutdown of broker");
        }
        let (error_code, message) = decision.error.unwrap_or((0, String::new()));
        Ok(rpc_api::encode_heartbeat_reply(&rpc_api::HeartbeatReply {
            error_code,
            message: (!message.is_empty()).then_some(message),
            fenced: decision.fenced,
            shutdown_complete: decision.shutdown_complete,
        }))
    }

    fn serve_fetch_metadata(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let fetch = rpc_api::decode_fetch_metadata(payload).map_err(|e| e.to_string())?;
        let quorum = self.quorum().ok_or("not a controller")?;
        let max_bytes = fetch.max_bytes.clamp(1, FETCH_METADATA_MAX_BYTES);
        let chunk = match quorum.read_committed(fetch.from_index.max(1), max_bytes) {
            Ok(entries) => rpc_api::MetadataChunk {
                entries: entries
                    .into_iter()
                    .map(|(index, data)| (index, data.to_vec()))
                    .collect(),
                snapshot: None,
            },
            Err(_compacted) => rpc_api::MetadataChunk {
                entries: Vec::new(),
                snapshot: quorum
                    .snapshot()
                    .map(|(index, data)| (index, data.to_vec())),
            },
        };
        Ok(rpc_api::encode_metadata_chunk(&chunk))
    }

    async fn serve_admin(&self, request: AdminRequest) -> AdminReply {
        let committed = self
            .decide_and_commit(|ctx, _| {
                let Decision {
                    outcomes,
                    records,
                    removed_acls,
                } = decide_admin(ctx, &request);
                ((outcomes, removed_acls), records)
            })
            .await;
        match committed {
            Ok(((outcomes, removed_acls), index)) => {
                log_admin_changes(&request, &outcomes, &self.image.borrow());
                AdminReply {
                    outcomes,
                    index,
                    removed_acls,
                }
            }
            Err((error, message)) => AdminReply::failed(&request, error.code(), &message),
        }
    }

    /// The active controller's periodic duties: a fresh session for every broker when it takes
    /// over, the cluster id once, and fencing brokers whose session expired.
    pub async fn run_controller_duties(self: Rc<Self>) {
        let Some(quorum) = self.quorum() else { return };
        let mut seen = quorum.leader_change_count();
        let mut was_leader = false;
        let replication = self.config.cluster.replication.clone();
        let mut next_rebalance = Instant::now() + replication.leader_imbalance_check_interval;
        let mut last_check = Instant::now();
        let mut was_checking = false;
        let mut took_over_at = Instant::now();
        while !self.stopping.get() {
            let leader = quorum.is_leader();
            tracing::trace!(leader, "controller duties");
            if leader && !was_leader {
                self.take_over().await;
                took_over_at = Instant::now();
            }
            was_leader = leader;
            if !leader {
                // A new term starts its own sessions (take_over): no gap to make up for.
                was_checking = false;
            }
            if leader {
                let now = Instant::now();
                // A check far later than its interval means this controller did not run meanwhile:
                // the heartbeats of that time were not heard, through no fault of the brokers.
                let gap = now.saturating_duration_since(last_check);
                last_check = now;
                if was_checking && gap > STALLED_CONTROLLER_GAP {
                    let lost = gap - FENCE_CHECK_INTERVAL;
                    tracing::warn!(
                        stalled_ms = lost.as_millis() as u64,
                        "the active controller did not run for a while: broker sessions extended by that time instead of fencing"
                    );
                    self.sessions.borrow_mut().extend_all(lost);
                }
                was_checking = true;
                if now < took_over_at + FIRST_SESSION_AFTER_TAKEOVER {
                    self.end_sessions_of_silent_voters(&quorum, took_over_at, now);
                }
                let fenced = self
                    .decide_and_commit(|ctx, sessions| {
                        ((), controller::fence_expired(ctx, sessions, now))
                    })
                    .await;
                if let Err((_, message)) = fenced {
                    tracing::debug!(%message, "fencing check not committed");
                }
                if replication.auto_leader_rebalance && now >= next_rebalance {
                    next_rebalance = now + replication.leader_imbalance_check_interval;
                    let moved = self
                        .decide_and_commit(|ctx, _| {
                            let records = controller::rebalance_leaders(ctx.image);
                            (records.len(), records)
                        })
                        .await;
                    match moved {
                        Ok((count, _)) if count > 0 => tracing::info!(
                            partitions = count,
                            "preferred replicas lead again (auto.leader.rebalance.enable)"
                        ),
                        Ok(_) => {}
                        Err((_, message)) => {
                            tracing::debug!(%message, "leader rebalance not committed")
                        }
                    }
                }
            }
            let tick = glommio::timer::sleep(FENCE_CHECK_INTERVAL);
            let change = quorum.leader_changed(seen);
            futures::pin_mut!(tick, change);
            if let futures::future::Either::Right((count, _)) =
                futures::future::select(tick, change).await
            {
                seen = count;
            }
            if self.stopping.get() {
                return;
            }
        }
    }

    /// Right after a takeover no broker has heartbeated to this controller yet, and nobody saw
    /// the connections of a node that died with the old controller close. A combined node whose
    /// voter has sent no Raft message for `SILENT_VOTER_AFTER_TAKEOVER` (a live follower answers
    /// every tick) and whose broker has not heartbeated since the takeover is most likely that
    /// node: its session ends now instead of after `FIRST_SESSION_AFTER_TAKEOVER`. If it was
    /// merely slow, it is unfenced on its next heartbeat.
    fn end_sessions_of_silent_voters(&self, quorum: &Quorum, took_over_at: Instant, now: Instant) {
        if now.saturating_duration_since(took_over_at) < SILENT_VOTER_AFTER_TAKEOVER {
            return;
        }
        let status = quorum.status();
        let timeout = self.config.cluster.broker_session_timeout;
        let image = self.image.borrow();
        for voter in status.voters.iter().filter(|v| v.node_id != status.node_id) {
            let node_id = node_id_of_raft_id(voter.node_id);
            let silent = voter
                .last_contact
                .is_none_or(|at| now.saturating_duration_since(at) >= SILENT_VOTER_AFTER_TAKEOVER);
            if !silent || !image.brokers.contains_key(&node_id) {
                continue;
            }
            if self.sessions.borrow_mut().end_unless_heard_since(
                node_id,
                took_over_at,
                now,
                timeout,
            ) {
                tracing::info!(
                    node_id,
                    silent_ms = SILENT_VOTER_AFTER_TAKEOVER.as_millis() as u64,
                    "a voter silent since this controller took over: ending its broker's session"
                );
            }
        }
    }

    async fn take_over(self: &Rc<Self>) {
        tracing::info!(node_id = self.node_id, "this node is the active controller");
        // Every broker gets a first session of `FIRST_SESSION_AFTER_TAKEOVER`, not the whole
        // session timeout: a live broker finds the new controller and heartbeats within that,
        // while one that died with the old controller (a combined node killed with its quorum
        // leader: nobody saw its connection close) is fenced that much sooner.
        let cluster = &self.config.cluster;
        let first_session = FIRST_SESSION_AFTER_TAKEOVER.min(cluster.broker_session_timeout);
        let now = Instant::now();
        let started = (now + first_session)
            .checked_sub(cluster.broker_session_timeout)
            .unwrap_or(now);
        self.sessions
            .borrow_mut()
            .restart_all(&self.image.borrow(), started);
        // A node that died with the old controller is found at once when its listeners refuse
        // connections (the silent-voter rule and the first session above are for the rest).
        let others: Vec<i32> = (self.image.borrow().brokers.keys())
            .copied()
            .filter(|id| *id != self.node_id)
            .collect();
        for node_id in others {
            let agent = self.clone();
            glommio::spawn_local(async move { agent.fence_if_gone(node_id, now).await }).detach();
        }
        let wanted = self
            .config
            .cluster
            .cluster_id
            .clone()
            .unwrap_or_else(new_cluster_id);
        let result = self
            .decide_and_commit(|ctx, _| {
                let records = if ctx.image.cluster_id.is_none() {
                    vec![MetadataRecord::ClusterId(wanted)]
                } else {
                    Vec::new()
                };
                ((), records)
            })
            .await;
        if let Err((_, message)) = result {
            tracing::warn!(%message, "could not record the cluster id yet");
        }
    }
}

/// Raft's id of node `node_id`: raft-rs reserves 0 ("no node") and Kafka node ids start at 0, so
/// the quorum runs on node id + 1.
pub fn raft_id_of_node(node_id: i32) -> u64 {
    debug_assert!(node_id >= 0);
    node_id as u64 + 1
}

/// The node id of raft's id `raft_id` (see `raft_id_of_node`).
pub fn node_id_of_raft_id(raft_id: u64) -> i32 {
    debug_assert!(raft_id > 0);
    i32::try_from(raft_id - 1).unwrap_or(i32::MAX)
}

/// How often the active controller looks for brokers whose session expired (a fence happens at
/// most this late).
pub const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The session every broker starts with when a controller takes over: long enough for a live
/// broker to notice the old controller is gone, find the new one and heartbeat (its requests to
/// the old one time out after `lifecycle::HEARTBEAT_REQUEST_TIMEOUT`), short enough that a broker
/// that died with the old controller is fenced long before `broker.session.timeout.ms`.
pub const FIRST_SESSION_AFTER_TAKEOVER: Duration = Duration::from_millis(4_500);
/// A voter that has sent the new active controller no Raft message for this long after its
/// takeover (live followers answer every 100 ms tick) counts as gone with the old controller.
pub const SILENT_VOTER_AFTER_TAKEOVER: Duration = Duration::from_millis(1_000);
/// A gap between two fence checks beyond which the controller counts itself as stalled: several
/// intervals, and well below a heartbeat interval plus the session's slack.
pub const STALLED_CONTROLLER_GAP: Duration = Duration::from_millis(2_000);

/// A new cluster id: Kafka's form, a random UUID in URL-safe base64 without padding (22 chars).
pub fn new_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

fn not_controller_or(error: ResponseError, message: String) -> String {
    if error == ResponseError::NotController && message.starts_with(NOT_CONTROLLER) {
        message
    } else {
        format!("{error:?}: {message}")
    }
}

/// One log line per topic a committed admin request changed (the active controller logs them).
fn log_admin_changes(request: &AdminRequest, outcomes: &[TopicOutcome], image: &MetadataImage) {
    let changed = outcomes
        .iter()
        .filter(|o| o.error_code == 0)
        .map(|o| o.name.as_str());
    match request {
        AdminRequest::CreateTopics {
            validate_only: false,
            ..
        } => {
            for topic in changed {
                let partitions = image.topics.get(topic).map_or(0, |m| m.partitions);
                tracing::info!(topic = %topic, partitions, "created topic");
            }
        }
        AdminRequest::DeleteTopics { .. } => {
            for topic in changed {
                tracing::info!(topic = %topic, "deleted topic");
            }
        }
        AdminRequest::CreatePartitions {
            count,
            validate_only: false,
            ..
        } => {
            for topic in changed {
                tracing::info!(topic = %topic, to = count, "added partitions");
            }
        }
        AdminRequest::AlterConfigs {
            validate_only: false,
            ..
        } => {
            for topic in changed {
                tracing::info!(topic = %topic, "altered topic configs");
            }
        }
        _ => {}
    }
}

fn decide_admin(ctx: &Context<'_>, request: &AdminRequest) -> Decision {
    match request {
        AdminRequest::CreateTopics {
            topics,
            validate_only,
            internal,
        } => controller::create_topics(ctx, topics, *validate_only, *internal),
        AdminRequest::DeleteTopics { names } => controller::delete_topics(ctx, names),
        AdminRequest::CreatePartitions {
            name,
            count,
            assignments,
            validate_only,
        } => controller::create_partitions(ctx, name, *count, assignments, *validate_only),
        AdminRequest::AlterConfigs {
            name,
            ops,
            replace_all,
            validate_only,
        } => controller::alter_configs(ctx, name, ops, *replace_all, *validate_only),
        AdminRequest::AlterPartition {
            name,
            partition,
            leader_id,
            leader_epoch,
            partition_epoch,
            new_isr,
        } => controller::alter_partition(
            ctx,
            &controller::IsrChange {
                topic: name,
                partition: *partition,
                leader_id: *leader_id,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                new_isr,
            },
        ),
        AdminRequest::ElectLeaders {
            partitions,
            unclean,
        } => {
            let (elections, records) = if *unclean {
                controller::elect_unclean(ctx.image, partitions.as_deref())
            } else {
                controller::elect_preferred(ctx.image, partitions.as_deref())
            };
            Decision {
                outcomes: elections
                    .into_iter()
                    .map(|e| TopicOutcome {
                        name: format!("{}:{}", e.topic, e.partition),
                        error_code: e.error_code,
                        message: e.message,
                    })
                    .collect(),
                records,
                ..Decision::default()
            }
        }
        AdminRequest::CreateAcls { acls } => acl_control::create_acls(ctx.image, acls),
        AdminRequest::DeleteAcls { filters } => acl_control::delete_acls(ctx.image, filters),
        AdminRequest::AlterScramCredentials(changes) => {
            scram_control::alter_scram_credentials(ctx.image, changes)
        }
    }
}

/// The agent is the quorum's state machine.
impl StateMachine for ClusterAgent {
    fn apply(&self, index: u64, data: &[u8]) {
        self.apply_entry(index, data);
    }

    fn snapshot(&self) -> Vec<u8> {
        records::encode(&self.image.borrow().to_records())
    }

    fn restore(&self, index: u64, data: &[u8]) {
        self.restore_snapshot(index, data);
    }
}

/// Who sent a controller request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// This process (the active controller's own broker or admin path).
    ThisProcess,
    /// A broker or controller over the controller listener.
    Remote,
}

/// The controller listener's requests go to the agent.
pub struct ControllerRequests(pub std::rc::Weak<ClusterAgent>);

impl RpcHandler for ControllerRequests {
    fn handle(&self, api: u16, payload: Bytes) -> LocalBoxFuture<'static, Result<Bytes, String>> {
        let agent = self.0.clone();
        Box::pin(async move {
            match agent.upgrade() {
                Some(agent) => agent.serve_request(api, payload, Caller::Remote).await,
                None => Err("the broker is shutting down".to_string()),
            }
        })
    }

    fn handle_on(
        &self,
        connection: u64,
        api: u16,
        payload: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, String>> {
        if api == rpc_api::API_HEARTBEAT {
            if let (Some(agent), Ok(beat)) = (self.0.upgrade(), rpc_api::decode_heartbeat(&payload))
            {
                agent
                    .heartbeat_connections
                    .borrow_mut()
                    .insert(connection, beat.node_id);
            }
        }
        self.handle(api, payload)
    }

    fn connection_closed(&self, connection: u64) {
        if let Some(agent) = self.0.upgrade() {
            agent.heartbeat_connection_closed(connection);
        }
    }
}

/// How soon the active controller fences a broker whose heartbeat connection closed and that has
/// no other: a killed broker process closes its sockets at once, so its partitions get new
/// leaders in about this long instead of the whole `broker.session.timeout.ms`. A live broker
/// whose connection merely broke heartbeats again within it (its heartbeat interval is shorter,
/// and a new connection is made for the next call); if it does not, it is fenced and unfenced on
/// its next heartbeat, which moves leaderships but loses nothing. Over twice the heartbeat
/// interval (`broker.heartbeat.interval.ms`, 500 ms).
pub const CLOSED_CONNECTION_FENCE_GRACE: Duration = Duration::from_millis(1_200);

impl ClusterAgent {
    /// A heartbeat connection closed: unless the broker heartbeats on another one, its session
    /// ends `CLOSED_CONNECTION_FENCE_GRACE` from now (the fence check does the rest).
    fn heartbeat_connection_closed(self: &Rc<Self>, connection: u64) {
        let mut connections = self.heartbeat_connections.borrow_mut();
        let Some(node_id) = connections.remove(&connection) else {
            return;
        };
        if connections.values().any(|n| *n == node_id) || !self.is_active_controller() {
            return;
        }
        drop(connections);
        let timeout = self.config.cluster.broker_session_timeout;
        if self.sessions.borrow_mut().expire_soon(
            node_id,
            Instant::now(),
            CLOSED_CONNECTION_FENCE_GRACE,
            timeout,
        ) {
            tracing::info!(
                node_id,
                grace_ms = CLOSED_CONNECTION_FENCE_GRACE.as_millis() as u64,
                "a broker's controller connection closed: fencing it unless it heartbeats again"
            );
            let agent = self.clone();
            let closed_at = Instant::now();
            glommio::spawn_local(async move { agent.fence_if_gone(node_id, closed_at).await })
                .detach();
        }
    }

    /// Fences `node_id` now, not after a grace, when its listeners prove its process gone
    /// (`liveness_probe`) and it has not been heard from since `since`.
    async fn fence_if_gone(&self, node_id: i32, since: Instant) {
        let listeners = match self.image.borrow().brokers.get(&node_id) {
            Some(broker) if !broker.fenced => broker.listeners.clone(),
            _ => return,
        };
        if !liveness_probe::process_gone(&listeners).await || !self.is_active_controller() {
            return;
        }
        let now = Instant::now();
        let timeout = self.config.cluster.broker_session_timeout;
        if !self
            .sessions
            .borrow_mut()
            .end_unless_heard_since(node_id, since, now, timeout)
        {
            return;
        }
        tracing::info!(
            node_id,
            "a broker's listeners refuse connections: its process is gone, fencing it now"
        );
        let fenced = self
            .decide_and_commit(|ctx, sessions| ((), controller::fence_expired(ctx, sessions, now)))
            .await;
        if let Err((_, message)) = fenced {
            tracing::debug!(%message, "fencing a gone broker not committed");
        }
    }
}
