//! The value types of `serve`'s settings, each parsed by `FromStr` the same way from a flag, an
//! environment variable, a config file or a default, and printed by `Display` at start-up.
//!
//! Kafka's forms are accepted where the setting is Kafka's: `listeners` takes
//! `PLAINTEXT://host:port` lists (Kafka's `server.properties` has `PLAINTEXT://:9092,CONTROLLER://:9093`),
//! `log.dirs` a comma-separated list (of one directory here).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

use ringbroker_engine::security::tls_policy::{self, TlsVersion};
use ringbroker_engine::security::{tls, CredentialStore, SaslMechanism, SecurityProtocol};

/// The name of a Kafka listener list entry written without one.
pub const PLAINTEXT: &str = "PLAINTEXT";

/// One entry of a Kafka listener list: `NAME://host:port`, or `host:port` (named PLAINTEXT).
/// Names are upper-cased, as Kafka normalises them (`ListenerName.normalised`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerEntry {
    pub name: String,
    /// As written (IPv6 in brackets); empty means every interface (Kafka's `PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ListenerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.name, self.host, self.port)
    }
}

impl ListenerEntry {
    /// The bind address (Kafka binds every interface when the host is empty).
    fn address(&self) -> Result<SocketAddr, String> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            self.host.as_str()
        };
        resolve_address(&format!("{host}:{}", self.port))
    }

    /// The host clients are given: without IPv6 brackets.
    pub fn bare_host(&self) -> &str {
        self.host.trim_matches(|c| c == '[' || c == ']')
    }
}

/// Parses a listener name as Kafka normalises it; letters, digits, `_` and `-` only, so that it
/// cannot be mistaken for the `:` and `,` of `listener.security.protocol.map`.
pub fn parse_listener_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_uppercase();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{text}` is not a listener name: use letters, digits, `_` and `-`, e.g. CLIENT or \
             REPLICATION"
        ));
    }
    Ok(name)
}

fn parse_entry(text: &str) -> Result<ListenerEntry, String> {
    let (name, address) = match text.split_once("://") {
        Some((name, address)) => (parse_listener_name(name)?, address),
        None => (PLAINTEXT.to_string(), text),
    };
    let (host, port) = address
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}`: expected HOST:PORT or NAME://HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("`{text}`: bad port: {e}"))?;
    Ok(ListenerEntry {
        name,
        host: host.to_string(),
        port,
    })
}

fn parse_entries(text: &str) -> Result<Vec<ListenerEntry>, String> {
    let entries = text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()?;
    if entries.is_empty() {
        return Err("no listener given".to_string());
    }
    for (at, entry) in entries.iter().enumerate() {
        // Brokers register their endpoints and clients find them by name: Kafka refuses two
        // listeners of one name too.
        if entries[..at].iter().any(|e| e.name == entry.name) {
            return Err(format!(
                "`{text}`: two listeners named {}; each listener needs its own name (with \
                 listener.security.protocol.map, several names may share a security protocol)",
                entry.name
            ));
        }
    }
    Ok(entries)
}

/// `listeners` / `--listen` / `--listener`: Kafka's listener list, NAME://HOST:PORT,... (a bare
/// HOST:PORT is named PLAINTEXT). Which entries are client listeners, and with which security
/// protocol, `listeners::resolve` decides with `listener.security.protocol.map` and
/// `controller.listener.names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Every entry in the order given, with its bind address.
    pub entries: Vec<(ListenerEntry, SocketAddr)>,
}

impl FromStr for Listener {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entries = parse_entries(text)?
            .into_iter()
            .map(|entry| entry.address().map(|address| (entry, address)))
            .collect::<Result<Vec<_>, _>>()?;
        for (at, (_, address)) in entries.iter().enumerate() {
            if entries[..at]
                .iter()
                .any(|(_, a)| a.port() == address.port())
            {
                return Err(format!(
                    "`{text}`: two listeners on port {}; each listener needs its own port",
                    address.port()
                ));
            }
        }
        Ok(Listener { entries })
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .entries
            .iter()
            .map(|(entry, address)| format!("{}://{address}", entry.name))
            .collect();
        f.write_str(&all.join(","))
    }
}

/// `advertised.listeners` / `--advertised-listener`: the host:port clients are told to connect
/// to, per listener name; empty means each listener's own address (Kafka's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// The entries as given (controller ones included: `listeners::resolve` skips them).
    pub entries: Vec<ListenerEntry>,
}

