//! Log compaction (`cleanup.policy=compact`), Kafka's log cleaner for one partition log.
//!
//! Only sealed segments below the high watermark and the last stable offset are cleaned, never the
//! active one, and only segments whose newest record is older than `min.compaction.lag.ms`; records
//! of aborted transactions go, and are never a key's latest ([`transactions`]). A pass holds the log's
//! maintenance semaphore (truncation and retention wait for it). A pass:
//! 1. builds a key -> latest offset map ([`offset_map`]) over the dirty range (from the cleaner
//!    checkpoint, `cleaner-offset-checkpoint`, to the end of the cleanable segments); the map holds at
//!    most `max_keys` keys: when full, the pass cleans only up to the batch it reached (as Kafka);
//! 2. rewrites each cleanable segment in which something goes ([`batch_filter`]): a record stays if
//!    it is the latest for its key; keyless records go (Kafka's cleaner drops them too); tombstones stay
//!    for `delete.retention.ms` after the segment holding them was first cleaned (the cleaned file's
//!    mtime, preserved across later rewrites), then go. Batches left empty are dropped whole (the
//!    offset gap is fine: reads move on to the next batch or segment); others keep their base offset,
//!    offset span, producer fields and timestamps. Segments with nothing to remove are not rewritten.
//! 3. installs each rewritten segment with the crash-safe `.cleaned`/`.swap` protocol ([`swap`]).
//!
//! The pass yields between batches and runs in the retention task's low-share queue: appends and
//! fetches never wait for it. Reads that already hold the old segment's file keep reading its inode.
//!
//! Choice on empty batches: Kafka keeps an emptied batch's header when it is the last batch of its
//! producer (to keep the producer's sequence state); here emptied batches are dropped, so an
//! idempotent producer whose last batch was compacted away loses its sequence state only if the
//! producer-state snapshot is also gone (crash) — see the module report.

pub mod batch_filter;
pub mod offset_map;
pub mod swap;
pub mod transactions;
pub mod txn_tracker;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::AsyncWriteExt;
use glommio::io::{DmaFile, DmaStreamWriter, DmaStreamWriterBuilder, OpenOptions};
use ringbroker_protocol::batch::{BatchHeader, BATCH_HEADER_BYTES};

use self::batch_filter::{plain_records, rebuild_batch};
use self::offset_map::{key_digest, OffsetMap};
use self::swap::{cleaned_path, remove_swap, replace_log, stage_swap, swap_path, SWAP_GRACE};
use self::transactions::CleanerTxns;
use super::error::StorageError;
use super::files;
use super::log::LogInner;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use ringbroker_protocol::batch::validate_log_batch;

/// File (in the partition directory) holding the first offset not yet cleaned (Kafka's
/// `cleaner-offset-checkpoint`, one per partition here).
pub const CLEANER_CHECKPOINT_FILE_NAME: &str = "cleaner-offset-checkpoint";

/// Default cap of the offset map (keys per pass): ~20 MiB at [`offset_map::OFFSET_MAP_ENTRY_BYTES`].
pub const DEFAULT_MAX_KEYS: usize = 512 << 10;

/// Bytes read at once from a segment being cleaned (within the executor's io_memory budget).
pub const CLEANER_READ_BYTES: u64 = 256 << 10;

/// Buffer size of the writer of a cleaned segment.
const CLEANER_WRITE_BUFFER_BYTES: usize = 128 << 10;

/// Write-behind buffers of the cleaned-segment writer.
const CLEANER_WRITE_BEHIND: usize = 2;

/// What one compaction pass may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A segment whose newest record is younger than this stays dirty (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// Tombstones survive this long after their segment was first cleaned (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Largest number of keys in the offset map of one pass.
    pub max_keys: usize,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Records removed.
    pub records_removed: u64,
    /// Bytes of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The first offset left dirty (the new cleaner checkpoint).
    pub cleaned_up_to: i64,
}

/// Memory of the caller between passes of one log (not persisted: a restart costs one extra pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionMemo {
    /// Delete horizon (now - delete.retention.ms) of the last pass over the clean segments: clean
    /// segments cleaned before it had their expired tombstones removed already.
    pub tombstone_horizon_ms: i64,
}

