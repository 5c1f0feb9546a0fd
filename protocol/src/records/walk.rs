//! The record walker: checks that the records section of a produced v2 batch really holds the
//! records its header claims, as Kafka's `LogValidator` does, without decoding them into objects
//! and without allocating. One forward pass reads each record's length, attributes, timestamp and
//! offset deltas, key and value lengths, header count and header lengths, and skips the bytes
//! between them; lengths are checked against the record's own declared length before anything is
//! skipped, so a lying length costs nothing.
//!
//! The bytes come from a [`RecordBytes`] source: the batch itself for uncompressed records
//! ([`SliceBytes`], in place) or a decompressing stream (`validate::StreamBytes`). The walk is
//! generic over it, so the uncompressed path compiles to plain indexing.
//!
//! What a valid records section is (record layout in `kafka_wire.py` terms):
//! `length:varint attributes:i8 timestamp_delta:varlong offset_delta:varint key_len:varint key
//! value_len:varint value header_count:varint (key_len:varint key value_len:varint value)*`
//! - exactly `record_count` records, ending exactly at the end of the section;
//! - each record's fields end exactly at its declared length (which is not negative);
//! - the offset delta of record `i` is `i` (a producer numbers its records contiguously; Kafka
//!   checks this for compressed batches, and consumers compute offsets from it);
//! - the record's timestamp, base timestamp + delta, fits an i64;
//! - key and value lengths are -1 (null) or fit in the record; header keys are not null; the
//!   header count is not negative and at most what the record's remaining bytes can hold.

use thiserror::Error;

/// Longest encoding of a zig-zag i32: ceil(32 / 7) bytes.
const VARINT_MAX_BYTES: usize = 5;
/// Longest encoding of a zig-zag i64: ceil(64 / 7) bytes.
const VARLONG_MAX_BYTES: usize = 10;
/// Fewest bytes one header takes: a key length and a value length varint.
const MIN_HEADER_BYTES: u64 = 2;

/// Which length field of a record a fault is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    RecordLength,
    Key,
    Value,
    HeaderCount,
    HeaderKey,
    HeaderValue,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::RecordLength => "record length",
            Field::Key => "key length",
            Field::Value => "value length",
            Field::HeaderCount => "header count",
            Field::HeaderKey => "header key length",
            Field::HeaderValue => "header value length",
        })
    }
}

/// What is wrong with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordFault {
    /// The records section ended inside the record (or before it: fewer records than counted).
    #[error("the records end inside this record")]
    Truncated,
    /// A varint runs past its longest encoding.
    #[error("malformed varint")]
    BadVarint,
    /// A length or count that may not be negative is (or a null header key).
    #[error("invalid {field} {value}")]
    Negative { field: Field, value: i32 },
    /// A length or count runs past the end of the record.
    #[error("{field} {value} runs past the end of the record ({left} bytes left)")]
    PastRecord { field: Field, value: i64, left: u64 },
    /// The record's fields do not end where its length says it ends.
    #[error("record length {declared} does not match its fields ({used} bytes)")]
    LengthMismatch { declared: u64, used: u64 },
    /// The offset delta is not the record's index.
    #[error("offset delta {found}, expected {expected} (records are numbered contiguously)")]
    OffsetDelta { expected: u32, found: i32 },
    /// base timestamp + delta overflows.
    #[error("timestamp delta {delta} overflows the base timestamp {base}")]
    TimestampOverflow { base: i64, delta: i64 },
}

/// Why the records of a batch are refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WalkError<E> {
    /// Record `index` (0-based, within its batch) is malformed.
    #[error("record {index}: {fault}")]
    Record { index: u32, fault: RecordFault },
    /// All counted records are there, and then more bytes follow.
    #[error("{record_count} records end before the records section does: the count is wrong or bytes follow")]
    TrailingBytes { record_count: u32 },
    /// The source itself failed (a compressed section that does not decompress, or is too large).
    #[error(transparent)]
    Source(E),
}

/// Why a source could not give the next bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFault<E> {
    /// The records section ends here.
    End,
    /// The source failed (decompression).
    Failed(E),
}

