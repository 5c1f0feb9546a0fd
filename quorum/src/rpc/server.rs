//! The controller listener: accepts connections and serves each in its own task. Raft messages
//! go to the node (when the inbox is full the connection waits: TCP backpressure); requests go
//! to the [`RpcHandler`], each in its own task, and their answers return on the same connection.
//! A malformed frame, an oversized one or a message for another node closes that connection
//! only; a client that stops reading stalls only its own connection.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncReadExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Semaphore, StaticPermit};
use protobuf::Message as _;
use raft::eraftpb::Message;

use super::frame::{self, Frame, FrameKind};
use super::writer::write_frames;
use super::RpcHandler;
use crate::node::shared::Shared;
use crate::node::RaftInbox;
use crate::watch::Watch;

/// Connections served at once; more are closed at accept. A controller serves every broker of
/// the cluster (one connection each) and its peers: 1,024 covers large clusters while bounding
/// the tasks and buffers a connection flood can create.
pub const MAX_INBOUND_CONNECTIONS: usize = 1024;

/// Requests of one connection handled at once; the next frame is read when one finishes, so a
/// client cannot queue unbounded work. Broker heartbeats and forwarded admin requests share a
/// connection, so a slow request must not hold the others back: 64 in parallel.
pub const MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION: usize = 64;

/// Answers of one connection waiting to be written: one per request in flight.
const MAX_QUEUED_ANSWERS_PER_CONNECTION: usize = MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION;

/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every connection of the listener shares.
pub(crate) struct ServerContext {
    node_id: u64,
    voters: BTreeSet<u64>,
    raft_inbox: Option<RaftInbox>,
    handler: Option<Rc<dyn RpcHandler>>,
    shared: Rc<Shared>,
    open_connections: Watch,
    /// The id the next accepted connection gets (see `RpcHandler::handle_on`).
    next_connection_id: std::cell::Cell<u64>,
}

impl ServerContext {
    pub fn new(
        node_id: u64,
        voters: BTreeSet<u64>,
        raft_inbox: Option<RaftInbox>,
        handler: Option<Rc<dyn RpcHandler>>,
        shared: Rc<Shared>,
    ) -> Self {
        ServerContext {
            node_id,
            voters,
            raft_inbox,
            handler,
            shared,
            open_connections: Watch::new(0),
            next_connection_id: std::cell::Cell::new(1),
        }
    }

    /// Decodes a Raft message and hands it to the node; an error closes the connection.
    async fn deliver_raft(&self, payload: &Bytes) -> Result<(), String> {
        let message = Message::parse_from_carllerche_bytes(payload)
            .map_err(|error| format!("a raft message does not decode: {error}"))?;
        if message.to != self.node_id {
            return Err(format!(
                "a raft message for node {} reached node {}: check controller.quorum.voters",
                message.to, self.node_id
            ));
        }
        if !self.voters.contains(&message.from) {
            return Err(format!(
                "a raft message from node {}, which is not a voter",
                message.from
            ));
        }
        if self.shared.isolated.get() {
            return Ok(());
        }
        let Some(inbox) = &self.raft_inbox else {
            return Err("this node takes no raft messages".into());
        };
        inbox
            .send(message)
            .await
            .map_err(|_| "the quorum node stopped".to_string())
    }
}

/// Accepts connections until the quorum stops, then waits for them to close.
pub(crate) async fn serve(listener: TcpListener, context: Rc<ServerContext>) {
    loop {
        let accepted = context
            .shared
            .stopping
            .or_until_set(listener.accept())
            .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let open = context.open_connections.get();
                if open as usize >= MAX_INBOUND_CONNECTIONS {
                    tracing::warn!(peer = ?stream.peer_addr().ok(), limit = MAX_INBOUND_CONNECTIONS,
                        "controller listener: too many connections; closing the new one");
                    continue;
                }
                context.open_connections.set(open + 1);
                glommio::spawn_local(connection(stream, context.clone())).detach();
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "controller listener: accept failed");
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    drop(listener);
    context.open_connections.wait_until(|open| open == 0).await;
}

