//! The transaction state of every data partition one shard owns ([`PartitionTxns`] per
//! partition), consulted synchronously by the produce path right before an append, by markers,
//! and by read_committed fetches.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use kafka_protocol::ResponseError;

use super::partition_state::{create_flag_file, AbortedTxn, PartitionTxns};

/// Topic → partition → state (nested so lookups by `&str` do not allocate).
#[derive(Default)]
pub struct PartitionTxnTable {
    partitions: RefCell<HashMap<String, HashMap<i32, PartitionTxns>>>,
}

impl PartitionTxnTable {
    /// Installs a just-opened partition's recovered state.
    pub fn insert(&self, topic: &str, partition: i32, state: PartitionTxns) {
        self.partitions
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, state);
    }

    /// Drops a deleted topic's state.
    pub fn forget(&self, topic: &str) {
        self.partitions.borrow_mut().remove(topic);
    }

    /// Checks transactional `records` about to be appended at `base_offset` to the partition
    /// whose log lives in `dir`, and records them. The first transactional append of a partition
    /// creates its flag file first (see `partition_state`). With `verification`, each batch's
    /// transaction must be known here (`verification`: asked of the coordinator just before, and
    /// no marker since).
    pub fn check_and_note(
        &self,
        topic: &str,
        partition: i32,
        dir: &Path,
        records: &[u8],
        base_offset: i64,
        verification: bool,
    ) -> Result<(), i16> {
        self.with_state(topic, partition, |state| {
            state.check_batches(records)?;
            if verification {
                state.check_verified(records)?;
            }
            if let Err(e) = flag(state, dir) {
                tracing::warn!(topic, partition, error = %e, "cannot mark a partition transactional");
                return Err(ResponseError::KafkaStorageError.code());
            }
            state.note_batches(records, base_offset);
            Ok(())
        })
    }

    /// A follower about to append transactional batches it fetched: creates the partition's flag
    /// file first (once), so that the partition's state is rebuilt from its log when this broker
    /// leads it (see `partition_state`). A follower keeps no other transaction state.
    pub fn ensure_flagged(&self, topic: &str, partition: i32, dir: &Path) -> std::io::Result<()> {
        self.with_state(topic, partition, |state| flag(state, dir))
    }

    /// Runs `f` on a partition's state, created empty if new.
    fn with_state<T>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut PartitionTxns) -> T,
    ) -> T {
        let mut partitions = self.partitions.borrow_mut();
        f(partitions
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_default())
    }

    /// Whether `producer_id` at `epoch` may write transactional batches to the partition without
    /// asking the coordinator (see [`PartitionTxns::in_transaction`]). One lookup, no allocation:
    /// the produce path asks it of every transactional batch.
    pub fn in_transaction(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
    ) -> bool {
        self.partitions
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .is_some_and(|state| state.in_transaction(producer_id, epoch))
    }

    /// The coordinator confirmed the partition is in the transaction of `producer_id` at `epoch`.
    pub fn note_verified(&self, topic: &str, partition: i32, producer_id: i64, epoch: i16) {
        self.with_state(topic, partition, |state| {
            state.note_verified(producer_id, epoch)
        });
    }

    /// Undoes `check_and_note` for a failed append at `base_offset`.
    pub fn rollback(&self, topic: &str, partition: i32, base_offset: i64) {
        if let Some(state) = self.get_mut(topic, partition).as_mut() {
            state.rollback(base_offset);
        }
    }

    /// Records a marker written at `offset`.
    pub fn note_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        offset: i64,
    ) {
        self.with_state(topic, partition, |state| {
            state.note_marker(producer_id, epoch, commit, offset)
        });
    }

    /// The last stable offset of a partition with high watermark `high_watermark`, and (when
    /// `with_aborted`) the aborted transactions overlapping `[from, lso)`, after forgetting those
    /// below the log start.
    pub fn stable_view(
        &self,
        topic: &str,
        partition: i32,
        high_watermark: i64,
        log_start_offset: i64,
        from: i64,
        with_aborted: bool,
    ) -> (i64, Vec<AbortedTxn>) {
        let mut partitions = self.partitions.borrow_mut();
        let Some(state) = partitions
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        else {
            return (high_watermark, Vec::new());
        };
        let lso = state.last_stable_offset(high_watermark);
        if !with_aborted {
            return (lso, Vec::new());
        }
        state.prune_below(log_start_offset);
        (lso, state.aborted_between(from, lso))
    }

    /// Whether the partition is known to hold (or have held) transactional batches.
    pub fn is_flagged(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .is_some_and(|state| state.flagged)
    }

    /// What the log cleaner needs of a partition (`storage::compaction::transactions`): its last
    /// stable offset and every aborted transaction still in the log; `None` when the partition
    /// never held a transactional batch.
    pub fn cleaner_view(
        &self,
        topic: &str,
        partition: i32,
        high_watermark: i64,
        log_start_offset: i64,
    ) -> Option<(i64, Vec<AbortedTxn>)> {
        let mut partitions = self.partitions.borrow_mut();
        let state = partitions.get_mut(topic)?.get_mut(&partition)?;
        if !state.flagged {
            return None;
        }
        state.prune_below(log_start_offset);
        let lso = state.last_stable_offset(high_watermark);
        Some((lso, state.aborted_between(log_start_offset, lso)))
    }

    fn get_mut(&self, topic: &str, partition: i32) -> Option<std::cell::RefMut<'_, PartitionTxns>> {
        std::cell::RefMut::filter_map(self.partitions.borrow_mut(), |p| {
            p.get_mut(topic).and_then(|p| p.get_mut(&partition))
        })
        .ok()
    }
}

/// Creates a partition's flag file unless its state says it exists.
fn flag(state: &mut PartitionTxns, dir: &Path) -> std::io::Result<()> {
    if !state.flagged {
        create_flag_file(dir)?;
        state.flagged = true;
    }
    Ok(())
}
