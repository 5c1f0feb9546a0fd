//! Record validation of produced batches: [`RecordValidator`] walks the records of a batch that
//! already passed `batch::validate_produce_batch` (header, length, CRC), in place when the batch
//! is uncompressed, through a streaming decompressor and a fixed window otherwise. Nothing is
//! decoded into objects and nothing is allocated per record; the batch's bytes are only read.
//!
//! Compressed records are decompressed as they are walked, into one window of [`WINDOW_BYTES`]
//! that the validator owns (the broker keeps one validator per shard): the decompressed records
//! are never held whole. The decompressed size is bounded (see [`decompressed_limit`]): a batch
//! may always decompress to `max.message.bytes` (what an uncompressed batch may hold), beyond that
//! only within [`MAX_DECOMPRESSION_RATIO`] of its compressed size and never past
//! `compression::MAX_DECOMPRESSED_BYTES`. A batch crossing the bound is refused when the bound is
//! crossed, not after.

use thiserror::Error;

use super::compression::{DecompressScratch, Decompressor, MAX_DECOMPRESSED_BYTES};
use super::walk::{
    walk_records, RecordBytes, RecordFault, SliceBytes, SourceFault, WalkError, WalkPlan,
};
use super::RecordsError;
use crate::batch::{BatchHeader, Compression, BATCH_HEADER_BYTES};

/// Decompressed bytes walked at a time (the validator's window).
pub const WINDOW_BYTES: usize = 64 * 1024;

/// Largest ratio of decompressed to compressed size accepted once a batch decompresses past
/// `max.message.bytes`. Real payloads compress 2-20x (JSON, logs) and lz4 and snappy cannot
/// exceed about 255x and 21x; only gzip of constant data (up to about 1030x) and zstd of very
/// repetitive data reach past 1000x, which is where decompression bombs live. Kafka itself has no
/// such bound. At this ratio a 1 MiB batch may expand to 1000 MiB, but the absolute
/// `MAX_DECOMPRESSED_BYTES` (256 MiB) stops it first.
pub const MAX_DECOMPRESSION_RATIO: u64 = 1000;

/// The most decompressed bytes a batch of `compressed_bytes` may produce, for a topic whose
/// batches may be `max_message_bytes` large: `max_message_bytes` at least, beyond it
/// `MAX_DECOMPRESSION_RATIO` times the compressed size, never more than `MAX_DECOMPRESSED_BYTES`.
pub fn decompressed_limit(compressed_bytes: usize, max_message_bytes: usize) -> u64 {
    let by_ratio = (compressed_bytes as u64).saturating_mul(MAX_DECOMPRESSION_RATIO);
    by_ratio
        .max(max_message_bytes as u64)
        .min(MAX_DECOMPRESSED_BYTES as u64)
}

/// Why a batch's records are refused.
#[derive(Debug, Error)]
pub enum InvalidRecords {
    /// Record `index` (0-based, within the batch) is malformed.
    #[error("record {index}: {fault}")]
    Record { index: u32, fault: RecordFault },
    /// The counted records end before the records section does.
    #[error("the batch holds more than its {record_count} counted records")]
    TrailingBytes { record_count: u32 },
    /// A compressed records section does not decompress, or decompresses past its bound.
    #[error(transparent)]
    Undecodable(RecordsError),
}

impl From<WalkError<std::convert::Infallible>> for InvalidRecords {
    fn from(error: WalkError<std::convert::Infallible>) -> Self {
        match error {
            WalkError::Record { index, fault } => InvalidRecords::Record { index, fault },
            WalkError::TrailingBytes { record_count } => {
                InvalidRecords::TrailingBytes { record_count }
            }
            WalkError::Source(never) => match never {},
        }
    }
}

/// Walks produced batches' records; holds the window and decoder state it reuses (see the module
/// doc). Not shared between threads: the broker keeps one per shard.
pub struct RecordValidator {
    window: Box<[u8]>,
    scratch: DecompressScratch,
}

impl RecordValidator {
    /// A validator with its window allocated.
    pub fn new() -> RecordValidator {
        RecordValidator {
            window: vec![0u8; WINDOW_BYTES].into_boxed_slice(),
            scratch: DecompressScratch::new(),
        }
    }

