//! A lean Kafka client of the bench's own: framing and request/response encoding over blocking
//! sockets (kafka-protocol for the messages), version negotiation, the admin calls a run needs
//! (Metadata, CreateTopics, ListOffsets), pre-encoded Produce frames, Fetch response walking and the
//! transactional producer's calls.
//!
//! It speaks only the Kafka protocol, so it measures any Kafka-compatible broker the same way.

pub mod admin;
pub mod batch_view;
pub mod connection;
pub mod fetch;
pub mod produce;
pub mod tls;
pub mod txn;
pub mod versions;
