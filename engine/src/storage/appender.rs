//! The appender: one task per log, spawned on demand, that turns queued appends into DMA writes.
//!
//! Group commit in rounds: a round takes everything queued for the oldest unsealed segment (up to
//! `max_inflight_writes * write_buffer_bytes`, at least one append), copies it behind the in-memory
//! tail page into page-aligned DMA buffers, pads the last page with zeroes, and writes the buffers
//! concurrently (disjoint pages). Rounds run one after another, so the partly filled tail page is
//! never in two writes at once; when a round completes (and is synced under `FlushPolicy::Always`) the
//! high watermark moves past every append it finished. Segments are created, sealed (truncated to
//! their data, synced, index files written) and rolled over in offset order by the same task.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use super::checkpoint::{self, CleanShutdown};
use super::config::{
    align_down, align_up, preallocation_target, FlushPolicy, LogConfig, PAGE_BYTES,
};
use super::error::StorageError;
use super::files;
use super::high_watermark;
use super::leader_epoch;
use super::log::{LogInner, LogState};
use super::rollback;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// Starts the appender task unless it is already running.
pub(crate) fn kick(inner: &Rc<LogInner>) {
    {
        let mut state = inner.state.borrow_mut();
        if state.flusher_running {
            return;
        }
        state.flusher_running = true;
    }
    glommio::spawn_local(run(inner.clone())).detach();
}

/// What the appender does next.
enum Job {
    /// Nothing to do; `flusher_running` was already cleared.
    Idle,
    /// Create (and preallocate) the file of a rolled-to segment.
    Create {
        base_offset: i64,
        path: PathBuf,
    },
    Write(Round),
    Seal(Seal),
    /// A write failed for lack of space: roll back to the written end (`rollback`).
    RollBack,
    /// Write the leader-epoch checkpoint (these bytes): before any data of a new epoch.
    PersistEpochs(Vec<u8>),
    /// Write the high-watermark checkpoint (this offset).
    PersistHighWatermark(i64),
}

/// One group-commit round for one segment.
struct Round {
    base_offset: i64,
    file: Rc<DmaFile>,
    /// Page-aligned buffers and their file positions; disjoint pages.
    writes: Vec<(DmaBuffer, u64)>,
    /// `written_bytes` once the round completed.
    end_bytes: u64,
    /// fallocate the file to this size before writing (the round would pass the reserved size).
    preallocate_to: Option<u64>,
    /// The partly filled last page after the round.
    tail_page: Vec<u8>,
}

/// Finishing a segment that is no longer the active one.
struct Seal {
    base_offset: i64,
    file: Rc<DmaFile>,
    size_bytes: u64,
    index_path: PathBuf,
    index_bytes: Vec<u8>,
    time_index_path: PathBuf,
    time_index_bytes: Vec<u8>,
}

/// What a finished job changes in the state.
enum Done {
    Created {
        base_offset: i64,
        file: Rc<DmaFile>,
        allocated_bytes: u64,
    },
    Written {
        base_offset: i64,
        end_bytes: u64,
        tail_page: Vec<u8>,
    },
    Sealed {
        base_offset: i64,
    },
}

async fn run(inner: Rc<LogInner>) {
    loop {
        let done = match next_job(&inner) {
            Job::Idle => break,
            Job::Create { base_offset, path } => create_segment_file(&path, &inner.config)
                .await
                .map(|(file, allocated_bytes)| Done::Created {
                    base_offset,
                    file,
                    allocated_bytes,
                }),
            Job::Write(round) => write_round(round, &inner.config).await,
            Job::Seal(seal) => {
                // Sealing syncs the whole rolled segment (an fdatasync that can take long on a
                // busy disk): it runs beside the appends to the next segment, not before them.
                spawn_seal(&inner, seal);
                continue;
            }
            Job::RollBack => {
                let result = rollback::roll_back(&inner).await;
                finish_rollback(&inner, result);
                continue;
            }
            Job::PersistEpochs(bytes) => {
                if let Err(error) = leader_epoch::persist(&inner.dir, bytes).await {
                    inner.state.borrow_mut().epochs.mark_dirty();
                    fail(&inner, &error);
                }
                continue;
            }
            Job::PersistHighWatermark(offset) => {
                if let Err(error) = high_watermark::persist(&inner.dir, offset).await {
                    inner.state.borrow_mut().high_watermark_checkpoint_due = true;
                    fail(&inner, &error);
                }
                continue;
            }
        };
        match done {
            Ok(done) => apply(&inner, done),
            // Fenced: the next job is Idle; suspended (disk full): the next job rolls back.
            Err(error) => fail(&inner, &error),
        }
    }
    inner.flusher_runs.advance(inner.flusher_runs.get() + 1);
}

