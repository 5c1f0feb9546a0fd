//! TLS for SSL and SASL_SSL listeners, on rustls with the `ring` provider (no OpenSSL): the
//! server configuration from PEM files, and client certificates (mTLS) when a client CA is given.
//!
//! The configuration is built once at start and shared by every shard (`Arc`, read-only); each
//! connection gets its own rustls session (`stream`), so no state is shared while serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::tls_policy::{TlsPolicy, TlsPolicyError};

/// Why the TLS configuration cannot be built; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read a private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("CA of the other brokers' certificates {path}: {reason}")]
    TrustedCa { path: PathBuf, reason: String },
    #[error(transparent)]
    Policy(#[from] TlsPolicyError),
    #[error("certificate {cert} and key {key} do not make a TLS configuration: {reason}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Where the server's certificate chain, its key and (for mTLS) the client CA are, and which
/// versions and cipher suites it allows: everything a (re)build of the configuration reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs
    /// (Kafka's `ssl.client.auth=required`).
    pub client_ca: Option<PathBuf>,
    /// `ssl.enabled.protocols` and `ssl.cipher.suites`.
    pub policy: TlsPolicy,
}

/// The cryptography under rustls: `ring`. rustls 0.23.48 marks ring's provider deprecated because
/// it lacks post-quantum key exchange; the alternative (aws-lc-rs) builds a large C library with
/// cmake. ring's suites (TLS 1.3 AES-GCM/ChaCha20, TLS 1.2 ECDHE) are what Kafka's JDK offers.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A TLS configuration new connections get, replaceable while the broker runs (SIGHUP re-reads
/// the certificate files): read once per TLS handshake, never per request; connections keep the
/// configuration they started with. The server side's is `ServerTls`, the inter-broker client
/// side's `inter_broker::ClientTls`.
#[derive(Debug)]
pub struct Reloadable<C> {
    current: RwLock<Arc<C>>,
}

impl<C> Reloadable<C> {
    pub fn new(config: Arc<C>) -> Self {
        Reloadable {
            current: RwLock::new(config),
        }
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<C> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `config` the one new connections get.
    pub fn replace(&self, config: Arc<C>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// The TLS server configuration of SSL and SASL_SSL listeners.
pub type ServerTls = Reloadable<ServerConfig>;

impl ServerTls {
    /// Builds a configuration from `files` and makes it the one new connections get; on error the
    /// running one stays.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        self.replace(server_config(files)?);
        Ok(())
    }
}

/// Builds the server configuration: the policy's versions and cipher suites (by default TLS 1.2
/// and 1.3 with rustls' suites), the server's suite order winning.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(files.policy.restrict(crypto_provider())?);
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let config_error = |reason: String| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&files.policy.versions())
        .map_err(|e| config_error(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: ca_path.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for ca in read_certificates(ca_path)? {
                roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(e.to_string()))?;
    // The server's order (`ssl.cipher.suites`' order, else rustls') picks the suite, not the
    // client's: what Kafka's brokers do, JSSE preferring the server's order since JDK 13
    // (JDK-8219657). rustls' default is the client's.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}
