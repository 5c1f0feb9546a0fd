//! Zero-copy view of Kafka v2 record batches: the 61-byte header, validation, and in-place patching.
//!
//! The broker stores batches byte for byte as producers sent them; only the fields that sit before
//! the CRC (base offset, batch length, partition leader epoch, magic) are ever rewritten, so the CRC
//! stays valid and a Fetch can return stored bytes verbatim.
//!
//! Layout (big-endian), offsets from the start of the batch:
//! ```text
//!  0 base_offset i64        8 batch_length i32     12 partition_leader_epoch i32
//! 16 magic i8              17 crc u32 (CRC32C of bytes 21..end)
//! 21 attributes i16        23 last_offset_delta i32 27 base_timestamp i64
//! 35 max_timestamp i64     43 producer_id i64      51 producer_epoch i16
//! 53 base_sequence i32     57 record_count i32     61 records...
//! ```

use thiserror::Error;

/// Bytes before `batch_length` counts: base offset (8) + batch length (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of the whole v2 header, up to and including the record count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record-batch format we accept (Kafka 4 removed v0/v1 message sets).
pub const MAGIC_V2: i8 = 2;
/// Smallest encoded record: attributes(1) + timestamp delta(1) + offset delta(1) + key len(1) +
/// value len(1) + header count(1) + the record's own length varint(1). Bounds `record_count` by
/// the bytes present, so a lying count cannot make anyone allocate per claimed record.
pub const MIN_RECORD_BYTES: usize = 7;

const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
/// The CRC covers everything from the attributes field to the end of the batch.
pub const CRC_START: usize = 21;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec id stored in the attributes, or `None` for ids Kafka does not define (5..=7).
    pub fn from_id(id: i16) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The id written into the attributes field.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Why a byte range is not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("record batch magic {0} is not supported (only v2)")]
    BadMagic(i8),
    #[error("record batch length {0} is out of range")]
    BadLength(i32),
    #[error("record batch CRC mismatch: header says {expected:#010x}, data gives {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch claims {count} records, impossible in {bytes} bytes (last offset delta {last_offset_delta})")]
    BadRecordCount {
        count: i32,
        last_offset_delta: i32,
        bytes: usize,
    },
    #[error("record batch uses unknown compression codec {0}")]
    BadCompression(i16),
    #[error("clients are not allowed to write control records")]
    ControlBatch,
    #[error(
        "invalid sequence number {base_sequence} in a record batch with producer id {producer_id}"
    )]
    MissingSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("a transactional record batch needs a producer id")]
    TransactionalWithoutProducerId,
}

/// The decoded fixed-size header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks that the header is complete, that the magic
    /// is 2 and that the batch length is at least a header's worth; it does NOT check that the
    /// whole batch is present or the CRC (see [`validate_batch`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            // Read the magic early when present: a v0/v1 message set is shorter than a v2 header
            // and deserves the clearer error.
            if buf.len() > OFFSET_MAGIC && buf[OFFSET_MAGIC] as i8 != MAGIC_V2 {
                return Err(BatchError::BadMagic(buf[OFFSET_MAGIC] as i8));
            }
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let magic = buf[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let batch_length = read_i32(buf, OFFSET_BATCH_LENGTH);
        if batch_length < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, 0),
            batch_length,
            partition_leader_epoch: read_i32(buf, OFFSET_LEADER_EPOCH),
            magic,
            crc: read_i32(buf, OFFSET_CRC) as u32,
            attributes: read_i16(buf, OFFSET_ATTRIBUTES),
            last_offset_delta: read_i32(buf, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, OFFSET_BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, OFFSET_MAX_TIMESTAMP),
            producer_id: read_i64(buf, OFFSET_PRODUCER_ID),
            producer_epoch: read_i16(buf, OFFSET_PRODUCER_EPOCH),
            base_sequence: read_i32(buf, OFFSET_BASE_SEQUENCE),
            record_count: read_i32(buf, OFFSET_RECORD_COUNT),
        })
    }

    /// Size of the whole batch on the wire and on disk.
    pub fn total_bytes(&self) -> usize {
        debug_assert!(self.batch_length >= 0);
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The codec, or `None` for an undefined codec id.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True when timestamps are the broker's append time (topic `message.timestamp.type=LogAppendTime`).
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }

    /// True when the producer is idempotent (has a producer id).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// CRC32C (Castagnoli) of a batch, as Kafka computes it: over bytes `21..` (attributes to end).
