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
/// `Compression::None` copies. Callers that decompress many batches and only look at the bytes
/// once (the broker's produce validation) stream through [`Decompressor`] instead.
pub fn decompress(codec: Compression, compressed: &[u8]) -> Result<Vec<u8>, RecordsError> {
    if codec == Compression::None {
        return Ok(compressed.to_vec());
    }
    let mut scratch = DecompressScratch::new();
    let mut reader = Decompressor::new(
        codec,
        compressed,
        MAX_DECOMPRESSED_BYTES as u64,
        &mut scratch,
    )?;
    let mut out = Vec::new();
    loop {
        let start = out.len();
        out.resize(start + READ_STEP_BYTES, 0);
        let read = reader.read(&mut out[start..])?;
        out.truncate(start + read);
        if read == 0 {
            return Ok(out);
        }
    }
}

/// Bytes `decompress` asks a decoder for at a time.
const READ_STEP_BYTES: usize = 64 * 1024;

/// zstd frames may ask for a decoding window of up to 2^this bytes (16 MiB); a frame asking for more
/// is refused as undecodable. zstd's own default allows 128 MiB, which one hostile frame per batch
/// would make the decoder allocate. 16 MiB covers every level up to 19 (the clients' default is 3;
/// levels 20-22 with an unknown input size need up to 128 MiB and are refused).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Decoder state kept between decompressions: a zstd context (about 100 KiB, created on first use
/// and reused instead of created per batch) and the buffer snappy blocks decompress into. One per
/// thread that decompresses often (the broker keeps one per shard).
#[derive(Default)]
pub struct DecompressScratch {
    zstd: Option<zstd::zstd_safe::DCtx<'static>>,
    snappy_block: Vec<u8>,
}

/// A snappy block buffer larger than this is released after use rather than kept for the next
/// batch (xerial blocks are 32 KiB; a raw snappy block is a whole batch).
const SNAPPY_BLOCK_KEEP_BYTES: usize = 4 << 20;

impl DecompressScratch {
    /// Empty scratch; the zstd context is made when first needed.
    pub fn new() -> DecompressScratch {
        DecompressScratch::default()
    }

    /// The zstd context, limited to [`ZSTD_WINDOW_LOG_MAX`].
    fn zstd(&mut self) -> Result<&mut zstd::zstd_safe::DCtx<'static>, RecordsError> {
        let failed = |reason: &str| RecordsError::Decompress {
            codec: Compression::Zstd,
            reason: reason.to_string(),
        };
        if self.zstd.is_none() {
            let mut context = zstd::zstd_safe::DCtx::try_create()
                .ok_or_else(|| failed("cannot allocate a zstd context"))?;
            context
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
                    ZSTD_WINDOW_LOG_MAX,
                ))
                .map_err(|code| failed(zstd::zstd_safe::get_error_name(code)))?;
            self.zstd = Some(context);
        }
        self.zstd.as_mut().ok_or_else(|| failed("no zstd context"))
    }
}

/// Streams the decompressed bytes of a records section, at most `limit` of them: the output is
/// never held whole (except one snappy block), and reading past `limit` fails instead of going on.
pub struct Decompressor<'a> {
    codec: Compression,
    inner: Inner<'a>,
    produced: u64,
    limit: u64,
}

enum Inner<'a> {
    Gzip(Box<flate2::bufread::MultiGzDecoder<&'a [u8]>>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<&'a [u8]>>),
    Zstd(zstd::stream::read::Decoder<'a, &'a [u8]>),
    Snappy(SnappyReader<'a>),
}

