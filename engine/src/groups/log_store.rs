//! The durable [`OffsetStore`]: coordinator records as Kafka v2 record batches in the `__consumer_offsets`
//! partition logs this shard owns, on the engine's own storage (`crate::storage::PartitionLog`). A group's
//! records go to partition [`offsets_partition_for`]`(group)`, like Kafka's, each `persist` call as one
//! batch per partition (so a commit is replayed whole or not at all). Keys and values use Kafka's formats
//! (`record_codec`: `OffsetCommitKey`/`Value`, `GroupMetadataKey`/`Value`); a delete is a tombstone. The
//! offsets of a transaction go in transactional batches of its producer, and its end is a marker (a
//! control batch), as in Kafka's `__consumer_offsets`; replay hands both back as such.
//!
//! Compaction: every commit appends, so a partition log only grows. When it is much larger than its live
//! offsets, the live records are written to a fresh log beside it (`<dir>.compacting`), which is renamed
//! to `<dir>.compacted` once complete and then swapped in place of the old directory. `open` finishes or
//! discards an interrupted swap, so a crash at any step loses nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::io::BufferedFile;
use ringbroker_protocol::batch::{batches, BatchHeader};
use ringbroker_protocol::records::{
    control_record_type, decode_records, BatchBuilder, Compression, Record,
};

use super::error::GroupError;
use super::record_codec::{decode_record, encode_record};
use super::replica_gate::{ReplicaGate, Unreplicated};
use super::store::{
    CoordinatorRecord, LocalBoxFuture, OffsetRecord, OffsetStore, TxnMarkerRecord, TxnOffsetRecord,
};
use crate::storage::{LogConfig, PartitionLog, ReadChunk};
use crate::transactions::{CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT};

/// Kafka's internal topic name, used for the partition directories (`<data>/__consumer_offsets-<n>/`).
pub const OFFSETS_TOPIC_NAME: &str = "__consumer_offsets";
/// Bytes read per step while replaying an offsets partition at start-up.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// A partition log is compacted only past this size (below it, replay at start-up is quick anyway).
pub const DEFAULT_COMPACTION_MIN_BYTES: u64 = 64 << 20;
/// ...and only when it is at least this many times the size of its live records.
const COMPACTION_GARBAGE_RATIO: u64 = 2;
/// Records per batch when rewriting live offsets (keeps each batch far below any size limit).
const COMPACTION_BATCH_RECORDS: usize = 1_000;
/// Largest segment of offsets partition logs (Kafka's `offsets.topic.segment.bytes` is 100 MiB; commits are
/// small and compaction rewrites whole logs, so smaller segments suffice).
pub const OFFSETS_SEGMENT_BYTES: u64 = 8 << 20;
/// Largest tail cache per offsets partition: nothing fetches these logs on the hot path, and replay reads files.
const OFFSETS_TAIL_CACHE_BYTES: usize = 64 << 10;
/// Suffix of a compacted log being written.
const COMPACTING_SUFFIX: &str = ".compacting";
/// Suffix of a complete compacted log waiting to replace the partition directory.
const COMPACTED_SUFFIX: &str = ".compacted";

/// Coordinator-record store over the `__consumer_offsets` partitions one shard owns.
pub struct LogOffsetStore {
    data_dir: PathBuf,
    /// Whether a partition may be written, with which leader epoch, and when a write is
    /// committed (replication); [`Unreplicated`] until set.
    gate: RefCell<Rc<dyn ReplicaGate>>,
    config: LogConfig,
    /// Owned offsets partitions by partition number (replaced wholesale by compaction).
    logs: RefCell<BTreeMap<i32, PartitionLog>>,
    /// Partition count of the offsets topic (placement of groups).
    partition_count: i32,
    compaction_min_bytes: u64,
}