/// Picks the next job under one borrow; clears `flusher_running` when there is none, so that an
/// append arriving later starts a new task.
fn next_job(inner: &LogInner) -> Job {
    let mut state = inner.state.borrow_mut();
    let state = &mut *state;
    let last_index = state.segments.len().saturating_sub(1);
    let unsealed = state
        .segments
        .iter()
        .position(|segment| !segment.sealed && !segment.sealing);
    if let Some(suspension) = &mut state.suspension {
        let due =
            suspension.rollback_failures == 0 || std::time::Instant::now() >= suspension.retry_at;
        let job = if state.failure.is_none() && suspension.rollback_pending && due {
            suspension.rollback_pending = false;
            suspension.rollback_running = true;
            Job::RollBack
        } else {
            state.flusher_running = false;
            Job::Idle
        };
        return job;
    }
    // Checkpoints first: the epoch file must lead the data it describes (`leader_epoch`).
    if state.failure.is_none() && state.epochs.is_dirty() {
        return Job::PersistEpochs(state.epochs.take_checkpoint());
    }
    // A closing log writes its high watermark itself (`write_clean_shutdown`).
    if state.failure.is_none() && state.high_watermark_checkpoint_due && !state.closed {
        state.high_watermark_checkpoint_due = false;
        return Job::PersistHighWatermark(inner.high_watermark.get());
    }
    let job = match (state.failure.is_some(), unsealed) {
        (true, _) | (false, None) => Job::Idle,
        (false, Some(index)) => {
            let is_active = index == last_index;
            let segment = &mut state.segments[index];
            match segment.file.clone() {
                None if segment.write.queued.is_empty() && is_active => Job::Idle,
                None => Job::Create {
                    base_offset: segment.base_offset,
                    path: segment.log_path.clone(),
                },
                Some(file) if !segment.write.queued.is_empty() => {
                    Job::Write(plan_round(segment, file, &inner.config))
                }
                Some(_) if is_active => Job::Idle,
                Some(file) => {
                    segment.sealing = true;
                    state.seals_in_flight += 1;
                    Job::Seal(plan_seal(&mut state.segments[index], file, &inner.dir))
                }
            }
        }
    };
    if matches!(job, Job::Idle) {
        state.flusher_running = false;
    }
    job
}

/// Takes queued appends of `segment` and lays them out in DMA buffers behind the tail page.
fn plan_round(segment: &mut Segment, file: Rc<DmaFile>, config: &LogConfig) -> Round {
    let round_bytes_max = (config.max_inflight_writes * config.write_buffer_bytes) as u64;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut new_bytes = 0u64;
    while let Some(front) = segment.write.queued.front() {
        if !chunks.is_empty() && new_bytes + front.len() as u64 > round_bytes_max {
            break;
        }
        let Some(chunk) = segment.write.queued.pop_front() else {
            break;
        };
        new_bytes += chunk.len() as u64;
        chunks.push(chunk);
    }
    segment.write.queued_bytes -= new_bytes;

    let start = align_down(segment.written_bytes);
    let tail_page = &segment.write.tail_page;
    debug_assert_eq!(start + tail_page.len() as u64, segment.written_bytes);
    let total_bytes = tail_page.len() as u64 + new_bytes;
    // Copy 2 of 2 on the write path: into aligned DMA memory (O_DIRECT needs it).
    let mut filler = BufferFiller::new(
        &file,
        start,
        total_bytes,
        config.write_buffer_bytes_aligned(),
    );
    filler.put(tail_page);
    for chunk in &chunks {
        filler.put(chunk);
    }
    let (writes, tail_page) = filler.finish();
    let end_bytes = segment.written_bytes + new_bytes;
    let padded_end = align_up(end_bytes);
    let preallocate_to = (config.preallocate && padded_end > segment.allocated_bytes).then(|| {
        // Rounds run one at a time, so recording the new size now cannot race another round.
        segment.allocated_bytes = preallocation_target(padded_end, config.segment_bytes);
        segment.allocated_bytes
    });
    Round {
        base_offset: segment.base_offset,
        file,
        writes,
        end_bytes,
        preallocate_to,
        tail_page,
    }
}

