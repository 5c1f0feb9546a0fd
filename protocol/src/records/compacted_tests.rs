//! Reading compacted batches: a batch that kept its base offset and last offset delta but lost
//! records (gapped offset deltas), or all of them (an empty batch kept for producer state), decodes
//! as Kafka's consumer reads it; impossible offset deltas are still refused.

use super::compression::compress;
use super::varint::{put_varint, put_varlong};
use super::*;
use crate::batch::{crc32c_of, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2};

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A batch as a cleaner leaves it: records at `deltas` (key `k<delta>`, value `v<delta>`, timestamp
/// 1000 + delta) within a span of `last_offset_delta + 1` offsets from `base_offset`.
fn gapped(codec: Compression, base_offset: i64, last_offset_delta: i32, deltas: &[i32]) -> Vec<u8> {
    let mut plain = Vec::new();
    for &delta in deltas {
        let key = format!("k{delta}");
        let value = format!("v{delta}");
        let mut body = vec![0u8]; // record attributes
        put_varlong(&mut body, i64::from(delta));
        put_varint(&mut body, delta);
        put_varint(&mut body, key.len() as i32);
        body.extend_from_slice(key.as_bytes());
        put_varint(&mut body, value.len() as i32);
        body.extend_from_slice(value.as_bytes());
        put_varint(&mut body, 0); // no headers
        put_varint(&mut plain, body.len() as i32);
        plain.extend_from_slice(&body);
    }
    let records = match codec {
        Compression::None => plain,
        codec => compress(codec, &plain).unwrap(),
    };
    let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    batch.extend_from_slice(&base_offset.to_be_bytes());
    let length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32;
    batch.extend_from_slice(&length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes()); // CRC, set below
    batch.extend_from_slice(&codec.id().to_be_bytes());
    batch.extend_from_slice(&last_offset_delta.to_be_bytes());
    batch.extend_from_slice(&1000i64.to_be_bytes());
    batch.extend_from_slice(&(1000 + i64::from(last_offset_delta)).to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&(deltas.len() as i32).to_be_bytes());
    batch.extend_from_slice(&records);
    let crc = crc32c_of(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn gapped_batches_decode_with_their_own_offsets_in_every_codec() {
    for codec in ALL {
        let mut fetch = gapped(codec, 100, 9, &[0, 3, 9]);
        fetch.extend(gapped(codec, 110, 4, &[2]));
        let decoded = decode_records(&fetch).unwrap();
        let seen: Vec<(i64, &[u8], &[u8], i64)> = decoded
            .iter()
            .map(|r| {
                (
                    r.offset,
                    r.key.as_deref().unwrap(),
                    r.value.as_deref().unwrap(),
                    r.timestamp_ms,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (100, &b"k0"[..], &b"v0"[..], 1000),
                (103, b"k3", b"v3", 1003),
                (109, b"k9", b"v9", 1009),
                (112, b"k2", b"v2", 1002),
            ],
            "{codec:?}"
        );
    }
}

#[test]
fn an_empty_compacted_batch_yields_no_records() {
    let mut fetch = gapped(Compression::None, 0, 4, &[]);
    fetch.extend(gapped(Compression::None, 5, 0, &[0]));
    let decoded = decode_records(&fetch).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].offset, 5);
}

#[test]
fn offset_deltas_out_of_span_or_out_of_order_are_refused() {
    for codec in ALL {
        for deltas in [&[0, 5][..], &[2, 2], &[3, 1], &[-1, 0]] {
            let batch = gapped(codec, 0, 4, deltas);
            assert!(
                matches!(
                    decode_records(&batch),
                    Err(RecordsError::BadOffsetDelta { .. })
                ),
                "{codec:?} deltas {deltas:?}"
            );
        }
    }
}

#[test]
fn more_records_than_the_offset_span_is_refused() {
    let batch = gapped(Compression::None, 0, 1, &[0, 1, 2]);
    assert!(matches!(
        decode_records(&batch),
        Err(RecordsError::Batch(
            crate::batch::BatchError::BadRecordCount { .. }
        ))
    ));
}