/// The storage settings of offsets partitions, derived from the broker's: segment size and tail cache
/// capped, no preallocation; flush policy and write tuning kept. There are 50 of them per broker: preallocating 1 GiB segments and keeping a 4 MiB tail cache
/// each, as data partitions do, would take 50 GiB of disk and 200 MiB of memory for a few KiB of commits.
pub fn offsets_log_config(base: &LogConfig) -> LogConfig {
    LogConfig {
        segment_bytes: base.segment_bytes.min(OFFSETS_SEGMENT_BYTES),
        tail_cache_bytes: base.tail_cache_bytes.min(OFFSETS_TAIL_CACHE_BYTES),
        preallocate: false,
        ..base.clone()
    }
}

fn storage_error(what: &str, error: impl std::fmt::Display) -> GroupError {
    GroupError::Storage(format!("{what}: {error}"))
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// A batch being built for one partition: plain records, or one producer's transactional ones.
struct OpenBatch {
    builder: BatchBuilder,
    /// (producer id, epoch) of a transactional batch.
    producer: Option<(i64, i16)>,
}

impl OpenBatch {
    fn new(producer: Option<(i64, i16)>) -> Self {
        let mut builder = BatchBuilder::new(Compression::None);
        if let Some((producer_id, producer_epoch)) = producer {
            // No sequence: the coordinator, not an idempotent producer, writes these batches.
            builder.set_producer(producer_id, producer_epoch, -1);
            builder.set_transactional(true);
        }
        Self { builder, producer }
    }

    fn finish(mut self) -> Result<Bytes, GroupError> {
        self.builder
            .finish()
            .map_err(|e| storage_error("building offsets batch", e))
    }
}

impl LogOffsetStore {
    /// Opens (creating if needed) `<data_dir>/__consumer_offsets-<p>/` for every owned partition `p`.
    /// The caller decides ownership (the server's shard placement of the offsets topic). `config` is the
    /// broker's log configuration; [`offsets_log_config`] adapts it to offsets partitions.
    pub async fn open(
        data_dir: &Path,
        owned_partitions: &[i32],
        partition_count: i32,
        config: LogConfig,
    ) -> Result<Self, GroupError> {
        let config = offsets_log_config(&config);
        assert!(
            partition_count > 0,
            "offsets topic needs at least one partition"
        );
        let mut logs = BTreeMap::new();
        for &partition in owned_partitions {
            assert!(
                (0..partition_count).contains(&partition),
                "offsets partition {partition} out of range"
            );
            let dir = Self::partition_dir(data_dir, partition);
            finish_interrupted_compaction(&dir)?;
            let log = PartitionLog::open(&dir, config.clone())
                .await
                .map_err(|e| storage_error(&format!("opening {}", dir.display()), e))?;
            logs.insert(partition, log);
        }
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            gate: RefCell::new(Rc::new(Unreplicated)),
            config,
            logs: RefCell::new(logs),
            partition_count,
            compaction_min_bytes: DEFAULT_COMPACTION_MIN_BYTES,
        })
    }

    /// Makes writes ask `gate` (the broker's replication of `__consumer_offsets`): which
    /// partitions this broker may append to and with which leader epoch, and when an append is
    /// on every in-sync replica.
    pub fn set_gate(&self, gate: Rc<dyn ReplicaGate>) {
        *self.gate.borrow_mut() = gate;
    }

    fn gate(&self) -> Rc<dyn ReplicaGate> {
        self.gate.borrow().clone()
    }

    /// Sets the size from which a partition log may be compacted (tests use tiny values).
    pub fn with_compaction_min_bytes(mut self, bytes: u64) -> Self {
        self.compaction_min_bytes = bytes;
        self
    }

    fn partition_dir(data_dir: &Path, partition: i32) -> PathBuf {
        data_dir.join(format!("{OFFSETS_TOPIC_NAME}-{partition}"))
    }

    /// The log of an owned partition (for the server's Fetch of `__consumer_offsets`, metrics).
    pub fn log(&self, partition: i32) -> Option<PartitionLog> {
        self.logs.borrow().get(&partition).cloned()
    }

    /// Closes every log cleanly (checkpoint, so the next open skips the recovery scan).
    pub async fn close(&self) -> Result<(), GroupError> {
        let logs: Vec<PartitionLog> = self.logs.borrow().values().cloned().collect();
        for log in logs {
            log.close()
                .await
                .map_err(|e| storage_error("closing offsets log", e))?;
        }
        Ok(())
    }

    /// Batches per partition holding `records` in order, at most `batch_records` records each. A
    /// transaction's offsets go in transactional batches of their producer, a marker is a control
    /// batch of its own (Kafka's layout of `__consumer_offsets`), so a batch never mixes them.
    fn build_batches(
        &self,
        records: &[CoordinatorRecord],
        batch_records: usize,
    ) -> Result<BTreeMap<i32, Vec<Bytes>>, GroupError> {
        debug_assert!(batch_records > 0);
        let mut open: BTreeMap<i32, OpenBatch> = BTreeMap::new();
        let mut done: BTreeMap<i32, Vec<Bytes>> = BTreeMap::new();
        let now_ms = super::coordinator::now_ms();
        let owned = self.logs.borrow();
        for record in records {
            let partition = record.partition(self.partition_count);
            if !owned.contains_key(&partition) {
                return Err(GroupError::PartitionNotOwned {
                    group_id: record.group_id().unwrap_or_default().to_string(),
                    partition,
                });
            }
            let finished = done.entry(partition).or_default();
            if let CoordinatorRecord::TxnMarker(marker) = record {
                if let Some(batch) = open.remove(&partition) {
                    finished.push(batch.finish()?);
                }
                let control = crate::transactions::markers::control_batch(
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.commit,
                    marker.coordinator_epoch,
                )
                .map_err(|e| storage_error("building a transaction marker", e))?;
                finished.push(Bytes::from(control));
                continue;
            }
            let producer = match record {
                CoordinatorRecord::TxnOffset(txn) => Some((txn.producer_id, txn.producer_epoch)),
                _ => None,
            };
            if open.get(&partition).is_some_and(|b| b.producer != producer) {
                if let Some(batch) = open.remove(&partition) {
                    finished.push(batch.finish()?);
                }
            }
            let (key, value) = encode_record(record)?;
            // A commit carries its own time (Kafka stamps the record with it); anything else is stamped now.
            let timestamp_ms = match record {
                CoordinatorRecord::Offset(OffsetRecord { value, .. })
                | CoordinatorRecord::TxnOffset(TxnOffsetRecord {
                    offset: OffsetRecord { value, .. },
                    ..
                }) => value.as_ref().map_or(now_ms, |v| v.commit_timestamp_ms),
                _ => now_ms,
            };
            let batch = open
                .entry(partition)
                .or_insert_with(|| OpenBatch::new(producer));
            batch
                .builder
                .push(&Record {
                    key: Some(&key),
                    value: value.as_deref(),
                    headers: &[],
                    timestamp_ms,
                })
                .map_err(|e| storage_error("building offsets batch", e))?;
            if batch.builder.record_count() >= batch_records {
                if let Some(batch) = open.remove(&partition) {
                    finished.push(batch.finish()?);
                }
            }
        }
        for (partition, batch) in open {
            done.entry(partition).or_default().push(batch.finish()?);
        }
        done.retain(|_, batches| !batches.is_empty());
        Ok(done)
    }

    /// Rewrites one partition's live records into a fresh log and swaps it in (a partition with
    /// one replica only: the rewrite renumbers offsets).
    async fn compact_partition(&self, partition: i32, batches: &[Bytes]) -> Result<(), GroupError> {
        let gate = self.gate();
        debug_assert!(!gate.is_replicated(partition));
        let leader_epoch = gate.writable(partition)?;
        let dir = Self::partition_dir(&self.data_dir, partition);
        let log = swap_in_rewritten_log(&dir, &self.config, batches, leader_epoch, || {
            self.logs.borrow_mut().remove(&partition)
        })
        .await?;
        self.logs.borrow_mut().insert(partition, log);
        Ok(())
    }
}

