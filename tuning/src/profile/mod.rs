//! Tuning profiles: loading a TOML profile over the built-in defaults, overriding keys from command-line
//! flags, and resolving the result against the machine ([`resolve`]).
//!
//! The built-in defaults ARE `tuning/profiles/default.toml` (embedded with `include_str!`), so the
//! documented file and the code cannot disagree. A profile file only needs the keys it changes.
//!
//! ```no_run
//! use ringbroker_tuning::Profile;
//! let mut profile = Profile::load(std::path::Path::new("tuning/profiles/dev.toml"))?;
//! profile.set_from_flag("flush_policy", "always")?;
//! let resolved = profile.resolve()?;
//! print!("{resolved}"); // "shard_cores = 0-1 (profile)" ...
//! # Ok::<(), ringbroker_tuning::ProfileError>(())
//! ```

mod key;
pub mod resolve;
pub mod value;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use key::{edit_distance, Key};
pub use resolve::{EffectiveSetting, ResolvedProfile};
pub use value::{ConnectionsSpec, CoreSpec, FlushPolicy, IoMemorySpec, IpLimit};

use crate::error::ProfileError;
use crate::machine::Machine;
use value::{ByteBounds, ValueError};

/// The shipped default profile; also the base every other profile is laid over.
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../../profiles/default.toml");
/// The shipped laptop / CI profile.
pub const DEV_PROFILE_TOML: &str = include_str!("../../profiles/dev.toml");
/// The shipped 16-core bare-metal profile.
pub const BARE_METAL_16C_PROFILE_TOML: &str = include_str!("../../profiles/bare-metal-16c.toml");

/// The shipped profiles by name (file stem), for `--profile NAME`.
pub const SHIPPED_PROFILES: [(&str, &str); 3] = [
    ("default", DEFAULT_PROFILE_TOML),
    ("dev", DEV_PROFILE_TOML),
    ("bare-metal-16c", BARE_METAL_16C_PROFILE_TOML),
];

