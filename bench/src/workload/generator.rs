//! Pre-built record batches, so that generating data is never what limits a run: a small pool of
//! batches is encoded once (with `ringbroker_protocol::records::BatchBuilder`) and producers only
//! patch timestamps, the send stamp and the CRC before each send.
//!
//! Values are random upper-case letters, drawn afresh for every record (`kafka-producer-perf-test`
//! draws them once and repeats one value). They have no repeated substrings, so LZ-only codecs
//! (lz4, snappy) barely shrink them while entropy coders (gzip, zstd) save about 40%: a fair,
//! rather pessimistic stand-in for real data.

use bytes::Bytes;
use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

use crate::cli;
use crate::error::{BenchError, Result};

/// Bytes a record adds beyond key and value, at most, for the sizes we generate: length, offset and
/// value-length varints (3 each), attributes, timestamp delta, key length, header count (1 each).
pub const RECORD_OVERHEAD_BYTES: usize = 13;
/// Distinct batches per pool: enough that compressed runs do not compress one batch again and again
/// into a broker cache's favour, few enough to stay in the CPU caches for small batches.
pub const POOL_BATCHES: usize = 8;
/// Memory a pool may use; large batches get fewer distinct copies.
pub const POOL_BYTES_MAX: usize = 128 << 20;

/// Each catch-up batch size is this many times the one below it (see [`BatchShape::catch_up_sizes`]).
pub const CATCH_UP_GROWTH: usize = 2;

/// The shape of the generated batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    /// Records per batch.
    pub records_per_batch: usize,
    /// Records that fit in `--batch-size`: the most a paced producer that fell behind puts in one
    /// batch (equal to `records_per_batch` when not paced).
    pub records_per_full_batch: usize,
    /// Value bytes per record.
    pub record_size: usize,
    /// Key bytes per record (0: null key).
    pub key_size: usize,
    /// Codec.
    pub compression: Compression,
}

impl BatchShape {
    /// Records per batch from `--batch-size` (bytes, like Kafka's `batch.size`): what fits, at least
    /// one; with a target rate, no more than arrive within `--linger-ms`.
    pub fn new(args: &cli::RunArgs) -> Self {
        let per_record = args.record_size + args.key_size + RECORD_OVERHEAD_BYTES;
        let header = ringbroker_protocol::batch::BATCH_HEADER_BYTES;
        let full = (args.batch_size.saturating_sub(header) / per_record).max(1);
        let mut records = full;
        if let Some(rate) = args.rate {
            let per_producer = rate / args.producers.max(1) as f64;
            let in_linger = (per_producer * args.linger_ms / 1000.0).ceil().max(1.0);
            records = records.min(in_linger as usize);
        }
        BatchShape {
            records_per_batch: records,
            records_per_full_batch: full,
            record_size: args.record_size,
            key_size: args.key_size,
            compression: codec(args.compression),
        }
    }

    /// Batch sizes (records) a paced producer may send, smallest first: the linger-sized batch, then
    /// [`CATCH_UP_GROWTH`] times more up to a full `--batch-size` batch. A producer that fell behind
    /// its rate (the broker is slow to acknowledge and the in-flight window is full) sends the largest
    /// size that its overdue records fill, as the Java producer's batches keep growing while they wait.
    pub fn catch_up_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.records_per_batch];
        let mut n = self.records_per_batch;
        while n < self.records_per_full_batch {
            n = (n * CATCH_UP_GROWTH).min(self.records_per_full_batch);
            sizes.push(n);
        }
        sizes
    }

    /// The same shape with `records` records per batch.
    pub fn with_records(&self, records: usize) -> BatchShape {
        debug_assert!(records >= 1 && records <= self.records_per_full_batch);
        BatchShape {
            records_per_batch: records,
            ..*self
        }
    }

    /// Key plus value bytes of one batch.
    pub fn payload_bytes(&self) -> u64 {
        (self.records_per_batch * (self.record_size + self.key_size)) as u64
    }

    /// Batches in the pool, bounded by [`POOL_BYTES_MAX`].
    pub fn pool_len(&self) -> usize {
        let approx = (self.payload_bytes() as usize).max(1);
        (POOL_BYTES_MAX / approx).clamp(1, POOL_BATCHES)
    }
}