impl Default for CompactionMemo {
    fn default() -> Self {
        CompactionMemo {
            tombstone_horizon_ms: i64::MIN,
        }
    }
}

/// A cleanable segment as seen at the start of a pass.
struct Candidate {
    base_offset: i64,
    next_offset: i64,
    size_bytes: u64,
    file: Rc<DmaFile>,
    /// When the segment was first cleaned (its file's mtime; the seal time for never-cleaned ones).
    modified_ms: i64,
    modified: Option<SystemTime>,
}

/// How pass 2 treats one segment.
struct Filter<'a> {
    map: &'a OffsetMap,
    txns: &'a CleanerTxns,
    /// Records at or after this offset were not mapped: they stay.
    map_end: i64,
    drop_tombstones: bool,
}

impl Filter<'_> {
    fn keeps(&self, offset: i64, key: Option<&[u8]>, tombstone: bool) -> bool {
        let Some(key) = key else {
            return false;
        };
        if offset >= self.map_end {
            return true;
        }
        let superseded = self
            .map
            .latest(key_digest(key))
            .is_some_and(|latest| latest > offset);
        let expired_tombstone = tombstone && self.drop_tombstones;
        !(superseded || expired_tombstone)
    }
}

fn system_time_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs one compaction pass over `inner` at `now_ms` with the partition's transactions `txns`;
/// `None` when there was nothing to do.
pub(crate) async fn compact(
    inner: &LogInner,
    policy: &CompactionPolicy,
    txns: &CleanerTxns,
    now_ms: i64,
    memo: &mut CompactionMemo,
) -> Result<Option<CompactionOutcome>, StorageError> {
    compact_with_crash(inner, policy, txns, now_ms, memo, None).await
}

/// [`compact`], stopping the first swap after `crash_after` (tests).
pub(crate) async fn compact_with_crash(
    inner: &LogInner,
    policy: &CompactionPolicy,
    txns: &CleanerTxns,
    now_ms: i64,
    memo: &mut CompactionMemo,
    crash_after: Option<swap::SwapStep>,
) -> Result<Option<CompactionOutcome>, StorageError> {
    inner.wait_seals_done().await;
    // A truncation must not cut a segment this pass is rewriting (nor retention delete it).
    let _permit = inner
        .maintenance
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Closed)?;
    let saved = read_checkpoint(&inner.dir).await?;
    let candidates = cleanable_segments(inner, policy, txns, now_ms)?;
    let (Some(first), Some(last)) = (candidates.first(), candidates.last()) else {
        return Ok(None);
    };
    let first_dirty = saved.unwrap_or(i64::MIN).max(first.base_offset);
    let dirty = last.next_offset > first_dirty;
    let horizon = now_ms.saturating_sub(policy.delete_retention_ms);
    let tombstones_due = candidates.iter().any(|candidate| {
        candidate.next_offset <= first_dirty
            && candidate.modified_ms <= horizon
            && candidate.modified_ms > memo.tombstone_horizon_ms
    });
    if !dirty && !tombstones_due {
        return Ok(None);
    }

    // Pass 1: the offset map over the dirty range.
    let mut map = OffsetMap::new(policy.max_keys);
    let mut map_end = first_dirty;
    if dirty {
        map_end = build_offset_map(&candidates, first_dirty, txns, &mut map).await?;
        if map_end == first_dirty {
            tracing::warn!(dir = %inner.dir.display(), max_keys = policy.max_keys, "one batch has more keys than the cleaner's offset map holds; not compacting");
            return Ok(None);
        }
    }

    // Pass 2: rewrite what has something to remove.
    let mut progress = Progress {
        pending: Vec::new(),
        outcome: CompactionOutcome {
            cleaned_up_to: map_end,
            ..CompactionOutcome::default()
        },
        stopped_at: None,
    };
    let scope = PassScope {
        map: &map,
        txns,
        map_end,
        first_dirty,
        horizon,
    };
    let rewritten =
        rewrite_candidates(inner, &candidates, &scope, crash_after, &mut progress).await;
    if crash_after.is_some() {
        finish_swaps(inner, progress.pending, crash_after).await?;
        return rewritten.map(|()| Some(progress.outcome));
    }
    // Segments below where the pass got to are cleaned (some rewritten); a pass stopped early by
    // an error or a segment leaving the log still finishes the swaps it staged: a staged swap
    // left until the next open would keep serving from `.swap` and outlive a retention delete.
    let cleaned_to = progress
        .stopped_at
        .unwrap_or(map_end)
        .clamp(first_dirty, map_end);
    progress.outcome.cleaned_up_to = cleaned_to;
    // The checkpoint goes before the swaps finish: every segment this pass rewrote is staged by
    // now (recovery finishes its swap), and an open counts segments below the checkpoint as
    // rewritten (offset gaps), the ones at or after it as dense. Not on a closed log: its staged
    // swaps make the next open count every segment as rewritten, and DeleteTopics may be removing
    // its directory.
    let closed = inner.state.borrow().closed;
    let checkpointed = if dirty && cleaned_to > first_dirty && !closed {
        write_checkpoint(inner, cleaned_to).await
    } else {
        Ok(())
    };
    let finished = finish_swaps(inner, progress.pending, None).await;
    rewritten?;
    checkpointed?;
    finished?;
    let outcome = progress.outcome;
    if progress.stopped_at.is_none() {
        memo.tombstone_horizon_ms = horizon;
    }
    if outcome.segments_cleaned > 0 {
        tracing::info!(dir = %inner.dir.display(), segments = outcome.segments_cleaned, removed = outcome.records_removed, bytes_before = outcome.bytes_before, bytes_after = outcome.bytes_after, "compacted");
    }
    Ok(Some(outcome))
}

