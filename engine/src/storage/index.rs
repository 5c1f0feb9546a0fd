//! Sparse per-segment indexes, kept in memory and persisted beside the segment (Kafka's layouts):
//! - offset index `.index`: entries (relative offset: u32 BE, file position: u32 BE), one per
//!   `index_interval_bytes` of batches, each pointing at the start of a batch;
//! - time index `.timeindex`: entries (max timestamp so far: i64 BE, relative offset: u32 BE), added
//!   together with offset-index entries when the segment's max timestamp grew, plus a final entry when
//!   the segment is sealed or the log closed.
//!
//! Files are written whole (seal, clean close) and loaded with a consistency check; a file that fails
//! the check is rebuilt by scanning the segment.

use super::error::StorageError;

/// Bytes of one offset-index entry on disk.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of one time-index entry on disk.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// One offset-index entry: the batch starting at `position` has base offset `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Offset → file position, sparse, strictly increasing in both fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub(crate) fn push(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries must grow: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// Position of the last indexed batch whose base offset is <= `relative_offset` (0 if none).
    pub(crate) fn lookup(&self, relative_offset: u32) -> u64 {
        self.lookup_entry(relative_offset)
            .map_or(0, |(_, entry)| u64::from(entry.position))
    }

    /// The last entry (and its number) whose base offset is <= `relative_offset`, if any.
    pub(crate) fn lookup_entry(&self, relative_offset: u32) -> Option<(usize, OffsetEntry)> {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        let number = after.checked_sub(1)?;
        Some((number, self.entries[number]))
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries' relative offsets, in order.
    pub(crate) fn relative_offsets(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|entry| entry.relative_offset)
    }

    /// The entry (and its number) of the furthest indexed batch start within
    /// `(after_position, up_to_position]`, if any.
    pub(crate) fn last_entry_at_most(
        &self,
        after_position: u64,
        up_to_position: u64,
    ) -> Option<(usize, OffsetEntry)> {
        let n = self
            .entries
            .partition_point(|entry| u64::from(entry.position) <= up_to_position);
        let number = n.checked_sub(1)?;
        let entry = *self.entries.get(number)?;
        (u64::from(entry.position) > after_position).then_some((number, entry))
    }

    pub(crate) fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Drops the entries at or past `position` (a log rolling back its unwritten tail).
    pub(crate) fn truncate_from_position(&mut self, position: u64) {
        let kept = self
            .entries
            .partition_point(|entry| u64::from(entry.position) < position);
        self.entries.truncate(kept);
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
            out.extend_from_slice(&entry.position.to_be_bytes());
        }
        out
    }

    /// Parses an index file; every position must lie below `segment_size_bytes`.
    pub(crate) fn decode(
        bytes: &[u8],
        segment_size_bytes: u64,
    ) -> Result<OffsetIndex, StorageError> {
        if !bytes
            .chunks_exact(OFFSET_INDEX_ENTRY_BYTES)
            .remainder()
            .is_empty()
        {
            return Err(StorageError::Corrupt(format!(
                "offset index of {} bytes",
                bytes.len()
            )));
        }
        let mut index = OffsetIndex::default();
        for raw in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                position: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            };
            let grows = index.last().is_none_or(|last| {
                entry.relative_offset > last.relative_offset && entry.position > last.position
            });
            if !grows || u64::from(entry.position) >= segment_size_bytes {
                return Err(StorageError::Corrupt(format!(
                    "offset index entry {entry:?} out of order"
                )));
            }
            index.entries.push(entry);
        }
        Ok(index)
    }
}

