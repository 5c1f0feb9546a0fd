//! One client connection: read frames, hand each request to the dispatcher as its own task, and
//! write the responses back strictly in request order (clients pipeline; KAFKA-COMPAT trap 17).
//!
//! The reader spawns one task per request and queues its handle; the writer awaits the handles
//! in queue order. Produce ordering holds because tasks start in spawn order and a partition log
//! assigns offsets when an append is first polled. The queue is bounded
//! (`max_in_flight_requests`): when full, the reader stops reading and TCP pushes back.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use ringbroker_protocol::frame::{self, FRAME_PREFIX_BYTES};

use super::dispatch::{self, Outcome, Part};
use super::sendfile;
use crate::metrics::{hooks, ShardMetrics};
use crate::shard::Shard;
use ringbroker_protocol::api_versions::{is_served, supported_range};

/// A connection with no request for this long is closed (Kafka `connections.max.idle.ms`).
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// A frame whose body does not arrive within this long is a slow-loris: close the connection.
pub const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Frame bodies are read in steps of at least this size (doubling with what has arrived).
pub const FRAME_READ_CHUNK_BYTES: usize = 64 * 1024;

/// A request whose response the writer awaits, with what its metrics need.
struct InFlight {
    task: JoinHandle<Outcome>,
    api_key: i16,
    /// When its frame was read (only when metrics are on).
    received: Option<Instant>,
}

/// Serves one accepted connection until the peer closes it or breaks the protocol.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let socket = stream.as_raw_fd();
    if let Err(e) = sendfile::set_send_timeout(socket) {
        tracing::debug!(%peer, error = %e, "cannot set the socket send timeout");
    }
    // `stream`'s halves live until both tasks below end, so `socket` stays valid for sendfile.
    let (reader, writer) = stream.split();
    let (queue_tx, queue_rx) = local_channel::new_bounded(shard.config.max_in_flight_requests);
    let metrics = shard.metrics.clone();
    let writer_task = glommio::spawn_local(write_responses(
        writer,
        socket,
        queue_rx,
        peer.clone(),
        metrics,
    ));
    read_requests(&shard, reader, &queue_tx, &peer).await;
    drop(queue_tx);
    writer_task.await;
}

/// Reads frames until EOF, idleness, or a protocol violation; each request becomes a task in the
/// queue.
async fn read_requests(
    shard: &Rc<Shard>,
    mut reader: ReadHalf<TcpStream>,
    queue: &local_channel::LocalSender<InFlight>,
    peer: &str,
) {
    let max_request_bytes = shard.config.max_request_bytes;
    loop {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        match with_timeout(CONNECTION_IDLE_TIMEOUT, reader.read_exact(&mut prefix)).await {
            None => {
                tracing::info!(%peer, idle_s = CONNECTION_IDLE_TIMEOUT.as_secs(), "closing idle connection");
                return;
            }
            Some(Err(e)) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "connection read failed");
                }
                return;
            }
            Some(Ok(())) => {}
        }
        let prefix_read = hooks::now(shard.metrics());
        let size = match frame::frame_size(prefix, max_request_bytes) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame size");
                return;
            }
        };
        let body = match with_timeout(FRAME_BODY_TIMEOUT, read_body(&mut reader, size)).await {
            Some(Ok(body)) => body,
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, size, "closing connection: truncated frame");
                return;
            }
            None => {
                tracing::warn!(%peer, size, timeout_s = FRAME_BODY_TIMEOUT.as_secs(), "closing connection: frame body too slow");
                return;
            }
        };
        let received = hooks::now(shard.metrics());
        let api_key = frame::request_prefix(&body).map_or(-1, |p| p.api_key);
        hooks::frame_read(shard.metrics(), api_key, prefix_read, received);
        let Some(task) = admit(shard, body, peer, received) else {
            return;
        };
        let in_flight = InFlight {
            task,
            api_key,
            received,
        };
        if queue.send(in_flight).await.is_err() {
            return;
        }
    }
}

/// Reads a frame body of `size` bytes, growing the buffer as bytes arrive: a peer that claims a
/// large frame and sends nothing holds at most `FRAME_READ_CHUNK_BYTES`, not the claimed size.
async fn read_body(reader: &mut ReadHalf<TcpStream>, size: usize) -> std::io::Result<BytesMut> {
    let mut body = BytesMut::with_capacity(size.min(FRAME_READ_CHUNK_BYTES));
    while body.len() < size {
        let start = body.len();
        let want = (size - start).min(FRAME_READ_CHUNK_BYTES.max(start));
        body.resize(start + want, 0);
        reader.read_exact(&mut body[start..]).await?;
    }
    debug_assert_eq!(body.len(), size);
    Ok(body)
}

/// Runs `fut` for at most `limit`; `None` when time ran out.
async fn with_timeout<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let timer = glommio::timer::sleep(limit);
    futures::pin_mut!(fut);
    futures::pin_mut!(timer);
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((output, _)) => Some(output),
        futures::future::Either::Right(_) => None,
    }
}

/// Checks a frame's api and version and spawns its handler. `None` closes the connection.
fn admit(
    shard: &Rc<Shard>,
    body: BytesMut,
    peer: &str,
    received: Option<Instant>,
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
    let peer = peer.to_string();
    Some(
        glommio::spawn_local(async move {
            hooks::handler_started(shard.metrics(), prefix.api_key, received);
            dispatch::handle(&shard, request, &peer).await
        })
        .detach(),
    )
}

/// Parts smaller than this are copied into one buffer so a response goes out in few `send`s;
/// larger parts (record data) are written as they are.
pub const COALESCE_BELOW_BYTES: usize = 64 * 1024;

/// Writes each request's response in request order; stops at the first `Close`.
async fn write_responses(
    mut writer: WriteHalf<TcpStream>,
    socket: RawFd,
    queue: LocalReceiver<InFlight>,
    peer: String,
    metrics: Option<Arc<ShardMetrics>>,
) {
    let metrics = metrics.as_deref();
    let mut pending = BytesMut::with_capacity(COALESCE_BELOW_BYTES);
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
        if let Err(e) = write_parts(&mut writer, socket, &mut pending, parts).await {
            tracing::debug!(%peer, error = %e, "connection write failed");
            return;
        }
        hooks::responded(metrics, request.api_key, request.received, write_started);
    }
    let _ = writer.close().await;
}

/// Writes one response: small parts are gathered into `pending` so they go out in few sends;
/// large byte parts are written directly and file ranges go by `sendfile`.
async fn write_parts(
    writer: &mut WriteHalf<TcpStream>,
    socket: RawFd,
    pending: &mut BytesMut,
    parts: Vec<Part>,
) -> std::io::Result<()> {
    for part in parts {
        match part {
            Part::Bytes(bytes) if bytes.len() < COALESCE_BELOW_BYTES => {
                pending.extend_from_slice(&bytes);
                if pending.len() >= COALESCE_BELOW_BYTES {
                    writer.write_all(pending).await?;
                    pending.clear();
                }
            }
            Part::Bytes(bytes) => {
                if !pending.is_empty() {
                    writer.write_all(pending).await?;
                    pending.clear();
                }
                writer.write_all(&bytes).await?;
            }
            Part::File(range) => {
                if !pending.is_empty() {
                    writer.write_all(pending).await?;
                    pending.clear();
                }
                writer.flush().await?;
                glommio::executor()
                    .spawn_blocking(move || sendfile::send_range(socket, &range))
                    .await?;
            }
        }
    }
    // The response must not sit in our buffer while the client waits for it.
    if !pending.is_empty() {
        writer.write_all(pending).await?;
        pending.clear();
    }
    Ok(())
}
