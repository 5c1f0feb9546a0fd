//! Walking the batches of a segment file on disk:
//! - `HeaderScanner` reads only batch headers (in windows) to find batch boundaries for reads and
//!   timestamp lookups;
//! - `scan_valid_batches` reads and validates every batch (length, magic, CRC32C, offsets that
//!   grow) to find where the valid data ends, rebuilding the segment's indexes on the way
//!   (recovery). Offsets may jump forward: a follower stores its leader's compacted log, gaps
//!   included, as Kafka's recovery accepts them. Stale batches from before a truncation cannot
//!   follow the valid data: every cut zeroes the file past it (`recovery::zero_after`).

use std::rc::Rc;

use glommio::io::{DmaFile, ReadResult};
use ringbroker_protocol::batch::{validate_log_batch, BatchHeader, BATCH_HEADER_BYTES};

use super::error::StorageError;
use super::segment::Segment;

/// Bytes read at once while validating batches in recovery: large enough to amortise the DMA read,
/// small enough to stay within the executor's io_memory budget (1 MiB).
pub const SCAN_WINDOW_BYTES: u64 = 256 << 10;

/// Bytes read at once while walking headers for a fetch or timestamp lookup: a read starts at most
/// one index interval (4 KiB by default) before its batch, so a few pages cover the walk for small
/// batches without reading data the fetch will send by sendfile anyway.
pub const HEADER_WINDOW_BYTES: u64 = 16 << 10;

/// A batch bigger than this is treated as garbage by recovery rather than read into memory. It is
/// far above any batch a produce request can carry (Kafka's message.max.bytes default is ~1 MiB).
pub const RECOVERY_BATCH_BYTES_MAX: u64 = 256 << 20;

/// A window of file bytes starting at `start`.
struct Window {
    start: u64,
    bytes: ReadResult,
}

impl Window {
    /// The bytes `[position, position + len)` if the window holds them.
    fn slice(&self, position: u64, len: u64) -> Option<&[u8]> {
        let from = usize::try_from(position.checked_sub(self.start)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(from..to)
    }
}

/// Reads `len` bytes at `position` (unaligned reads are fine: glommio aligns internally).
async fn read_window(file: &DmaFile, position: u64, len: u64) -> Result<Window, StorageError> {
    let bytes = file.read_at(position, len as usize).await?;
    Ok(Window {
        start: position,
        bytes,
    })
}

/// Yields (position, header) of consecutive batches in `[position, end)` of a segment whose batches
/// are known to be complete there (below the committed end).
pub(crate) struct HeaderScanner {
    file: Rc<DmaFile>,
    position: u64,
    end: u64,
    window: Option<Window>,
}

impl HeaderScanner {
    pub(crate) fn new(file: Rc<DmaFile>, position: u64, end: u64) -> HeaderScanner {
        HeaderScanner {
            file,
            position,
            end,
            window: None,
        }
    }

    /// Continues at `position` (a batch boundary).
    pub(crate) fn seek(&mut self, position: u64) {
        self.position = position;
    }

    pub(crate) async fn next(&mut self) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let header_bytes = BATCH_HEADER_BYTES as u64;
        if self.end - self.position < header_bytes {
            return Err(self.corrupt("batch header cut by the committed end"));
        }
        let covered = self
            .window
            .as_ref()
            .is_some_and(|window| window.slice(self.position, header_bytes).is_some());
        if !covered {
            let len = HEADER_WINDOW_BYTES.min(self.end - self.position);
            self.window = Some(read_window(&self.file, self.position, len).await?);
        }
        let bytes = self
            .window
            .as_ref()
            .and_then(|window| window.slice(self.position, header_bytes))
            .ok_or_else(|| self.corrupt("short read of a batch header"))?;
        let header = BatchHeader::parse(bytes).map_err(|error| self.corrupt(&error.to_string()))?;
        let total = header.total_bytes() as u64;
        if self.position + total > self.end {
            return Err(self.corrupt("batch runs past the committed end"));
        }
        let at = self.position;
        self.position += total;
        Ok(Some((at, header)))
    }

    fn corrupt(&self, what: &str) -> StorageError {
        StorageError::Corrupt(format!("{what} at position {}", self.position))
    }
}

/// Validates batches from position 0 of `segment`'s file up to `limit`, recording each valid batch in
/// the segment's indexes. Returns the end of the valid prefix: the first torn, corrupt or zeroed
/// batch, or one whose offsets do not grow, ends the scan.
pub(crate) async fn scan_valid_batches(
    file: &DmaFile,
    segment: &mut Segment,
    limit: u64,
    index_interval_bytes: u32,
) -> Result<u64, StorageError> {
    scan_valid_batches_from(file, segment, 0, limit, index_interval_bytes).await
}

/// [`scan_valid_batches`] from `start`, a batch boundary whose batch starts at or after
/// `segment.next_offset` (the indexes already describe everything before it).
pub(crate) async fn scan_valid_batches_from(
    file: &DmaFile,
    segment: &mut Segment,
    start: u64,
    limit: u64,
    index_interval_bytes: u32,
) -> Result<u64, StorageError> {
    let header_bytes = BATCH_HEADER_BYTES as u64;
    debug_assert!(start <= limit);
    let mut position = start;
    let mut window: Option<Window> = None;
    while limit.saturating_sub(position) >= header_bytes {
        if window
            .as_ref()
            .and_then(|w| w.slice(position, header_bytes))
            .is_none()
        {
            let len = SCAN_WINDOW_BYTES.min(limit - position);
            window = Some(read_window(file, position, len).await?);
        }
        let Some(header_slice) = window
            .as_ref()
            .and_then(|w| w.slice(position, header_bytes))
        else {
            break; // short read: the file ends here
        };
        let Ok(header) = BatchHeader::parse(header_slice) else {
            break;
        };
        let total = header.total_bytes() as u64;
        if total > RECOVERY_BATCH_BYTES_MAX || position + total > limit {
            break;
        }
        if window
            .as_ref()
            .and_then(|w| w.slice(position, total))
            .is_none()
        {
            let len = total.max(SCAN_WINDOW_BYTES.min(limit - position));
            window = Some(read_window(file, position, len).await?);
        }
        let Some(batch) = window.as_ref().and_then(|w| w.slice(position, total)) else {
            break;
        };
        // Log rules, not produce rules: a follower stores its leader's compacted batches, which
        // may hold fewer records than their offset span.
        let Ok(valid) = validate_log_batch(batch) else {
            break;
        };
        // Offsets going back are not data this log wrote after what it holds; offsets past what
        // the segment can address are a damaged base offset (outside the CRC), as Kafka's
        // `ensureOffsetInRange` finds.
        let addressable = valid.last_offset() - segment.base_offset <= i64::from(u32::MAX);
        if valid.base_offset < segment.next_offset || !addressable {
            break;
        }
        segment.note_stored_batch(position, &valid, index_interval_bytes);
        position += total;
        glommio::yield_if_needed().await;
    }
    Ok(position)
}
