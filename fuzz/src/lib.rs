//! Fuzz harnesses for ringbroker's untrusted-input parsers. Each harness takes arbitrary bytes,
//! runs them through the same protocol-crate calls the broker makes on a socket or a segment, and
//! asserts the invariants those calls promise; any panic, abort or unbounded allocation is a
//! finding. The binaries in `src/bin` wrap them either in afl's `fuzz!` loop or, built with
//! `--no-default-features`, in a plain runner over files (see [`run_files`] and README.md).

pub mod security;

use std::cell::RefCell;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use ringbroker_protocol::batch::{
    self, BatchHeader, Compression, BATCH_HEADER_BYTES, CRC_START, LOG_OVERHEAD_BYTES,
};
use ringbroker_protocol::frame::{self, DEFAULT_MAX_REQUEST_BYTES, FRAME_PREFIX_BYTES};
use ringbroker_protocol::records::compression::{self, DecompressScratch, Decompressor};
use ringbroker_protocol::records::{self, RecordValidator};

/// Byte offset of the CRC field in a v2 batch header: it ends where the CRC-covered range starts.
const CRC_FIELD: usize = CRC_START - 4;

/// Treats `data` as the byte stream of one connection: a run of size-prefixed request frames.
/// Each complete frame goes through the broker's steps (size check, fixed prefix, header
/// decode, then the body codec when the API and version are served). A size the broker would
/// refuse, or a frame cut short by the end of the input, ends the stream as it ends a connection.
/// Returns how many request bodies decoded (the seed tests check that seeds reach the codec).
pub fn frame_and_header(data: &[u8]) -> usize {
    let mut decoded = 0usize;
    let mut rest = data;
    while rest.len() >= FRAME_PREFIX_BYTES {
        let prefix = [rest[0], rest[1], rest[2], rest[3]];
        let size = match frame::frame_size(prefix, DEFAULT_MAX_REQUEST_BYTES) {
            Ok(size) => size,
            Err(_) => return decoded,
        };
        assert!(size > 0 && size <= DEFAULT_MAX_REQUEST_BYTES);
        let after_prefix = &rest[FRAME_PREFIX_BYTES..];
        if size > after_prefix.len() {
            return decoded;
        }
        if one_frame(&after_prefix[..size]) {
            decoded += 1;
        }
        rest = &after_prefix[size..];
    }
    decoded
}

/// One request frame (the bytes after the size prefix). True when its body decoded.
fn one_frame(frame_bytes: &[u8]) -> bool {
    let prefix = match frame::request_prefix(frame_bytes) {
        Ok(prefix) => prefix,
        Err(_) => {
            assert!(frame_bytes.len() < frame::MIN_REQUEST_HEADER_BYTES);
            return false;
        }
    };
    let request = match frame::decode_request(Bytes::copy_from_slice(frame_bytes)) {
        Ok(request) => request,
        Err(_) => return false,
    };
    // The decoded header must agree with the fields read by hand, and the body is what is left.
    assert_eq!(request.api_key as i16, prefix.api_key);
    assert_eq!(request.version(), prefix.api_version);
    assert_eq!(request.correlation_id(), prefix.correlation_id);
    assert!(request.body.len() <= frame_bytes.len() - frame::MIN_REQUEST_HEADER_BYTES);
    let version = request.version();
    ringbroker_protocol::api_versions::is_served(request.api_key, version)
        && decode_body(request.api_key, request.body, version)
}

/// Decodes a request body with the codec the broker's handlers use. Errors are fine; only
/// panics, aborts and runaway allocation are findings. True when the body decoded.
fn decode_body(api_key: ApiKey, mut body: Bytes, version: i16) -> bool {
    let before = body.len();
    let ok = RequestKind::decode(api_key, &mut body, version).is_ok();
    assert!(body.len() <= before);
    ok
}

/// Treats `data` as a buffer of concatenated record batches (a Produce `records` field, a segment
/// stretch or a Fetch answer). The first byte is a switch, the rest the batches: when its low bit
/// is set the CRC of every well-framed batch is recomputed first, so the fuzzer can reach record
/// decoding and decompression instead of stopping at CRC mismatches. Returns how many records
/// `decode_records` produced (the seed tests check that seeds reach record decoding).
pub fn record_batch(data: &[u8]) -> usize {
    let Some((&switch, body)) = data.split_first() else {
        return 0;
    };
    let mut buf = body.to_vec();
    if switch & 1 == 1 {
        fix_crcs(&mut buf);
    }
    let mut iter = batch::batches(&buf);
    let mut consumed = 0usize;
    for item in iter.by_ref() {
        match item {
            Ok((header, bytes)) => {
                assert_eq!(bytes.len(), header.total_bytes());
                consumed += bytes.len();
                let produce = batch::validate_produce_batch(bytes);
                if let Ok(valid) = &produce {
                    assert_eq!(valid.total_bytes(), bytes.len());
                    assert!(valid.record_count > 0);
                    assert_eq!(valid.crc, batch::crc32c_of(bytes));
                }
                // The log check (compacted batches) is the looser one: whatever a producer may
                // send, a log may hold.
                let log = batch::validate_log_batch(bytes);
                if let Ok(valid) = &log {
                    assert!(valid.record_count >= 0);
                    assert!(
                        i64::from(valid.record_count) <= i64::from(valid.last_offset_delta) + 1
                    );
                }
                assert!(produce.is_err() || log.is_ok());
            }
            Err(_) => break,
        }
    }
    assert_eq!(iter.position(), consumed);
    assert_eq!(iter.position() + iter.remaining(), buf.len());
    match records::decode_records(&buf) {
        Ok(decoded) => {
            // Every record comes from a complete batch, each holding at least one byte per record.
            assert!(decoded.len() <= buf.len());
            decoded.len()
        }
        Err(_) => 0,
    }
}

