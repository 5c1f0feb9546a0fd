//! The synchronous half of an append: check the input, take its offsets, make the stored copy,
//! note the batches in the active segment's indexes, the tail cache and the leader-epoch cache,
//! and queue the bytes for the appender. Runs when `PartitionLog::append` (or
//! `append_as_follower`) is CALLED, so call order is offset order.
//!
//! Two kinds of append share everything after the stored copy is made:
//! - a **leader** append assigns offsets from the log end and stamps each batch's base offset and
//!   partition leader epoch (both outside the CRC), plus the timestamps under LogAppendTime (CRC
//!   recomputed);
//! - a **follower** append stores the leader's batches byte for byte: they must start at or
//!   after the log end, each after the one before (a gap is the leader's compaction: Kafka's
//!   followers accept it, and the log end becomes the last batch's last offset + 1), pass their
//!   CRC, and carry leader epochs that never go below the log's latest one. Anything else (an
//!   overlap) is refused whole, before the log changes, and the caller truncates or fetches
//!   again.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringbroker_protocol::batch::{
    batches, set_base_offset, set_log_append_time, set_partition_leader_epoch, validate_log_batch,
    BatchHeader,
};

use super::config::SEGMENT_BYTES_MAX;
use super::error::StorageError;
use super::leader_epoch::EpochEntry;
use super::log::{wall_clock_ms, AppendOutcome, LogInner, LogState};
use super::segment::{CommitMark, Segment};

/// An append whose bytes are ready to queue.
struct Prepared {
    /// The stored copy: whole batches with their final offsets and epochs.
    stored: Bytes,
    base_offset: i64,
    last_offset: i64,
    /// The broker time stamped into the batches of a LogAppendTime log; -1 otherwise.
    log_append_time_ms: i64,
    /// Leader-epoch entries the batches start, ascending (usually none, at most one per epoch).
    new_epochs: Vec<EpochEntry>,
}

/// A leader append of `input` in `leader_epoch`. Returns the outcome and the written end the
/// append waits for.
pub(crate) fn assign_leader(
    inner: &Rc<LogInner>,
    input: &[u8],
    leader_epoch: i32,
) -> Result<(AppendOutcome, i64), StorageError> {
    let offsets_count = count_offsets(input)?;
    let mut state = writable_state(inner)?;
    let prepared = prepare_leader(inner, &state, input, offsets_count, leader_epoch)?;
    Ok(queue(inner, &mut state, prepared))
}

/// A follower append of the leader's `batches` (see the module doc).
pub(crate) fn assign_follower(
    inner: &Rc<LogInner>,
    batches: Bytes,
) -> Result<(AppendOutcome, i64), StorageError> {
    check_size(&batches)?;
    let mut state = writable_state(inner)?;
    let prepared = prepare_follower(&state, batches)?;
    Ok(queue(inner, &mut state, prepared))
}

/// The state, borrowed for an append, once the log takes appends.
fn writable_state(inner: &Rc<LogInner>) -> Result<std::cell::RefMut<'_, LogState>, StorageError> {
    check_suspension(inner)?;
    let state = inner.state.borrow_mut();
    if let Some(failure) = &state.failure {
        return Err(StorageError::Fenced(failure.clone()));
    }
    if state.closed {
        return Err(StorageError::Closed);
    }
    if state.truncating {
        return Err(StorageError::Truncating);
    }
    Ok(state)
}

/// Refuses appends of a suspended log (disk full) until it may retry; the first append after
/// `APPEND_RETRY_INTERVAL` clears the suspension and goes through as the probe.
fn check_suspension(inner: &Rc<LogInner>) -> Result<(), StorageError> {
    let mut state = inner.state.borrow_mut();
    let Some(suspension) = &state.suspension else {
        return Ok(());
    };
    if suspension.may_retry(std::time::Instant::now()) {
        tracing::info!(dir = %inner.dir.display(), "retrying appends after running out of disk space");
        state.suspension = None;
        return Ok(());
    }
    let error = StorageError::NoSpace(suspension.reason.clone());
    let rollback_pending = suspension.rollback_pending;
    drop(state);
    if rollback_pending {
        // An earlier rollback failed: the appender tries it again.
        super::appender::kick(inner);
    }
    Err(error)
}

