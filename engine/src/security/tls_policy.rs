//! Which TLS versions and cipher suites the broker's TLS allows: Kafka's `ssl.enabled.protocols`
//! and `ssl.cipher.suites`, parsed from Kafka's (JSSE's) names and turned into the rustls
//! protocol versions and crypto provider that `tls` (server side) and `inter_broker` (client side)
//! build their configurations from.
//!
//! The names are IANA's, as JSSE and so Kafka take them: `TLSv1.2`, `TLSv1.3`,
//! `TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`. A name rustls does not offer
//! is a start-up error naming it (JSSE refuses an unsupported suite too), never silently dropped:
//! a broker that quietly allowed less, or more, than its operator wrote would be worse than one
//! that does not start.

use std::fmt;

use rustls::crypto::CryptoProvider;
use rustls::{ProtocolVersion, SupportedCipherSuite, SupportedProtocolVersion};

/// A cipher suite by its TLS code point (rustls' type, re-exported for the settings).
pub use rustls::CipherSuite;

/// A TLS version, as Kafka's `ssl.enabled.protocols` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Every version rustls offers, in Kafka's default order (`TLSv1.2,TLSv1.3`).
    pub const ALL: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

    /// JSSE's name, which Kafka's settings use.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }

    fn wire(self) -> ProtocolVersion {
        match self {
            TlsVersion::Tls12 => ProtocolVersion::TLSv1_2,
            TlsVersion::Tls13 => ProtocolVersion::TLSv1_3,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// JSSE names of versions older than TLS 1.2: real, but rustls never speaks them (Kafka has
/// disabled TLSv1 and TLSv1.1 by default since 2.5 as well).
const OLD_VERSIONS: [&str; 4] = ["SSLv3", "TLSv1", "TLSv1.1", "SSLv2Hello"];

/// Why `ssl.enabled.protocols` or `ssl.cipher.suites` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsPolicyError {
    #[error("unknown TLS protocol `{0}`: expected TLSv1.2 or TLSv1.3")]
    UnknownProtocol(String),
    #[error("TLS protocol `{0}` is not supported: ringbroker's TLS (rustls) speaks TLSv1.2 and TLSv1.3 only")]
    OldProtocol(String),
    #[error("no TLS protocol given: name TLSv1.2, TLSv1.3 or both")]
    NoProtocol,
    #[error(
        "cipher suite `{name}` is not one ringbroker's TLS (rustls) offers; it offers {offered}"
    )]
    UnknownCipherSuite { name: String, offered: String },
    #[error(
        "none of the cipher suites {suites} works with the enabled protocols {protocols} \
         (TLSv1.3 takes the TLS_AES_* and TLS_CHACHA20_* suites, TLSv1.2 the TLS_ECDHE_* ones)"
    )]
    NoUsableCipherSuite { suites: String, protocols: String },
}

/// The versions and cipher suites new TLS sessions may use; the default is rustls' (TLS 1.2 and
/// 1.3, every suite of the `ring` provider), which is Kafka's default set of protocols too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// `ssl.enabled.protocols`, never empty.
    pub protocols: Vec<TlsVersion>,
    /// `ssl.cipher.suites` in preference order; empty: rustls' suites in rustls' order.
    pub cipher_suites: Vec<CipherSuite>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            protocols: TlsVersion::ALL.to_vec(),
            cipher_suites: Vec::new(),
        }
    }
}

impl TlsPolicy {
    /// The rustls protocol versions to build a configuration with.
    pub fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        debug_assert!(!self.protocols.is_empty(), "parse_protocols refuses none");
        self.protocols.iter().map(|v| v.rustls()).collect()
    }

    /// `provider` offering only the policy's cipher suites, in the policy's order, checked to
    /// leave at least one suite for an enabled protocol.
    pub fn restrict(&self, provider: CryptoProvider) -> Result<CryptoProvider, TlsPolicyError> {
        let cipher_suites: Vec<SupportedCipherSuite> = if self.cipher_suites.is_empty() {
            provider.cipher_suites.clone()
        } else {
            self.cipher_suites
                .iter()
                .map(|wanted| {
                    provider
                        .cipher_suites
                        .iter()
                        .find(|s| s.suite() == *wanted)
                        .copied()
                        .ok_or_else(|| unknown_suite(&iana_name(*wanted), &provider))
                })
                .collect::<Result<_, _>>()?
        };
        let usable = cipher_suites.iter().any(|suite| {
            self.protocols
                .iter()
                .any(|v| suite.version().version == v.wire())
        });
        if !usable {
            return Err(TlsPolicyError::NoUsableCipherSuite {
                suites: join(cipher_suites.iter().map(|s| iana_name(s.suite()))),
                protocols: join(self.protocols.iter().map(|v| v.name().to_string())),
            });
        }
        Ok(CryptoProvider {
            cipher_suites,
            ..provider
        })
    }
}

