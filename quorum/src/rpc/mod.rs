//! Traffic on the controller listener, over TCP, framed as size-prefixed flatbuffers
//! ([`frame`]): Raft messages between the voters (one outbound connection per peer,
//! [`peer_link`]), and requests from brokers or controllers to this node's [`RpcHandler`]
//! ([`server`]), sent with an [`RpcClient`] that needs no local quorum ([`client`]).

pub mod client;
pub mod frame;
pub(crate) mod peer_link;
pub(crate) mod server;
mod writer;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

pub use client::{RpcClient, RpcClientConfig, RpcError};
pub use frame::{Frame, FrameError, FrameKind};

/// Answers requests that arrive on the controller listener. `api` is one of ringbroker's own
/// sub-API ids (not Kafka's); the payload is whatever the caller encoded. An `Err` reaches the
/// caller as [`RpcError::Remote`] with the message. Handlers run as their own tasks, up to
/// [`server::MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION`] at once per connection.
pub trait RpcHandler {
    fn handle(&self, api: u16, payload: Bytes) -> LocalBoxFuture<'static, Result<Bytes, String>>;

    /// `handle`, told which inbound connection the request came on (ids unique for the life of
    /// the listener): a handler that cares who is connected pairs it with `connection_closed`.
    fn handle_on(
        &self,
        _connection: u64,
        api: u16,
        payload: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, String>> {
        self.handle(api, payload)
    }

    /// An inbound connection closed: its peer closed it (a process that exits or is killed closes
    /// its sockets), the network broke it, or it sent something malformed.
    fn connection_closed(&self, _connection: u64) {}
}