/// DMA alignment every buffer and segment size respects (the largest common logical block size).
pub const DMA_ALIGN_BYTES: u64 = 4096;
/// glommio's smallest useful io memory; below it registered buffers thrash.
pub const IO_MEMORY_BYTES_MIN: u64 = 64 << 10;
/// Upper bound for io memory per executor (glommio's own default is 10 MiB).
pub const IO_MEMORY_BYTES_MAX: u64 = 1 << 30;
/// io_uring ring depth bounds: the kernel wants a power of two; 4096 entries is past any gain for one core.
pub const IO_RING_DEPTH_MIN: u64 = 8;
pub const IO_RING_DEPTH_MAX: u64 = 4096;
/// More DMA writes in flight per partition than this only adds memory, never bandwidth.
pub const DMA_WRITES_IN_FLIGHT_MAX: u64 = 1024;
/// Write buffer bounds: one page at least; 64 MiB per partition is already far past the bandwidth knee.
pub const WRITE_BUFFER_BYTES_MIN: u64 = DMA_ALIGN_BYTES;
pub const WRITE_BUFFER_BYTES_MAX: u64 = 64 << 20;
/// Segment bounds: index entries hold 32-bit positions like Kafka's, so a segment stays below 2 GiB.
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
pub const SEGMENT_BYTES_MAX: u64 = (1 << 31) - DMA_ALIGN_BYTES;
/// Tail cache per shard: 0 disables it; 64 GiB bounds a typo like an extra zero... or three.
pub const TAIL_CACHE_BYTES_MAX: u64 = 64 << 30;
/// Socket buffers: 0 keeps kernel autotuning; the kernel caps larger requests at net.core.rmem_max and wmem_max.
pub const SOCKET_BUFFER_BYTES_MAX: u64 = 1 << 30;
/// Connection limit bounds for the whole broker (and for one address): past a million, the file
/// descriptor limit of any real system (fs.nr_open defaults to 1,048,576) is the bound anyway.
pub const MAX_CONNECTIONS_MAX: u64 = 1_000_000;
/// A request must fit a default producer batch (1 MiB) and Kafka's signed 32-bit frame size.
pub const MAX_REQUEST_BYTES_MIN: u64 = 1 << 20;
pub const MAX_REQUEST_BYTES_MAX: u64 = i32::MAX as u64;
/// Bounds of `connections_max_idle_ms`, `request_read_timeout_ms` and
/// `connections_max_write_stall_ms`: at least 100 ms (a shorter
/// timeout cuts off healthy clients), at most a day.
pub const CONNECTION_TIMEOUT_MS_MIN: u64 = 100;
pub const CONNECTION_TIMEOUT_MS_MAX: u64 = 86_400_000;
/// Bounds of `max_in_flight_bytes_per_connection`: at least 64 KiB, at most 16 GiB.
pub const MAX_IN_FLIGHT_BYTES_PER_CONNECTION_MIN: u64 = 64 << 10;
pub const MAX_IN_FLIGHT_BYTES_PER_CONNECTION_MAX: u64 = 16 << 30;
/// Bounds of `log_cleaner_interval_ms`: at least 100 ms (a pass re-reads the partition's sealed
/// segments), at most a day.
pub const LOG_CLEANER_INTERVAL_MS_MIN: u64 = 100;
pub const LOG_CLEANER_INTERVAL_MS_MAX: u64 = 86_400_000;
/// Bounds of `group_consumer_session_timeout_ms`: at least 1 s, at most 30 minutes (Kafka's
/// `group.max.session.timeout.ms`); Kafka's own floor is 45 s, lower values are for tests.
pub const GROUP_CONSUMER_SESSION_TIMEOUT_MS_MIN: u64 = 1_000;
pub const GROUP_CONSUMER_SESSION_TIMEOUT_MS_MAX: u64 = 1_800_000;
/// Bounds of `group_consumer_heartbeat_interval_ms`: at least 100 ms (members heartbeat this often), at
/// most 15 minutes; it must also stay below the session timeout (checked at resolve).
pub const GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_MIN: u64 = 100;
pub const GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_MAX: u64 = 900_000;
/// Bounds of `transaction_max_timeout_ms`: at least 1 s (Kafka's floor for `transaction.max.timeout.ms`),
/// at most 24 hours; the coordinator keeps an abandoned transaction open (and the partitions' last
/// stable offsets held back) for up to this long, so a larger cap only widens that window.
pub const TRANSACTION_MAX_TIMEOUT_MS_MIN: u64 = 1_000;
pub const TRANSACTION_MAX_TIMEOUT_MS_MAX: u64 = 86_400_000;
/// Bounds of `log_cleaner_max_keys`: at least 1024 keys, at most 64 Mi keys (~2.5 GiB of offset map).
pub const LOG_CLEANER_MAX_KEYS_MIN: u64 = 1 << 10;
pub const LOG_CLEANER_MAX_KEYS_MAX: u64 = 64 << 20;

/// Where an effective setting came from, printed after each value at broker start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// The built-in default (default.toml).
    Default,
    /// The profile file given with --profile.
    Profile,
    /// A broker config file (`ringbroker serve --config FILE`).
    File,
    /// An environment variable (`RINGBROKER_...`).
    Env,
    /// A command-line flag (see [`Profile::set_from_flag`]).
    Flag,
    /// The data directory's io-properties.toml written by `tune iotune`.
    Iotune,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provenance::Default => "default",
            Provenance::Profile => "profile",
            Provenance::File => "file",
            Provenance::Env => "env",
            Provenance::Flag => "flag",
            Provenance::Iotune => "iotune",
        })
    }
}

/// A parsed profile, not yet checked against the machine. Each field is documented in default.toml under the
/// same name. Read the fields freely; change them through [`Profile::set_from_flag`] so provenance follows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The file name, or "builtin default".
    pub name: String,
    pub shard_cores: CoreSpec,
    pub bench_cores: CoreSpec,
    pub pin_executors: bool,
    pub io_memory_bytes: IoMemorySpec,
    pub io_ring_depth: u32,
    pub dma_writes_in_flight_per_partition: u32,
    pub write_buffer_bytes: u64,
    pub flush_policy: FlushPolicy,
    pub segment_bytes: u64,
    pub tail_cache_bytes_per_shard: u64,
    pub socket_send_buffer_bytes: u64,
    pub socket_recv_buffer_bytes: u64,
    pub max_connections: ConnectionsSpec,
    /// `None`: unlimited (Kafka's default for `max.connections.per.ip`).
    pub max_connections_per_ip: Option<u64>,
    pub max_connections_per_ip_overrides: Vec<IpLimit>,
    pub max_request_bytes: u64,
    pub connections_max_idle_ms: u64,
    pub request_read_timeout_ms: u64,
    pub connections_max_write_stall_ms: u64,
    pub max_in_flight_bytes_per_connection: u64,
    pub log_cleaner_interval_ms: u64,
    pub log_cleaner_max_keys: u64,
    pub group_consumer_session_timeout_ms: u64,
    pub group_consumer_heartbeat_interval_ms: u64,
    pub transaction_max_timeout_ms: u64,
    sources: BTreeMap<Key, Provenance>,
}