/// Fills page-aligned DMA buffers of at most `buffer_bytes` with a byte stream starting at a page
/// boundary of the file.
struct BufferFiller<'a> {
    file: &'a DmaFile,
    buffer_bytes: usize,
    /// File position of the current buffer.
    position: u64,
    /// Bytes of the stream not yet copied (sizes the remaining buffers).
    remaining_bytes: u64,
    current: Option<(DmaBuffer, usize)>,
    done: Vec<(DmaBuffer, u64)>,
}

impl<'a> BufferFiller<'a> {
    fn new(file: &'a DmaFile, position: u64, total_bytes: u64, buffer_bytes: usize) -> Self {
        debug_assert_eq!(position % PAGE_BYTES, 0);
        debug_assert_eq!(buffer_bytes as u64 % PAGE_BYTES, 0);
        BufferFiller {
            file,
            buffer_bytes,
            position,
            remaining_bytes: total_bytes,
            current: None,
            done: Vec::new(),
        }
    }

    fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (buffer, filled) = self.current.get_or_insert_with(|| {
                let size = (align_up(self.remaining_bytes) as usize).min(self.buffer_bytes);
                (self.file.alloc_dma_buffer(size), 0)
            });
            let count = (buffer.len() - *filled).min(data.len());
            buffer.as_bytes_mut()[*filled..*filled + count].copy_from_slice(&data[..count]);
            *filled += count;
            self.remaining_bytes -= count as u64;
            data = &data[count..];
            if *filled == buffer.len() {
                if let Some((full, filled)) = self.current.take() {
                    self.done.push((full, self.position));
                    self.position += filled as u64;
                }
            }
        }
    }

    /// Zero-pads the last buffer to a page boundary; returns the buffers and the new tail page.
    fn finish(mut self) -> (Vec<(DmaBuffer, u64)>, Vec<u8>) {
        debug_assert_eq!(self.remaining_bytes, 0);
        let mut tail_page = Vec::new();
        if let Some((mut buffer, filled)) = self.current.take() {
            let padded = align_up(filled as u64) as usize;
            let page_start = align_down(filled as u64) as usize;
            tail_page.extend_from_slice(&buffer.as_bytes()[page_start..filled]);
            // DMA buffers are not zeroed: the padding must not leak stale memory to disk.
            buffer.as_bytes_mut()[filled..padded].fill(0);
            buffer.trim_to_size(padded);
            self.done.push((buffer, self.position));
        }
        (self.done, tail_page)
    }
}