/// The protocol crate's codec for a command-line choice.
pub fn codec(c: cli::Compression) -> Compression {
    match c {
        cli::Compression::None => Compression::None,
        cli::Compression::Gzip => Compression::Gzip,
        cli::Compression::Snappy => Compression::Snappy,
        cli::Compression::Lz4 => Compression::Lz4,
        cli::Compression::Zstd => Compression::Zstd,
    }
}

/// A small xorshift generator: reproducible data without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill_letters(&mut self, out: &mut [u8]) {
        for b in out {
            *b = b'A' + (self.next() % 26) as u8;
        }
    }
}

/// Builds the pool of batches for one producer (`seed` makes producers differ).
pub fn build_pool(shape: &BatchShape, seed: u64) -> Result<Vec<Bytes>> {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut builder = BatchBuilder::new(shape.compression);
    let mut key = vec![0u8; shape.key_size];
    let mut value = vec![0u8; shape.record_size];
    let mut pool = Vec::with_capacity(shape.pool_len());
    for _ in 0..shape.pool_len() {
        for _ in 0..shape.records_per_batch {
            rng.fill_letters(&mut key);
            rng.fill_letters(&mut value);
            let record = Record {
                key: (shape.key_size > 0).then_some(&key[..]),
                value: Some(&value[..]),
                headers: &[],
                timestamp_ms: 0,
            };
            builder
                .push(&record)
                .map_err(|e| BenchError::Batch(e.to_string()))?;
        }
        pool.push(
            builder
                .finish()
                .map_err(|e| BenchError::Batch(e.to_string()))?,
        );
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use ringbroker_protocol::batch::validate_batch;

    fn args(extra: &[&str]) -> cli::RunArgs {
        let mut argv = vec!["ringbroker-bench", "produce"];
        argv.extend_from_slice(extra);
        match cli::Cli::parse_from(argv).command {
            cli::Command::Produce(a) => a,
            _ => unreachable!("produce parsed"),
        }
    }

    #[test]
    fn batch_size_bounds_records_per_batch() {
        let shape = BatchShape::new(&args(&["--record-size", "100", "--batch-size", "11361"]));
        assert_eq!(shape.records_per_batch, 100);
        let one = BatchShape::new(&args(&["--record-size", "4096", "--batch-size", "100"]));
        assert_eq!(one.records_per_batch, 1);
    }

    #[test]
    fn rate_and_linger_cap_the_batch() {
        let shape = BatchShape::new(&args(&[
            "--rate",
            "10000",
            "--linger-ms",
            "2",
            "--producers",
            "2",
        ]));
        assert_eq!(shape.records_per_batch, 10);
        // 64 KiB of 1 KiB records is 63 records: 10, 20, 40, then the full batch.
        assert_eq!(shape.records_per_full_batch, 63);
        assert_eq!(shape.catch_up_sizes(), vec![10, 20, 40, 63]);
        assert_eq!(shape.with_records(20).payload_bytes(), 20 * 1024);
    }

    #[test]
    fn unpaced_runs_have_one_batch_size() {
        let shape = BatchShape::new(&args(&["--record-size", "100"]));
        assert_eq!(shape.catch_up_sizes(), vec![shape.records_per_batch]);
    }

    #[test]
    fn pool_batches_are_valid_and_sized() {
        let shape = BatchShape::new(&args(&[
            "--record-size",
            "200",
            "--key-size",
            "8",
            "--batch-size",
            "4096",
        ]));
        let pool = build_pool(&shape, 1).expect("pool");
        assert_eq!(pool.len(), POOL_BATCHES);
        for b in &pool {
            let h = validate_batch(b).expect("valid");
            assert_eq!(h.record_count as usize, shape.records_per_batch);
            assert!(b.len() <= 4096);
        }
        assert_ne!(pool[0], pool[1]);
    }

    #[test]
    fn compressed_pools_build() {
        let shape = BatchShape::new(&args(&["--compression", "zstd", "--record-size", "100"]));
        let pool = build_pool(&shape, 2).expect("pool");
        let h = validate_batch(&pool[0]).expect("valid");
        assert!(
            pool[0].len() < shape.payload_bytes() as usize,
            "letters compress"
        );
        assert_eq!(h.record_count as usize, shape.records_per_batch);
    }
}