pub fn crc32c_of(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    crc32c::crc32c(&batch[CRC_START..])
}

/// Validates `buf` as one complete v2 batch as a **producer** must send it (the broker's Produce
/// path): header, length, codec, CRC32C, at least one record, and `last_offset_delta ==
/// record_count - 1` (a producer numbers its records 0..n-1 contiguously, as Kafka's
/// `LogValidator` requires). Record contents are not decoded (they may be compressed).
///
/// Batches read back from a log (Fetch answers, stored segments) may legitimately hold fewer records
/// than their offset span after compaction: check those with [`validate_log_batch`].
pub fn validate_produce_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_frame(buf)?;
    // Kafka requires last_offset_delta == record_count - 1 for batches produced by clients, and a
    // produced batch must hold at least one record.
    let count_ok = header.record_count > 0
        && header.last_offset_delta >= 0
        && header.last_offset_delta == header.record_count - 1;
    check_count(buf, &header, count_ok)?;
    check_crc(buf, header)
}

/// Validates `buf` as one complete v2 batch as it may sit in a **log** (what Fetch returns and
/// consumers read): header, length, codec, CRC32C, and `0 <= record_count <= last_offset_delta + 1`.
/// Log compaction keeps a batch's base offset and last offset delta but drops records, so its
/// offset deltas have gaps; it may even keep a batch with no records at all (Kafka retains the
/// last batch of a producer for its producer state), which a consumer skips. The record offset
/// deltas themselves are checked when the records are decoded (`records::decode_records`).
pub fn validate_log_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_frame(buf)?;
    let count_ok = header.record_count >= 0
        && header.last_offset_delta >= 0
        && i64::from(header.record_count) <= i64::from(header.last_offset_delta) + 1;
    check_count(buf, &header, count_ok)?;
    check_crc(buf, header)
}

/// Kafka's `LogValidator.validateBatch` rules for batches a **client** sends, beyond the shape
/// [`validate_produce_batch`] checks: no control batches (only the transaction coordinator writes
/// markers), an idempotent batch (one with a producer id) carries a base sequence, and a
/// transactional batch carries a producer id. Kept apart from `validate_produce_batch`, which the
/// recovery scan also applies to stored batches.
pub fn check_client_batch(header: &BatchHeader) -> Result<(), BatchError> {
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::MissingSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    if header.is_transactional() && !header.has_producer_id() {
        return Err(BatchError::TransactionalWithoutProducerId);
    }
    Ok(())
}

/// The produce-path check under its historical name: same as [`validate_produce_batch`]. Kept for
/// callers that validate batches they built themselves (tests, the bench); code reading batches
/// back from a log should call [`validate_log_batch`].
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_produce_batch(buf)
}

/// Header, exact length and codec: the checks every batch passes, produced or stored.
fn check_frame(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_bytes() != buf.len() {
        return Err(BatchError::Truncated {
            needed: header.total_bytes(),
            available: buf.len(),
        });
    }
    if header.compression().is_none() {
        return Err(BatchError::BadCompression(
            header.attributes & ATTR_COMPRESSION_MASK,
        ));
    }
    Ok(header)
}

