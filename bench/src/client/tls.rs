//! TLS to the broker (`--tls-ca`): rustls with ring, the broker's certificate checked against a PEM
//! CA bundle and the address's host (an IP address or a name; `--tls-server-name` overrides it).
//! Set once per process before any connection; every connection of the run then uses it.
//!
//! Only request/response connections take TLS (consume, admin calls): a TLS session is one state
//! machine for both directions, so the pipelined producer's split into a sending and a receiving
//! thread would have to lock it around blocking reads.

use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::error::{BenchError, Result};

/// A TLS session over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

struct Settings {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Turns TLS on for every later connection: the broker must present a certificate signed by a CA
/// of `ca_file` for `server_name` (default: each address's host).
pub fn enable(ca_file: &Path, server_name: Option<String>) -> Result<()> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| BenchError::InvalidArgument(format!("{}: {e}", ca_file.display())))?;
    for certificate in certificates {
        let certificate = certificate
            .map_err(|e| BenchError::InvalidArgument(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(certificate)
            .map_err(|e| BenchError::InvalidArgument(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(BenchError::InvalidArgument(format!(
            "{} holds no certificate",
            ca_file.display()
        )));
    }
    let provider = Arc::new(ring_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::InvalidArgument(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    SETTINGS
        .set(Settings {
            config: Arc::new(config),
            server_name,
        })
        .map_err(|_| BenchError::InvalidArgument("TLS is already set up".into()))
}

/// rustls's `ring` provider, as the broker uses (deprecated in rustls 0.23.48 for lacking
/// post-quantum key exchange; aws-lc-rs would build a large C library).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Starts a TLS session on `stream` to `addr` (host:port) when TLS is on; `Ok(None)` when off.
/// The handshake completes on the first read or write.
pub fn wrap(stream: TcpStream, addr: &str) -> Result<std::result::Result<TlsStream, TcpStream>> {
    let Some(settings) = SETTINGS.get() else {
        return Ok(Err(stream));
    };
    let host = match &settings.server_name {
        Some(name) => name.clone(),
        None => host_of(addr).to_string(),
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| BenchError::InvalidArgument(format!("TLS server name {host}: {e}")))?;
    let session = ClientConnection::new(settings.config.clone(), name)
        .map_err(|e| BenchError::Protocol(format!("TLS session to {addr}: {e}")))?;
    Ok(Ok(StreamOwned::new(session, stream)))
}

/// The host of `host:port` (`[v6]:port` too), without brackets.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("broker-1.example:9093"), "broker-1.example");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }
}
