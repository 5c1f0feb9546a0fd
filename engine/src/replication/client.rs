//! A broker's own Kafka client connection to another broker (a follower to its leader): one
//! request at a time, `[size][header][body]` frames over a glommio socket, decoded with the same
//! codecs as the server side. Replica traffic is Kafka's own wire protocol, so a leader serves it
//! with the handlers that serve clients.
//!
//! The connection goes to the other broker's inter-broker listener and speaks its security
//! protocol (`security::inter_broker`): TLS as a client (the peer's certificate checked against
//! the configured CA and its registered host name), then SASL (SaslHandshake, SaslAuthenticate)
//! with this broker's login, before the first request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use rustls_pki_types::ServerName;
use thiserror::Error;

use crate::security::inter_broker::InterBrokerSecurity;
use crate::security::sasl::client::{plain_token, SaslLogin, ScramClient, ScramClientError};
use crate::security::sasl::credentials::ScramMechanism;
use crate::security::stream::BrokerStream;

/// The client id a leader sees on its followers' connections.
pub const REPLICA_CLIENT_ID: &str = "ringbroker-replica-fetcher";

/// Largest response a follower accepts: a fetch asks at most `replica.fetch.max.bytes` per
/// partition, but a first batch may be larger (it always comes whole); this bounds a broken peer.
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// How long connecting to a leader may take before the follower tries again (TCP, then again
/// for the TLS handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long each SASL round trip may take: SCRAM's server side is a few milliseconds of PBKDF2.
pub const AUTHENTICATE_TIMEOUT: Duration = Duration::from_secs(5);

/// SaslHandshake v1: the tokens then travel in SaslAuthenticate requests (Kafka's clients' way).
const SASL_HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate v2 (the newest; v1+ tells the session lifetime).
const SASL_AUTHENTICATE_VERSION: i16 = 2;

/// A connection whose SASL session has run this share of its lifetime (the leader's
/// `connections.max.reauth.ms`) is replaced by a new one before its next request; Kafka's
/// clients re-authenticate between 85 and 95 percent.
const SESSION_RENEW_PERCENT: u32 = 85;

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
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("SASL authentication to {addr} failed: {reason}")]
    Authentication { addr: SocketAddr, reason: String },
    #[error(
        "{addr} refused this broker's replica requests (CLUSTER_AUTHORIZATION_FAILED): this \
         broker's principal there (its inter-broker SASL user, its certificate's subject, or \
         User:ANONYMOUS) needs ClusterAction on the cluster, or to be a super user"
    )]
    NotAuthorized { addr: SocketAddr },
    #[error("cannot reach broker {node_id}: {reason}")]
    Unreachable { node_id: i32, reason: String },
}

/// Where another broker is reached: the host its inter-broker listener registered (the name its
/// TLS certificate must carry) and the address that resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub addr: SocketAddr,
}

/// One connection to a broker.
pub struct BrokerConnection {
    addr: SocketAddr,
    stream: BrokerStream,
    next_correlation_id: i32,
    buf: BytesMut,
    /// When to replace the connection: its SASL session nears its end (`None`: never).
    renew_at: Option<Instant>,
}

