//! Typed profile values and their parsing from TOML: byte sizes ("64MiB" or integers), core lists ("auto",
//! "2-15", `[2, 3]`), the flush policy. Parsers return a [`ValueError`] (reason and fix); the caller adds
//! the profile and key names.

use serde::Serialize;

use crate::sysfs;

/// Bytes per KiB; the size suffixes are binary (KiB, MiB, GiB, TiB) because memory and DMA sizes are.
const KIB: u64 = 1024;

/// The longest flush interval accepted; beyond an hour "never" says what is meant.
pub const FLUSH_INTERVAL_MS_MAX: u64 = 3_600_000;

/// Why a value was refused and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub reason: String,
    pub fix: String,
}

impl ValueError {
    pub fn new(reason: impl Into<String>, fix: impl Into<String>) -> Self {
        ValueError {
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

/// Which cores a role (shards, bench client) runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreSpec {
    /// Chosen from the machine at resolve time (see `profile::resolve`).
    Auto,
    /// Exactly these CPU numbers, sorted and unique.
    List(Vec<usize>),
}

/// glommio io memory per executor: fixed, or the largest that fits the locked-memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoMemorySpec {
    Auto,
    Bytes(u64),
}

/// When the log calls fdatasync. The engine maps this onto its own policy type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// fdatasync before acknowledging every produce: no acknowledged write is lost on power failure.
    Always,
    /// fdatasync at most this many milliseconds after a write; a power failure loses at most that window.
    IntervalMs(u64),
    /// Never call fdatasync; the kernel writes back when it likes (Kafka's default: replicas give durability).
    Never,
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::IntervalMs(ms) => write!(f, "{ms}ms"),
            FlushPolicy::Never => f.write_str("never"),
        }
    }
}

/// `max_connections`: derived from the file descriptor limit, or a fixed count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionsSpec {
    /// What the file descriptor limit allows, less a share for files (see `profile::resolve`).
    Auto,
    Count(u64),
}

/// One `max_connections_per_ip_overrides` entry: connections allowed from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IpLimit {
    pub ip: std::net::IpAddr,
    pub max_connections: u64,
}

/// Inclusive bounds and alignment for a byte-size key.
#[derive(Debug, Clone, Copy)]
pub struct ByteBounds {
    pub min: u64,
    pub max: u64,
    /// The value must be a multiple of this (1 = any).
    pub align: u64,
}

/// Parses "64MiB", "1 GiB", "4096" or a TOML integer into bytes, then checks `bounds`.
pub fn parse_bytes(value: &toml::Value, bounds: ByteBounds) -> Result<u64, ValueError> {
    let bytes = match value {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| {
            ValueError::new("a size cannot be negative", "use 0 or a positive size")
        })?,
        toml::Value::String(text) => parse_size_text(text)?,
        _ => {
            return Err(ValueError::new(
                "expected a size",
                "write an integer number of bytes or a string like \"64MiB\"",
            ))
        }
    };
    check_bounds(bytes, bounds)?;
    Ok(bytes)
}

fn parse_size_text(text: &str) -> Result<u64, ValueError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || {
        ValueError::new(
            format!("`{text}` is not a size"),
            "write digits and a binary unit, e.g. \"512KiB\", \"64MiB\", \"1GiB\", or plain bytes",
        )
    };
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier = match unit.trim() {
        "" | "B" => 1,
        "KiB" => KIB,
        "MiB" => KIB * KIB,
        "GiB" => KIB * KIB * KIB,
        "TiB" => KIB * KIB * KIB * KIB,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| ValueError::new("the size overflows 64 bits", "use a smaller size"))
}

