//! A shard: one glommio executor pinned to one core, owning a subset of partitions and all their
//! state. Everything here is touched by exactly one thread; other shards reach it only through
//! mesh messages (see `mesh`).

pub mod mesh;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use ringbroker_quorum::watch::Watch;

use crate::cluster::agent::ClusterAgent;
use crate::cluster::MetadataImage;
use crate::config::BrokerConfig;
use crate::groups::{GroupCoordinator, LogOffsetStore, OFFSETS_TOPIC_NAME};
use crate::metadata::{owner_shard, TopicTable};
use crate::metrics::ShardMetrics;
use crate::producer_state::ShardProducers;
use crate::replication::log_dir::LogDirHealth;
use crate::replication::ShardReplication;
use crate::storage::PartitionLog;
use crate::transactions::{PartitionTxnTable, TxnCoordinator, TRANSACTION_STATE_TOPIC};
use ringbroker_protocol::records::RecordValidator;

pub use mesh::Mesh;

/// Shard 0 hosts the node's cluster agent (the metadata quorum member, the controller when this
/// node is the active one, the broker's registration) and publishes the metadata image to the
/// other shards.
pub const CONTROLLER_SHARD: usize = 0;

/// The state of one shard.
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Rc<BrokerConfig>,
    /// This shard's copy of the metadata image (replaced wholesale on each publish).
    image: RefCell<Rc<MetadataImage>>,
    /// 1 once an image in which this broker is live (registered, unfenced) was installed: the
    /// shard starts serving clients then.
    pub live: Watch,
    /// The cluster agent (shard 0 only).
    agent: RefCell<Option<Rc<ClusterAgent>>>,
    /// The broker-wide stop flag (SIGTERM, or a fatal cluster error).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Why the broker stops, when it is a fatal error.
    fatal: RefCell<Option<String>>,
    /// Logs of the partitions this shard owns: topic → partition index → log.
    logs: RefCell<HashMap<String, HashMap<i32, PartitionLog>>>,
    pub mesh: Mesh,
    /// Open client connections on this shard.
    pub connections: Cell<usize>,
    /// Coordinator of the consumer groups whose offsets partition this shard owns.
    pub groups: Rc<GroupCoordinator>,
    /// The `__consumer_offsets` logs this shard owns: the group coordinator's store opens and
    /// compacts them; replication and fetches reach them through [`Shard::log`].
    offsets_store: RefCell<Option<Rc<LogOffsetStore>>>,
    /// Idempotent producers' state of the partitions this shard owns, and its producer ids.
    pub producers: ShardProducers,
    /// Leaders and followers among the replicated partitions this shard owns.
    pub replication: ShardReplication,
    /// Coordinator of the transactional ids whose `__transaction_state` partition this shard
    /// owns (set once its state is replayed, before clients are served).
    transactions: RefCell<Option<Rc<TxnCoordinator>>>,
    /// Transaction state (open transactions, aborted ones) of the partitions this shard owns.
    pub txn_partitions: PartitionTxnTable,
    /// Connections to other brokers for the transaction markers of partitions they lead.
    pub marker_links: crate::transactions::remote_markers::MarkerLinks,
    /// Transactional batches waiting for their coordinator's verification (KIP-890).
    pub txn_verifications: crate::transactions::verification::Verifications,
    /// This shard's metrics (only this shard writes them); `None` when metrics are off.
    pub metrics: Option<Arc<ShardMetrics>>,
    /// Walks the records of produced batches (`produce::validate_records`); its window is the
    /// shard's one buffer for decompressed records. Borrowed only synchronously, never across an
    /// await, so requests on this shard take turns with it.
    pub record_validator: RefCell<RecordValidator>,
    /// The data directory's health, shared by every shard of the broker (heartbeats report it).
    pub log_dir: Arc<LogDirHealth>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Rc<BrokerConfig>,
        mesh: Mesh,
        groups: Rc<GroupCoordinator>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Shard {
        let count = config.shard_count();
        debug_assert!(id < count);
        let producers = ShardProducers::new(&config.data_dir, config.node_id, id, count);
        Shard {
            id,
            count,
            config,
            image: RefCell::new(Rc::new(MetadataImage::default())),
            live: Watch::new(0),
            agent: RefCell::new(None),
            stop,
            fatal: RefCell::new(None),
            logs: RefCell::new(HashMap::new()),
            mesh,
            connections: Cell::new(0),
            groups,
            offsets_store: RefCell::new(None),
            producers,
            replication: ShardReplication::default(),
            transactions: RefCell::new(None),
            txn_partitions: PartitionTxnTable::default(),
            marker_links: Default::default(),
            txn_verifications: Default::default(),
            metrics: None,
            record_validator: RefCell::new(RecordValidator::new()),
            log_dir: Arc::new(LogDirHealth::new(count)),
        }
    }

    /// Shares the broker's data-directory health with the other shards (before the shard is
    /// shared).
    pub fn with_log_dir_health(mut self, log_dir: Arc<LogDirHealth>) -> Shard {
        self.log_dir = log_dir;
        self
    }

    /// Attaches the shard's metrics (before the shard is shared).
    pub fn with_metrics(mut self, metrics: Option<Arc<ShardMetrics>>) -> Shard {
        debug_assert!(metrics.as_ref().is_none_or(|m| m.shard == self.id));
        self.metrics = metrics;
        self
    }

    /// The shard's metrics, if recording.
    #[inline]
    pub fn metrics(&self) -> Option<&ShardMetrics> {
        self.metrics.as_deref()
    }

    /// The shard owning a partition.
    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner_shard(topic, partition, self.count)
    }

    /// A snapshot of the topic table (cheap: an Rc).
    pub fn topic_table(&self) -> Rc<TopicTable> {
        self.image.borrow().topics.clone()
    }

    /// The metadata image this shard serves from (cheap: an Rc).
    pub fn image(&self) -> Rc<MetadataImage> {
        self.image.borrow().clone()
    }

    pub fn set_image(&self, image: Rc<MetadataImage>) {
        *self.image.borrow_mut() = image;
    }

    /// Notes that `image` is installed (and reconciled): the shard serves once this broker is live.
    pub fn note_installed(&self, image: &MetadataImage) {
        if image.is_live(self.config.node_id) {
            self.live.set(1);
        }
        self.replication.installed.set(image.applied_index);
    }

    /// This shard's transaction coordinator, once opened.
    pub fn transactions(&self) -> Option<Rc<TxnCoordinator>> {
        self.transactions.borrow().clone()
    }

    pub fn set_transactions(&self, coordinator: Rc<TxnCoordinator>) {
        *self.transactions.borrow_mut() = Some(coordinator);
    }

    /// The cluster agent, on shard 0.
    pub fn agent(&self) -> Option<Rc<ClusterAgent>> {
        self.agent.borrow().clone()
    }

    pub fn set_agent(&self, agent: Rc<ClusterAgent>) {
        debug_assert_eq!(self.id, CONTROLLER_SHARD);
        *self.agent.borrow_mut() = Some(agent);
    }

    /// Stops the broker (every shard polls the flag) after a fatal error.
    pub fn request_stop(&self, reason: String) {
        tracing::error!(%reason, "stopping the broker");
        self.fatal.borrow_mut().get_or_insert(reason);
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The fatal error the broker stopped for, if any.
    pub fn fatal_reason(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    /// The leader epoch of a partition (-1 when unknown).
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        let image = self.image.borrow();
        image
            .topics
            .get(topic)
            .and_then(|m| m.partition_state(partition))
            .map_or(-1, |s| s.leader_epoch)
    }

    /// Whether the partition has several replicas (and so takes the replication paths).
    pub fn is_replicated(&self, topic: &str, partition: i32) -> bool {
        self.image
            .borrow()
            .topics
            .get(topic)
            .and_then(|m| m.partition_state(partition))
            .is_some_and(|state| state.replicas.len() > 1)
    }

    /// Whether this broker may serve `partition` of `topic` to clients: Ok when it leads it,
    /// else the Kafka error a client gets (UNKNOWN_TOPIC_OR_PARTITION when the cluster has no
    /// such partition, NOT_LEADER_OR_FOLLOWER when another broker leads it, or none does).
    pub fn check_leader(&self, topic: &str, partition: i32) -> Result<(), i16> {
        let image = self.image.borrow();
        let Some(state) = image
            .topics
            .get(topic)
            .and_then(|m| m.partition_state(partition))
        else {
            return Err(ResponseError::UnknownTopicOrPartition.code());
        };
        if state.leader == self.config.node_id {
            Ok(())
        } else {
            Err(ResponseError::NotLeaderOrFollower.code())
        }
    }

    /// The log of a partition this shard owns, if open (`__consumer_offsets` and
    /// `__transaction_state`, whose coordinators own their logs, included).
    pub fn log(&self, topic: &str, partition: i32) -> Option<PartitionLog> {
        if let Some(log) = self
            .logs
            .borrow()
            .get(topic)
            .and_then(|parts| parts.get(&partition))
        {
            return Some(log.clone());
        }
        if topic == OFFSETS_TOPIC_NAME {
            return self.offsets_store.borrow().as_ref()?.log(partition);
        }
        if topic == TRANSACTION_STATE_TOPIC {
            return self.transactions()?.state_log(partition);
        }
        None
    }

    /// Makes the group coordinator's `__consumer_offsets` logs reachable through [`Shard::log`].
    pub fn set_offsets_store(&self, store: Rc<LogOffsetStore>) {
        *self.offsets_store.borrow_mut() = Some(store);
    }

    pub fn insert_log(&self, topic: &str, partition: i32, log: PartitionLog) {
        debug_assert_eq!(self.owner_of(topic, partition), self.id);
        self.logs
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, log);
    }

    /// Removes and returns the logs of a topic (DeleteTopics).
    pub fn take_logs(&self, topic: &str) -> Vec<PartitionLog> {
        self.logs
            .borrow_mut()
            .remove(topic)
            .map(|parts| parts.into_values().collect())
            .unwrap_or_default()
    }

    /// Every log this shard owns (for shutdown).
    pub fn all_logs(&self) -> Vec<PartitionLog> {
        self.logs
            .borrow()
            .values()
            .flat_map(|parts| parts.values().cloned())
            .collect()
    }
}
