//! The server: starts one glommio executor per shard, joins them in a channel mesh, recovers each
//! shard's partitions, binds a SO_REUSEPORT listener on every shard, serves connections, and
//! shuts down cleanly on SIGINT/SIGTERM: `/ready` turns 503 at once, the shards keep serving for
//! `shutdown_drain_ms` (load balancers drain), then close their listeners and checkpoint every log.

pub mod connection;
pub mod connection_limits;
pub mod data_dir_lock;
pub mod dispatch;
pub mod fd_limit;
pub mod frame_reader;
pub mod handlers;
mod listener;
mod peer;
pub mod sendfile;
pub mod writer;

use crate::transactions::{
    TxnConfig, TxnCoordinator, TxnLogStore, TRANSACTION_STATE_COMMIT_TIMEOUT,
    TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{CpuSet, LocalExecutorPoolBuilder, Placement, PoolPlacement};
use thiserror::Error;

use crate::cluster;
use crate::config::{BrokerConfig, MESH_CHANNEL_CAPACITY};
use crate::groups::{GroupConfig, GroupCoordinator, LogOffsetStore, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::owner_shard;
use crate::metrics::{self, MetricsRegistry, ShardMetrics};
use crate::replication::coordinator_gate::ShardCoordinatorGate;
use crate::shard::mesh::MeshMessage;
use crate::shard::{Mesh, Shard, CONTROLLER_SHARD};
use crate::storage::{self, LogConfig};
use connection_limits::{ConnectionLimits, Refused};

/// Segment size of the `__consumer_offsets` partitions: commits are small and compacted, and
/// there are 50 such partitions per broker.
const OFFSETS_SEGMENT_BYTES: u64 = 16 << 20;
/// Tail cache of each `__consumer_offsets` partition (only replay reads it).
const OFFSETS_TAIL_CACHE_BYTES: usize = 256 << 10;
/// Kafka's name of the committed-offsets topic (its partition directories).
const OFFSETS_TOPIC_NAME: &str = "__consumer_offsets";

/// How often an idle shard checks whether shutdown was requested.
const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often a starting shard checks whether this broker is live in the cluster yet.
const LIVE_POLL_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start shard executors: {0}")]
    Executors(String),
    #[error("shard {shard} failed: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    DataDirLock(#[from] data_dir_lock::DataDirLockError),
}

/// Runs the broker until SIGINT or SIGTERM. `on_ready` is called once every shard serves.
pub fn run(config: BrokerConfig) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Held until run returns: no second broker may write these partition files meanwhile.
    let _data_dir_lock = data_dir_lock::DataDirLock::acquire(&config.data_dir)?;
    match fd_limit::raise_to_hard_limit() {
        Ok(Some(fds)) if (fds as usize) <= config.max_connections => tracing::warn!(
            fds,
            max_connections = config.max_connections,
            "max_connections is not below the file descriptor limit: accepts will fail before it is reached"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(ServerError::Signals)?;
    }
    let shards = config.shard_count();
    assert!(shards >= 1, "at least one shard");
    let placement = placement_for(&config)?;
    let mesh = MeshBuilder::<MeshMessage, _>::full(shards, MESH_CHANNEL_CAPACITY);
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let log_dir = Arc::new(crate::replication::log_dir::LogDirHealth::new(shards));
    let config = Arc::new(config);
    let metrics = config.metrics_listen.map(|_| MetricsRegistry::new(shards));
    // The endpoint outlives the shards: it answers `/ready` with 503 while they drain and close.
    let endpoint_stop = Arc::new(AtomicBool::new(false));
    let endpoint = metrics::start_endpoint(
        config.metrics_listen,
        metrics.as_ref(),
        &stop,
        &endpoint_stop,
    );
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("ringbroker-shard")
        .io_memory(config.io_memory_bytes)
        .ring_depth(config.ring_depth)
        // Feeds `ringbroker_io_latency_seconds` (glommio's IoStats). Only file I/O is timed, from
        // timestamps glommio takes anyway: three sketch inserts per DMA read or write, and the
        // appender writes many requests at once.
        .record_io_latencies(config.metrics_listen.is_some())
        .on_all_shards({
            let config = config.clone();
            let stop = stop.clone();
            let ready = ready.clone();
            let metrics = metrics.clone();
            let limits = Arc::new(ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
                &config.max_connections_per_ip_overrides,
            ));
            let drained = Arc::new(AtomicBool::new(false));
            let log_dir = log_dir.clone();
            move || async move {
                let shared = SharedState {
                    stop,
                    drained,
                    ready,
                    metrics,
                    limits,
                    log_dir,
                };
                run_shard(config, mesh, shared).await
            }
        })
        .map_err(|e| ServerError::Executors(e.to_string()))?;
    let mut first_error = None;
    for result in handles.join_all() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(ServerError::Executors(format!(
                    "shard thread panicked: {e:?}"
                )));
            }
        }
    }
    // Every shard has ended (a panicking one sets no flag): let the metrics thread end too.
    stop.store(true, Ordering::SeqCst);
    endpoint_stop.store(true, Ordering::SeqCst);
    if let Some(endpoint) = endpoint {
        endpoint.join();
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!("ringbroker stopped cleanly");
            Ok(())
        }
    }
}

