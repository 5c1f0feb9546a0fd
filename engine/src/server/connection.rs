//! One client connection: read frames, hand each request to the dispatcher as its own task, and
//! write the responses back strictly in request order (clients pipeline; docs/COMPATIBILITY.md trap 17).
//!
//! The reader cuts frames from the connection's read buffer (`frame_reader`: one `recv` serves every
//! frame it brought, pipelined requests included), spawns one task per request and queues its
//! handle; the writer awaits the handles in queue order. Produce ordering holds because tasks
//! start in spawn order and a partition log assigns offsets when an append is first polled. Two
//! bounds stop the reader (and TCP pushes back on the client) until responses drain:
//! `max_in_flight_requests` (the queue) and `max_in_flight_bytes_per_connection` (request bytes
//! read but not yet answered, Kafka's memory-pool mute), so a client that pipelines without
//! reading answers costs bounded memory: those bounds plus one read buffer.
//!
//! Security (`security`): on an SSL or SASL_SSL listener the TLS handshake comes first (bounded
//! by `request_read_timeout_ms`; a client that does not speak TLS is closed); on a SASL listener
//! every request goes through the connection's `SaslSession` until the client is authenticated.
//!
//! Timeouts: a connection with no request for `connections_max_idle_ms` is closed (Kafka's
//! `connections.max.idle.ms`); a frame must arrive whole within `request_read_timeout_ms` of its
//! first byte (time spent waiting for our own in-flight budget not counted), which cuts off
//! slow-loris clients; a peer that accepts no byte of a response for
//! `connections_max_write_stall_ms` is cut off too (`writer`). Each connection is its own pair of
//! tasks and every socket write is non-blocking, so a slow client never blocks the others.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::io::{AsyncReadExt, ReadHalf};
use futures_rustls::TlsAcceptor;
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use ringbroker_protocol::frame::{self, FrameError};

use super::dispatch::{self, Outcome, Part};
use super::frame_reader::{FrameReadError, FrameReader};
use super::sendfile;
use super::writer::{with_timeout, ResponseWriter, WriteError};
use crate::metrics::{hooks, ShardMetrics};
use crate::security::acl::Session;
use crate::security::sasl::session::{Gate, SaslSession};
use crate::security::sasl::MAX_UNAUTHENTICATED_REQUEST_BYTES;
use crate::security::stream::ClientStream;
use crate::security::tls_socket::{TlsSocket, TLS_SEND_BUFFER_BYTES};
use crate::security::{principal, ClientListener};
use crate::shard::Shard;
use ringbroker_protocol::api_versions::{is_served, supported_range};

/// A request whose response the writer awaits, with what its metrics need.
struct InFlight {
    task: JoinHandle<Outcome>,
    api_key: i16,
    /// When its frame was read (only when metrics are on).
    received: Option<hooks::Stamp>,
    /// Its share of `max_in_flight_bytes_per_connection`, given back once the response is written.
    _bytes: StaticPermit,
}

/// The connection's request frames (`frame_reader`: one read serves every frame it brought).
type Frames = FrameReader<ReadHalf<ClientStream>>;

/// The per-connection limits, from the broker's settings.
struct Limits {
    max_request_bytes: usize,
    idle: Duration,
    request_read: Duration,
}

/// Serves one accepted connection of `listener` until the peer closes it or breaks the protocol.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, listener: Rc<ClientListener>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let socket = stream.as_raw_fd();
    if let Err(e) = sendfile::set_nonblocking(socket) {
        // sendfile on a blocking socket would block the shard: refuse to serve instead.
        tracing::warn!(%peer, error = %e, "closing connection: cannot make the socket non-blocking");
        return;
    }
    let Some((stream, principal)) = secure(&shard, stream, &listener, &peer).await else {
        return;
    };
    let sendfile_socket = stream.sendfile_socket();
    debug_assert_eq!(sendfile_socket.is_some(), !listener.protocol.uses_tls());
    let sasl = listener.protocol.uses_sasl().then(|| {
        SaslSession::new(
            shard.config.security.sasl_mechanisms.as_slice().into(),
            shard.config.security.credentials.clone(),
            peer.clone(),
            Some(Duration::from_millis(
                shard.config.security.connections_max_reauth_ms,
            )),
        )
    });
    // `stream`'s halves live until both tasks below end, so `socket` stays valid for sendfile.
    let (reader, writer) = stream.split();
    let (queue_tx, queue_rx) = local_channel::new_bounded(shard.config.max_in_flight_requests);
    let metrics = shard.metrics.clone();
    let stall_limit = Duration::from_millis(shard.config.connections_max_write_stall_ms);
    let budget = Rc::new(Semaphore::new(
        shard.config.max_in_flight_bytes_per_connection as u64,
    ));
    let writer_task = glommio::spawn_local(write_responses(
        ResponseWriter::new(writer, sendfile_socket, stall_limit),
        socket,
        queue_rx,
        budget.clone(),
        peer.clone(),
        metrics,
    ));
    let session = Rc::new(Session::new(
        principal.clone(),
        &peer,
        shard.config.security.authorizer.clone(),
        shard.metrics.clone(),
    ));
    let connection = Connection {
        peer: Rc::from(peer),
        principal,
        listener,
        sasl,
        session,
    };
    read_requests(&shard, reader, &queue_tx, &budget, connection).await;
    drop(queue_tx);
    writer_task.await;
}

