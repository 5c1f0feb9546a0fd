//! One client connection: read frames, hand each request to the dispatcher as its own task, and
//! write the responses back strictly in request order (clients pipeline; KAFKA-COMPAT trap 17).
//!
//! The reader spawns one task per request and queues its handle; the writer awaits the handles
//! in queue order. Produce ordering holds because tasks start in spawn order and a partition log
//! assigns offsets when an append is first polled. The queue is bounded
//! (`max_in_flight_requests`): when full, the reader stops reading and TCP pushes back.

use std::rc::Rc;

use bytes::BytesMut;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use ringbroker_protocol::frame::{self, FRAME_PREFIX_BYTES};

use super::api_versions::{is_served, supported_range};
use super::dispatch::{self, Outcome};
use crate::shard::Shard;

/// Serves one accepted connection until the peer closes it or breaks the protocol.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let (reader, writer) = stream.split();
    let (queue_tx, queue_rx) = local_channel::new_bounded(shard.config.max_in_flight_requests);
    let writer_task = glommio::spawn_local(write_responses(writer, queue_rx, peer.clone()));
    read_requests(&shard, reader, &queue_tx, &peer).await;
    drop(queue_tx);
    writer_task.await;
}

/// Reads frames until EOF or a protocol violation; each request becomes a task in the queue.
async fn read_requests(
    shard: &Rc<Shard>,
    mut reader: ReadHalf<TcpStream>,
    queue: &local_channel::LocalSender<JoinHandle<Outcome>>,
    peer: &str,
) {
    let max_request_bytes = shard.config.max_request_bytes;
    loop {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        if let Err(e) = reader.read_exact(&mut prefix).await {
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                tracing::debug!(%peer, error = %e, "connection read failed");
            }
            return;
        }
        let size = match frame::frame_size(prefix, max_request_bytes) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame size");
                return;
            }
        };
        let mut body = BytesMut::zeroed(size);
        if let Err(e) = reader.read_exact(&mut body).await {
            tracing::warn!(%peer, error = %e, size, "closing connection: truncated frame");
            return;
        }
        let Some(task) = admit(shard, body, peer) else {
            return;
        };
        if queue.send(task).await.is_err() {
            return;
        }
    }
}

/// Checks a frame's api and version and spawns its handler. `None` closes the connection.
fn admit(shard: &Rc<Shard>, body: BytesMut, peer: &str) -> Option<JoinHandle<Outcome>> {
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
                glommio::spawn_local(async move { Outcome::Reply(vec![reply.freeze()]) }).detach(),
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
        glommio::spawn_local(async move { dispatch::handle(&shard, request, &peer).await })
            .detach(),
    )
}

/// Parts smaller than this are copied into one buffer so a response goes out in few `send`s;
/// larger parts (record data) are written as they are.
pub const COALESCE_BELOW_BYTES: usize = 64 * 1024;

/// Writes each request's response in request order; stops at the first `Close`.
async fn write_responses(
    mut writer: WriteHalf<TcpStream>,
    queue: LocalReceiver<JoinHandle<Outcome>>,
    peer: String,
) {
    let mut pending = BytesMut::with_capacity(COALESCE_BELOW_BYTES);
    while let Some(task) = queue.recv().await {
        let parts = match task.await {
            Some(Outcome::Reply(parts)) => parts,
            Some(Outcome::NoReply) => continue,
            Some(Outcome::Close) | None => break,
        };
        for part in parts {
            if part.len() < COALESCE_BELOW_BYTES {
                pending.extend_from_slice(&part);
                if pending.len() < COALESCE_BELOW_BYTES {
                    continue;
                }
            }
            if !pending.is_empty() {
                if let Err(e) = writer.write_all(&pending).await {
                    tracing::debug!(%peer, error = %e, "connection write failed");
                    return;
                }
                pending.clear();
            }
            if part.len() >= COALESCE_BELOW_BYTES {
                if let Err(e) = writer.write_all(&part).await {
                    tracing::debug!(%peer, error = %e, "connection write failed");
                    return;
                }
            }
        }
        // Flush at the end of each response: it must not sit in our buffer while the client
        // waits for it.
        if !pending.is_empty() {
            if let Err(e) = writer.write_all(&pending).await {
                tracing::debug!(%peer, error = %e, "connection write failed");
                return;
            }
            pending.clear();
        }
    }
    if !pending.is_empty() {
        let _ = writer.write_all(&pending).await;
    }
    let _ = writer.close().await;
}
