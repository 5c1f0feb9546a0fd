//! A shard: one glommio executor pinned to one core, owning a subset of partitions and all their
//! state. Everything here is touched by exactly one thread; other shards reach it only through
//! mesh messages (see `mesh`).

pub mod mesh;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::groups::GroupCoordinator;
use crate::metadata::{owner_shard, TopicTable};
use crate::metrics::ShardMetrics;
use crate::producer_state::ShardProducers;
use crate::storage::PartitionLog;
use ringbroker_protocol::records::RecordValidator;

pub use mesh::Mesh;

/// Shard 0 is the controller: the only writer of the topic table.
pub const CONTROLLER_SHARD: usize = 0;

/// The state of one shard.
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Rc<BrokerConfig>,
    /// This shard's copy of the topic table (replaced wholesale on each controller update).
    pub topics: RefCell<Rc<TopicTable>>,
    /// Logs of the partitions this shard owns: topic → partition index → log.
    logs: RefCell<HashMap<String, HashMap<i32, PartitionLog>>>,
    pub mesh: Mesh,
    /// Open client connections on this shard.
    pub connections: Cell<usize>,
    /// Coordinator of the consumer groups whose offsets partition this shard owns.
    pub groups: Rc<GroupCoordinator>,
    /// Idempotent producers' state of the partitions this shard owns, and its producer ids.
    pub producers: ShardProducers,
    /// This shard's metrics (only this shard writes them); `None` when metrics are off.
    pub metrics: Option<Arc<ShardMetrics>>,
    /// Walks the records of produced batches (`produce::validate_records`); its window is the
    /// shard's one buffer for decompressed records. Borrowed only synchronously, never across an
    /// await, so requests on this shard take turns with it.
    pub record_validator: RefCell<RecordValidator>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Rc<BrokerConfig>,
        topics: TopicTable,
        mesh: Mesh,
        groups: Rc<GroupCoordinator>,
    ) -> Shard {
        let count = config.shard_count();
        debug_assert!(id < count);
        let producers = ShardProducers::new(&config.data_dir, id, count);
        Shard {
            id,
            count,
            config,
            topics: RefCell::new(Rc::new(topics)),
            logs: RefCell::new(HashMap::new()),
            mesh,
            connections: Cell::new(0),
            groups,
            producers,
            metrics: None,
            record_validator: RefCell::new(RecordValidator::new()),
        }
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
        self.topics.borrow().clone()
    }

    pub fn set_topic_table(&self, table: TopicTable) {
        *self.topics.borrow_mut() = Rc::new(table);
    }

    /// The log of a partition this shard owns, if open.
    pub fn log(&self, topic: &str, partition: i32) -> Option<PartitionLog> {
        self.logs.borrow().get(topic)?.get(&partition).cloned()
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
