//! The appender: one task per log, spawned on demand, that turns queued appends into DMA writes.
//!
//! Group commit in rounds: a round takes everything queued for the oldest unsealed segment (up to
//! `max_inflight_writes * write_buffer_bytes`, at least one append), copies it behind the in-memory
//! tail page into page-aligned DMA buffers, pads the last page with zeroes, and writes the buffers
//! concurrently (disjoint pages). When a round completes (and is synced under
//! `FlushPolicy::Always`) the high watermark moves past every append it finished. Segments are
//! created, sealed (truncated to their data, synced, index files written) and rolled over in
//! offset order by the same task.
//!
//! Rounds overlap (`Pipeline`): appends that arrive while rounds are in flight start a round of
//! their own at once instead of waiting for them, so a request waits for about one device write,
//! not two. The partly filled page where one round ends and the next begins is never in two
//! writes at once: the later round writes that page alone, after the earlier round's writes
//! completed, and the rest of its pages right away. Rounds are applied (acknowledged) strictly
//! in order, and at most `max_inflight_writes` rounds holding at most
//! `max_inflight_writes * write_buffer_bytes` of new data are in flight, the bounds one round had.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::task::JoinHandle;

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

/// Starts the appender task unless it is already running; a running one is told that appends
/// were queued (it may start a round beside the ones in flight).
pub(crate) fn kick(inner: &Rc<LogInner>) {
    {
        let mut state = inner.state.borrow_mut();
        if state.flusher_running {
            state.appender_kicked = true;
            if let Some(waker) = state.appender_waker.take() {
                waker.wake();
            }
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
    /// Bytes of appends the round writes (without the rewritten tail page).
    new_bytes: u64,
    /// fallocate the file to this size before writing (the round would pass the reserved size).
    preallocate_to: Option<u64>,
    /// The partly filled last page after the round.
    tail_page: Vec<u8>,
    /// The first buffer is one page that the round in flight before it writes too (its last,
    /// partly filled page): written only once that round's writes completed.
    first_page_shared: bool,
}

/// Rounds in flight, oldest first; each is a task that does the writes, and the appender applies
/// their results in this order.
#[derive(Default)]
struct Pipeline {
    rounds: VecDeque<InFlightRound>,
    /// Sum of the rounds' `new_bytes`.
    new_bytes: u64,
    /// Rounds in flight that fallocate first: no other round starts beside them (a write past the
    /// reserved size would extend the file while it is being reserved).
    preallocating: usize,
}

struct InFlightRound {
    task: JoinHandle<Result<Done, StorageError>>,
    /// The task's output once `wait_oldest_or_kick` saw it finish (`None` inside: cancelled).
    finished: Option<Option<Result<Done, StorageError>>>,
    base_offset: i64,
    end_bytes: u64,
    new_bytes: u64,
    preallocates: bool,
    /// The page the next round starts with (a copy of the round's `tail_page`).
    tail_page: Vec<u8>,
    /// Resolves (true: all written) once every write of the round completed.
    writes_done: Option<oneshot::Receiver<bool>>,
}

impl Pipeline {
    fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }

    /// Where the next round of segment `base_offset` starts: (end, tail page) of the newest round
    /// in flight, if it belongs to that segment.
    fn planned_end(&self, base_offset: i64) -> Option<(u64, &[u8])> {
        self.rounds
            .back()
            .filter(|round| round.base_offset == base_offset)
            .map(|round| (round.end_bytes, round.tail_page.as_slice()))
    }

    /// Spawns the round's writes; it waits for the newest round in flight before it rewrites the
    /// page they share.
    fn start(&mut self, round: Round, config: &LogConfig) {
        let previous = if round.first_page_shared {
            self.rounds
                .back_mut()
                .and_then(|newest| newest.writes_done.take())
        } else {
            None
        };
        debug_assert!(!round.first_page_shared || previous.is_some());
        let (done_tx, done_rx) = oneshot::channel();
        let base_offset = round.base_offset;
        let end_bytes = round.end_bytes;
        let new_bytes = round.new_bytes;
        let preallocates = round.preallocate_to.is_some();
        let tail_page = round.tail_page.clone();
        let settings = RoundSettings {
            max_inflight_writes: config.max_inflight_writes,
            flush: config.flush,
        };
        if !self.rounds.is_empty() {
            test_hook::note_overlapping_round();
        }
        let task = glommio::spawn_local(write_round(round, settings, previous, done_tx)).detach();
        self.new_bytes += new_bytes;
        self.preallocating += usize::from(preallocates);
        self.rounds.push_back(InFlightRound {
            task,
            finished: None,
            base_offset,
            end_bytes,
            new_bytes,
            preallocates,
            tail_page,
            writes_done: Some(done_rx),
        });
    }

    /// Waits for the oldest round; `None` when none is in flight.
    async fn finish_oldest(&mut self) -> Option<Result<Done, StorageError>> {
        let round = self.rounds.pop_front()?;
        self.new_bytes -= round.new_bytes;
        self.preallocating -= usize::from(round.preallocates);
        let output = match round.finished {
            Some(output) => output,
            None => round.task.await,
        };
        let result = match output {
            Some(result) => result,
            None => Err(StorageError::Io(std::io::Error::other(
                "a write round was cancelled",
            ))),
        };
        Some(result)
    }
}

/// Waits until the oldest round in flight finished (true) or appends were queued (false).
async fn wait_oldest_or_kick(inner: &LogInner, pipeline: &mut Pipeline) -> bool {
    inner.state.borrow_mut().appender_kicked = false;
    futures::future::poll_fn(|cx| {
        let Some(oldest) = pipeline.rounds.front_mut() else {
            return std::task::Poll::Ready(true);
        };
        if oldest.finished.is_some() {
            return std::task::Poll::Ready(true);
        }
        if let std::task::Poll::Ready(output) = std::pin::Pin::new(&mut oldest.task).poll(cx) {
            oldest.finished = Some(output);
            return std::task::Poll::Ready(true);
        }
        let mut state = inner.state.borrow_mut();
        if std::mem::take(&mut state.appender_kicked) {
            return std::task::Poll::Ready(false);
        }
        state.appender_waker = Some(cx.waker().clone());
        std::task::Poll::Pending
    })
    .await
}

/// What a round's task needs of the log's configuration.
#[derive(Clone, Copy)]
struct RoundSettings {
    max_inflight_writes: usize,
    flush: FlushPolicy,
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
    let mut pipeline = Pipeline::default();
    loop {
        if !pipeline.is_empty() {
            if let Some(round) = next_overlapping_round(&inner, &pipeline) {
                pipeline.start(round, &inner.config);
                continue;
            }
            if !wait_oldest_or_kick(&inner, &mut pipeline).await {
                continue;
            }
            match pipeline.finish_oldest().await {
                Some(Ok(done)) => apply(&inner, done),
                Some(Err(error)) => {
                    // The later rounds are not applied, but awaited: a rollback must not race
                    // writes still in flight (it zeroes the file past the written end).
                    while pipeline.finish_oldest().await.is_some() {}
                    fail(&inner, &error);
                }
                None => {}
            }
            continue;
        }
        let done = match next_job(&inner) {
            Job::Idle => break,
            Job::Create { base_offset, path } => create_segment_file(&path, &inner.config)
                .await
                .map(|(file, allocated_bytes)| Done::Created {
                    base_offset,
                    file,
                    allocated_bytes,
                }),
            Job::Write(round) => {
                pipeline.start(round, &inner.config);
                continue;
            }
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
                    match plan_round(segment, file, &inner.config, None) {
                        Some(round) => Job::Write(round),
                        None => unreachable_round(),
                    }
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

/// A round planned with no round in flight always takes at least one append.
#[cold]
fn unreachable_round() -> Job {
    debug_assert!(
        false,
        "a round with no round in flight takes at least one append"
    );
    Job::Idle
}

/// A round that may start beside the rounds in flight: appends queued for the segment the newest
/// round writes, within the pipeline's bounds (module doc), needing no preallocation (a round
/// that fallocates runs alone), and no checkpoint, suspension or failure pending (those wait for
/// the pipeline to drain, then take their usual turn in `next_job`).
fn next_overlapping_round(inner: &LogInner, pipeline: &Pipeline) -> Option<Round> {
    let config = &inner.config;
    if pipeline.rounds.len() >= config.max_inflight_writes || pipeline.preallocating > 0 {
        return None;
    }
    let round_bytes_max = (config.max_inflight_writes * config.write_buffer_bytes) as u64;
    let budget_bytes = round_bytes_max.checked_sub(pipeline.new_bytes)?;
    let mut state = inner.state.borrow_mut();
    if state.suspension.is_some()
        || state.failure.is_some()
        || state.epochs.is_dirty()
        || state.high_watermark_checkpoint_due
    {
        return None;
    }
    let segment = state
        .segments
        .iter_mut()
        .find(|segment| !segment.sealed && !segment.sealing)?;
    let (planned_end, planned_tail) = pipeline.planned_end(segment.base_offset)?;
    let file = segment.file.clone()?;
    plan_round(
        segment,
        file,
        config,
        Some(After {
            end_bytes: planned_end,
            tail_page: planned_tail,
            budget_bytes,
        }),
    )
}

/// Where a round that overlaps others starts, and how much it may take.
struct After<'a> {
    /// The newest round's end and its partly filled last page.
    end_bytes: u64,
    tail_page: &'a [u8],
    /// New bytes the pipeline still admits.
    budget_bytes: u64,
}

/// Takes queued appends of `segment` and lays them out in DMA buffers behind the tail page: the
/// written end's, or with `after` the newest in-flight round's. `None` when `after` is given and
/// the first queued append does not fit its budget or the round would need a preallocation.
fn plan_round(
    segment: &mut Segment,
    file: Rc<DmaFile>,
    config: &LogConfig,
    after: Option<After<'_>>,
) -> Option<Round> {
    let round_bytes_max = (config.max_inflight_writes * config.write_buffer_bytes) as u64;
    let (start_end, tail_page, budget_bytes) = match &after {
        Some(after) => (after.end_bytes, after.tail_page, after.budget_bytes),
        None => (
            segment.written_bytes,
            segment.write.tail_page.as_slice(),
            round_bytes_max,
        ),
    };
    // How many queued appends the round takes (looked at before any is taken off the queue).
    let mut take = 0usize;
    let mut new_bytes = 0u64;
    for chunk in &segment.write.queued {
        let fits = new_bytes + chunk.len() as u64 <= budget_bytes;
        if !fits && (take > 0 || after.is_some()) {
            break;
        }
        take += 1;
        new_bytes += chunk.len() as u64;
    }
    if take == 0 {
        return None;
    }
    let end_bytes = start_end + new_bytes;
    let padded_end = align_up(end_bytes);
    let needs_preallocation = config.preallocate && padded_end > segment.allocated_bytes;
    if needs_preallocation && after.is_some() {
        return None;
    }

    let start = align_down(start_end);
    debug_assert_eq!(start + tail_page.len() as u64, start_end);
    let total_bytes = tail_page.len() as u64 + new_bytes;
    // A page shared with the round in flight before this one is a write of its own (see
    // `Pipeline::start`), so that the rest need not wait.
    let first_page_shared = after.is_some() && !tail_page.is_empty();
    // Copy 2 of 2 on the write path: into aligned DMA memory (O_DIRECT needs it).
    let mut filler = BufferFiller::new(
        &file,
        start,
        total_bytes,
        config.write_buffer_bytes_aligned(),
        first_page_shared,
    );
    filler.put(tail_page);
    for chunk in segment.write.queued.iter().take(take) {
        filler.put(chunk);
    }
    let (writes, tail_page) = filler.finish();
    segment.write.queued.drain(..take);
    segment.write.queued_bytes -= new_bytes;
    let preallocate_to = needs_preallocation.then(|| {
        // A round that preallocates runs alone (`next_overlapping_round`), so recording the new
        // size now cannot race another round.
        segment.allocated_bytes = preallocation_target(padded_end, config.segment_bytes);
        segment.allocated_bytes
    });
    Some(Round {
        base_offset: segment.base_offset,
        file,
        writes,
        end_bytes,
        new_bytes,
        preallocate_to,
        tail_page,
        first_page_shared,
    })
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
    /// The first buffer is a single page (`BufferFiller::new`).
    first_page_alone: bool,
}

impl<'a> BufferFiller<'a> {
    /// `first_page_alone`: the first buffer holds one page only (a page another write shares).
    fn new(
        file: &'a DmaFile,
        position: u64,
        total_bytes: u64,
        buffer_bytes: usize,
        first_page_alone: bool,
    ) -> Self {
        debug_assert_eq!(position % PAGE_BYTES, 0);
        debug_assert_eq!(buffer_bytes as u64 % PAGE_BYTES, 0);
        BufferFiller {
            file,
            buffer_bytes,
            position,
            remaining_bytes: total_bytes,
            current: None,
            done: Vec::new(),
            first_page_alone,
        }
    }

    fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let limit_bytes = if self.first_page_alone && self.done.is_empty() {
                PAGE_BYTES as usize
            } else {
                self.buffer_bytes
            };
            let (buffer, filled) = self.current.get_or_insert_with(|| {
                let size = (align_up(self.remaining_bytes) as usize).min(limit_bytes);
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

/// Runs the round's writes, at most `max_inflight_writes` at once; a shared first page only once
/// `previous` (the round before) reports its writes done. Reports its own on `writes_done`, then
/// syncs under `FlushPolicy::Always`.
async fn write_round(
    mut round: Round,
    settings: RoundSettings,
    previous: Option<oneshot::Receiver<bool>>,
    writes_done: oneshot::Sender<bool>,
) -> Result<Done, StorageError> {
    let writes = std::mem::take(&mut round.writes);
    let result = write_buffers(&round, writes, settings, previous).await;
    // The receiver is gone when no round followed: nothing waits then.
    let _ = writes_done.send(result.is_ok());
    result?;
    if settings.flush == FlushPolicy::Always {
        round.file.fdatasync().await?;
    }
    Ok(Done::Written {
        base_offset: round.base_offset,
        end_bytes: round.end_bytes,
        tail_page: round.tail_page,
    })
}

async fn write_buffers(
    round: &Round,
    writes: Vec<(DmaBuffer, u64)>,
    settings: RoundSettings,
    previous: Option<oneshot::Receiver<bool>>,
) -> Result<(), StorageError> {
    if let Some(size_bytes) = round.preallocate_to {
        round.file.pre_allocate(size_bytes, false).await?;
    }
    let mut writes = writes.into_iter();
    let shared = if round.first_page_shared {
        writes.next()
    } else {
        None
    };
    let mut inflight = VecDeque::with_capacity(settings.max_inflight_writes);
    // After a failure no new write starts, but the ones in flight are awaited: a rollback zeroes
    // the tail, and a write landing after that would put stale batches back.
    let mut first_error: Option<std::io::Error> = None;
    for (buffer, position) in writes {
        if inflight.len() >= settings.max_inflight_writes {
            if let Some(write) = inflight.pop_front() {
                if let Err(error) = write.await {
                    first_error.get_or_insert(error);
                }
            }
        }
        if first_error.is_some() {
            break;
        }
        inflight.push_back(spawn_write(&round.file, buffer, position));
    }
    if let Some((buffer, position)) = shared {
        // The round before wrote this page too: ours (a superset of its bytes) must land last.
        let previous_written = match previous {
            Some(previous) => previous.await.unwrap_or(false),
            None => false,
        };
        if !previous_written {
            first_error.get_or_insert(std::io::Error::other(
                "an earlier write round of this log failed",
            ));
        } else if first_error.is_none() {
            inflight.push_back(spawn_write(&round.file, buffer, position));
        }
    }
    while let Some(write) = inflight.pop_front() {
        if let Err(error) = write.await {
            first_error.get_or_insert(error);
        }
    }
    match first_error.or_else(|| test_hook::injected_failure(test_hook::Site::Round)) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// One DMA write of a whole buffer at `position`, as its own task (a round's writes run
/// concurrently); a short write is an error.
fn spawn_write(
    file: &Rc<DmaFile>,
    buffer: DmaBuffer,
    position: u64,
) -> glommio::Task<std::io::Result<()>> {
    debug_assert_eq!(position % PAGE_BYTES, 0);
    debug_assert_eq!(buffer.len() as u64 % PAGE_BYTES, 0);
    let file = file.clone();
    glommio::spawn_local(async move {
        let expected = buffer.len();
        let written = file.write_at(buffer, position).await?;
        if written != expected {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short DMA write at {position}: {written} of {expected} bytes"),
            ));
        }
        Ok(())
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

/// Fault injection and counters for the storage tests: the next rounds (after their writes completed, the
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
    thread_local! {
        static OVERLAPPING_ROUNDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A round started while others were in flight (counted for the tests).
    #[cfg(test)]
    pub(crate) fn note_overlapping_round() {
        OVERLAPPING_ROUNDS.with(|count| count.set(count.get() + 1));
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn note_overlapping_round() {}

    /// Rounds started beside others on this thread so far.
    #[cfg(test)]
    pub(crate) fn overlapping_rounds() -> u64 {
        OVERLAPPING_ROUNDS.with(|count| count.get())
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
