//! One segment of a partition log: its file names, its in-memory indexes and its write state (bytes
//! queued for DMA, the partly filled tail page, commit marks). The segment does no I/O itself; the
//! appender, reader and recovery modules drive it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;
use ringbroker_protocol::batch::BatchHeader;

use super::config::{align_down, PAGE_BYTES};
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

/// Digits of the base offset in segment file names (Kafka's `%020d`).
const FILE_NAME_DIGITS: usize = 20;
/// Extension of segment data files.
pub const LOG_SUFFIX: &str = "log";
/// Extension of sparse offset-index files.
pub const INDEX_SUFFIX: &str = "index";
/// Extension of time-index files.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<base offset, 20 digits>.<suffix>`.
pub(crate) fn segment_file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{base_offset:0width$}.{suffix}",
        width = FILE_NAME_DIGITS
    ))
}

/// Parses `00000000000000000042.log` into 42; `None` for any other name.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(LOG_SUFFIX)?.strip_suffix('.')?;
    if digits.len() != FILE_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An append (or the part of one) whose offsets become readable once the bytes up to `end_position`
/// are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitMark {
    pub end_position: u64,
    pub next_offset: i64,
    /// Largest (timestamp, offset) among the append's batches.
    pub max_timestamp: Option<(i64, i64)>,
}

/// Bytes waiting for the appender, and the data needed to write them page-aligned.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    /// Stored copies of appends, in file order, not yet handed to a DMA write.
    pub queued: VecDeque<Bytes>,
    /// Sum of `queued` lengths.
    pub queued_bytes: u64,
    /// Contents of the partly filled page at `written_bytes` (`written_bytes % PAGE_BYTES` bytes).
    /// Rewritten in front of the next round, padded with zeroes.
    pub tail_page: Vec<u8>,
    /// Appends waiting for their bytes to be written, in order.
    pub commits: VecDeque<CommitMark>,
}

/// One segment: `[base_offset, next_offset)` stored in `size_bytes` bytes of `<base>.log`.
pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    /// Open once the appender (or recovery) created the file.
    pub file: Option<Rc<DmaFile>>,
    /// Bytes assigned to this segment (written, in flight and queued).
    pub size_bytes: u64,
    /// File size reserved by fallocate (the file's size while the segment is active).
    pub allocated_bytes: u64,
    /// Prefix of the file whose DMA writes completed.
    pub written_bytes: u64,
    /// Prefix holding only offsets below the high watermark (what readers may see).
    pub committed_bytes: u64,
    /// One past the last offset assigned to this segment.
    pub next_offset: i64,
    /// Largest (timestamp, offset) of the segment's batches.
    pub max_timestamp: Option<(i64, i64)>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Batch bytes appended since the last index entry.
    pub bytes_since_index_entry: u64,
    /// No more writes: data synced, file truncated to `size_bytes`, index files written.
    pub sealed: bool,
    /// The seal (sync, truncate, index files) runs in its own task, beside the appends to the
    /// next segment.
    pub sealing: bool,
    /// Every offset in `[base_offset, next_offset)` is a record here: batches follow each other
    /// without gaps and each holds `last_offset_delta + 1` records, as leader appends write them.
    /// False for segments compaction rewrote, for every segment of a once-compacted log found at
    /// open (the files do not say which were cleaned), and from the first batch with a gap or
    /// fewer records than offsets a follower stores or a recovery scan finds
    /// (`note_stored_batch`): reads then count records batch by batch. Only
    /// the fetch-records metric relies on it, so a wrong `true` (a crash in the first compaction
    /// pass after its swaps, before its checkpoint; a follower's segment with gaps reopened from
    /// its index files, until its own cleaner rewrites it) over-counts and breaks nothing.
    pub offsets_dense: bool,
    /// Records before each offset-index entry, for a segment that is not dense and whose batches
    /// were all seen (written by compaction or scanned by recovery); `None` otherwise.
    pub index_records: Option<IndexRecordCounts>,
    pub write: WriteQueue,
}

/// For each offset-index entry of a segment, the records stored before its batch (from the
/// segment start), so that a read can count the records of batches it jumps over with the index
/// in a segment whose offsets have gaps. 4 bytes per entry (one per `index_interval_bytes`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct IndexRecordCounts {
    before_entry: Vec<u32>,
    /// Records of the batches noted so far.
    noted: u32,
}

impl IndexRecordCounts {
    /// Records stored before the batch of index entry `entry`.
    pub(crate) fn before_entry(&self, entry: usize) -> Option<u64> {
        self.before_entry
            .get(entry)
            .map(|&records| u64::from(records))
    }
}

impl Segment {
    /// A new, empty segment whose file does not exist yet.
    pub(crate) fn new(dir: &Path, base_offset: i64) -> Segment {
        Segment {
            base_offset,
            log_path: segment_file_path(dir, base_offset, LOG_SUFFIX),
            file: None,
            size_bytes: 0,
            allocated_bytes: 0,
            written_bytes: 0,
            committed_bytes: 0,
            next_offset: base_offset,
            max_timestamp: None,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            sealed: false,
            sealing: false,
            offsets_dense: true,
            index_records: None,
            write: WriteQueue::default(),
        }
    }

