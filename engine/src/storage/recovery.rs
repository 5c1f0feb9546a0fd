//! Opening a partition directory: find the segments, trust what a clean shutdown left (checkpoint +
//! index files), otherwise scan the active segment batch by batch (length, magic, CRC32C, offsets
//! that grow, with the gaps of a follower's copy of a compacted log), cut the tail at the first
//! invalid batch and zero everything after it so a later scan cannot resurrect stale batches. Sealed segments are trusted (they were synced and truncated to
//! their data when sealed); their indexes are rebuilt by a scan only if the index files are unusable.

use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::checkpoint::{self, CleanShutdown};
use super::config::{
    align_down, align_up, preallocation_target, LogConfig, PAGE_BYTES, SEGMENT_BYTES_MAX,
};
use super::error::StorageError;
use super::files::{self, TEMPORARY_SUFFIX};
use super::index::{OffsetIndex, TimeIndex};
use super::leader_epoch::{self, LeaderEpochCache};
use super::scan::{scan_valid_batches, HeaderScanner};
use super::segment::{
    parse_log_file_name, segment_file_path, Segment, INDEX_SUFFIX, TIME_INDEX_SUFFIX,
};

/// What recovery hands to the log.
pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    pub log_end_offset: i64,
    pub max_timestamp: Option<(i64, i64)>,
}

pub(crate) async fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, StorageError> {
    // Blocking, but once per partition open and tiny.
    std::fs::create_dir_all(dir)?;
    let dense_from = first_dense_offset(dir).await?;
    super::compaction::swap::finish_interrupted_swaps(dir).await?;
    let mut base_offsets = list_segments(dir).await?;
    let clean_shutdown = checkpoint::take(dir).await?;
    if base_offsets.is_empty() {
        base_offsets.push(0);
    }
    let mut segments = Vec::with_capacity(base_offsets.len());
    for (index, &base_offset) in base_offsets.iter().enumerate() {
        let mut segment = match base_offsets.get(index + 1) {
            Some(&next_base_offset) => {
                open_sealed(dir, base_offset, next_base_offset, config).await?
            }
            None => open_active(dir, base_offset, clean_shutdown, config).await?,
        };
        // A scan that met a follower's gap already made the segment sparse.
        segment.offsets_dense = segment.offsets_dense && segment.base_offset >= dense_from;
        segments.push(segment);
    }
    let log_end_offset = segments.last().map_or(0, |segment| segment.next_offset);
    let max_timestamp = segments
        .iter()
        .filter_map(|segment| segment.max_timestamp)
        .fold(None, |max: Option<(i64, i64)>, candidate| match max {
            Some(current) if current.0 >= candidate.0 => Some(current),
            _ => Some(candidate),
        });
    Ok(Recovered {
        segments,
        log_end_offset,
        max_timestamp,
    })
}

/// The leader-epoch cache of a recovered log: the checkpoint (a superset of the epochs on disk,
/// see `leader_epoch`) cut to the recovered log, or, when it is missing or damaged, rebuilt by
/// reading every batch header. A changed cache is written back before the log serves; if that
/// write fails (a full disk must not keep the broker from starting), the appender writes it before
/// the next data.
pub(crate) async fn recover_epochs(
    dir: &Path,
    recovered: &Recovered,
    log_start_offset: i64,
) -> Result<LeaderEpochCache, StorageError> {
    let loaded = leader_epoch::load(dir).await?;
    let rebuilt = loaded.is_none();
    let mut epochs = match loaded {
        Some(entries) => LeaderEpochCache::from_entries(entries),
        None => scan_epochs(&recovered.segments).await?,
    };
    epochs.truncate_from_end(recovered.log_end_offset);
    epochs.truncate_from_start(log_start_offset);
    if rebuilt || epochs.is_dirty() {
        let bytes = epochs.take_checkpoint();
        if let Err(error) = leader_epoch::persist(dir, bytes).await {
            tracing::warn!(dir = %dir.display(), %error, "cannot write the leader-epoch checkpoint at open; writing it before the next append");
            epochs.mark_dirty();
        }
    }
    Ok(epochs)
}

