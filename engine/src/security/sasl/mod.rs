//! SASL authentication of client connections (Kafka's SaslHandshake v1 and SaslAuthenticate).
//!
//! - `mechanism`: the mechanisms and their names;
//! - `credentials`: SCRAM credentials as Kafka stores them (salt, iterations, stored key, server
//!   key; never the password) and the `--add-scram` syntax;
//! - `scram`: the server side of SCRAM-SHA-256/512 (RFC 5802, RFC 7677);
//! - `plain`: PLAIN (RFC 4616), checked against the SCRAM credentials;
//! - `registry`: the running broker's credentials, the cluster's from its metadata log;
//! - `session`: one connection's exchange, from the handshake to an authenticated principal;
//! - `client`: the client side (PLAIN, SCRAM), for this broker's connections to other brokers.

pub mod client;
pub mod credentials;
pub mod mechanism;
pub mod plain;
pub mod registry;
pub mod scram;
pub mod session;

/// Largest SASL request a connection may send before it is authenticated: Kafka's
/// `sasl.server.max.receive.size` default (512 KiB). Real tokens are below 1 KiB; the bound keeps
/// an unauthenticated peer from making the broker hold `max_request_bytes`.
pub const MAX_UNAUTHENTICATED_REQUEST_BYTES: usize = 512 * 1024;