/// Sets the watch to 1 when dropped: the connection's request tasks stop with it.
struct CloseOnDrop(Rc<Watch>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.set(1);
    }
}

async fn connection(stream: TcpStream, context: Rc<ServerContext>) {
    let peer = stream.peer_addr().ok();
    let id = context.next_connection_id.get();
    context.next_connection_id.set(id + 1);
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(?peer, %error, "cannot set TCP_NODELAY");
    }
    let (reader, writer) = stream.split();
    let (answers, queue) = local_channel::new_bounded(MAX_QUEUED_ANSWERS_PER_CONNECTION);
    let closed = Rc::new(Watch::new(0));
    {
        let _close = CloseOnDrop(closed.clone());
        let reading = read_requests(reader, &context, Rc::new(answers), closed.clone(), peer, id);
        let writing = write_frames(writer, queue);
        let both = futures::future::join(reading, writing);
        if let Some((read, written)) = context.shared.stopping.or_until_set(both).await {
            if let Err(reason) = read {
                tracing::warn!(?peer, %reason, "controller listener: closing the connection");
            }
            if let Err(error) = written {
                tracing::debug!(?peer, %error, "controller listener: write failed");
            }
        }
    }
    if let Some(handler) = &context.handler {
        handler.connection_closed(id);
    }
    let open = context.open_connections.get();
    context.open_connections.set(open.saturating_sub(1));
}

/// Reads frames until the peer closes or sends something wrong. Dropping `answers` at the end
/// lets the writer finish once the last request task has answered.
async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    context: &ServerContext,
    answers: Rc<LocalSender<Vec<u8>>>,
    closed: Rc<Watch>,
    peer: Option<SocketAddr>,
    connection: u64,
) -> Result<(), String> {
    let in_flight = Rc::new(Semaphore::new(MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION as u64));
    let result = loop {
        let frame = match frame::read(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error.to_string()),
        };
        match frame.kind {
            FrameKind::RaftMessage => {
                if let Err(reason) = context.deliver_raft(&frame.payload).await {
                    break Err(reason);
                }
            }
            FrameKind::Request => {
                let Ok(permit) = in_flight.acquire_static_permit(1).await else {
                    break Ok(());
                };
                let task = answer(
                    context.handler.clone(),
                    connection,
                    frame,
                    answers.clone(),
                    closed.clone(),
                    permit,
                );
                glommio::spawn_local(task).detach();
            }
            other => {
                break Err(format!(
                    "a {:?} frame from {peer:?}, which only a server sends",
                    other.variant_name().unwrap_or("unknown")
                ))
            }
        }
    };
    closed.set(1);
    result
}

/// Runs one request through the handler and queues its answer, unless the connection closes
/// first.
async fn answer(
    handler: Option<Rc<dyn RpcHandler>>,
    connection: u64,
    request: Frame,
    answers: Rc<LocalSender<Vec<u8>>>,
    closed: Rc<Watch>,
    _permit: StaticPermit,
) {
    let Frame {
        correlation_id,
        api,
        payload,
        ..
    } = request;
    let outcome = match handler {
        None => Err("this node serves no requests (no RPC handler)".to_string()),
        Some(handler) => match closed
            .or_until_set(handler.handle_on(connection, api, payload))
            .await
        {
            Some(outcome) => outcome,
            None => return,
        },
    };
    let encoded = match outcome {
        Ok(body) => frame::encode(FrameKind::Response, correlation_id, api, &body),
        Err(message) => frame::encode(FrameKind::Error, correlation_id, api, message.as_bytes()),
    };
    let encoded = encoded.or_else(|error| {
        let message = format!("the answer could not be sent: {error}");
        frame::encode(FrameKind::Error, correlation_id, api, message.as_bytes())
    });
    let Ok(encoded) = encoded else {
        return;
    };
    // An error here means the connection closed; nobody is left to answer.
    let _ = closed.or_until_set(answers.send(encoded)).await;
}
