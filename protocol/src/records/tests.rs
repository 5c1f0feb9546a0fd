//! Build → decode round trips for every codec, cross-checks against the `kafka-protocol` crate's decoder,
//! and the Fetch-answer cases: several batches, a cut-off last batch, control batches, bad CRCs.

use super::*;
use crate::batch::BATCH_HEADER_BYTES;
use bytes::Bytes;
use proptest::prelude::*;

pub(super) const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Owned inputs for a `Record`, so proptest can generate them.
#[derive(Debug, Clone)]
pub(super) struct Input {
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
    pub(super) timestamp_ms: i64,
}

pub(super) fn build(codec: Compression, inputs: &[Input]) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    for input in inputs {
        let headers: Vec<(&str, Option<&[u8]>)> = input
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        builder
            .push(&Record {
                key: input.key.as_deref(),
                value: input.value.as_deref(),
                headers: &headers,
                timestamp_ms: input.timestamp_ms,
            })
            .unwrap();
    }
    builder.finish().unwrap()
}

fn assert_matches(decoded: &[OwnedRecord], inputs: &[Input], first_offset: i64) {
    assert_eq!(decoded.len(), inputs.len());
    for (index, (record, input)) in decoded.iter().zip(inputs).enumerate() {
        assert_eq!(record.offset, first_offset + index as i64);
        assert_eq!(record.timestamp_ms, input.timestamp_ms);
        assert_eq!(record.key.as_deref(), input.key.as_deref());
        assert_eq!(record.value.as_deref(), input.value.as_deref());
        let headers: Vec<(String, Option<Vec<u8>>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(headers, input.headers);
    }
}

pub(super) fn input_strategy() -> impl Strategy<Value = Input> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300));
    (
        bytes(),
        bytes(),
        proptest::collection::vec(("[a-z0-9._-]{0,12}", bytes()), 0..4),
        1_600_000_000_000i64..1_800_000_000_000,
    )
        .prop_map(|(key, value, headers, timestamp_ms)| Input {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

pub(super) fn text(value: &str, timestamp_ms: i64) -> Input {
    Input {
        key: None,
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp_ms,
    }
}

fn with_base_offset(batch: &Bytes, base_offset: i64) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    crate::batch::set_base_offset(&mut bytes, base_offset);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn build_then_decode_round_trips(inputs in proptest::collection::vec(input_strategy(), 1..40)) {
        for codec in ALL {
            let batch = build(codec, &inputs);
            let header = crate::batch::validate_batch(&batch).unwrap();
            prop_assert_eq!(header.record_count as usize, inputs.len());
            prop_assert_eq!(header.compression(), Some(codec));
            prop_assert_eq!(header.max_timestamp, inputs.iter().map(|i| i.timestamp_ms).max().unwrap());
            let decoded = decode_records(&with_base_offset(&batch, 1000)).unwrap();
            assert_matches(&decoded, &inputs, 1000);
        }
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_records(&bytes);
    }

    #[test]
    fn decoding_a_corrupted_batch_never_panics(index in 0usize..200, byte in any::<u8>()) {
        let inputs: Vec<Input> = (0..5).map(|n| text(&format!("value {n}"), 1_700_000_000_000 + n)).collect();
        for codec in ALL {
            let mut batch = build(codec, &inputs).to_vec();
            let at = index % batch.len();
            batch[at] = byte;
            let _ = decode_records(&batch);
        }
    }
}

#[test]
fn kafka_protocol_crate_decodes_our_batches() {
    // An independent decoder: the crate's decoder is fine (only its encoder has known bugs).
    let inputs = vec![
        Input {
            key: Some(b"key-1".to_vec()),
            value: Some(b"value-1".to_vec()),
            headers: vec![("h1".into(), Some(b"v1".to_vec())), ("h2".into(), None)],
            timestamp_ms: 1_700_000_000_123,
        },
        Input {
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_100,
        },
    ];
    for codec in ALL {
        let batch = build(codec, &inputs);
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 2, "{codec:?}");
        let first = &set.records[0];
        assert_eq!(first.offset, 0);
        assert_eq!(first.timestamp, 1_700_000_000_123);
        assert_eq!(first.key.as_deref(), Some(&b"key-1"[..]));
        assert_eq!(first.value.as_deref(), Some(&b"value-1"[..]));
        assert_eq!(first.headers.len(), 2);
        assert_eq!(first.producer_id, -1);
        assert_eq!(set.records[1].offset, 1);
        assert_eq!(set.records[1].timestamp, 1_700_000_000_100);
        assert_eq!(set.records[1].value, None);
    }
}