fn placement_for(config: &BrokerConfig) -> Result<PoolPlacement, ServerError> {
    let pinned: Option<Vec<usize>> = config.shard_cpus.iter().copied().collect();
    match pinned {
        Some(cpus) => {
            let online = CpuSet::online().map_err(|e| ServerError::Executors(e.to_string()))?;
            let sets = cpus
                .iter()
                .map(|cpu| online.clone().filter(|l| l.cpu == *cpu))
                .collect::<Vec<_>>();
            if let Some(pos) = sets.iter().position(|s| s.is_empty()) {
                return Err(ServerError::Executors(format!(
                    "shard {pos} is pinned to cpu {} which is not online",
                    cpus[pos]
                )));
            }
            Ok(PoolPlacement::Custom(sets))
        }
        None => Ok(PoolPlacement::Unbound(config.shard_count())),
    }
}

// Keep the single-executor placement type referenced for readers looking for it.
#[allow(dead_code)]
type SingleShardPlacement = Placement;

/// What the shards of one broker share (each gets its clones).
struct SharedState {
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicBool>,
    ready: Arc<std::sync::atomic::AtomicUsize>,
    metrics: Option<Arc<MetricsRegistry>>,
    limits: Arc<ConnectionLimits>,
    log_dir: Arc<crate::replication::log_dir::LogDirHealth>,
}