impl Profile {
    /// The embedded default.toml: what `serve` uses without --profile. Call [`Profile::resolve`] next.
    pub fn builtin_default() -> Profile {
        let table = parse_table(DEFAULT_PROFILE_TOML, "builtin default");
        // The embedded file is part of the build, not input: unit tests parse it, so failing here is a bug.
        let table = table.unwrap_or_else(|err| panic!("embedded default.toml is broken: {err}"));
        let mut profile = Profile::placeholder();
        for key in Key::ALL {
            assert!(
                table.contains_key(key.name()),
                "default.toml must set `{key}`"
            );
        }
        if let Err(err) = profile.apply_table(&table, "builtin default", Provenance::Default) {
            panic!("embedded default.toml is broken: {err}");
        }
        profile
    }

    /// Reads a profile file and lays it over the built-in defaults.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses profile text (named `name` in errors) over the built-in defaults.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Profile, ProfileError> {
        let table = parse_table(text, name)?;
        let mut profile = Profile::builtin_default();
        profile.name = name.to_string();
        profile.apply_table(&table, name, Provenance::Profile)?;
        Ok(profile)
    }

    /// Overrides one key from a command-line flag; `value` is TOML (`4`, `[2,3]`, `"64MiB"`) or a bare word
    /// (`64MiB`, `2-15`, `always`). The key's provenance becomes [`Provenance::Flag`].
    pub fn set_from_flag(&mut self, key: &str, value: &str) -> Result<(), ProfileError> {
        self.set_text(key, value, "flag", Provenance::Flag)
    }

    /// Sets one key from text (TOML or a bare word, as [`Profile::set_from_flag`]) that came from
    /// `provenance`; `origin` names the place in errors (a file, an environment variable).
    pub fn set_text(
        &mut self,
        key: &str,
        value: &str,
        origin: &str,
        provenance: Provenance,
    ) -> Result<(), ProfileError> {
        let parsed = format!("value = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut table| table.remove("value"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        self.set_value(key, parsed, origin, provenance)
    }

    /// Sets one key from a TOML value that came from `provenance` (named `origin` in errors).
    pub fn set_value(
        &mut self,
        key: &str,
        value: toml::Value,
        origin: &str,
        provenance: Provenance,
    ) -> Result<(), ProfileError> {
        let mut table = toml::Table::new();
        table.insert(key.to_string(), value);
        self.apply_table(&table, origin, provenance)
    }

    /// One of the profiles shipped in `tuning/profiles/` and embedded in the binary, by file stem:
    /// `default`, `dev`, `bare-metal-16c`.
    pub fn shipped(name: &str) -> Option<Result<Profile, ProfileError>> {
        let text = SHIPPED_PROFILES
            .iter()
            .find(|(shipped, _)| *shipped == name)
            .map(|(_, text)| *text)?;
        if name == "default" {
            return Some(Ok(Profile::builtin_default()));
        }
        Some(Profile::from_toml_str(text, name))
    }

    /// The value `key` has in the built-in default profile, as written in default.toml.
    pub fn default_text(key: Key) -> String {
        let table = parse_table(DEFAULT_PROFILE_TOML, "builtin default").unwrap_or_default();
        match table.get(key.name()) {
            Some(toml::Value::String(text)) => text.clone(),
            Some(value) => value.to_string(),
            None => String::new(),
        }
    }

    /// Where `key`'s current value came from.
    pub fn source(&self, key: Key) -> Provenance {
        self.sources
            .get(&key)
            .copied()
            .unwrap_or(Provenance::Default)
    }

    /// Resolves the profile for the machine this process runs on: concrete cores, io memory within the
    /// locked-memory limit, and cross-key checks.
    pub fn resolve(&self) -> Result<ResolvedProfile, ProfileError> {
        self.resolve_for(&Machine::detect()?)
    }

    /// [`Profile::resolve`] against given machine facts (tests, or planning for another machine).
    pub fn resolve_for(&self, machine: &Machine) -> Result<ResolvedProfile, ProfileError> {
        resolve::resolve(self, machine)
    }

    /// Values that never survive: [`Profile::builtin_default`] overwrites every key from default.toml.
    fn placeholder() -> Profile {
        Profile {
            name: "builtin default".to_string(),
            shard_cores: CoreSpec::Auto,
            bench_cores: CoreSpec::Auto,
            pin_executors: false,
            io_memory_bytes: IoMemorySpec::Auto,
            io_ring_depth: 0,
            dma_writes_in_flight_per_partition: 0,
            write_buffer_bytes: 0,
            flush_policy: FlushPolicy::Never,
            segment_bytes: 0,
            tail_cache_bytes_per_shard: 0,
            socket_send_buffer_bytes: 0,
            socket_recv_buffer_bytes: 0,
            max_connections: ConnectionsSpec::Auto,
            max_connections_per_ip: None,
            max_connections_per_ip_overrides: Vec::new(),
            max_request_bytes: 0,
            connections_max_idle_ms: 0,
            request_read_timeout_ms: 0,
            connections_max_write_stall_ms: 0,
            max_in_flight_bytes_per_connection: 0,
            log_cleaner_interval_ms: 0,
            log_cleaner_max_keys: 0,
            group_consumer_session_timeout_ms: 0,
            group_consumer_heartbeat_interval_ms: 0,
            transaction_max_timeout_ms: 0,
            sources: BTreeMap::new(),
        }
    }

    fn apply_table(
        &mut self,
        table: &toml::Table,
        name: &str,
        provenance: Provenance,
    ) -> Result<(), ProfileError> {
        for (key_name, value) in table {
            let Some(key) = Key::from_name(key_name) else {
                return Err(ProfileError::UnknownKey {
                    profile: name.to_string(),
                    key: key_name.clone(),
                    fix: Key::unknown_key_fix(key_name),
                });
            };
            self.apply_key(key, value)
                .map_err(|err| ProfileError::InvalidValue {
                    profile: name.to_string(),
                    key: key_name.clone(),
                    value: value.to_string(),
                    reason: err.reason,
                    fix: err.fix,
                })?;
            self.sources.insert(key, provenance);
        }
        Ok(())
    }

    fn apply_key(&mut self, key: Key, value: &toml::Value) -> Result<(), ValueError> {
        let aligned = |min, max| ByteBounds {
            min,
            max,
            align: DMA_ALIGN_BYTES,
        };
        let any = |max| ByteBounds {
            min: 0,
            max,
            align: 1,
        };
        match key {
            Key::ShardCores => self.shard_cores = value::parse_cores(value)?,
            Key::BenchCores => self.bench_cores = value::parse_cores(value)?,
            Key::PinExecutors => self.pin_executors = value::parse_bool(value)?,
            Key::IoMemoryBytes => {
                let bounds = aligned(IO_MEMORY_BYTES_MIN, IO_MEMORY_BYTES_MAX);
                self.io_memory_bytes = value::parse_io_memory(value, bounds)?;
            }
            Key::IoRingDepth => {
                let depth = value::parse_int(value, IO_RING_DEPTH_MIN, IO_RING_DEPTH_MAX)?;
                if !depth.is_power_of_two() {
                    let fix = format!(
                        "use {} or {}",
                        depth.next_power_of_two() / 2,
                        depth.next_power_of_two()
                    );
                    return Err(ValueError::new(
                        "io_uring ring depths are powers of two",
                        fix,
                    ));
                }
                self.io_ring_depth = depth as u32;
            }
            Key::DmaWritesInFlightPerPartition => {
                self.dma_writes_in_flight_per_partition =
                    value::parse_int(value, 1, DMA_WRITES_IN_FLIGHT_MAX)? as u32;
            }
            Key::WriteBufferBytes => {
                self.write_buffer_bytes = value::parse_bytes(
                    value,
                    aligned(WRITE_BUFFER_BYTES_MIN, WRITE_BUFFER_BYTES_MAX),
                )?;
            }
            Key::FlushPolicy => self.flush_policy = value::parse_flush_policy(value)?,
            Key::SegmentBytes => {
                self.segment_bytes =
                    value::parse_bytes(value, aligned(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX))?;
            }
            Key::TailCacheBytesPerShard => {
                self.tail_cache_bytes_per_shard =
                    value::parse_bytes(value, any(TAIL_CACHE_BYTES_MAX))?;
            }
            Key::SocketSendBufferBytes => {
                self.socket_send_buffer_bytes =
                    value::parse_bytes(value, any(SOCKET_BUFFER_BYTES_MAX))?;
            }
            Key::SocketRecvBufferBytes => {
                self.socket_recv_buffer_bytes =
                    value::parse_bytes(value, any(SOCKET_BUFFER_BYTES_MAX))?;
            }
            Key::MaxConnections => {
                self.max_connections = value::parse_connections(value, 1, MAX_CONNECTIONS_MAX)?
            }
            Key::MaxConnectionsPerIp => {
                self.max_connections_per_ip =
                    value::parse_limit_or_unlimited(value, MAX_CONNECTIONS_MAX)?
            }
            Key::MaxConnectionsPerIpOverrides => {
                self.max_connections_per_ip_overrides =
                    value::parse_ip_overrides(value, MAX_CONNECTIONS_MAX)?
            }
            Key::MaxRequestBytes => {
                let bounds = ByteBounds {
                    min: MAX_REQUEST_BYTES_MIN,
                    max: MAX_REQUEST_BYTES_MAX,
                    align: 1,
                };
                self.max_request_bytes = value::parse_bytes(value, bounds)?;
            }
            Key::ConnectionsMaxIdleMs => {
                self.connections_max_idle_ms =
                    value::parse_int(value, CONNECTION_TIMEOUT_MS_MIN, CONNECTION_TIMEOUT_MS_MAX)?;
            }
            Key::RequestReadTimeoutMs => {
                self.request_read_timeout_ms =
                    value::parse_int(value, CONNECTION_TIMEOUT_MS_MIN, CONNECTION_TIMEOUT_MS_MAX)?;
            }
            Key::ConnectionsMaxWriteStallMs => {
                self.connections_max_write_stall_ms =
                    value::parse_int(value, CONNECTION_TIMEOUT_MS_MIN, CONNECTION_TIMEOUT_MS_MAX)?;
            }
            Key::MaxInFlightBytesPerConnection => {
                let bounds = ByteBounds {
                    min: MAX_IN_FLIGHT_BYTES_PER_CONNECTION_MIN,
                    max: MAX_IN_FLIGHT_BYTES_PER_CONNECTION_MAX,
                    align: 1,
                };
                self.max_in_flight_bytes_per_connection = value::parse_bytes(value, bounds)?;
            }
            Key::LogCleanerIntervalMs => {
                self.log_cleaner_interval_ms = value::parse_int(
                    value,
                    LOG_CLEANER_INTERVAL_MS_MIN,
                    LOG_CLEANER_INTERVAL_MS_MAX,
                )?;
            }
            Key::LogCleanerMaxKeys => {
                self.log_cleaner_max_keys =
                    value::parse_int(value, LOG_CLEANER_MAX_KEYS_MIN, LOG_CLEANER_MAX_KEYS_MAX)?;
            }
            Key::GroupConsumerSessionTimeoutMs => {
                self.group_consumer_session_timeout_ms = value::parse_int(
                    value,
                    GROUP_CONSUMER_SESSION_TIMEOUT_MS_MIN,
                    GROUP_CONSUMER_SESSION_TIMEOUT_MS_MAX,
                )?;
            }
            Key::GroupConsumerHeartbeatIntervalMs => {
                self.group_consumer_heartbeat_interval_ms = value::parse_int(
                    value,
                    GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_MIN,
                    GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_MAX,
                )?;
            }
            Key::TransactionMaxTimeoutMs => {
                self.transaction_max_timeout_ms = value::parse_int(
                    value,
                    TRANSACTION_MAX_TIMEOUT_MS_MIN,
                    TRANSACTION_MAX_TIMEOUT_MS_MAX,
                )?;
            }
        }
        Ok(())
    }
}

fn parse_table(text: &str, name: &str) -> Result<toml::Table, ProfileError> {
    text.parse::<toml::Table>()
        .map_err(|err| ProfileError::Syntax {
            profile: name.to_string(),
            message: err.to_string().trim().to_string(),
        })
}

#[cfg(test)]
mod tests;