/// What pass 2 works with.
struct PassScope<'a> {
    map: &'a OffsetMap,
    txns: &'a CleanerTxns,
    /// End of the mapped (dirty) range.
    map_end: i64,
    /// Start of the dirty range: segments ending at or before it were cleaned by earlier passes.
    first_dirty: i64,
    /// Tombstones in clean segments cleaned at or before this time go.
    horizon: i64,
}

/// What pass 2 did so far.
struct Progress {
    /// Swaps staged (served from `.swap`) and not finished yet.
    pending: Vec<PendingSwap>,
    outcome: CompactionOutcome,
    /// The base offset of the segment the pass stopped at (an error, or the segment left the
    /// log); `None` when every candidate was handled.
    stopped_at: Option<i64>,
}

/// Pass 2 over the candidates below the mapped range's end: rewrites and stages each segment in
/// which something goes.
async fn rewrite_candidates(
    inner: &LogInner,
    candidates: &[Candidate],
    scope: &PassScope<'_>,
    crash_after: Option<swap::SwapStep>,
    progress: &mut Progress,
) -> Result<(), StorageError> {
    for candidate in candidates.iter().filter(|c| c.base_offset < scope.map_end) {
        progress.stopped_at = Some(candidate.base_offset);
        let was_clean = candidate.next_offset <= scope.first_dirty;
        let filter = Filter {
            map: scope.map,
            txns: scope.txns,
            map_end: scope.map_end,
            drop_tombstones: was_clean && candidate.modified_ms <= scope.horizon,
        };
        let removed = count_removed(candidate, &filter).await?;
        if removed == 0 {
            if !was_clean {
                // Cleaned without a rewrite: its tombstones' clock starts now, as for a rewrite.
                touch(&segment_file_path(
                    &inner.dir,
                    candidate.base_offset,
                    LOG_SUFFIX,
                ))?;
            }
            continue;
        }
        let Some((after, swap)) =
            rewrite_segment(inner, candidate, &filter, was_clean, crash_after).await?
        else {
            // The segment went away meanwhile (retention, DeleteRecords, close).
            return Ok(());
        };
        let outcome = &mut progress.outcome;
        outcome.segments_cleaned += 1;
        outcome.records_removed += removed;
        outcome.bytes_before += candidate.size_bytes;
        outcome.bytes_after += after;
        progress.pending.extend(swap);
        if crash_after.is_some() {
            return Ok(());
        }
    }
    progress.stopped_at = None;
    Ok(())
}

