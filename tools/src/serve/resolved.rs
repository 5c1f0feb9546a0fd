//! One complete resolution of `serve`'s settings: the declared settings, the tuning profile on the
//! machine, the config file's unused keys as warnings, and from all of it the engine's
//! `BrokerConfig`. `serve` resolves once at start, SIGHUP resolves again to compare, and
//! `ringbroker config check` resolves without starting anything.

use std::path::PathBuf;
use std::sync::Arc;

use ringbroker_engine::cluster::config::ReplicationConfig;
use ringbroker_engine::cluster::ClusterConfig;
use ringbroker_engine::config::{BrokerConfig, LiveSettings};
use ringbroker_engine::storage::{FlushPolicy as LogFlushPolicy, LogConfig};
use ringbroker_tuning::profile::edit_distance;
use ringbroker_tuning::{FlushPolicy, IoProperties, Key, ResolvedProfile};

use super::config_file::{ConfigFile, FileFormat};
use super::listeners::{self, ClientListeners};
use super::settings::{env_var_for_key, Environment, Layers, SettingRow};
use super::values::{AuthorizerChoice, Listener, ShardCount};
use super::{profile, ServeArgs, ServeSettings, SettingsError, CONFIG_ENV, SERVE_SETTINGS};
use ringbroker_engine::security::acl::{Authorizer, Rules};
use ringbroker_engine::security::inter_broker::{
    self, ClientTls, ClientTlsFiles, InterBrokerSecurity,
};
use ringbroker_engine::security::sasl::client::SaslLogin;
use ringbroker_engine::security::tls::{self, ServerTls, TlsFiles};
use ringbroker_engine::security::tls_policy::TlsPolicy;
use ringbroker_engine::security::{
    CredentialRegistry, SaslMechanism, SecurityConfig, SecurityProtocol,
};

/// Per-partition tail cache = the profile's per-shard budget divided by this (a shard typically
/// serves several hot partitions), at least `MIN_TAIL_CACHE_BYTES_PER_PARTITION`.
const TAIL_CACHE_SHARE_DIVISOR: u64 = 8;
const MIN_TAIL_CACHE_BYTES_PER_PARTITION: u64 = 1 << 20;
/// An unknown key this close (in edits) to a known one is most likely a typo of it.
const TYPO_DISTANCE_MAX: usize = 3;

/// The effective settings of one `serve` start (or reload, or check).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub settings: ServeSettings,
    pub profile: ResolvedProfile,
    pub file: Option<ConfigFile>,
    /// The client listeners: `listeners` named, with their protocols and advertised addresses.
    pub listeners: ClientListeners,
    /// Questionable but legal choices and ignored input, printed at start as warnings.
    pub warnings: Vec<String>,
}

