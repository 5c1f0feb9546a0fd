//! One TCP connection to a broker: size-prefixed frames, request headers, correlation ids.
//!
//! A [`Connection`] makes plain request/response calls (admin traffic). For pipelined traffic it is
//! split into a [`FrameWriter`] (the sending thread) and a [`FrameReader`] (a thread reading
//! responses in order), so several requests are in flight on one socket. With `--tls-ca` the
//! connection is TLS (`tls`), for request/response calls only.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::client::tls::{self, TlsStream};
use crate::client::versions::{BrokerVersions, API_VERSIONS_VERSION};
use crate::error::{BenchError, Result};

/// Largest response frame we accept: bigger than any Fetch we ask for, small enough to stop a
/// corrupt length from allocating the machine away.
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;
/// Read buffer of the response reader: holds many small Produce responses per `read` call.
pub const READ_BUFFER_BYTES: usize = 256 << 10;
/// Client id sent in every request header.
pub const CLIENT_ID: &str = "ringbroker-bench";
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection for request/response calls.
pub struct Connection {
    writer: FrameWriter,
    reader: FrameReader,
    versions: BrokerVersions,
}

impl Connection {
    /// Connects, sets TCP_NODELAY and a read timeout, and negotiates versions with ApiVersions.
    pub fn connect(addr: &str, read_timeout: Duration) -> Result<Connection> {
        let socket_addr = addr
            .to_socket_addrs()
            .map_err(|e| BenchError::io(format!("resolving {addr}"), e))?
            .next()
            .ok_or_else(|| BenchError::InvalidArgument(format!("{addr} resolves to nothing")))?;
        let stream = TcpStream::connect_timeout(&socket_addr, CONNECT_TIMEOUT)
            .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io("setting TCP_NODELAY", e))?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|e| BenchError::io("setting read timeout", e))?;
        let (write_half, read_half) = match tls::wrap(stream, addr)? {
            Err(plain) => {
                let read_half = plain
                    .try_clone()
                    .map_err(|e| BenchError::io("cloning socket", e))?;
                (Transport::Plain(plain), Transport::Plain(read_half))
            }
            Ok(session) => {
                let shared = Arc::new(Mutex::new(session));
                (Transport::Tls(shared.clone()), Transport::Tls(shared))
            }
        };
        let mut conn = Connection {
            writer: FrameWriter {
                stream: write_half,
                next_correlation_id: 0,
                buf: BytesMut::new(),
            },
            reader: FrameReader::new(read_half),
            versions: BrokerVersions::default(),
        };
        let response: ApiVersionsResponse =
            conn.call(&ApiVersionsRequest::default(), API_VERSIONS_VERSION)?;
        conn.versions = BrokerVersions::from_response(&response)?;
        Ok(conn)
    }

    /// The broker's advertised versions.
    pub fn versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// Sends one request and waits for its response.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.writer.send_request(request, version)?;
        let frame = self.reader.read_frame()?;
        let (got_id, response) = decode_response::<R>(frame, version)?;
        if got_id != correlation_id {
            return Err(BenchError::Protocol(format!(
                "correlation id {got_id} does not match request {correlation_id}"
            )));
        }
        Ok(response)
    }

    /// Splits into a sending half and a receiving half for pipelining (plaintext only: see `tls`).
    pub fn into_split(self) -> Result<(FrameWriter, FrameReader, BrokerVersions)> {
        if matches!(self.writer.stream, Transport::Tls(_)) {
            return Err(BenchError::InvalidArgument(
                "--tls-ca works for consume (request/response connections), not for pipelined produce"
                    .into(),
            ));
        }
        Ok((self.writer, self.reader, self.versions))
    }
}

/// The socket under a connection's halves: plain (each half its own handle) or one TLS session
/// both halves lock in turn (they take turns in `Connection::call`).
enum Transport {
    Plain(TcpStream),
    Tls(Arc<Mutex<TlsStream>>),
}

impl Transport {
    fn with_session<T>(
        session: &Mutex<TlsStream>,
        work: impl FnOnce(&mut TlsStream) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut guard = session
            .lock()
            .map_err(|_| std::io::Error::other("TLS session poisoned by a panic"))?;
        work(&mut guard)
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buf),
            Transport::Tls(session) => Self::with_session(session, |s| s.read(buf)),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(buf),
            Transport::Tls(session) => Self::with_session(session, |s| s.write(buf)),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.flush(),
            Transport::Tls(session) => Self::with_session(session, |s| s.flush()),
        }
    }
}