/// The sealed segments from the log start whose newest record is older than the compaction lag
/// (a contiguous prefix; the active segment never).
fn cleanable_segments(
    inner: &LogInner,
    policy: &CompactionPolicy,
    txns: &CleanerTxns,
    now_ms: i64,
) -> Result<Vec<Candidate>, StorageError> {
    let state = inner.state.borrow();
    if state.closed || state.failure.is_some() {
        return Ok(Vec::new());
    }
    let lag_limit = now_ms.saturating_sub(policy.min_compaction_lag_ms);
    // Only below the high watermark (Kafka's cleaner stops there too): records not yet replicated
    // may still be truncated, and a follower stores its leader's batches without gaps. And only
    // below the last stable offset: an open transaction's records may still be aborted.
    let cleanable_end = txns.cleanable_end(inner.high_watermark.get());
    let sealed = state.segments.len().saturating_sub(1);
    let mut out = Vec::new();
    for segment in &state.segments[..sealed] {
        let old_enough = segment
            .max_timestamp
            .is_none_or(|(timestamp, _)| timestamp <= lag_limit);
        // `sealed` is set once the seal task finished (sync, truncate, index files).
        if !segment.sealed || !old_enough || segment.next_offset > cleanable_end {
            break;
        }
        let Some(file) = segment.file.clone() else {
            break;
        };
        // Blocking metadata call: one small syscall per sealed segment per pass.
        let modified = std::fs::metadata(&segment.log_path)?.modified().ok();
        out.push(Candidate {
            base_offset: segment.base_offset,
            next_offset: segment.next_offset,
            size_bytes: segment.size_bytes,
            file,
            modified_ms: modified.map_or(now_ms, system_time_ms),
            modified,
        });
    }
    Ok(out)
}

/// One read of a segment: whole batches, as byte ranges of `bytes`.
struct BatchWindow {
    bytes: glommio::io::ReadResult,
    batches: Vec<std::ops::Range<usize>>,
}

impl BatchWindow {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.batches.iter().map(|range| &self.bytes[range.clone()])
    }
}

/// Reads the batches of a sealed segment in windows of [`CLEANER_READ_BYTES`] (a larger batch is
/// read whole), so a pass holds one window in memory, never the segment.
struct BatchReader<'a> {
    candidate: &'a Candidate,
    position: u64,
}

