//! Requests to a controller's RPC handler, usable without a local quorum (a broker-only node
//! talks to the active controller with it). One connection per address, reused by every call
//! and shared by calls in flight (matched by correlation id); a failed connect waits a growing
//! backoff before the next; calls in flight per address and frame sizes are bounded; a broken
//! or malformed answer stream fails the calls of that connection only. A connection that stayed
//! silent for a whole call timeout is presumed dead (a cut network keeps TCP connections open for
//! minutes) and replaced by the next call.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncReadExt};
use futures::{pin_mut, select_biased, FutureExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use thiserror::Error;

use super::frame::{self, FrameKind};
use super::writer::write_frames;
use crate::watch::{within, Watch};

/// How long a connection attempt to a controller may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// First wait after a failed connection attempt before the next one.
pub const DEFAULT_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts (doubling from the minimum). Kafka's
/// `reconnect.backoff.max.ms` default is 1 s as well.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Calls in flight to one address; more fail at once with `QueueFull` rather than queue without
/// bound behind a slow controller.
pub const DEFAULT_MAX_IN_FLIGHT_PER_PEER: usize = 256;

#[derive(Clone, Debug)]
pub struct RpcClientConfig {
    pub connect_timeout: Duration,
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    pub max_in_flight_per_peer: usize,
}

impl Default for RpcClientConfig {
    fn default() -> Self {
        RpcClientConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_backoff_min: DEFAULT_RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            max_in_flight_per_peer: DEFAULT_MAX_IN_FLIGHT_PER_PEER,
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RpcError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("the connection to {addr} closed before the answer: {reason}")]
    Disconnected { addr: SocketAddr, reason: String },
    #[error("{limit} requests to {addr} are already in flight; retry later")]
    QueueFull { addr: SocketAddr, limit: usize },
    #[error("{addr} answered with an error: {message}")]
    Remote { addr: SocketAddr, message: String },
    #[error("the request cannot be sent: {0}")]
    TooLarge(String),
}

type Pending = RefCell<HashMap<u64, oneshot::Sender<Result<Bytes, RpcError>>>>;

/// Calls to controllers over reused connections.
pub struct RpcClient {
    config: RpcClientConfig,
    peers: RefCell<HashMap<SocketAddr, Rc<Peer>>>,
    next_correlation_id: Cell<u64>,
}

struct Peer {
    addr: SocketAddr,
    connection: RefCell<Option<Rc<Connection>>>,
    /// One connection attempt at a time per address.
    connecting: Semaphore,
    retry_at: Cell<Instant>,
    backoff: Cell<Duration>,
    last_failure: RefCell<String>,
}

/// A live connection: the queue its writer drains, the calls awaiting answers, and whether its
/// task has ended. Dropping it (with the client) closes the queue, which ends the task.
struct Connection {
    outbound: LocalSender<Vec<u8>>,
    pending: Rc<Pending>,
    /// Set to 1 when the connection's task ends, or to end it.
    closed: Rc<Watch>,
    /// When the last frame arrived (or the connection was made).
    last_heard: Rc<Cell<Instant>>,
}

impl RpcClient {
    pub fn new(config: RpcClientConfig) -> Rc<RpcClient> {
        Rc::new(RpcClient {
            config,
            peers: RefCell::new(HashMap::new()),
            next_correlation_id: Cell::new(1),
        })
    }

    /// Sends a request to `addr` and waits up to `timeout` (connecting included) for the answer.
    pub async fn call(
        &self,
        addr: SocketAddr,
        api: u16,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let deadline = Instant::now() + timeout;
        let work = self.call_until(addr, api, payload, deadline);
        match within(timeout, work).await {
            Some(outcome) => outcome,
            None => {
                self.drop_if_silent(addr, timeout);
                Err(RpcError::Timeout {
                    addr,
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    /// Closes the connection to `addr` if nothing arrived on it for `silence`.
    fn drop_if_silent(&self, addr: SocketAddr, silence: Duration) {
        let peer = self.peers.borrow().get(&addr).cloned();
        let Some(peer) = peer else {
            return;
        };
        let Some(connection) = peer.live_connection() else {
            return;
        };
        if connection.last_heard.get().elapsed() >= silence {
            tracing::warn!(%addr, silent_ms = silence.as_millis() as u64,
                "rpc connection silent for a whole call timeout; replacing it");
            connection.closed.set(1);
            peer.connection.borrow_mut().take();
        }
    }

    async fn call_until(
        &self,
        addr: SocketAddr,
        api: u16,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Bytes, RpcError> {
        let encoded_request = |correlation_id| {
            frame::encode(FrameKind::Request, correlation_id, api, payload)
                .map_err(|error| RpcError::TooLarge(error.to_string()))
        };
        let peer = self.peer(addr);
        let connection = peer.connection(&self.config, deadline).await?;
        let limit = self.config.max_in_flight_per_peer;
        if connection.pending.borrow().len() >= limit {
            return Err(RpcError::QueueFull { addr, limit });
        }
        let correlation_id = self.next_correlation_id.get();
        self.next_correlation_id.set(correlation_id.wrapping_add(1));
        let request = encoded_request(correlation_id)?;
        let (reply, answer) = oneshot::channel();
        connection
            .pending
            .borrow_mut()
            .insert(correlation_id, reply);
        let _forget = ForgetOnDrop {
            pending: connection.pending.clone(),
            correlation_id,
        };
        if connection.outbound.try_send(request).is_err() {
            return Err(RpcError::QueueFull { addr, limit });
        }
        answer.await.unwrap_or_else(|_| {
            Err(RpcError::Disconnected {
                addr,
                reason: "the connection ended".into(),
            })
        })
    }

    fn peer(&self, addr: SocketAddr) -> Rc<Peer> {
        self.peers
            .borrow_mut()
            .entry(addr)
            .or_insert_with(|| {
                Rc::new(Peer {
                    addr,
                    connection: RefCell::new(None),
                    connecting: Semaphore::new(1),
                    retry_at: Cell::new(Instant::now()),
                    backoff: Cell::new(self.config.reconnect_backoff_min),
                    last_failure: RefCell::new(String::new()),
                })
            })
            .clone()
    }
}

/// Removes a call's entry when the call ends (answered, timed out or dropped).
struct ForgetOnDrop {
    pending: Rc<Pending>,
    correlation_id: u64,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.correlation_id);
    }
}

impl Peer {
    fn live_connection(&self) -> Option<Rc<Connection>> {
        self.connection
            .borrow()
            .as_ref()
            .filter(|connection| connection.closed.get() == 0)
            .cloned()
    }

    /// The live connection, or a new one (after the backoff, if it ends before `deadline`).
    async fn connection(
        &self,
        config: &RpcClientConfig,
        deadline: Instant,
    ) -> Result<Rc<Connection>, RpcError> {
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let _permit = self
            .connecting
            .acquire_permit(1)
            .await
            .map_err(|error| self.unreachable(error.to_string()))?;
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let retry_at = self.retry_at.get();
        if retry_at > Instant::now() {
            if retry_at >= deadline {
                let reason = format!(
                    "{} (next attempt in {} ms)",
                    self.last_failure.borrow(),
                    retry_at
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                );
                return Err(self.unreachable(reason));
            }
            glommio::timer::sleep(retry_at - Instant::now()).await;
        }
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(config.connect_timeout);
        match TcpStream::connect_timeout(self.addr, budget).await {
            Ok(stream) => {
                self.backoff.set(config.reconnect_backoff_min);
                let connection = Rc::new(start_connection(stream, self.addr, config));
                *self.connection.borrow_mut() = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                let backoff = self.backoff.get();
                self.retry_at.set(Instant::now() + backoff);
                self.backoff
                    .set((backoff * 2).min(config.reconnect_backoff_max));
                *self.last_failure.borrow_mut() = error.to_string();
                Err(self.unreachable(error.to_string()))
            }
        }
    }

    fn unreachable(&self, reason: String) -> RpcError {
        RpcError::Unreachable {
            addr: self.addr,
            reason,
        }
    }
}

/// Spawns the connection's task: its writer drains the queue, its reader matches answers to
/// calls. Whichever ends first (a write error, the queue closed, the server closing, a malformed
/// frame) ends the connection and fails the calls still waiting on it.
fn start_connection(stream: TcpStream, addr: SocketAddr, config: &RpcClientConfig) -> Connection {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%addr, %error, "cannot set TCP_NODELAY");
    }
    let (reader, writer) = stream.split();
    let (outbound, queue) = local_channel::new_bounded(config.max_in_flight_per_peer);
    let pending: Rc<Pending> = Rc::default();
    let closed = Rc::new(Watch::new(0));
    let last_heard = Rc::new(Cell::new(Instant::now()));
    let task_pending = pending.clone();
    let task_closed = closed.clone();
    let task_last_heard = last_heard.clone();
    glommio::spawn_local(async move {
        let reason = {
            let reading = read_answers(reader, addr, &task_pending, &task_last_heard).fuse();
            let writing = write_frames(writer, queue).fuse();
            let dropped = task_closed.wait_until(|value| value != 0).fuse();
            pin_mut!(reading, writing, dropped);
            select_biased! {
                _ = dropped => "it stayed silent for a whole call timeout".to_string(),
                reason = reading => reason,
                written = writing => match written {
                    Ok(()) => "the client was dropped".to_string(),
                    Err(error) => format!("write failed: {error}"),
                },
            }
        };
        task_closed.set(1);
        let waiting = std::mem::take(&mut *task_pending.borrow_mut());
        if !waiting.is_empty() {
            tracing::warn!(%addr, %reason, calls = waiting.len(), "rpc connection ended with calls in flight");
        }
        for (_, reply) in waiting {
            let _ = reply.send(Err(RpcError::Disconnected {
                addr,
                reason: reason.clone(),
            }));
        }
    })
    .detach();
    Connection {
        outbound,
        pending,
        closed,
        last_heard,
    }
}

/// Reads answers until the connection ends; returns why it ended.
async fn read_answers<R: AsyncRead + Unpin>(
    mut reader: R,
    addr: SocketAddr,
    pending: &Pending,
    last_heard: &Cell<Instant>,
) -> String {
    loop {
        let frame = match frame::read(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return "the server closed the connection".into(),
            Err(error) => return error.to_string(),
        };
        last_heard.set(Instant::now());
        let outcome = match frame.kind {
            FrameKind::Response => Ok(frame.payload),
            FrameKind::Error => Err(RpcError::Remote {
                addr,
                message: String::from_utf8_lossy(&frame.payload).into_owned(),
            }),
            other => {
                return format!(
                    "the server sent a {} frame",
                    other.variant_name().unwrap_or("unknown")
                )
            }
        };
        // No entry: the call timed out and left; its late answer is dropped.
        let reply = pending.borrow_mut().remove(&frame.correlation_id);
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}