/// `max.message.bytes` the walker harness validates against (Kafka's default).
const MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Decompressed bytes the decompression harness allows: small, so the limit path is reached.
const DECOMPRESS_LIMIT_BYTES: u64 = 1 << 20;
/// Bytes the decompression harness reads at a time (the broker's validation window).
const READ_STEP_BYTES: usize = 64 * 1024;

thread_local! {
    /// One validator (and decoder scratch) for every input, as the broker keeps one per shard:
    /// reuse across inputs is part of what is tested (a zstd context reset between batches).
    static VALIDATOR: RefCell<RecordValidator> = RefCell::new(RecordValidator::new());
    static SCRATCH: RefCell<DecompressScratch> = RefCell::new(DecompressScratch::new());
}

/// The five codecs by id (attributes bits 0-2), `id % 5`.
fn codec_of(byte: u8) -> Compression {
    Compression::from_id(i16::from(byte % 5)).unwrap_or(Compression::None)
}

/// Treats `data` as the records section of one produced batch, the way the broker's produce path
/// sees it after the header and CRC passed: byte 0 picks the codec (`% 5`), bytes 1-2 the record
/// count (big-endian, plus one), the rest is the records section. The harness frames it as a
/// batch with a right length and CRC, then runs `RecordValidator::check`; whatever the walker
/// accepts, the client decoder must read back as exactly the counted records, offsets 0..n.
/// Returns the records accepted (the seed tests check that seeds pass the walk).
pub fn record_walker(data: &[u8]) -> usize {
    let [codec, count_high, count_low, records @ ..] = data else {
        return 0;
    };
    let codec = codec_of(*codec);
    let count = i32::from(u16::from_be_bytes([*count_high, *count_low])) + 1;
    let batch = framed_batch(codec, count, records);
    let Ok(header) = batch::validate_produce_batch(&batch) else {
        // Only a count the bytes cannot hold (uncompressed): refused before the walk.
        assert_eq!(codec, Compression::None);
        return 0;
    };
    let verdict = VALIDATOR.with(|v| v.borrow_mut().check(&header, &batch, MAX_MESSAGE_BYTES));
    if verdict.is_err() {
        return 0;
    }
    let decoded = records::decode_records(&batch).expect("a batch the walker accepts decodes");
    assert_eq!(decoded.len(), count as usize);
    for (index, record) in decoded.iter().enumerate() {
        assert_eq!(record.offset, index as i64);
    }
    decoded.len()
}