impl Resolved {
    /// Resolves `args` over the environment `env`, the config file and the defaults.
    pub fn load(args: &ServeArgs, env: Environment<'_>) -> Result<Resolved, SettingsError> {
        let config_path = args
            .sources
            .config
            .clone()
            .or_else(|| env(CONFIG_ENV).map(PathBuf::from));
        let file = config_path.as_deref().map(ConfigFile::load).transpose()?;
        let mut warnings = Vec::new();
        if let Some(file) = &file {
            check_keys(file, &mut warnings)?;
        }
        let layers = Layers {
            env,
            file: file.as_ref(),
        };
        let args = with_listener_flags(args)?;
        let settings = ServeSettings::resolve(&args, &layers)?;
        let profile = profile::build(
            &settings.profile.value,
            file.as_ref(),
            env,
            &args.sources.overrides,
        )?;
        let mut resolved_profile = profile.resolve()?;
        // Measured device properties (`ringbroker tune iotune`) size the in-flight writes.
        let io_properties_path = IoProperties::default_path(&settings.data_dir.value.0);
        if io_properties_path.exists() {
            match IoProperties::load(&io_properties_path) {
                Ok(properties) => resolved_profile.apply_io_properties(&properties),
                Err(e) => warnings.push(format!("ignoring {}: {e}", io_properties_path.display())),
            }
        }
        warnings.extend(
            resolved_profile
                .warnings
                .iter()
                .map(|warning| format!("profile: {warning}")),
        );
        if let ShardCount::Count(count) = settings.shards.value {
            let cores = resolved_profile.shard_cores.len();
            if resolved_profile.pin_executors && count > cores {
                warnings.push(format!(
                    "shards = {count} is more than the profile's {cores} shard cores: running all shards unpinned"
                ));
            }
        }
        let listeners = client_listeners(&settings)?;
        if !listeners.ignored.is_empty() {
            warnings.push(format!(
                "listeners: serving {listeners}; not serving {} (controller.listener.names: the \
                 controller quorum listens on controller.listen)",
                listeners.ignored.join(", ")
            ));
        }
        if listeners
            .listeners
            .iter()
            .any(|l| l.address.ip().is_unspecified())
            && settings.advertised_listener.value.entries.is_empty()
        {
            warnings.push(format!(
                "listeners binds every interface ({listeners}) and advertised.listeners is not set: clients \
                 are told to connect to {}; set advertised.listeners to this host's name",
                listeners.primary().address
            ));
        }
        if settings.authorizer.value == AuthorizerChoice::None
            && !settings.super_users.value.0.is_empty()
        {
            warnings.push(
                "super.users is set but no authorizer is: every client may do everything; add \
                 --authorizer acl (authorizer.class.name) to check ACLs"
                    .to_string(),
            );
        }
        Ok(Resolved {
            settings,
            profile: resolved_profile,
            file,
            listeners,
            warnings,
        })
    }

    /// Every effective setting: the declared ones, then the profile's, each by config-file key.
    pub fn rows(&self) -> Vec<SettingRow> {
        let mut rows = self.settings.rows();
        rows.extend(
            self.profile
                .settings()
                .into_iter()
                .map(|setting| SettingRow {
                    key: setting.key.config_key(),
                    value: setting.value,
                    source: setting.source,
                    note: setting.note,
                    live: profile::is_live(setting.key),
                    env: env_var_for_key(setting.key.config_key()),
                }),
        );
        rows
    }

    /// Logs what a start uses: the config file, every setting with its source, the warnings.
    pub fn log_start_up(&self) {
        if let Some(file) = &self.file {
            let format = match file.format {
                FileFormat::Toml => "TOML",
                FileFormat::Properties => "Kafka properties",
            };
            tracing::info!("config file {} ({format})", file.path.display());
            for folded in &file.folded {
                tracing::info!("config file: {folded}");
            }
        }
        for row in self.rows() {
            tracing::info!("setting {row}");
        }
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }

    /// `ssl.enabled.protocols` and `ssl.cipher.suites`.
    fn tls_policy(&self) -> TlsPolicy {
        TlsPolicy {
            protocols: self.settings.ssl_enabled_protocols.value.0.clone(),
            cipher_suites: self.settings.ssl_cipher_suites.value.0.clone(),
        }
    }