impl<'a> BatchReader<'a> {
    fn new(candidate: &'a Candidate) -> BatchReader<'a> {
        BatchReader {
            candidate,
            position: 0,
        }
    }

    async fn next_window(&mut self) -> Result<Option<BatchWindow>, StorageError> {
        let size = self.candidate.size_bytes;
        if self.position >= size {
            return Ok(None);
        }
        let position = self.position;
        let window_len = CLEANER_READ_BYTES.min(size - position);
        let mut bytes = self
            .candidate
            .file
            .read_at(position, window_len as usize)
            .await?;
        let mut batches = Vec::new();
        let mut at = 0usize;
        loop {
            let rest = &bytes[at..];
            if rest.len() < BATCH_HEADER_BYTES {
                break;
            }
            let header = BatchHeader::parse(rest).map_err(StorageError::InvalidBatch)?;
            let total = header.total_bytes();
            if total > rest.len() {
                break;
            }
            batches.push(at..at + total);
            at += total;
        }
        if batches.is_empty() {
            // One batch larger than the window: read it whole.
            let header = BatchHeader::parse(&bytes).map_err(StorageError::InvalidBatch)?;
            let total = header.total_bytes();
            if position + total as u64 > size {
                return Err(StorageError::Corrupt(format!(
                    "segment {} ends inside a batch at {position}",
                    self.candidate.base_offset
                )));
            }
            bytes = self.candidate.file.read_at(position, total).await?;
            if bytes.len() != total {
                return Err(StorageError::Corrupt(format!(
                    "short read of a batch at {position} in segment {}",
                    self.candidate.base_offset
                )));
            }
            batches.push(0..total);
            at = total;
        }
        self.position += at as u64;
        Ok(Some(BatchWindow { bytes, batches }))
    }
}

/// Pass 1: maps keys of the dirty range, from `first_dirty` on, until the map is full. Returns the
/// end of the mapped range.
async fn build_offset_map(
    candidates: &[Candidate],
    first_dirty: i64,
    txns: &CleanerTxns,
    map: &mut OffsetMap,
) -> Result<i64, StorageError> {
    let mut map_end = first_dirty;
    for candidate in candidates.iter().filter(|c| c.next_offset > first_dirty) {
        let mut reader = BatchReader::new(candidate);
        while let Some(window) = reader.next_window().await? {
            for batch in window.iter() {
                let header = validate_log_batch(batch).map_err(StorageError::InvalidBatch)?;
                if header.last_offset() < first_dirty
                    || header.is_control()
                    || txns.is_aborted(&header)
                {
                    map_end = map_end.max(header.last_offset() + 1);
                    continue;
                }
                let plain = plain_records(batch)?;
                let keyed: Vec<(u128, i64)> = plain
                    .records()?
                    .iter()
                    .filter(|record| record.offset >= first_dirty)
                    .filter_map(|record| record.key.map(|key| (key_digest(key), record.offset)))
                    .collect();
                let digests: Vec<u128> = keyed.iter().map(|(digest, _)| *digest).collect();
                if !map.fits(&digests) {
                    // Full: clean up to this batch only (Kafka does the same).
                    return Ok(map_end);
                }
                for (digest, offset) in keyed {
                    map.put(digest, offset);
                }
                map_end = map_end.max(header.last_offset() + 1);
            }
            glommio::yield_if_needed().await;
        }
        map_end = map_end.max(candidate.next_offset);
    }
    Ok(map_end)
}

/// Pass 2 on one batch: the batch to keep (as is or rebuilt), `None` if every record goes, and the
/// number of records removed.
fn filter_batch(
    batch: &[u8],
    filter: &Filter<'_>,
    build: bool,
) -> Result<(Option<Vec<u8>>, u64), StorageError> {
    let header = validate_log_batch(batch).map_err(StorageError::InvalidBatch)?;
    if header.is_control() {
        return Ok((build.then(|| batch.to_vec()), 0));
    }
    if filter.txns.is_aborted(&header) {
        return Ok((None, u64::try_from(header.record_count).unwrap_or(0)));
    }
    let plain = plain_records(batch)?;
    let records = plain.records()?;
    let kept: Vec<&[u8]> = records
        .iter()
        .filter(|record| filter.keeps(record.offset, record.key, record.tombstone))
        .map(|record| record.raw)
        .collect();
    let removed = (records.len() - kept.len()) as u64;
    if !build || kept.is_empty() {
        return Ok((None, removed));
    }
    if removed == 0 {
        return Ok((Some(batch.to_vec()), 0));
    }
    Ok((Some(rebuild_batch(batch, &kept)?), removed))
}

/// Pass 2, dry: how many records `filter` removes from the segment.
async fn count_removed(candidate: &Candidate, filter: &Filter<'_>) -> Result<u64, StorageError> {
    let mut removed = 0;
    let mut reader = BatchReader::new(candidate);
    while let Some(window) = reader.next_window().await? {
        for batch in window.iter() {
            removed += filter_batch(batch, filter, false)?.1;
        }
        glommio::yield_if_needed().await;
    }
    Ok(removed)
}

/// Writes the cleaned copy of `candidate`, stages it as `.swap` and serves reads from it. Returns
/// the new size and the swap left to finish, or `None` if the segment left the log meanwhile
/// (nothing is installed then).
async fn rewrite_segment(
    inner: &LogInner,
    candidate: &Candidate,
    filter: &Filter<'_>,
    was_clean: bool,
    crash_after: Option<swap::SwapStep>,
) -> Result<Option<(u64, Option<PendingSwap>)>, StorageError> {
    let dir = &inner.dir;
    let base_offset = candidate.base_offset;
    let cleaned = cleaned_path(dir, base_offset);
    let mut segment = Segment::new(dir, base_offset);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&cleaned)
        .await?;
    let mut writer: DmaStreamWriter = DmaStreamWriterBuilder::new(file)
        .with_buffer_size(CLEANER_WRITE_BUFFER_BYTES)
        .with_write_behind(CLEANER_WRITE_BEHIND)
        .build();
    let mut position = 0u64;
    let written = async {
        let mut reader = BatchReader::new(candidate);
        while let Some(window) = reader.next_window().await? {
            let mut kept = Vec::new();
            for batch in window.iter() {
                if let (Some(batch), _) = filter_batch(batch, filter, true)? {
                    kept.push(batch);
                }
            }
            for batch in kept {
                let header = BatchHeader::parse(&batch).map_err(StorageError::InvalidBatch)?;
                debug_assert_eq!(header.total_bytes(), batch.len());
                segment.note_counted_batch(position, &header, inner.config.index_interval_bytes);
                writer.write_all(&batch).await?;
                position += batch.len() as u64;
            }
            glommio::yield_if_needed().await;
        }
        Ok::<(), StorageError>(())
    }
    .await;
    let closed = writer.close().await;
    if let Err(error) = written.and(closed.map_err(StorageError::from)) {
        files::remove_if_exists(&cleaned).await?;
        return Err(error);
    }
    if was_clean {
        // Tombstone clock: a segment counts as cleaned since its first cleaning.
        if let Some(modified) = candidate.modified {
            std::fs::File::options()
                .write(true)
                .open(&cleaned)?
                .set_modified(modified)?;
        }
    }
    let new_file = DmaFile::open(&cleaned).await?;
    new_file.fdatasync().await?;
    let size_bytes = position;
    segment.next_offset = candidate.next_offset;
    // Compaction leaves offset gaps and batches with fewer records than their offset span.
    segment.offsets_dense = false;
    segment.finish_time_index();
    segment.size_bytes = size_bytes;
    segment.written_bytes = size_bytes;
    segment.committed_bytes = size_bytes;
    segment.allocated_bytes = size_bytes;
    segment.sealed = true;
    segment.file = Some(Rc::new(new_file));

