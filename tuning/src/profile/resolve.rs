//! Resolution of a [`Profile`] against a [`Machine`]: "auto" cores and io memory become concrete values,
//! listed cores must exist, io memory must fit the locked-memory limit, and keys that bound each other agree.
//! The result, [`ResolvedProfile`], carries each setting's provenance for the start-up printout.

use std::collections::BTreeMap;

use serde::Serialize;

use super::value::{human_bytes, ConnectionsSpec, CoreSpec, FlushPolicy, IoMemorySpec, IpLimit};
use super::{Key, Profile, Provenance, IO_MEMORY_BYTES_MIN, MAX_CONNECTIONS_MAX};
use crate::error::ProfileError;
use crate::machine::Machine;
use crate::sysfs::format_cpulist;

/// glommio registers an executor's io memory on this many io_uring rings (main, latency, poll), and
/// registered buffers count against RLIMIT_MEMLOCK: need ≈ 3 x io_memory x shards.
pub const IO_MEMORY_RINGS_PER_EXECUTOR: u64 = 3;
/// "auto" io memory takes at most this much per executor; the log's writes never need more in flight.
pub const IO_MEMORY_AUTO_MAX_BYTES: u64 = 8 << 20;
/// With at most this many usable cores, "auto" puts shards on every core (a laptop, CI).
pub const AUTO_ALL_CORES_MAX: usize = 2;
/// "auto" leaves one core in this many (at least one) to the kernel, interrupts, and the bench client.
pub const AUTO_RESERVED_CORE_RATIO: usize = 8;
/// "auto" `max_connections` leaves one file descriptor in this many to everything that is not a
/// client connection: segment and index files (a few per partition), listeners, io_uring rings,
/// the metrics endpoint...
pub const FDS_RESERVED_RATIO: u64 = 4;
/// ...and at least this many (but never more than half the limit).
pub const FDS_RESERVED_MIN: u64 = 1024;

/// A profile made concrete for one machine. Fields mirror [`Profile`]; see default.toml for meanings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedProfile {
    pub name: String,
    /// One shard (glommio executor) per listed core.
    pub shard_cores: Vec<usize>,
    pub bench_cores: Vec<usize>,
    pub pin_executors: bool,
    pub io_memory_bytes: u64,
    pub io_ring_depth: u32,
    pub dma_writes_in_flight_per_partition: u32,
    pub write_buffer_bytes: u64,
    pub flush_policy: FlushPolicy,
    pub segment_bytes: u64,
    pub tail_cache_bytes_per_shard: u64,
    pub socket_send_buffer_bytes: u64,
    pub socket_recv_buffer_bytes: u64,
    /// Client connections the broker accepts at once ("auto" resolved).
    pub max_connections: u64,
    /// From one address; `None`: unlimited.
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
    /// RLIMIT_MEMLOCK seen at resolve time; `None` = unlimited.
    pub memlock_limit_bytes: Option<u64>,
    /// Hard RLIMIT_NOFILE seen at resolve time; `None` = unlimited.
    pub nofile_limit: Option<u64>,
    /// Legal but questionable combinations (e.g. bench and shards sharing cores); print them at start.
    pub warnings: Vec<String>,
    sources: BTreeMap<Key, Provenance>,
    /// How "auto" values were derived, printed after the provenance.
    notes: BTreeMap<Key, String>,
}

/// One printed line: `key = value (source; note)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveSetting {
    pub key: Key,
    pub value: String,
    pub source: Provenance,
    pub note: Option<String>,
}

impl std::fmt::Display for EffectiveSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} ({}", self.key, self.value, self.source)?;
        if let Some(note) = &self.note {
            write!(f, "; {note}")?;
        }
        f.write_str(")")
    }
}

impl ResolvedProfile {
    /// Number of shards (executors).
    pub fn shard_count(&self) -> usize {
        self.shard_cores.len()
    }

    /// Locked memory glommio will register: rings x io memory x shards.
    pub fn locked_memory_needed_bytes(&self) -> u64 {
        IO_MEMORY_RINGS_PER_EXECUTOR * self.io_memory_bytes * self.shard_count() as u64
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: Key) -> Provenance {
        self.sources
            .get(&key)
            .copied()
            .unwrap_or(Provenance::Default)
    }

