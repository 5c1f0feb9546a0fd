//! Security of client connections (issue 20): listeners with Kafka's security protocols, TLS on
//! rustls, SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and ACL authorization.
//!
//! - `listener`: the security protocols and one client listener's addresses;
//! - `principal`: Kafka principals of clients (a client certificate's subject);
//! - `tls`: the rustls server configuration from PEM files, the client certificate's principal;
//! - `tls_policy`: the TLS versions and cipher suites allowed (`ssl.enabled.protocols`,
//!   `ssl.cipher.suites`);
//! - `inter_broker`: how this broker connects to the others (listener, TLS client side, SASL login);
//! - `stream`: one connection's byte stream, plain TCP or TLS (a client's, or ours to a broker);
//! - `tls_socket`: the socket under a client's TLS session, sending all queued records at once;
//! - `sasl`: the per-connection SASL exchange and the SCRAM credential store;
//! - `scram_admin`: DescribeUserScramCredentials and AlterUserScramCredentials;
//! - `acl`: authorization with Kafka's ACLs (`--authorizer acl`) and the ACL APIs.
//!
//! What the broker needs of all this at start is `SecurityConfig`, part of `BrokerConfig`.

pub mod acl;
pub mod inter_broker;
pub mod listener;
pub mod principal;
pub mod sasl;
pub mod scram_admin;
pub mod stream;
pub mod tls;
pub mod tls_policy;
pub mod tls_socket;

use std::sync::Arc;

pub use listener::{ClientListener, SecurityProtocol};
pub use sasl::credentials::CredentialStore;
pub use sasl::mechanism::SaslMechanism;
pub use sasl::registry::CredentialRegistry;

/// The security settings of a broker.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// The name of the primary listener (`BrokerConfig::listen`), Kafka's listener name.
    pub primary_name: String,
    /// The protocol of the primary listener.
    pub primary_protocol: SecurityProtocol,
    /// Further client listeners (`--listener` given more than once), each with its own name.
    pub extra_listeners: Vec<ClientListener>,
    /// The TLS server configuration, required by SSL and SASL_SSL listeners; SIGHUP replaces it.
    pub tls: Option<Arc<tls::ServerTls>>,
    /// The mechanisms SASL listeners offer (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// SCRAM credentials (PLAIN checks passwords against them too), shared by every shard: the
    /// cluster's, from the metadata log, and the `--add-scram` ones to hand it at start.
    pub credentials: Arc<CredentialRegistry>,
    /// The authorizer (off unless `--authorizer acl`) and its ACLs, shared by every shard.
    pub authorizer: Arc<acl::Authorizer>,
    /// How long a SASL session lasts before the client must re-authenticate (Kafka's
    /// `connections.max.reauth.ms`, KIP-368); 0: sessions never expire.
    pub connections_max_reauth_ms: u64,
    /// How this broker connects to the other brokers (followers' fetches, transaction markers).
    pub inter_broker: inter_broker::InterBrokerSecurity,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            primary_name: SecurityProtocol::Plaintext.name().to_string(),
            primary_protocol: SecurityProtocol::Plaintext,
            extra_listeners: Vec::new(),
            tls: None,
            sasl_mechanisms: vec![SaslMechanism::Plain],
            credentials: Arc::new(CredentialRegistry::default()),
            authorizer: Arc::new(acl::Authorizer::default()),
            connections_max_reauth_ms: 0,
            inter_broker: inter_broker::InterBrokerSecurity::default(),
        }
    }
}