/// Replaces the log in `dir` by a fresh one holding only `batches` (a coordinator's live records):
/// written beside it as `<dir>.compacting`, renamed `<dir>.compacted` once complete, then the old
/// log (`take_old`, called only then, so it serves until the new one is whole) is closed and the
/// new one swapped in and reopened. `open` of a coordinator store finishes or discards an
/// interrupted swap ([`finish_interrupted_compaction`]), so a crash at any step loses nothing.
pub async fn swap_in_rewritten_log(
    dir: &Path,
    config: &LogConfig,
    batches: &[Bytes],
    leader_epoch: i32,
    take_old: impl FnOnce() -> Option<PartitionLog>,
) -> Result<PartitionLog, GroupError> {
    let compacting = with_suffix(dir, COMPACTING_SUFFIX);
    let compacted = with_suffix(dir, COMPACTED_SUFFIX);
    remove_dir_if_exists(&compacting)?;
    let fresh = PartitionLog::open(&compacting, config.clone())
        .await
        .map_err(|e| storage_error("opening compacted log", e))?;
    let appends: Vec<_> = batches
        .iter()
        .map(|batch| fresh.append(batch, leader_epoch))
        .collect();
    for append in appends {
        append
            .await
            .map_err(|e| storage_error("writing compacted log", e))?;
    }
    fresh
        .close()
        .await
        .map_err(|e| storage_error("closing compacted log", e))?;
    drop(fresh);
    // Blocking renames: a few metadata operations, once per compaction.
    std::fs::rename(&compacting, &compacted)
        .map_err(|e| storage_error("marking compacted log complete", e))?;
    if let Some(old) = take_old() {
        old.close()
            .await
            .map_err(|e| storage_error("closing the compacted-away log", e))?;
    }
    finish_interrupted_compaction(dir)?;
    PartitionLog::open(dir, config.clone())
        .await
        .map_err(|e| storage_error(&format!("reopening {}", dir.display()), e))
}

