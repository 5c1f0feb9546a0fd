//! Raft traffic to the peers: one outbound connection per peer, fed by a bounded queue and
//! written by its own task. Nothing waits for a slow or dead peer: when the queue is full, the
//! connection is down or in its reconnect backoff, the message is dropped and raft-rs is told
//! the peer is unreachable (it retries with later appends and heartbeats). A lost snapshot is
//! reported as failed, a written one as sent.
//!
//! A connection whose peer went away is found before writing, not by the write: the first write
//! into a socket whose peer process died still succeeds (the bytes go out and the peer's kernel
//! answers with a reset), so the message would be lost silently. A lost vote request costs a
//! whole election timeout (1-2 s) on a controller fail-over; a dropped batch is written again on a
//! fresh connection once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::io::AsyncWriteExt;
use futures::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use super::frame::{self, FrameKind};
use super::writer::WRITE_COALESCE_BYTES;
use crate::config::QuorumConfig;
use crate::node::shared::Shared;
use crate::watch::within;

/// Raft messages queued for one peer. A leader sends a peer at most a heartbeat per tick plus
/// up to `max_inflight_appends` appends, so 1,024 absorbs bursts; past it the peer is not keeping
/// up and raft-rs is better told so than made to queue more.
pub const MAX_QUEUED_MESSAGES_PER_PEER: usize = 1024;

/// How long a connection attempt to a peer may take. Below the 1 s election timeout, so a peer
/// whose address black-holes packets does not hold messages for the others' elections long.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// First wait before reconnecting to a peer that refused or dropped a connection.
pub const PEER_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between attempts (doubling from the minimum): a restarted peer is reached again
/// within a second, well inside an election timeout of the others.
pub const PEER_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Longest a write to a peer may take. A peer behind a cut network accepts nothing once the
/// socket buffer is full, and TCP would retransmit with a growing backoff for minutes: past this,
/// the connection is dropped and a fresh one is made, which works as soon as the network heals.
/// One election timeout: by then raft has written the peer off anyway.
pub const PEER_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a link could not (or could) deliver, for the driver to tell raft-rs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkFeedback {
    Unreachable(u64),
    SnapshotFailed(u64),
    SnapshotSent(u64),
}

type Feedback = Rc<RefCell<Vec<LinkFeedback>>>;

/// The links to every peer.
pub(crate) struct PeerLinks {
    links: BTreeMap<u64, Link>,
    feedback: Feedback,
}

struct Link {
    queue: LocalSender<Message>,
    task: RefCell<Option<JoinHandle<()>>>,
}

impl PeerLinks {
    /// Starts one link task per peer of `config`.
    pub fn start(config: &QuorumConfig, shared: Rc<Shared>) -> Rc<PeerLinks> {
        let feedback: Feedback = Rc::default();
        let links = config
            .peers()
            .map(|(peer, addr)| {
                let (queue, receiver) = local_channel::new_bounded(MAX_QUEUED_MESSAGES_PER_PEER);
                let task = LinkTask {
                    node_id: config.node_id,
                    peer,
                    addr,
                    feedback: feedback.clone(),
                    shared: shared.clone(),
                };
                let handle = glommio::spawn_local(task.run(receiver)).detach();
                (
                    peer,
                    Link {
                        queue,
                        task: RefCell::new(Some(handle)),
                    },
                )
            })
            .collect();
        Rc::new(PeerLinks { links, feedback })
    }

    /// Queues `message` for its peer, or drops it (and reports why) without waiting.
    pub fn send(&self, message: Message) {
        let peer = message.to;
        let Some(link) = self.links.get(&peer) else {
            tracing::warn!(
                peer,
                "raft wants to reach a node that is not a peer; dropped"
            );
            return;
        };
        let snapshot = is_snapshot(&message);
        if link.queue.try_send(message).is_err() {
            report_dropped(&self.feedback, peer, snapshot);
        }
    }

    pub fn take_feedback(&self) -> Vec<LinkFeedback> {
        std::mem::take(&mut *self.feedback.borrow_mut())
    }

    /// Waits for the link tasks, which end on the quorum's stop signal.
    pub async fn stop(&self) {
        for link in self.links.values() {
            let task = link.task.borrow_mut().take();
            if let Some(task) = task {
                task.await;
            }
        }
    }
}

fn is_snapshot(message: &Message) -> bool {
    message.get_msg_type() == MessageType::MsgSnapshot
}

fn report_dropped(feedback: &Feedback, peer: u64, snapshot: bool) {
    let mut feedback = feedback.borrow_mut();
    if snapshot {
        feedback.push(LinkFeedback::SnapshotFailed(peer));
    }
    // One report per peer until the driver takes them: raft-rs only needs to know once.
    if !feedback.contains(&LinkFeedback::Unreachable(peer)) {
        feedback.push(LinkFeedback::Unreachable(peer));
    }
}

struct LinkTask {
    node_id: u64,
    peer: u64,
    addr: SocketAddr,
    feedback: Feedback,
    shared: Rc<Shared>,
}

/// The connection state of one link.
struct Connection {
    stream: Option<TcpStream>,
    /// No attempt before this instant.
    retry_at: Instant,
    backoff: Duration,
    /// Whether the last attempt failed (to log a failure once, not at every retry).
    failing: bool,
}