/// Forward-only bytes of a records section.
pub trait RecordBytes {
    /// Error of the source itself (never for a plain slice).
    type Error;

    /// Bytes consumed so far.
    fn position(&self) -> u64;
    /// The next byte.
    fn next_byte(&mut self) -> Result<u8, SourceFault<Self::Error>>;
    /// Skips `len` bytes.
    fn skip(&mut self, len: u64) -> Result<(), SourceFault<Self::Error>>;
    /// Whether every byte was consumed.
    fn at_end(&mut self) -> Result<bool, Self::Error>;
    /// Bytes left, when the source knows without reading (a slice does, a stream does not).
    fn known_left(&self) -> Option<u64>;
}

/// LEB128 of at most `max_bytes`; `Ok(None)` when it runs longer.
#[inline]
fn unsigned<B: RecordBytes + ?Sized>(
    bytes: &mut B,
    max_bytes: usize,
) -> Result<Option<u64>, SourceFault<B::Error>> {
    let first = bytes.next_byte()?;
    if first & 0x80 == 0 {
        return Ok(Some(u64::from(first)));
    }
    let mut value = u64::from(first & 0x7f);
    for index in 1..max_bytes {
        let byte = bytes.next_byte()?;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// The records section of an uncompressed batch, walked in place.
pub struct SliceBytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> SliceBytes<'a> {
    pub fn new(bytes: &'a [u8]) -> SliceBytes<'a> {
        SliceBytes { bytes, at: 0 }
    }
}

impl RecordBytes for SliceBytes<'_> {
    type Error = std::convert::Infallible;

    #[inline]
    fn position(&self) -> u64 {
        self.at as u64
    }

    #[inline]
    fn next_byte(&mut self) -> Result<u8, SourceFault<Self::Error>> {
        let byte = *self.bytes.get(self.at).ok_or(SourceFault::End)?;
        self.at += 1;
        Ok(byte)
    }

    #[inline]
    fn skip(&mut self, len: u64) -> Result<(), SourceFault<Self::Error>> {
        let left = (self.bytes.len() - self.at) as u64;
        if len > left {
            self.at = self.bytes.len();
            return Err(SourceFault::End);
        }
        self.at += len as usize;
        Ok(())
    }

    #[inline]
    fn at_end(&mut self) -> Result<bool, Self::Error> {
        Ok(self.at == self.bytes.len())
    }

    #[inline]
    fn known_left(&self) -> Option<u64> {
        Some((self.bytes.len() - self.at) as u64)
    }
}

/// What the walk checks the records against, from the batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkPlan {
    /// The header's record count (a produced batch holds at least one record).
    pub record_count: u32,
    pub base_timestamp: i64,
}

/// Walks every record of a records section; see the module doc for what is checked.
pub fn walk_records<B: RecordBytes>(
    bytes: &mut B,
    plan: WalkPlan,
) -> Result<(), WalkError<B::Error>> {
    for index in 0..plan.record_count {
        walk_record(bytes, index, plan.base_timestamp).map_err(|fault| match fault {
            Fault::Record(fault) => WalkError::Record { index, fault },
            Fault::Source(error) => WalkError::Source(error),
        })?;
    }
    match bytes.at_end() {
        Ok(true) => Ok(()),
        Ok(false) => Err(WalkError::TrailingBytes {
            record_count: plan.record_count,
        }),
        Err(error) => Err(WalkError::Source(error)),
    }
}

/// A fault of one record, or of the source under it.
enum Fault<E> {
    Record(RecordFault),
    Source(E),
}

impl<E> From<SourceFault<E>> for Fault<E> {
    fn from(fault: SourceFault<E>) -> Self {
        match fault {
            SourceFault::End => Fault::Record(RecordFault::Truncated),
            SourceFault::Failed(error) => Fault::Source(error),
        }
    }
}

impl<E> From<RecordFault> for Fault<E> {
    fn from(fault: RecordFault) -> Self {
        Fault::Record(fault)
    }
}