    /// The TLS files of `ssl.cert`, `ssl.key` and `ssl.client.ca`, if a certificate is given,
    /// with the versions and suites allowed.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, SettingsError> {
        let settings = &self.settings;
        match (&settings.ssl_cert.value.0, &settings.ssl_key.value.0) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: settings.ssl_client_ca.value.0.clone(),
                policy: self.tls_policy(),
            })),
            (None, None) => Ok(None),
            _ => Err(SettingsError::Other(
                "ssl.cert and ssl.key go together: give both --ssl-cert and --ssl-key".into(),
            )),
        }
    }

    /// Whether other brokers share the cluster (several voters, or this node is not the only
    /// one): only then does this broker connect to others.
    fn several_nodes(&self) -> bool {
        let voters = &self.settings.controller_quorum_voters.value.voters;
        let node_id = self.settings.node_id.value.0 as i32;
        voters.len() > 1 || (!voters.is_empty() && !voters.contains_key(&node_id))
    }

    /// The inter-broker listener's name and protocol: `inter.broker.listener.name`, or
    /// `security.inter.broker.protocol` naming the listener of that protocol's name (Kafka refuses
    /// both), else PLAINTEXT as Kafka's default. A single node without a PLAINTEXT listener takes
    /// its first one: it connects to no broker.
    fn inter_broker_listener(&self) -> Result<(String, SecurityProtocol), SettingsError> {
        let settings = &self.settings;
        let listeners = &self.listeners;
        let plaintext = SecurityProtocol::Plaintext.name();
        let chosen = match (
            &settings.inter_broker_listener_name.value.0,
            settings.security_inter_broker_protocol.value.0,
        ) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::Other(
                    "only one of inter.broker.listener.name and security.inter.broker.protocol may be set"
                        .into(),
                ))
            }
            (Some(name), None) => name.0.clone(),
            (None, Some(protocol)) => protocol.name().to_string(),
            (None, None) if !self.several_nodes() && listeners.named(plaintext).is_none() => {
                listeners.primary().name.clone()
            }
            (None, None) => plaintext.to_string(),
        };
        let Some(listener) = listeners.named(&chosen) else {
            return Err(SettingsError::Other(format!(
                "the inter-broker listener is {chosen} (inter.broker.listener.name, \
                 security.inter.broker.protocol, default PLAINTEXT) but the listeners are {listeners}: \
                 name one of them in inter.broker.listener.name"
            )));
        };
        Ok((listener.name.clone(), listener.protocol))
    }

    /// The TLS client side of inter-broker connections: the CA, and this broker's certificate.
    pub fn inter_broker_tls_files(&self) -> Result<Option<ClientTlsFiles>, SettingsError> {
        let Some(ca) = self.settings.inter_broker_ssl_ca_file.value.0.clone() else {
            return Ok(None);
        };
        let identity = self
            .tls_files()?
            .map(|files| (files.cert.clone(), files.key.clone()));
        Ok(Some(ClientTlsFiles {
            ca,
            identity,
            policy: self.tls_policy(),
        }))
    }

    /// How this broker connects to the others. What the listener's protocol needs (the CA, the
    /// SASL login) is required when there are other brokers.
    fn inter_broker_security(&self) -> Result<InterBrokerSecurity, SettingsError> {
        let settings = &self.settings;
        let (listener_name, listener) = self.inter_broker_listener()?;
        let required = self.several_nodes();
        let tls = match self.inter_broker_tls_files()? {
            Some(files) if listener.uses_tls() => Some(Arc::new(ClientTls::new(
                inter_broker::client_config(&files)
                    .map_err(|e| tls_error("inter.broker.ssl.ca.file", e))?,
            ))),
            None if listener.uses_tls() && required => {
                return Err(SettingsError::Other(format!(
                    "the inter-broker listener is {listener}: give the CA of the brokers' \
                     certificates with --inter-broker-ssl-ca-file FILE (inter.broker.ssl.ca.file)"
                )))
            }
            _ => None,
        };
        let username = settings.inter_broker_sasl_username.value.0.clone();
        let password = settings.inter_broker_sasl_password.value.0.clone();
        let enabled = &settings.sasl_mechanisms.value.0;
        let mechanism = settings
            .sasl_mechanism_inter_broker_protocol
            .value
            .0
            .or_else(|| enabled.first().copied())
            .unwrap_or(SaslMechanism::ScramSha512);
        // Kafka's check: the other brokers offer only the enabled mechanisms (every broker of a
        // cluster is given the same list).
        if listener.uses_sasl() && !enabled.contains(&mechanism) {
            return Err(SettingsError::Other(format!(
                "sasl.mechanism.inter.broker.protocol {mechanism} must be one of \
                 sasl.enabled.mechanisms ({}) when the inter-broker listener uses SASL",
                settings.sasl_mechanisms.value
            )));
        }
        let sasl = match (username, password) {
            (Some(username), Some(password)) if listener.uses_sasl() => Some(SaslLogin {
                mechanism,
                username,
                password,
            }),
            _ if listener.uses_sasl() && required => {
                return Err(SettingsError::Other(format!(
                    "the inter-broker listener is {listener}: give this broker's SASL user with \
                     inter.broker.sasl.username and inter.broker.sasl.password"
                )))
            }
            _ => None,
        };
        Ok(InterBrokerSecurity {
            listener_name,
            protocol: listener,
            tls,
            sasl,
        })
    }

    /// The engine's security settings: listeners, TLS, SASL.
    fn security_config(&self) -> Result<SecurityConfig, SettingsError> {
        let settings = &self.settings;
        let listeners = &self.listeners;
        let primary = listeners.primary();
        let needs_tls = listeners.listeners.iter().any(|l| l.protocol.uses_tls());
        let tls = match self.tls_files()? {
            Some(files) => Some(Arc::new(ServerTls::new(
                tls::server_config(&files).map_err(|e| tls_error("ssl.cert/ssl.key", e))?,
            ))),
            None if needs_tls => {
                return Err(SettingsError::Other(format!(
                "listeners: {listeners} has an SSL or SASL_SSL listener: give its certificate and \
                     key with --ssl-cert FILE --ssl-key FILE (ssl.cert, ssl.key)"
            )))
            }
            None => None,
        };
        Ok(SecurityConfig {
            primary_name: primary.name.clone(),
            primary_protocol: primary.protocol,
            extra_listeners: listeners.listeners[1..].to_vec(),
            tls,
            sasl_mechanisms: settings.sasl_mechanisms.value.0.clone(),
            credentials: Arc::new(CredentialRegistry::new(
                settings.add_scram.value.store.clone(),
            )),
            authorizer: Arc::new(match settings.authorizer.value {
                AuthorizerChoice::None => Authorizer::default(),
                AuthorizerChoice::Acl => Authorizer::acl(Rules {
                    super_users: settings.super_users.value.0.clone(),
                    allow_if_no_acl: settings.allow_everyone_if_no_acl_found.value.0,
                }),
            }),
            connections_max_reauth_ms: u64::try_from(settings.connections_max_reauth_ms.value.0)
                .unwrap_or(0),
            inter_broker: self.inter_broker_security()?,
        })
    }

    /// The engine's configuration.
    pub fn broker_config(&self) -> Result<BrokerConfig, SettingsError> {
        let settings = &self.settings;
        let resolved = &self.profile;
        let primary = self.listeners.primary();
        let listen = primary.address;
        let (advertised_host, advertised_port) =
            (primary.advertised_host.clone(), primary.advertised_port);
        let security = self.security_config()?;
        let live = Arc::new(LiveSettings::default());
        self.apply_live(&live);
        Ok(BrokerConfig {
            cluster: self.cluster_config()?,
            listen,
            advertised_host,
            advertised_port,
            node_id: settings.node_id.value.0 as i32,
            security,
            data_dir: settings.data_dir.value.0.clone(),
            shard_cpus: shard_cpus(resolved, settings.shards.value),
            io_memory_bytes: resolved.io_memory_bytes as usize,
            ring_depth: resolved.io_ring_depth as usize,
            auto_create_topics: settings.auto_create_topics.value.0,
            default_partitions: settings.default_partitions.value.0 as i32,
            max_request_bytes: resolved.max_request_bytes as usize,
            max_connections: usize::try_from(resolved.max_connections).unwrap_or(usize::MAX),
            max_connections_per_ip: resolved.max_connections_per_ip,
            max_connections_per_ip_overrides: resolved
                .max_connections_per_ip_overrides
                .iter()
                .map(|limit| (limit.ip, limit.max_connections))
                .collect(),
            connections_max_write_stall_ms: resolved.connections_max_write_stall_ms,
            group_consumer_session_timeout_ms: resolved.group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms: resolved.group_consumer_heartbeat_interval_ms,
            // The bounds (at most 24 h) keep it inside i32, Kafka's type for the timeout.
            transaction_max_timeout_ms: i32::try_from(resolved.transaction_max_timeout_ms)
                .unwrap_or(i32::MAX),
            transaction_partition_verification: settings.transaction_partition_verification.value.0,
            connections_max_idle_ms: resolved.connections_max_idle_ms,
            request_read_timeout_ms: resolved.request_read_timeout_ms,
            max_in_flight_bytes_per_connection: resolved.max_in_flight_bytes_per_connection
                as usize,
            log: log_config(resolved),
            metrics_listen: settings.metrics_listen.value.0,
            live,
            ..BrokerConfig::default()
        })
    }

    /// The node's roles, the controller quorum and the placement defaults, checked together.
    fn cluster_config(&self) -> Result<ClusterConfig, SettingsError> {
        let settings = &self.settings;
        let node_id = settings.node_id.value.0 as i32;
        let mut cluster = ClusterConfig::single_node(node_id);
        cluster.roles = settings.process_roles.value.0;
        if !settings.controller_quorum_voters.value.voters.is_empty() {
            cluster
                .voters
                .clone_from(&settings.controller_quorum_voters.value.voters);
        }
        cluster.controller_listen = settings.controller_listen.value.0;
        cluster.rack.clone_from(&settings.rack.value.0);
        cluster.cluster_id.clone_from(&settings.cluster_id.value.0);
        cluster.default_replication_factor = settings.default_replication_factor.value.0 as i16;
        cluster.replication = ReplicationConfig {
            min_insync_replicas: settings.min_insync_replicas.value.0 as i32,
            replica_lag_time_max: std::time::Duration::from_millis(
                settings.replica_lag_time_max_ms.value.0 as u64,
            ),
            replica_fetch_max_bytes: settings.replica_fetch_max_bytes.value.0 as i32,
            replica_fetch_wait_max_ms: settings.replica_fetch_wait_max_ms.value.0 as i32,
            unclean_leader_election: settings.unclean_leader_election.value.0,
            auto_leader_rebalance: settings.auto_leader_rebalance.value.0,
            leader_imbalance_check_interval: std::time::Duration::from_secs(
                settings.leader_imbalance_check_interval_seconds.value.0 as u64,
            ),
            offsets_commit_timeout: std::time::Duration::from_millis(
                settings.offsets_commit_timeout_ms.value.0 as u64,
            ),
        };
        cluster.offsets_topic_replication_factor =
            settings.offsets_topic_replication_factor.value.0 as i16;
        cluster.transaction_state_replication_factor =
            settings.transaction_state_log_replication_factor.value.0 as i16;
        cluster.transaction_state_min_isr = settings.transaction_state_log_min_isr.value.0 as i32;
        cluster.controller_startup_timeout = std::time::Duration::from_millis(
            settings.initial_broker_registration_timeout_ms.value.0 as u64,
        );
        cluster
            .validate(node_id)
            .map_err(|e| SettingsError::Other(format!("cluster settings: {e}")))?;
        Ok(cluster)
    }

    /// Stores every setting a running engine takes live into `live`.
    pub fn apply_live(&self, live: &LiveSettings) {
        let settings = &self.settings;
        live.set_log_retention_ms(settings.log_retention_ms.value.0);
        live.set_log_retention_bytes(settings.log_retention_bytes.value.0);
        live.set_shutdown_drain_ms(settings.shutdown_drain_ms.value.0 as u64);
        live.set_log_cleaner_interval_ms(self.profile.log_cleaner_interval_ms);
        live.set_log_cleaner_max_keys(
            usize::try_from(self.profile.log_cleaner_max_keys).unwrap_or(usize::MAX),
        );
    }
}