impl LinkTask {
    async fn run(self, queue: LocalReceiver<Message>) {
        let mut connection = Connection {
            stream: None,
            retry_at: Instant::now(),
            backoff: PEER_RECONNECT_BACKOFF_MIN,
            failing: false,
        };
        loop {
            let stopping = &self.shared.stopping;
            let Some(Some(first)) = stopping.or_until_set(queue.recv()).await else {
                break;
            };
            let mut batch = vec![first];
            let mut batch_bytes = 0;
            while batch_bytes < WRITE_COALESCE_BYTES {
                match queue.recv().now_or_never() {
                    Some(Some(message)) => {
                        batch_bytes += message.compute_size() as usize;
                        batch.push(message);
                    }
                    _ => break,
                }
            }
            let delivery = self.deliver(&mut connection, batch);
            if stopping.or_until_set(delivery).await.is_none() {
                break;
            }
        }
    }

    /// Writes a batch, connecting first if needed (or again, once, when the connection turns out
    /// to be dead); on a failure past that drops it and reports.
    async fn deliver(&self, connection: &mut Connection, batch: Vec<Message>) {
        let has_snapshot = batch.iter().any(is_snapshot);
        if connection
            .stream
            .as_ref()
            .is_some_and(|stream| peer_closed(stream.as_raw_fd()))
        {
            tracing::info!(node = self.node_id, peer = self.peer, addr = %self.addr,
                "raft connection closed by the peer; reconnecting");
            connection.stream = None;
            connection.retry_at = Instant::now();
        }
        let bytes = self.encode(&batch);
        for attempt in 0..2 {
            if connection.stream.is_none() && !self.connect(connection).await {
                break;
            }
            let Some(stream) = connection.stream.as_mut() else {
                break;
            };
            match write_within_timeout(stream, &bytes).await {
                Ok(()) => {
                    if has_snapshot {
                        self.feedback
                            .borrow_mut()
                            .push(LinkFeedback::SnapshotSent(self.peer));
                    }
                    return;
                }
                Err(error) => {
                    tracing::info!(node = self.node_id, peer = self.peer, addr = %self.addr,
                        %error, attempt, "raft connection to peer lost");
                    connection.stream = None;
                    // Reconnect at once: a restarted peer answers right away, an unreachable
                    // one costs one connect timeout and then the backoff.
                    connection.retry_at = Instant::now();
                }
            }
        }
        report_dropped(&self.feedback, self.peer, has_snapshot);
    }

    /// The frames of `batch`, back to back (a message that cannot be framed is dropped and
    /// reported).
    fn encode(&self, batch: &[Message]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for message in batch {
            match message.write_to_bytes() {
                Ok(payload) => match frame::encode(FrameKind::RaftMessage, 0, 0, &payload) {
                    Ok(encoded) => bytes.extend_from_slice(&encoded),
                    Err(error) => {
                        tracing::error!(peer = self.peer, %error, "raft message too large to send");
                        report_dropped(&self.feedback, self.peer, is_snapshot(message));
                    }
                },
                Err(error) => {
                    tracing::error!(peer = self.peer, %error, "raft message does not encode");
                }
            }
        }
        bytes
    }

    /// Connects unless in backoff; `true` when connected.
    async fn connect(&self, connection: &mut Connection) -> bool {
        let now = Instant::now();
        if now < connection.retry_at {
            return false;
        }
        match TcpStream::connect_timeout(self.addr, PEER_CONNECT_TIMEOUT).await {
            Ok(stream) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(peer = self.peer, %error, "cannot set TCP_NODELAY");
                }
                if connection.failing {
                    tracing::info!(node = self.node_id, peer = self.peer, addr = %self.addr,
                        "raft connection to peer established");
                }
                connection.stream = Some(stream);
                connection.backoff = PEER_RECONNECT_BACKOFF_MIN;
                connection.failing = false;
                true
            }
            Err(error) => {
                if !connection.failing {
                    tracing::warn!(node = self.node_id, peer = self.peer, addr = %self.addr, %error,
                        "cannot connect to quorum peer; retrying with backoff");
                }
                connection.failing = true;
                connection.retry_at = Instant::now() + connection.backoff;
                connection.backoff = (connection.backoff * 2).min(PEER_RECONNECT_BACKOFF_MAX);
                false
            }
        }
    }
}

/// Writes `bytes`, giving up after `PEER_WRITE_TIMEOUT`.
async fn write_within_timeout(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    within(PEER_WRITE_TIMEOUT, stream.write_all(bytes))
        .await
        .unwrap_or_else(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not written within {} ms", PEER_WRITE_TIMEOUT.as_millis()),
            ))
        })
}

/// Whether the peer closed or reset the outbound connection `socket`. The peer never writes on it
/// (raft messages are not answered on their own connection), so anything to read there is its
/// end: a FIN reads as 0 bytes, a reset as an error. Checked without waiting.
fn peer_closed(socket: std::os::unix::io::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `socket` is an open socket owned by the caller's stream for the whole call, and
    // the buffer is one valid, writable byte.
    let read = unsafe {
        libc::recv(
            socket,
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match read {
        0 => true,
        n if n > 0 => false,
        _ => !matches!(
            std::io::Error::last_os_error().kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;

    use super::peer_closed;

    #[test]
    fn a_connection_is_seen_closed_once_its_peer_closed_it() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let outbound = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (inbound, _) = listener.accept().expect("accept");
        assert!(!peer_closed(outbound.as_raw_fd()), "an open, silent peer");
        // What the link writes does not make it look closed.
        (&outbound).write_all(b"frame").expect("write");
        assert!(!peer_closed(outbound.as_raw_fd()));
        drop(inbound);
        // The FIN arrives asynchronously on loopback: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !peer_closed(outbound.as_raw_fd()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the close was never seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