fn check_bounds(bytes: u64, bounds: ByteBounds) -> Result<(), ValueError> {
    debug_assert!(bounds.min <= bounds.max && bounds.align > 0);
    if bytes < bounds.min || bytes > bounds.max {
        return Err(ValueError::new(
            format!(
                "it must be between {} and {}",
                human_bytes(bounds.min),
                human_bytes(bounds.max)
            ),
            "pick a size in that range (default.toml shows a sensible one)".to_string(),
        ));
    }
    if !bytes.is_multiple_of(bounds.align) {
        let down = bytes / bounds.align * bounds.align;
        return Err(ValueError::new(
            format!("it must be a multiple of {} (DMA alignment)", bounds.align),
            format!("use {} or {}", down.max(bounds.align), down + bounds.align),
        ));
    }
    Ok(())
}

/// Parses an integer in `min..=max`.
pub fn parse_int(value: &toml::Value, min: u64, max: u64) -> Result<u64, ValueError> {
    let toml::Value::Integer(n) = value else {
        return Err(ValueError::new(
            "expected an integer",
            format!("write a whole number from {min} to {max}"),
        ));
    };
    match u64::try_from(*n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ValueError::new(
            format!("it must be between {min} and {max}"),
            format!("write a whole number from {min} to {max}"),
        )),
    }
}

/// Parses "auto" or a connection count in `min..=max` for `max_connections`.
pub fn parse_connections(
    value: &toml::Value,
    min: u64,
    max: u64,
) -> Result<ConnectionsSpec, ValueError> {
    match value {
        toml::Value::String(text) if text.trim() == "auto" => Ok(ConnectionsSpec::Auto),
        toml::Value::String(_) => Err(ValueError::new(
            "expected \"auto\" or a number",
            format!("write \"auto\" or a whole number from {min} to {max}"),
        )),
        _ => parse_int(value, min, max).map(ConnectionsSpec::Count),
    }
}

/// Parses "unlimited" (`None`) or a count in `0..=max` for `max_connections_per_ip`.
pub fn parse_limit_or_unlimited(value: &toml::Value, max: u64) -> Result<Option<u64>, ValueError> {
    match value {
        toml::Value::String(text) if text.trim() == "unlimited" => Ok(None),
        toml::Value::String(_) => Err(ValueError::new(
            "expected \"unlimited\" or a number",
            format!("write \"unlimited\" or a whole number from 0 to {max}"),
        )),
        _ => parse_int(value, 0, max).map(Some),
    }
}

/// Parses Kafka's `max.connections.per.ip.overrides` format, `"IP:COUNT,IP:COUNT"` (an IPv6
/// address may be bracketed, `[::1]:10`; the count follows the last colon). Addresses only:
/// Kafka also takes host names and resolves them once at start, which hides a later DNS change.
pub fn parse_ip_overrides(value: &toml::Value, max: u64) -> Result<Vec<IpLimit>, ValueError> {
    let fix = format!(
        "write \"IP:COUNT,IP:COUNT\" with IP addresses and counts from 0 to {max}, e.g. \"10.0.0.5:200,[::1]:50\", or \"\" for none"
    );
    let toml::Value::String(text) = value else {
        return Err(ValueError::new("expected a string", fix));
    };
    let mut limits: Vec<IpLimit> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| ValueError::new(format!("`{entry}`: {why}"), fix.clone());
        let (host, count) = entry.rsplit_once(':').ok_or_else(|| bad("no `:COUNT`"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| bad("not an IP address (host names are not resolved)"))?;
        let max_connections: u64 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad("the count is not a whole number in range"))?;
        let ip = ip.to_canonical();
        if limits.iter().any(|limit| limit.ip == ip) {
            return Err(bad("this address is listed twice"));
        }
        limits.push(IpLimit {
            ip,
            max_connections,
        });
    }
    Ok(limits)
}

/// Parses `true` / `false`.
pub fn parse_bool(value: &toml::Value) -> Result<bool, ValueError> {
    value
        .as_bool()
        .ok_or_else(|| ValueError::new("expected true or false", "write true or false (no quotes)"))
}