/// Wraps an accepted socket in TLS on SSL and SASL_SSL listeners (the handshake bounded by
/// `request_read_timeout_ms`), with the client's principal (its certificate's subject, or
/// anonymous). `None` closes the connection: the client does not speak TLS, or its certificate
/// was refused.
async fn secure(
    shard: &Shard,
    stream: TcpStream,
    listener: &ClientListener,
    peer: &str,
) -> Option<(ClientStream, String)> {
    if !listener.protocol.uses_tls() {
        return Some((
            ClientStream::Plain(stream),
            principal::ANONYMOUS.to_string(),
        ));
    }
    let Some(tls) = shard.config.security.tls.as_ref().map(|tls| tls.current()) else {
        // The settings layer refuses a TLS listener without a certificate; never serve it plain.
        tracing::error!(%peer, listener = %listener.protocol, "closing connection: TLS listener without a TLS configuration");
        return None;
    };
    let limit = Duration::from_millis(shard.config.request_read_timeout_ms);
    match with_timeout(limit, TlsAcceptor::from(tls).accept(TlsSocket(stream))).await {
        Some(Ok(mut tls_stream)) => {
            tls_stream
                .get_mut()
                .1
                .set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
            let certificate = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first());
            let principal = match certificate.map(|der| principal::of_certificate(der)) {
                None => principal::ANONYMOUS.to_string(),
                Some(Ok(principal)) => principal,
                Some(Err(e)) => {
                    tracing::warn!(%peer, listener = %listener.protocol, error = %e, "closing connection: client certificate");
                    return None;
                }
            };
            tracing::debug!(%peer, listener = %listener.protocol, %principal, "TLS connection");
            Some((ClientStream::Tls(Box::new(tls_stream)), principal))
        }
        Some(Err(e)) => {
            count(shard.metrics(), |m| &m.counters.tls_handshake_failures);
            tracing::warn!(%peer, listener = %listener.protocol, error = %e, "closing connection: TLS handshake failed");
            None
        }
        None => {
            count(shard.metrics(), |m| &m.counters.tls_handshake_failures);
            tracing::info!(%peer, listener = %listener.protocol, timeout_ms = limit.as_millis() as u64, "closing connection: TLS handshake too slow (request_read_timeout_ms)");
            None
        }
    }
}

/// What the reader knows about its connection.
struct Connection {
    /// Shared with every request's task (one reference count per request, not a copy).
    peer: Rc<str>,
    /// Kafka's principal of the client before SASL: its certificate's subject, or anonymous.
    principal: String,
    /// The listener it came in on (Metadata advertises it).
    listener: Rc<ClientListener>,
    /// The SASL exchange, on SASL listeners.
    sasl: Option<SaslSession>,
    /// What the authorizer knows of the client (`acl::Session`), shared with its requests.
    session: Rc<Session>,
}

impl Connection {
    /// Whether requests are still gated by SASL.
    fn authenticating(&self) -> bool {
        self.sasl.as_ref().is_some_and(|s| !s.is_authenticated())
    }

    /// Gives the requests the SASL principal once the client has authenticated (a
    /// re-authentication keeps the principal, so this changes it once per connection).
    fn follow_authentication(&mut self, shard: &Shard) {
        let Some(principal) = self.sasl.as_ref().and_then(|s| s.principal()) else {
            return;
        };
        if principal != self.session.principal() {
            self.session = Rc::new(Session::new(
                principal.to_string(),
                &self.peer,
                shard.config.security.authorizer.clone(),
                shard.metrics.clone(),
            ));
        }
    }
}

