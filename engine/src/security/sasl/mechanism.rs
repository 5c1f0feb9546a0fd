//! The SASL mechanisms the broker offers, by Kafka's names.

use std::fmt;
use std::str::FromStr;

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The name clients send in SaslHandshake (`sasl.mechanism`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mechanism the broker does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported SASL mechanism `{0}` (supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")]
pub struct UnknownMechanism(pub String);

impl FromStr for SaslMechanism {
    type Err = UnknownMechanism;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| UnknownMechanism(text.to_string()))
    }
}

/// Parses Kafka's `sasl.enabled.mechanisms` list (`PLAIN,SCRAM-SHA-512`).
pub fn parse_list(text: &str) -> Result<Vec<SaslMechanism>, UnknownMechanism> {
    let mut mechanisms = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mechanism = name.parse()?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    Ok(mechanisms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_without_duplicates() {
        assert_eq!(
            parse_list("SCRAM-SHA-512, plain,SCRAM-SHA-512"),
            Ok(vec![SaslMechanism::ScramSha512, SaslMechanism::Plain])
        );
        assert!(parse_list("GSSAPI").is_err());
        assert_eq!(parse_list(""), Ok(vec![]));
    }
}
