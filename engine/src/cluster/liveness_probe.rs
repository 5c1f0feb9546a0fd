//! Whether a broker's process is gone, asked of its listeners: a TCP connection to a port nobody
//! listens on is refused at once (the peer's kernel answers with a reset), while a live broker
//! accepts and an unreachable host (a cut network) answers nothing. So "every listener refuses"
//! is proof enough that the process died or is restarting, and the active controller can fence
//! it at once instead of waiting out a grace (`CLOSED_CONNECTION_FENCE_GRACE`,
//! `SILENT_VOTER_AFTER_TAKEOVER`) that exists only for brokers that are alive but slow. Anything
//! else (accepted, timed out, a host name that would need a lookup) proves nothing, and the
//! grace runs as before.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use glommio::net::TcpStream;

use super::records::BrokerEndpoint;

/// How long a probe's connection attempt may take. A refusal comes back within a round trip;
/// waiting longer could only end in a timeout, which proves nothing.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// `true` when every listener of `endpoints` with an IP address refuses a connection (and there
/// is at least one such listener).
pub async fn process_gone(endpoints: &[BrokerEndpoint]) -> bool {
    let mut refused = 0;
    for endpoint in endpoints {
        let Some(address) = socket_address(endpoint) else {
            continue;
        };
        match TcpStream::connect_timeout(address, PROBE_CONNECT_TIMEOUT).await {
            Err(error) if is_refusal(&error) => refused += 1,
            // Accepted (the connection closes as it drops), timed out or failed otherwise.
            _ => return false,
        }
    }
    refused > 0
}

/// The listener's address when its host is an IP literal (no name lookup on the controller's
/// executor).
fn socket_address(endpoint: &BrokerEndpoint) -> Option<SocketAddr> {
    let ip: IpAddr = endpoint.host.parse().ok()?;
    let port = u16::try_from(endpoint.port).ok()?;
    Some(SocketAddr::new(ip, port))
}

fn is_refusal(error: &glommio::GlommioError<()>) -> bool {
    match error {
        glommio::GlommioError::IoError(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => error.to_string().contains("Connection refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::SecurityProtocol;

    fn endpoint(host: &str, port: u16) -> BrokerEndpoint {
        BrokerEndpoint {
            name: "PLAINTEXT".to_string(),
            host: host.to_string(),
            port: i32::from(port),
            protocol: SecurityProtocol::Plaintext,
        }
    }

    #[test]
    fn a_closed_port_is_gone_an_open_one_is_not() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let open = listener.local_addr().expect("addr").port();
                let closed = {
                    let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    spare.local_addr().expect("addr").port()
                };
                assert!(process_gone(&[endpoint("127.0.0.1", closed)]).await);
                assert!(!process_gone(&[endpoint("127.0.0.1", open)]).await);
                assert!(
                    !process_gone(&[endpoint("127.0.0.1", closed), endpoint("127.0.0.1", open)])
                        .await,
                    "one listener still accepting means alive"
                );
                assert!(
                    !process_gone(&[endpoint("broker-1.example", closed)]).await,
                    "a host name proves nothing"
                );
                assert!(!process_gone(&[]).await);
            })
            .expect("executor")
            .join()
            .expect("join");
    }
}