/// A TLS configuration error, named by the settings it comes from: `files` (the certificate or CA
/// keys) unless the versions and suites are what does not fit.
fn tls_error(files: &str, error: tls::TlsError) -> SettingsError {
    let keys = match error {
        tls::TlsError::Policy(_) => "ssl.enabled.protocols/ssl.cipher.suites",
        _ => files,
    };
    SettingsError::Other(format!("{keys}: {error}"))
}

/// The client listeners of the resolved `listeners`, `listener.security.protocol.map`,
/// `controller.listener.names` and `advertised.listeners`.
fn client_listeners(settings: &ServeSettings) -> Result<ClientListeners, SettingsError> {
    let listen = &settings.listen;
    listeners::resolve(
        &listen.value,
        &settings.listener_security_protocol_map.value,
        &settings.controller_listener_names.value,
        &settings.advertised_listener.value,
    )
    .map_err(|reason| SettingsError::Invalid {
        origin: listen.source.to_string(),
        key: "listeners".to_string(),
        value: listen.value.to_string(),
        reason,
    })
}

/// Every key a config file may hold: the declared settings' and the profile keys'.
pub fn known_keys() -> Vec<&'static str> {
    SERVE_SETTINGS
        .iter()
        .map(|def| def.key)
        .chain(Key::ALL.iter().map(|key| key.config_key()))
        .collect()
}