    if !still_present(inner, base_offset) {
        files::remove_if_exists(&cleaned).await?;
        return Ok(None);
    }
    stage_swap(dir, base_offset).await?;
    if crash_after == Some(swap::SwapStep::RenamedToSwap) {
        return Ok(Some((size_bytes, None)));
    }
    let pending = PendingSwap {
        base_offset,
        index_bytes: segment.offset_index.encode(),
        time_index_bytes: segment.time_index.encode(),
    };
    // New reads use `.swap` until `<base>.log` holds the new data too (see `swap`).
    segment.log_path = swap_path(dir, base_offset);
    let installed = {
        let mut state = inner.state.borrow_mut();
        let closed = state.closed;
        let installed = match state.segment_by_base_mut(base_offset) {
            Some(current) if current.sealed && !closed => {
                *current = segment;
                true
            }
            _ => false,
        };
        if installed {
            state.tail_cache.evict_below(candidate.next_offset);
        }
        installed
    };
    if !installed {
        // Retention, DeleteRecords or removal took the segment meanwhile: drop the new data.
        remove_swap(dir, base_offset).await?;
        return Ok(None);
    }
    Ok(Some((size_bytes, Some(pending))))
}

/// A cleaned segment served from `<base>.log.swap`, waiting for `<base>.log` to be replaced.
struct PendingSwap {
    base_offset: i64,
    index_bytes: Vec<u8>,
    time_index_bytes: Vec<u8>,
}

/// Steps 3 and 4 of the swap for every segment of a pass, after a grace period for reads planned on
/// the old files.
async fn finish_swaps(
    inner: &LogInner,
    pending: Vec<PendingSwap>,
    crash_after: Option<swap::SwapStep>,
) -> Result<(), StorageError> {
    if pending.is_empty() {
        return Ok(());
    }
    let dir = &inner.dir;
    glommio::timer::sleep(SWAP_GRACE).await;
    let mut replaced = Vec::with_capacity(pending.len());
    for swap in pending {
        let base_offset = swap.base_offset;
        match presence(inner, base_offset) {
            SegmentPresence::InLog => {}
            SegmentPresence::Gone => {
                remove_swap(dir, base_offset).await?;
                continue;
            }
            // Reads may already have been served the cleaned data: it must survive the restart.
            // Every `.swap` left is complete, and the next open finishes its swap.
            SegmentPresence::LogClosed => return Ok(()),
        }
        replace_log(dir, base_offset, crash_after).await?;
        if crash_after.is_some() {
            return Ok(());
        }
        {
            let mut state = inner.state.borrow_mut();
            if let Some(segment) = state.segment_by_base_mut(base_offset) {
                segment.log_path = segment_file_path(dir, base_offset, LOG_SUFFIX);
            }
        }
        files::write_file_atomically(
            &segment_file_path(dir, base_offset, INDEX_SUFFIX),
            swap.index_bytes,
        )
        .await?;
        files::write_file_atomically(
            &segment_file_path(dir, base_offset, TIME_INDEX_SUFFIX),
            swap.time_index_bytes,
        )
        .await?;
        match presence(inner, base_offset) {
            SegmentPresence::InLog => {}
            SegmentPresence::Gone => {
                // Retention or DeleteRecords took it while we swapped: do not resurrect its files.
                remove_segment_files(dir, base_offset).await?;
            }
            // `<base>.log` holds the cleaned data; the next open finishes the rest (see above).
            SegmentPresence::LogClosed => return Ok(()),
        }
        replaced.push(base_offset);
    }
    glommio::timer::sleep(SWAP_GRACE).await;
    for base_offset in replaced {
        remove_swap(dir, base_offset).await?;
    }
    files::sync_directory(dir).await
}

