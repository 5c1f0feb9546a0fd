//! Frames on a controller-listener connection: a 4-byte little-endian length, then a `Frame`
//! flatbuffer (`schema/fbs/cluster.fbs`: kind, correlation id, sub-API, payload). Reading checks
//! the length against [`MAX_FRAME_BYTES`] before it allocates, grows the buffer only as bytes
//! arrive, verifies the flatbuffer, and hands the payload out as a slice of the frame (no copy).

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncReadExt};
use ringbroker_schema::cluster;
use thiserror::Error;

pub use cluster::FrameKind;

use crate::limits::MAX_FRAME_BYTES;

/// Bytes of the length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub correlation_id: u64,
    pub api: u16,
    pub payload: Bytes,
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {bytes} bytes is above the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes one size-prefixed frame. The payload is copied once into the flatbuffer.
pub fn encode(
    kind: FrameKind,
    correlation_id: u64,
    api: u16,
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut builder = flatbuffers::FlatBufferBuilder::with_capacity(payload.len() + 64);
    let payload_offset = builder.create_vector(payload);
    let frame = cluster::Frame::create(
        &mut builder,
        &cluster::FrameArgs {
            kind,
            correlation_id,
            api,
            payload: Some(payload_offset),
        },
    );
    builder.finish_size_prefixed(frame, None);
    let bytes = builder.finished_data();
    let body = bytes.len() - FRAME_PREFIX_BYTES;
    if body > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            bytes: body,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(bytes.to_vec())
}

/// Reads the next frame; `Ok(None)` when the peer closed the connection between frames.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    let mut filled = 0;
    while filled < prefix.len() {
        let count = reader.read(&mut prefix[filled..]).await?;
        if count == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += count;
    }
    let length = u32::from_le_bytes(prefix) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            bytes: length,
            max: MAX_FRAME_BYTES,
        });
    }
    // Grows with the bytes that really arrive: a peer announcing a big frame and sending little
    // costs little. The prefix stays in front: flatbuffers aligns the table relative to it.
    let mut buffer = prefix.to_vec();
    let read = (&mut *reader)
        .take(length as u64)
        .read_to_end(&mut buffer)
        .await?;
    if read < length {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    decode(Bytes::from(buffer)).map(Some)
}

/// Verifies and decodes a whole frame, its size prefix included.
pub fn decode(buffer: Bytes) -> Result<Frame, FrameError> {
    let frame = cluster::size_prefixed_root_as_frame(&buffer)
        .map_err(|error| FrameError::Malformed(error.to_string()))?;
    let kind = frame.kind();
    if kind.variant_name().is_none() {
        return Err(FrameError::Malformed(format!(
            "unknown frame kind {}",
            kind.0
        )));
    }
    let payload = match frame.payload() {
        Some(vector) => {
            let slice = vector.bytes();
            // The verifier checked the vector lies inside `buffer`, so this offset is in range.
            let offset = slice.as_ptr() as usize - buffer.as_ptr() as usize;
            buffer.slice(offset..offset + slice.len())
        }
        None => Bytes::new(),
    };
    Ok(Frame {
        kind,
        correlation_id: frame.correlation_id(),
        api: frame.api(),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_read_round_trips() {
        let encoded = encode(FrameKind::Request, 7, 12, b"hello").expect("encode");
        let length = u32::from_le_bytes(encoded[..4].try_into().expect("prefix")) as usize;
        assert_eq!(length, encoded.len() - FRAME_PREFIX_BYTES);
        let frame = futures::executor::block_on(read(&mut &encoded[..]))
            .expect("read")
            .expect("a frame");
        assert_eq!(frame.kind, FrameKind::Request);
        assert_eq!(frame.correlation_id, 7);
        assert_eq!(frame.api, 12);
        assert_eq!(&frame.payload[..], b"hello");
    }

    #[test]
    fn clean_eof_torn_frames_oversized_and_garbage_are_told_apart() {
        let empty: &[u8] = &[];
        assert!(futures::executor::block_on(read(&mut &empty[..]))
            .expect("eof")
            .is_none());
        let encoded = encode(FrameKind::Response, 1, 1, b"x").expect("encode");
        let torn = &encoded[..encoded.len() - 1];
        assert!(matches!(
            futures::executor::block_on(read(&mut &torn[..])),
            Err(FrameError::Io(_))
        ));
        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes();
        assert!(matches!(
            futures::executor::block_on(read(&mut &huge[..])),
            Err(FrameError::TooLarge { .. })
        ));
        let mut garbage = 16u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xAB; 16]);
        assert!(matches!(
            futures::executor::block_on(read(&mut &garbage[..])),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn an_unknown_kind_is_malformed() {
        // The generated enum accepts any u8, so a peer can send kind 9.
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        let payload = builder.create_vector(b"x".as_slice());
        let frame = cluster::Frame::create(
            &mut builder,
            &cluster::FrameArgs {
                kind: FrameKind(9),
                correlation_id: 1,
                api: 1,
                payload: Some(payload),
            },
        );
        builder.finish_size_prefixed(frame, None);
        let buffer = Bytes::copy_from_slice(builder.finished_data());
        assert!(matches!(decode(buffer), Err(FrameError::Malformed(_))));
    }
}
