//! `Connection`: one blocking TCP connection to one broker. Frames requests (size, header, body) with
//! kafka-protocol's codecs, matches correlation ids, and negotiates API versions at connect time.

use super::error::{ClientError, UNSUPPORTED_VERSION};
use super::versions::{client_range, BrokerVersions};
use super::ClientConfig;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

/// Largest response frame accepted. Fetch answers are bounded by the `max_bytes` we ask for (a few MiB);
/// this bound keeps a corrupt size prefix from allocating gigabytes.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// The ApiVersions version sent first (flexible, carries the client software name). A broker that does
/// not know it answers with a v0 body and error 35 (KIP-511); we then retry with what it offers.
const API_VERSIONS_FIRST_TRY: i16 = 3;

/// A connection to one broker, with the API versions negotiated for it.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
    versions: BrokerVersions,
    /// Set when a request failed midway: the stream may hold half a frame, so it must not be reused.
    broken: bool,
}

impl Connection {
    /// Connects to `addr` ("host:port"), sets TCP_NODELAY and timeouts, and runs ApiVersions.
    pub fn connect(addr: &str, config: &ClientConfig) -> Result<Connection, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let mut last_error =
            std::io::Error::new(std::io::ErrorKind::NotFound, "address resolved to nothing");
        let mut stream = None;
        for socket_addr in addr.to_socket_addrs().map_err(connect_error)? {
            match TcpStream::connect_timeout(&socket_addr, config.connect_timeout) {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(error) => last_error = error,
            }
        }
        let stream = stream.ok_or_else(|| connect_error(last_error))?;
        let io_error = |source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        };
        stream.set_nodelay(true).map_err(io_error)?;
        stream
            .set_read_timeout(Some(config.request_timeout))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(config.request_timeout))
            .map_err(io_error)?;
        let mut connection = Connection {
            addr: addr.to_owned(),
            stream,
            client_id: StrBytes::from_string(config.client_id.clone()),
            next_correlation_id: 1,
            versions: BrokerVersions::default(),
            broken: false,
        };
        connection.versions = connection.fetch_api_versions()?;
        Ok(connection)
    }

    /// The "host:port" this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// False once a request failed midway; such a connection must be replaced.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    /// What the broker advertised.
    pub fn broker_versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// The version of `R` to send: the highest both sides support.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        let api = api_key::<R>();
        self.versions.negotiate(api).ok_or_else(|| {
            let (client_min, client_max) = client_range(api).unwrap_or((0, -1));
            ClientError::UnsupportedApi {
                addr: self.addr.clone(),
                api: api_name(api),
                client_min,
                client_max,
            }
        })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub fn send<R: Request>(&mut self, request: &R) -> Result<(R::Response, i16), ClientError> {
        let version = self.version_for::<R>()?;
        Ok((self.send_version(request, version)?, version))
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.write_request(request, version)?;
        let mut body = self.read_frame()?;
        let api = api_key::<R>();
        let decode_error = |addr: &str, reason: String| ClientError::Decode {
            api: api_name(api),
            version,
            addr: addr.to_owned(),
            reason,
        };
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|error| decode_error(&self.addr, error.to_string()))?;
        if header.correlation_id != correlation_id {
            self.broken = true;
            return Err(ClientError::CorrelationMismatch {
                addr: self.addr.clone(),
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        R::Response::decode(&mut body, version)
            .map_err(|error| decode_error(&self.addr, error.to_string()))
    }

    /// Sends `request` and does not wait: for Produce with acks=0, which has no response.
    pub fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        self.write_request(request, version).map(|_| ())
    }

    fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        let api = api_key::<R>();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let encode_error = |reason: String| ClientError::Encode {
            api: api_name(api),
            version,
            reason,
        };
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0); // size, patched below
        header
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|error| encode_error(error.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|error| encode_error(error.to_string()))?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        if let Err(source) = self.stream.write_all(&frame) {
            self.broken = true;
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                source,
            });
        }
        Ok(correlation_id)
    }

    fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let mut size = [0u8; 4];
        self.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > MAX_RESPONSE_BYTES {
            self.broken = true;
            return Err(ClientError::FrameTooLarge {
                addr: self.addr.clone(),
                bytes: i64::from(size),
                max_bytes: MAX_RESPONSE_BYTES,
            });
        }
        let mut body = vec![0u8; size as usize];
        self.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ClientError> {
        match self.stream.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(source) => {
                self.broken = true;
                if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    })
                } else {
                    Err(ClientError::Io {
                        addr: self.addr.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// ApiVersions handshake, with the KIP-511 fallback when the broker does not know our version.
    fn fetch_api_versions(&mut self) -> Result<BrokerVersions, ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ringbroker"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = API_VERSIONS_FIRST_TRY;
        for _ in 0..2 {
            let response = self.api_versions_round(&request, version)?;
            if response.error_code == UNSUPPORTED_VERSION {
                // The broker answered a v0 body listing the ApiVersions versions it does support.
                let offered = response
                    .api_keys
                    .iter()
                    .find(|key| key.api_key == ApiKey::ApiVersions as i16);
                version = offered.map_or(0, |key| key.max_version.min(API_VERSIONS_FIRST_TRY));
                continue;
            }
            super::error::check_code(
                response.error_code,
                || format!("ApiVersions from {}", self.addr),
                None,
            )?;
            return Ok(BrokerVersions::new(
                response
                    .api_keys
                    .iter()
                    .map(|key| (key.api_key, key.min_version, key.max_version)),
            ));
        }
        Err(ClientError::Protocol {
            addr: self.addr.clone(),
            reason: "ApiVersions still unsupported after the KIP-511 fallback".into(),
        })
    }

    fn api_versions_round(
        &mut self,
        request: &ApiVersionsRequest,
        version: i16,
    ) -> Result<ApiVersionsResponse, ClientError> {
        let correlation_id = self.write_request(request, version)?;
        let mut body = self.read_frame()?;
        let decode_error = |addr: &str, reason: String| ClientError::Decode {
            api: "ApiVersions",
            version,
            addr: addr.to_owned(),
            reason,
        };
        // ApiVersions responses always use header v0 (docs/COMPATIBILITY.md section 2).
        let header = ResponseHeader::decode(&mut body, 0)
            .map_err(|error| decode_error(&self.addr, error.to_string()))?;
        if header.correlation_id != correlation_id {
            self.broken = true;
            return Err(ClientError::CorrelationMismatch {
                addr: self.addr.clone(),
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        // An UNSUPPORTED_VERSION answer is a v0 body whatever version we sent.
        let error_code = if body.len() >= 2 {
            (&body[..2]).get_i16()
        } else {
            0
        };
        let body_version = if error_code == UNSUPPORTED_VERSION {
            0
        } else {
            version
        };
        ApiVersionsResponse::decode(&mut body, body_version)
            .map_err(|error| decode_error(&self.addr, error.to_string()))
    }
}

/// The `ApiKey` of a request type.
pub fn api_key<R: Request>() -> ApiKey {
    // Invariant, not input: every `Request` the crate generates has a key its `ApiKey` enum knows.
    ApiKey::try_from(R::KEY).expect("kafka-protocol Request::KEY is a known ApiKey")
}

/// Kafka's name of an API, for messages.
pub fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::DeleteGroups => "DeleteGroups",
        _ => "Kafka API",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use std::net::TcpListener;

    fn read_request(stream: &mut TcpStream) -> (i16, i32) {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut body).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        (version, correlation_id)
    }

    fn answer(
        stream: &mut TcpStream,
        correlation_id: i32,
        response: &ApiVersionsResponse,
        version: i16,
    ) {
        let mut body = BytesMut::new();
        body.put_i32(correlation_id);
        response.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        stream.write_all(&frame).unwrap();
    }

    /// A broker that knows ApiVersions only up to v2 answers our v3 with error 35 and a v0 body
    /// (KIP-511); the client retries at v2 and negotiates from that answer.
    #[test]
    fn api_versions_falls_back_when_the_broker_is_older() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (version, correlation_id) = read_request(&mut stream);
            assert_eq!(version, 3);
            let refusal = ApiVersionsResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_api_keys(vec![ApiVersion::default()
                    .with_api_key(18)
                    .with_min_version(0)
                    .with_max_version(2)]);
            answer(&mut stream, correlation_id, &refusal, 0);
            let (version, correlation_id) = read_request(&mut stream);
            assert_eq!(version, 2);
            let full = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default()
                    .with_api_key(18)
                    .with_min_version(0)
                    .with_max_version(2),
                ApiVersion::default()
                    .with_api_key(0)
                    .with_min_version(0)
                    .with_max_version(7),
            ]);
            answer(&mut stream, correlation_id, &full, 2);
        });
        let connection = Connection::connect(&addr, &ClientConfig::new(&addr)).unwrap();
        broker.join().unwrap();
        assert_eq!(
            connection
                .version_for::<kafka_protocol::messages::ProduceRequest>()
                .unwrap(),
            7
        );
        assert!(matches!(
            connection.version_for::<kafka_protocol::messages::FetchRequest>(),
            Err(ClientError::UnsupportedApi { api: "Fetch", .. })
        ));
    }

    #[test]
    fn refused_connection_is_a_connect_error() {
        // Bind then drop a listener: the port is (almost certainly) closed right after.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let error = Connection::connect(&addr, &ClientConfig::new(&addr)).unwrap_err();
        assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    }
}
