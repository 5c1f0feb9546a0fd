//! `BatchBuilder`: encodes records into one Kafka v2 record batch, ready for a Produce request.
//!
//! Layout written (all big-endian), per the Kafka protocol's "Record Batch" section:
//! base_offset i64 = 0 | batch_length i32 | partition_leader_epoch i32 = -1 | magic i8 = 2 | crc u32 |
//! attributes i16 | last_offset_delta i32 | base_timestamp i64 | max_timestamp i64 | producer_id i64 |
//! producer_epoch i16 | base_sequence i32 | record_count i32 | records (compressed as a whole).
//! The CRC32C covers attributes..end, so it is computed last.

use super::compression::compress;
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{Compression, RecordsError};
use crate::batch::{BATCH_HEADER_BYTES, CRC_START, LOG_OVERHEAD_BYTES, MAGIC_V2};
use bytes::Bytes;

/// Offset of the CRC field: the four bytes just before the CRC-covered range.
const CRC_OFFSET: usize = CRC_START - 4;
/// Offset of the batch_length field.
const BATCH_LENGTH_OFFSET: usize = 8;
/// Largest batch we build. Kafka brokers refuse batches above `message.max.bytes` (1 MiB default); this
/// bound only guards the i32 length field and memory, the caller's `--batch-size` is the real limit.
pub const MAX_BATCH_BYTES: usize = 512 << 20;
/// Most records in one batch: offset deltas are i32 and Kafka's producer never gets close.
pub const MAX_BATCH_RECORDS: usize = i32::MAX as usize;
/// "No producer id": a non-idempotent producer's batch.
pub const NO_PRODUCER_ID: i64 = -1;
/// "No producer epoch".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// "No sequence".
pub const NO_SEQUENCE: i32 = -1;
/// Producers send -1; the leader stamps its epoch.
const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// One record to append. Borrowed: the builder copies the bytes into the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record key; `None` is a null key (keyless record).
    pub key: Option<&'a [u8]>,
    /// Record value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<&'a [u8]>,
    /// Headers in order; a header value may be null.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    /// Create time in ms since the epoch.
    pub timestamp_ms: i64,
}

/// Accumulates records and produces one v2 record batch (`finish`). Reusable: `finish` empties it.
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    /// Uncompressed records section; compressed as a whole in `finish`.
    records: Vec<u8>,
    record_count: usize,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    /// An empty, non-idempotent batch builder (producer id/epoch/sequence all -1).
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            records: Vec::new(),
            record_count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    /// Sets the idempotent-producer fields of the next batch (from InitProducerId and the per-partition
    /// sequence). Kept across `finish`: the caller advances `base_sequence` by the records it sent.
    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    /// Marks batches as part of a transaction (attribute bit 4).
    pub fn set_transactional(&mut self, transactional: bool) {
        self.transactional = transactional;
    }

    /// The codec `finish` compresses with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Records pushed since the last `finish`.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// True if no record was pushed since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Batch size before compression: an upper estimate of what `finish` returns for compressible
    /// data, exact for `Compression::None`. Producers compare it with their `batch.size`.
    pub fn estimated_bytes(&self) -> usize {
        BATCH_HEADER_BYTES + self.records.len()
    }

    /// Appends one record. Fails only if the batch would exceed `MAX_BATCH_BYTES`/`MAX_BATCH_RECORDS`.
    pub fn push(&mut self, record: &Record<'_>) -> Result<(), RecordsError> {
        if self.record_count == 0 {
            self.base_timestamp_ms = record.timestamp_ms;
            self.max_timestamp_ms = record.timestamp_ms;
        }
        if self.record_count >= MAX_BATCH_RECORDS {
            return Err(RecordsError::TooManyRecords {
                max_records: MAX_BATCH_RECORDS,
            });
        }
        let offset_delta = self.record_count as i32;
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.base_timestamp_ms);
        let body_len = record_body_len(record, timestamp_delta, offset_delta);
        let encoded_len = varint_len(body_len as i32) + body_len;
        if self.estimated_bytes() + encoded_len > MAX_BATCH_BYTES {
            return Err(RecordsError::BatchTooLarge {
                max_bytes: MAX_BATCH_BYTES,
            });
        }
        let start = self.records.len();
        let out = &mut self.records;
        out.reserve(encoded_len);
        put_varint(out, body_len as i32);
        out.push(0); // record attributes: unused in v2
        put_varlong(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_nullable_bytes(out, record.key);
        put_nullable_bytes(out, record.value);
        put_varint(out, record.headers.len() as i32);
        for (key, value) in record.headers {
            put_nullable_bytes(out, Some(key.as_bytes()));
            put_nullable_bytes(out, *value);
        }
        debug_assert_eq!(
            self.records.len() - start,
            encoded_len,
            "record length precomputed wrong"
        );
        self.record_count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
        Ok(())
    }

    /// Encodes the pushed records as one batch (base offset 0) and empties the builder for reuse.
    pub fn finish(&mut self) -> Result<Bytes, RecordsError> {
        if self.record_count == 0 {
            return Err(RecordsError::EmptyBatch);
        }
        let body = match self.compression {
            Compression::None => None,
            codec => Some(compress(codec, &self.records)?),
        };
        let records = body.as_deref().unwrap_or(&self.records);
        let total = BATCH_HEADER_BYTES + records.len();
        if total > MAX_BATCH_BYTES {
            return Err(RecordsError::BatchTooLarge {
                max_bytes: MAX_BATCH_BYTES,
            });
        }
        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= 0x10;
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
        out.extend_from_slice(&((total - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
        out.extend_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, patched below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&((self.record_count - 1) as i32).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&(self.record_count as i32).to_be_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
        out.extend_from_slice(records);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[CRC_OFFSET..CRC_START].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(
            read_i32(&out[BATCH_LENGTH_OFFSET..]) as usize + LOG_OVERHEAD_BYTES,
            out.len()
        );
        self.records.clear();
        self.record_count = 0;
        Ok(Bytes::from(out))
    }
}

fn read_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Bytes of a record after its length prefix.
fn record_body_len(record: &Record<'_>, timestamp_delta: i64, offset_delta: i32) -> usize {
    let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    len += nullable_bytes_len(record.key) + nullable_bytes_len(record.value);
    len += varint_len(record.headers.len() as i32);
    for (key, value) in record.headers {
        len += nullable_bytes_len(Some(key.as_bytes())) + nullable_bytes_len(*value);
    }
    len
}

fn nullable_bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i32) + bytes.len(),
    }
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}