#[test]
fn several_batches_and_a_cut_off_last_one() {
    let first: Vec<Input> = (0..3).map(|n| text(&format!("a{n}"), 10 + n)).collect();
    let second: Vec<Input> = (0..2).map(|n| text(&format!("b{n}"), 20 + n)).collect();
    let mut fetch = with_base_offset(&build(Compression::Lz4, &first), 5);
    fetch.extend(with_base_offset(&build(Compression::Zstd, &second), 8));
    let third = with_base_offset(&build(Compression::None, &first), 10);
    fetch.extend_from_slice(&third[..third.len() - 3]);
    let decoded = decode_records(&fetch).unwrap();
    let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [5, 6, 7, 8, 9]);
    assert_eq!(decoded[3].value.as_deref(), Some(&b"b0"[..]));
    // A fetch that holds only the start of a batch (or only part of a header) yields nothing.
    assert!(decode_records(&third[..30]).unwrap().is_empty());
    assert!(decode_records(&third[..8]).unwrap().is_empty());
    assert!(decode_records(&[]).unwrap().is_empty());
}

/// Rewrites attributes (and so the CRC) of a built batch.
fn with_attributes(batch: &Bytes, set_bits: i16) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | set_bits;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crate::batch::crc32c_of(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn control_batches_are_skipped() {
    let data = build(Compression::None, &[text("data", 1)]);
    let marker = with_attributes(&build(Compression::None, &[text("marker", 1)]), 0x20 | 0x10);
    let mut fetch = with_base_offset(&data, 0);
    fetch.extend(with_base_offset(&Bytes::from(marker), 1));
    let decoded = decode_records(&fetch).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].value.as_deref(), Some(&b"data"[..]));
}

#[test]
fn log_append_time_uses_the_batch_max_timestamp() {
    let batch = build(
        Compression::Gzip,
        &[text("x", 100), text("y", 300), text("z", 200)],
    );
    let stamped = with_attributes(&batch, 0x08);
    let decoded = decode_records(&stamped).unwrap();
    assert!(decoded.iter().all(|r| r.timestamp_ms == 300));
    let decoded = decode_records(&batch).unwrap();
    let timestamps: Vec<i64> = decoded.iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(timestamps, [100, 300, 200]);
}

#[test]
fn corrupted_batch_is_a_crc_error() {
    let mut batch = build(Compression::None, &[text("payload", 1)]).to_vec();
    let last = batch.len() - 2;
    batch[last] ^= 0xff;
    assert!(matches!(
        decode_records(&batch),
        Err(RecordsError::Batch(_))
    ));
}

#[test]
fn header_fields_are_as_a_java_producer_writes_them() {
    let mut builder = BatchBuilder::new(Compression::Snappy);
    assert!(matches!(builder.finish(), Err(RecordsError::EmptyBatch)));
    builder
        .push(&Record {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
            timestamp_ms: 42,
        })
        .unwrap();
    assert_eq!(builder.record_count(), 1);
    assert!(builder.estimated_bytes() > BATCH_HEADER_BYTES);
    let batch = builder.finish().unwrap();
    let header = crate::batch::validate_batch(&batch).unwrap();
    assert_eq!(header.base_offset, 0);
    assert_eq!(header.partition_leader_epoch, -1);
    assert_eq!(header.magic, 2);
    assert_eq!(header.attributes, 2);
    assert_eq!(header.last_offset_delta, 0);
    assert_eq!((header.base_timestamp, header.max_timestamp), (42, 42));
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (-1, -1, -1)
    );
    assert_eq!(header.total_bytes(), batch.len());
    // finish emptied the builder; it builds the next batch from scratch.
    assert!(builder.is_empty());
    builder.set_producer(7, 1, 40);
    builder
        .push(&Record {
            key: None,
            value: Some(b"w"),
            headers: &[],
            timestamp_ms: 50,
        })
        .unwrap();
    let header = crate::batch::validate_batch(&builder.finish().unwrap()).unwrap();
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (7, 1, 40)
    );
    assert_eq!(header.base_timestamp, 50);
}

#[test]
fn uncompressed_batch_matches_known_bytes() {
    // One record, key null, value "v", timestamp 0: hand-assembled from the protocol spec.
    let mut builder = BatchBuilder::new(Compression::None);
    builder
        .push(&Record {
            key: None,
            value: Some(b"v"),
            headers: &[],
            timestamp_ms: 0,
        })
        .unwrap();
    let batch = builder.finish().unwrap();
    // record: body length 7 (zig-zag 14), attrs 0, ts delta 0, offset delta 0, key -1 (1), value len 1 (2), 'v', 0 headers
    assert_eq!(&batch[BATCH_HEADER_BYTES..], &[14, 0, 0, 0, 1, 2, b'v', 0]);
    assert_eq!(
        &batch[8..12],
        &((BATCH_HEADER_BYTES + 8 - 12) as i32).to_be_bytes()
    );
}

#[test]
fn codec_names_round_trip() {
    for codec in ALL {
        assert_eq!(parse_compression(compression_name(codec)), Some(codec));
    }
    assert_eq!(parse_compression("GZIP"), Some(Compression::Gzip));
    assert_eq!(parse_compression("brotli"), None);
}