/// The leader-epoch cache of a log an interrupted full truncation left empty: no epoch (the
/// leader's batches bring theirs), written back at once so that an old checkpoint cannot give the
/// new log the old log's epochs.
pub(crate) async fn restarted_epochs(dir: &Path) -> Result<LeaderEpochCache, StorageError> {
    let mut epochs = LeaderEpochCache::default();
    let bytes = epochs.take_checkpoint();
    if let Err(error) = leader_epoch::persist(dir, bytes).await {
        tracing::warn!(dir = %dir.display(), %error, "cannot write the leader-epoch checkpoint at open; writing it before the next append");
        epochs.mark_dirty();
    }
    Ok(epochs)
}

/// The epochs of every batch of `segments` (headers only).
async fn scan_epochs(segments: &[Segment]) -> Result<LeaderEpochCache, StorageError> {
    let mut epochs = LeaderEpochCache::default();
    for segment in segments {
        let Some(file) = segment.file.clone() else {
            continue;
        };
        let mut scanner = HeaderScanner::new(file, 0, segment.committed_bytes);
        while let Some((_, header)) = scanner.next().await? {
            epochs.assign(header.partition_leader_epoch, header.base_offset);
            glommio::yield_if_needed().await;
        }
    }
    Ok(epochs)
}

/// The first offset from which segments are known never to have been rewritten by compaction (their
/// offsets are dense: the index tells how many records a read jumps over). Compaction rewrites only
/// segments below its checkpoint, and writes the checkpoint before it finishes a pass's swaps, so
/// a segment starting at or after the checkpoint is dense. A swap left over (an interrupted pass)
/// makes every segment count as rewritten, as does a damaged checkpoint; without a checkpoint
/// nothing was ever compacted.
async fn first_dense_offset(dir: &Path) -> Result<i64, StorageError> {
    use super::compaction::{read_checkpoint, swap, CLEANER_CHECKPOINT_FILE_NAME};
    // Blocking, but once per partition open and tiny.
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let swap_left = name
            .rsplit_once('.')
            .is_some_and(|(_, suffix)| [swap::CLEANED_SUFFIX, swap::SWAP_SUFFIX].contains(&suffix));
        if swap_left {
            return Ok(i64::MAX);
        }
    }
    match read_checkpoint(dir).await? {
        Some(checkpoint) => Ok(checkpoint),
        None if dir.join(CLEANER_CHECKPOINT_FILE_NAME).exists() => Ok(i64::MAX),
        None => Ok(i64::MIN),
    }
}

/// Base offsets of the `.log` files, ascending; deletes leftovers of interrupted atomic writes.
async fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut base_offsets = Vec::new();
    let mut temporaries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base_offset) = parse_log_file_name(name) {
            base_offsets.push(base_offset);
        } else if name.ends_with(&format!(".{TEMPORARY_SUFFIX}")) {
            temporaries.push(entry.path());
        }
    }
    for path in temporaries {
        files::remove_if_exists(&path).await?;
    }
    base_offsets.sort_unstable();
    Ok(base_offsets)
}

/// Loads both index files of a segment; `None` if either is missing or inconsistent.
async fn load_indexes(
    dir: &Path,
    base_offset: i64,
    size_bytes: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, StorageError> {
    let offset_bytes =
        files::read_small_file(&segment_file_path(dir, base_offset, INDEX_SUFFIX)).await?;
    let time_bytes =
        files::read_small_file(&segment_file_path(dir, base_offset, TIME_INDEX_SUFFIX)).await?;
    let (Some(offset_bytes), Some(time_bytes)) = (offset_bytes, time_bytes) else {
        return Ok(None);
    };
    match (
        OffsetIndex::decode(&offset_bytes, size_bytes),
        TimeIndex::decode(&time_bytes),
    ) {
        (Ok(offset_index), Ok(time_index)) => Ok(Some((offset_index, time_index))),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(dir = %dir.display(), base_offset, %error, "rebuilding unusable index files");
            Ok(None)
        }
    }
}