/// A produced batch (base offset 0, no producer) around `records`, with a right length and CRC.
fn framed_batch(codec: Compression, count: i32, records: &[u8]) -> Vec<u8> {
    let mut batch = batch::build_simple_batch(1_700_000_000_000, &[b"x"]);
    batch.truncate(BATCH_HEADER_BYTES);
    batch.extend_from_slice(records);
    let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[21..23].copy_from_slice(&codec.id().to_be_bytes());
    batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = batch::crc32c_of(&batch);
    batch[CRC_FIELD..CRC_FIELD + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Treats `data` as a compressed records section: byte 0 picks the codec (`% 4`: gzip, snappy,
/// lz4, zstd), the rest is the payload. Streams it through `compression::Decompressor` with a
/// 1 MiB limit, as the produce path does, and checks the stream against `compression::decompress`
/// (the whole-buffer path the client decoder and the cleaner use): never more than the limit,
/// and the same bytes whenever both succeed. Returns the bytes decompressed.
pub fn decompress(data: &[u8]) -> usize {
    let Some((&selector, compressed)) = data.split_first() else {
        return 0;
    };
    let codec = codec_of(1 + selector % 4);
    let streamed = SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut reader =
            Decompressor::new(codec, compressed, DECOMPRESS_LIMIT_BYTES, &mut scratch)?;
        let mut out = Vec::new();
        let mut step = vec![0u8; READ_STEP_BYTES];
        loop {
            let read = reader.read(&mut step)?;
            if read == 0 {
                return Ok::<_, records::RecordsError>(out);
            }
            out.extend_from_slice(&step[..read]);
            assert!(out.len() as u64 <= DECOMPRESS_LIMIT_BYTES);
            assert_eq!(reader.produced(), out.len() as u64);
        }
    });
    match (streamed, compression::decompress(codec, compressed)) {
        (Ok(streamed), Ok(whole)) => {
            assert_eq!(
                streamed, whole,
                "streaming and whole decompression disagree"
            );
            streamed.len()
        }
        (Ok(streamed), Err(error)) => {
            panic!(
                "streamed {} bytes but the whole decompression failed: {error}",
                streamed.len()
            )
        }
        (Err(_), _) => 0,
    }
}

/// Rewrites the CRC field of each batch whose header parses and which is wholly present.
fn fix_crcs(buf: &mut [u8]) {
    let mut position = 0usize;
    while let Ok(header) = BatchHeader::parse(&buf[position..]) {
        let total = header.total_bytes();
        if total > buf.len() - position {
            return;
        }
        let one = &mut buf[position..position + total];
        let crc = batch::crc32c_of(one);
        one[CRC_FIELD..CRC_FIELD + 4].copy_from_slice(&crc.to_be_bytes());
        position += total;
    }
}

/// Plain-runner entry: runs `target` once on each file named in `args` (directories are walked
/// one level deep, so an afl `crashes/` or `queue/` directory can be replayed whole). Reports
/// each file before running it so a panic's output names the input that caused it.
pub fn run_files(
    target: fn(&[u8]) -> usize,
    args: impl Iterator<Item = String>,
) -> Result<usize, String> {
    let mut count = 0usize;
    for arg in args {
        let path = std::path::PathBuf::from(&arg);
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| format!("{arg}: {e}"))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            entries
        } else {
            vec![path]
        };
        for file in files {
            let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            eprintln!("running {} ({} bytes)", file.display(), data.len());
            target(&data);
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `target` on every committed seed of `dir` and returns (file name, result) pairs.
    fn seeds(dir: &str, target: fn(&[u8]) -> usize) -> Vec<(String, usize)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("in")
            .join(dir);
        let mut out: Vec<(String, usize)> = std::fs::read_dir(&path)
            .expect("seed directory")
            .map(|entry| {
                let entry = entry.expect("seed entry");
                let data = std::fs::read(entry.path()).expect("seed file");
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    target(&data),
                )
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds in {}", path.display());
        out
    }

    #[test]
    fn every_frame_seed_reaches_the_body_codec() {
        for (name, decoded) in seeds("frame_and_header", frame_and_header) {
            let expected = if name == "pipelined" { 2 } else { 1 };
            assert_eq!(decoded, expected, "seed {name}");
        }
    }

    #[test]
    fn every_batch_seed_decodes_records() {
        for (name, records) in seeds("record_batch", record_batch) {
            let expected = match name.as_str() {
                "two_batches" => 3,
                _ => 2,
            };
            assert_eq!(records, expected, "seed {name}");
        }
    }

    #[test]
    fn every_walker_seed_passes_the_walk() {
        for (name, records) in seeds("record_walker", record_walker) {
            assert_eq!(records, 2, "seed {name}");
        }
    }

    #[test]
    fn every_decompress_seed_decompresses() {
        for (name, bytes) in seeds("decompress", decompress) {
            assert!(bytes > 0, "seed {name}");
        }
    }

    #[test]
    fn short_and_refused_inputs_are_handled() {
        assert_eq!(record_walker(&[]), 0);
        assert_eq!(record_walker(&[0, 0xff, 0xff, 1, 2, 3]), 0);
        assert_eq!(decompress(&[]), 0);
        assert_eq!(decompress(&[3, 1, 2, 3]), 0);
        assert_eq!(frame_and_header(&[]), 0);
        assert_eq!(frame_and_header(&[0, 0, 0, 0]), 0);
        assert_eq!(frame_and_header(&[0x7f, 0xff, 0xff, 0xff, 1, 2]), 0);
        assert_eq!(frame_and_header(&[0, 0, 0, 3, 0, 18, 0]), 0);
        assert_eq!(record_batch(&[]), 0);
        assert_eq!(record_batch(&[1; 70]), 0);
    }

    #[test]
    fn served_table_matches_the_engine_rules() {
        assert!(ringbroker_protocol::api_versions::is_served(
            ApiKey::Produce,
            3
        ));
        assert!(!ringbroker_protocol::api_versions::is_served(
            ApiKey::Produce,
            2
        ));
        assert!(!ringbroker_protocol::api_versions::is_served(
            ApiKey::Fetch,
            3
        ));
        assert!(ringbroker_protocol::api_versions::is_served(
            ApiKey::ApiVersions,
            4
        ));
        // SaslHandshake v0 is advertised (librdkafka needs it in the range); the SASL gate closes a
        // connection that sends one (`security::sasl::session`, the `sasl_session` target).
        assert!(ringbroker_protocol::api_versions::is_served(
            ApiKey::SaslHandshake,
            0
        ));
    }
}
