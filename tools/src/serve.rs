//! `ringbroker serve`: resolves the effective settings (embedded default profile, then
//! `--profile FILE`, then flags), prints each with where it came from, and hands over to the engine.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use ringbroker_engine::config::{
    BrokerConfig, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN,
};
use ringbroker_engine::storage::{FlushPolicy as LogFlushPolicy, LogConfig};
use ringbroker_tuning::{FlushPolicy, IoProperties, Profile, ResolvedProfile};

/// Per-partition tail cache = the profile's per-shard budget divided by this (a shard typically
/// serves several hot partitions), at least `MIN_TAIL_CACHE_BYTES_PER_PARTITION`.
const TAIL_CACHE_SHARE_DIVISOR: u64 = 8;
const MIN_TAIL_CACHE_BYTES_PER_PARTITION: u64 = 1 << 20;

/// Flags of `ringbroker serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ringbroker serve\n  ringbroker serve --listen 0.0.0.0:9092 \
--advertised-listener broker1.example.com:9092 --data-dir /var/lib/ringbroker\n  ringbroker serve --shards 1 \
--set flush_policy=always\n  ringbroker serve --profile tuning/profiles/dev.toml"
)]
pub struct ServeArgs {
    /// Address the Kafka listener binds on (one SO_REUSEPORT listener per shard).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// host:port that clients are told to connect to (defaults to --listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,
    /// Directory holding the topic table and every partition's log.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Number of shards (one executor per core). Default: the profile's shard cores (one per core).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Tuning profile (TOML, see tuning/profiles/). Default: the embedded default profile.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Override one profile key, e.g. --set flush_policy=always --set segment_bytes=64MiB.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Create unknown topics when clients ask for them in Metadata (Kafka auto.create.topics.enable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with -1 (Kafka num.partitions).
    #[arg(long, default_value_t = 1)]
    pub default_partitions: i32,
    /// This broker's node id (Kafka node.id).
    #[arg(long, default_value_t = 0)]
    pub node_id: i32,
    /// Address of the metrics endpoint (/metrics, /health, /ready); `none` disables it and all
    /// metrics recording.
    #[arg(long, value_name = "ADDR|none", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: String,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// Runs the broker until SIGINT/SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging(&args.log);
    let (config, settings) = match resolve(&args) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    for line in settings {
        tracing::info!("setting {line}");
    }
    match ringbroker_engine::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("ringbroker failed: {e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds the engine's configuration and the "key = value (source)" lines to print.
fn resolve(args: &ServeArgs) -> Result<(BrokerConfig, Vec<String>), String> {
    let mut profile = match &args.profile {
        Some(path) => Profile::load(path).map_err(|e| e.to_string())?,
        None => Profile::builtin_default(),
    };
    for assignment in &args.overrides {
        let (key, value) = assignment.split_once('=').ok_or_else(|| {
            format!("--set {assignment}: expected KEY=VALUE, e.g. --set flush_policy=always")
        })?;
        profile
            .set_from_flag(key.trim(), value.trim())
            .map_err(|e| e.to_string())?;
    }
    let mut resolved = profile.resolve().map_err(|e| e.to_string())?;
    // Measured device properties (`ringbroker tune iotune`) size the in-flight writes.
    let io_properties_path = IoProperties::default_path(&args.data_dir);
    if io_properties_path.exists() {
        match IoProperties::load(&io_properties_path) {
            Ok(properties) => resolved.apply_io_properties(&properties),
            Err(e) => tracing::warn!("ignoring {}: {e}", io_properties_path.display()),
        }
    }
    for warning in &resolved.warnings {
        tracing::warn!("profile: {warning}");
    }
    let listen =
        parse_address(&args.listen).map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let (advertised_host, advertised_port) = match &args.advertised_listener {
        Some(address) => {
            split_host_port(address).map_err(|e| format!("--advertised-listener {address}: {e}"))?
        }
        None => (listen.ip().to_string(), listen.port()),
    };
    let shard_cpus = shard_cpus(&resolved, args.shards)?;
    let mut settings: Vec<String> = resolved
        .settings()
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some(n) = args.shards {
        settings.push(format!("shards = {n} (flag)"));
    }
    let config = BrokerConfig {
        listen,
        advertised_host,
        advertised_port,
        node_id: args.node_id,
        data_dir: args.data_dir.clone(),
        shard_cpus,
        io_memory_bytes: resolved.io_memory_bytes as usize,
        ring_depth: resolved.io_ring_depth as usize,
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        max_request_bytes: resolved.max_request_bytes as usize,
        max_connections: resolved.max_connections as usize,
        connections_max_idle_ms: resolved.connections_max_idle_ms,
        request_read_timeout_ms: resolved.request_read_timeout_ms,
        max_in_flight_bytes_per_connection: resolved.max_in_flight_bytes_per_connection as usize,
        log_cleaner_interval_ms: resolved.log_cleaner_interval_ms,
        log_cleaner_max_keys: usize::try_from(resolved.log_cleaner_max_keys).unwrap_or(usize::MAX),
        group_consumer_session_timeout_ms: resolved.group_consumer_session_timeout_ms,
        group_consumer_heartbeat_interval_ms: resolved.group_consumer_heartbeat_interval_ms,
        log: log_config(&resolved),
        metrics_listen: metrics_listen(&args.metrics_listen)?,
        ..BrokerConfig::default()
    };
    Ok((config, settings))
}

/// The CPU of each shard: the profile's shard cores, cut or extended to `--shards N`. Shards
/// beyond the profile's cores run unpinned (a warning says so).
fn shard_cpus(
    resolved: &ResolvedProfile,
    shards: Option<usize>,
) -> Result<Vec<Option<usize>>, String> {
    let cores = &resolved.shard_cores;
    let count = shards.unwrap_or(cores.len());
    if count == 0 {
        return Err("--shards must be at least 1".into());
    }
    if !resolved.pin_executors {
        return Ok(vec![None; count]);
    }
    if count > cores.len() {
        tracing::warn!(
            shards = count,
            cores = cores.len(),
            "more shards than shard cores: running all shards unpinned"
        );
        return Ok(vec![None; count]);
    }
    Ok(cores.iter().take(count).map(|c| Some(*c)).collect())
}

fn log_config(resolved: &ResolvedProfile) -> LogConfig {
    let flush = match resolved.flush_policy {
        FlushPolicy::Always => LogFlushPolicy::Always,
        FlushPolicy::IntervalMs(ms) => LogFlushPolicy::IntervalMs(ms),
        FlushPolicy::Never => LogFlushPolicy::Never,
    };
    let tail_cache = (resolved.tail_cache_bytes_per_shard / TAIL_CACHE_SHARE_DIVISOR)
        .max(MIN_TAIL_CACHE_BYTES_PER_PARTITION);
    LogConfig {
        segment_bytes: resolved.segment_bytes,
        flush,
        tail_cache_bytes: tail_cache as usize,
        max_inflight_writes: resolved.dma_writes_in_flight_per_partition as usize,
        write_buffer_bytes: resolved.write_buffer_bytes as usize,
        ..LogConfig::default()
    }
}

/// `--metrics-listen`: an address, or `none` to turn metrics off.
fn metrics_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_address(text)
        .map(Some)
        .map_err(|e| format!("--metrics-listen {text}: {e} (or `none` to disable metrics)"))
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "does not resolve to an address".to_string())
}

fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port = port.parse::<u16>().map_err(|e| format!("bad port: {e}"))?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            split_host_port("broker:9092"),
            Ok(("broker".to_string(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Ok(("::1".to_string(), 9092)));
        assert!(split_host_port("broker").is_err());
        assert!(split_host_port(":1").is_err());
    }
}
