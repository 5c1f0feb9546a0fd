//! Fuzz harnesses for ringbroker's untrusted-input parsers. Each harness takes arbitrary bytes,
//! runs them through the same protocol-crate calls the broker makes on a socket or a segment, and
//! asserts the invariants those calls promise; any panic, abort or unbounded allocation is a
//! finding. The binaries in `src/bin` wrap them either in afl's `fuzz!` loop or, built with
//! `--no-default-features`, in a plain runner over files (see [`run_files`] and README.md).

pub mod served;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use ringbroker_protocol::batch::{self, BatchHeader, CRC_START};
use ringbroker_protocol::frame::{self, DEFAULT_MAX_REQUEST_BYTES, FRAME_PREFIX_BYTES};
use ringbroker_protocol::records;

/// Byte offset of the CRC field in a v2 batch header: it ends where the CRC-covered range starts.
const CRC_FIELD: usize = CRC_START - 4;

/// Treats `data` as the byte stream of one connection: a run of size-prefixed request frames.
/// Each complete frame goes through the broker's steps (size check, fixed prefix, header
/// decode, then the body codec when the API and version are served). A size the broker would
/// refuse, or a frame cut short by the end of the input, ends the stream as it ends a connection.
pub fn frame_and_header(data: &[u8]) {
    let mut rest = data;
    while rest.len() >= FRAME_PREFIX_BYTES {
        let prefix = [rest[0], rest[1], rest[2], rest[3]];
        let size = match frame::frame_size(prefix, DEFAULT_MAX_REQUEST_BYTES) {
            Ok(size) => size,
            Err(_) => return,
        };
        assert!(size > 0 && size <= DEFAULT_MAX_REQUEST_BYTES);
        let after_prefix = &rest[FRAME_PREFIX_BYTES..];
        if size > after_prefix.len() {
            return;
        }
        one_frame(&after_prefix[..size]);
        rest = &after_prefix[size..];
    }
}

/// One request frame (the bytes after the size prefix).
fn one_frame(frame_bytes: &[u8]) {
    let prefix = match frame::request_prefix(frame_bytes) {
        Ok(prefix) => prefix,
        Err(_) => {
            assert!(frame_bytes.len() < frame::MIN_REQUEST_HEADER_BYTES);
            return;
        }
    };
    let request = match frame::decode_request(Bytes::copy_from_slice(frame_bytes)) {
        Ok(request) => request,
        Err(_) => return,
    };
    // The decoded header must agree with the fields read by hand, and the body is what is left.
    assert_eq!(request.api_key as i16, prefix.api_key);
    assert_eq!(request.version(), prefix.api_version);
    assert_eq!(request.correlation_id(), prefix.correlation_id);
    assert!(request.body.len() <= frame_bytes.len() - frame::MIN_REQUEST_HEADER_BYTES);
    let version = request.version();
    if served::is_served(request.api_key, version) {
        decode_body(request.api_key, request.body, version);
    }
}

/// Decodes a request body with the codec the broker's handlers use. Errors are fine; only
/// panics, aborts and runaway allocation are findings.
fn decode_body(api_key: ApiKey, mut body: Bytes, version: i16) {
    let before = body.len();
    if RequestKind::decode(api_key, &mut body, version).is_ok() {
        assert!(body.len() <= before);
    }
}

/// Treats `data` as a buffer of concatenated record batches (a Produce `records` field, a segment
/// stretch or a Fetch answer). The first byte is a switch, the rest the batches: when its low bit
/// is set the CRC of every well-framed batch is recomputed first, so the fuzzer can reach record
/// decoding and decompression instead of stopping at CRC mismatches.
pub fn record_batch(data: &[u8]) {
    let Some((&switch, body)) = data.split_first() else {
        return;
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
                if let Ok(valid) = batch::validate_batch(bytes) {
                    assert_eq!(valid.total_bytes(), bytes.len());
                    assert!(valid.record_count > 0);
                    assert_eq!(valid.crc, batch::crc32c_of(bytes));
                }
            }
            Err(_) => break,
        }
    }
    assert_eq!(iter.position(), consumed);
    assert_eq!(iter.position() + iter.remaining(), buf.len());
    if let Ok(decoded) = records::decode_records(&buf) {
        // Every record comes from a complete batch, each holding at least one byte per record.
        assert!(decoded.len() <= buf.len());
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
pub fn run_files(target: fn(&[u8]), args: impl Iterator<Item = String>) -> Result<usize, String> {
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
