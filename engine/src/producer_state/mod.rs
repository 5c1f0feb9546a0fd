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
use ringbroker_protocol::batch::BatchHeader;

/// How often changed partitions get a fresh snapshot (besides clean shutdown): bounds the log a
/// restart after a crash has to scan to about this much produce time.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// One partition's state and the log it describes.
struct PartitionState {
    log: PartitionLog,
    producers: PartitionProducers,
    /// Changed since the last snapshot.
    dirty: bool,
    /// On a follower: the offset after the last batch the state has seen (the leader's batches
    /// are replayed as they are appended, `follow`); `None` while leading.
    following_end: Option<i64>,
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
        self.load_as(topic, partition, log, false).await
    }

    /// `load`, for a follower when `following` (its state then records how far it covers the log).
    async fn load_as(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
        following: bool,
    ) -> Result<(), ProducerStateError> {
        let (producers, covered_to) = recovery::recover_with_end(log).await?;
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
                    following_end: following.then_some(covered_to),
                },
            );
        self.start_snapshot_task();
        Ok(())
    }

    /// Makes the state of a partition this broker now leads current before it takes appends:
    /// kept when it was leading already or followed the log to its end (no scan of the log on the
    /// fail-over path), else rebuilt from the log. Returns whether it was rebuilt.
    pub async fn lead(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
    ) -> Result<bool, ProducerStateError> {
        let end = log.log_end_offset();
        let kept = self.with_partition(topic, partition, |state| {
            let current = state.following_end.is_none_or(|covered| covered == end);
            if current {
                state.following_end = None;
                // The next snapshot records what it followed.
                state.dirty = true;
            }
            current
        });
        if kept == Some(true) {
            return Ok(false);
        }
        self.load(topic, partition, log).await.map(|()| true)
    }

    /// Keeps the producer state of a partition this broker now follows (its state as leader covers
    /// its whole log), or builds it from the log, so that a later leadership need not scan it.
    /// Call it before the fetcher appends to the partition.
    pub async fn start_following(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
    ) -> Result<(), ProducerStateError> {
        let end = log.log_end_offset();
        let kept = self.with_partition(topic, partition, |state| {
            // A follower writes no snapshot: a truncation could leave one describing batches
            // that are gone (the caller removes the file).
            state.dirty = false;
            state.following_end.get_or_insert(end);
        });
        if kept.is_some() {
            return Ok(());
        }
        self.load_as(topic, partition, log, true).await
    }

    /// Replays the leader's batches a follower is about to append at `log_end_offset`.
    /// Synchronous: call it right before `PartitionLog::append_as_follower`, and
    /// `forget_partition` if that append fails. A state that does not end where the batches begin
    /// (the log was truncated since) is dropped: the next leadership rebuilds it from the log.
    pub fn follow(&self, topic: &str, partition: i32, records: &[u8], log_end_offset: i64) {
        let mut partitions = self.partitions.borrow_mut();
        let Some(by_partition) = partitions.get_mut(topic) else {
            return;
        };
        let Some(state) = by_partition.get_mut(&partition) else {
            return;
        };
        let continues = state.following_end == Some(log_end_offset)
            // A first batch after the log end is a gap the leader's compaction left.
            && BatchHeader::parse(records).is_ok_and(|h| h.base_offset >= log_end_offset);
        if !continues {
            by_partition.remove(&partition);
            return;
        }
        if let Some(next) = recovery::replay_batches(&mut state.producers, records) {
            state.following_end = Some(next);
        }
    }

    /// Drops the state of a deleted topic.
    pub fn forget(&self, topic: &str) {
        self.partitions.borrow_mut().remove(topic);
    }

    /// Drops the state of one partition (a follower's append failed, or it is gone).
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
        self.with_partition(topic, partition, |state| {
            state.producers.rollback(base_offset)
        });
    }

    /// `f` on one partition's state, if it has one.
    fn with_partition<R>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut PartitionState) -> R,
    ) -> Option<R> {
        self.partitions
            .borrow_mut()
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
            .map(f)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_state::table::tests::idempotent_batch;
    use crate::storage::tests::run;
    use crate::storage::LogConfig;

    /// A partition log of topic "t" and the producer states of its shard (keep the directory).
    async fn follower() -> (tempfile::TempDir, PartitionLog, ShardProducers) {
        let temp = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(&temp.path().join("t-0"), LogConfig::default())
            .await
            .expect("open");
        let producers = ShardProducers::new(temp.path(), 0, 0, 1);
        (temp, log, producers)
    }

    fn state_of(producers: &ShardProducers) -> PartitionProducers {
        producers.partitions.borrow()["t"][&0].producers.clone()
    }

    /// Appends `count` idempotent batches as a follower does (the leader's offsets in the bytes,
    /// replayed into `producers` first), keeping `live` (the leader's view) current.
    async fn follow_batches(
        producers: &ShardProducers,
        log: &PartitionLog,
        live: &mut PartitionProducers,
        from: i32,
        count: i32,
    ) {
        for i in from..from + count {
            let mut batch = idempotent_batch(1 + i64::from(i % 2), 0, (i / 2) * 3, 3);
            let end = log.log_end_offset();
            batch[0..8].copy_from_slice(&end.to_be_bytes());
            assert_eq!(live.check_and_record(&batch, end), Decision::Append);
            producers.follow("t", 0, &batch, end);
            log.append(&batch, -1).await.expect("append");
        }
    }

    #[test]
    fn a_follower_keeps_its_state_and_a_leadership_takes_it_without_a_scan() {
        run(|| async {
            let (_temp, log, producers) = follower().await;
            let mut live = PartitionProducers::default();
            // Follower, leader, follower again, leader again: each leadership takes the state
            // the follower kept (the second time, the leader's state followed on).
            for (from, count) in [(0, 10), (10, 4)] {
                producers
                    .start_following("t", 0, &log)
                    .await
                    .expect("follow");
                follow_batches(&producers, &log, &mut live, from, count).await;
                let rebuilt = producers.lead("t", 0, &log).await.expect("lead");
                assert!(!rebuilt, "no scan of the log");
                assert_eq!(state_of(&producers), live);
            }
            log.close().await.expect("close");
        });
    }

    #[test]
    fn a_follower_whose_log_moved_under_it_rebuilds_at_its_leadership() {
        run(|| async {
            let (_temp, log, producers) = follower().await;
            let mut live = PartitionProducers::default();
            // Batches appended before the state existed: built from the log when following.
            follow_batches(&producers, &log, &mut live, 0, 6).await;
            producers
                .start_following("t", 0, &log)
                .await
                .expect("follow");
            assert_eq!(state_of(&producers), live);
            // Batches that do not start where the state ends (a truncation, or an append this
            // state never saw) drop it.
            let mut stray = idempotent_batch(9, 0, 0, 1);
            stray[0..8].copy_from_slice(&3i64.to_be_bytes());
            producers.follow("t", 0, &stray, 3);
            assert!(!producers.partitions.borrow()["t"].contains_key(&0));
            follow_batches(&producers, &log, &mut live, 6, 2).await;
            assert!(producers.lead("t", 0, &log).await.expect("lead"), "rebuilt");
            assert_eq!(state_of(&producers), live);
            log.close().await.expect("close");
        });
    }
}