/// The sending half: encodes requests or writes pre-encoded frames.
pub struct FrameWriter {
    stream: Transport,
    next_correlation_id: i32,
    buf: BytesMut,
}

impl FrameWriter {
    /// Allocates the next correlation id (wraps, as Kafka clients do).
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1) & i32::MAX;
        id
    }

    /// The id [`FrameWriter::next_correlation_id`] will hand out next, without taking it.
    pub fn peek_correlation_id(&self) -> i32 {
        self.next_correlation_id
    }

    /// Encodes and sends a request; returns its correlation id.
    pub fn send_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation_id = self.next_correlation_id();
        self.buf.clear();
        encode_request_frame(&mut self.buf, request, version, correlation_id)?;
        self.stream
            .write_all(&self.buf)
            .and_then(|()| self.stream.flush())
            .map_err(|e| BenchError::io("sending request", e))?;
        Ok(correlation_id)
    }

    /// Writes a complete, already framed request.
    pub fn write_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.stream
            .write_all(frame)
            .map_err(|e| BenchError::io("sending request", e))
    }
}

/// Encodes `[size][header][body]` into `buf`.
pub fn encode_request_frame<R: Request>(
    buf: &mut BytesMut,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let start = buf.len();
    buf.put_i32(0);
    header
        .encode(buf, R::header_version(version))
        .map_err(|e| BenchError::protocol("encoding request header", e))?;
    request
        .encode(buf, version)
        .map_err(|e| BenchError::protocol("encoding request", e))?;
    let size = i32::try_from(buf.len() - start - 4)
        .map_err(|_| BenchError::Protocol("request larger than 2 GiB".into()))?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The receiving half: reads whole response frames.
pub struct FrameReader {
    reader: BufReader<Transport>,
    buf: BytesMut,
}

impl FrameReader {
    fn new(stream: Transport) -> Self {
        FrameReader {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, stream),
            buf: BytesMut::new(),
        }
    }

    /// Reads one response frame (without its size prefix). The returned bytes share a buffer that
    /// is reused once every earlier frame has been dropped.
    pub fn read_frame(&mut self) -> Result<Bytes> {
        let mut size_bytes = [0u8; 4];
        self.reader
            .read_exact(&mut size_bytes)
            .map_err(|e| BenchError::io("reading response size", e))?;
        let size = i32::from_be_bytes(size_bytes);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (4..=MAX_RESPONSE_BYTES).contains(s))
            .ok_or_else(|| BenchError::Protocol(format!("invalid response size {size}")))?;
        self.buf.clear();
        self.buf.resize(size, 0);
        self.reader
            .read_exact(&mut self.buf[..])
            .map_err(|e| BenchError::io("reading response", e))?;
        Ok(self.buf.split().freeze())
    }
}

/// Decodes a response frame of request type `R`: returns the correlation id and the body.
pub fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<(i32, R::Response)> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| BenchError::protocol("decoding response header", e))?;
    let body = R::Response::decode(&mut frame, version)
        .map_err(|e| BenchError::protocol(api_name(R::KEY), e))?;
    // Bytes left over (fields of a newer version than we asked for) are ignored on purpose.
    Ok((header.correlation_id, body))
}

fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Produce) => "decoding Produce response",
        Ok(ApiKey::Fetch) => "decoding Fetch response",
        Ok(ApiKey::Metadata) => "decoding Metadata response",
        Ok(ApiKey::ListOffsets) => "decoding ListOffsets response",
        Ok(ApiKey::CreateTopics) => "decoding CreateTopics response",
        Ok(ApiKey::ApiVersions) => "decoding ApiVersions response",
        _ => "decoding response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;

    #[test]
    fn request_frame_has_size_prefix_and_header() {
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &MetadataRequest::default(), 1, 42).expect("encodes");
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(size, buf.len() - 4);
        assert_eq!(
            i16::from_be_bytes([buf[4], buf[5]]),
            ApiKey::Metadata as i16
        );
        assert_eq!(i16::from_be_bytes([buf[6], buf[7]]), 1);
        assert_eq!(i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]), 42);
    }
}