/// Completes a swap a crash interrupted: a complete `<dir>.compacted` replaces `<dir>`; an incomplete
/// `<dir>.compacting` is discarded (the old log is still whole).
pub fn finish_interrupted_compaction(dir: &Path) -> Result<(), GroupError> {
    remove_dir_if_exists(&with_suffix(dir, COMPACTING_SUFFIX))?;
    let compacted = with_suffix(dir, COMPACTED_SUFFIX);
    if compacted.exists() {
        remove_dir_if_exists(dir)?;
        std::fs::rename(&compacted, dir)
            .map_err(|e| storage_error("installing compacted offsets log", e))?;
    }
    Ok(())
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), GroupError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(storage_error(&format!("removing {}", dir.display()), e)),
    }
}

/// Every record of one partition log up to `bound`, oldest first, appended to `out`.
async fn replay(
    partition: i32,
    log: &PartitionLog,
    bound: ScanBound,
    out: &mut Vec<CoordinatorRecord>,
) -> Result<(), GroupError> {
    let what = format!("replaying {OFFSETS_TOPIC_NAME}-{partition}");
    let mut decoded: Result<(), GroupError> = Ok(());
    scan_log_to(
        log,
        log.log_start_offset(),
        bound,
        &what,
        |bytes, offset| {
            for batch in batches(bytes) {
                let (header, batch) = batch.map_err(|e| e.to_string())?;
                // A read comes back in whole batches, even if `offset` lies inside the first.
                if header.last_offset() < offset {
                    continue;
                }
                match decode_batch(partition, &header, batch, offset) {
                    Ok(records) => out.extend(records),
                    Err(e) => {
                        let reason = e.to_string();
                        decoded = Err(e);
                        return Err(reason);
                    }
                }
            }
            Ok(())
        },
    )
    .await
    .map_err(|e| match std::mem::replace(&mut decoded, Ok(())) {
        Err(decode_error) => decode_error,
        Ok(()) => storage_error(&what, e),
    })
}