/// The known key nearest to `key`, with its distance.
fn closest_known(key: &str) -> Option<(usize, &'static str)> {
    known_keys()
        .into_iter()
        .map(|known| (edit_distance(key, known), known))
        .min()
}

/// Unknown keys: an error in a TOML file (written for ringbroker), one warning line in a Kafka
/// properties file (written for Kafka, which has many settings ringbroker has no use for).
fn check_keys(file: &ConfigFile, warnings: &mut Vec<String>) -> Result<(), SettingsError> {
    let known = known_keys();
    let unknown: Vec<&str> = file.keys().filter(|key| !known.contains(key)).collect();
    match file.format {
        FileFormat::Toml => match unknown.first() {
            Some(key) => Err(SettingsError::UnknownKey {
                path: file.path.clone(),
                key: key.to_string(),
                hint: unknown_key_hint(key),
            }),
            None => Ok(()),
        },
        FileFormat::Properties => {
            if !unknown.is_empty() {
                let listed: Vec<String> = unknown
                    .iter()
                    .map(|key| match closest_known(key) {
                        Some((distance, near)) if distance <= TYPO_DISTANCE_MAX => {
                            format!("{key} (did you mean {near}?)")
                        }
                        _ => key.to_string(),
                    })
                    .collect();
                warnings.push(format!(
                    "config file {}: {} settings ringbroker does not use: {}",
                    file.path.display(),
                    listed.len(),
                    listed.join(", ")
                ));
            }
            Ok(())
        }
    }
}

