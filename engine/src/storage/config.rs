//! Tunables of one partition log (`LogConfig`) and the fixed limits of the on-disk format.
//!
//! Every value the operator may change lives in `LogConfig`; the constants below are properties of the
//! format or of O_DIRECT and are not meant to be tuned.

use super::error::StorageError;

/// O_DIRECT alignment we write with. Devices report 512 or 4096 bytes; 4 KiB satisfies both and is the
/// page size the "never two in-flight writes to the same page" rule is about.
pub const PAGE_BYTES: u64 = 4096;

/// Upper bound of `segment_bytes`: index entries store the file position as a `u32` (Kafka's format).
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;

/// Smallest allowed segment: one page. Tests use small segments to exercise rolling.
pub const SEGMENT_BYTES_MIN: u64 = PAGE_BYTES;

/// How far ahead of the data the active segment file is fallocated (Redpanda's fallocation step is
/// 32 MiB). Reserving whole 1 GiB segments up front filled the disk with 50 mostly empty
/// `__consumer_offsets` partitions; a step keeps extents contiguous and DMA writes non-extending while
/// reserving little per idle partition.
pub const PREALLOCATE_STEP_BYTES: u64 = 16 << 20;

/// Default segment size, 1 GiB like Kafka's `log.segment.bytes`.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;

/// Default spacing of sparse offset-index entries, Kafka's `log.index.interval.bytes`.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;

/// Default fdatasync interval. Kafka syncs never by default (it relies on replication); until we
/// replicate, one second bounds what a power loss can take while keeping fsyncs off the ack path.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;

/// Default tail-cache budget per partition: a live consumer a few MiB behind is served from memory.
pub const DEFAULT_TAIL_CACHE_BYTES: usize = 4 << 20;

/// Default number of DMA writes in flight per partition within one group-commit round.
pub const DEFAULT_MAX_INFLIGHT_WRITES: usize = 4;

/// Default size of one DMA write buffer: 1 MiB sequential O_DIRECT writes reach the disk's bandwidth
/// here (BENCHMARKS.md); bigger buffers only add latency.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// When the log calls fdatasync. O_DIRECT writes reach the device when they complete, so an
/// acknowledged append survives a crash of the broker process under every policy; the policy only
/// decides what survives a power loss (device caches and unwritten-extent conversion need fdatasync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fdatasync after every group-commit round, before the appends in it resolve.
    Always,
    /// fdatasync at most this many milliseconds after the first unsynced write completed.
    IntervalMs(u64),
    /// Never fdatasync on the write path (only when a segment is sealed and on close).
    Never,
}

/// Configuration of one partition log. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the next append would make the active one larger than this.
    pub segment_bytes: u64,
    /// Bytes of batches between two sparse offset-index (and time-index) entries.
    pub index_interval_bytes: u32,
    /// fdatasync policy, see [`FlushPolicy`]. Default: `IntervalMs(1000)`.
    pub flush: FlushPolicy,
    /// Bytes of recently appended batches kept in memory to serve tail reads without disk I/O.
    pub tail_cache_bytes: usize,
    /// DMA writes in flight at once within one group-commit round.
    pub max_inflight_writes: usize,
    /// Size of one DMA write buffer (rounded up to whole pages). One round writes at most
    /// `max_inflight_writes * write_buffer_bytes` of new data (or one whole append if bigger).
    pub write_buffer_bytes: usize,
    /// fallocate the active segment ahead of the writes, `PREALLOCATE_STEP_BYTES` at a time, so that
    /// DMA writes never extend the file (ext4 runs size-extending O_DIRECT writes synchronously) and
    /// extents stay contiguous.
    pub preallocate: bool,
    /// The high watermark is the written end (a single-replica partition, the default). Off, the
    /// replication layer sets it (`PartitionLog::set_high_watermark`) and it is checkpointed; a
    /// log opened this way starts from its checkpoint, never from the recovered log end.
    pub high_watermark_follows_log_end: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            flush: FlushPolicy::IntervalMs(DEFAULT_FLUSH_INTERVAL_MS),
            tail_cache_bytes: DEFAULT_TAIL_CACHE_BYTES,
            max_inflight_writes: DEFAULT_MAX_INFLIGHT_WRITES,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            preallocate: true,
            high_watermark_follows_log_end: true,
        }
    }
}

impl LogConfig {
    /// Rejects values the log cannot work with.
    pub fn validate(&self) -> Result<(), StorageError> {
        let invalid = |why: String| Err(StorageError::InvalidConfig(why));
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return invalid(format!(
                "segment_bytes {} must be within {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return invalid("index_interval_bytes must be > 0".into());
        }
        if self.max_inflight_writes == 0 {
            return invalid("max_inflight_writes must be > 0".into());
        }
        if (self.write_buffer_bytes as u64) < PAGE_BYTES {
            return invalid(format!("write_buffer_bytes must be >= {PAGE_BYTES}"));
        }
        if let FlushPolicy::IntervalMs(0) = self.flush {
            return invalid("flush interval must be > 0 ms (use FlushPolicy::Always)".into());
        }
        Ok(())
    }

    /// One DMA buffer, rounded up to whole pages.
    pub(crate) fn write_buffer_bytes_aligned(&self) -> usize {
        align_up(self.write_buffer_bytes as u64) as usize
    }
}

/// The size to fallocate a segment file to when its data reaches `needed_bytes`: one step ahead,
/// never past the segment size unless the data itself is (an oversized first append).
pub(crate) fn preallocation_target(needed_bytes: u64, segment_bytes: u64) -> u64 {
    (needed_bytes + PREALLOCATE_STEP_BYTES).min(segment_bytes.max(needed_bytes))
}

/// Rounds down to a page boundary.
pub(crate) fn align_down(position: u64) -> u64 {
    position & !(PAGE_BYTES - 1)
}

/// Rounds up to a page boundary.
pub(crate) fn align_up(position: u64) -> u64 {
    align_down(position + PAGE_BYTES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_alignment_helpers_work() {
        assert!(LogConfig::default().validate().is_ok());
        assert_eq!(align_down(4097), 4096);
        assert_eq!(align_up(4097), 8192);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(0), 0);
        let bad = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
