//! Kafka framing: the 4-byte size prefix, the request header, and response frames.
//!
//! A Kafka request is `size: i32` followed by `size` bytes: the request header (api key, api
//! version, correlation id, client id, and for flexible versions tagged fields) and the body.
//! Header and body codecs come from the `kafka-protocol` crate; this module adds the bounds checks
//! that must happen before anything is allocated or decoded.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

/// Bytes of the size prefix in front of every frame.
pub const FRAME_PREFIX_BYTES: usize = 4;
/// Default cap on one request frame: 100 MiB, Kafka's `socket.request.max.bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 << 20;
/// api_key(2) + api_version(2) + correlation_id(4): the part of every header we read by hand
/// before trusting the rest.
pub const MIN_REQUEST_HEADER_BYTES: usize = 8;

/// Why a frame cannot be served. Every variant ends the connection except where the caller can
/// answer with a Kafka error (see the engine's dispatcher).
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame size {size} is not positive")]
    NonPositiveSize { size: i32 },
    #[error("frame size {size} exceeds the request size limit of {limit} bytes (setting max_request_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("frame of {size} bytes is shorter than a request header")]
    TooShortForHeader { size: usize },
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("cannot decode request header of {api:?} v{version}: {reason}")]
    BadHeader {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// Checks the size prefix of a request frame against the configured limit.
pub fn frame_size(
    prefix: [u8; FRAME_PREFIX_BYTES],
    max_request_bytes: usize,
) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size <= 0 {
        return Err(FrameError::NonPositiveSize { size });
    }
    let size = size as usize;
    if size > max_request_bytes {
        return Err(FrameError::TooLarge {
            size,
            limit: max_request_bytes,
        });
    }
    Ok(size)
}

