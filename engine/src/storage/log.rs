//! `PartitionLog`: the handle the engine holds for one partition. It owns the shared state (segments,
//! offsets, tail cache, leader epochs, the written-end and high-watermark watches) and delegates:
//! offsets and stored copies to `append`, I/O to the appender (writes), reader (reads, timestamp
//! lookups), recovery (open) and truncation modules.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::append;
use super::appender;
use super::checkpoint::CHECKPOINT_FILE_NAME;
use super::config::{LogConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use super::error::StorageError;
use super::files;
use super::full_truncation;
use super::high_watermark::{self, HIGH_WATERMARK_FILE_NAME};
use super::leader_epoch::{EpochEntry, LeaderEpochCache, LEADER_EPOCH_FILE_NAME};
use super::reader::{self, ReadBound};
use super::recovery;
use super::retention::{self, RetentionPolicy};
use super::rollback::Suspension;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::tail_cache::TailCache;
use super::truncation::{self, TruncateOptions};
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
    /// Which leader epoch started where (see `leader_epoch`); the appender persists it ahead of
    /// the data when it changed.
    pub epochs: LeaderEpochCache,
    /// The appender writes the high-watermark checkpoint next (replicated logs).
    pub high_watermark_checkpoint_due: bool,
    /// A timer will set `high_watermark_checkpoint_due`.
    pub high_watermark_checkpoint_scheduled: bool,
    /// A truncation is running: appends are refused until it is done.
    pub truncating: bool,
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
    /// The written end: one past the last offset whose append completed (DMA write done, and
    /// fdatasync under `FlushPolicy::Always`). Appends wait on it; a rollback interrupts it.
    pub written: Rc<OffsetWatch>,
    /// What consumers may read (see `high_watermark`): the written end, unless replicated.
    pub high_watermark: Rc<OffsetWatch>,
    /// The value the replication layer last set (`set_high_watermark`); unused while
    /// `high_watermark_follows_log_end`.
    pub replicated_high_watermark: Cell<i64>,
    /// Single replica: the high watermark is the written end.
    pub high_watermark_follows_log_end: Cell<bool>,
    /// Held by a compaction pass and by a truncation: both rewrite segments in place.
    pub maintenance: glommio::sync::Semaphore,
    /// Counts finished appender runs; `close` waits on it for the appender to go idle.
    pub flusher_runs: Rc<OffsetWatch>,
}

impl LogInner {
    /// Releases every waiter for good (closed, removed or fenced): appends fail, long polls end.
    pub(crate) fn fail_watches(&self) {
        self.written.fail();
        self.high_watermark.fail();
    }

    pub(crate) fn fenced_error(&self) -> StorageError {
        let state = self.state.borrow();
        match (&state.failure, &state.suspension) {
            (Some(failure), _) => StorageError::Fenced(failure.clone()),
            (None, Some(suspension)) => StorageError::NoSpace(suspension.reason.clone()),
            (None, None) => StorageError::Closed,
        }
    }

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

    /// Waits until no truncation runs (it advances `flusher_runs` when done).
    pub(crate) async fn wait_truncation_done(&self) {
        loop {
            let (truncating, runs) = {
                let state = self.state.borrow();
                (state.truncating, self.flusher_runs.get())
            };
            if !truncating {
                return;
            }
            self.flusher_runs.wait_until(runs + 1).await;
        }
    }