/// A segment before the active one: read-only, size = file size.
async fn open_sealed(
    dir: &Path,
    base_offset: i64,
    next_base_offset: i64,
    config: &LogConfig,
) -> Result<Segment, StorageError> {
    let mut segment = Segment::new(dir, base_offset);
    let mut file = DmaFile::open(&segment.log_path).await?;
    let mut size_bytes = file.file_size().await?;
    match load_indexes(dir, base_offset, size_bytes).await? {
        Some((offset_index, time_index)) => {
            segment.offset_index = offset_index;
            segment.max_timestamp = time_index.last().map(|entry| {
                (
                    entry.timestamp,
                    base_offset + i64::from(entry.relative_offset),
                )
            });
            segment.time_index = time_index;
            segment.next_offset = next_base_offset;
        }
        None => {
            // Tolerates the offset gaps and partial batches of compacted segments.
            let end = super::compaction::scan_sealed_segment(
                &file,
                &mut segment,
                size_bytes.min(SEGMENT_BYTES_MAX),
                config.index_interval_bytes,
            )
            .await?;
            if end < size_bytes && segment.next_offset == next_base_offset {
                // Killed between the roll and the seal's truncate: every offset is there and the
                // rest is the preallocated reserve. Finish the seal instead of refusing to start.
                file = finish_interrupted_seal(dir, &mut segment, end).await?;
                size_bytes = end;
            }
            if end != size_bytes || segment.next_offset > next_base_offset {
                return Err(StorageError::Corrupt(format!(
                    "sealed segment {} is damaged at position {end} of {size_bytes} (offsets up to {}, next segment starts at {next_base_offset})",
                    segment.log_path.display(),
                    segment.next_offset
                )));
            }
            segment.finish_time_index();
            segment.next_offset = next_base_offset;
        }
    }
    // Sealed: no tail page, never written again.
    segment.size_bytes = size_bytes;
    segment.written_bytes = size_bytes;
    segment.committed_bytes = size_bytes;
    segment.file = Some(Rc::new(file));
    segment.sealed = true;
    Ok(segment)
}

/// Does what a seal interrupted by a crash left undone: truncates the segment to its `end_bytes`
/// of data, syncs, writes its index files. Returns the file, opened for reading.
async fn finish_interrupted_seal(
    dir: &Path,
    segment: &mut Segment,
    end_bytes: u64,
) -> Result<DmaFile, StorageError> {
    tracing::warn!(segment = %segment.log_path.display(), end_bytes, "finishing the seal of a segment cut short by a crash");
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&segment.log_path)
        .await?;
    writable.truncate(end_bytes).await?;
    writable.fdatasync().await?;
    writable.close().await?;
    segment.finish_time_index();
    let base_offset = segment.base_offset;
    files::write_file_atomically(
        &segment_file_path(dir, base_offset, INDEX_SUFFIX),
        segment.offset_index.encode(),
    )
    .await?;
    files::write_file_atomically(
        &segment_file_path(dir, base_offset, TIME_INDEX_SUFFIX),
        segment.time_index.encode(),
    )
    .await?;
    Ok(DmaFile::open(&segment.log_path).await?)
}

