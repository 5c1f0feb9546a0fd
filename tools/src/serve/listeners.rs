//! The client listeners of a broker, as Kafka derives them: each `listeners` entry is named, the
//! name gets its security protocol from `listener.security.protocol.map` (by default each
//! protocol's name maps to itself, so `SSL://:9093` is an SSL listener) and its advertised
//! address from `advertised.listeners`; entries named in `controller.listener.names` belong to
//! the controller quorum, which has its own listener (`controller.listen`), and are reported as
//! not served.

use std::fmt;
use std::str::FromStr;

use ringbroker_engine::security::{ClientListener, SecurityProtocol};

use super::values::{parse_listener_name, AdvertisedListener, Listener, Optional};

/// A listener name, upper-cased as Kafka normalises it (`inter.broker.listener.name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerName(pub String);

impl FromStr for ListenerName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_listener_name(text).map(ListenerName)
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listener name that may be left unset.
pub type OptionalListenerName = Optional<ListenerName>;

/// Kafka's default `listener.security.protocol.map`: every security protocol names a listener
/// of that protocol.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// `listener.security.protocol.map`: listener name to security protocol, `NAME:PROTOCOL,...`.
/// As in Kafka, a map that is set replaces the default one (a listener named SSL then needs its
/// own `SSL:SSL` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolMap(pub Vec<(String, SecurityProtocol)>);

impl ProtocolMap {
    /// The protocol of listener `name`, if the map names it.
    pub fn protocol(&self, name: &str) -> Option<SecurityProtocol> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }
}

impl FromStr for ProtocolMap {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut map: Vec<(String, SecurityProtocol)> = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, protocol) = pair
                .split_once(':')
                .ok_or_else(|| format!("`{pair}`: expected NAME:PROTOCOL, e.g. CLIENT:SASL_SSL"))?;
            let name = parse_listener_name(name)?;
            let protocol: SecurityProtocol =
                protocol.parse().map_err(|e| format!("`{pair}`: {e}"))?;
            if map.iter().any(|(n, _)| *n == name) {
                return Err(format!("listener {name} is mapped twice"));
            }
            map.push((name, protocol));
        }
        if map.is_empty() {
            return Err(format!(
                "map at least one listener name to its security protocol (default: {DEFAULT_PROTOCOL_MAP})"
            ));
        }
        Ok(ProtocolMap(map))
    }
}

impl fmt::Display for ProtocolMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(n, p)| format!("{n}:{p}")).collect();
        f.write_str(&pairs.join(","))
    }
}

/// `controller.listener.names`: names of `listeners` entries that are the controller quorum's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerNames(pub Vec<String>);

impl FromStr for ListenerNames {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(parse_listener_name)
            .collect::<Result<_, _>>()
            .map(ListenerNames)
    }
}

impl fmt::Display for ListenerNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// The client listeners of a broker (the primary one first) and the entries not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListeners {
    pub listeners: Vec<ClientListener>,
    /// Controller entries, reported at start.
    pub ignored: Vec<String>,
}

impl ClientListeners {
    /// The first client listener, which `--listen` names and `advertised.listeners` without a
    /// matching name advertises.
    pub fn primary(&self) -> &ClientListener {
        debug_assert!(!self.listeners.is_empty(), "resolve refuses no listener");
        &self.listeners[0]
    }

    /// The listener named `name`, if there is one.
    pub fn named(&self, name: &str) -> Option<&ClientListener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

impl fmt::Display for ClientListeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .listeners
            .iter()
            .map(|l| {
                if l.name == l.protocol.name() {
                    format!("{}://{}", l.name, l.address)
                } else {
                    format!("{}://{} ({})", l.name, l.address, l.protocol)
                }
            })
            .collect();
        f.write_str(&all.join(","))
    }
}

