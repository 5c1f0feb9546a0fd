//! `PartitionLog`: the handle the engine holds for one partition. It owns the shared state (segments,
//! offsets, tail cache, high-watermark watch), assigns offsets synchronously on append and delegates
//! I/O to the appender (writes), reader (reads, timestamp lookups) and recovery (open) modules.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringbroker_protocol::batch::{batches, set_base_offset, set_log_append_time, BatchHeader};

use super::appender;
use super::checkpoint::CHECKPOINT_FILE_NAME;
use super::config::{LogConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use super::error::StorageError;
use super::files;
use super::reader;
use super::recovery;
use super::retention::{self, RetentionPolicy};
use super::rollback::Suspension;
use super::segment::{
    segment_file_path, CommitMark, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::tail_cache::TailCache;
use super::watch::OffsetWatch;

/// Offsets of one successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped into the batches of a LogAppendTime log; -1 under CreateTime.
    pub log_append_time_ms: i64,
}

/// A piece of a read: bytes from the tail cache, or a range of a segment file to `sendfile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadChunk {
    /// Whole batches from the tail cache.
    Memory(Bytes),
    /// `len` bytes of whole batches at `position` of the segment file at `path`, holding
    /// `records` records (known from the batch headers the read walked or its index jump).
    /// `inode` is the file the read was planned on: compaction may later put another file under
    /// `path`, and the sender must not send that file's bytes at these positions.
    File {
        path: PathBuf,
        position: u64,
        len: u64,
        records: u64,
        inode: u64,
    },
}