/// Parses Kafka's `ssl.enabled.protocols`: a comma-separated list of JSSE version names.
pub fn parse_protocols(text: &str) -> Result<Vec<TlsVersion>, TlsPolicyError> {
    let mut protocols = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = TlsVersion::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                if OLD_VERSIONS
                    .iter()
                    .any(|old| old.eq_ignore_ascii_case(name))
                {
                    TlsPolicyError::OldProtocol(name.to_string())
                } else {
                    TlsPolicyError::UnknownProtocol(name.to_string())
                }
            })?;
        if !protocols.contains(&version) {
            protocols.push(version);
        }
    }
    if protocols.is_empty() {
        return Err(TlsPolicyError::NoProtocol);
    }
    Ok(protocols)
}

/// Parses Kafka's `ssl.cipher.suites`: a comma-separated list of IANA suite names, in preference
/// order, each one `provider` offers; empty: the provider's defaults.
pub fn parse_cipher_suites(
    text: &str,
    provider: &CryptoProvider,
) -> Result<Vec<CipherSuite>, TlsPolicyError> {
    let mut suites = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let suite = provider
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .find(|s| iana_name(*s).eq_ignore_ascii_case(name))
            .ok_or_else(|| unknown_suite(name, provider))?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    Ok(suites)
}

/// A suite's IANA name (JSSE's and Kafka's). rustls names TLS 1.3 suites `TLS13_...` where IANA
/// writes `TLS_...`; its TLS 1.2 names are IANA's.
pub fn iana_name(suite: CipherSuite) -> String {
    let name = suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), str::to_string);
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn unknown_suite(name: &str, provider: &CryptoProvider) -> TlsPolicyError {
    TlsPolicyError::UnknownCipherSuite {
        name: name.to_string(),
        offered: join(provider.cipher_suites.iter().map(|s| iana_name(s.suite()))),
    }
}

fn join(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::tls::crypto_provider;

    #[test]
    fn protocols_take_jsse_names_and_refuse_others_by_name() {
        assert_eq!(
            parse_protocols("TLSv1.2,TLSv1.3"),
            Ok(vec![TlsVersion::Tls12, TlsVersion::Tls13])
        );
        assert_eq!(
            parse_protocols(" tlsv1.3 ,TLSv1.3"),
            Ok(vec![TlsVersion::Tls13])
        );
        assert_eq!(
            parse_protocols("TLSv1.2,TLSv1.1"),
            Err(TlsPolicyError::OldProtocol("TLSv1.1".into()))
        );
        let unknown = parse_protocols("TLS1.3").unwrap_err();
        assert_eq!(unknown, TlsPolicyError::UnknownProtocol("TLS1.3".into()));
        assert!(unknown.to_string().contains("`TLS1.3`"), "{unknown}");
        assert_eq!(parse_protocols(" , "), Err(TlsPolicyError::NoProtocol));
    }

    #[test]
    fn cipher_suites_take_iana_names_in_the_given_order() {
        let provider = crypto_provider();
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| iana_name(s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS_AES_256_GCM_SHA384",
                "TLS_AES_128_GCM_SHA256",
                "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
        let chosen = parse_cipher_suites(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls_aes_128_gcm_sha256",
            &provider,
        )
        .unwrap();
        assert_eq!(
            chosen,
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(parse_cipher_suites("", &provider), Ok(Vec::new()));
    }

    #[test]
    fn a_cipher_suite_rustls_lacks_is_an_error_naming_it() {
        let provider = crypto_provider();
        // A real JSSE suite (CBC, which rustls never offers) and an OpenSSL-style name.
        for name in [
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ] {
            let error = parse_cipher_suites(&format!("TLS_AES_128_GCM_SHA256,{name}"), &provider)
                .unwrap_err();
            let message = error.to_string();
            assert!(message.contains(&format!("`{name}`")), "{message}");
            assert!(message.contains("TLS_AES_128_GCM_SHA256"), "{message}");
        }
    }

    #[test]
    fn the_policy_restricts_the_provider_and_needs_a_suite_per_protocol() {
        let only_aes128 = TlsPolicy {
            protocols: TlsVersion::ALL.to_vec(),
            cipher_suites: vec![CipherSuite::TLS13_AES_128_GCM_SHA256],
        };
        let provider = only_aes128.restrict(crypto_provider()).unwrap();
        assert_eq!(
            provider
                .cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>(),
            [CipherSuite::TLS13_AES_128_GCM_SHA256]
        );
        let default = TlsPolicy::default().restrict(crypto_provider()).unwrap();
        assert_eq!(
            default.cipher_suites.len(),
            crypto_provider().cipher_suites.len()
        );
        let mismatch = TlsPolicy {
            protocols: vec![TlsVersion::Tls12],
            cipher_suites: vec![CipherSuite::TLS13_AES_128_GCM_SHA256],
        };
        let error = mismatch.restrict(crypto_provider()).unwrap_err();
        assert!(
            matches!(error, TlsPolicyError::NoUsableCipherSuite { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("TLSv1.2"), "{error}");
    }
}