    /// Checks the records of `batch` (one whole batch that passed
    /// `batch::validate_produce_batch`, whose header is `header`), for a topic whose
    /// `max.message.bytes` is `max_message_bytes`.
    pub fn check(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        max_message_bytes: usize,
    ) -> Result<(), InvalidRecords> {
        debug_assert_eq!(header.total_bytes(), batch.len());
        debug_assert!(
            header.record_count > 0,
            "validate_produce_batch checks the count"
        );
        let plan = WalkPlan {
            record_count: u32::try_from(header.record_count).unwrap_or(0),
            base_timestamp: header.base_timestamp,
        };
        let records = &batch[BATCH_HEADER_BYTES..];
        let codec = match header.compression() {
            Some(Compression::None) => {
                return Ok(walk_records(&mut SliceBytes::new(records), plan)?);
            }
            Some(codec) => codec,
            None => {
                return Err(InvalidRecords::Undecodable(RecordsError::Batch(
                    crate::batch::BatchError::BadCompression(header.attributes & 0x07),
                )))
            }
        };
        let limit = decompressed_limit(records.len(), max_message_bytes);
        let decompressor = Decompressor::new(codec, records, limit, &mut self.scratch)
            .map_err(InvalidRecords::Undecodable)?;
        let mut stream = StreamBytes {
            decompressor,
            window: &mut self.window,
            start: 0,
            end: 0,
            window_at: 0,
            failure: None,
        };
        match walk_records(&mut stream, plan) {
            Ok(()) => Ok(()),
            Err(WalkError::Record { index, fault }) => Err(InvalidRecords::Record { index, fault }),
            Err(WalkError::TrailingBytes { record_count }) => {
                Err(InvalidRecords::TrailingBytes { record_count })
            }
            Err(WalkError::Source(StreamFailed)) => Err(InvalidRecords::Undecodable(
                stream.failure.take().unwrap_or(RecordsError::Decompress {
                    codec,
                    reason: "the stream failed".into(),
                }),
            )),
        }
    }
}

/// The decompressing stream failed; the error itself waits in `StreamBytes::failure`. A
/// zero-sized error keeps every byte read of the walk as cheap as a slice's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamFailed;

/// Decompressed records read through the validator's window.
struct StreamBytes<'w, 'a> {
    decompressor: Decompressor<'a>,
    window: &'w mut [u8],
    /// Unread bytes are `window[start..end]`.
    start: usize,
    end: usize,
    /// Bytes of the stream before `window[0]`.
    window_at: u64,
    /// Why the stream failed, once it has.
    failure: Option<RecordsError>,
}

impl StreamBytes<'_, '_> {
    /// Refills the window once it is used up; false at the end of the data.
    #[cold]
    fn fill(&mut self) -> Result<bool, StreamFailed> {
        debug_assert_eq!(self.start, self.end);
        match self.decompressor.read(self.window) {
            Ok(read) => {
                self.window_at += self.end as u64;
                self.start = 0;
                self.end = read;
                Ok(read > 0)
            }
            Err(error) => {
                self.failure = Some(error);
                Err(StreamFailed)
            }
        }
    }
}

impl RecordBytes for StreamBytes<'_, '_> {
    type Error = StreamFailed;

    #[inline]
    fn position(&self) -> u64 {
        self.window_at + self.start as u64
    }

    #[inline]
    fn next_byte(&mut self) -> Result<u8, SourceFault<StreamFailed>> {
        if self.start == self.end && !self.fill().map_err(SourceFault::Failed)? {
            return Err(SourceFault::End);
        }
        let byte = self.window[self.start];
        self.start += 1;
        Ok(byte)
    }

    fn skip(&mut self, mut len: u64) -> Result<(), SourceFault<StreamFailed>> {
        while len > 0 {
            if self.start == self.end && !self.fill().map_err(SourceFault::Failed)? {
                return Err(SourceFault::End);
            }
            let step = len.min((self.end - self.start) as u64);
            self.start += step as usize;
            len -= step;
        }
        Ok(())
    }

    fn known_left(&self) -> Option<u64> {
        None
    }

    fn at_end(&mut self) -> Result<bool, StreamFailed> {
        if self.start < self.end {
            return Ok(false);
        }
        Ok(!self.fill()?)
    }
}

impl Default for RecordValidator {
    fn default() -> Self {
        RecordValidator::new()
    }
}
