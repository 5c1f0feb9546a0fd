//! Reading and patching the fixed 61-byte header of Kafka v2 record batches, and the bench's
//! send-time stamp inside the first record's value.
//!
//! The bench never decodes records on the hot path: a consumer counts records from the header and
//! reads the stamp of the first record only; a producer patches timestamps in pre-built batches and
//! recomputes the CRC32C (which covers everything from the attributes on).

use ringbroker_protocol::batch::{self, BatchHeader, Compression, BATCH_HEADER_BYTES, CRC_START};

/// Offset of the CRC field (the four bytes before the CRC-covered range).
const CRC_OFFSET: usize = CRC_START - 4;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;

/// Bytes of the stamp at the front of the first record's value: send time in ns since the Unix
/// epoch, then the spacing in ns between the intended send times of the batch's records.
pub const STAMP_BYTES: usize = 16;

/// The bench's send-time stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Intended send time of the batch's first record, ns since the Unix epoch.
    pub first_ns: u64,
    /// Spacing of the intended send times of consecutive records (0: all sent at once).
    pub spacing_ns: u64,
}

/// Iterates over the whole batches in a fetched `records` field, each with its bytes; stops at a
/// trailing partial batch (normal in Fetch answers) or at the first malformed header.
pub fn batches(records: &[u8]) -> impl Iterator<Item = (BatchHeader, &[u8])> {
    batch::batches(records).map_while(Result::ok)
}

/// Whether a batch's records are compressed.
pub fn is_compressed(header: &BatchHeader) -> bool {
    header.compression() != Some(Compression::None)
}

/// Reads a zigzag varint (Kafka's record fields) at `*pos`.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Where the first record's value starts inside an uncompressed batch, and its length.
pub fn first_value_range(batch: &[u8]) -> Option<(usize, usize)> {
    let header = BatchHeader::parse(batch).ok()?;
    if is_compressed(&header) || header.record_count < 1 {
        return None;
    }
    let mut pos = BATCH_HEADER_BYTES;
    let _record_length = read_varint(batch, &mut pos)?;
    pos += 1; // record attributes
    let _timestamp_delta = read_varint(batch, &mut pos)?;
    let _offset_delta = read_varint(batch, &mut pos)?;
    let key_length = read_varint(batch, &mut pos)?;
    if key_length > 0 {
        pos += usize::try_from(key_length).ok()?;
    }
    let value_length = usize::try_from(read_varint(batch, &mut pos)?).ok()?;
    (pos + value_length <= batch.len()).then_some((pos, value_length))
}

/// Reads the bench's stamp from an uncompressed batch whose first value holds one.
pub fn read_stamp(batch: &[u8]) -> Option<Stamp> {
    let (at, len) = first_value_range(batch)?;
    if len < STAMP_BYTES {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&batch[at..at + 8]);
    let first_ns = u64::from_le_bytes(a);
    a.copy_from_slice(&batch[at + 8..at + 16]);
    Some(Stamp {
        first_ns,
        spacing_ns: u64::from_le_bytes(a),
    })
}

/// Sets base and max timestamps, writes `stamp` at `stamp_at` (the first value's offset, when the
/// batch is uncompressed and the value is large enough), and recomputes the CRC32C.
pub fn patch_batch(
    batch: &mut [u8],
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    stamp_at: Option<usize>,
    stamp: Stamp,
) {
    debug_assert!(BatchHeader::parse(batch).is_ok());
    batch[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_timestamp_ms.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp_ms.to_be_bytes());
    if let Some(at) = stamp_at {
        debug_assert!(at + STAMP_BYTES <= batch.len());
        batch[at..at + 8].copy_from_slice(&stamp.first_ns.to_le_bytes());
        batch[at + 8..at + 16].copy_from_slice(&stamp.spacing_ns.to_le_bytes());
    }
    let crc = batch::crc32c_of(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ringbroker_protocol::batch::validate_batch;
    use ringbroker_protocol::records::{BatchBuilder, Record};

    /// A batch of `n` records built with the protocol crate's builder.
    pub(crate) fn built_batch(
        n: usize,
        key: &[u8],
        value: &[u8],
        compression: Compression,
    ) -> Vec<u8> {
        let mut b = BatchBuilder::new(compression);
        for _ in 0..n {
            let record = Record {
                key: (!key.is_empty()).then_some(key),
                value: Some(value),
                headers: &[],
                timestamp_ms: 1,
            };
            b.push(&record).expect("fits");
        }
        b.finish().expect("builds").to_vec()
    }

    #[test]
    fn iteration_stops_at_a_partial_batch() {
        let mut two = built_batch(3, b"", &[7u8; 32], Compression::None);
        two.extend_from_slice(&built_batch(2, b"k", &[1u8; 32], Compression::None));
        let partial = built_batch(1, b"", &[0u8; 32], Compression::None);
        two.extend_from_slice(&partial[..40]);
        let got: Vec<_> = batches(&two)
            .map(|(h, _)| (h.record_count, h.last_offset()))
            .collect();
        assert_eq!(got, vec![(3, 2), (2, 1)]);
    }

    #[test]
    fn stamp_round_trips_and_crc_is_recomputed() {
        let mut batch = built_batch(4, b"key", &[0u8; 64], Compression::None);
        let (at, len) = first_value_range(&batch).expect("uncompressed");
        assert_eq!(len, 64);
        let stamp = Stamp {
            first_ns: 1_700_000_000_123_456_789,
            spacing_ns: 1000,
        };
        patch_batch(
            &mut batch,
            1_700_000_000_123,
            1_700_000_000_124,
            Some(at),
            stamp,
        );
        validate_batch(&batch).expect("valid after patching");
        assert_eq!(read_stamp(&batch), Some(stamp));
        assert_eq!(
            BatchHeader::parse(&batch).expect("whole").base_timestamp,
            1_700_000_000_123
        );
        batch[at + 20] ^= 1;
        assert!(validate_batch(&batch).is_err());
    }

    #[test]
    fn short_or_compressed_values_carry_no_stamp() {
        assert_eq!(
            read_stamp(&built_batch(1, b"", &[0u8; 8], Compression::None)),
            None
        );
        assert_eq!(
            read_stamp(&built_batch(2, b"", &[0u8; 64], Compression::Lz4)),
            None
        );
    }

    #[test]
    fn compressed_batches_patch_timestamps_only() {
        let mut batch = built_batch(10, b"", &[b'a'; 100], Compression::Zstd);
        patch_batch(
            &mut batch,
            42,
            43,
            None,
            Stamp {
                first_ns: 0,
                spacing_ns: 0,
            },
        );
        let h = validate_batch(&batch).expect("valid");
        assert_eq!((h.base_timestamp, h.max_timestamp), (42, 43));
    }
}