/// Runs the round's writes, at most `max_inflight_writes` at once; syncs under `FlushPolicy::Always`.
async fn write_round(round: Round, config: &LogConfig) -> Result<Done, StorageError> {
    if let Some(size_bytes) = round.preallocate_to {
        round.file.pre_allocate(size_bytes, false).await?;
    }
    let mut inflight = VecDeque::with_capacity(config.max_inflight_writes);
    // After a failure no new write starts, but the ones in flight are awaited: a rollback zeroes
    // the tail, and a write landing after that would put stale batches back.
    let mut first_error: Option<std::io::Error> = None;
    for (buffer, position) in round.writes {
        debug_assert_eq!(position % PAGE_BYTES, 0);
        debug_assert_eq!(buffer.len() as u64 % PAGE_BYTES, 0);
        if inflight.len() >= config.max_inflight_writes {
            if let Some(write) = inflight.pop_front() {
                if let Err(error) = write.await {
                    first_error.get_or_insert(error);
                }
            }
        }
        if first_error.is_some() {
            break;
        }
        let file = round.file.clone();
        inflight.push_back(glommio::spawn_local(async move {
            let expected = buffer.len();
            let written = file.write_at(buffer, position).await?;
            if written != expected {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short DMA write at {position}: {written} of {expected} bytes"),
                ));
            }
            Ok(())
        }));
    }
    while let Some(write) = inflight.pop_front() {
        if let Err(error) = write.await {
            first_error.get_or_insert(error);
        }
    }
    if let Some(error) = first_error.or_else(|| test_hook::injected_failure(test_hook::Site::Round))
    {
        return Err(error.into());
    }
    if config.flush == FlushPolicy::Always {
        round.file.fdatasync().await?;
    }
    Ok(Done::Written {
        base_offset: round.base_offset,
        end_bytes: round.end_bytes,
        tail_page: round.tail_page,
    })
}

/// Runs a segment's seal in its own task; `wait_appender_idle` waits for it through
/// `seals_in_flight` and the `flusher_runs` watch.
fn spawn_seal(inner: &Rc<LogInner>, seal: Seal) {
    let inner = inner.clone();
    glommio::spawn_local(async move {
        let base_offset = seal.base_offset;
        match seal_segment(seal).await {
            Ok(()) => apply(&inner, Done::Sealed { base_offset }),
            Err(error) => fail(&inner, &error),
        }
        {
            let mut state = inner.state.borrow_mut();
            debug_assert!(state.seals_in_flight > 0);
            state.seals_in_flight -= 1;
        }
        inner.flusher_runs.advance(inner.flusher_runs.get() + 1);
    })
    .detach();
}

/// Opens (and preallocates the first step of) a new segment file; stale content of the same name is
/// discarded. Returns the file and its reserved size.
async fn create_segment_file(
    path: &std::path::Path,
    config: &LogConfig,
) -> Result<(Rc<DmaFile>, u64), StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await?;
    if let Some(error) = test_hook::injected_failure(test_hook::Site::Create) {
        return Err(error.into());
    }
    let mut allocated_bytes = 0;
    if config.preallocate {
        allocated_bytes = preallocation_target(0, config.segment_bytes);
        file.pre_allocate(allocated_bytes, false).await?;
    }
    if let Some(dir) = path.parent() {
        files::sync_directory(dir).await?;
    }
    Ok((Rc::new(file), allocated_bytes))
}

fn plan_seal(segment: &mut Segment, file: Rc<DmaFile>, dir: &std::path::Path) -> Seal {
    debug_assert!(segment.write_idle());
    segment.finish_time_index();
    Seal {
        base_offset: segment.base_offset,
        file,
        size_bytes: segment.size_bytes,
        index_path: segment_file_path(dir, segment.base_offset, INDEX_SUFFIX),
        index_bytes: segment.offset_index.encode(),
        time_index_path: segment_file_path(dir, segment.base_offset, TIME_INDEX_SUFFIX),
        time_index_bytes: segment.time_index.encode(),
    }
}

/// Drops the preallocated rest (the file size becomes the data size, which recovery relies on for
/// sealed segments), syncs, then writes the index files.
async fn seal_segment(seal: Seal) -> Result<(), StorageError> {
    seal.file.truncate(seal.size_bytes).await?;
    seal.file.fdatasync().await?;
    if let Some(error) = test_hook::injected_failure(test_hook::Site::Seal) {
        return Err(error.into());
    }
    files::write_file_atomically(&seal.index_path, seal.index_bytes).await?;
    files::write_file_atomically(&seal.time_index_path, seal.time_index_bytes).await?;
    Ok(())
}