/// Parses "auto", a cpulist string ("2-15,18") or an array of CPU numbers.
pub fn parse_cores(value: &toml::Value) -> Result<CoreSpec, ValueError> {
    let fix = "write \"auto\", a cpulist like \"2-15\", or an array like [2, 3]";
    let cores = match value {
        toml::Value::String(text) if text.trim() == "auto" => return Ok(CoreSpec::Auto),
        toml::Value::String(text) => {
            sysfs::parse_cpulist(text).map_err(|reason| ValueError::new(reason, fix))?
        }
        toml::Value::Integer(_) => return parse_cores(&toml::Value::Array(vec![value.clone()])),
        toml::Value::Array(items) => {
            let mut cores = Vec::with_capacity(items.len());
            for item in items {
                let core = item
                    .as_integer()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n <= sysfs::CPU_ID_MAX)
                    .ok_or_else(|| ValueError::new(format!("{item} is not a CPU number"), fix))?;
                cores.push(core);
            }
            cores.sort_unstable();
            cores.dedup();
            cores
        }
        _ => return Err(ValueError::new("expected a core list", fix)),
    };
    if cores.is_empty() {
        return Err(ValueError::new("the core list is empty", fix));
    }
    Ok(CoreSpec::List(cores))
}

/// Parses "auto" or a byte size for `io_memory_bytes`.
pub fn parse_io_memory(
    value: &toml::Value,
    bounds: ByteBounds,
) -> Result<IoMemorySpec, ValueError> {
    match value {
        toml::Value::String(text) if text.trim() == "auto" => Ok(IoMemorySpec::Auto),
        _ => parse_bytes(value, bounds).map(IoMemorySpec::Bytes),
    }
}

/// Parses "always", "never", an interval in milliseconds (`10`) or "10ms".
pub fn parse_flush_policy(value: &toml::Value) -> Result<FlushPolicy, ValueError> {
    let fix = format!(
        "write \"always\", \"never\", or an interval in milliseconds from 1 to {FLUSH_INTERVAL_MS_MAX} (e.g. 10 or \"10ms\")"
    );
    let interval_ms = match value {
        toml::Value::String(text) => match text.trim() {
            "always" => return Ok(FlushPolicy::Always),
            "never" => return Ok(FlushPolicy::Never),
            other => other
                .strip_suffix("ms")
                .and_then(|digits| digits.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ValueError::new(format!("`{other}` is not a flush policy"), fix.clone())
                })?,
        },
        toml::Value::Integer(n) => u64::try_from(*n)
            .map_err(|_| ValueError::new("an interval cannot be negative", fix.clone()))?,
        _ => return Err(ValueError::new("expected a flush policy", fix)),
    };
    if interval_ms == 0 {
        return Err(ValueError::new(
            "an interval of 0 ms is ambiguous",
            "write \"always\" to flush before every acknowledgement",
        ));
    }
    if interval_ms > FLUSH_INTERVAL_MS_MAX {
        return Err(ValueError::new(
            format!("the interval is above {FLUSH_INTERVAL_MS_MAX} ms"),
            fix,
        ));
    }
    Ok(FlushPolicy::IntervalMs(interval_ms))
}