    /// Offset relative to the segment base, as stored in the indexes.
    pub(crate) fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        relative as u32
    }

    /// Records a batch stored at `position` in the indexes (called at append and by recovery scans).
    pub(crate) fn note_batch(
        &mut self,
        position: u64,
        length: u64,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) {
        // Compacted segments and a follower's copy of a compacted leader log have gaps.
        debug_assert!(base_offset >= self.next_offset, "batch offsets grow");
        if self.bytes_since_index_entry >= u64::from(index_interval_bytes) && position > 0 {
            let relative_offset = self.relative(base_offset);
            let position_u32 = u32::try_from(position).expect("segment positions fit u32 (config)");
            self.offset_index.push(OffsetEntry {
                relative_offset,
                position: position_u32,
            });
            if let Some((timestamp, offset)) = self.max_timestamp {
                self.time_index.maybe_push(TimeEntry {
                    timestamp,
                    relative_offset: self.relative(offset),
                });
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += length;
        if self
            .max_timestamp
            .is_none_or(|(timestamp, _)| max_timestamp > timestamp)
        {
            self.max_timestamp = Some((max_timestamp, base_offset));
        }
        self.next_offset = last_offset + 1;
    }

    /// [`Segment::note_batch`] for a batch of a segment that may hold fewer records than its offsets
    /// (compaction output, a recovery scan of a compacted segment): also keeps `index_records`.
    /// Every batch of the segment must be noted this way, from its start.
    pub(crate) fn note_counted_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) {
        let entries = self.offset_index.len();
        self.note_header(position, header, index_interval_bytes);
        let counts = self.index_records.get_or_insert_with(Default::default);
        debug_assert_eq!(
            counts.before_entry.len(),
            entries,
            "every batch noted with counts"
        );
        if self.offset_index.len() > entries {
            counts.before_entry.push(counts.noted);
        }
        // Relative offsets fit u32, so a segment's records do too.
        let records = u32::try_from(header.record_count).unwrap_or(0);
        counts.noted = counts.noted.saturating_add(records);
    }

    /// Notes a batch the segment did not number itself (a follower's copy of its leader's, or one
    /// found by a recovery scan): it may start after the segment's next offset (its leader
    /// compacted away the batches between) or hold fewer records than offsets (a compacted batch).
    /// The first such batch makes a dense segment sparse, counting records from then on.
    pub(crate) fn note_stored_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) {
        let dense_batch = header.base_offset == self.next_offset
            && i64::from(header.record_count) == i64::from(header.last_offset_delta) + 1;
        if self.offsets_dense && !dense_batch {
            self.start_counting_records();
        }
        if self.index_records.is_some() {
            self.note_counted_batch(position, header, index_interval_bytes);
        } else {
            self.note_header(position, header, index_interval_bytes);
        }
    }

    /// [`Segment::note_batch`] for the batch `header` describes.
    fn note_header(&mut self, position: u64, header: &BatchHeader, index_interval_bytes: u32) {
        self.note_batch(
            position,
            header.total_bytes() as u64,
            header.base_offset,
            header.last_offset(),
            header.max_timestamp,
            index_interval_bytes,
        );
    }

    /// Turns a dense segment into a sparse one whose record counts are known: so far every offset
    /// was a record, so the records before an index entry are its relative offset.
    pub(crate) fn start_counting_records(&mut self) {
        debug_assert!(self.offsets_dense && self.index_records.is_none());
        self.offsets_dense = false;
        let before_entry: Vec<u32> = self.offset_index.relative_offsets().collect();
        let noted = u32::try_from(self.next_offset - self.base_offset).unwrap_or(u32::MAX);
        self.index_records = Some(IndexRecordCounts {
            before_entry,
            noted,
        });
    }

    /// Adds the segment's max timestamp as the final time-index entry (on seal and close), so that a
    /// reopened log knows each segment's max timestamp from its time index alone.
    pub(crate) fn finish_time_index(&mut self) {
        if let Some((timestamp, offset)) = self.max_timestamp {
            let relative_offset = self.relative(offset);
            self.time_index.maybe_push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// Sets the write state after recovery found `size_bytes` of valid data whose last page is
    /// `tail_page_source` (the bytes from the page start up to `size_bytes`).
    pub(crate) fn set_recovered_end(&mut self, size_bytes: u64, tail_page: Vec<u8>) {
        debug_assert_eq!(tail_page.len() as u64, size_bytes - align_down(size_bytes));
        debug_assert!(tail_page.len() < PAGE_BYTES as usize);
        self.size_bytes = size_bytes;
        self.written_bytes = size_bytes;
        self.committed_bytes = size_bytes;
        self.write.tail_page = tail_page;
    }

    /// Whether the appender has nothing left to do for this segment.
    pub(crate) fn write_idle(&self) -> bool {
        self.write.queued.is_empty() && self.written_bytes == self.size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let path = segment_file_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(path, Path::new("/d/00000000000000000042.log"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_log_file_name(name), Some(42));
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_file_name("42.log"), None);
    }
}
