//! Compressing and decompressing the records section of a v2 batch with Kafka's four codecs.
//!
//! Formats are the ones the Java client and librdkafka write: gzip (RFC 1952), snappy in xerial framing
//! on write (what the Java client writes, readable by every client) and both xerial and raw on read
//! (librdkafka writes raw), LZ4 *frame* format (64 KiB independent blocks, as `KafkaLZ4BlockOutputStream`),
//! and zstd frames.

use super::{Compression, RecordsError};
use std::io::{Read, Write};

/// Largest decompressed records section we accept. Bounds memory against a decompression bomb; well above
/// any real batch (brokers cap a batch at `message.max.bytes`, 1 MiB by default, and compression ratios of
/// more than 100x are rare).
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// xerial snappy-java stream header: magic `\x82SNAPPY\0`, version 1, minimum compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// Uncompressed bytes per xerial block (snappy-java's default block size).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// zstd level the Java client uses by default (`compression.zstd.level` = 3).
const ZSTD_LEVEL: i32 = 3;

/// Compresses a records section with `codec`. `Compression::None` copies.
pub fn compress(codec: Compression, plain: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let io_error = |source: std::io::Error| RecordsError::Compress { codec, source };
    match codec {
        Compression::None => Ok(plain.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(plain.len() / 2),
                flate2::Compression::default(),
            );
            encoder.write_all(plain).map_err(io_error)?;
            encoder.finish().map_err(io_error)
        }
        Compression::Snappy => compress_xerial_snappy(plain).map_err(io_error),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(plain.len() / 2),
            );
            encoder.write_all(plain).map_err(io_error)?;
            encoder
                .finish()
                .map_err(|error| io_error(std::io::Error::other(error)))
        }
        Compression::Zstd => zstd::bulk::compress(plain, ZSTD_LEVEL).map_err(io_error),
    }
}

fn compress_xerial_snappy(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out =
        Vec::with_capacity(XERIAL_HEADER.len() + snap::raw::max_compress_len(plain.len()));
    out.extend_from_slice(XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for block in plain.chunks(XERIAL_BLOCK_BYTES) {
        let compressed = encoder.compress_vec(block).map_err(std::io::Error::other)?;
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

/// Decompresses a records section, refusing output larger than `MAX_DECOMPRESSED_BYTES`.
pub fn decompress(codec: Compression, compressed: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let failed = |reason: String| RecordsError::Decompress { codec, reason };
    match codec {
        Compression::None => Ok(compressed.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(compressed)),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(compressed)),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(compressed).map_err(|e| failed(e.to_string()))?;
            read_bounded(codec, decoder)
        }
        Compression::Snappy => {
            if compressed.starts_with(&XERIAL_HEADER[..8]) {
                decompress_xerial_snappy(codec, compressed)
            } else {
                let mut out = Vec::new();
                snappy_raw_into(codec, compressed, &mut out)?;
                Ok(out)
            }
        }
    }
}

fn read_bounded(codec: Compression, reader: impl Read) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| RecordsError::Decompress {
            codec,
            reason: error.to_string(),
        })?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(RecordsError::DecompressedTooLarge {
            max_bytes: MAX_DECOMPRESSED_BYTES,
        });
    }
    Ok(out)
}

/// Appends the raw-snappy decompression of `block` to `out`, within the size bound.
fn snappy_raw_into(
    codec: Compression,
    block: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RecordsError> {
    let failed = |error: snap::Error| RecordsError::Decompress {
        codec,
        reason: error.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(failed)?;
    if out.len() + len > MAX_DECOMPRESSED_BYTES {
        return Err(RecordsError::DecompressedTooLarge {
            max_bytes: MAX_DECOMPRESSED_BYTES,
        });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(failed)?;
    Ok(())
}

fn decompress_xerial_snappy(
    codec: Compression,
    compressed: &[u8],
) -> Result<Vec<u8>, RecordsError> {
    if compressed.len() < XERIAL_HEADER.len() {
        return Err(RecordsError::Decompress {
            codec,
            reason: "truncated xerial header".into(),
        });
    }
    let mut rest = &compressed[XERIAL_HEADER.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len_bytes, tail)) = rest.split_first_chunk::<4>() else {
            return Err(RecordsError::Decompress {
                codec,
                reason: "truncated xerial block length".into(),
            });
        };
        let block_len = u32::from_be_bytes(*len_bytes) as usize;
        if block_len > tail.len() {
            return Err(RecordsError::Decompress {
                codec,
                reason: "truncated xerial block".into(),
            });
        }
        snappy_raw_into(codec, &tail[..block_len], &mut out)?;
        rest = &tail[block_len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn java_xerial_snappy_sample_decodes() {
        // Bytes a Java producer wrote (snappy-java framing), body of a one-record batch with value "sdfdsf".
        let java = b"\x82\x53\x4e\x41\x50\x50\x59\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        let plain = decompress(Compression::Snappy, java).unwrap();
        assert_eq!(plain, b"\x18\x00\x00\x00\x01\x0csdfdsf\x00");
        // And our writer produces the same bytes for the same input.
        assert_eq!(compress(Compression::Snappy, &plain).unwrap(), java);
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_decodes() {
        let plain = b"hello hello hello hello raw snappy".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw).unwrap(), plain);
    }

    #[test]
    fn lz4_output_is_frame_format() {
        let compressed = compress(Compression::Lz4, b"abc").unwrap();
        // LZ4 frame magic number 0x184D2204, little endian.
        assert_eq!(&compressed[..4], &[0x04, 0x22, 0x4d, 0x18]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL.into_iter().skip(1) {
            assert!(
                decompress(codec, b"\x82SNAPPY\0garbage-garbage").is_err(),
                "{codec:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(plain in proptest::collection::vec(any::<u8>(), 0..100_000)) {
            for codec in ALL {
                let compressed = compress(codec, &plain).unwrap();
                prop_assert_eq!(&decompress(codec, &compressed).unwrap(), &plain);
            }
        }
    }
}