impl AdvertisedListener {
    /// The entry advertised for the listener `name`, if one is.
    pub fn for_name(&self, name: &str) -> Option<&ListenerEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

impl FromStr for AdvertisedListener {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Ok(AdvertisedListener::default());
        }
        let entries = parse_entries(text)?;
        if let Some(entry) = entries.iter().find(|e| e.bare_host().is_empty()) {
            return Err(format!(
                "`{text}`: clients need a host name to connect to, e.g. {}://broker1.example.com:{}",
                entry.name, entry.port
            ));
        }
        Ok(AdvertisedListener { entries })
    }
}

impl fmt::Display for AdvertisedListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return f.write_str("(the listener's address)");
        }
        let all: Vec<String> = self.entries.iter().map(ToString::to_string).collect();
        f.write_str(&all.join(","))
    }
}

/// `log.dirs` / `--data-dir`: the one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(pub PathBuf);

impl FromStr for DataDir {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let dirs: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        match dirs.as_slice() {
            [dir] => Ok(DataDir(PathBuf::from(dir))),
            [] => Err("no directory given".to_string()),
            _ => Err(format!(
                "{} directories given: ringbroker keeps every partition in one data directory; give one \
                 (for several devices, one RAID 0 or LVM volume over them)",
                dirs.len()
            )),
        }
    }
}

impl fmt::Display for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// `shards` / `--shards`: `auto` (one per shard core of the profile) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardCount {
    Auto,
    Count(usize),
}

/// More shards than this is a typo: no machine has that many cores to pin them to.
pub const SHARDS_MAX: usize = 4096;

impl FromStr for ShardCount {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("auto") {
            return Ok(ShardCount::Auto);
        }
        match text.trim().parse::<usize>() {
            Ok(n) if (1..=SHARDS_MAX).contains(&n) => Ok(ShardCount::Count(n)),
            _ => Err(format!(
                "expected `auto` or a number of shards from 1 to {SHARDS_MAX}"
            )),
        }
    }
}

impl fmt::Display for ShardCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardCount::Auto => f.write_str("auto"),
            ShardCount::Count(n) => write!(f, "{n}"),
        }
    }
}

/// `profile` / `--profile`: a shipped profile by name (`default`, `dev`, `bare-metal-16c`) or a
/// file (a value with a `/` or ending in `.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileChoice {
    Shipped(String),
    File(PathBuf),
}

impl FromStr for ProfileChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.contains('/') || text.ends_with(".toml") {
            return Ok(ProfileChoice::File(PathBuf::from(text)));
        }
        let shipped = ringbroker_tuning::profile::SHIPPED_PROFILES;
        if shipped.iter().any(|(name, _)| *name == text) {
            return Ok(ProfileChoice::Shipped(text.to_string()));
        }
        let names: Vec<&str> = shipped.iter().map(|(name, _)| *name).collect();
        Err(format!(
            "no shipped profile is called `{text}` (shipped: {}); a file needs a `/` or a .toml name, \
             e.g. ./{text}.toml",
            names.join(", ")
        ))
    }
}

impl fmt::Display for ProfileChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileChoice::Shipped(name) => f.write_str(name),
            ProfileChoice::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `metrics_listen` / `--metrics-listen`: an address, or `none` to turn metrics off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

impl FromStr for MetricsListen {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(MetricsListen(None));
        }
        resolve_address(text.trim())
            .map(|address| MetricsListen(Some(address)))
            .map_err(|e| format!("{e} (or `none` to disable metrics)"))
    }
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("none"),
        }
    }
}

/// `log_format` / `--log-format`: how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when the output is a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".to_string()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// `log_filter` / `--log`: a tracing filter (`info`, `warn,ringbroker_engine=debug`), checked when
/// parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(pub String);

impl FromStr for LogFilter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        tracing_subscriber::EnvFilter::try_new(text.trim())
            .map(|_| LogFilter(text.trim().to_string()))
            .map_err(|e| {
                format!("not a log filter ({e}); e.g. `info` or `warn,ringbroker_engine=debug`")
            })
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An integer within `MIN..=MAX`, for settings with Kafka's bounds (`num.partitions` >= 1,
/// `log.retention.ms` >= -1, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntIn<const MIN: i64, const MAX: i64>(pub i64);

