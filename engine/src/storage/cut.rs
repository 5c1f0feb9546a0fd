//! Cutting a log's tail at an offset, in memory and on disk. One implementation for both users:
//! the rollback after a full disk (`rollback`: cut at the written end, dropping what was queued
//! but not written) and truncation (`truncation`: cut where the replication layer says, dropping
//! written data, possibly in sealed segments).
//!
//! - memory ([`plan`], under one borrow): the log end becomes the cut offset; queued appends and
//!   their commit marks of the cut segment are dropped; later segments are removed (when the cut
//!   falls on a segment boundary, the segment starting there is kept empty as the active one,
//!   because a full sealed segment never takes appends again); the tail cache and the leader
//!   epochs lose everything from the cut on; a sealed cut segment becomes the active segment again;
//! - disk ([`apply`]): files of removed segments are deleted, highest segment first and index
//!   files before data, so a crash at any point leaves a prefix of the old log (never a hole);
//!   the cut segment's indexes are rebuilt exactly as recovery does it (entries past the cut
//!   dropped, the batches after the last kept entry re-scanned from disk; a compacted segment is
//!   re-scanned whole) and its file is zeroed past the cut (`recovery::zero_after`), so that no
//!   later scan resurrects the dropped batches.

use std::path::PathBuf;
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::compaction::scan_sealed_segment;
use super::config::align_up;
use super::error::StorageError;
use super::files;
use super::log::{LogInner, LogState};
use super::recovery;
use super::scan::scan_valid_batches_from;
use super::segment::{segment_file_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// Where to cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CutAt {
    /// The first offset that goes.
    pub offset: i64,
    /// Position of the first byte that goes in the segment holding `offset`; `None`: that
    /// segment's committed end (the rollback, whose cut is the written end).
    pub position: Option<u64>,
}

/// What [`plan`] leaves to [`apply`].
pub(crate) struct Plan {
    cut: Option<Cut>,
    /// Files to delete, in deletion order.
    removed: Vec<PathBuf>,
}

/// The disk half of cutting one segment.
struct Cut {
    base_offset: i64,
    file: Rc<DmaFile>,
    /// The cut position: everything from here on goes.
    end_bytes: u64,
    /// The cut offset (the segment's next offset afterwards).
    cut_offset: i64,
    /// Scratch copy of the segment's index state up to where the re-scan starts.
    scratch: Segment,
    /// Where the re-scan starts (the last kept index entry's position, or 0).
    scan_from: u64,
    /// The segment was sealed: its file is opened for writing again and its index files go.
    was_sealed: bool,
    /// Offsets may have gaps (compacted): the re-scan starts at 0 and tolerates them.
    sparse: bool,
}

/// The in-memory half of a cut, under one borrow (module doc).
pub(crate) fn plan(inner: &LogInner, state: &mut LogState, at: CutAt) -> Plan {
    let offset = at.offset;
    state.log_end_offset = offset;
    state.tail_cache.truncate_from(offset);
    state.epochs.truncate_from_end(offset);
    for segment in &mut state.segments {
        // A seal that failed ran no further than its failing step: it runs again from the start.
        if segment.sealing && !segment.sealed {
            segment.sealing = false;
        }
    }
    let below = state
        .segments
        .partition_point(|segment| segment.base_offset < offset);
    let cut_index = below
        .checked_sub(1)
        .filter(|&index| state.segments[index].next_offset > offset);
    // Keep the segments with data below the cut; after a full one, keep the next one (emptied) as
    // the active segment.
    let keep = match cut_index {
        Some(_) => below,
        None => (below + 1).min(state.segments.len()),
    };
    let mut removed = Vec::new();
    let dropped: Vec<i64> = state
        .segments
        .drain(keep..)
        .map(|segment| segment.base_offset)
        .collect();
    for base_offset in dropped.into_iter().rev() {
        removed.extend(segment_paths(&inner.dir, base_offset));
    }
    if cut_index.is_none() && keep > below {
        let emptied = &mut state.segments[below];
        debug_assert_eq!(emptied.base_offset, offset);
        removed.extend(segment_paths(&inner.dir, emptied.base_offset));
        *emptied = Segment::new(&inner.dir, emptied.base_offset);
    }
    let cut = cut_index.and_then(|index| plan_cut(&mut state.segments[index], at, &inner.dir));
    Plan { cut, removed }
}

/// A segment's files, in deletion order: index files before data (a data file without index files
/// is rebuilt at open; an orphan index file is never read).
fn segment_paths(dir: &std::path::Path, base_offset: i64) -> [PathBuf; 3] {
    [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX]
        .map(|suffix| segment_file_path(dir, base_offset, suffix))
}