impl ReadChunk {
    pub fn len(&self) -> u64 {
        match self {
            ReadChunk::Memory(bytes) => bytes.len() as u64,
            ReadChunk::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a log takes appends (what an operator alerts on; see `rollback` for the two failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogHealth {
    /// Appends go through.
    Online,
    /// A write ran out of space: appends are refused until one tried after
    /// `APPEND_RETRY_INTERVAL` succeeds.
    Suspended,
    /// A write failed otherwise: appends are refused until a restart.
    Fenced,
}

/// Result of [`PartitionLog::read`]: the chunks in order, plus the offsets a Fetch response reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub chunks: Vec<ReadChunk>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl ReadResult {
    /// Total bytes of all chunks.
    pub fn total_bytes(&self) -> u64 {
        self.chunks.iter().map(ReadChunk::len).sum()
    }
}

/// Mutable state of one log. Borrowed only between awaits.
pub(crate) struct LogState {
    /// Ascending by base offset; the last one receives appends.
    pub segments: Vec<Segment>,
    pub log_start_offset: i64,
    /// Next offset to assign.
    pub log_end_offset: i64,
    /// (timestamp, offset) of the largest timestamp below the high watermark.
    pub max_timestamp: Option<(i64, i64)>,
    pub tail_cache: TailCache,
    /// The appender task is running (at most one per log).
    pub flusher_running: bool,
    /// Seals of rolled segments still running in their own tasks.
    pub seals_in_flight: usize,
    /// A delayed fdatasync (FlushPolicy::IntervalMs) is pending.
    pub sync_scheduled: bool,
    /// No appends any more (closed or removed).
    pub closed: bool,
    /// The clean-shutdown checkpoint was written by `close`.
    pub checkpoint_written: bool,
    /// First write failure; the log is fenced once set.
    pub failure: Option<String>,
    /// A write failed for lack of space: appends are refused until a retry (see `rollback`).
    pub suspension: Option<Suspension>,
}

impl LogState {
    /// Index of the segment holding `offset` (the last one with base <= offset).
    pub(crate) fn segment_index_for(&self, offset: i64) -> Option<usize> {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .checked_sub(1)
    }

    pub(crate) fn segment_by_base_mut(&mut self, base_offset: i64) -> Option<&mut Segment> {
        let index = self
            .segments
            .binary_search_by_key(&base_offset, |segment| segment.base_offset)
            .ok()?;
        self.segments.get_mut(index)
    }
}

/// Shared core of a log; `PartitionLog` handles and the appender task hold it.
pub(crate) struct LogInner {
    pub dir: PathBuf,
    pub config: LogConfig,
    /// Roll size of new segments: `config.segment_bytes` until the topic's `segment.bytes`
    /// changes it (`PartitionLog::set_segment_bytes`).
    pub segment_bytes: Cell<u64>,
    /// The topic's `message.timestamp.type` is LogAppendTime: appends stamp the broker's clock.
    pub log_append_time: Cell<bool>,
    /// The topic's `segment.ms`: an append rolls a non-empty active segment older than this.
    pub segment_ms: Cell<Option<i64>>,
    /// Wall-clock time the active segment was created (or the log opened) at.
    pub active_since_ms: Cell<i64>,
    pub state: RefCell<LogState>,
    /// The high watermark: one past the last offset whose append completed.
    pub high_watermark: Rc<OffsetWatch>,
    /// Counts finished appender runs; `close` waits on it for the appender to go idle.
    pub flusher_runs: Rc<OffsetWatch>,
}

impl LogInner {
    pub(crate) fn fenced_error(&self) -> StorageError {
        let state = self.state.borrow();
        match (&state.failure, &state.suspension) {
            (Some(failure), _) => StorageError::Fenced(failure.clone()),
            (None, Some(suspension)) => StorageError::NoSpace(suspension.reason.clone()),
            (None, None) => StorageError::Closed,
        }
    }

    /// Waits until the appender has written everything queued (or failed).
    /// Waits until no rolled segment is still being sealed (retention acts on sealed segments only).
    pub(crate) async fn wait_seals_done(&self) {
        loop {
            let (sealing, runs) = {
                let state = self.state.borrow();
                (state.seals_in_flight > 0, self.flusher_runs.get())
            };
            if !sealing {
                return;
            }
            self.flusher_runs.wait_until(runs + 1).await;
        }
    }

    pub(crate) async fn wait_appender_idle(&self) {
        loop {
            let (running, runs) = {
                let state = self.state.borrow();
                (
                    state.flusher_running || state.seals_in_flight > 0,
                    self.flusher_runs.get(),
                )
            };
            if !running {
                return;
            }
            self.flusher_runs.wait_until(runs + 1).await;
        }
    }
}

/// A cheap, clonable handle to one partition's log. Single-threaded: lives on one glommio executor.
#[derive(Clone)]
pub struct PartitionLog {
    inner: Rc<LogInner>,
}

impl PartitionLog {
    /// Opens or creates `dir` (e.g. `<data>/<topic>-<partition>/`) and runs recovery: with a
    /// clean-shutdown checkpoint the files are trusted; without one the active segment is scanned and
    /// its tail truncated at the first invalid batch. The checkpoint is deleted before returning.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        config.validate()?;
        super::prime_dma_probe_once(dir).await?;
        let recovered = recovery::recover(dir, &config).await?;
        let first_base = recovered
            .segments
            .first()
            .map_or(0, |segment| segment.base_offset);
        let log_start_offset = match retention::saved_log_start(dir).await? {
            Some(saved) => saved.clamp(first_base, recovered.log_end_offset.max(first_base)),
            None => first_base,
        };
        let state = LogState {
            segments: recovered.segments,
            log_start_offset,
            log_end_offset: recovered.log_end_offset,
            max_timestamp: recovered.max_timestamp,
            tail_cache: TailCache::new(config.tail_cache_bytes),
            flusher_running: false,
            seals_in_flight: 0,
            sync_scheduled: false,
            closed: false,
            checkpoint_written: false,
            failure: None,
            suspension: None,
        };
        Ok(PartitionLog {
            inner: Rc::new(LogInner {
                dir: dir.to_path_buf(),
                segment_bytes: Cell::new(config.segment_bytes),
                log_append_time: Cell::new(false),
                segment_ms: Cell::new(None),
                active_since_ms: Cell::new(wall_clock_ms()),
                config,
                state: RefCell::new(state),
                high_watermark: OffsetWatch::new(recovered.log_end_offset),
                flusher_runs: OffsetWatch::new(0),
            }),
        })
    }

    /// Appends one or more complete v2 record batches (concatenated). Offsets are assigned when this
    /// function is CALLED, before the returned future is first polled, so call order is offset order.
    /// The stored copy gets the assigned base offsets. The future resolves once the bytes are written
    /// by DMA (and fdatasync'ed under `FlushPolicy::Always`); many appends may be in flight and are
    /// written together (group commit).
    pub fn append(
        &self,
        batches: &[u8],
    ) -> impl Future<Output = Result<AppendOutcome, StorageError>> + 'static {
        // The epoch ends if the log rolls back (disk full): this append then fails unless it
        // completed before the rollback, even if a later append reaches the same offsets.
        let epoch = self.inner.high_watermark.epoch();
        let assigned = self.assign(batches);
        if assigned.is_ok() {
            appender::kick(&self.inner);
        }
        let inner = self.inner.clone();
        async move {
            let (outcome, target) = assigned?;
            let watch = &inner.high_watermark;
            watch.wait_until_in_epoch(target, epoch).await;
            // A rollback keeps everything below the high watermark it found: an append that
            // completed before it is acknowledged even if this future is polled only after it.
            let committed = if watch.epoch() == epoch {
                watch.get() >= target
            } else {
                watch
                    .value_at_end_of(epoch)
                    .is_some_and(|end| end >= target)
            };
            if committed {
                Ok(outcome)
            } else {
                Err(inner.fenced_error())
            }
        }
    }

    /// Refuses appends of a suspended log (disk full) until it may retry; the first append after
    /// `APPEND_RETRY_INTERVAL` clears the suspension and goes through as the probe.
    fn check_suspension(&self) -> Result<(), StorageError> {
        let mut state = self.inner.state.borrow_mut();
        let Some(suspension) = &state.suspension else {
            return Ok(());
        };
        if suspension.may_retry(std::time::Instant::now()) {
            tracing::info!(dir = %self.inner.dir.display(), "retrying appends after running out of disk space");
            state.suspension = None;
            return Ok(());
        }
        let error = StorageError::NoSpace(suspension.reason.clone());
        let rollback_pending = suspension.rollback_pending;
        drop(state);
        if rollback_pending {
            // An earlier rollback failed: the appender tries it again.
            appender::kick(&self.inner);
        }
        Err(error)
    }

    /// The synchronous half of `append`: checks the input, assigns offsets, makes the stored copy,
    /// updates indexes and tail cache, queues the bytes. Returns the outcome and the high watermark
    /// the append waits for.
    fn assign(&self, input: &[u8]) -> Result<(AppendOutcome, i64), StorageError> {
        let offsets_count = count_offsets(input)?;
        self.check_suspension()?;
        let inner = &*self.inner;
        let mut state = inner.state.borrow_mut();
        if let Some(failure) = &state.failure {
            return Err(StorageError::Fenced(failure.clone()));
        }
        if state.closed {
            return Err(StorageError::Closed);
        }
        let base_offset = state.log_end_offset;
        let last_offset = base_offset + offsets_count - 1;
        let append_bytes = input.len() as u64;
        // segment.ms: the clock is read only when the topic sets it.
        let now_ms = inner.segment_ms.get().map(|_| wall_clock_ms());
        let too_old = |segment_ms: Option<i64>| {
            segment_ms.zip(now_ms).is_some_and(|(segment_ms, now)| {
                now.saturating_sub(inner.active_since_ms.get()) >= segment_ms
            })
        };
        let needs_roll = state.segments.last().is_none_or(|active| {
            active.size_bytes > 0
                && (active.size_bytes + append_bytes > inner.segment_bytes.get()
                    || last_offset - active.base_offset > i64::from(u32::MAX)
                    || too_old(inner.segment_ms.get()))
        });
        if needs_roll {
            state.segments.push(Segment::new(&inner.dir, base_offset));
            inner
                .active_since_ms
                .set(now_ms.unwrap_or_else(wall_clock_ms));
        }

        // Copy 1 of 2 on the write path: our own buffer, so we can rewrite base offsets and keep the
        // bytes for the tail cache after the caller's request buffer is gone.
        let mut stored = BytesMut::from(input);
        let mut position = 0usize;
        let mut next_offset = base_offset;
        // LogAppendTime: attribute bit and max timestamp rewritten, CRC recomputed (both are
        // CRC-covered, unlike the base offset).
        let log_append_time_ms = if inner.log_append_time.get() {
            wall_clock_ms()
        } else {
            -1
        };
        while position < stored.len() {
            let header =
                BatchHeader::parse(&stored[position..]).map_err(StorageError::InvalidBatch)?;
            let end = position + header.total_bytes();
            if log_append_time_ms >= 0 {
                set_log_append_time(&mut stored[position..end], log_append_time_ms);
            }
            set_base_offset(&mut stored[position..end], next_offset);
            next_offset += i64::from(header.last_offset_delta) + 1;
            position = end;
        }
        debug_assert_eq!(next_offset, last_offset + 1);
        let stored = stored.freeze();

        let LogState {
            segments,
            tail_cache,
            log_end_offset,
            ..
        } = &mut *state;
        let active = segments
            .last_mut()
            .expect("a segment was pushed above if none existed");
        let segment_start = active.size_bytes;
        let mut max_timestamp: Option<(i64, i64)> = None;
        let mut position = 0usize;
        while position < stored.len() {
            let header =
                BatchHeader::parse(&stored[position..]).map_err(StorageError::InvalidBatch)?;
            let len = header.total_bytes();
            active.note_batch(
                segment_start + position as u64,
                len as u64,
                header.base_offset,
                header.last_offset(),
                header.max_timestamp,
                inner.config.index_interval_bytes,
            );
            if max_timestamp.is_none_or(|(timestamp, _)| header.max_timestamp > timestamp) {
                max_timestamp = Some((header.max_timestamp, header.base_offset));
            }
            tail_cache.push(
                header.base_offset,
                header.last_offset(),
                &stored,
                position,
                len,
            );
            position += len;
        }
        active.size_bytes += append_bytes;
        active.write.queued_bytes += append_bytes;
        active.write.queued.push_back(stored);
        active.write.commits.push_back(CommitMark {
            end_position: active.size_bytes,
            next_offset: last_offset + 1,
            max_timestamp,
        });
        *log_end_offset = last_offset + 1;
        Ok((
            AppendOutcome {
                base_offset,
                last_offset,
                log_append_time_ms,
            },
            last_offset + 1,
        ))
    }

    /// Reads whole batches starting with the one containing `offset`: at least that batch, then more
    /// while the total stays within `max_bytes`, never beyond the high watermark, from one segment (or
    /// the tail cache). `offset == high_watermark` gives no chunks; outside
    /// `[log_start_offset, high_watermark]` is `OffsetOutOfRange`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, StorageError> {
        reader::read(&self.inner, offset, max_bytes).await
    }

