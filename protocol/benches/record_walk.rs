//! What the produce-side record walk costs, in CPU time per byte and per record: validates 1 MiB
//! batches of 100 B and 1 KiB records, uncompressed (the walk in place) and lz4/zstd (streamed
//! through the validator's window), next to the CRC32C check every batch already pays, and prints
//! the fastest of several runs.
//!
//!   cargo bench -p ringbroker-protocol --bench record_walk
//!
//! The bench's values are random letters, as ringbroker-bench's (lz4 barely shrinks them, zstd
//! saves about 40%). End-to-end throughput and broker CPU per GB: `bench/scripts/validation-ab.sh`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ringbroker_protocol::batch::BATCH_HEADER_BYTES;
use ringbroker_protocol::batch::{self, BatchHeader, Compression};
use ringbroker_protocol::records::compression::{DecompressScratch, Decompressor};
use ringbroker_protocol::records::{BatchBuilder, Record, RecordValidator};

/// Bytes of records per batch (a producer's `batch.size` of 1 MiB).
const BATCH_PAYLOAD_BYTES: usize = 1 << 20;
/// Timed runs per case; the fastest is reported (the others carry scheduler noise).
const RUNS: usize = 7;
/// Batches per timed run.
const BATCHES_PER_RUN: usize = 200;

fn batch(codec: Compression, record_bytes: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut builder = BatchBuilder::new(codec);
    let mut value = vec![0u8; record_bytes];
    for _ in 0..BATCH_PAYLOAD_BYTES / record_bytes {
        for byte in value.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = b'A' + (state % 26) as u8;
        }
        builder
            .push(&Record {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp_ms: 1_700_000_000_000,
            })
            .expect("push");
    }
    builder.finish().expect("finish").to_vec()
}

fn fastest(mut run: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..BATCHES_PER_RUN {
                run();
            }
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let mut validator = RecordValidator::new();
    let mut scratch = DecompressScratch::new();
    let mut window = vec![0u8; 64 << 10];
    println!("| records | codec | batch bytes | CRC32C check | decompression alone | record walk (with decompression) | walk per record | walk s/GB payload |");
    println!("|---|---|---|---|---|---|---|---|");
    for record_bytes in [100usize, 1024] {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let bytes = batch(codec, record_bytes);
            let header = BatchHeader::parse(&bytes).expect("header");
            let records = header.record_count as f64;
            let crc = fastest(|| {
                black_box(batch::validate_produce_batch(black_box(&bytes)).is_ok());
            });
            let inflate = if codec == Compression::None {
                Duration::ZERO
            } else {
                fastest(|| {
                    let records = &bytes[BATCH_HEADER_BYTES..];
                    let mut reader = Decompressor::new(codec, records, 256 << 20, &mut scratch)
                        .expect("decompressor");
                    while reader.read(&mut window).expect("read") > 0 {}
                    black_box(reader.produced());
                })
            };
            let walk = fastest(|| {
                let verdict = validator.check(&header, black_box(&bytes), 1_048_588);
                black_box(verdict.is_ok());
            });
            let per_batch = |d: Duration| d.as_secs_f64() / BATCHES_PER_RUN as f64;
            println!(
                "| {record_bytes} B | {codec:?} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} ns | {:.3} |",
                bytes.len(),
                per_batch(crc) * 1e6,
                per_batch(inflate) * 1e6,
                per_batch(walk) * 1e6,
                per_batch(walk) / records * 1e9,
                per_batch(walk) / BATCH_PAYLOAD_BYTES as f64 * 1e9,
            );
        }
    }
}