/// What to say about an unknown key: the Kafka name if it is a profile key's other name, else the
/// closest known key.
fn unknown_key_hint(key: &str) -> String {
    if let Some(profile_key) = Key::from_name(key).filter(|k| k.config_key() != k.name()) {
        return format!(
            "profile key `{key}` is written `{}` in a config file (Kafka's name for it)",
            profile_key.config_key()
        );
    }
    match closest_known(key) {
        Some((distance, near)) if distance <= TYPO_DISTANCE_MAX => {
            format!("did you mean `{near}`? (`ringbroker config reference` lists every key)")
        }
        Some((_, near)) => format!(
            "the closest known key is `{near}` (`ringbroker config reference` lists every key)"
        ),
        None => "`ringbroker config reference` lists every key".to_string(),
    }
}

/// The CPU of each shard: the profile's shard cores, cut or extended to `shards`. Shards beyond
/// the profile's cores run unpinned (a warning says so).
fn shard_cpus(resolved: &ResolvedProfile, shards: ShardCount) -> Vec<Option<usize>> {
    let cores = &resolved.shard_cores;
    let count = match shards {
        ShardCount::Auto => cores.len(),
        ShardCount::Count(n) => n,
    };
    debug_assert!(count >= 1, "ShardCount refuses 0 and a profile has a core");
    if !resolved.pin_executors {
        return vec![None; count];
    }
    if count > cores.len() {
        // `Resolved::load` warned about it.
        return vec![None; count];
    }
    cores.iter().take(count).map(|c| Some(*c)).collect()
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

/// `args` with the `--listener` flags folded into `listeners`: added after `--listen` when both
/// are given (`--listen` keeps meaning one PLAINTEXT listener), else in their place.
fn with_listener_flags(args: &ServeArgs) -> Result<ServeArgs, SettingsError> {
    let mut args = args.clone();
    if args.sources.listeners.is_empty() {
        return Ok(args);
    }
    let entries: Vec<String> = args
        .listen
        .iter()
        .map(ToString::to_string)
        .chain(args.sources.listeners.iter().cloned())
        .collect();
    let text = entries.join(",");
    let listener: Listener = text.parse().map_err(|reason| SettingsError::Invalid {
        origin: "flag --listener".to_string(),
        key: "listeners".to_string(),
        value: text.clone(),
        reason,
    })?;
    args.listen = Some(listener);
    Ok(args)
}