/// The fixed leading fields of a request header, read without trusting anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id from the start of a frame body.
pub fn request_prefix(frame: &[u8]) -> Result<RequestPrefix, FrameError> {
    if frame.len() < MIN_REQUEST_HEADER_BYTES {
        return Err(FrameError::TooShortForHeader { size: frame.len() });
    }
    Ok(RequestPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// A request whose header has been decoded; `body` is the undecoded rest of the frame (a
/// zero-copy slice of the frame buffer).
#[derive(Debug, Clone)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Decodes the request header of `frame` (the bytes after the size prefix). The caller has
/// already checked that the API and version are ones it serves (see `request_prefix`): the
/// header layout depends on the version.
pub fn decode_request(mut frame: Bytes) -> Result<Request, FrameError> {
    let prefix = request_prefix(&frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|()| FrameError::UnknownApiKey {
        api_key: prefix.api_key,
        correlation_id: prefix.correlation_id,
    })?;
    let header_version = api_key.request_header_version(prefix.api_version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| FrameError::BadHeader {
            api: api_key,
            version: prefix.api_version,
            reason: e.to_string(),
        })?;
    Ok(Request {
        api_key,
        header,
        body: frame,
    })
}

/// Encodes a complete response frame (size prefix, response header, body) for `api_key` at
/// `version`. ApiVersions always uses response header v0 (docs/COMPATIBILITY.md section 2); the crate's
/// `response_header_version` already encodes that rule.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<BytesMut, FrameError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let body_size = body
        .compute_size(version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let mut out = BytesMut::with_capacity(FRAME_PREFIX_BYTES + header_size + body_size);
    out.put_i32((header_size + body_size) as i32);
    header
        .encode(&mut out, header_version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    body.encode(&mut out, version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    debug_assert_eq!(out.len(), FRAME_PREFIX_BYTES + header_size + body_size);
    Ok(out)
}

/// Decodes a response frame body (after the size prefix) for a request of `api_key`/`version`:
/// returns the correlation id and the decoded body. Used by clients (tools, bench).
pub fn decode_response<M: Decodable>(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, M), FrameError> {
    let header_version = api_key.response_header_version(version);
    let header =
        ResponseHeader::decode(&mut frame, header_version).map_err(|e| FrameError::BadHeader {
            api: api_key,
            version,
            reason: e.to_string(),
        })?;
    let body = M::decode(&mut frame, version).map_err(|e| FrameError::BadHeader {
        api: api_key,
        version,
        reason: e.to_string(),
    })?;
    if frame.has_remaining() {
        tracing::debug!(api = ?api_key, version, left = frame.remaining(), "response has trailing bytes");
    }
    Ok((header.correlation_id, body))
}

/// Encodes the answer to an ApiVersions request of a version we do not serve: a **v0 body** with
/// error 35 (UNSUPPORTED_VERSION) and the single entry {18, 0, `max_version`}, behind a v0
/// response header. Clients read the error and retry with a version we list (KIP-511).
pub fn unsupported_api_versions_response(correlation_id: i32, max_version: i16) -> BytesMut {
    const UNSUPPORTED_VERSION: i16 = 35;
    let mut out = BytesMut::with_capacity(4 + 4 + 2 + 4 + 6);
    let body_len = 4 + 2 + 4 + 6;
    out.put_i32(body_len);
    out.put_i32(correlation_id);
    out.put_i16(UNSUPPORTED_VERSION);
    out.put_i32(1);
    out.put_i16(ApiKey::ApiVersions as i16);
    out.put_i16(0);
    out.put_i16(max_version);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataResponse};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn request_frame(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &impl Encodable,
    ) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    #[test]
    fn frame_size_bounds() {
        assert!(matches!(
            frame_size(0i32.to_be_bytes(), 10),
            Err(FrameError::NonPositiveSize { .. })
        ));
        assert!(matches!(
            frame_size((-5i32).to_be_bytes(), 10),
            Err(FrameError::NonPositiveSize { .. })
        ));
        assert!(matches!(
            frame_size(i32::MAX.to_be_bytes(), 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(frame_size(100i32.to_be_bytes(), 100).expect("fits"), 100);
    }

    #[test]
    fn decodes_flexible_api_versions_header() {
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let frame = request_frame(ApiKey::ApiVersions, 3, 77, &body);
        let request = decode_request(frame).expect("decodes");
        assert_eq!(request.api_key, ApiKey::ApiVersions);
        assert_eq!(request.version(), 3);
        assert_eq!(request.correlation_id(), 77);
        let mut body = request.body;
        let decoded = ApiVersionsRequest::decode(&mut body, 3).expect("body");
        assert_eq!(decoded.client_software_name.as_str(), "x");
    }

    #[test]
    fn unknown_api_key_reports_correlation_id() {
        let mut frame = BytesMut::new();
        frame.put_i16(999);
        frame.put_i16(0);
        frame.put_i32(5);
        frame.put_i16(-1);
        match decode_request(frame.freeze()) {
            Err(FrameError::UnknownApiKey {
                api_key: 999,
                correlation_id: 5,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn response_round_trip() {
        let body =
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c")));
        let frame = encode_response(ApiKey::Metadata, 9, 42, &body).expect("encodes");
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(size + 4, frame.len());
        let (cid, decoded): (i32, MetadataResponse) =
            decode_response(ApiKey::Metadata, 9, frame.freeze().slice(4..)).expect("decodes");
        assert_eq!(cid, 42);
        assert_eq!(decoded.cluster_id.as_ref().map(|s| s.as_str()), Some("c"));
    }

    #[test]
    fn unsupported_api_versions_answer_is_a_v0_body() {
        let frame = unsupported_api_versions_response(9, 4);
        assert_eq!(&frame[4..8], &9i32.to_be_bytes());
        assert_eq!(&frame[8..10], &35i16.to_be_bytes());
        assert_eq!(frame.len(), 4 + 16);
    }

    proptest! {
        #[test]
        fn header_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_request(Bytes::from(bytes));
        }
    }
}