async fn run_shard(
    config: Arc<BrokerConfig>,
    mesh: MeshBuilder<MeshMessage, glommio::channels::channel_mesh::Full>,
    shared: SharedState,
) -> Result<(), ServerError> {
    let SharedState {
        stop,
        drained,
        ready,
        metrics,
        limits,
        log_dir,
    } = shared;
    let config = Rc::new((*config).clone());
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| ServerError::Executors(format!("cannot join the shard mesh: {e}")))?;
    let id = senders.peer_id();
    let fail = |reason: String| ServerError::Shard { shard: id, reason };
    storage::prime_dma_probe(&config.data_dir)
        .await
        .map_err(|e| fail(format!("DMA probe: {e}")))?;
    let (groups, offsets_store) = open_group_coordinator(&config, id).await.map_err(fail)?;
    let shard = Rc::new(
        Shard::new(id, config.clone(), Mesh::new(senders), groups, stop.clone())
            .with_metrics(metrics.as_ref().and_then(|m| m.shard(id)))
            .with_log_dir_health(log_dir),
    );
    // Committed offsets are written by the leader of their partition, stamped with its leader
    // epoch as produced batches are, and done once on every in-sync replica.
    offsets_store.set_gate(Rc::new(ShardCoordinatorGate::new(
        Rc::downgrade(&shard),
        OFFSETS_TOPIC_NAME,
        config.cluster.replication.offsets_commit_timeout,
    )));
    shard.set_offsets_store(offsets_store.clone());
    let transactions = open_transaction_coordinator(&config, id, shard.metrics.clone())
        .await
        .map_err(fail)?;
    // Transaction states likewise, in `__transaction_state` (replicated in a cluster).
    transactions.set_gate(Rc::new(ShardCoordinatorGate::new(
        Rc::downgrade(&shard),
        TRANSACTION_STATE_TOPIC,
        TRANSACTION_STATE_COMMIT_TIMEOUT,
    )));
    shard.set_transactions(transactions.clone());
    transactions.spawn_sweep(Rc::downgrade(&shard));
    peer::spawn_receivers(shard.clone(), receivers);
    // Shard 0 joins the cluster (quorum, registration); every shard then waits until an image in
    // which this broker is live reaches it, and only then serves clients.
    let cluster = if id == CONTROLLER_SHARD {
        Some(cluster::node::start(&shard).await.map_err(fail)?)
    } else {
        None
    };
    let serves_clients = config.cluster.roles.broker;
    let mut stoppers = Vec::new();
    if serves_clients {
        wait_until_live(&shard, &stop).await.map_err(fail)?;
        // One SO_REUSEPORT listener per client listener (security protocol) on every shard.
        for client_listener in config.client_listeners() {
            let address = client_listener.address;
            let listener::ShardListener {
                listener,
                stopper: listener_stopper,
            } = listener::bind_shard_listener(address).map_err(|e| {
                fail(format!(
                    "cannot listen on {}://{address}: {e}",
                    client_listener.name()
                ))
            })?;
            glommio::spawn_local(accept_loop(
                shard.clone(),
                listener,
                Rc::new(client_listener),
                limits.clone(),
                stop.clone(),
            ))
            .detach();
            stoppers.push(listener_stopper);
        }
    }
    metrics::sampler::spawn(shard.clone());
    crate::retention::spawn(shard.clone());
    crate::replication::roles::spawn(shard.clone());
    crate::replication::isr::spawn_checker(shard.clone());
    crate::replication::log_dir::spawn_monitor(shard.clone());
    if let Some(metrics) = &metrics {
        metrics.mark_ready();
    }

    if ready.fetch_add(1, Ordering::SeqCst) + 1 == shard.count {
        // A controller-only node serves no clients: it has no Kafka listener to report.
        let listen = if serves_clients {
            config
                .client_listeners()
                .iter()
                .map(|l| {
                    if l.name() == l.protocol.name() {
                        format!("{}://{}", l.name(), l.address)
                    } else {
                        format!("{}://{} ({})", l.name(), l.address, l.protocol)
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            "none (controller only)".to_string()
        };
        tracing::info!(
            listen = %listen,
            advertised = %format!("{}:{}", config.advertised_host, config.advertised_port),
            shards = shard.count,
            data_dir = %config.data_dir.display(),
            node_id = config.node_id,
            roles = %config.cluster.roles,
            "ringbroker ready"
        );
    }
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
    // `/ready` already answers 503 (the endpoint watches the same flag): keep serving while load
    // balancers notice and send new clients elsewhere.
    let drain_ms = config.live.shutdown_drain_ms();
    if drain_ms > 0 {
        if id == 0 {
            tracing::info!(
                drain_ms,
                "shutting down: /ready is 503, serving until the drain ends"
            );
        }
        glommio::timer::sleep(Duration::from_millis(drain_ms)).await;
    }
    // Controlled shutdown next (shard 0): the controller moves this broker's leaderships away
    // while it still answers, so clients learn where to go. The other shards keep serving until
    // shard 0 is done.
    if let Some(cluster) = &cluster {
        cluster.stop().await;
        drained.store(true, Ordering::SeqCst);
    } else {
        wait_drained(&drained).await;
    }
    // Stop accepting before the logs close: no client connects to a broker that is going away,
    // and the port is free at once for the next start.
    for stopper in &stoppers {
        stopper.stop();
    }
    for log in shard.all_logs() {
        if let Err(e) = log.close().await {
            tracing::warn!(shard = id, dir = %log.dir().display(), error = %e, "checkpoint at shutdown failed");
        }
    }
    // After the logs are closed: the snapshots cover everything, restart scans nothing.
    shard.producers.snapshot_all().await;
    if let Err(e) = transactions.close().await {
        tracing::warn!(shard = id, error = %e, "closing the transaction state logs failed");
    }
    if let Err(e) = offsets_store.close().await {
        tracing::warn!(shard = id, error = %e, "closing the committed-offsets logs failed");
    }
    if let Some(reason) = shard.fatal_reason() {
        return Err(fail(reason));
    }
    Ok(())
}

/// Waits until this shard has installed an image in which this broker is live (registered and
/// unfenced), or the broker is stopping, or start-up took too long.
async fn wait_until_live(shard: &Shard, stop: &AtomicBool) -> Result<(), String> {
    let started = std::time::Instant::now();
    let limit = shard.config.cluster.controller_startup_timeout;
    while shard.live.get() == 0 {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "this broker was not let into the cluster within {} ms (the controller did not unfence it)",
                limit.as_millis()
            ));
        }
        glommio::timer::sleep(LIVE_POLL_INTERVAL).await;
    }
    Ok(())
}

