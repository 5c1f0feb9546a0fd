//! A small blocking Kafka client on kafka-protocol's codecs, for the `ringbroker` tools and tests.
//!
//! `Client` bootstraps from a server list, keeps one `Connection` per broker (std `TcpStream`,
//! TCP_NODELAY, timeouts), negotiates API versions per connection, caches topic metadata to route
//! partition requests to leaders, and offers typed calls: topics admin (`admin`), `produce`, `fetch`,
//! and consumer groups (`groups`, with the range assignor in `assignor`). It speaks plain Kafka and
//! works against any Kafka-compatible broker.

pub mod admin;
pub mod assignor;
mod cluster;
mod connection;
pub mod error;
pub mod fetch;
pub mod groups;
pub mod produce;
mod versions;

pub use cluster::{BrokerInfo, Client, ClusterMetadata, PartitionInfo, Target, TopicInfo};
pub use connection::{api_name, Connection, MAX_RESPONSE_BYTES};
pub use error::{check_code, kafka_error_name, ClientError};
pub use versions::{client_range, BrokerVersions};

use std::time::Duration;

/// How long to wait for a TCP connection to a broker.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for any response (socket read timeout). Must exceed every Fetch `max_wait_ms`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Client id sent in request headers unless set otherwise.
pub const DEFAULT_CLIENT_ID: &str = "ringbroker-cli";

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// "host:port" entries tried in order until one answers.
    pub bootstrap_servers: Vec<String>,
    /// Client id in every request header (brokers show it in group descriptions).
    pub client_id: String,
    /// TCP connect timeout per address.
    pub connect_timeout: Duration,
    /// Socket read/write timeout per request.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for a comma-separated `--bootstrap-server` list.
    pub fn new(bootstrap_servers: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|server| !server.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_list_is_split_and_trimmed() {
        let config = ClientConfig::new("a:9092, b:9093,,");
        assert_eq!(config.bootstrap_servers, ["a:9092", "b:9093"]);
        assert_eq!(config.client_id, DEFAULT_CLIENT_ID);
    }
}