/// The last segment: opened for writing, trusted from the checkpoint or scanned, then prepared for
/// appends (tail page loaded, preallocated).
pub(crate) async fn open_active(
    dir: &Path,
    base_offset: i64,
    clean_shutdown: Option<CleanShutdown>,
    config: &LogConfig,
) -> Result<Segment, StorageError> {
    let mut segment = Segment::new(dir, base_offset);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(&segment.log_path)
        .await?;
    let file_size = file.file_size().await?;
    let trusted = match clean_shutdown {
        Some(checkpoint)
            if checkpoint.active_base_offset == base_offset
                && checkpoint.active_size_bytes <= file_size =>
        {
            load_indexes(dir, base_offset, checkpoint.active_size_bytes.max(1))
                .await?
                .map(|indexes| (checkpoint, indexes))
        }
        _ => None,
    };
    let size_bytes = match trusted {
        Some((checkpoint, (offset_index, time_index))) => {
            segment.bytes_since_index_entry = checkpoint.active_size_bytes
                - offset_index
                    .last()
                    .map_or(0, |entry| u64::from(entry.position));
            segment.offset_index = offset_index;
            segment.max_timestamp = time_index.last().map(|entry| {
                (
                    entry.timestamp,
                    base_offset + i64::from(entry.relative_offset),
                )
            });
            segment.time_index = time_index;
            segment.next_offset = checkpoint.next_offset;
            checkpoint.active_size_bytes
        }
        None => {
            let limit = file_size.min(SEGMENT_BYTES_MAX);
            let end =
                scan_valid_batches(&file, &mut segment, limit, config.index_interval_bytes).await?;
            if end < file_size {
                zero_after(&file, end, file_size).await?;
            }
            end
        }
    };
    let tail_start = align_down(size_bytes);
    let tail_page = if tail_start == size_bytes {
        Vec::new()
    } else {
        let bytes = file
            .read_at(tail_start, (size_bytes - tail_start) as usize)
            .await?;
        if bytes.len() as u64 != size_bytes - tail_start {
            return Err(StorageError::Corrupt(format!(
                "short read of the tail page of {}",
                segment.log_path.display()
            )));
        }
        bytes.to_vec()
    };
    // Everything past `size_bytes` is zero now (clean shutdown or `zero_after`): give back what lies
    // beyond one preallocation step (files of older versions reserved whole segments). The appender
    // fallocates further ahead when writes reach the end of the file.
    segment.allocated_bytes = file_size;
    if config.preallocate {
        let wanted_bytes = preallocation_target(align_up(size_bytes), config.segment_bytes);
        if file_size > wanted_bytes {
            file.truncate(wanted_bytes).await?;
            segment.allocated_bytes = wanted_bytes;
        }
    }
    segment.set_recovered_end(size_bytes, tail_page);
    segment.file = Some(Rc::new(file));
    Ok(segment)
}

/// Zeroes the file from `end` on: the rest of the page is rewritten with zeroes, whole pages after it
/// are deallocated (they read back as zeroes). Without this, a later scan that ends exactly where a
/// stale batch begins would resurrect it. Returns the kept bytes of the last partial page (the
/// appender's tail page).
pub(crate) async fn zero_after(
    file: &DmaFile,
    end: u64,
    file_size: u64,
) -> Result<Vec<u8>, StorageError> {
    let page_start = align_down(end);
    let mut tail_page = Vec::new();
    if page_start != end {
        let existing = file
            .read_at(page_start, (end - page_start) as usize)
            .await?;
        if existing.len() as u64 != end - page_start {
            return Err(StorageError::Corrupt(
                "short read of the page to zero past the end".into(),
            ));
        }
        tail_page.extend_from_slice(&existing);
        let mut page = file.alloc_dma_buffer(PAGE_BYTES as usize);
        let kept = existing.len();
        page.as_bytes_mut()[..kept].copy_from_slice(&existing);
        page.as_bytes_mut()[kept..].fill(0);
        let written = file.write_at(page, page_start).await?;
        if written as u64 != PAGE_BYTES {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short write while zeroing the torn tail page",
            )));
        }
    }
    let hole_start = align_up(end);
    if file_size > hole_start {
        file.deallocate(hole_start, file_size - hole_start).await?;
    }
    file.fdatasync().await?;
    Ok(tail_page)
}