/// Reads frames until EOF, idleness, or a protocol violation; each request becomes a task in the
/// queue.
async fn read_requests(
    shard: &Rc<Shard>,
    reader: ReadHalf<ClientStream>,
    queue: &local_channel::LocalSender<InFlight>,
    budget: &Rc<Semaphore>,
    mut connection: Connection,
) {
    let peer = connection.peer.clone();
    let peer = &*peer;
    let config = &shard.config;
    let limits = Limits {
        max_request_bytes: config.max_request_bytes,
        idle: Duration::from_millis(config.connections_max_idle_ms),
        request_read: Duration::from_millis(config.request_read_timeout_ms),
    };
    let budget_bytes = config.max_in_flight_bytes_per_connection;
    let mut frames = FrameReader::new(reader);
    loop {
        // An unauthenticated client only sends small SASL requests (Kafka's
        // sasl.server.max.receive.size).
        let max_request_bytes = if connection.authenticating() {
            limits
                .max_request_bytes
                .min(MAX_UNAUTHENTICATED_REQUEST_BYTES)
        } else {
            limits.max_request_bytes
        };
        let (size, prefix_took) = match read_frame_size(
            &mut frames,
            &limits,
            max_request_bytes,
            peer,
        )
        .await
        {
            Some((Ok(size), took)) => (size, took),
            None => return,
            Some((Err(e), _)) if connection.authenticating() => {
                count(shard.metrics(), |m| {
                    &m.counters.sasl_authentication_failures
                });
                tracing::warn!(%peer, error = %e, limit_bytes = MAX_UNAUTHENTICATED_REQUEST_BYTES, "closing connection: request too large before SASL authentication (Kafka's sasl.server.max.receive.size)");
                return;
            }
            Some((Err(e), _)) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame size");
                return;
            }
        };
        let prefix_read = hooks::now(shard.metrics());
        // Backpressure before the body is read: a request larger than the whole budget waits
        // until it is the only one in flight (it is bounded by max_request_bytes).
        let units = size.min(budget_bytes) as u64;
        let Some(permit) = acquire_budget(budget, units, shard.metrics()).await else {
            return;
        };
        // One deadline for the whole frame: what the prefix took is gone from the body's time.
        let body_time = limits.request_read.saturating_sub(prefix_took);
        let body = match with_timeout(body_time, frames.read_body(size)).await {
            Some(Ok(body)) => body,
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, size, "closing connection: truncated frame");
                return;
            }
            None => {
                tracing::warn!(%peer, size, timeout_ms = limits.request_read.as_millis() as u64, "closing connection: frame body too slow (request_read_timeout_ms)");
                return;
            }
        };
        let received = hooks::now(shard.metrics());
        let api_key = frame::request_prefix(&body).map_or(-1, |p| p.api_key);
        hooks::frame_read(shard.metrics(), api_key, prefix_read, received);
        if connection
            .sasl
            .as_ref()
            .is_some_and(|s| s.expired(Instant::now()))
        {
            // Kafka's expired-connections-killed: the client did not re-authenticate in time.
            count(shard.metrics(), |m| {
                &m.counters.sasl_expired_sessions_closed
            });
            tracing::info!(%peer, principal = %connection.session.principal(), "closing connection: SASL session expired without re-authentication (connections.max.reauth.ms)");
            return;
        }
        let gated = gate(&mut connection, body);
        if connection
            .sasl
            .as_mut()
            .is_some_and(SaslSession::take_reauthenticated)
        {
            count(shard.metrics(), |m| &m.counters.sasl_reauthentications);
        }
        connection.follow_authentication(shard);
        let (task, then_close) = match gated {
            Ok(body) => match admit(shard, body, peer, &connection, received) {
                Some(task) => (task, false),
                None => return,
            },
            Err(GateOutcome::Reply(reply, then_close)) => {
                if then_close {
                    count(shard.metrics(), |m| {
                        &m.counters.sasl_authentication_failures
                    });
                }
                (ready_reply(reply), then_close)
            }
            Err(GateOutcome::Close(reason)) => {
                count(shard.metrics(), |m| {
                    &m.counters.sasl_authentication_failures
                });
                tracing::warn!(%peer, principal = %connection.principal, listener = %connection.listener.protocol, reason = %reason, "closing connection: SASL");
                return;
            }
        };
        let in_flight = InFlight {
            task,
            api_key,
            received,
            _bytes: permit,
        };
        if queue.send(in_flight).await.is_err() || then_close {
            return;
        }
    }
}