fn apply(inner: &Rc<LogInner>, done: Done) {
    match done {
        Done::Created {
            base_offset,
            file,
            allocated_bytes,
        } => {
            if let Some(segment) = inner.state.borrow_mut().segment_by_base_mut(base_offset) {
                segment.file = Some(file);
                segment.allocated_bytes = allocated_bytes;
            }
        }
        Done::Sealed { base_offset } => {
            if let Some(segment) = inner.state.borrow_mut().segment_by_base_mut(base_offset) {
                segment.sealed = true;
            }
        }
        Done::Written {
            base_offset,
            end_bytes,
            tail_page,
        } => {
            let written = commit_written(inner, base_offset, end_bytes, tail_page);
            if let Some(written) = written {
                inner.written.advance(written);
                high_watermark::refresh(inner);
            }
            if let FlushPolicy::IntervalMs(interval_ms) = inner.config.flush {
                schedule_sync(inner, interval_ms);
            }
        }
    }
}

/// Records a completed round and pops the appends it finished; returns the new written end.
fn commit_written(
    inner: &LogInner,
    base_offset: i64,
    end_bytes: u64,
    tail_page: Vec<u8>,
) -> Option<i64> {
    let mut state = inner.state.borrow_mut();
    let LogState {
        segments,
        max_timestamp,
        ..
    } = &mut *state;
    let index = segments
        .binary_search_by_key(&base_offset, |segment| segment.base_offset)
        .ok()?;
    let segment = &mut segments[index];
    assert!(
        end_bytes >= segment.written_bytes,
        "written prefix only grows"
    );
    segment.written_bytes = end_bytes;
    segment.write.tail_page = tail_page;
    let mut written = None;
    while let Some(mark) = segment.write.commits.front().copied() {
        if mark.end_position > end_bytes {
            break;
        }
        segment.write.commits.pop_front();
        segment.committed_bytes = mark.end_position;
        written = Some(mark.next_offset);
        if let Some((timestamp, offset)) = mark.max_timestamp {
            if max_timestamp.is_none_or(|(max, _)| timestamp > max) {
                *max_timestamp = Some((timestamp, offset));
            }
        }
    }
    written
}

/// FlushPolicy::IntervalMs: one delayed fdatasync covers every write completed before it runs.
fn schedule_sync(inner: &Rc<LogInner>, interval_ms: u64) {
    {
        let mut state = inner.state.borrow_mut();
        if state.sync_scheduled {
            return;
        }
        state.sync_scheduled = true;
    }
    // Weak: a pending sync must not keep a dropped log alive.
    let weak = Rc::downgrade(inner);
    glommio::spawn_local(async move {
        glommio::timer::sleep(Duration::from_millis(interval_ms)).await;
        if let Some(inner) = weak.upgrade() {
            sync_unsealed(&inner).await;
        }
    })
    .detach();
}

async fn sync_unsealed(inner: &Rc<LogInner>) {
    let unsealed_files: Vec<Rc<DmaFile>> = {
        let mut state = inner.state.borrow_mut();
        state.sync_scheduled = false;
        state
            .segments
            .iter()
            .filter(|segment| !segment.sealed)
            .filter_map(|segment| segment.file.clone())
            .collect()
    };
    for file in unsealed_files {
        if let Err(error) = file.fdatasync().await {
            fail(inner, &error.into());
            return;
        }
    }
}

/// After a failed write or sync: suspends the log if the failure is a lack of space (the appender
/// rolls it back and appends retry later, see `rollback`), else fences it.
pub(crate) fn fail(inner: &Rc<LogInner>, error: &StorageError) {
    let fenced = inner.state.borrow().failure.is_some();
    if !fenced && rollback::is_retryable(error) {
        tracing::warn!(dir = %inner.dir.display(), %error, "partition log is out of space; refusing appends and rolling back to the last acknowledged offset");
        rollback::suspend(&mut inner.state.borrow_mut(), error);
        kick(inner);
        return;
    }
    fence(inner, error);
}