/// "1048576 (1 MiB)"-style text for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", KIB * KIB * KIB * KIB),
        ("GiB", KIB * KIB * KIB),
        ("MiB", KIB * KIB),
        ("KiB", KIB),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    match UNITS.iter().find(|(_, size)| bytes >= *size) {
        Some((unit, size)) => format!("{bytes} ({:.1} {unit})", bytes as f64 / *size as f64),
        None => format!("{bytes} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: ByteBounds = ByteBounds {
        min: 0,
        max: u64::MAX,
        align: 1,
    };

    fn s(text: &str) -> toml::Value {
        toml::Value::String(text.to_string())
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes(&s("64MiB"), ANY).unwrap(), 64 << 20);
        assert_eq!(parse_bytes(&s("1 GiB"), ANY).unwrap(), 1 << 30);
        assert_eq!(parse_bytes(&toml::Value::Integer(4096), ANY).unwrap(), 4096);
        assert!(parse_bytes(&s("64MB"), ANY).is_err());
        assert!(parse_bytes(&toml::Value::Integer(-1), ANY).is_err());
        let aligned = ByteBounds {
            min: 4096,
            max: 1 << 20,
            align: 4096,
        };
        let err = parse_bytes(&toml::Value::Integer(5000), aligned).unwrap_err();
        assert!(err.fix.contains("4096 or 8192"), "{err:?}");
        assert!(parse_bytes(&s("2MiB"), aligned).is_err());
    }

    #[test]
    fn flush_policies_parse() {
        assert_eq!(
            parse_flush_policy(&s("always")).unwrap(),
            FlushPolicy::Always
        );
        assert_eq!(parse_flush_policy(&s("never")).unwrap(), FlushPolicy::Never);
        assert_eq!(
            parse_flush_policy(&s("25ms")).unwrap(),
            FlushPolicy::IntervalMs(25)
        );
        assert_eq!(
            parse_flush_policy(&toml::Value::Integer(5)).unwrap(),
            FlushPolicy::IntervalMs(5)
        );
        assert!(parse_flush_policy(&toml::Value::Integer(0))
            .unwrap_err()
            .fix
            .contains("always"));
        assert!(parse_flush_policy(&s("sometimes")).is_err());
        assert!(parse_flush_policy(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn cores_parse() {
        assert_eq!(parse_cores(&s("auto")).unwrap(), CoreSpec::Auto);
        assert_eq!(
            parse_cores(&s("2-4,7")).unwrap(),
            CoreSpec::List(vec![2, 3, 4, 7])
        );
        let array = toml::Value::Array(vec![toml::Value::Integer(3), toml::Value::Integer(1)]);
        assert_eq!(parse_cores(&array).unwrap(), CoreSpec::List(vec![1, 3]));
        assert!(parse_cores(&toml::Value::Array(vec![])).is_err());
        assert!(parse_cores(&toml::Value::Array(vec![toml::Value::Integer(-1)])).is_err());
    }

    #[test]
    fn connection_limits_parse() {
        let n = toml::Value::Integer;
        assert_eq!(
            parse_connections(&s("auto"), 1, 9).unwrap(),
            ConnectionsSpec::Auto
        );
        assert_eq!(
            parse_connections(&n(5), 1, 9).unwrap(),
            ConnectionsSpec::Count(5)
        );
        assert!(parse_connections(&s("many"), 1, 9).is_err());
        assert!(parse_connections(&n(0), 1, 9).is_err());
        assert_eq!(parse_limit_or_unlimited(&s("unlimited"), 9).unwrap(), None);
        assert_eq!(parse_limit_or_unlimited(&n(0), 9).unwrap(), Some(0));
        assert!(parse_limit_or_unlimited(&n(10), 9).is_err());
        let limits =
            parse_ip_overrides(&s("10.0.0.5:200, [::1]:50,::ffff:1.2.3.4:7"), 1000).unwrap();
        let pairs: Vec<(String, u64)> = limits
            .iter()
            .map(|l| (l.ip.to_string(), l.max_connections))
            .collect();
        assert_eq!(
            pairs,
            [
                ("10.0.0.5".into(), 200),
                ("::1".into(), 50),
                ("1.2.3.4".into(), 7)
            ]
        );
        assert!(parse_ip_overrides(&s(""), 9).unwrap().is_empty());
        for bad in [
            "broker1:5",
            "10.0.0.5",
            "10.0.0.5:x",
            "1.2.3.4:1,1.2.3.4:2",
            "1.2.3.4:10",
        ] {
            assert!(parse_ip_overrides(&s(bad), 9).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(1_500_000), "1500000 (1.4 MiB)");
        assert_eq!(human_bytes(12), "12 B");
    }
}
