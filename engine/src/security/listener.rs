//! Kafka's security protocols (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) and one client
//! listener: its name, where it binds, what it speaks and what address Metadata gives its clients.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The security protocol of a listener, as Kafka names it in `listeners` and clients in
/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's id of the protocol (`SecurityProtocol.id`), as broker registrations carry it.
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    /// The protocol of a Kafka id (`None`: not one of the four).
    pub fn from_id(id: i16) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL.into_iter().find(|p| p.id() == id)
    }

    /// Whether connections are encrypted with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of Kafka's security protocols.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security protocol `{0}` (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")]
pub struct UnknownProtocol(pub String);

impl FromStr for SecurityProtocol {
    type Err = UnknownProtocol;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name() == upper)
            .ok_or_else(|| UnknownProtocol(text.to_string()))
    }
}

/// One client listener: its name, bind address, protocol and the address its clients are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListener {
    /// Kafka's listener name (upper case, unique per broker): brokers register their endpoints
    /// under it and a client's connection selects them by it. `listener.security.protocol.map`
    /// gives each name its protocol; by default a listener is named by its protocol.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub address: SocketAddr,
    /// host:port Metadata gives clients that connected through this listener.
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl ClientListener {
    /// The listener's name, which brokers register their endpoints under and a client's
    /// connection selects them by.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip_case_insensitively() {
        for protocol in SecurityProtocol::ALL {
            assert_eq!(protocol.name().parse::<SecurityProtocol>(), Ok(protocol));
            assert_eq!(
                protocol.name().to_lowercase().parse::<SecurityProtocol>(),
                Ok(protocol)
            );
        }
        assert!("CONTROLLER".parse::<SecurityProtocol>().is_err());
    }

    #[test]
    fn only_ssl_protocols_use_tls_and_only_sasl_ones_use_sasl() {
        use SecurityProtocol::*;
        assert_eq!(
            SecurityProtocol::ALL.map(|p| (p.uses_tls(), p.uses_sasl())),
            [(false, false), (true, false), (false, true), (true, true)]
        );
        assert_eq!(Plaintext.to_string(), "PLAINTEXT");
        assert_eq!(SaslSsl.to_string(), "SASL_SSL");
    }
}