    /// Sizes in-flight DMA writes from `tune iotune`'s measurement unless a profile or flag set them.
    pub fn apply_io_properties(&mut self, properties: &crate::iotune::IoProperties) {
        let key = Key::DmaWritesInFlightPerPartition;
        if self.source(key) != Provenance::Default {
            return;
        }
        let depth = properties
            .recommended_dma_writes_in_flight
            .clamp(1, self.io_ring_depth);
        self.dma_writes_in_flight_per_partition = depth;
        self.sources.insert(key, Provenance::Iotune);
        self.notes.insert(
            key,
            format!("saturating queue depth measured on {}", properties.data_dir),
        );
    }

    /// Every setting with its value and source, in [`Key::ALL`] order.
    pub fn settings(&self) -> Vec<EffectiveSetting> {
        Key::ALL
            .into_iter()
            .map(|key| EffectiveSetting {
                key,
                value: self.value_text(key),
                source: self.source(key),
                note: self.notes.get(&key).cloned(),
            })
            .collect()
    }

    fn value_text(&self, key: Key) -> String {
        match key {
            Key::ShardCores => format_cpulist(&self.shard_cores),
            Key::BenchCores => format_cpulist(&self.bench_cores),
            Key::PinExecutors => self.pin_executors.to_string(),
            Key::IoMemoryBytes => human_bytes(self.io_memory_bytes),
            Key::IoRingDepth => self.io_ring_depth.to_string(),
            Key::DmaWritesInFlightPerPartition => {
                self.dma_writes_in_flight_per_partition.to_string()
            }
            Key::WriteBufferBytes => human_bytes(self.write_buffer_bytes),
            Key::FlushPolicy => self.flush_policy.to_string(),
            Key::SegmentBytes => human_bytes(self.segment_bytes),
            Key::TailCacheBytesPerShard => human_bytes(self.tail_cache_bytes_per_shard),
            Key::SocketSendBufferBytes => socket_text(self.socket_send_buffer_bytes),
            Key::SocketRecvBufferBytes => socket_text(self.socket_recv_buffer_bytes),
            Key::MaxConnections => self.max_connections.to_string(),
            Key::MaxConnectionsPerIp => self
                .max_connections_per_ip
                .map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
            Key::MaxConnectionsPerIpOverrides => {
                let entries: Vec<String> = self
                    .max_connections_per_ip_overrides
                    .iter()
                    .map(|limit| match limit.ip {
                        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", limit.max_connections),
                        std::net::IpAddr::V4(ip) => format!("{ip}:{}", limit.max_connections),
                    })
                    .collect();
                format!("\"{}\"", entries.join(","))
            }
            Key::MaxRequestBytes => human_bytes(self.max_request_bytes),
            Key::ConnectionsMaxIdleMs => self.connections_max_idle_ms.to_string(),
            Key::RequestReadTimeoutMs => self.request_read_timeout_ms.to_string(),
            Key::ConnectionsMaxWriteStallMs => self.connections_max_write_stall_ms.to_string(),
            Key::MaxInFlightBytesPerConnection => {
                human_bytes(self.max_in_flight_bytes_per_connection)
            }
            Key::LogCleanerIntervalMs => self.log_cleaner_interval_ms.to_string(),
            Key::LogCleanerMaxKeys => self.log_cleaner_max_keys.to_string(),
            Key::GroupConsumerSessionTimeoutMs => {
                self.group_consumer_session_timeout_ms.to_string()
            }
            Key::GroupConsumerHeartbeatIntervalMs => {
                self.group_consumer_heartbeat_interval_ms.to_string()
            }
            Key::TransactionMaxTimeoutMs => self.transaction_max_timeout_ms.to_string(),
        }
    }
}

