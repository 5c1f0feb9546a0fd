//! Request/reply between shards over glommio's channel mesh.
//!
//! Every message is a finished flatbuffers `Envelope` (schema/fbs/internal.fbs). A request gets a
//! correlation number; the answering shard sends an envelope with `is_reply` and the same number
//! back over its own sender, and the waiting future on the asking shard is woken. Channels are
//! bounded: a full channel makes `send_to` wait, which is real backpressure between cores.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use futures::channel::oneshot;
use glommio::channels::channel_mesh::Senders;
use ringbroker_schema::{root_as_envelope, Envelope, EnvelopeArgs, Payload};
use thiserror::Error;

/// A finished flatbuffer: the builder's vector and where the data starts in it (no copy out of
/// the builder).
pub struct MeshMessage {
    buf: Vec<u8>,
    head: usize,
}

impl MeshMessage {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// The envelope, verified (a malformed buffer is a bug on the sending shard).
    pub fn envelope(&self) -> Result<Envelope<'_>, MeshError> {
        root_as_envelope(self.bytes()).map_err(|e| MeshError::Malformed(e.to_string()))
    }
}

#[derive(Debug, Error)]
pub enum MeshError {
    #[error("shard {0} is gone (its channel is closed)")]
    PeerGone(usize),
    #[error("malformed internal message: {0}")]
    Malformed(String),
    #[error("internal reply of the wrong kind: expected {expected}, got {got:?}")]
    WrongReply {
        expected: &'static str,
        got: Payload,
    },
}

/// Builds one envelope: the closure writes the payload into the builder and returns its type and
/// offset.
pub fn build_envelope<F>(correlation: u64, is_reply: bool, capacity: usize, build: F) -> MeshMessage
where
    F: for<'b> FnOnce(&mut FlatBufferBuilder<'b>) -> (Payload, WIPOffset<UnionWIPOffset>),
{
    let mut fbb = FlatBufferBuilder::with_capacity(capacity);
    let (payload_type, payload) = build(&mut fbb);
    let envelope = Envelope::create(
        &mut fbb,
        &EnvelopeArgs {
            correlation,
            is_reply,
            payload_type,
            payload: Some(payload),
        },
    );
    fbb.finish(envelope, None);
    let (buf, head) = fbb.collapse();
    MeshMessage { buf, head }
}

/// This shard's end of the mesh: senders to every peer and the replies it waits for.
pub struct Mesh {
    senders: Senders<MeshMessage>,
    pending: RefCell<HashMap<u64, oneshot::Sender<MeshMessage>>>,
    next_correlation: Cell<u64>,
}

impl Mesh {
    pub fn new(senders: Senders<MeshMessage>) -> Mesh {
        Mesh {
            senders,
            pending: RefCell::new(HashMap::new()),
            next_correlation: Cell::new(1),
        }
    }

    /// Sends a request to `peer` and waits for its reply.
    pub async fn call<F>(
        &self,
        peer: usize,
        capacity: usize,
        build: F,
    ) -> Result<MeshMessage, MeshError>
    where
        F: for<'b> FnOnce(&mut FlatBufferBuilder<'b>) -> (Payload, WIPOffset<UnionWIPOffset>),
    {
        let correlation = self.next_correlation.get();
        self.next_correlation.set(correlation + 1);
        let message = build_envelope(correlation, false, capacity, build);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(correlation, tx);
        if self.senders.send_to(peer, message).await.is_err() {
            self.pending.borrow_mut().remove(&correlation);
            return Err(MeshError::PeerGone(peer));
        }
        rx.await.map_err(|_| MeshError::PeerGone(peer))
    }

    /// Sends a reply for `correlation` back to `peer`.
    pub async fn reply<F>(&self, peer: usize, correlation: u64, capacity: usize, build: F)
    where
        F: for<'b> FnOnce(&mut FlatBufferBuilder<'b>) -> (Payload, WIPOffset<UnionWIPOffset>),
    {
        let message = build_envelope(correlation, true, capacity, build);
        if self.senders.send_to(peer, message).await.is_err() {
            tracing::debug!(peer, "reply dropped: peer shard is shutting down");
        }
    }

    /// Hands a received reply to the request waiting for it. A reply nobody waits for (the
    /// request's caller gave up, e.g. a fetch whose long poll ended) is dropped.
    pub fn complete(&self, correlation: u64, message: MeshMessage) {
        if let Some(tx) = self.pending.borrow_mut().remove(&correlation) {
            let _ = tx.send(message);
        }
    }

    pub fn shard_id(&self) -> usize {
        self.senders.peer_id()
    }

    pub fn shard_count(&self) -> usize {
        self.senders.nr_consumers()
    }
}