/// Drops the tail of `segment` from memory and prepares the index re-scan.
fn plan_cut(segment: &mut Segment, at: CutAt, dir: &std::path::Path) -> Option<Cut> {
    let end_bytes = match at.position {
        Some(position) => position,
        None => {
            assert!(
                !segment.sealed && !segment.sealing,
                "a segment with unwritten data is never sealed"
            );
            assert_eq!(
                segment.written_bytes, segment.committed_bytes,
                "rounds end on append boundaries"
            );
            segment.committed_bytes
        }
    };
    assert!(
        end_bytes <= segment.committed_bytes,
        "a cut drops written data only"
    );
    let was_sealed = segment.sealed;
    segment.sealed = false;
    segment.sealing = false;
    segment.size_bytes = end_bytes;
    segment.written_bytes = end_bytes;
    segment.committed_bytes = end_bytes;
    segment.write.queued.clear();
    segment.write.queued_bytes = 0;
    segment.write.commits.clear();
    let base_offset = segment.base_offset;
    let sparse = !segment.offsets_dense || segment.index_records.is_some();
    // The index state as it was when the batch at the last kept entry was noted (a compacted
    // segment is re-scanned from its start: its record counts are kept from there).
    segment
        .offset_index
        .truncate_from_position(if sparse { 0 } else { end_bytes });
    let (scan_from, resume_relative) = segment.offset_index.last().map_or((0, 0), |entry| {
        (u64::from(entry.position), entry.relative_offset)
    });
    segment.time_index.truncate_from_offset(resume_relative);
    segment.max_timestamp = segment.time_index.last().map(|entry| {
        (
            entry.timestamp,
            base_offset + i64::from(entry.relative_offset),
        )
    });
    segment.next_offset = base_offset + i64::from(resume_relative);
    segment.bytes_since_index_entry = 0;
    if sparse {
        segment.index_records = None;
    }
    debug_assert!(segment.next_offset <= at.offset);
    // Data exists below the cut, so the file does too.
    let file = segment.file.clone()?;
    let mut scratch = Segment::new(dir, base_offset);
    scratch.offset_index = segment.offset_index.clone();
    scratch.time_index = segment.time_index.clone();
    scratch.max_timestamp = segment.max_timestamp;
    scratch.next_offset = segment.next_offset;
    scratch.offsets_dense = !sparse;
    Some(Cut {
        base_offset,
        file,
        end_bytes,
        cut_offset: at.offset,
        scratch,
        scan_from,
        was_sealed,
        sparse,
    })
}

/// The disk half of a cut (module doc). On error the log's files may be cut only partly: the
/// caller fences the log (a restart's recovery finds a prefix of the old log).
pub(crate) async fn apply(inner: &LogInner, plan: Plan) -> Result<(), StorageError> {
    for path in &plan.removed {
        files::remove_if_exists(path).await?;
    }
    if !plan.removed.is_empty() {
        files::sync_directory(&inner.dir).await?;
    }
    if let Some(cut) = plan.cut {
        rebuild_cut_segment(inner, cut).await?;
    }
    Ok(())
}

/// Re-scans the cut segment from its last kept index entry to the cut, zeroes the file past the
/// cut, and installs the rebuilt indexes and tail page.
async fn rebuild_cut_segment(inner: &LogInner, mut cut: Cut) -> Result<(), StorageError> {
    if cut.was_sealed {
        // Active again: its index files describe data that goes, and its file was opened
        // read-only by recovery.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            files::remove_if_exists(&segment_file_path(&inner.dir, cut.base_offset, suffix))
                .await?;
        }
        let log_path = segment_file_path(&inner.dir, cut.base_offset, LOG_SUFFIX);
        let writable = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&log_path)
            .await?;
        cut.file = Rc::new(writable);
    }
    let interval = inner.config.index_interval_bytes;
    let scanned_to = if cut.sparse {
        scan_sealed_segment(&cut.file, &mut cut.scratch, cut.end_bytes, interval).await?
    } else {
        scan_valid_batches_from(
            &cut.file,
            &mut cut.scratch,
            cut.scan_from,
            cut.end_bytes,
            interval,
        )
        .await?
    };
    // A compacted segment (or a follower's copy of a compacted leader log) may end in a gap
    // before the cut offset.
    let offsets_end_ok = cut.scratch.next_offset <= cut.cut_offset;
    if cut.scratch.next_offset < cut.cut_offset && cut.scratch.offsets_dense {
        // The gap up to the cut holds no records.
        cut.scratch.start_counting_records();
    }
    if scanned_to != cut.end_bytes || !offsets_end_ok {
        return Err(StorageError::Corrupt(format!(
            "data kept in segment {} ends at position {scanned_to} (offset {}), expected {} (offset {})",
            cut.base_offset, cut.scratch.next_offset, cut.end_bytes, cut.cut_offset
        )));
    }
    let file_size = cut.file.file_size().await?;
    let tail_page = recovery::zero_after(&cut.file, cut.end_bytes, file_size).await?;
    let mut state = inner.state.borrow_mut();
    let Some(segment) = state.segment_by_base_mut(cut.base_offset) else {
        return Err(StorageError::Corrupt(format!(
            "segment {} vanished during a cut",
            cut.base_offset
        )));
    };
    segment.offset_index = cut.scratch.offset_index;
    segment.time_index = cut.scratch.time_index;
    segment.max_timestamp = cut.scratch.max_timestamp;
    segment.next_offset = cut.cut_offset;
    segment.bytes_since_index_entry = cut.scratch.bytes_since_index_entry;
    segment.index_records = cut.scratch.index_records;
    segment.offsets_dense = cut.scratch.offsets_dense;
    segment.write.tail_page = tail_page;
    if cut.was_sealed {
        segment.file = Some(cut.file);
    }
    // The space past the end was given back (hole punched): the next round reserves it again,
    // which is where a still-full disk fails, before any data is written.
    segment.allocated_bytes = align_up(cut.end_bytes);
    Ok(())
}
