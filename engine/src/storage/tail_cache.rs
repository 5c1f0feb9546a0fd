//! Bounded in-memory cache of the batches most recently appended to one partition, so that a consumer
//! reading the tail is served without disk I/O. Entries are `Bytes` slices of the stored copy made at
//! append time (no extra copy); adjacent batches of one append are returned as a single slice.

use std::collections::VecDeque;

use bytes::Bytes;

/// One cached batch: offsets `[base_offset, last_offset]` at `parent[start..start + len]`.
#[derive(Debug, Clone)]
struct CachedBatch {
    base_offset: i64,
    last_offset: i64,
    parent: Bytes,
    start: usize,
    len: usize,
}

/// Run of the newest batches (offsets growing, without a batch missing: a gap is offsets no batch
/// holds), evicted from the front past `capacity_bytes`.
#[derive(Debug)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    cached_bytes: usize,
    capacity_bytes: usize,
}

impl TailCache {
    pub(crate) fn new(capacity_bytes: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            cached_bytes: 0,
            capacity_bytes,
        }
    }

    /// Adds the batch `parent[start..start + len]`; offsets must follow the previous batch's, with
    /// a gap where the leader of a follower's log compacted batches away.
    pub(crate) fn push(
        &mut self,
        base_offset: i64,
        last_offset: i64,
        parent: &Bytes,
        start: usize,
        len: usize,
    ) {
        if let Some(previous) = self.batches.back() {
            assert!(
                base_offset > previous.last_offset,
                "tail cache offsets must grow: {} after {}",
                base_offset,
                previous.last_offset
            );
        }
        if len > self.capacity_bytes {
            // Larger than the whole budget: keeping it would evict everything for one batch.
            self.clear();
            return;
        }
        self.batches.push_back(CachedBatch {
            base_offset,
            last_offset,
            parent: parent.clone(),
            start,
            len,
        });
        self.cached_bytes += len;
        while self.cached_bytes > self.capacity_bytes {
            match self.batches.pop_front() {
                Some(evicted) => self.cached_bytes -= evicted.len,
                None => break,
            }
        }
    }

    /// Drops the batches below `offset` (compaction rewrote the segments holding them: reads must
    /// see the cleaned copy, not the original batches).
    pub(crate) fn evict_below(&mut self, offset: i64) {
        while let Some(front) = self.batches.front() {
            if front.base_offset >= offset {
                break;
            }
            self.cached_bytes -= front.len;
            self.batches.pop_front();
        }
    }

    /// Drops the batches at or after `offset` (the log was cut there; `offset` starts a batch or
    /// lies past the cached ones).
    pub(crate) fn truncate_from(&mut self, offset: i64) {
        while let Some(back) = self.batches.back() {
            if back.last_offset < offset {
                break;
            }
            debug_assert!(back.base_offset >= offset, "cuts fall on batch boundaries");
            self.cached_bytes -= back.len;
            self.batches.pop_back();
        }
    }

    /// Drops everything (after a skipped oversized batch the cache restarts at the next one).
    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.cached_bytes = 0;
    }

    /// Whole batches from the one containing `offset`, wholly below `high_watermark`, the first one
    /// always and the following ones while the total stays within `max_bytes`. `None` if `offset`
    /// is not cached; no chunks when its batch reaches the high watermark.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        high_watermark: i64,
    ) -> Option<Vec<Bytes>> {
        let first = self.batches.front()?;
        if offset < first.base_offset || offset >= high_watermark {
            return None;
        }
        let start_index = self
            .batches
            .partition_point(|batch| batch.last_offset < offset);
        if start_index == self.batches.len() {
            return None;
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        // (parent pointer, start, end) of the run being merged into the last chunk.
        let mut run: Option<(*const u8, usize, usize)> = None;
        let mut total_bytes = 0usize;
        for batch in self.batches.range(start_index..) {
            // A batch straddling the high watermark stays hidden, as in Kafka (whose reads stop at
            // the position of the batch holding the high watermark).
            if batch.last_offset >= high_watermark {
                break;
            }
            if total_bytes > 0 && total_bytes + batch.len > max_bytes {
                break;
            }
            total_bytes += batch.len;
            let parent_ptr = batch.parent.as_ptr();
            match run {
                Some((ptr, run_start, run_end)) if ptr == parent_ptr && run_end == batch.start => {
                    let merged_end = batch.start + batch.len;
                    if let Some(last) = chunks.last_mut() {
                        *last = batch.parent.slice(run_start..merged_end);
                    }
                    run = Some((ptr, run_start, merged_end));
                }
                _ => {
                    chunks.push(batch.parent.slice(batch.start..batch.start + batch.len));
                    run = Some((parent_ptr, batch.start, batch.start + batch.len));
                }
            }
        }
        Some(chunks)
    }

    #[cfg(test)]
    pub(crate) fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_whole_batches_merges_runs_and_evicts() {
        let mut cache = TailCache::new(100);
        let first_append = Bytes::from(vec![1u8; 60]);
        cache.push(0, 1, &first_append, 0, 30);
        cache.push(2, 4, &first_append, 30, 30);
        let second_append = Bytes::from(vec![2u8; 30]);
        cache.push(5, 5, &second_append, 0, 30);
        assert_eq!(cache.cached_bytes(), 90);

        let chunks = cache.read(3, 1000, 6).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), 30);
        let all = cache.read(0, 1000, 6).unwrap();
        assert_eq!(all.iter().map(Bytes::len).collect::<Vec<_>>(), vec![60, 30]);
        // max_bytes smaller than the first batch still returns it, and nothing more.
        let one = cache.read(1, 1, 6).unwrap();
        assert_eq!(one.iter().map(Bytes::len).sum::<usize>(), 30);
        // High watermark hides the last batch.
        let below_hw = cache.read(0, 1000, 5).unwrap();
        assert_eq!(below_hw.iter().map(Bytes::len).sum::<usize>(), 60);
        assert!(cache.read(6, 1000, 6).is_none());

        cache.push(6, 6, &Bytes::from(vec![3u8; 30]), 0, 30);
        assert_eq!(cache.cached_bytes(), 90);
        assert!(cache.read(0, 1000, 7).is_none());
        assert!(cache.read(2, 1000, 7).is_some());

        // Cutting at a batch boundary keeps the batches below it; new batches follow the cut.
        cache.truncate_from(5);
        assert_eq!(cache.cached_bytes(), 30);
        assert!(cache.read(5, 1000, 7).is_none());
        cache.push(5, 5, &Bytes::from(vec![4u8; 30]), 0, 30);
        assert_eq!(cache.read(5, 1000, 6).unwrap()[0][0], 4);
        cache.truncate_from(100);
        assert_eq!(cache.cached_bytes(), 60, "nothing at or past 100");
    }

    #[test]
    fn a_gap_between_batches_reads_as_the_next_batch() {
        // A follower's copy of a compacted leader log: offsets 2 to 6 are in no batch.
        let mut cache = TailCache::new(100);
        let append = Bytes::from(vec![1u8; 60]);
        cache.push(0, 1, &append, 0, 30);
        cache.push(7, 8, &append, 30, 30);
        let from_gap = cache.read(4, 1000, 9).unwrap();
        assert_eq!(from_gap, vec![append.slice(30..60)]);
        assert_eq!(cache.read(0, 1000, 9).unwrap(), vec![append.clone()]);
        // Cut inside the gap: the batch past it goes, the next one may leave a gap again.
        cache.truncate_from(5);
        assert!(cache.read(5, 1000, 9).is_none());
        cache.push(9, 9, &Bytes::from(vec![2u8; 30]), 0, 30);
        assert_eq!(cache.read(2, 1000, 10).unwrap()[0][0], 2);
    }
}