/// Fails with `BadRecordCount` unless `count_ok` holds and an uncompressed batch has room for every
/// claimed record (compressed data can be smaller than the records it holds).
fn check_count(buf: &[u8], header: &BatchHeader, count_ok: bool) -> Result<(), BatchError> {
    let record_bytes = buf.len() - BATCH_HEADER_BYTES;
    let room_ok = header.compression() != Some(Compression::None)
        || (header.record_count.max(0) as usize).saturating_mul(MIN_RECORD_BYTES) <= record_bytes;
    if !count_ok || !room_ok {
        return Err(BatchError::BadRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
            bytes: record_bytes,
        });
    }
    Ok(())
}

fn check_crc(buf: &[u8], header: BatchHeader) -> Result<BatchHeader, BatchError> {
    let actual = crc32c_of(buf);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Iterates the complete batches of a buffer of concatenated batches (a Produce `records` field or
/// a stretch of a segment). Yields `Err` once and stops at the first malformed header; a trailing
/// partial batch ends the iteration and is reported by [`BatchIter::remaining`].
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

/// Iterates the batches in `buf` (see [`BatchIter`]).
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

impl<'a> BatchIter<'a> {
    /// Bytes not consumed as complete batches (a partial trailing batch, or everything from a
    /// malformed one on).
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    /// Byte position of the next batch within the buffer.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.buf[self.position..];
        if rest.len() < BATCH_HEADER_BYTES {
            return None;
        }
        match BatchHeader::parse(rest) {
            Ok(header) => {
                let total = header.total_bytes();
                if total > rest.len() {
                    return None;
                }
                self.position += total;
                Some(Ok((header, &rest[..total])))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Rewrites the base offset. The field precedes the CRC-covered range, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch (also outside the CRC-covered range).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets LogAppendTime semantics: attribute bit 3 and `max_timestamp = now_ms`, then recomputes the
/// CRC (both fields are CRC-covered, see docs/COMPATIBILITY.md trap 3).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    let attributes = read_i16(batch, OFFSET_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c_of(batch);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Test and tool helper: builds a minimal uncompressed v2 batch whose records carry the given
/// values (no keys, no headers). Used by tests across the workspace; real clients build batches
/// with `records::BatchBuilder`.
pub fn build_simple_batch(base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let mut body = Vec::new();
        body.push(0u8); // record attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    let batch_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32;
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes());
    batch.extend_from_slice(&(-1i16).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.extend_from_slice(&(values.len() as i32).to_be_bytes());
    batch.extend_from_slice(&records);
    let crc = crc32c_of(&batch);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Zig-zag varint as Kafka records use it.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn simple_batch_validates_and_reports_fields() {
        let batch = build_simple_batch(1_700_000_000_000, &[b"a", b"bc", b"def"]);
        let header = validate_batch(&batch).expect("valid");
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.total_bytes(), batch.len());
        assert_eq!(header.compression(), Some(Compression::None));
        assert!(!header.has_producer_id());
    }

    #[test]
    fn base_offset_and_epoch_rewrite_keep_crc_valid() {
        let mut batch = build_simple_batch(5, &[b"x"]);
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 7);
        let header = validate_batch(&batch).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.last_offset(), 42);
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut batch = build_simple_batch(5, &[b"x"]);
        set_log_append_time(&mut batch, 99);
        let header = validate_batch(&batch).expect("valid after CRC update");
        assert!(header.timestamp_type_log_append());
        assert_eq!(header.max_timestamp, 99);
    }

    #[test]
    fn flipped_byte_is_a_crc_mismatch() {
        let mut batch = build_simple_batch(5, &[b"hello"]);
        let last = batch.len() - 2;
        batch[last] ^= 0xff;
        assert!(matches!(
            validate_batch(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_magic_and_short_length_are_rejected() {
        let mut batch = build_simple_batch(5, &[b"hello"]);
        batch[OFFSET_MAGIC] = 1;
        assert_eq!(validate_batch(&batch), Err(BatchError::BadMagic(1)));
        let mut batch = build_simple_batch(5, &[b"hello"]);
        batch[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(validate_batch(&batch), Err(BatchError::BadLength(10)));
    }

    #[test]
    fn record_count_lies_are_rejected() {
        let mut batch = build_simple_batch(5, &[b"hello"]);
        batch[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4]
            .copy_from_slice(&1_000_000i32.to_be_bytes());
        assert!(matches!(
            validate_batch(&batch),
            Err(BatchError::BadRecordCount { .. })
        ));
    }

    /// Rewrites the count fields (as a cleaner leaves them) and fixes the CRC.
    fn with_counts(mut batch: Vec<u8>, last_offset_delta: i32, record_count: i32) -> Vec<u8> {
        batch[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&last_offset_delta.to_be_bytes());
        batch[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4]
            .copy_from_slice(&record_count.to_be_bytes());
        let crc = crc32c_of(&batch);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn compacted_batch_is_a_valid_log_batch_but_not_a_valid_produce_batch() {
        // Two records left of an offset span of five.
        let batch = with_counts(build_simple_batch(5, &[b"a", b"b"]), 4, 2);
        let header = validate_log_batch(&batch).expect("compacted batch is valid in a log");
        assert_eq!(header.record_count, 2);
        assert_eq!(header.last_offset(), 4);
        assert!(matches!(
            validate_produce_batch(&batch),
            Err(BatchError::BadRecordCount {
                count: 2,
                last_offset_delta: 4,
                ..
            })
        ));
        assert!(validate_batch(&batch).is_err());
    }

    #[test]
    fn empty_batch_is_valid_only_in_a_log() {
        let mut empty = build_simple_batch(5, &[b"a"])[..BATCH_HEADER_BYTES].to_vec();
        let length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
        empty[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        let empty = with_counts(empty, 3, 0);
        assert_eq!(validate_log_batch(&empty).expect("valid").record_count, 0);
        assert!(matches!(
            validate_produce_batch(&empty),
            Err(BatchError::BadRecordCount { count: 0, .. })
        ));
    }

    #[test]
    fn counts_beyond_the_offset_span_are_rejected_everywhere() {
        let plain = build_simple_batch(5, &[b"a", b"b", b"c"]);
        for (delta, count) in [(1, 3), (-1, 0), (-1, 3), (2, -1)] {
            let batch = with_counts(plain.clone(), delta, count);
            for check in [validate_log_batch, validate_produce_batch] {
                assert!(
                    matches!(check(&batch), Err(BatchError::BadRecordCount { .. })),
                    "delta {delta} count {count}"
                );
            }
        }
        // A produced batch's deltas are contiguous: last_offset_delta must be exactly count - 1.
        let gapped = with_counts(plain, 3, 3);
        assert!(validate_log_batch(&gapped).is_ok());
        assert!(validate_produce_batch(&gapped).is_err());
    }

    #[test]
    fn iterator_yields_complete_batches_and_leaves_partial_tail() {
        let a = build_simple_batch(1, &[b"a"]);
        let b = build_simple_batch(2, &[b"bb", b"cc"]);
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        buf.extend_from_slice(&a[..20]);
        let mut it = batches(&buf);
        let (h1, s1) = it.next().expect("first").expect("ok");
        assert_eq!(h1.record_count, 1);
        assert_eq!(s1, &a[..]);
        let (h2, _) = it.next().expect("second").expect("ok");
        assert_eq!(h2.record_count, 2);
        assert!(it.next().is_none());
        assert_eq!(it.remaining(), 20);
    }

    proptest! {
        #[test]
        fn validate_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = validate_batch(&bytes);
            let _ = validate_log_batch(&bytes);
            for item in batches(&bytes) { let _ = item; }
        }

        #[test]
        fn any_single_byte_flip_in_crc_range_is_detected(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            flip_at in any::<usize>(),
            flip_bits in 1u8..=255,
        ) {
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let mut batch = build_simple_batch(1, &refs);
            prop_assert!(validate_batch(&batch).is_ok());
            let at = CRC_START + flip_at % (batch.len() - CRC_START);
            batch[at] ^= flip_bits;
            prop_assert!(validate_batch(&batch).is_err());
        }
    }
}