/// Waits (bounded) until shard 0 has finished the controlled shutdown.
async fn wait_drained(drained: &AtomicBool) {
    let started = std::time::Instant::now();
    let limit = cluster::lifecycle::CONTROLLED_SHUTDOWN_TIMEOUT + Duration::from_secs(5);
    while !drained.load(Ordering::Relaxed) && started.elapsed() < limit {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
}

/// Opens this shard's `__consumer_offsets` partitions and the group coordinator over them;
/// committed offsets are replayed before the shard serves.
async fn open_group_coordinator(
    config: &BrokerConfig,
    shard_id: usize,
) -> Result<(Rc<GroupCoordinator>, Rc<LogOffsetStore>), String> {
    let owned: Vec<i32> = (0..OFFSETS_TOPIC_PARTITIONS)
        .filter(|p| owner_shard(OFFSETS_TOPIC_NAME, *p, config.shard_count()) == shard_id)
        .collect();
    let log_config = LogConfig {
        segment_bytes: OFFSETS_SEGMENT_BYTES,
        tail_cache_bytes: OFFSETS_TAIL_CACHE_BYTES,
        ..config.log.clone()
    };
    let store = Rc::new(
        LogOffsetStore::open(
            &config.data_dir,
            &owned,
            OFFSETS_TOPIC_PARTITIONS,
            log_config,
        )
        .await
        .map_err(|e| format!("committed offsets: {e}"))?,
    );
    let group_config = GroupConfig {
        consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
        // Bounded by the profile (at most 15 minutes), so it fits.
        consumer_heartbeat_interval_ms: i32::try_from(config.group_consumer_heartbeat_interval_ms)
            .unwrap_or(i32::MAX),
        ..GroupConfig::default()
    };
    let coordinator = GroupCoordinator::open(group_config, store.clone())
        .await
        .map_err(|e| format!("committed offsets recovery: {e}"))?;
    Ok((Rc::new(coordinator), store))
}

/// Opens this shard's `__transaction_state` partitions and the transaction coordinator over
/// them; the state is replayed before the shard serves.
async fn open_transaction_coordinator(
    config: &BrokerConfig,
    shard_id: usize,
    metrics: Option<Arc<ShardMetrics>>,
) -> Result<Rc<TxnCoordinator>, String> {
    let owned: Vec<i32> = (0..TRANSACTION_STATE_PARTITIONS)
        .filter(|p| owner_shard(TRANSACTION_STATE_TOPIC, *p, config.shard_count()) == shard_id)
        .collect();
    let store = TxnLogStore::open(&config.data_dir, &owned, &config.log)
        .await
        .map_err(|e| format!("transaction state: {e}"))?;
    // The abort sweep interval stays Kafka's default; the timeout cap is a setting.
    let txn_config = TxnConfig {
        max_timeout_ms: config.transaction_max_timeout_ms,
        ..TxnConfig::default()
    };
    let coordinator = TxnCoordinator::open(txn_config, store)
        .await
        .map_err(|e| format!("transaction state recovery: {e}"))?
        .with_metrics(metrics);
    Ok(Rc::new(coordinator))
}

async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    client_listener: Rc<crate::security::ClientListener>,
    limits: Arc<ConnectionLimits>,
    stop: Arc<AtomicBool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                // The peer is already gone (reset between accept and here).
                tracing::debug!(shard = shard.id, error = %e, "accepted connection has no peer");
                continue;
            }
        };
        let permit = match limits.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                log_refused(&shard, peer, refused);
                drop(stream);
                if let Some(m) = shard.metrics() {
                    ShardMetrics::add(&m.counters.connections_refused, 1);
                }
                continue;
            }
        };
        shard.connections.set(shard.connections.get() + 1);
        if let Some(m) = shard.metrics() {
            ShardMetrics::add(&m.counters.connections_accepted, 1);
        }
        let shard_for_conn = shard.clone();
        let client_listener = client_listener.clone();
        glommio::spawn_local(async move {
            connection::serve(shard_for_conn.clone(), stream, client_listener).await;
            shard_for_conn
                .connections
                .set(shard_for_conn.connections.get() - 1);
            drop(permit);
        })
        .detach();
    }
}

/// One line per refused connection, worded like Kafka's acceptor.
fn log_refused(shard: &Shard, peer: std::net::SocketAddr, refused: Refused) {
    match refused {
        Refused::Broker { limit } => tracing::warn!(
            shard = shard.id,
            %peer,
            limit,
            "refusing connection: the broker holds max_connections connections (Kafka's max.connections)"
        ),
        Refused::Address { ip, limit } => tracing::warn!(
            shard = shard.id,
            %peer,
            limit,
            "refusing connection: {ip} already holds its max_connections_per_ip connections (Kafka's max.connections.per.ip)"
        ),
    }
}