impl<const MIN: i64, const MAX: i64> FromStr for IntIn<MIN, MAX> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().parse::<i64>() {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(IntIn(n)),
            _ => Err(format!("expected a whole number from {MIN} to {MAX}")),
        }
    }
}

impl<const MIN: i64, const MAX: i64> fmt::Display for IntIn<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `true` or `false`, as Kafka writes booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch(pub bool);

impl FromStr for Switch {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "true" => Ok(Switch(true)),
            "false" => Ok(Switch(false)),
            _ => Err("expected `true` or `false`".to_string()),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn resolve_address(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{text}` does not resolve to an address"))
}

/// A file that may be left unset (`ssl.cert`, `ssl.key`, `ssl.client.ca`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionalPath(pub Option<PathBuf>);

impl FromStr for OptionalPath {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Ok(OptionalPath(
            (!text.is_empty()).then(|| PathBuf::from(text)),
        ))
    }
}

impl fmt::Display for OptionalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(path) => write!(f, "{}", path.display()),
            None => Ok(()),
        }
    }
}

/// `sasl.enabled.mechanisms` / `--sasl-mechanisms`: what SASL listeners offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslMechanisms(pub Vec<SaslMechanism>);

impl FromStr for SaslMechanisms {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let list = ringbroker_engine::security::sasl::mechanism::parse_list(text)
            .map_err(|e| e.to_string())?;
        if list.is_empty() {
            return Err("name at least one mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)".into());
        }
        Ok(SaslMechanisms(list))
    }
}

impl fmt::Display for SaslMechanisms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|m| m.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// `ssl.enabled.protocols`: the TLS versions SSL and SASL_SSL listeners (and this broker's
/// connections to others) accept, `TLSv1.2,TLSv1.3` by default as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProtocols(pub Vec<TlsVersion>);

impl FromStr for TlsProtocols {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        tls_policy::parse_protocols(text)
            .map(TlsProtocols)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for TlsProtocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|v| v.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// `ssl.cipher.suites`: IANA cipher suite names in preference order; empty: rustls' suites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CipherSuites(pub Vec<tls_policy::CipherSuite>);

impl FromStr for CipherSuites {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        tls_policy::parse_cipher_suites(text, &tls::crypto_provider())
            .map(CipherSuites)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for CipherSuites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(|s| tls_policy::iana_name(*s)).collect();
        f.write_str(&names.join(","))
    }
}

/// `authorizer.class.name` / `--authorizer`: no authorization, or Kafka's ACL authorizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthorizerChoice {
    #[default]
    None,
    Acl,
}

/// Kafka's class names of its ACL authorizer, accepted from a server.properties as `acl`.
const KAFKA_ACL_AUTHORIZERS: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

impl FromStr for AuthorizerChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "" | "none" => Ok(AuthorizerChoice::None),
            "acl" => Ok(AuthorizerChoice::Acl),
            name if KAFKA_ACL_AUTHORIZERS.contains(&name) => Ok(AuthorizerChoice::Acl),
            other => Err(format!(
                "unknown authorizer `{other}`: expected `acl` or empty"
            )),
        }
    }
}

impl fmt::Display for AuthorizerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorizerChoice::None => Ok(()),
            AuthorizerChoice::Acl => f.write_str("acl"),
        }
    }
}

/// `super.users` / `--super-users`: Kafka principals separated by `;` ('User:admin;User:ops').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals(pub Vec<String>);

impl FromStr for Principals {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut principals = Vec::new();
        for principal in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match principal.split_once(':') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    principals.push(principal.to_string())
                }
                _ => {
                    return Err(format!(
                        "`{principal}` is not a principal: write it TYPE:NAME, e.g. User:admin"
                    ))
                }
            }
        }
        Ok(Principals(principals))
    }
}

impl fmt::Display for Principals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(";"))
    }
}

/// A value that may be left unset (empty): `inter.broker.listener.name` and
/// `security.inter.broker.protocol` (a security protocol, which also names a listener),
/// `sasl.mechanism.inter.broker.protocol` (a SASL mechanism).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Optional<T>(pub Option<T>);

pub type OptionalProtocol = Optional<SecurityProtocol>;
pub type OptionalMechanism = Optional<SaslMechanism>;

impl<T: FromStr> FromStr for Optional<T>
where
    T::Err: fmt::Display,
{
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Optional(None));
        }
        text.parse()
            .map(|value| Optional(Some(value)))
            .map_err(|e: T::Err| e.to_string())
    }
}

impl<T: fmt::Display> fmt::Display for Optional<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => write!(f, "{value}"),
            None => Ok(()),
        }
    }
}

/// A secret that may be left unset (`inter.broker.sasl.password`): printed as `(set)`, never
/// itself, since every setting is logged at start.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Option<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Kept as written: a password may start or end with a space.
        Ok(Secret((!text.is_empty()).then(|| text.to_string())))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("(set)"),
            None => Ok(()),
        }
    }
}

/// `--add-scram`: SCRAM credentials in Kafka's `kafka-storage format --add-scram` syntax, hashed
/// when parsed (the password is not kept; printed as the users only).
#[derive(Debug, Clone, Default)]
pub struct ScramUsers {
    pub store: CredentialStore,
}

impl FromStr for ScramUsers {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut store = CredentialStore::default();
        if !text.trim().is_empty() {
            store.add_scram(text).map_err(|e| e.to_string())?;
        }
        Ok(ScramUsers { store })
    }
}

impl fmt::Display for ScramUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.store.is_empty() {
            return Ok(());
        }
        // The store's Debug names users and mechanisms, never secrets.
        write!(f, "{:?}", self.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_take_kafka_lists_and_plain_addresses() {
        let names = |l: &Listener| -> Vec<String> {
            l.entries
                .iter()
                .map(|(e, a)| format!("{} {a}", e.name))
                .collect()
        };
        let plain: Listener = "127.0.0.1:9092".parse().unwrap();
        assert_eq!(names(&plain), ["PLAINTEXT 127.0.0.1:9092"]);
        // Kafka 4's stock server.properties; which entries are served is `listeners::resolve`'s.
        let kafka: Listener = "PLAINTEXT://:9092,CONTROLLER://:9093".parse().unwrap();
        assert_eq!(
            names(&kafka),
            ["PLAINTEXT 0.0.0.0:9092", "CONTROLLER 0.0.0.0:9093"]
        );
        assert_eq!(
            kafka.to_string(),
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093"
        );
        let ipv6: Listener = "PLAINTEXT://[::1]:9092".parse().unwrap();
        assert_eq!(names(&ipv6), ["PLAINTEXT [::1]:9092"]);
        let named: Listener = "client://127.0.0.1:9093,Replication://:9094"
            .parse()
            .unwrap();
        assert_eq!(
            names(&named),
            ["CLIENT 127.0.0.1:9093", "REPLICATION 0.0.0.0:9094"]
        );
        assert!("localhost".parse::<Listener>().is_err());
        assert!("BAD NAME://:9092".parse::<Listener>().is_err());
    }

    #[test]
    fn listeners_need_their_own_names_and_ports() {
        let same_port = "PLAINTEXT://:9092,SSL://:9092"
            .parse::<Listener>()
            .unwrap_err();
        assert!(same_port.contains("own port"), "{same_port}");
        let same_name = "SSL://:9093,PLAINTEXT://:9092,ssl://:9094"
            .parse::<Listener>()
            .unwrap_err();
        assert!(same_name.contains("two listeners named SSL"), "{same_name}");
    }

    #[test]
    fn tls_protocols_and_cipher_suites_print_as_kafka_names() {
        let both: TlsProtocols = "TLSv1.2,TLSv1.3".parse().unwrap();
        assert_eq!(both.to_string(), "TLSv1.2,TLSv1.3");
        let error = "TLSv1.3,SSLv3".parse::<TlsProtocols>().unwrap_err();
        assert!(error.contains("`SSLv3`"), "{error}");
        let suites: CipherSuites = "tls_aes_128_gcm_sha256".parse().unwrap();
        assert_eq!(suites.to_string(), "TLS_AES_128_GCM_SHA256");
        assert_eq!("".parse(), Ok(CipherSuites::default()));
        let error = "TLS_RSA_WITH_AES_128_GCM_SHA256"
            .parse::<CipherSuites>()
            .unwrap_err();
        assert!(
            error.contains("`TLS_RSA_WITH_AES_128_GCM_SHA256`"),
            "{error}"
        );
    }

    #[test]
    fn authorizer_and_super_users() {
        assert_eq!("acl".parse(), Ok(AuthorizerChoice::Acl));
        assert_eq!("".parse(), Ok(AuthorizerChoice::None));
        assert_eq!(
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".parse(),
            Ok(AuthorizerChoice::Acl)
        );
        assert!("ranger".parse::<AuthorizerChoice>().is_err());
        let users: Principals = "User:admin; User:ops;".parse().unwrap();
        assert_eq!(users.0, ["User:admin", "User:ops"]);
        assert_eq!(users.to_string(), "User:admin;User:ops");
        assert!("admin".parse::<Principals>().is_err());
        assert!("User:".parse::<Principals>().is_err());
    }

    #[test]
    fn advertised_listener_needs_a_host() {
        assert_eq!("".parse(), Ok(AdvertisedListener::default()));
        let kafka: AdvertisedListener = "PLAINTEXT://broker1:9092,CONTROLLER://broker1:9093"
            .parse()
            .unwrap();
        assert_eq!(
            kafka.for_name("PLAINTEXT").map(|e| (e.bare_host(), e.port)),
            Some(("broker1", 9092))
        );
        let ipv6: AdvertisedListener = "[::1]:9092".parse().unwrap();
        assert_eq!(
            ipv6.for_name("PLAINTEXT").map(|e| (e.bare_host(), e.port)),
            Some(("::1", 9092))
        );
        assert_eq!(ipv6.to_string(), "PLAINTEXT://[::1]:9092");
        assert!("PLAINTEXT://:9092".parse::<AdvertisedListener>().is_err());
        assert!(":1".parse::<AdvertisedListener>().is_err());
        assert!("broker".parse::<AdvertisedListener>().is_err());
    }

    #[test]
    fn one_data_directory() {
        assert_eq!(
            "/var/lib/rb".parse::<DataDir>(),
            Ok(DataDir("/var/lib/rb".into()))
        );
        assert!("/a,/b"
            .parse::<DataDir>()
            .unwrap_err()
            .contains("one data directory"));
        assert!("".parse::<DataDir>().is_err());
    }

    #[test]
    fn shards_profiles_metrics_formats() {
        assert_eq!("auto".parse(), Ok(ShardCount::Auto));
        assert_eq!("3".parse(), Ok(ShardCount::Count(3)));
        assert!("0".parse::<ShardCount>().is_err());
        assert_eq!("dev".parse(), Ok(ProfileChoice::Shipped("dev".to_string())));
        assert_eq!(
            "tuning/profiles/dev.toml".parse(),
            Ok(ProfileChoice::File("tuning/profiles/dev.toml".into()))
        );
        assert!("laptop"
            .parse::<ProfileChoice>()
            .unwrap_err()
            .contains("shipped: default"));
        assert_eq!("none".parse(), Ok(MetricsListen(None)));
        assert!("nowhere".parse::<MetricsListen>().is_err());
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
        assert!("info,ringbroker_engine=debug".parse::<LogFilter>().is_ok());
        assert!("info,=[".parse::<LogFilter>().is_err());
        assert_eq!("-1".parse(), Ok(IntIn::<-1, 5>(-1)));
        assert!("6".parse::<IntIn<-1, 5>>().is_err());
        assert_eq!("false".parse(), Ok(Switch(false)));
        assert!("yes".parse::<Switch>().is_err());
    }
}

/// `process.roles` / `--process-roles`: broker, controller, or both (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles(pub ringbroker_engine::cluster::Roles);

impl FromStr for ProcessRoles {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ringbroker_engine::cluster::Roles::parse(text.trim())
            .map(ProcessRoles)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for ProcessRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `controller.quorum.voters` / `--controller-quorum-voters`: `ID@HOST:PORT,...`; empty: this node
/// alone (a single-node cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumVoters {
    pub voters: std::collections::BTreeMap<i32, SocketAddr>,
    text: String,
}

impl FromStr for QuorumVoters {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let voters =
            ringbroker_engine::cluster::config::parse_voters(text).map_err(|e| e.to_string())?;
        Ok(QuorumVoters {
            voters,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for QuorumVoters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An address that may be left empty (`controller.listen`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<SocketAddr>);

impl FromStr for OptionalAddress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(OptionalAddress(None));
        }
        resolve_address(text).map(|a| OptionalAddress(Some(a)))
    }
}

impl fmt::Display for OptionalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => Ok(()),
        }
    }
}

/// A name that may be left empty (`broker.rack`, `cluster.id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionalName(pub Option<String>);

impl FromStr for OptionalName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        Ok(OptionalName((!text.is_empty()).then(|| text.to_string())))
    }
}

impl fmt::Display for OptionalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or(""))
    }
}
