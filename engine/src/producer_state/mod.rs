//! The idempotent producer's broker side: per-partition producer state (epoch and the last five
//! batches' sequence and offset ranges per producer id), checked synchronously right before a
//! partition's append so duplicates are answered with their original offsets and gaps or stale
//! epochs are refused as Kafka refuses them; snapshots plus a log scan to rebuild it on open;
//! producer id allocation for InitProducerId.
//!
//! - `entry`: one producer's state and Kafka's sequence rules;
//! - `table`: all producers of one partition, the per-append decision, log replay;
//! - `snapshot`: the `producer-state.snapshot` file format;
//! - `recovery`: snapshot + log scan on open;
//! - `ids`: producer id reservation per shard;
//! - `files`: durable small-file writes and reads.

pub mod entry;
pub mod error;
mod files;
pub mod ids;
pub mod recovery;
pub mod snapshot;
pub mod table;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::lock::Mutex;

pub use error::ProducerStateError;
pub use ids::IdAllocator;
pub use table::{Decision, PartitionProducers};

use crate::storage::PartitionLog;

/// How often changed partitions get a fresh snapshot (besides clean shutdown): bounds the log a
/// restart after a crash has to scan to about this much produce time.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// One partition's state and the log it describes.
struct PartitionState {
    log: PartitionLog,
    producers: PartitionProducers,
    /// Changed since the last snapshot.
    dirty: bool,
}

/// Topic → partition → state (nested so the produce path looks up by `&str` without allocating).
type Partitions = Rc<RefCell<HashMap<String, HashMap<i32, PartitionState>>>>;

/// The producer state of every partition this shard owns, and this shard's id allocator.
pub struct ShardProducers {
    partitions: Partitions,
    ids: Mutex<IdAllocator>,
    snapshot_task_started: Cell<bool>,
}

impl ShardProducers {
    pub fn new(
        data_dir: &std::path::Path,
        node_id: i32,
        shard: usize,
        shards: usize,
    ) -> ShardProducers {
        ShardProducers {
            partitions: Rc::new(RefCell::new(HashMap::new())),
            ids: Mutex::new(IdAllocator::new(data_dir, node_id, shard, shards)),
            snapshot_task_started: Cell::new(false),
        }
    }

    /// Rebuilds the state of a just-opened partition (replacing any state of a deleted topic of
    /// the same name). Must complete before the log takes appends.
    pub async fn load(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
    ) -> Result<(), ProducerStateError> {
        let producers = recovery::recover(log).await?;
        self.partitions
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(
                partition,
                PartitionState {
                    log: log.clone(),
                    producers,
                    dirty: false,
                },
            );
        self.start_snapshot_task();
        Ok(())
    }

    /// Drops the state of a deleted topic.
    pub fn forget(&self, topic: &str) {
        self.partitions.borrow_mut().remove(topic);
    }

    /// Drops the state of one partition (a follower replica keeps none).
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        if let Some(partitions) = self.partitions.borrow_mut().get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    /// Removes a partition's snapshot file (before its directory is deleted).
    pub async fn remove_files(&self, dir: &std::path::Path) -> Result<(), ProducerStateError> {
        files::remove_if_exists(&dir.join(snapshot::SNAPSHOT_FILE)).await
    }

    /// Checks `records` about to be appended at `log_end_offset` and records them (see
    /// [`PartitionProducers::check_and_record`]). Synchronous: call it right before
    /// `PartitionLog::append` with no await in between.
    pub fn check_and_record(
        &self,
        topic: &str,
        partition: i32,
        records: &[u8],
        log_end_offset: i64,
    ) -> Decision {
        let mut partitions = self.partitions.borrow_mut();
        let Some(state) = partitions
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        else {
            // Not loaded (no idempotent state kept for it): nothing to check against.
            return Decision::Append;
        };
        let decision = state.producers.check_and_record(records, log_end_offset);
        if decision == Decision::Append {
            state.dirty = true;
        }
        decision
    }

    /// Undoes what `check_and_record` recorded for an append at `base_offset` that failed.
    pub fn rollback(&self, topic: &str, partition: i32, base_offset: i64) {
        if let Some(state) = self
            .partitions
            .borrow_mut()
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        {
            state.producers.rollback(base_offset);
        }
    }

    /// A new producer id (InitProducerId).
    pub async fn allocate_producer_id(&self) -> Result<i64, ProducerStateError> {
        self.ids.lock().await.allocate().await
    }

    /// Writes a snapshot of every changed partition (periodically and at clean shutdown).
    pub async fn snapshot_all(&self) {
        snapshot_dirty(&self.partitions).await;
    }

    fn start_snapshot_task(&self) {
        if self.snapshot_task_started.replace(true) {
            return;
        }
        let partitions = Rc::downgrade(&self.partitions);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(SNAPSHOT_INTERVAL).await;
                let Some(partitions) = partitions.upgrade() else {
                    return;
                };
                snapshot_dirty(&partitions).await;
            }
        })
        .detach();
    }
}

async fn snapshot_dirty(partitions: &Partitions) {
    // Encode synchronously (a consistent cut of state and log end offset), write afterwards.
    let pending: Vec<(std::path::PathBuf, Vec<u8>)> = partitions
        .borrow_mut()
        .values_mut()
        .flat_map(|p| p.values_mut())
        .filter(|state| state.dirty)
        .map(|state| {
            state.dirty = false;
            let bytes = snapshot::encode(&state.producers, state.log.log_end_offset());
            (state.log.dir().join(snapshot::SNAPSHOT_FILE), bytes)
        })
        .collect();
    for (path, bytes) in pending {
        if let Err(e) = files::write_durably(&path, bytes).await {
            tracing::warn!(error = %e, "writing a producer state snapshot failed");
        }
    }
}