/// Sets a file's mtime to now (blocking: one small syscall per segment cleaned without rewrite).
fn touch(path: &Path) -> Result<(), StorageError> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())?;
    Ok(())
}

/// Where a segment being swapped stands. A closed log is not the same as a removed segment: the
/// close (shutdown) keeps every file, a removal (retention, DeleteRecords) wants them gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentPresence {
    InLog,
    Gone,
    LogClosed,
}

fn presence(inner: &LogInner, base_offset: i64) -> SegmentPresence {
    let state = inner.state.borrow();
    let in_log = state
        .segments
        .binary_search_by_key(&base_offset, |segment| segment.base_offset)
        .is_ok();
    // A segment deleted before the close is gone: its files must not come back at the next open.
    match (in_log, state.closed) {
        (false, _) => SegmentPresence::Gone,
        (true, true) => SegmentPresence::LogClosed,
        (true, false) => SegmentPresence::InLog,
    }
}

/// Whether the segment may still be rewritten (in the log, the log open).
fn still_present(inner: &LogInner, base_offset: i64) -> bool {
    presence(inner, base_offset) == SegmentPresence::InLog
}

async fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
        files::remove_if_exists(&segment_file_path(dir, base_offset, suffix)).await?;
    }
    Ok(())
}

/// Saves the first offset not yet cleaned (read back by the next pass and by recovery).
async fn write_checkpoint(inner: &LogInner, first_uncleaned: i64) -> Result<(), StorageError> {
    files::write_file_atomically(
        &inner.dir.join(CLEANER_CHECKPOINT_FILE_NAME),
        first_uncleaned.to_string().into_bytes(),
    )
    .await
}

/// The cleaner checkpoint of `dir` (a damaged file counts as none: the next pass re-cleans from the
/// log start, which only costs I/O).
pub(crate) async fn read_checkpoint(dir: &Path) -> Result<Option<i64>, StorageError> {
    let Some(bytes) = files::read_small_file(&dir.join(CLEANER_CHECKPOINT_FILE_NAME)).await? else {
        return Ok(None);
    };
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok()))
}

/// Recovery of a sealed segment whose index files are gone (a crash after a swap): validates every
/// batch (CRC, codec) and rebuilds the indexes. Offsets only grow; gaps are fine (compacted
/// segments). Returns the end of the valid data.
pub(crate) async fn scan_sealed_segment(
    file: &DmaFile,
    segment: &mut Segment,
    size_bytes: u64,
    index_interval_bytes: u32,
) -> Result<u64, StorageError> {
    let mut position = 0u64;
    let header_bytes = BATCH_HEADER_BYTES as u64;
    while size_bytes - position >= header_bytes {
        let head = file.read_at(position, BATCH_HEADER_BYTES).await?;
        let Ok(header) = BatchHeader::parse(&head) else {
            break;
        };
        let total = header.total_bytes() as u64;
        if position + total > size_bytes {
            break;
        }
        let batch = file.read_at(position, total as usize).await?;
        let Ok(valid) = validate_log_batch(&batch) else {
            break;
        };
        if valid.base_offset < segment.next_offset {
            break;
        }
        segment.note_counted_batch(position, &valid, index_interval_bytes);
        position += total;
        glommio::yield_if_needed().await;
    }
    Ok(position)
}