    /// Waits until the appender has written everything queued (or failed) and no seal runs.
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
        let mut recovered = recovery::recover(dir, &config).await?;
        let saved_start = retention::saved_log_start(dir).await?;
        // A log never ends below its start: data ending below the saved start is what a full
        // truncation interrupted by a crash left behind (`full_truncation`).
        let restarted = saved_start.filter(|&start| start > recovered.log_end_offset);
        if let Some(start) = restarted {
            recovered = full_truncation::finish_at_open(dir, recovered, start, &config).await?;
        }
        let first_base = recovered
            .segments
            .first()
            .map_or(0, |segment| segment.base_offset);
        let log_start_offset = match saved_start {
            Some(saved) => saved.clamp(first_base, recovered.log_end_offset.max(first_base)),
            None => first_base,
        };
        let epochs = match restarted {
            Some(_) => recovery::restarted_epochs(dir).await?,
            None => recovery::recover_epochs(dir, &recovered, log_start_offset).await?,
        };
        let follows_log_end = config.high_watermark_follows_log_end;
        let high_watermark = high_watermark::recovered(
            follows_log_end,
            high_watermark::load(dir).await?,
            log_start_offset,
            recovered.log_end_offset,
        );
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
            epochs,
            high_watermark_checkpoint_due: false,
            high_watermark_checkpoint_scheduled: false,
            truncating: false,
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
                written: OffsetWatch::new(recovered.log_end_offset),
                high_watermark: OffsetWatch::new(high_watermark),
                replicated_high_watermark: Cell::new(high_watermark),
                high_watermark_follows_log_end: Cell::new(follows_log_end),
                maintenance: glommio::sync::Semaphore::new(1),
                flusher_runs: OffsetWatch::new(0),
            }),
        })
    }

    /// Appends one or more complete v2 record batches (concatenated) as the partition's leader in
    /// `leader_epoch`. Offsets are assigned when this function is CALLED, before the returned
    /// future is first polled, so call order is offset order. The stored copy gets the assigned
    /// base offsets and `leader_epoch` as every batch's partition leader epoch (both outside the
    /// CRC); an epoch above the log's latest starts a leader-epoch entry, one below it is refused
    /// (`StaleLeaderEpoch`), -1 stamps "no epoch" and records nothing. The future resolves once
    /// the bytes are written by DMA (and fdatasync'ed under `FlushPolicy::Always`); many appends
    /// may be in flight and are written together (group commit).
    pub fn append(
        &self,
        batches: &[u8],
        leader_epoch: i32,
    ) -> impl Future<Output = Result<AppendOutcome, StorageError>> + 'static {
        // The epoch ends if the log rolls back (disk full): this append then fails unless it
        // completed before the rollback, even if a later append reaches the same offsets.
        let epoch = self.inner.written.epoch();
        let assigned = append::assign_leader(&self.inner, batches, leader_epoch);
        self.written_future(epoch, assigned)
    }

    /// Appends the leader's `batches` as a follower replica: byte for byte (no offset, epoch or
    /// timestamp rewriting, no copy: the tail cache keeps slices of `batches`), through the same
    /// appender as `append` (group commit, flush policy, indexes, tail cache, rolls), resolved
    /// once written like a leader append. Refused whole, with the log unchanged, unless the
    /// batches start exactly at `log_end_offset()` and follow each other without gap or overlap
    /// (`UnexpectedAppendOffset`), pass their CRC (`InvalidBatch`) and carry epochs never below
    /// `latest_epoch()` (`StaleLeaderEpoch`): the caller then truncates or fetches again. The
    /// leader-epoch cache follows the batches' epochs. Offsets are taken when CALLED.
    pub fn append_as_follower(
        &self,
        batches: Bytes,
    ) -> impl Future<Output = Result<AppendOutcome, StorageError>> + 'static {
        let epoch = self.inner.written.epoch();
        let assigned = append::assign_follower(&self.inner, batches);
        self.written_future(epoch, assigned)
    }

    /// Starts the appender for an assigned append and returns the future that resolves when it is
    /// written (or fails).
    fn written_future(
        &self,
        epoch: u64,
        assigned: Result<(AppendOutcome, i64), StorageError>,
    ) -> impl Future<Output = Result<AppendOutcome, StorageError>> + 'static {
        if assigned.is_ok() {
            appender::kick(&self.inner);
        }
        let inner = self.inner.clone();
        async move {
            let (outcome, target) = assigned?;
            let watch = &inner.written;
            watch.wait_until_in_epoch(target, epoch).await;
            // A rollback keeps everything below the written end it found (and a truncation
            // comes after every queued write): an append that completed before either is
            // acknowledged even if this future is polled only after it.
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

    /// Reads for a consumer: whole batches starting with the one containing `offset`, at least
    /// that batch, then more while the total stays within `max_bytes`, never at or beyond the
    /// high watermark, from one segment (or the tail cache). An offset in
    /// `[high_watermark, log_end_offset]` gives no chunks; outside `[log_start_offset,
    /// log_end_offset]` is `OffsetOutOfRange` (Kafka's rule: a consumer ahead of the high
    /// watermark but within the log waits, it is not reset).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, StorageError> {
        reader::read(&self.inner, offset, max_bytes, ReadBound::HighWatermark).await
    }

    /// Reads for a read_committed consumer: like [`PartitionLog::read`], never at or beyond
    /// `stable_offset` either (the partition's last stable offset).
    pub async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        stable_offset: i64,
    ) -> Result<ReadResult, StorageError> {
        reader::read(
            &self.inner,
            offset,
            max_bytes,
            ReadBound::Below(stable_offset),
        )
        .await
    }

    /// Reads for a follower replica: like [`PartitionLog::read`], bounded by the written end
    /// instead of the high watermark (followers fetch what the leader wrote, so that the high
    /// watermark can pass it). `ReadResult::high_watermark` is still the high watermark.
    pub async fn read_for_replica(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        reader::read(&self.inner, offset, max_bytes, ReadBound::WrittenEnd).await
    }

    /// First offset of the log.
    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// The end of what consumers may read. A single-replica log (the default
    /// `LogConfig::high_watermark_follows_log_end`) keeps it at `written_end_offset()`; a
    /// replicated one at min(`set_high_watermark` value, `written_end_offset()`).
    pub fn high_watermark(&self) -> i64 {
        self.inner.high_watermark.get()
    }

    /// Next offset to assign (Kafka's log end offset): the end of every append called so far,
    /// written or still queued.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().log_end_offset
    }

    /// One past the last offset whose append completed (DMA write done): what survives a crash
    /// of the process, what a leader counts as its own replica's end and serves to followers.
    pub fn written_end_offset(&self) -> i64 {
        self.inner.written.get()
    }

    /// Sets the high watermark of a replicated log (the leader: the smallest log end among the
    /// in-sync replicas; a follower: min(leader's high watermark, its own log end)). Monotonic: a
    /// lower value than the current one is ignored (only `truncate_to` lowers it). Consumers see
    /// min(this, `written_end_offset()`). Persisted within
    /// `HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS`. Ignored while the high watermark follows the
    /// log end. Returns the high watermark consumers see now.
    ///
    /// Panics if `offset > log_end_offset()`: the replication layer never knows of records the
    /// log does not hold.
    pub fn set_high_watermark(&self, offset: i64) -> i64 {
        let log_end_offset = self.log_end_offset();
        assert!(
            offset <= log_end_offset,
            "high watermark {offset} above the log end offset {log_end_offset} of {}",
            self.inner.dir.display()
        );
        let inner = &self.inner;
        if !inner.high_watermark_follows_log_end.get()
            && offset > inner.replicated_high_watermark.get()
        {
            inner.replicated_high_watermark.set(offset);
            high_watermark::refresh(inner);
        }
        self.high_watermark()
    }

    /// Switches between a single-replica log (`true`: the high watermark is the written end) and
    /// a replicated one (`false`: `set_high_watermark` drives it, starting from its current
    /// value). The replication layer calls it when the partition's replica set changes.
    pub fn set_high_watermark_follows_log_end(&self, follows: bool) {
        let inner = &self.inner;
        if inner.high_watermark_follows_log_end.replace(follows) == follows {
            return;
        }
        if !follows {
            inner
                .replicated_high_watermark
                .set(inner.high_watermark.get());
        }
        high_watermark::refresh(inner);
    }

    /// The latest leader epoch in the log, `None` when no batch carried one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.state.borrow().epochs.latest_epoch()
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch`: `(the largest epoch <= epoch, the start
    /// offset of the epoch after it)`, or `(latest epoch, log_end_offset())` for the latest;
    /// `(epoch, first epoch's start)` below every known epoch (the earlier data is gone); `None`
    /// (UNDEFINED, -1/-1) for -1, above the latest epoch, or when no batch carried an epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let state = self.inner.state.borrow();
        state.epochs.end_offset_for(epoch, state.log_end_offset)
    }

    /// The leader-epoch entries, ascending (what `leader-epoch-checkpoint` holds).
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.inner.state.borrow().epochs.entries().to_vec()
    }

    /// Removes every record at and above `offset` (a follower truncating to its leader's log):
    /// whole later segments, the tail of the segment holding `offset` (zeroed on disk, so that no
    /// crash brings the batches back), indexes, tail cache, leader epochs from `offset` on; the
    /// written end and the log end become `offset`, the high watermark min(itself, `offset`).
    /// Waits for queued writes first and refuses appends while it runs (`Truncating`). `offset`
    /// must start a batch (`NotBatchBoundary`) and lie within `[log_start_offset,
    /// log_end_offset]` (at or past the end: nothing to do); below the high watermark it is
    /// refused (`BelowHighWatermark`) unless `options.allow_below_high_watermark` (an unclean
    /// leader election). Returns the new log end offset. The caller rolls back what else follows
    /// the log (producer state: rebuild it from the log, see the engine's `producer_state`).
    pub async fn truncate_to(
        &self,
        offset: i64,
        options: TruncateOptions,
    ) -> Result<i64, StorageError> {
        truncation::truncate_to(&self.inner, offset, options).await
    }

    /// Removes every record and restarts the log at `offset`, past its end (Kafka's
    /// `truncateFullyAndStartAt`: a follower whose log lies wholly below its leader's log start).
    /// Every segment goes; the log start, log end, written end and high watermark become
    /// `offset`; the leader-epoch cache is emptied. Crash-safe: a kill at any point leaves the old
    /// log or the new one (see `full_truncation`). Waits for queued writes first and refuses
    /// appends while it runs (`Truncating`); an `offset` a non-empty log reaches is refused
    /// (`OffsetOutOfRange`), an empty log may restart at any offset. A failure after the old files
    /// started going fences the log (the next open finishes the job).
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        full_truncation::truncate_fully_and_start_at(&self.inner, offset).await
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

    /// (timestamp, offset) of the largest timestamp among the written batches (ListOffsets -3).
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

    /// Resolves once `written_end_offset() > offset` (a follower's fetch waiting for the leader's
    /// next write), when the log is closed or failed, or after a truncation or rollback (the
    /// caller re-checks).
    pub async fn wait_for_written_data(&self, offset: i64) {
        self.inner
            .written
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

    /// Lets a log suspended for lack of space take appends again once its retry time came, as the
    /// next append would (it tries, and a failure suspends the log again): for a log nobody
    /// appends to, whose suspension would otherwise never end. Returns whether the log is online.
    pub fn resume_appends_if_due(&self) -> bool {
        let mut state = self.inner.state.borrow_mut();
        if state.failure.is_some() {
            return false;
        }
        let due = state
            .suspension
            .as_ref()
            .is_none_or(|suspension| suspension.may_retry(std::time::Instant::now()));
        if due && state.suspension.take().is_some() {
            tracing::info!(dir = %self.inner.dir.display(), "the disk has room again: the suspended log takes appends");
        }
        due
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
    /// compaction lag keeping the latest record per key (up to the last stable offset, without
    /// aborted transactions: `txns`); see `storage::compaction`. `None` when
    /// there was nothing to do. Run it from a low-priority task queue.
    pub async fn compact(
        &self,
        policy: &super::compaction::CompactionPolicy,
        txns: &super::compaction::transactions::CleanerTxns,
        now_ms: i64,
        memo: &mut super::compaction::CompactionMemo,
    ) -> Result<Option<super::compaction::CompactionOutcome>, StorageError> {
        super::compaction::compact(&self.inner, policy, txns, now_ms, memo).await
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
        inner.wait_truncation_done().await;
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
            inner.fail_watches();
            return Err(inner.fenced_error());
        }
        let result = appender::write_clean_shutdown(inner).await;
        if result.is_ok() {
            inner.state.borrow_mut().checkpoint_written = true;
        }
        // Release long-pollers: nothing will arrive any more.
        inner.fail_watches();
        result
    }

    /// Deletes the partition's files and directory (DeleteTopics). Waits for queued writes first.
    pub async fn remove(self) -> Result<(), StorageError> {
        let inner = &*self.inner;
        inner.state.borrow_mut().closed = true;
        inner.wait_appender_idle().await;
        inner.fail_watches();
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
        files::remove_if_exists(&inner.dir.join(LEADER_EPOCH_FILE_NAME)).await?;
        files::remove_if_exists(&inner.dir.join(HIGH_WATERMARK_FILE_NAME)).await?;
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
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