/// The coordinator records of one batch of offsets `partition`, from `offset` on: a control batch
/// is its transaction's marker, a transactional batch holds its producer's pending offsets.
fn decode_batch(
    partition: i32,
    header: &BatchHeader,
    batch: &[u8],
    offset: i64,
) -> Result<Vec<CoordinatorRecord>, GroupError> {
    if header.is_control() {
        let commit = match control_record_type(batch) {
            Some(CONTROL_TYPE_COMMIT) => true,
            Some(CONTROL_TYPE_ABORT) => false,
            other => {
                return Err(GroupError::MalformedRecord(format!(
                    "control batch of type {other:?} at offset {}",
                    header.base_offset
                )))
            }
        };
        return Ok(vec![CoordinatorRecord::TxnMarker(TxnMarkerRecord {
            partition,
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            commit,
            // Not read back: only the writer's fencing used it.
            coordinator_epoch: -1,
        })]);
    }
    let records = decode_records(batch).map_err(|e| GroupError::MalformedRecord(e.to_string()))?;
    let mut out = Vec::with_capacity(records.len());
    for record in records.into_iter().filter(|r| r.offset >= offset) {
        let key = record
            .key
            .ok_or_else(|| GroupError::MalformedRecord("record without key".into()))?;
        out.push(match decode_record(key, record.value)? {
            CoordinatorRecord::Offset(offset) if header.is_transactional() => {
                CoordinatorRecord::TxnOffset(TxnOffsetRecord {
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                    offset,
                })
            }
            other if header.is_transactional() => {
                return Err(GroupError::MalformedRecord(format!(
                    "a transactional batch holds a record other than an offset: {other:?}"
                )))
            }
            other => other,
        });
    }
    Ok(out)
}

/// How far a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanBound {
    /// What consumers may read: every in-sync replica has it.
    HighWatermark,
    /// Everything this broker wrote. A new leader reads this far: it never truncates its own log,
    /// so what it holds above the high watermark becomes committed as its followers catch up.
    WrittenEnd,
}

/// Reads `log` from `from` to its high watermark in order and hands each read's whole batches to
/// `visit`, with the offset that read started at (its first batch may begin below it: a batch
/// comes back whole). Shared by the coordinators' replays and the transaction index rebuild.
pub async fn scan_log(
    log: &PartitionLog,
    from: i64,
    what: &str,
    visit: impl FnMut(&Bytes, i64) -> Result<(), String>,
) -> Result<(), String> {
    scan_log_to(log, from, ScanBound::HighWatermark, what, visit).await
}

/// [`scan_log`] up to `bound` (a new leader's replay reads up to its written end).
pub async fn scan_log_to(
    log: &PartitionLog,
    from: i64,
    bound: ScanBound,
    what: &str,
    mut visit: impl FnMut(&Bytes, i64) -> Result<(), String>,
) -> Result<(), String> {
    let end = || match bound {
        ScanBound::HighWatermark => log.high_watermark(),
        ScanBound::WrittenEnd => log.written_end_offset(),
    };
    let mut offset = from;
    while offset < end() {
        let read = match bound {
            ScanBound::HighWatermark => log.read(offset, REPLAY_READ_BYTES).await,
            ScanBound::WrittenEnd => log.read_for_replica(offset, REPLAY_READ_BYTES).await,
        }
        .map_err(|e| format!("{what}: {e}"))?;
        if read.chunks.is_empty() {
            break;
        }
        for chunk in read.chunks {
            let bytes = match chunk {
                ReadChunk::Memory(bytes) => bytes,
                ReadChunk::File {
                    path,
                    position,
                    len,
                    ..
                } => read_file_range(&path, position, len)
                    .await
                    .map_err(|e| format!("{what}: {e}"))?,
            };
            let mut next = offset;
            for batch in batches(&bytes) {
                let (header, _) = batch.map_err(|e| format!("{what}: {e}"))?;
                next = next.max(header.last_offset() + 1);
            }
            if next == offset {
                return Err(format!("{what}: read returned no whole batch"));
            }
            visit(&bytes, offset)?;
            offset = next;
        }
    }
    Ok(())
}

