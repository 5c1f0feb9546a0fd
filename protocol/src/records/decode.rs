//! `decode_records`: turns the `records` bytes of a Fetch response partition into owned records.
//!
//! A Fetch answer holds whole v2 batches, except that the last one may be cut off by the broker's
//! max_bytes (that one is skipped: the consumer fetches it again from its offset). Each batch's CRC32C is
//! checked (as the Java consumer does with `check.crcs=true`), control batches (transaction markers) are
//! skipped, compressed batches are decompressed. A batch is returned whole even when the fetch offset lies
//! inside it: callers drop records below the offset they asked for.
//!
//! Batches are checked as log batches (`batch::validate_log_batch`), the way Kafka's consumer reads
//! them: a compacted batch keeps its base offset and last offset delta but may hold fewer records
//! (gaps in the offset deltas), or none at all (kept for producer state; it yields no records).
//! Record offset deltas must still rise strictly and stay within `0..=last_offset_delta`.

use super::compression::{decompress, MAX_DECOMPRESSED_BYTES};
use super::varint::Reader;
use super::RecordsError;
use crate::batch::{self, BatchHeader, Compression, BATCH_HEADER_BYTES, MIN_RECORD_BYTES};
use bytes::Bytes;

/// One record read from a batch, with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Absolute offset: batch base offset + offset delta.
    pub offset: i64,
    /// Create time, or the broker's append time on LogAppendTime topics.
    pub timestamp_ms: i64,
    /// Key; `None` for a null key.
    pub key: Option<Bytes>,
    /// Value; `None` for a null value.
    pub value: Option<Bytes>,
    /// Headers in order. Keys are UTF-8 per the protocol; invalid bytes are replaced (U+FFFD) rather
    /// than failing the whole fetch.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes every complete data batch in `batches` (a Fetch response's `records`), in order.
pub fn decode_records(batches: &[u8]) -> Result<Vec<OwnedRecord>, RecordsError> {
    let mut out = Vec::new();
    // `batches` stops before a trailing partial batch: the broker cut it at its size limit and the
    // rest comes with the next fetch from the consumer's position.
    for item in batch::batches(batches) {
        let (_, bytes) = item?;
        let header = batch::validate_log_batch(bytes)?;
        if header.is_control() {
            continue;
        }
        decode_batch_into(&header, &bytes[BATCH_HEADER_BYTES..], &mut out)?;
    }
    Ok(out)
}

fn decode_batch_into(
    header: &BatchHeader,
    body: &[u8],
    out: &mut Vec<OwnedRecord>,
) -> Result<(), RecordsError> {
    let count = usize::try_from(header.record_count).map_err(|_| RecordsError::BadLength {
        len: i64::from(header.record_count),
        what: "record count",
    })?;
    // One copy per batch into a shared buffer; keys and values are slices of it.
    let plain = match header.compression() {
        Some(Compression::None) => Bytes::copy_from_slice(body),
        Some(codec) => Bytes::from(decompress(codec, body)?),
        None => {
            debug_assert!(false, "validate_log_batch accepted an unknown codec");
            return Err(batch::BatchError::BadCompression(header.attributes & 0x07).into());
        }
    };
    if count > plain.len() / MIN_RECORD_BYTES + 1 {
        return Err(RecordsError::BadLength {
            len: i64::from(header.record_count),
            what: "record count",
        });
    }
    debug_assert!(plain.len() <= MAX_DECOMPRESSED_BYTES.max(body.len()));
    out.reserve(count);
    let mut reader = Reader::new(&plain);
    let mut previous_delta: Option<i64> = None;
    for _ in 0..count {
        let record = decode_record(header, &plain, &mut reader)?;
        let delta = record.offset.wrapping_sub(header.base_offset);
        let in_span = (0..=i64::from(header.last_offset_delta)).contains(&delta);
        if !in_span || previous_delta.is_some_and(|previous| delta <= previous) {
            return Err(RecordsError::BadOffsetDelta {
                delta,
                previous: previous_delta,
                last_offset_delta: header.last_offset_delta,
            });
        }
        previous_delta = Some(delta);
        out.push(record);
    }
    if reader.remaining() != 0 {
        return Err(RecordsError::TrailingBytes {
            bytes: reader.remaining(),
        });
    }
    Ok(())
}

fn decode_record(
    header: &BatchHeader,
    plain: &Bytes,
    reader: &mut Reader<'_>,
) -> Result<OwnedRecord, RecordsError> {
    let body_len = length(reader.varint()?, "record length")?.ok_or(RecordsError::BadLength {
        len: -1,
        what: "record length",
    })?;
    let body_end = reader.position() + body_len;
    if body_len > reader.remaining() {
        return Err(RecordsError::Truncated("record"));
    }
    let _attributes = reader.i8()?;
    let timestamp_delta = reader.varlong()?;
    let offset_delta = reader.varint()?;
    let key = nullable_bytes(plain, reader, "record key")?;
    let value = nullable_bytes(plain, reader, "record value")?;
    let header_count = length(reader.varint()?, "header count")?.unwrap_or(0);
    if header_count > reader.remaining() / 2 {
        return Err(RecordsError::BadLength {
            len: header_count as i64,
            what: "header count",
        });
    }
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = nullable_bytes(plain, reader, "header key")?.ok_or(RecordsError::BadLength {
            len: -1,
            what: "header key",
        })?;
        let value = nullable_bytes(plain, reader, "header value")?;
        headers.push((String::from_utf8_lossy(&key).into_owned(), value));
    }
    if reader.position() != body_end {
        return Err(RecordsError::BadLength {
            len: body_len as i64,
            what: "record length",
        });
    }
    let timestamp_ms = if header.timestamp_type_log_append() {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    };
    Ok(OwnedRecord {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp_ms,
        key,
        value,
        headers,
    })
}

/// A varint length: -1 is null (`None`), other negatives are malformed.
fn length(raw: i32, what: &'static str) -> Result<Option<usize>, RecordsError> {
    match raw {
        -1 => Ok(None),
        len if len < -1 => Err(RecordsError::BadLength {
            len: i64::from(len),
            what,
        }),
        len => Ok(Some(len as usize)),
    }
}

fn nullable_bytes(
    plain: &Bytes,
    reader: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<Bytes>, RecordsError> {
    match length(reader.varint()?, what)? {
        None => Ok(None),
        Some(len) => {
            let range = reader.bytes(len, what)?;
            Ok(Some(plain.slice(range)))
        }
    }
}

/// The control type of a control batch (the second i16 of its first record's key: 0 abort, 1
/// commit for transaction markers), read without decoding the batch (`decode_records` skips
/// control batches, as consumers do). `None` when `batch` is not an uncompressed control batch
/// with such a key; Kafka never compresses control batches.
pub fn control_record_type(batch: &[u8]) -> Option<i16> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.compression() != Some(Compression::None) {
        return None;
    }
    let records = batch.get(BATCH_HEADER_BYTES..header.total_bytes().min(batch.len()))?;
    let mut r = Reader::new(records);
    let _length = r.varint().ok()?;
    let _attributes = r.i8().ok()?;
    let _timestamp_delta = r.varlong().ok()?;
    let _offset_delta = r.varint().ok()?;
    let key_len = usize::try_from(r.varint().ok()?).ok()?;
    let key = records.get(r.bytes(key_len, "control key").ok()?)?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}