/// What the SASL gate made of a request that is not served as usual.
enum GateOutcome {
    /// Answer with this frame; close the connection after it when the flag is set.
    Reply(bytes::Bytes, bool),
    Close(String),
}

/// Passes `body` on unless the connection is still authenticating and the request is part of (or
/// breaks) the SASL exchange.
fn gate(connection: &mut Connection, body: BytesMut) -> Result<BytesMut, GateOutcome> {
    let Some(session) = connection.sasl.as_mut() else {
        return Ok(body);
    };
    if session.is_authenticated() {
        // A SaslHandshake on an authenticated connection begins a re-authentication (KIP-368)
        // when the session allows one; otherwise it is served as usual (ILLEGAL_SASL_STATE).
        let handshake =
            frame::request_prefix(&body).is_ok_and(|p| p.api_key == ApiKey::SaslHandshake as i16);
        if !(handshake && session.begin_reauthentication(Instant::now())) {
            return Ok(body);
        }
    }
    // The gate consumes the frame; ApiVersions is the one request it passes, and it is small.
    match session.gate(body.clone()) {
        Gate::Pass => Ok(body),
        Gate::Reply(reply) => Err(GateOutcome::Reply(reply, false)),
        Gate::ReplyAndClose(reply) => Err(GateOutcome::Reply(reply, true)),
        Gate::Close(reason) => Err(GateOutcome::Close(reason)),
    }
}

/// Adds one to a counter of the shard's metrics, when metrics are on.
fn count(
    metrics: Option<&ShardMetrics>,
    counter: impl Fn(&ShardMetrics) -> &std::sync::atomic::AtomicU64,
) {
    if let Some(m) = metrics {
        ShardMetrics::add(counter(m), 1);
    }
}

/// A task that is already done with `reply`, to queue in request order.
fn ready_reply(reply: bytes::Bytes) -> JoinHandle<Outcome> {
    glommio::spawn_local(async move { Outcome::Reply(vec![Part::Bytes(reply)]) }).detach()
}

/// Takes `units` of the connection's in-flight budget. When it is spent the reader stops reading
/// the socket until responses free it, and that pause is counted; the common path is one
/// `try_acquire` and touches no metric.
async fn acquire_budget(
    budget: &Rc<Semaphore>,
    units: u64,
    metrics: Option<&ShardMetrics>,
) -> Option<StaticPermit> {
    if let Ok(permit) = budget.try_acquire_static_permit(units) {
        return Some(permit);
    }
    hooks::read_paused(metrics, budget.acquire_static_permit(units))
        .await
        .ok()
}

/// Reads the next frame's size prefix and checks it against `max_request_bytes`: waiting for the
/// first bytes may take `limits.idle` (an idle connection), the rest of the prefix must follow
/// within `limits.request_read`. No system call when the prefix is already buffered. Returns the
/// size (or why it is refused) and how long the prefix took after its first bytes; `None` closes
/// the connection (end of stream, idleness, a failed or too slow read).
async fn read_frame_size(
    frames: &mut Frames,
    limits: &Limits,
    max_request_bytes: usize,
    peer: &str,
) -> Option<(Result<usize, FrameError>, Duration)> {
    if frames.buffered() == 0 {
        match with_timeout(limits.idle, frames.read_more()).await {
            None => {
                tracing::info!(%peer, idle_ms = limits.idle.as_millis() as u64, "closing idle connection (connections_max_idle_ms)");
                return None;
            }
            Some(Ok(0)) => return None, // the peer closed the connection
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                return None;
            }
        }
    }
    // Bytes already buffered arrived with the previous read: the prefix's time counts from now.
    let first_bytes_at = Instant::now();
    let size = match with_timeout(
        limits.request_read,
        frames.read_frame_size(max_request_bytes),
    )
    .await
    {
        None => {
            tracing::warn!(%peer, timeout_ms = limits.request_read.as_millis() as u64, "closing connection: frame size prefix too slow (request_read_timeout_ms)");
            return None;
        }
        Some(Ok(size)) => Ok(size),
        Some(Err(FrameReadError::Frame(e))) => Err(e),
        Some(Err(FrameReadError::Io(e))) => {
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                tracing::debug!(%peer, error = %e, "connection read failed");
            }
            return None;
        }
    };
    Some((size, first_bytes_at.elapsed()))
}