async fn read_file_range(path: &Path, position: u64, len: u64) -> Result<Bytes, String> {
    let file = BufferedFile::open(path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let len = usize::try_from(len).map_err(|_| format!("range of {len} bytes"))?;
    let read = file
        .read_at(position, len)
        .await
        .map_err(|e| format!("read {}: {e}", path.display()));
    // Close errors on a read-only descriptor carry no information worth failing the replay for.
    let _ = file.close().await;
    let read = read?;
    if read.len() != len {
        return Err(format!(
            "short read of {}: {} of {len} bytes",
            path.display(),
            read.len()
        ));
    }
    let mut bytes = BytesMut::with_capacity(len);
    bytes.extend_from_slice(&read);
    Ok(bytes.freeze())
}

impl OffsetStore for LogOffsetStore {
    fn persist<'a>(
        &'a self,
        records: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<(), GroupError>> {
        Box::pin(async move {
            let batches = self.build_batches(records, usize::MAX)?;
            let gate = self.gate();
            // Every partition is checked before any is written: a refused write appends nothing.
            let epochs = batches
                .keys()
                .map(|&partition| Ok((partition, gate.writable(partition)?)))
                .collect::<Result<BTreeMap<i32, i32>, GroupError>>()?;
            // Start every append before awaiting any: offsets are assigned at call time and the log
            // writes concurrent appends in one group commit.
            let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
            let pending: Vec<_> = {
                let logs = self.logs.borrow();
                batches
                    .iter()
                    .flat_map(|(partition, list)| list.iter().map(move |batch| (*partition, batch)))
                    .filter_map(|(partition, batch)| {
                        let log = logs.get(&partition)?;
                        let append = log.append(batch, epochs[&partition]);
                        ends.insert(partition, log.log_end_offset());
                        Some((partition, append))
                    })
                    .collect()
            };
            for (partition, append) in pending {
                append.await.map_err(|e| {
                    storage_error(&format!("appending to {OFFSETS_TOPIC_NAME}-{partition}"), e)
                })?;
            }
            for (partition, end_offset) in ends {
                gate.committed(partition, epochs[&partition], end_offset)
                    .await?;
            }
            Ok(())
        })
    }

    fn load_all(&self) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>> {
        Box::pin(async move {
            let logs: Vec<(i32, PartitionLog)> = self
                .logs
                .borrow()
                .iter()
                .map(|(p, l)| (*p, l.clone()))
                .collect();
            let mut records = Vec::new();
            for (partition, log) in &logs {
                replay(*partition, log, ScanBound::HighWatermark, &mut records).await?;
            }
            Ok(records)
        })
    }

    fn load_partition(
        &self,
        partition: i32,
    ) -> LocalBoxFuture<'_, Result<Vec<CoordinatorRecord>, GroupError>> {
        Box::pin(async move {
            let Some(log) = self.log(partition) else {
                return Ok(Vec::new());
            };
            let mut records = Vec::new();
            replay(partition, &log, ScanBound::WrittenEnd, &mut records).await?;
            Ok(records)
        })
    }

    fn wants_compaction(&self) -> bool {
        let gate = self.gate();
        self.logs.borrow().iter().any(|(partition, log)| {
            log.size_bytes() >= self.compaction_min_bytes && !gate.is_replicated(*partition)
        })
    }

    fn compact<'a>(
        &'a self,
        live: &'a [CoordinatorRecord],
    ) -> LocalBoxFuture<'a, Result<usize, GroupError>> {
        Box::pin(async move {
            let rewritten = self.build_batches(live, COMPACTION_BATCH_RECORDS)?;
            // A replicated partition keeps its offsets: its followers copy them.
            let gate = self.gate();
            let sizes: Vec<(i32, u64)> = self
                .logs
                .borrow()
                .iter()
                .filter(|(p, _)| !gate.is_replicated(**p))
                .map(|(p, l)| (*p, l.size_bytes()))
                .collect();
            let mut compacted = 0;
            for (partition, size_bytes) in sizes {
                let batches = rewritten
                    .get(&partition)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let live_bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
                if size_bytes < self.compaction_min_bytes
                    || size_bytes < live_bytes.saturating_mul(COMPACTION_GARBAGE_RATIO)
                {
                    continue;
                }
                tracing::info!(partition, size_bytes, live_bytes, "compacting offsets log");
                self.compact_partition(partition, batches).await?;
                compacted += 1;
            }
            Ok(compacted)
        })
    }
}