    /// First offset of the log.
    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// One past the last offset whose append completed (readable).
    pub fn high_watermark(&self) -> i64 {
        self.inner.high_watermark.get()
    }

    /// Next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().log_end_offset
    }

    /// First batch (below the high watermark) whose max timestamp is >= `timestamp_ms`, as (offset,
    /// timestamp). Batch granularity: the offset is the batch's base offset; the timestamp is the
    /// batch's base timestamp if that already qualifies, else its max timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        reader::offset_for_timestamp(&self.inner, timestamp_ms).await
    }

    /// (timestamp, offset) of the largest timestamp below the high watermark (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.inner.state.borrow().max_timestamp
    }

    /// Resolves once `high_watermark() > offset`, or when the log is closed or failed (the caller
    /// re-checks). Parks on the high-watermark watch: no polling.
    pub async fn wait_for_data(&self, offset: i64) {
        self.inner
            .high_watermark
            .wait_until(offset.saturating_add(1))
            .await;
    }

    /// Whether the log takes appends (a fenced log may also be suspended: fenced wins).
    pub fn health(&self) -> LogHealth {
        let state = self.inner.state.borrow();
        match (&state.failure, &state.suspension) {
            (Some(_), _) => LogHealth::Fenced,
            (None, Some(_)) => LogHealth::Suspended,
            (None, None) => LogHealth::Online,
        }
    }

    /// Bytes of data in all segments (logical sizes, not the preallocated file sizes).
    pub fn size_bytes(&self) -> u64 {
        let state = self.inner.state.borrow();
        state
            .segments
            .iter()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    /// Waits for rolled segments' seals (sync, truncate, index files) running in the background.
    pub async fn wait_seals_done(&self) {
        self.inner.wait_seals_done().await;
    }

    /// Deletes whole sealed segments from the head of the log that are past `policy` at `now_ms`
    /// (the active segment always stays); moves the log start offset. Returns the number deleted.
    /// Run it from a low-priority task queue.
    pub async fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        retention::apply(&self.inner, policy, now_ms).await
    }

    /// Changes the roll size for the segments to come (a topic's `segment.bytes` changed); the
    /// active segment rolls when its next append would pass the new size. Clamped to the limits of
    /// the format.
    pub fn set_segment_bytes(&self, segment_bytes: u64) {
        self.inner
            .segment_bytes
            .set(segment_bytes.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX));
    }

    /// Rolls the active segment on the next append once it is older than `segment_ms` (a topic's
    /// `segment.ms`); `None` rolls by size only.
    pub fn set_segment_ms(&self, segment_ms: Option<i64>) {
        debug_assert!(segment_ms.is_none_or(|ms| ms > 0));
        self.inner.segment_ms.set(segment_ms);
    }

    /// Makes later appends LogAppendTime (the topic's `message.timestamp.type`), or CreateTime.
    pub fn set_log_append_time(&self, log_append_time: bool) {
        self.inner.log_append_time.set(log_append_time);
    }

    /// Runs one compaction pass (`cleanup.policy=compact`): rewrites sealed segments older than the
    /// compaction lag keeping the latest record per key; see `storage::compaction`. `None` when
    /// there was nothing to do. Run it from a low-priority task queue.
    pub async fn compact(
        &self,
        policy: &super::compaction::CompactionPolicy,
        now_ms: i64,
        memo: &mut super::compaction::CompactionMemo,
    ) -> Result<Option<super::compaction::CompactionOutcome>, StorageError> {
        super::compaction::compact(&self.inner, policy, now_ms, memo).await
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords): reads below it become
    /// out of range and whole segments entirely below it are deleted. `offset` may not pass the
    /// high watermark; a smaller offset than the current start changes nothing. Returns the new
    /// log start offset (the low watermark).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        retention::delete_before(&self.inner, offset).await
    }

    /// The shared core, for storage tests that drive internals (crash simulation).
    #[cfg(test)]
    pub(crate) fn inner_for_tests(&self) -> Rc<LogInner> {
        self.inner.clone()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops appends, waits for queued writes, fdatasyncs, writes the index files of unsealed
    /// segments and the clean-shutdown checkpoint. Reads keep working. Idempotent.
    pub async fn close(&self) -> Result<(), StorageError> {
        let inner = &*self.inner;
        {
            let mut state = inner.state.borrow_mut();
            state.closed = true;
            if state.checkpoint_written {
                return Ok(());
            }
        }
        inner.wait_appender_idle().await;
        let rolled_back = inner
            .state
            .borrow()
            .suspension
            .as_ref()
            .is_some_and(|suspension| !suspension.rollback_pending);
        if rolled_back {
            // Consistent again, but a segment may still wait for its seal: one more try.
            inner.state.borrow_mut().suspension = None;
            appender::kick(&self.inner);
            inner.wait_appender_idle().await;
        }
        let unusable = {
            let state = inner.state.borrow();
            state.failure.is_some() || state.suspension.is_some()
        };
        if unusable {
            // No checkpoint: the next open scans and truncates whatever the failure left behind.
            inner.high_watermark.fail();
            return Err(inner.fenced_error());
        }
        let result = appender::write_clean_shutdown(inner).await;
        if result.is_ok() {
            inner.state.borrow_mut().checkpoint_written = true;
        }
        // Release long-pollers: nothing will arrive any more.
        inner.high_watermark.fail();
        result
    }

    /// Deletes the partition's files and directory (DeleteTopics). Waits for queued writes first.
    pub async fn remove(self) -> Result<(), StorageError> {
        let inner = &*self.inner;
        inner.state.borrow_mut().closed = true;
        inner.wait_appender_idle().await;
        inner.high_watermark.fail();
        let bases: Vec<i64> = {
            let mut state = inner.state.borrow_mut();
            for segment in &mut state.segments {
                segment.file = None;
            }
            state
                .segments
                .iter()
                .map(|segment| segment.base_offset)
                .collect()
        };
        for base_offset in bases {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                files::remove_if_exists(&segment_file_path(&inner.dir, base_offset, suffix))
                    .await?;
            }
            // A compaction may be writing a cleaned copy or be in a swap's grace period.
            files::remove_if_exists(&super::compaction::swap::swap_path(&inner.dir, base_offset))
                .await?;
            files::remove_if_exists(&super::compaction::swap::cleaned_path(
                &inner.dir,
                base_offset,
            ))
            .await?;
        }
        files::remove_if_exists(&inner.dir.join(CHECKPOINT_FILE_NAME)).await?;
        files::remove_if_exists(&inner.dir.join(retention::LOG_START_FILE_NAME)).await?;
        files::remove_if_exists(
            &inner
                .dir
                .join(super::compaction::CLEANER_CHECKPOINT_FILE_NAME),
        )
        .await?;
        // Blocking but tiny: the directory is empty now (DeleteTopics is rare).
        std::fs::remove_dir(&inner.dir)?;
        if let Some(parent) = inner.dir.parent() {
            files::sync_directory(parent).await?;
        }
        Ok(())
    }
}

/// Wall-clock milliseconds since the Unix epoch (the clock of record timestamps).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks that `input` is a non-empty sequence of complete v2 batch headers and returns how many
/// offsets it spans. (CRC and record checks are the produce path's job: "already validated".)
fn count_offsets(input: &[u8]) -> Result<i64, StorageError> {
    if input.is_empty() {
        return Err(StorageError::EmptyAppend);
    }
    if input.len() as u64 > SEGMENT_BYTES_MAX {
        return Err(StorageError::AppendTooLarge { bytes: input.len() });
    }
    let mut iter = batches(input);
    let mut offsets = 0i64;
    for item in iter.by_ref() {
        let (header, _) = item.map_err(StorageError::InvalidBatch)?;
        if header.last_offset_delta < 0 {
            return Err(StorageError::InvalidAppend(format!(
                "negative last offset delta {}",
                header.last_offset_delta
            )));
        }
        offsets += i64::from(header.last_offset_delta) + 1;
    }
    if iter.remaining() != 0 {
        return Err(StorageError::InvalidAppend(format!(
            "{} trailing bytes are not a complete batch",
            iter.remaining()
        )));
    }
    Ok(offsets)
}
