//! Client-side Kafka v2 record batches: building them for Produce (`BatchBuilder`), decoding Fetch
//! answers into records (`decode_records`), the codecs (`compression`) and the Java client's default
//! partitioner (`murmur2`, `partition_for_key`).
//!
//! The broker stores batches as sent and decodes records only where Kafka requires it (the keys of
//! records produced to compacted topics, the cleaner, the group offsets replay); this module also
//! serves the tools and the bench. Header parsing and CRC checks come from `crate::batch`, shared
//! with the broker.

mod builder;
pub mod compression;
mod decode;
mod partitioner;
pub mod validate;
mod varint;
pub mod walk;

pub use crate::batch::Compression;
pub use builder::{
    BatchBuilder, Record, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE,
};
pub use decode::{control_record_type, decode_records, OwnedRecord};
pub use partitioner::{murmur2, partition_for_key, to_positive};
pub use validate::{InvalidRecords, RecordValidator};

use crate::batch::BatchError;

/// Errors building or decoding record batches.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// `finish` was called with no record pushed.
    #[error("cannot encode an empty record batch: push at least one record")]
    EmptyBatch,
    /// The batch would exceed `MAX_BATCH_BYTES`.
    #[error(
        "record batch would exceed {max_bytes} bytes: send fewer or smaller records per batch"
    )]
    BatchTooLarge { max_bytes: usize },
    /// The batch would exceed `MAX_BATCH_RECORDS`.
    #[error("record batch would exceed {max_records} records")]
    TooManyRecords { max_records: usize },
    /// The batch header or CRC is invalid.
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    /// Record data ended early.
    #[error("record data truncated in {0}")]
    Truncated(&'static str),
    /// A varint ran past its maximum length.
    #[error("malformed varint in record data")]
    BadVarint,
    /// A length or count field is out of range.
    #[error("invalid {what} {len} in record data")]
    BadLength { len: i64, what: &'static str },
    /// A record's offset delta is outside its batch's span or not above the previous record's.
    #[error(
        "record offset delta {delta} is invalid (previous {previous:?}, batch last offset delta {last_offset_delta})"
    )]
    BadOffsetDelta {
        delta: i64,
        previous: Option<i64>,
        last_offset_delta: i32,
    },
    /// Bytes were left after the batch's declared records.
    #[error("{bytes} unexpected bytes after the last record of a batch")]
    TrailingBytes { bytes: usize },
    /// Compression failed (I/O on an in-memory buffer: only on allocation-level failures).
    #[error("{codec:?} compression failed: {source}")]
    Compress {
        codec: Compression,
        source: std::io::Error,
    },
    /// Decompressing a batch failed: the data is corrupt or not in the codec's format.
    #[error("{codec:?} decompression failed: {reason}")]
    Decompress { codec: Compression, reason: String },
    /// A batch decompressed to more than `compression::MAX_DECOMPRESSED_BYTES`.
    #[error("decompressed batch exceeds {max_bytes} bytes")]
    DecompressedTooLarge { max_bytes: usize },
}

/// Parses a codec by its Kafka config name (`compression.type`): none, gzip, snappy, lz4, zstd.
pub fn parse_compression(name: &str) -> Option<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Kafka's config name of a codec.
pub fn compression_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

#[cfg(test)]
mod compacted_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod validate_tests;
