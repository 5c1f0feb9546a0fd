//! Reads: Kafka Fetch semantics over the tail cache and the segment files, and timestamp lookups.
//!
//! A read returns whole batches, starting with the batch that CONTAINS the requested offset, at least
//! that batch even if it is bigger than `max_bytes`, then more while the total stays within
//! `max_bytes`, never past its bound: the high watermark for consumers, the written end for
//! follower replicas ([`ReadBound`]). Recent data comes from the tail cache; older data is
//! described as a file range (for sendfile), found with the sparse offset index and a short header
//! walk.

use std::rc::Rc;

use glommio::io::DmaFile;
use ringbroker_protocol::batch::BatchHeader;

use super::error::StorageError;
use super::files;
use super::log::{LogInner, ReadChunk, ReadResult};
use super::scan::HeaderScanner;

/// Where a read stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBound {
    /// Consumers: below the high watermark.
    HighWatermark,
    /// Follower replicas: below the written end.
    WrittenEnd,
    /// read_committed consumers: below this offset (the last stable offset) and the high
    /// watermark.
    Below(i64),
}

/// A planned file read, computed under the state borrow.
struct FilePlan {
    file: Rc<DmaFile>,
    segment_base_offset: i64,
    path: std::path::PathBuf,
    scan_from: u64,
    committed_bytes: u64,
    /// The segment's `offsets_dense`: its index entries tell how many records a jump skips.
    offsets_dense: bool,
    /// In a segment that is not dense, the records before `scan_from` if the segment knows them
    /// (`index_records`).
    records_before_scan: Option<u64>,
    /// The read's bound: no batch reaching it is returned.
    limit_offset: i64,
    /// No index jump goes past this position (the indexed batch at or below `limit_offset`).
    limit_position: u64,
}

/// Whole batches of one segment file that a read returns.
struct FileRange {
    position: u64,
    len: u64,
    /// Records in those batches (what the fetch-records metric counts).
    records: u64,
}

pub(crate) async fn read(
    inner: &LogInner,
    offset: i64,
    max_bytes: usize,
    bound: ReadBound,
) -> Result<ReadResult, StorageError> {
    let high_watermark = inner.high_watermark.get();
    let limit_offset = match bound {
        ReadBound::HighWatermark => high_watermark,
        ReadBound::WrittenEnd => inner.written.get(),
        ReadBound::Below(limit) => high_watermark.min(limit),
    };
    // Where to look: moves on to the next segment when compaction removed the rest of a segment.
    let mut at = offset;
    loop {
        let (plan, segment_end) = {
            let state = inner.state.borrow();
            let log_start_offset = state.log_start_offset;
            if offset < log_start_offset || offset > state.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset,
                    end_offset: state.log_end_offset,
                });
            }
            let result = |chunks| ReadResult {
                chunks,
                high_watermark,
                log_start_offset,
            };
            if at >= limit_offset {
                return Ok(result(Vec::new()));
            }
            if let Some(cached) = state.tail_cache.read(at, max_bytes, limit_offset) {
                return Ok(result(cached.into_iter().map(ReadChunk::Memory).collect()));
            }
            let segment = state
                .segment_index_for(at)
                .and_then(|index| state.segments.get(index))
                .ok_or_else(|| StorageError::Corrupt(format!("no segment holds offset {at}")))?;
            let file = segment.file.clone().ok_or_else(|| {
                StorageError::Corrupt(format!("segment {} has no file", segment.base_offset))
            })?;
            let scan_entry = segment.offset_index.lookup_entry(segment.relative(at));
            let records_before_scan = segment.index_records.as_ref().and_then(|counts| {
                scan_entry.map_or(Some(0), |(number, _)| counts.before_entry(number))
            });
            let limit_position = if limit_offset < segment.next_offset {
                segment.offset_index.lookup(segment.relative(limit_offset))
            } else {
                segment.committed_bytes
            };
            let plan = FilePlan {
                file,
                segment_base_offset: segment.base_offset,
                path: segment.log_path.clone(),
                scan_from: scan_entry.map_or(0, |(_, entry)| u64::from(entry.position)),
                committed_bytes: segment.committed_bytes,
                offsets_dense: segment.offsets_dense,
                records_before_scan,
                limit_offset,
                limit_position,
            };
            (plan, segment.next_offset)
        };
        let path = plan.path.clone();
        let planned_on = plan.file.clone();
        let Some(range) = file_range(inner, plan, at, max_bytes).await? else {
            // Nothing at or after `at` in this (compacted) segment: continue with the next one.
            debug_assert!(segment_end > at);
            at = segment_end.max(at + 1);
            continue;
        };
        let log_start_offset = inner.state.borrow().log_start_offset;
        if range.len == 0 {
            // The next batch lies past the bound.
            return Ok(ReadResult {
                chunks: Vec::new(),
                high_watermark,
                log_start_offset,
            });
        }
        return Ok(ReadResult {
            chunks: vec![ReadChunk::File {
                path,
                position: range.position,
                len: range.len,
                records: range.records,
                inode: files::inode_of(planned_on.as_ref())?,
            }],
            high_watermark,
            log_start_offset,
        });
    }
}

