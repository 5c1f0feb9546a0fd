//! The durable state of one shard's transaction coordinator: Kafka `__transaction_state` records
//! (`codec`) appended to the partition logs of that topic this shard owns, one record per state
//! change, each its own batch; the last record of a transactional id wins on replay, as after
//! Kafka's compaction. The logs live beside the data partitions (`<data>/__transaction_state-<n>/`)
//! and are opened by the coordinator, like `__consumer_offsets` by the group coordinator.
//!
//! Replication: in a cluster `__transaction_state` is a replicated topic; its logs are the ones
//! here, reached by the fetchers and the replica Fetch through `Shard::log`. Writes go through a
//! [`ReplicaGate`] (leader only, stamped with the leader epoch, done at the high watermark); a new
//! leader replays its partition up to everything it wrote ([`TxnLogStore::load_partition`]).
//!
//! Compaction: every change appends, so a log only grows; once it is past
//! [`TXN_COMPACTION_MIN_BYTES`] and at least [`COMPACTION_GARBAGE_RATIO`] times its live records,
//! the live records are rewritten to a fresh log that replaces it (the group coordinator's
//! crash-safe swap, `groups::swap_in_rewritten_log`). A replicated partition is not: the rewrite
//! renumbers offsets, which its followers cannot follow.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use ringbroker_protocol::records::{decode_records, BatchBuilder, Compression, Record};

use super::codec;
use super::config::{
    TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_SEGMENT_BYTES,
    TRANSACTION_STATE_TAIL_CACHE_BYTES, TRANSACTION_STATE_TOPIC,
};
use super::error::TxnError;
use super::metadata::TxnMetadata;
use crate::groups::{
    finish_interrupted_compaction, offsets_partition_for, scan_log_to, swap_in_rewritten_log,
    GroupError, ReplicaGate, ScanBound, Unreplicated,
};
use crate::storage::{LogConfig, PartitionLog};

/// The `__transaction_state` partition of a transactional id (Kafka's placement).
pub fn state_partition_for(transactional_id: &str) -> i32 {
    offsets_partition_for(transactional_id, TRANSACTION_STATE_PARTITIONS)
}

/// A state log is compacted only past this size (below it, replay at start-up is quick anyway).
pub const TXN_COMPACTION_MIN_BYTES: u64 = 64 << 20;
/// ...and only when it is at least this many times the size of its live records.
pub const COMPACTION_GARBAGE_RATIO: u64 = 2;
/// Records per batch when rewriting live states (keeps each batch far below any size limit).
const COMPACTION_BATCH_RECORDS: usize = 1_000;

/// The `__transaction_state` partitions one shard owns.
pub struct TxnLogStore {
    data_dir: PathBuf,
    config: LogConfig,
    /// The partitions this store serves (their logs open on first use).
    owned: std::collections::BTreeSet<i32>,
    /// Replaced wholesale by compaction.
    logs: RefCell<BTreeMap<i32, PartitionLog>>,
    compaction_min_bytes: u64,
    /// Whether a partition may be written, with which leader epoch, and when a write is
    /// committed (replication); [`Unreplicated`] until set.
    gate: RefCell<Rc<dyn ReplicaGate>>,
    /// Held while a log is opened on first use.
    opening: glommio::sync::Semaphore,
}

/// A refusal of the replica gate, or a storage failure of the gate's wait.
fn gate_error(e: GroupError) -> TxnError {
    match e {
        GroupError::NotCommitted { .. } => TxnError::NotCommitted(e.to_string()),
        other => TxnError::Storage(other.to_string()),
    }
}

fn partition_dir(data_dir: &Path, partition: i32) -> PathBuf {
    data_dir.join(format!("{TRANSACTION_STATE_TOPIC}-{partition}"))
}

/// One batch holding the states of `txns`, in order.
fn state_batch(txns: &[&TxnMetadata], now_ms: i64) -> Result<Bytes, TxnError> {
    let mut builder = BatchBuilder::new(Compression::None);
    for txn in txns {
        let key = codec::encode_key(&txn.transactional_id)?;
        let value = codec::encode_value(txn)?;
        builder
            .push(&Record {
                key: Some(&key),
                value: Some(&value),
                headers: &[],
                timestamp_ms: now_ms,
            })
            .map_err(|e| TxnError::Storage(format!("building a state batch: {e}")))?;
    }
    builder
        .finish()
        .map_err(|e| TxnError::Storage(format!("building a state batch: {e}")))
}