fn prepare_leader(
    inner: &LogInner,
    state: &LogState,
    input: &[u8],
    offsets_count: i64,
    leader_epoch: i32,
) -> Result<Prepared, StorageError> {
    if !state.epochs.admits(leader_epoch) {
        return Err(StorageError::StaleLeaderEpoch {
            epoch: leader_epoch,
            latest_epoch: state.epochs.latest_epoch().unwrap_or(-1),
        });
    }
    let base_offset = state.log_end_offset;
    let last_offset = base_offset + offsets_count - 1;
    // Copy 1 of 2 on the write path: our own buffer, so we can rewrite base offsets and epochs and
    // keep the bytes for the tail cache after the caller's request buffer is gone.
    let mut stored = BytesMut::from(input);
    let mut position = 0usize;
    let mut next_offset = base_offset;
    // LogAppendTime: attribute bit and max timestamp rewritten, CRC recomputed (both are
    // CRC-covered, unlike the base offset and the leader epoch).
    let log_append_time_ms = if inner.log_append_time.get() {
        wall_clock_ms()
    } else {
        -1
    };
    while position < stored.len() {
        let header = BatchHeader::parse(&stored[position..]).map_err(StorageError::InvalidBatch)?;
        let end = position + header.total_bytes();
        let batch = &mut stored[position..end];
        if log_append_time_ms >= 0 {
            set_log_append_time(batch, log_append_time_ms);
        }
        set_base_offset(batch, next_offset);
        set_partition_leader_epoch(batch, leader_epoch);
        next_offset += i64::from(header.last_offset_delta) + 1;
        position = end;
    }
    debug_assert_eq!(next_offset, last_offset + 1);
    let mut new_epochs = Vec::new();
    if leader_epoch >= 0 && state.epochs.latest_epoch() != Some(leader_epoch) {
        new_epochs.push(EpochEntry {
            epoch: leader_epoch,
            start_offset: base_offset,
        });
    }
    Ok(Prepared {
        stored: stored.freeze(),
        base_offset,
        last_offset,
        log_append_time_ms,
        new_epochs,
    })
}

fn prepare_follower(state: &LogState, stored: Bytes) -> Result<Prepared, StorageError> {
    // The lowest offset the next batch may start at: the log end, then past each batch.
    let mut expected = state.log_end_offset;
    let mut base_offset = None;
    let mut latest_epoch = state.epochs.latest_epoch();
    let mut new_epochs = Vec::new();
    let mut iter = batches(&stored);
    for item in iter.by_ref() {
        let (_, bytes) = item.map_err(StorageError::InvalidBatch)?;
        // The leader's batches crossed the network: CRC, codec and record count are checked as
        // Kafka's follower checks them (compacted batches may hold fewer records than offsets).
        let header = validate_log_batch(bytes).map_err(StorageError::InvalidBatch)?;
        // Kafka's follower: the first batch may not start below the log end
        // (UnexpectedAppendOffsetException), later ones only after the one before
        // (OffsetsOutOfOrderException); gaps are the leader's compaction.
        if header.base_offset < expected {
            return Err(StorageError::UnexpectedAppendOffset {
                expected,
                found: header.base_offset,
            });
        }
        base_offset.get_or_insert(header.base_offset);
        let epoch = header.partition_leader_epoch;
        if epoch >= 0 {
            match latest_epoch {
                Some(latest) if epoch < latest => {
                    return Err(StorageError::StaleLeaderEpoch {
                        epoch,
                        latest_epoch: latest,
                    })
                }
                Some(latest) if epoch == latest => {}
                _ => {
                    new_epochs.push(EpochEntry {
                        epoch,
                        start_offset: header.base_offset,
                    });
                    latest_epoch = Some(epoch);
                }
            }
        }
        expected = header.last_offset() + 1;
    }
    if iter.remaining() != 0 {
        return Err(StorageError::InvalidAppend(format!(
            "{} trailing bytes are not a complete batch",
            iter.remaining()
        )));
    }
    let Some(base_offset) = base_offset else {
        return Err(StorageError::EmptyAppend);
    };
    check_addressable(state, base_offset, expected - 1)?;
    Ok(Prepared {
        stored,
        base_offset,
        last_offset: expected - 1,
        log_append_time_ms: -1,
        new_epochs,
    })
}