impl BrokerConnection {
    /// Connects to `peer` as `security` says: TCP, then TLS and SASL when the inter-broker
    /// listener has them.
    pub async fn connect(
        peer: &BrokerAddress,
        security: &InterBrokerSecurity,
    ) -> Result<BrokerConnection, ClientError> {
        let addr = peer.addr;
        let tcp = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| ClientError::Connect {
                addr,
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        debug_assert_eq!(security.tls.is_some(), security.protocol.uses_tls());
        let stream = match &security.tls {
            None => BrokerStream::Plain(tcp),
            Some(tls) => {
                let tls_error = |reason: String| ClientError::Tls { addr, reason };
                let server_name = ServerName::try_from(peer.host.clone())
                    .map_err(|e| tls_error(format!("`{}` is not a host name: {e}", peer.host)))?;
                let handshake = TlsConnector::from(tls.current()).connect(server_name, tcp);
                let stream = ringbroker_quorum::watch::within(CONNECT_TIMEOUT, handshake)
                    .await
                    .ok_or_else(|| tls_error("no handshake within 3 s".into()))?
                    .map_err(|e| tls_error(e.to_string()))?;
                BrokerStream::Tls(Box::new(stream))
            }
        };
        let mut connection = BrokerConnection {
            addr,
            stream,
            next_correlation_id: 1,
            buf: BytesMut::with_capacity(4096),
            renew_at: None,
        };
        debug_assert_eq!(security.sasl.is_some(), security.protocol.uses_sasl());
        if let Some(login) = &security.sasl {
            connection.authenticate(login).await?;
        }
        Ok(connection)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection should be replaced before its next request: its SASL session is
    /// about to end (the leader would close it at the first request after the end).
    pub fn session_ending(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Kafka's client exchange: SaslHandshake with the mechanism, then the mechanism's tokens in
    /// SaslAuthenticate requests; SCRAM also checks the leader's signature.
    async fn authenticate(&mut self, login: &SaslLogin) -> Result<(), ClientError> {
        let addr = self.addr;
        let failed = |reason: String| ClientError::Authentication { addr, reason };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let response = self
            .send(&handshake, SASL_HANDSHAKE_VERSION, AUTHENTICATE_TIMEOUT)
            .await?;
        if response.error_code != 0 {
            let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(format!(
                "the listener does not take {} (it offers {}): set sasl.mechanism.inter.broker.protocol",
                login.mechanism,
                offered.join(",")
            )));
        }
        let scram_failed = |e: ScramClientError| failed(e.to_string());
        let session_lifetime_ms = match ScramMechanism::of(login.mechanism) {
            None => self.authenticate_step(plain_token(login)).await?.1,
            Some(mechanism) => {
                let (client, first) = ScramClient::start(mechanism, login).map_err(scram_failed)?;
                let (server_first, _) = self.authenticate_step(first).await?;
                let (last, proof) = client.answer(&server_first).map_err(scram_failed)?;
                let (server_final, lifetime) = self.authenticate_step(proof).await?;
                last.verify(&server_final).map_err(scram_failed)?;
                lifetime
            }
        };
        self.renew_at = u64::try_from(session_lifetime_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| Instant::now() + Duration::from_millis(ms) * SESSION_RENEW_PERCENT / 100);
        Ok(())
    }

    /// One SaslAuthenticate round trip: the server's token and session lifetime, or its refusal.
    async fn authenticate_step(&mut self, token: Vec<u8>) -> Result<(Bytes, i64), ClientError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let response = self
            .send(&request, SASL_AUTHENTICATE_VERSION, AUTHENTICATE_TIMEOUT)
            .await?;
        if response.error_code != 0 {
            let error = ResponseError::try_from_code(response.error_code).map_or_else(
                || format!("error {}", response.error_code),
                |e| format!("{e:?}"),
            );
            let message = response.error_message.as_deref().unwrap_or("").to_string();
            return Err(ClientError::Authentication {
                addr: self.addr,
                reason: format!("{error}: {message}"),
            });
        }
        Ok((response.auth_bytes, response.session_lifetime_ms))
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

/// The inter-broker listener of broker `node_id` (`inter.broker.listener.name`), as registered
/// in this shard's image.
pub fn broker_address(
    shard: &crate::shard::Shard,
    node_id: i32,
) -> Result<BrokerAddress, ClientError> {
    use std::net::ToSocketAddrs;
    let name = shard.config.security.inter_broker.listener_name();
    let unreachable = |reason: String| ClientError::Unreachable { node_id, reason };
    let image = shard.image();
    let broker = image
        .brokers
        .get(&node_id)
        .ok_or_else(|| unreachable("not registered".into()))?;
    let endpoint = broker.endpoint(name).ok_or_else(|| {
        unreachable(format!(
            "it has no {name} listener (inter.broker.listener.name); give every broker the same"
        ))
    })?;
    let port = u16::try_from(endpoint.port)
        .map_err(|_| unreachable(format!("bad port {}", endpoint.port)))?;
    let addr = (endpoint.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("{}: {e}", endpoint.host)))?
        .next()
        .ok_or_else(|| unreachable(format!("{} resolves to no address", endpoint.host)))?;
    Ok(BrokerAddress {
        host: endpoint.host.clone(),
        addr,
    })
}