/// Checks a frame's api and version and spawns its handler. `None` closes the connection.
fn admit(
    shard: &Rc<Shard>,
    body: BytesMut,
    peer: &str,
    connection: &Connection,
    received: Option<hooks::Stamp>,
) -> Option<JoinHandle<Outcome>> {
    let prefix = match frame::request_prefix(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection: bad request header");
            return None;
        }
    };
    let api = ApiKey::try_from(prefix.api_key).ok();
    let served = api.is_some_and(|api| is_served(api, prefix.api_version));
    if !served {
        if api == Some(ApiKey::ApiVersions) {
            // KIP-511: answer an unknown ApiVersions version with a v0 body listing our range.
            let max = supported_range(ApiKey::ApiVersions).map_or(0, |r| r.1);
            let reply = frame::unsupported_api_versions_response(prefix.correlation_id, max);
            return Some(
                glommio::spawn_local(
                    async move { Outcome::Reply(vec![Part::Bytes(reply.freeze())]) },
                )
                .detach(),
            );
        }
        tracing::warn!(
            %peer,
            api_key = prefix.api_key,
            api_version = prefix.api_version,
            correlation_id = prefix.correlation_id,
            "closing connection: unsupported api key or version"
        );
        return None;
    }
    let request = match frame::decode_request(body.freeze()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection: malformed request header");
            return None;
        }
    };
    let shard = shard.clone();
    let peer = connection.peer.clone();
    let listener = connection.listener.clone();
    let session = connection.session.clone();
    Some(
        glommio::spawn_local(async move {
            hooks::handler_started(shard.metrics(), prefix.api_key, received);
            dispatch::handle(&shard, request, &peer, &listener, &session).await
        })
        .detach(),
    )
}

/// Writes each request's response in request order; stops at the first `Close` or failed write.
/// A failed write shuts the socket down and every way out closes the in-flight `budget`, so the
/// connection's reader ends wherever it waits (a read sees the end of the stream, an acquire of
/// the budget fails, a full queue's send sees no receiver): a stalled peer's connection goes away
/// as a whole, with the requests it had queued.
async fn write_responses(
    writer: ResponseWriter,
    socket: RawFd,
    queue: LocalReceiver<InFlight>,
    budget: Rc<Semaphore>,
    peer: String,
    metrics: Option<Arc<ShardMetrics>>,
) {
    write_in_order(writer, socket, &queue, &peer, metrics.as_deref()).await;
    budget.close();
}

async fn write_in_order(
    mut writer: ResponseWriter,
    socket: RawFd,
    queue: &LocalReceiver<InFlight>,
    peer: &str,
    metrics: Option<&ShardMetrics>,
) {
    while let Some(request) = queue.recv().await {
        let parts = match request.task.await {
            Some(Outcome::Reply(parts)) => parts,
            Some(Outcome::NoReply) => {
                hooks::responded(metrics, request.api_key, request.received, None);
                continue;
            }
            Some(Outcome::Close) | None => break,
        };
        hooks::sending(metrics, &parts);
        let write_started = hooks::now(metrics);
        if let Err(e) = writer.write_parts(parts).await {
            match &e {
                WriteError::Stalled(_) => {
                    tracing::warn!(%peer, error = %e, "closing connection: the client stopped reading")
                }
                WriteError::Io(io) if sendfile::FileReplaced::is(io) => {
                    // Rare (a send delayed past compaction's grace period) and worth knowing about.
                    tracing::warn!(%peer, error = %e, "closing the connection: a fetch's segment file was replaced before it was sent; the client fetches again")
                }
                WriteError::Io(_) => tracing::debug!(%peer, error = %e, "connection write failed"),
            }
            shutdown(socket);
            return;
        }
        hooks::responded(metrics, request.api_key, request.received, write_started);
    }
    writer.close().await;
}

/// Shuts both directions of the socket down (the descriptor stays open until the stream drops).
fn shutdown(socket: RawFd) {
    // SAFETY: `socket` is the connection's open descriptor (its stream outlives both tasks);
    // shutdown only changes the connection's state.
    unsafe {
        libc::shutdown(socket, libc::SHUT_RDWR);
    }
}
