//! The record walker against the record builder: every batch the builder makes passes, in every
//! codec; each lie the hostile-input suite tells is refused with the record it is about; and
//! arbitrary mutations never panic, and whatever they leave that the walker accepts, the client
//! decoder reads back as exactly the records the header counts.

use super::tests::{self, input_strategy, text, Input, ALL};
use super::validate::{
    decompressed_limit, InvalidRecords, RecordValidator, MAX_DECOMPRESSION_RATIO,
};
use super::walk::{Field, RecordFault};
use super::*;
use crate::batch::{self, crc32c_of, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use proptest::prelude::*;

/// max.message.bytes of the checks below (Kafka's default).
const MAX_MESSAGE_BYTES: usize = 1_048_588;

/// A batch built by the record builder, as bytes the tests may patch.
fn build(codec: Compression, inputs: &[Input]) -> Vec<u8> {
    tests::build(codec, inputs).to_vec()
}

/// The validator's verdict on a whole batch.
fn check(batch: &[u8]) -> Result<(), InvalidRecords> {
    let header = BatchHeader::parse(batch).expect("header");
    RecordValidator::new().check(&header, batch, MAX_MESSAGE_BYTES)
}

/// An uncompressed batch around a hand-written records section: the header counts `count`
/// records numbered 0..count, and the CRC and length are right, so only the records lie.
fn raw_batch(records: &[u8], count: i32) -> Vec<u8> {
    let mut batch = batch::build_simple_batch(1_700_000_000_000, &[b"x"]);
    batch.truncate(BATCH_HEADER_BYTES);
    batch.extend_from_slice(records);
    set_count(&mut batch, count);
    reframe(&mut batch);
    batch
}

fn set_count(batch: &mut [u8], count: i32) {
    batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
}

/// Sets the batch length and CRC for the bytes as they are.
fn reframe(batch: &mut [u8]) {
    let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c_of(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn varint(value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put_varlong(&mut out, value);
    out
}

/// One record: attributes, timestamp delta 0, the offset delta, key, value, headers; `length`
/// overrides the true length prefix.
fn record(
    offset_delta: i64,
    key: &[u8],
    value: &[u8],
    header_count: i64,
    length: Option<i64>,
) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(varint(0));
    body.extend(varint(offset_delta));
    body.extend(key);
    body.extend(value);
    body.extend(varint(header_count));
    let mut out = varint(length.unwrap_or(body.len() as i64));
    out.extend(body);
    out
}

fn plain(offset_delta: i64) -> Vec<u8> {
    let value = [varint(1), b"v".to_vec()].concat();
    record(offset_delta, &varint(-1), &value, 0, None)
}

fn record_fault(result: Result<(), InvalidRecords>) -> (u32, RecordFault) {
    match result {
        Err(InvalidRecords::Record { index, fault }) => (index, fault),
        other => panic!("expected a record fault, got {other:?}"),
    }
}

#[test]
fn the_hostile_suites_lies_are_refused_with_their_record() {
    let value = [varint(1), b"v".to_vec()].concat();
    let huge_key = [varint(i64::from(i32::MAX)), b"k".to_vec()].concat();
    let (index, fault) = record_fault(check(&raw_batch(
        &[plain(0), record(1, &huge_key, &value, 0, None)].concat(),
        2,
    )));
    assert_eq!(index, 1);
    assert!(
        matches!(
            fault,
            RecordFault::PastRecord {
                field: Field::Key,
                ..
            }
        ),
        "{fault}"
    );

    let (_, fault) = record_fault(check(&raw_batch(
        &record(0, &varint(-1), &value, 1_000_000_000, None),
        1,
    )));
    assert!(
        matches!(
            fault,
            RecordFault::PastRecord {
                field: Field::HeaderCount,
                ..
            }
        ),
        "{fault}"
    );

    let (_, fault) = record_fault(check(&raw_batch(
        &record(0, &varint(-1), &value, 0, Some(-5)),
        1,
    )));
    assert!(matches!(
        fault,
        RecordFault::Negative {
            field: Field::RecordLength,
            value: -5
        }
    ));

    // The count says three, two records follow: the third is missing.
    let two = [plain(0), plain(1)].concat();
    assert_eq!(
        record_fault(check(&raw_batch(&two, 3))),
        (2, RecordFault::Truncated)
    );
    // The count says one, two records follow.
    assert!(matches!(
        check(&raw_batch(&two, 1)),
        Err(InvalidRecords::TrailingBytes { record_count: 1 })
    ));
    // A record whose length runs past the end of the batch.
    let (_, fault) = record_fault(check(&raw_batch(
        &record(0, &varint(-1), &value, 0, Some(200)),
        1,
    )));
    assert_eq!(fault, RecordFault::Truncated);
    // Offsets out of order, a null header key, a varint that never ends, a short length.
    assert!(matches!(
        record_fault(check(&raw_batch(&[plain(0), plain(5)].concat(), 2))),
        (
            1,
            RecordFault::OffsetDelta {
                expected: 1,
                found: 5
            }
        )
    ));
    let null_header_key = [varint(-1), varint(-1)].concat();
    let mut with_header = record(0, &varint(-1), &value, 1, None);
    with_header.extend(&null_header_key);
    with_header[0] += 2 * 2; // the two header bytes, zig-zag encoded
    assert!(matches!(
        record_fault(check(&raw_batch(&with_header, 1))).1,
        RecordFault::Negative {
            field: Field::HeaderKey,
            value: -1
        }
    ));
    let endless = [vec![0xff; 6], plain(0)[1..].to_vec()].concat();
    assert_eq!(
        record_fault(check(&raw_batch(&endless, 1))).1,
        RecordFault::BadVarint
    );
    let short = record(0, &varint(-1), &value, 0, Some(3));
    assert!(matches!(
        record_fault(check(&raw_batch(&short, 1))).1,
        RecordFault::LengthMismatch { declared: 3, .. }
    ));
}

#[test]
fn compressed_lies_are_refused_too() {
    for codec in ALL.into_iter().skip(1) {
        // Two good records compressed, but the header counts three.
        let mut batch = build(
            codec,
            &[text("a", 1_700_000_000_000), text("b", 1_700_000_000_000)],
        );
        set_count(&mut batch, 3);
        reframe(&mut batch);
        assert_eq!(
            record_fault(check(&batch)),
            (2, RecordFault::Truncated),
            "{codec:?}"
        );
        // Garbage in the codec's place.
        let mut garbage = build(codec, &[text("a", 1_700_000_000_000)]);
        garbage.truncate(BATCH_HEADER_BYTES);
        garbage.extend((0..300u32).map(|i| (i * 7919 % 253) as u8));
        reframe(&mut garbage);
        assert!(
            matches!(check(&garbage), Err(InvalidRecords::Undecodable(_))),
            "{codec:?}: {:?}",
            check(&garbage)
        );
    }
}

#[test]
fn a_bomb_is_refused_at_its_bound_and_a_large_honest_batch_is_not() {
    // Highly compressible but honest: 4 MiB of text compressed far past max.message.bytes.
    let honest: Vec<Input> = (0..2048)
        .map(|i| {
            text(
                &format!("{{\"id\":{i},\"event\":\"page-view\"}}").repeat(64),
                1_700_000_000_000,
            )
        })
        .collect();
    for codec in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let batch = build(codec, &honest);
        let plain_bytes: usize = honest
            .iter()
            .map(|i| i.value.as_ref().map_or(0, Vec::len))
            .sum();
        assert!(plain_bytes > 2 * MAX_MESSAGE_BYTES);
        assert!(check(&batch).is_ok(), "{codec:?}: {:?}", check(&batch));
    }
    // Zeros: zstd compresses 16 MiB into a few hundred bytes.
    let bomb = build(
        Compression::Zstd,
        &[Input {
            value: Some(vec![0; 16 << 20]),
            ..text("", 1_700_000_000_000)
        }],
    );
    let compressed = bomb.len() - BATCH_HEADER_BYTES;
    assert!(
        ((16 << 20) as u64) > compressed as u64 * MAX_DECOMPRESSION_RATIO,
        "the bomb's ratio"
    );
    assert!(matches!(
        check(&bomb),
        Err(InvalidRecords::Undecodable(RecordsError::DecompressedTooLarge { max_bytes }))
            if max_bytes as u64 == decompressed_limit(compressed, MAX_MESSAGE_BYTES)
    ));
}

#[test]
fn the_decompressed_limit_is_max_message_bytes_then_the_ratio_then_the_cap() {
    assert_eq!(decompressed_limit(10, 1 << 20), 1 << 20);
    assert_eq!(
        decompressed_limit(10 << 10, 1 << 20),
        (10 << 10) * MAX_DECOMPRESSION_RATIO
    );
    assert_eq!(
        decompressed_limit(100 << 20, 1 << 20),
        compression::MAX_DECOMPRESSED_BYTES as u64
    );
}

#[test]
fn a_java_xerial_snappy_batch_passes() {
    // The records section a Java producer wrote (snappy-java framing): one record, value "sdfdsf".
    let java = b"\x82\x53\x4e\x41\x50\x50\x59\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
    let mut batch = build(Compression::Snappy, &[text("sdfdsf", 1_700_000_000_000)]);
    batch.truncate(BATCH_HEADER_BYTES);
    batch.extend_from_slice(java);
    reframe(&mut batch);
    assert!(check(&batch).is_ok(), "{:?}", check(&batch));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_built_batch_passes(
        inputs in proptest::collection::vec(input_strategy(), 1..20),
        codec in proptest::sample::select(ALL.to_vec()),
    ) {
        let batch = build(codec, &inputs);
        prop_assert!(batch::validate_produce_batch(&batch).is_ok());
        prop_assert!(check(&batch).is_ok(), "{:?}", check(&batch));
    }

    #[test]
    fn mutations_are_refused_or_decode_exactly(
        inputs in proptest::collection::vec(input_strategy(), 1..8),
        codec in proptest::sample::select(ALL.to_vec()),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in 0usize..3,
    ) {
        let mut batch = build(codec, &inputs);
        for (at, bits) in flips {
            let at = BATCH_HEADER_BYTES + at % (batch.len() - BATCH_HEADER_BYTES);
            batch[at] ^= bits;
        }
        batch.truncate(batch.len() - cut.min(batch.len() - BATCH_HEADER_BYTES));
        reframe(&mut batch);
        let header = BatchHeader::parse(&batch).expect("header");
        if check(&batch).is_ok() {
            // What the walker accepts, a consumer reads: exactly the counted records, in order.
            let decoded = decode_records(&batch).expect("accepted batches decode");
            prop_assert_eq!(decoded.len(), header.record_count as usize);
            for (index, record) in decoded.iter().enumerate() {
                prop_assert_eq!(record.offset, index as i64);
            }
        }
    }

    #[test]
    fn arbitrary_records_sections_never_panic(
        records in proptest::collection::vec(any::<u8>(), 0..512),
        count in 1i32..50,
        codec in proptest::sample::select(ALL.to_vec()),
    ) {
        let mut batch = raw_batch(&records, count);
        batch[21..23].copy_from_slice(&codec.id().to_be_bytes());
        reframe(&mut batch);
        let _ = check(&batch);
    }
}