impl<'a> Decompressor<'a> {
    /// A reader of `compressed` (a records section written with `codec`, not `None`).
    pub fn new(
        codec: Compression,
        compressed: &'a [u8],
        limit: u64,
        scratch: &'a mut DecompressScratch,
    ) -> Result<Decompressor<'a>, RecordsError> {
        let inner = match codec {
            // The records section is already plain: nothing to stream.
            Compression::None => {
                return Err(RecordsError::Decompress {
                    codec,
                    reason: "not compressed".into(),
                })
            }
            // Multi-member, as Java's GZIPInputStream reads it.
            Compression::Gzip => {
                Inner::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(compressed)))
            }
            Compression::Lz4 => {
                Inner::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(compressed)))
            }
            Compression::Zstd => Inner::Zstd(zstd::stream::read::Decoder::with_context(
                compressed,
                scratch.zstd()?,
            )),
            Compression::Snappy => {
                Inner::Snappy(SnappyReader::new(compressed, &mut scratch.snappy_block)?)
            }
        };
        Ok(Decompressor {
            codec,
            inner,
            produced: 0,
            limit,
        })
    }

    /// Decompressed bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Reads the next decompressed bytes into `buf`; 0 at the end of the data. Fails on data the
    /// codec cannot decode and once more than `limit` bytes would have been produced.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RecordsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Never ask for more than one byte past the limit: crossing it is enough to refuse.
        let allowed = self.limit.saturating_sub(self.produced).saturating_add(1);
        let want = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let buf = &mut buf[..want];
        let codec = self.codec;
        let failed = |error: std::io::Error| RecordsError::Decompress {
            codec,
            reason: error.to_string(),
        };
        let read = match &mut self.inner {
            Inner::Gzip(decoder) => decoder.read(buf).map_err(failed)?,
            Inner::Lz4(decoder) => decoder.read(buf).map_err(failed)?,
            Inner::Zstd(decoder) => decoder.read(buf).map_err(failed)?,
            Inner::Snappy(reader) => {
                reader.read(buf, self.limit - self.produced.min(self.limit))?
            }
        };
        self.produced += read as u64;
        if self.produced > self.limit {
            return Err(RecordsError::DecompressedTooLarge {
                max_bytes: usize::try_from(self.limit).unwrap_or(usize::MAX),
            });
        }
        Ok(read)
    }
}

impl Drop for SnappyReader<'_> {
    fn drop(&mut self) {
        if self.block.capacity() > SNAPPY_BLOCK_KEEP_BYTES {
            *self.block = Vec::new();
        }
    }
}

/// Snappy as Kafka clients write it: xerial framing (the Java client: a 16-byte header, then
/// blocks of `[u32 big-endian length][raw snappy block]`) or one raw snappy block (librdkafka).
/// Each block is decompressed whole into the scratch buffer, after its declared size was checked
/// against the bytes still allowed, so an oversized block is refused before it is allocated.
struct SnappyReader<'a> {
    /// Compressed bytes not decoded yet (framed: the blocks after the header).
    rest: &'a [u8],
    framed: bool,
    block: &'a mut Vec<u8>,
    /// Read position in `block`.
    at: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(compressed: &'a [u8], block: &'a mut Vec<u8>) -> Result<SnappyReader<'a>, RecordsError> {
        block.clear();
        let framed = compressed.starts_with(&XERIAL_HEADER[..8]);
        let rest = if framed {
            compressed
                .get(XERIAL_HEADER.len()..)
                .ok_or_else(|| snappy_error("truncated xerial header"))?
        } else {
            compressed
        };
        Ok(SnappyReader {
            rest,
            framed,
            block,
            at: 0,
        })
    }

    /// Copies out decoded bytes, decoding the next block when the current one is used up; blocks
    /// larger than `allowed` more bytes are refused undecoded.
    fn read(&mut self, buf: &mut [u8], allowed: u64) -> Result<usize, RecordsError> {
        while self.at == self.block.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            self.next_block(allowed)?;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    fn next_block(&mut self, allowed: u64) -> Result<(), RecordsError> {
        let block = if self.framed {
            let Some((len_bytes, tail)) = self.rest.split_first_chunk::<4>() else {
                return Err(snappy_error("truncated xerial block length"));
            };
            let block_len = u32::from_be_bytes(*len_bytes) as usize;
            if block_len > tail.len() {
                return Err(snappy_error("truncated xerial block"));
            }
            self.rest = &tail[block_len..];
            &tail[..block_len]
        } else {
            std::mem::take(&mut self.rest)
        };
        let failed = |error: snap::Error| snappy_error(&error.to_string());
        let len = snap::raw::decompress_len(block).map_err(failed)?;
        if len as u64 > allowed {
            return Err(RecordsError::DecompressedTooLarge {
                max_bytes: usize::try_from(allowed).unwrap_or(usize::MAX),
            });
        }
        self.block.clear();
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(block, self.block)
            .map_err(failed)?;
        self.at = 0;
        Ok(())
    }
}

fn snappy_error(reason: &str) -> RecordsError {
    RecordsError::Decompress {
        codec: Compression::Snappy,
        reason: reason.to_string(),
    }
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