impl std::fmt::Display for ResolvedProfile {
    /// The start-up printout: one `key = value (source)` line per setting, then warnings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "profile: {}", self.name)?;
        for setting in self.settings() {
            writeln!(f, "  {setting}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        Ok(())
    }
}

fn socket_text(bytes: u64) -> String {
    if bytes == 0 {
        "0 (kernel autotuning)".to_string()
    } else {
        human_bytes(bytes)
    }
}

/// See the module doc.
pub(super) fn resolve(
    profile: &Profile,
    machine: &Machine,
) -> Result<ResolvedProfile, ProfileError> {
    let invalid =
        |key: Key, value: String, reason: String, fix: String| ProfileError::InvalidValue {
            profile: profile.name.clone(),
            key: key.name().to_string(),
            value,
            reason,
            fix,
        };
    let mut notes = BTreeMap::new();
    let mut warnings = Vec::new();
    let usable = &machine.usable_cores;
    debug_assert!(
        !usable.is_empty(),
        "a running process has at least one usable core"
    );

    let shard_cores = match &profile.shard_cores {
        CoreSpec::Auto => {
            let cores = auto_shard_cores(usable);
            notes.insert(
                Key::ShardCores,
                format!("auto: {} usable cores", usable.len()),
            );
            cores
        }
        CoreSpec::List(cores) => {
            check_cores_usable(cores, usable)
                .map_err(|(value, reason, fix)| invalid(Key::ShardCores, value, reason, fix))?;
            cores.clone()
        }
    };
    let bench_cores = match &profile.bench_cores {
        CoreSpec::Auto => {
            let rest: Vec<usize> = usable
                .iter()
                .copied()
                .filter(|c| !shard_cores.contains(c))
                .collect();
            notes.insert(
                Key::BenchCores,
                "auto: usable cores without a shard".to_string(),
            );
            if rest.is_empty() {
                usable.clone()
            } else {
                rest
            }
        }
        CoreSpec::List(cores) => {
            check_cores_usable(cores, usable)
                .map_err(|(value, reason, fix)| invalid(Key::BenchCores, value, reason, fix))?;
            cores.clone()
        }
    };
    let shared: Vec<usize> = bench_cores
        .iter()
        .copied()
        .filter(|c| shard_cores.contains(c))
        .collect();
    if !shared.is_empty() {
        warnings.push(format!(
            "bench_cores and shard_cores share cores {}: bench figures include that interference",
            format_cpulist(&shared)
        ));
    }

    let shards = shard_cores.len() as u64;
    let io_memory_bytes = match profile.io_memory_bytes {
        IoMemorySpec::Auto => {
            let budget = machine
                .memlock_limit_bytes
                .map_or(IO_MEMORY_AUTO_MAX_BYTES, |limit| {
                    limit / (IO_MEMORY_RINGS_PER_EXECUTOR * shards)
                });
            let bytes = prev_power_of_two(budget.min(IO_MEMORY_AUTO_MAX_BYTES));
            if bytes < IO_MEMORY_BYTES_MIN {
                return Err(invalid(
                    Key::IoMemoryBytes,
                    "\"auto\"".to_string(),
                    format!(
                        "the locked-memory limit {} leaves under {} per shard for {shards} shards",
                        limit_text(machine.memlock_limit_bytes),
                        human_bytes(IO_MEMORY_BYTES_MIN)
                    ),
                    memlock_fix(shards, IO_MEMORY_BYTES_MIN),
                ));
            }
            notes.insert(
                Key::IoMemoryBytes,
                format!("auto: RLIMIT_MEMLOCK {} / ({IO_MEMORY_RINGS_PER_EXECUTOR} rings x {shards} shards)", limit_text(machine.memlock_limit_bytes)),
            );
            bytes
        }
        IoMemorySpec::Bytes(bytes) => bytes,
    };
    let needed = IO_MEMORY_RINGS_PER_EXECUTOR * io_memory_bytes * shards;
    if let Some(limit) = machine.memlock_limit_bytes {
        if needed > limit {
            let fitting = limit / (IO_MEMORY_RINGS_PER_EXECUTOR * shards) / super::DMA_ALIGN_BYTES
                * super::DMA_ALIGN_BYTES;
            let set_fix = if fitting >= IO_MEMORY_BYTES_MIN {
                format!("set io_memory_bytes = {fitting} (or \"auto\") or less; or ")
            } else {
                String::new()
            };
            return Err(invalid(
                Key::IoMemoryBytes,
                io_memory_bytes.to_string(),
                format!(
                    "{IO_MEMORY_RINGS_PER_EXECUTOR} rings x {} x {shards} shards = {} exceeds the locked-memory limit RLIMIT_MEMLOCK = {}",
                    human_bytes(io_memory_bytes),
                    human_bytes(needed),
                    human_bytes(limit)
                ),
                format!("{set_fix}{}", memlock_fix(shards, io_memory_bytes)),
            ));
        }
    }

    if profile.dma_writes_in_flight_per_partition > profile.io_ring_depth {
        return Err(invalid(
            Key::DmaWritesInFlightPerPartition,
            profile.dma_writes_in_flight_per_partition.to_string(),
            format!(
                "it exceeds io_ring_depth = {}, which bounds every in-flight I/O of a shard",
                profile.io_ring_depth
            ),
            format!(
                "lower it to at most {} or raise io_ring_depth",
                profile.io_ring_depth
            ),
        ));
    }
    if profile.group_consumer_heartbeat_interval_ms >= profile.group_consumer_session_timeout_ms {
        return Err(invalid(
            Key::GroupConsumerHeartbeatIntervalMs,
            profile.group_consumer_heartbeat_interval_ms.to_string(),
            format!(
                "it is not below group_consumer_session_timeout_ms = {}: members would time out between heartbeats",
                profile.group_consumer_session_timeout_ms
            ),
            "lower it (Kafka's default is 5000 with a 45000 session timeout)".to_string(),
        ));
    }
    if profile.write_buffer_bytes > profile.segment_bytes {
        return Err(invalid(
            Key::WriteBufferBytes,
            profile.write_buffer_bytes.to_string(),
            format!(
                "it is larger than segment_bytes = {}",
                profile.segment_bytes
            ),
            "lower write_buffer_bytes or raise segment_bytes".to_string(),
        ));
    }

    let max_connections = resolve_max_connections(profile, machine, &mut notes, &mut warnings)
        .map_err(|(value, reason, fix)| invalid(Key::MaxConnections, value, reason, fix))?;
    if profile.max_connections_per_ip == Some(0)
        && profile.max_connections_per_ip_overrides.is_empty()
    {
        // Kafka's rule: 0 only makes sense as "nobody but the overrides".
        return Err(invalid(
            Key::MaxConnectionsPerIp,
            "0".to_string(),
            "0 refuses every client unless max_connections_per_ip_overrides lists some".to_string(),
            "list the allowed addresses in max_connections_per_ip_overrides, or write \"unlimited\" or a count".to_string(),
        ));
    }

    let mut sources = BTreeMap::new();
    for key in Key::ALL {
        sources.insert(key, profile.source(key));
    }
    Ok(ResolvedProfile {
        name: profile.name.clone(),
        shard_cores,
        bench_cores,
        pin_executors: profile.pin_executors,
        io_memory_bytes,
        io_ring_depth: profile.io_ring_depth,
        dma_writes_in_flight_per_partition: profile.dma_writes_in_flight_per_partition,
        write_buffer_bytes: profile.write_buffer_bytes,
        flush_policy: profile.flush_policy,
        segment_bytes: profile.segment_bytes,
        tail_cache_bytes_per_shard: profile.tail_cache_bytes_per_shard,
        socket_send_buffer_bytes: profile.socket_send_buffer_bytes,
        socket_recv_buffer_bytes: profile.socket_recv_buffer_bytes,
        max_connections,
        max_connections_per_ip: profile.max_connections_per_ip,
        max_connections_per_ip_overrides: profile.max_connections_per_ip_overrides.clone(),
        max_request_bytes: profile.max_request_bytes,
        connections_max_idle_ms: profile.connections_max_idle_ms,
        request_read_timeout_ms: profile.request_read_timeout_ms,
        connections_max_write_stall_ms: profile.connections_max_write_stall_ms,
        max_in_flight_bytes_per_connection: profile.max_in_flight_bytes_per_connection,
        log_cleaner_interval_ms: profile.log_cleaner_interval_ms,
        log_cleaner_max_keys: profile.log_cleaner_max_keys,
        group_consumer_session_timeout_ms: profile.group_consumer_session_timeout_ms,
        group_consumer_heartbeat_interval_ms: profile.group_consumer_heartbeat_interval_ms,
        transaction_max_timeout_ms: profile.transaction_max_timeout_ms,
        memlock_limit_bytes: machine.memlock_limit_bytes,
        nofile_limit: machine.nofile_limit,
        warnings,
        sources,
        notes,
    })
}

/// Connections "auto" allows under a hard file descriptor limit of `nofile` (`None`: unlimited):
/// the limit less [`FDS_RESERVED_RATIO`]'s share for files, at least [`FDS_RESERVED_MIN`], at most
/// half of it; never more than [`MAX_CONNECTIONS_MAX`].
pub fn auto_max_connections(nofile: Option<u64>) -> u64 {
    let Some(nofile) = nofile else {
        return MAX_CONNECTIONS_MAX;
    };
    let reserved = (nofile / FDS_RESERVED_RATIO)
        .max(FDS_RESERVED_MIN)
        .min(nofile / 2);
    (nofile - reserved).clamp(1, MAX_CONNECTIONS_MAX)
}

type ValueFault = (String, String, String);

/// `max_connections`: "auto" from the file descriptor limit; a count must fit under that limit.
fn resolve_max_connections(
    profile: &Profile,
    machine: &Machine,
    notes: &mut BTreeMap<Key, String>,
    warnings: &mut Vec<String>,
) -> Result<u64, ValueFault> {
    let auto = auto_max_connections(machine.nofile_limit);
    let nofile_text = machine
        .nofile_limit
        .map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let count = match profile.max_connections {
        ConnectionsSpec::Auto => {
            notes.insert(
                Key::MaxConnections,
                format!("auto: RLIMIT_NOFILE {nofile_text}, less a share for files"),
            );
            return Ok(auto);
        }
        ConnectionsSpec::Count(count) => count,
    };
    let fd_fix =
        "write \"auto\", or raise the hard file descriptor limit (`ulimit -Hn`, `nofile` in \
        /etc/security/limits.conf, LimitNOFILE= in the systemd unit, docker --ulimit nofile=)";
    if machine.nofile_limit.is_some_and(|nofile| count >= nofile) {
        return Err((
            count.to_string(),
            format!("each connection takes a file descriptor and RLIMIT_NOFILE allows {nofile_text} in all"),
            format!("set max_connections to at most {auto}, or {fd_fix}"),
        ));
    }
    if let Some(nofile) = machine.nofile_limit.filter(|_| count > auto) {
        warnings.push(format!(
            "max_connections = {count} leaves {} of the {nofile} file descriptors for segment files, \
             listeners and rings (\"auto\" leaves {}): with that many clients, opening a partition may fail",
            nofile - count,
            nofile - auto
        ));
    }
    Ok(count)
}

/// "auto" shard cores: every usable core on a small machine, else all but the first 1/8 (at least one),
/// which stay for the kernel, interrupts, and the bench client.
pub fn auto_shard_cores(usable: &[usize]) -> Vec<usize> {
    if usable.len() <= AUTO_ALL_CORES_MAX {
        return usable.to_vec();
    }
    let reserved = usable.len().div_ceil(AUTO_RESERVED_CORE_RATIO).max(1);
    usable[reserved..].to_vec()
}

type CoreError = ValueFault;

fn check_cores_usable(cores: &[usize], usable: &[usize]) -> Result<(), CoreError> {
    let missing: Vec<usize> = cores
        .iter()
        .copied()
        .filter(|c| !usable.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err((
        format_cpulist(cores),
        format!(
            "core(s) {} do not exist or are outside this process's CPU affinity (usable: {})",
            format_cpulist(&missing),
            format_cpulist(usable)
        ),
        format!(
            "list only cores from {}, or write \"auto\"",
            format_cpulist(usable)
        ),
    ))
}

fn memlock_fix(shards: u64, io_memory_bytes: u64) -> String {
    let needed = IO_MEMORY_RINGS_PER_EXECUTOR * io_memory_bytes * shards;
    format!(
        "use fewer shard_cores, or raise the locked-memory limit to at least {} KiB (`ulimit -l {}`, \
         `memlock` in /etc/security/limits.conf, or LimitMEMLOCK= in the systemd unit, or docker --ulimit memlock=-1)",
        needed.div_ceil(1024),
        needed.div_ceil(1024)
    )
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), human_bytes)
}

fn prev_power_of_two(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}