/// The client listeners of `listeners`. An entry that is neither a controller listener nor in
/// the map is an error, as in Kafka ("no security protocol defined for listener").
///
/// Advertised addresses: the `advertised.listeners` entry of the same name; else, when that
/// setting names other listeners, its first client entry's host (and, for the primary
/// listener, its port, unless that entry names another listener: the form
/// `--advertised-listener HOST:PORT` has always had); else the listener's own address.
pub fn resolve(
    listener: &Listener,
    map: &ProtocolMap,
    controller: &ListenerNames,
    advertised: &AdvertisedListener,
) -> Result<ClientListeners, String> {
    let is_controller = |name: &str| controller.0.iter().any(|c| c == name);
    let fallback = advertised.entries.iter().find(|e| !is_controller(&e.name));
    let names_a_listener = |name: &str| listener.entries.iter().any(|(e, _)| e.name == name);
    let mut listeners: Vec<ClientListener> = Vec::new();
    let mut ignored = Vec::new();
    for (entry, address) in &listener.entries {
        if is_controller(&entry.name) {
            ignored.push(entry.to_string());
            continue;
        }
        let protocol = map.protocol(&entry.name).ok_or_else(|| {
            format!(
                "listener {} has no security protocol in listener.security.protocol.map ({map}): \
                 add {}:PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL to it",
                entry.name, entry.name
            )
        })?;
        let primary = listeners.is_empty();
        let (advertised_host, advertised_port) = match (advertised.for_name(&entry.name), fallback)
        {
            (Some(own), _) => (own.bare_host().to_string(), own.port),
            // The port too, unless that entry is another listener's.
            (None, Some(first)) if primary && !names_a_listener(&first.name) => {
                (first.bare_host().to_string(), first.port)
            }
            (None, Some(first)) => (first.bare_host().to_string(), address.port()),
            (None, None) => (address.ip().to_string(), address.port()),
        };
        listeners.push(ClientListener {
            name: entry.name.clone(),
            protocol,
            address: *address,
            advertised_host,
            advertised_port,
        });
    }
    if listeners.is_empty() {
        return Err(format!(
            "`{listener}` has no client listener: every entry is a controller listener \
             (controller.listener.names); add e.g. PLAINTEXT://HOST:PORT"
        ));
    }
    Ok(ClientListeners { listeners, ignored })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(
        listeners: &str,
        map: &str,
        advertised: &str,
    ) -> Result<ClientListeners, String> {
        resolve(
            &listeners.parse()?,
            &map.parse()?,
            &"CONTROLLER".parse()?,
            &advertised.parse()?,
        )
    }

    fn summary(resolved: &ClientListeners) -> Vec<String> {
        resolved
            .listeners
            .iter()
            .map(|l| {
                format!(
                    "{} {} {} {}:{}",
                    l.name, l.protocol, l.address, l.advertised_host, l.advertised_port
                )
            })
            .collect()
    }

    #[test]
    fn protocol_names_are_listener_names_by_default() {
        let resolved = resolve_text(
            "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,sasl_ssl://:9094,CONTROLLER://:9095",
            DEFAULT_PROTOCOL_MAP,
            "",
        )
        .unwrap();
        assert_eq!(
            summary(&resolved),
            [
                "PLAINTEXT PLAINTEXT 127.0.0.1:9092 127.0.0.1:9092",
                "SSL SSL 127.0.0.1:9093 127.0.0.1:9093",
                "SASL_SSL SASL_SSL 0.0.0.0:9094 0.0.0.0:9094",
            ]
        );
        assert_eq!(resolved.ignored, ["CONTROLLER://:9095"]);
        assert_eq!(
            resolved.to_string(),
            "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,SASL_SSL://0.0.0.0:9094"
        );
        // A bare address is a PLAINTEXT listener, as Kafka's `listeners=host:port` never was
        // but ringbroker's --listen always has been.
        let plain = resolve_text("127.0.0.1:9092", DEFAULT_PROTOCOL_MAP, "").unwrap();
        assert_eq!(plain.primary().protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn the_map_gives_named_listeners_their_protocols() {
        let resolved = resolve_text(
            "CLIENT://127.0.0.1:9093,REPLICATION://127.0.0.1:9094,INTERNAL://127.0.0.1:9095",
            "CLIENT:SASL_SSL,REPLICATION:SSL,INTERNAL:SSL",
            "",
        )
        .unwrap();
        assert_eq!(
            summary(&resolved),
            [
                "CLIENT SASL_SSL 127.0.0.1:9093 127.0.0.1:9093",
                "REPLICATION SSL 127.0.0.1:9094 127.0.0.1:9094",
                "INTERNAL SSL 127.0.0.1:9095 127.0.0.1:9095",
            ]
        );
        assert_eq!(
            resolved.named("REPLICATION").map(|l| l.protocol),
            Some(SecurityProtocol::Ssl)
        );
        assert_eq!(
            resolved.to_string(),
            "CLIENT://127.0.0.1:9093 (SASL_SSL),REPLICATION://127.0.0.1:9094 (SSL),\
             INTERNAL://127.0.0.1:9095 (SSL)"
        );
        // A map that is set replaces Kafka's default: PLAINTEXT is no longer a known name.
        let unmapped =
            resolve_text("CLIENT://:9093,PLAINTEXT://:9092", "CLIENT:SASL_SSL", "").unwrap_err();
        assert!(
            unmapped.contains("listener PLAINTEXT has no security protocol"),
            "{unmapped}"
        );
        let unknown = resolve_text("CLIENT://:9093", DEFAULT_PROTOCOL_MAP, "").unwrap_err();
        assert!(unknown.contains("add CLIENT:"), "{unknown}");
    }

    #[test]
    fn advertised_listeners_go_by_name() {
        let resolved = resolve_text(
            "CLIENT://0.0.0.0:9093,REPLICATION://10.0.0.1:9094",
            "CLIENT:SASL_SSL,REPLICATION:SSL",
            "CLIENT://kafka.example.com:443,REPLICATION://broker1.internal:9094",
        )
        .unwrap();
        assert_eq!(
            summary(&resolved),
            [
                "CLIENT SASL_SSL 0.0.0.0:9093 kafka.example.com:443",
                "REPLICATION SSL 10.0.0.1:9094 broker1.internal:9094",
            ]
        );
        // The older form: one address, the primary's; the others keep their ports.
        let single = resolve_text(
            "PLAINTEXT://:9092,SSL://:9093",
            DEFAULT_PROTOCOL_MAP,
            "broker1:19092",
        )
        .unwrap();
        assert_eq!(
            summary(&single),
            [
                "PLAINTEXT PLAINTEXT 0.0.0.0:9092 broker1:19092",
                "SSL SSL 0.0.0.0:9093 broker1:9093",
            ]
        );
        // A bare address is PLAINTEXT's: an SSL primary listener keeps its own port.
        let ssl_first = resolve_text(
            "SSL://:9093,PLAINTEXT://:9092",
            DEFAULT_PROTOCOL_MAP,
            "broker1:19092",
        )
        .unwrap();
        assert_eq!(
            summary(&ssl_first),
            [
                "SSL SSL 0.0.0.0:9093 broker1:9093",
                "PLAINTEXT PLAINTEXT 0.0.0.0:9092 broker1:19092",
            ]
        );
    }

    #[test]
    fn maps_and_names_are_checked() {
        assert!("CLIENT".parse::<ProtocolMap>().is_err());
        assert!("CLIENT:TLS".parse::<ProtocolMap>().is_err());
        assert!("A:SSL,a:SSL".parse::<ProtocolMap>().is_err());
        assert!("".parse::<ProtocolMap>().is_err());
        assert!("CLI ENT:SSL".parse::<ProtocolMap>().is_err());
        let map: ProtocolMap = DEFAULT_PROTOCOL_MAP.parse().unwrap();
        assert_eq!(map.to_string(), DEFAULT_PROTOCOL_MAP);
        assert_eq!(map.protocol("SASL_SSL"), Some(SecurityProtocol::SaslSsl));
        let names: ListenerNames = "controller, quorum".parse().unwrap();
        assert_eq!(names.0, ["CONTROLLER", "QUORUM"]);
        let only_controller =
            resolve_text("CONTROLLER://:9093", DEFAULT_PROTOCOL_MAP, "").unwrap_err();
        assert!(
            only_controller.contains("no client listener"),
            "{only_controller}"
        );
    }
}
