//! A broker's own Kafka client connection to another broker (a follower to its leader): one
//! request at a time, `[size][header][body]` frames over a glommio socket, decoded with the same
//! codecs as the server side. Replica traffic is Kafka's own wire protocol, so a leader serves it
//! with the handlers that serve clients.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use thiserror::Error;

/// The client id a leader sees on its followers' connections.
pub const REPLICA_CLIENT_ID: &str = "ringbroker-replica-fetcher";

/// Largest response a follower accepts: a fetch asks at most `replica.fetch.max.bytes` per
/// partition, but a first batch may be larger (it always comes whole); this bounds a broken peer.
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// How long connecting to a leader may take before the follower tries again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("connection to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    #[error("no response from {addr} within {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
}

/// One connection to a broker.
pub struct BrokerConnection {
    addr: SocketAddr,
    stream: TcpStream,
    next_correlation_id: i32,
    buf: BytesMut,
}

impl BrokerConnection {
    pub async fn connect(addr: SocketAddr) -> Result<BrokerConnection, ClientError> {
        let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| ClientError::Connect {
                addr,
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        Ok(BrokerConnection {
            addr,
            stream,
            next_correlation_id: 1,
            buf: BytesMut::with_capacity(4096),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let addr = self.addr;
        let exchange = self.exchange(request, version);
        let timer = glommio::timer::sleep(timeout);
        futures::pin_mut!(exchange, timer);
        match futures::future::select(exchange, timer).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => Err(ClientError::Timeout {
                addr,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let addr = self.addr;
        let protocol = |reason: String| ClientError::Protocol { addr, reason };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.buf.clear();
        self.buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(REPLICA_CLIENT_ID)))
            .encode(&mut self.buf, R::header_version(version))
            .map_err(|e| protocol(format!("encoding a request header: {e}")))?;
        request
            .encode(&mut self.buf, version)
            .map_err(|e| protocol(format!("encoding a request: {e}")))?;
        let size = i32::try_from(self.buf.len() - 4)
            .map_err(|_| protocol("request larger than 2 GiB".into()))?;
        self.buf[..4].copy_from_slice(&size.to_be_bytes());
        let io = |source| ClientError::Io { addr, source };
        self.stream.write_all(&self.buf).await.map_err(io)?;
        let mut size_bytes = [0u8; 4];
        self.stream.read_exact(&mut size_bytes).await.map_err(io)?;
        let size = usize::try_from(i32::from_be_bytes(size_bytes))
            .ok()
            .filter(|s| (4..=MAX_RESPONSE_BYTES).contains(s))
            .ok_or_else(|| protocol(format!("invalid response size {size_bytes:?}")))?;
        let mut frame = vec![0u8; size];
        self.stream.read_exact(&mut frame).await.map_err(io)?;
        let mut frame = Bytes::from(frame);
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|e| protocol(format!("decoding a response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol(format!(
                "response to correlation id {} where {correlation_id} was expected",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version)
            .map_err(|e| protocol(format!("decoding a response: {e}")))
    }
}

/// The inter-broker listener of broker `node_id` (its first, plaintext one), as registered in
/// this shard's image.
pub fn broker_address(shard: &crate::shard::Shard, node_id: i32) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let image = shard.image();
    let endpoint = image.brokers.get(&node_id)?.inter_broker_endpoint()?;
    let port = u16::try_from(endpoint.port).ok()?;
    (endpoint.host.as_str(), port)
        .to_socket_addrs()
        .ok()?
        .next()
}