#[inline]
fn varint<B: RecordBytes>(bytes: &mut B) -> Result<i32, Fault<B::Error>> {
    match unsigned(bytes, VARINT_MAX_BYTES)? {
        Some(raw) => {
            let raw = u32::try_from(raw).map_err(|_| RecordFault::BadVarint)?;
            Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
        }
        None => Err(RecordFault::BadVarint.into()),
    }
}

#[inline]
fn varlong<B: RecordBytes>(bytes: &mut B) -> Result<i64, Fault<B::Error>> {
    match unsigned(bytes, VARLONG_MAX_BYTES)? {
        Some(raw) => Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64)),
        None => Err(RecordFault::BadVarint.into()),
    }
}

/// Bytes left in the record that ends at `end`; a field already past it is a length mismatch.
#[inline]
fn left_in_record<B: RecordBytes>(bytes: &B, start: u64, end: u64) -> Result<u64, RecordFault> {
    end.checked_sub(bytes.position())
        .ok_or(RecordFault::LengthMismatch {
            declared: end - start,
            used: bytes.position() - start,
        })
}

/// Skips a length-prefixed field of the record ending at `end`; -1 (null) is allowed when
/// `nullable`.
#[inline]
fn skip_field<B: RecordBytes>(
    bytes: &mut B,
    field: Field,
    nullable: bool,
    start: u64,
    end: u64,
) -> Result<(), Fault<B::Error>> {
    let len = varint(bytes)?;
    if len < 0 {
        if len == -1 && nullable {
            return Ok(());
        }
        return Err(RecordFault::Negative { field, value: len }.into());
    }
    let left = left_in_record(bytes, start, end)?;
    if len as u64 > left {
        return Err(RecordFault::PastRecord {
            field,
            value: i64::from(len),
            left,
        }
        .into());
    }
    bytes.skip(len as u64)?;
    Ok(())
}

fn walk_record<B: RecordBytes>(
    bytes: &mut B,
    index: u32,
    base_timestamp: i64,
) -> Result<(), Fault<B::Error>> {
    let declared = varint(bytes)?;
    if declared < 0 {
        return Err(RecordFault::Negative {
            field: Field::RecordLength,
            value: declared,
        }
        .into());
    }
    if bytes
        .known_left()
        .is_some_and(|left| declared as u64 > left)
    {
        return Err(RecordFault::Truncated.into());
    }
    let start = bytes.position();
    let end = start + declared as u64;
    let _attributes = bytes.next_byte()?;
    let timestamp_delta = varlong(bytes)?;
    if base_timestamp.checked_add(timestamp_delta).is_none() {
        return Err(RecordFault::TimestampOverflow {
            base: base_timestamp,
            delta: timestamp_delta,
        }
        .into());
    }
    let offset_delta = varint(bytes)?;
    if i64::from(offset_delta) != i64::from(index) {
        return Err(RecordFault::OffsetDelta {
            expected: index,
            found: offset_delta,
        }
        .into());
    }
    skip_field(bytes, Field::Key, true, start, end)?;
    skip_field(bytes, Field::Value, true, start, end)?;
    let header_count = varint(bytes)?;
    if header_count < 0 {
        return Err(RecordFault::Negative {
            field: Field::HeaderCount,
            value: header_count,
        }
        .into());
    }
    // Bounds the loop below by the record's bytes, not by the claimed count (10^9 headers in a
    // 20-byte record is refused here, before a single one is read).
    let left = left_in_record(bytes, start, end)?;
    if header_count as u64 > left / MIN_HEADER_BYTES {
        return Err(RecordFault::PastRecord {
            field: Field::HeaderCount,
            value: i64::from(header_count),
            left,
        }
        .into());
    }
    for _ in 0..header_count {
        skip_field(bytes, Field::HeaderKey, false, start, end)?;
        skip_field(bytes, Field::HeaderValue, true, start, end)?;
    }
    let used = bytes.position() - start;
    if used != declared as u64 {
        return Err(RecordFault::LengthMismatch {
            declared: declared as u64,
            used,
        }
        .into());
    }
    Ok(())
}