/// One time-index entry: every batch before `base + relative_offset` has a max timestamp <= `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Timestamp → offset, sparse; timestamps strictly increase, offsets never decrease.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds `entry` if its timestamp is larger than the last one (the index stays monotonic).
    pub(crate) fn maybe_push(&mut self, entry: TimeEntry) {
        match self.entries.last() {
            Some(last) if entry.timestamp <= last.timestamp => {}
            Some(last) => {
                assert!(
                    entry.relative_offset >= last.relative_offset,
                    "time index offsets must not shrink"
                );
                self.entries.push(entry);
            }
            None => self.entries.push(entry),
        }
    }

    /// Relative offset of the last entry with a timestamp strictly below `timestamp`: every batch before
    /// it, and the batch itself, have smaller timestamps, so a scan for ">= timestamp" may start there.
    pub(crate) fn start_for(&self, timestamp: i64) -> u32 {
        let n = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        match n {
            0 => 0,
            n => self.entries[n - 1].relative_offset,
        }
    }

    pub(crate) fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Drops the entries at or past `relative_offset` (a log rolling back its unwritten tail).
    pub(crate) fn truncate_from_offset(&mut self, relative_offset: u32) {
        let kept = self
            .entries
            .partition_point(|entry| entry.relative_offset < relative_offset);
        self.entries.truncate(kept);
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.extend_from_slice(&entry.timestamp.to_be_bytes());
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<TimeIndex, StorageError> {
        if !bytes
            .chunks_exact(TIME_INDEX_ENTRY_BYTES)
            .remainder()
            .is_empty()
        {
            return Err(StorageError::Corrupt(format!(
                "time index of {} bytes",
                bytes.len()
            )));
        }
        let mut index = TimeIndex::default();
        for raw in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let mut timestamp = [0u8; 8];
            timestamp.copy_from_slice(&raw[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(timestamp),
                relative_offset: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            };
            let grows = index.last().is_none_or(|last| {
                entry.timestamp > last.timestamp && entry.relative_offset >= last.relative_offset
            });
            if !grows {
                return Err(StorageError::Corrupt(format!(
                    "time index entry {entry:?} out of order"
                )));
            }
            index.entries.push(entry);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_round_trip() {
        let mut index = OffsetIndex::default();
        index.push(OffsetEntry {
            relative_offset: 10,
            position: 4100,
        });
        index.push(OffsetEntry {
            relative_offset: 20,
            position: 8300,
        });
        assert_eq!(index.lookup(5), 0);
        assert_eq!(index.lookup(10), 4100);
        assert_eq!(index.lookup(19), 4100);
        assert_eq!(index.lookup(1000), 8300);
        assert_eq!(index.lookup_entry(9), None);
        assert_eq!(index.lookup_entry(19).map(|(n, _)| n), Some(0));
        assert_eq!(
            index
                .last_entry_at_most(0, 9000)
                .map(|(n, e)| (n, e.position)),
            Some((1, 8300))
        );
        assert_eq!(
            index
                .last_entry_at_most(0, 8299)
                .map(|(n, e)| (n, e.position)),
            Some((0, 4100))
        );
        assert_eq!(index.last_entry_at_most(4100, 8299), None);
        let decoded = OffsetIndex::decode(&index.encode(), 9000).unwrap();
        assert_eq!(decoded, index);
        assert!(OffsetIndex::decode(&index.encode(), 8300).is_err());
        assert!(OffsetIndex::decode(&[0; 7], 100).is_err());
    }

    #[test]
    fn time_index_is_monotonic_and_round_trips() {
        let mut index = TimeIndex::default();
        index.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 0,
        });
        index.maybe_push(TimeEntry {
            timestamp: 90,
            relative_offset: 5,
        });
        index.maybe_push(TimeEntry {
            timestamp: 200,
            relative_offset: 10,
        });
        assert_eq!(index.start_for(50), 0);
        assert_eq!(index.start_for(100), 0);
        assert_eq!(index.start_for(101), 0);
        assert_eq!(index.start_for(201), 10);
        assert_eq!(TimeIndex::decode(&index.encode()).unwrap(), index);
        index.truncate_from_offset(10);
        assert_eq!(index.last().map(|e| e.relative_offset), Some(0));
        index.truncate_from_offset(0);
        assert_eq!(index.last(), None);
    }

    #[test]
    fn offset_index_truncates_by_position() {
        let mut index = OffsetIndex::default();
        for (relative_offset, position) in [(10, 4100), (20, 8300)] {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index.truncate_from_position(8301);
        assert_eq!(index.last().map(|e| e.position), Some(8300));
        index.truncate_from_position(8300);
        assert_eq!(index.last().map(|e| e.position), Some(4100));
        index.truncate_from_position(0);
        assert_eq!(index.last(), None);
    }
}