/// Records the end of a rollback: retry later, or fence the log if the rollback itself broke.
fn finish_rollback(inner: &Rc<LogInner>, result: Result<(), StorageError>) {
    let retryable = result.as_ref().err().is_none_or(rollback::is_retryable);
    {
        let mut state = inner.state.borrow_mut();
        if let Some(suspension) = &mut state.suspension {
            suspension.rollback_running = false;
            suspension.retry_at = std::time::Instant::now() + rollback::APPEND_RETRY_INTERVAL;
            if result.is_err() && retryable {
                suspension.rollback_pending = true;
                suspension.rollback_failures += 1;
            }
        }
    }
    if let Err(error) = result {
        if retryable {
            tracing::warn!(dir = %inner.dir.display(), %error, "rollback after a full disk failed; trying again later");
        } else {
            fence(inner, &error);
        }
    }
}

/// Fences the log for good (until a restart runs recovery) and releases every waiter.
pub(crate) fn fence(inner: &LogInner, error: &StorageError) {
    tracing::error!(dir = %inner.dir.display(), %error, "partition log write failed; fencing the log");
    inner
        .state
        .borrow_mut()
        .failure
        .get_or_insert_with(|| error.to_string());
    inner.fail_watches();
}

/// `close`: sync unsealed segments, write their index files and the clean-shutdown checkpoint.
/// The appender must be idle.
pub(crate) async fn write_clean_shutdown(inner: &LogInner) -> Result<(), StorageError> {
    let (unsealed, clean_shutdown) = {
        let mut state = inner.state.borrow_mut();
        let log_end_offset = state.log_end_offset;
        let mut unsealed = Vec::new();
        for segment in state.segments.iter_mut().filter(|segment| !segment.sealed) {
            debug_assert!(segment.write_idle());
            segment.finish_time_index();
            unsealed.push((
                segment.file.clone(),
                segment_file_path(&inner.dir, segment.base_offset, INDEX_SUFFIX),
                segment.offset_index.encode(),
                segment_file_path(&inner.dir, segment.base_offset, TIME_INDEX_SUFFIX),
                segment.time_index.encode(),
            ));
        }
        let active = state.segments.last().map(|segment| {
            CleanShutdown::new(segment.base_offset, segment.size_bytes, log_end_offset)
        });
        (unsealed, active)
    };
    for (file, index_path, index_bytes, time_index_path, time_index_bytes) in unsealed {
        if let Some(file) = file {
            file.fdatasync().await?;
        }
        files::write_file_atomically(&index_path, index_bytes).await?;
        files::write_file_atomically(&time_index_path, time_index_bytes).await?;
    }
    // Before the clean-shutdown checkpoint: present means every file of the log is final.
    high_watermark::persist(&inner.dir, inner.high_watermark.get()).await?;
    if let Some(clean_shutdown) = clean_shutdown {
        checkpoint::write(&inner.dir, clean_shutdown).await?;
    }
    Ok(())
}

/// Fault injection for the storage tests: the next rounds (after their writes completed, the
/// worst case: data on disk but not acknowledged), segment creations or seals (before the index
/// files) fail with an OS error. Compiled to nothing outside tests.
pub(crate) mod test_hook {
    /// Where a failure is injected.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Site {
        /// A write round, or the creation of a segment file (whichever comes first).
        Round,
        Create,
        /// A seal, after truncate and fdatasync, before the index files.
        Seal,
    }

    #[cfg(test)]
    thread_local! {
        static FAILURES: std::cell::Cell<(i32, u32, bool)> = const { std::cell::Cell::new((0, 0, false)) };
    }

    /// Makes the next `count` rounds or segment creations (`seals: false`) or seals
    /// (`seals: true`) on this thread fail with `errno`.
    #[cfg(test)]
    pub(crate) fn fail_next(errno: i32, count: u32, seals: bool) {
        FAILURES.with(|failures| failures.set((errno, count, seals)));
    }

    #[cfg(test)]
    pub(crate) fn injected_failure(site: Site) -> Option<std::io::Error> {
        FAILURES.with(|failures| {
            let (errno, count, seals) = failures.get();
            if count == 0 || seals != (site == Site::Seal) {
                return None;
            }
            failures.set((errno, count - 1, seals));
            Some(std::io::Error::from_raw_os_error(errno))
        })
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn injected_failure(_site: Site) -> Option<std::io::Error> {
        None
    }
}