impl TxnLogStore {
    /// Opens (creating if needed) `<data_dir>/__transaction_state-<p>/` for every `owned`
    /// partition, with `base`'s flush policy and small segments.
    pub async fn open(data_dir: &Path, owned: &[i32], base: &LogConfig) -> Result<Self, TxnError> {
        let config = LogConfig {
            segment_bytes: base.segment_bytes.min(TRANSACTION_STATE_SEGMENT_BYTES),
            tail_cache_bytes: base
                .tail_cache_bytes
                .min(TRANSACTION_STATE_TAIL_CACHE_BYTES),
            preallocate: false,
            ..base.clone()
        };
        let store = TxnLogStore {
            data_dir: data_dir.to_path_buf(),
            config,
            owned: owned.iter().copied().collect(),
            logs: RefCell::new(BTreeMap::new()),
            compaction_min_bytes: TXN_COMPACTION_MIN_BYTES,
            gate: RefCell::new(Rc::new(Unreplicated)),
            opening: glommio::sync::Semaphore::new(1),
        };
        for &partition in owned {
            debug_assert!((0..TRANSACTION_STATE_PARTITIONS).contains(&partition));
            let dir = partition_dir(data_dir, partition);
            finish_interrupted_compaction(&dir).map_err(|e| TxnError::Storage(e.to_string()))?;
            // Only partitions that hold state are opened now; the others on their first write,
            // so a broker without transactions keeps no idle logs (each has buffers and timers).
            if dir.exists() {
                store.open_partition(partition).await?;
            }
        }
        Ok(store)
    }

    async fn open_partition(&self, partition: i32) -> Result<PartitionLog, TxnError> {
        let dir = partition_dir(&self.data_dir, partition);
        let log = PartitionLog::open(&dir, self.config.clone())
            .await
            .map_err(|e| TxnError::Storage(format!("opening {}: {e}", dir.display())))?;
        self.logs.borrow_mut().insert(partition, log.clone());
        Ok(log)
    }

    /// Makes writes ask `gate` (the broker's replication of `__transaction_state`).
    pub fn set_gate(&self, gate: Rc<dyn ReplicaGate>) {
        *self.gate.borrow_mut() = gate;
    }

    /// The replication state of this store's partitions.
    pub fn gate(&self) -> Rc<dyn ReplicaGate> {
        self.gate.borrow().clone()
    }

    /// The log of an owned partition, opened (created) on first use: on its first write, or
    /// when this broker is made a replica of it (its follower copy must exist to be fetched into).
    pub async fn log_or_open(&self, partition: i32) -> Result<PartitionLog, TxnError> {
        if let Ok(log) = self.log(partition) {
            return Ok(log);
        }
        if !self.owned.contains(&partition) {
            return Err(TxnError::PartitionNotOwned(partition));
        }
        // A first write and the image's "this broker hosts it" may both come to open it: one
        // directory must never be opened twice.
        let _permit = self
            .opening
            .acquire_permit(1)
            .await
            .map_err(|_| TxnError::Storage("the store is closing".into()))?;
        if let Ok(log) = self.log(partition) {
            return Ok(log);
        }
        self.open_partition(partition).await
    }

    /// Sets the size from which a log may be compacted (tests use tiny values).
    pub fn with_compaction_min_bytes(mut self, bytes: u64) -> Self {
        self.compaction_min_bytes = bytes;
        self
    }

    /// The log of an owned partition, if open (for replication through `Shard::log`).
    pub fn open_log(&self, partition: i32) -> Option<PartitionLog> {
        self.logs.borrow().get(&partition).cloned()
    }

    fn log(&self, partition: i32) -> Result<PartitionLog, TxnError> {
        self.logs
            .borrow()
            .get(&partition)
            .cloned()
            .ok_or(TxnError::PartitionNotOwned(partition))
    }

    /// Whether `partition`'s log is big enough to be worth a look by `compact_if_needed` (and
    /// has one replica: a replicated one keeps its offsets, its followers copy them).
    pub fn wants_compaction(&self, partition: i32) -> bool {
        self.logs
            .borrow()
            .get(&partition)
            .is_some_and(|log| log.size_bytes() >= self.compaction_min_bytes)
            && !self.gate().is_replicated(partition)
    }

    /// Rewrites `partition`'s log to `live` (every current state of the ids it holds) when it is
    /// large and mostly garbage; returns whether it did. The caller serialises writes (the
    /// coordinator's lock), so no append races the swap.
    pub async fn compact_if_needed(
        &self,
        partition: i32,
        live: &[&TxnMetadata],
        now_ms: i64,
    ) -> Result<bool, TxnError> {
        debug_assert!(live
            .iter()
            .all(|t| state_partition_for(&t.transactional_id) == partition));
        let size_bytes = self.log(partition)?.size_bytes();
        if size_bytes < self.compaction_min_bytes || self.gate().is_replicated(partition) {
            return Ok(false);
        }
        let batches = live
            .chunks(COMPACTION_BATCH_RECORDS)
            .map(|chunk| state_batch(chunk, now_ms))
            .collect::<Result<Vec<Bytes>, TxnError>>()?;
        let live_bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
        if size_bytes < live_bytes.saturating_mul(COMPACTION_GARBAGE_RATIO) {
            return Ok(false);
        }
        tracing::info!(
            partition,
            size_bytes,
            live_bytes,
            "compacting a transaction state log"
        );
        let dir = partition_dir(&self.data_dir, partition);
        let log = swap_in_rewritten_log(&dir, &self.config, &batches, -1, || {
            self.logs.borrow_mut().remove(&partition)
        })
        .await
        .map_err(|e| TxnError::Storage(e.to_string()))?;
        self.logs.borrow_mut().insert(partition, log);
        Ok(true)
    }