/// Rolls if needed, notes the batches, queues the stored copy; returns the outcome and the
/// written end the append waits for. Cannot fail: every check ran before.
fn queue(inner: &LogInner, state: &mut LogState, prepared: Prepared) -> (AppendOutcome, i64) {
    let Prepared {
        stored,
        base_offset,
        last_offset,
        log_append_time_ms,
        new_epochs,
    } = prepared;
    debug_assert!(
        base_offset >= state.log_end_offset,
        "appends start at the log end or, for a follower, after a gap"
    );
    let append_bytes = stored.len() as u64;
    roll_if_needed(inner, state, append_bytes, last_offset);
    let LogState {
        segments,
        tail_cache,
        log_end_offset,
        epochs,
        ..
    } = state;
    for entry in new_epochs {
        epochs.assign(entry.epoch, entry.start_offset);
    }
    let active = segments
        .last_mut()
        .expect("roll_if_needed leaves an active segment");
    let segment_start = active.size_bytes;
    let mut max_timestamp: Option<(i64, i64)> = None;
    for (position, header, len) in stored_batches(&stored) {
        active.note_stored_batch(
            segment_start + position as u64,
            &header,
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
    (
        AppendOutcome {
            base_offset,
            last_offset,
            log_append_time_ms,
        },
        last_offset + 1,
    )
}

/// (position, header, length) of each batch of a checked stored copy.
fn stored_batches(stored: &[u8]) -> impl Iterator<Item = (usize, BatchHeader, usize)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(stored.get(position..)?).ok()?;
        let len = header.total_bytes();
        let at = position;
        position += len;
        Some((at, header, len))
    })
}

/// Starts a new segment at the log end when the active one cannot take `append_bytes` more (size,
/// relative offsets) or is older than the topic's `segment.ms`. A follower's gap before the
/// append's first batch opens the new segment (Kafka names the segment after that batch instead):
/// so a sealed segment always ends with its last offset where the next one begins, which is what
/// lets recovery tell a seal cut short by a crash from lost data.
fn roll_if_needed(inner: &LogInner, state: &mut LogState, append_bytes: u64, last_offset: i64) {
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
        let base_offset = state.log_end_offset;
        state.segments.push(Segment::new(&inner.dir, base_offset));
        inner
            .active_since_ms
            .set(now_ms.unwrap_or_else(wall_clock_ms));
    }
}

/// Refuses a follower append that no segment could address relative to its base (32 bits, as
/// Kafka's): the append goes to the active segment, or to a new one starting at the log end. Only
/// a leader whose compaction removed billions of offsets at once sends that.
fn check_addressable(
    state: &LogState,
    base_offset: i64,
    last_offset: i64,
) -> Result<(), StorageError> {
    let from = state.log_end_offset;
    if last_offset - from > i64::from(u32::MAX) {
        return Err(StorageError::InvalidAppend(format!(
            "offsets {base_offset} to {last_offset} do not fit one segment starting at {from}"
        )));
    }
    Ok(())
}

/// Refuses inputs no segment can take: empty, or larger than a segment position can address.
fn check_size(input: &[u8]) -> Result<(), StorageError> {
    if input.is_empty() {
        return Err(StorageError::EmptyAppend);
    }
    if input.len() as u64 > SEGMENT_BYTES_MAX {
        return Err(StorageError::AppendTooLarge { bytes: input.len() });
    }
    Ok(())
}

/// Checks that `input` is a non-empty sequence of complete v2 batch headers and returns how many
/// offsets it spans. (CRC and record checks are the produce path's job: "already validated".)
fn count_offsets(input: &[u8]) -> Result<i64, StorageError> {
    check_size(input)?;
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
