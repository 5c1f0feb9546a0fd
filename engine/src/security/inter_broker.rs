//! How this broker reaches the other brokers of its cluster (Kafka's `inter.broker.listener.name`,
//! `security.inter.broker.protocol` and `sasl.mechanism.inter.broker.protocol`): which of their
//! registered listeners it connects to, the TLS client side (the CA it trusts for their
//! certificates, and its own certificate for listeners that want one) and its SASL login.
//!
//! Followers' fetches and transaction markers (`replication::client`) connect this way; the
//! controller listener's traffic does not (it is the quorum's own protocol, see CLUSTER.md).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::sasl::client::SaslLogin;
use super::tls::{crypto_provider, read_certificates, Reloadable, TlsError};
use super::tls_policy::TlsPolicy;
use super::SecurityProtocol;

/// What a connection to another broker needs.
#[derive(Debug, Clone)]
pub struct InterBrokerSecurity {
    /// The name of the listener other brokers are reached on (`inter.broker.listener.name`).
    pub listener_name: String,
    /// That listener's security protocol (`listener.security.protocol.map`).
    pub protocol: SecurityProtocol,
    /// The TLS client configuration; set exactly when `protocol` uses TLS.
    pub tls: Option<Arc<ClientTls>>,
    /// The SASL login; set exactly when `protocol` uses SASL.
    pub sasl: Option<SaslLogin>,
}

impl Default for InterBrokerSecurity {
    fn default() -> Self {
        InterBrokerSecurity {
            listener_name: SecurityProtocol::Plaintext.name().to_string(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

impl InterBrokerSecurity {
    /// The name of the listener other brokers are reached on, as they registered it.
    pub fn listener_name(&self) -> &str {
        &self.listener_name
    }
}

/// Where the TLS client side's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM CAs that sign the other brokers' certificates (Kafka's `ssl.truststore.location`).
    pub ca: PathBuf,
    /// This broker's own certificate chain and key, presented when the other broker's listener
    /// asks for a client certificate (`ssl.client.ca` there): the broker's own `ssl.cert` and
    /// `ssl.key`, as Kafka presents its keystore.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `ssl.enabled.protocols` and `ssl.cipher.suites`, which Kafka applies to both sides of
    /// its brokers' TLS.
    pub policy: TlsPolicy,
}

/// The TLS client configuration new connections to other brokers get; SIGHUP replaces it (with
/// the server's certificate), open connections keep theirs.
pub type ClientTls = Reloadable<ClientConfig>;

impl ClientTls {
    /// Builds a configuration from `files` for the next connections; on error the running one
    /// stays.
    pub fn reload(&self, files: &ClientTlsFiles) -> Result<(), TlsError> {
        self.replace(client_config(files)?);
        Ok(())
    }
}

/// Builds the client configuration: the policy's versions and suites, the other broker's certificate checked
/// against `files.ca` and its host name (Kafka's default `ssl.endpoint.identification.algorithm`
/// `https`), this broker's certificate when asked for.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(files.policy.restrict(crypto_provider())?);
    let ca_error = |reason: String| TlsError::TrustedCa {
        path: files.ca.clone(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for ca in read_certificates(&files.ca)? {
        roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&files.policy.versions())
        .map_err(|e| ca_error(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &files.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certificates(cert)?;
            let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| TlsError::Config {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(Arc::new(config))
}