    /// Appends `txn`'s state; resolves once it is durable (the log's flush policy) and, for a
    /// replicated partition, on every in-sync replica. Refused (nothing appended) when this
    /// broker may not write the partition. The caller serialises writes (a first write opens the
    /// partition's log).
    pub async fn persist(&self, txn: &TxnMetadata, now_ms: i64) -> Result<(), TxnError> {
        let partition = state_partition_for(&txn.transactional_id);
        let log = self.log_or_open(partition).await?;
        let batch = state_batch(&[txn], now_ms)?;
        let gate = self.gate();
        // Checked right before the append, with no await in between: a leadership lost after
        // this is caught by `committed` (its epoch no longer leads).
        let leader_epoch = gate.writable(partition).map_err(gate_error)?;
        let append = log.append(&batch, leader_epoch);
        let end_offset = log.log_end_offset();
        append.await.map_err(|e| {
            TxnError::Storage(format!(
                "appending to {TRANSACTION_STATE_TOPIC}-{partition}: {e}"
            ))
        })?;
        gate.committed(partition, leader_epoch, end_offset)
            .await
            .map_err(gate_error)
    }

    /// The latest state of every transactional id in the owned partitions (at start-up: up to
    /// each log's high watermark).
    pub async fn load_all(&self) -> Result<HashMap<String, TxnMetadata>, TxnError> {
        let mut out: HashMap<String, TxnMetadata> = HashMap::new();
        let logs: Vec<(i32, PartitionLog)> = self
            .logs
            .borrow()
            .iter()
            .map(|(p, l)| (*p, l.clone()))
            .collect();
        for (partition, log) in &logs {
            replay(*partition, log, ScanBound::HighWatermark, &mut out).await?;
        }
        Ok(out)
    }

    /// The latest state of every transactional id of `partition`, as this broker holds it, for
    /// its new leader: up to everything it wrote (a new leader never truncates its own log, so
    /// that part commits as its followers catch up).
    pub async fn load_partition(
        &self,
        partition: i32,
    ) -> Result<HashMap<String, TxnMetadata>, TxnError> {
        let mut out = HashMap::new();
        if let Some(log) = self.open_log(partition) {
            replay(partition, &log, ScanBound::WrittenEnd, &mut out).await?;
        }
        debug_assert!(out.keys().all(|id| state_partition_for(id) == partition));
        Ok(out)
    }

    /// Closes every log cleanly (checkpoint, so the next open skips the recovery scan).
    pub async fn close(&self) -> Result<(), TxnError> {
        let logs: Vec<PartitionLog> = self.logs.borrow().values().cloned().collect();
        for log in logs {
            log.close()
                .await
                .map_err(|e| TxnError::Storage(format!("closing transaction state log: {e}")))?;
        }
        Ok(())
    }
}

/// Applies the records of one partition log up to `bound` to `out`, oldest first: the last state
/// of an id wins, a tombstone removes it.
async fn replay(
    partition: i32,
    log: &PartitionLog,
    bound: ScanBound,
    out: &mut HashMap<String, TxnMetadata>,
) -> Result<(), TxnError> {
    let what = format!("replaying {TRANSACTION_STATE_TOPIC}-{partition}");
    let mut failure: Option<TxnError> = None;
    scan_log_to(log, log.log_start_offset(), bound, &what, |bytes, from| {
        let records = decode_records(bytes).map_err(|e| e.to_string())?;
        for record in records.into_iter().filter(|r| r.offset >= from) {
            let Some(key) = record.key else {
                return Err("record without key".into());
            };
            let decoded = codec::decode_key(key).and_then(|id| match record.value {
                Some(value) => codec::decode_value(&id, value).map(|txn| (id, Some(txn))),
                None => Ok((id, None)),
            });
            match decoded {
                Ok((id, Some(txn))) => {
                    out.insert(id, txn);
                }
                Ok((id, None)) => {
                    out.remove(&id);
                }
                Err(e) => {
                    let reason = e.to_string();
                    failure = Some(e);
                    return Err(reason);
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| failure.take().unwrap_or(TxnError::Storage(e)))
}