/// Finds the whole batches to return from one segment; `None` if the segment holds no batch at or
/// after `offset` (compaction removed its tail). A batch starting after `offset` is a compaction
/// gap: the read starts there, as in Kafka.
///
/// Records are counted exactly without reading more than the range planning does: walked batches
/// by their `record_count`, batches jumped over with the sparse index as [`index_jump`] counts
/// them. A compacted segment whose counts are unknown (found at open, until compaction rewrites
/// it) is walked header by header instead: up to `max_bytes / HEADER_WINDOW_BYTES` more header
/// reads per fetch there.
async fn file_range(
    inner: &LogInner,
    plan: FilePlan,
    offset: i64,
    max_bytes: usize,
) -> Result<Option<FileRange>, StorageError> {
    let mut scanner = HeaderScanner::new(plan.file.clone(), plan.scan_from, plan.committed_bytes);
    // Records of the batches walked past before the first one returned.
    let mut records_passed = 0u64;
    let (start, first) = loop {
        match scanner.next().await? {
            Some((position, header)) if header.last_offset() >= offset => break (position, header),
            Some((_, header)) => records_passed += batch_records(&header),
            None => return Ok(None),
        }
    };
    if first.last_offset() >= plan.limit_offset {
        // Past the bound, or straddling it (hidden whole, as in the tail cache).
        return Ok(Some(FileRange {
            position: start,
            len: 0,
            records: 0,
        }));
    }
    let mut end = start + first.total_bytes() as u64;
    let mut records = batch_records(&first);
    let budget_end = start + max_bytes as u64;
    // Jump over whole batches with the sparse index, then walk the few headers after the jump.
    let records_through_first = plan
        .records_before_scan
        .map(|before| before + records_passed + records);
    let jump = index_jump(inner, &plan, &first, end, budget_end, records_through_first);
    if let Some((position, records_jumped)) = jump {
        records += records_jumped;
        end = position;
    }
    scanner.seek(end);
    while let Some((position, header)) = scanner.next().await? {
        let batch_end = position + header.total_bytes() as u64;
        if batch_end > budget_end || header.last_offset() >= plan.limit_offset {
            break;
        }
        end = batch_end;
        records += batch_records(&header);
    }
    Ok(Some(FileRange {
        position: start,
        len: end - start,
        records,
    }))
}

/// The furthest indexed batch start in `(end, budget_end]` and the records of the batches a read
/// jumps over to get there from `end` (just past `first`). `None` when there is no such entry, when
/// the records are not known exactly (a segment that is not dense and has no `index_records`), or
/// when compaction replaced the segment since the plan (its index describes another file).
fn index_jump(
    inner: &LogInner,
    plan: &FilePlan,
    first: &BatchHeader,
    end: u64,
    budget_end: u64,
    records_through_first: Option<u64>,
) -> Option<(u64, u64)> {
    let state = inner.state.borrow();
    let index = state
        .segments
        .binary_search_by_key(&plan.segment_base_offset, |segment| segment.base_offset)
        .ok()?;
    let segment = &state.segments[index];
    if !segment
        .file
        .as_ref()
        .is_some_and(|file| Rc::ptr_eq(file, &plan.file))
    {
        return None;
    }
    let up_to = budget_end
        .min(plan.committed_bytes)
        .min(plan.limit_position);
    let (number, entry) = segment.offset_index.last_entry_at_most(end - 1, up_to)?;
    let records_jumped = if plan.offsets_dense {
        // The batches jumped over hold every offset between the first batch and the entry's.
        let jumped_to = plan.segment_base_offset + i64::from(entry.relative_offset);
        assert!(
            jumped_to > first.last_offset(),
            "index entries follow the first batch"
        );
        (jumped_to - first.last_offset() - 1) as u64
    } else {
        let before_entry = segment.index_records.as_ref()?.before_entry(number)?;
        let through_first = records_through_first?;
        debug_assert!(before_entry >= through_first, "record counts grow");
        before_entry.checked_sub(through_first)?
    };
    Some((u64::from(entry.position), records_jumped))
}

/// Records of a stored batch.
fn batch_records(header: &BatchHeader) -> u64 {
    u64::try_from(header.record_count).unwrap_or(0)
}

/// Candidate segment for a timestamp lookup.
struct TimestampPlan {
    file: Rc<DmaFile>,
    scan_from: u64,
    committed_bytes: u64,
}

pub(crate) async fn offset_for_timestamp(
    inner: &LogInner,
    timestamp_ms: i64,
) -> Result<Option<(i64, i64)>, StorageError> {
    let high_watermark = inner.high_watermark.get();
    let plans: Vec<TimestampPlan> = {
        let state = inner.state.borrow();
        state
            .segments
            .iter()
            .filter(|segment| {
                segment
                    .max_timestamp
                    .is_some_and(|(max, _)| max >= timestamp_ms)
            })
            .filter(|segment| segment.committed_bytes > 0)
            .filter_map(|segment| {
                let start_offset =
                    segment.base_offset + i64::from(segment.time_index.start_for(timestamp_ms));
                Some(TimestampPlan {
                    file: segment.file.clone()?,
                    scan_from: segment.offset_index.lookup(segment.relative(start_offset)),
                    committed_bytes: segment.committed_bytes,
                })
            })
            .collect()
    };
    for plan in plans {
        let mut scanner = HeaderScanner::new(plan.file, plan.scan_from, plan.committed_bytes);
        while let Some((_, header)) = scanner.next().await? {
            if header.last_offset() >= high_watermark {
                // Consumers see nothing at or past the high watermark.
                return Ok(None);
            }
            if header.max_timestamp >= timestamp_ms {
                let timestamp = if header.base_timestamp >= timestamp_ms {
                    header.base_timestamp
                } else {
                    header.max_timestamp
                };
                return Ok(Some((header.base_offset, timestamp)));
            }
            glommio::yield_if_needed().await;
        }
    }
    Ok(None)
}
