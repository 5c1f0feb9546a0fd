//! `ringbroker serve`: resolves the effective settings, prints each with where it came from, and
//! hands over to the engine; SIGHUP reloads what can change live.
//!
//! Every broker setting is declared once below, in `serve_settings!` (see `settings` for what one
//! declaration gives). Sources, strongest first: flag, environment (`RINGBROKER_*`), config file
//! (`--config FILE`: TOML with Kafka's setting names, or Kafka's `server.properties`), default. The
//! tuning-profile keys take the same order above the profile (`profile`).
//!
//! - `settings`: the declaration macro and the precedence rules;
//! - `values`: the value types (listeners, data dir, ...), parsed alike from every source;
//! - `listeners`: the client listeners from `listeners`, `listener.security.protocol.map`,
//!   `controller.listener.names` and `advertised.listeners`;
//! - `config_file`: TOML and properties files into flat keys;
//! - `profile`: the tuning-profile keys as settings;
//! - `resolved`: one complete resolution (settings, profile, warnings) and the engine config;
//! - `logging`, `rate_limit`: log output (text or JSON, colour on terminals only, repeated warnings
//!   limited);
//! - `reload`: the SIGHUP handler.
//!
//! To add a setting: one more field in `ServeArgs` below, `#[setting(key = "kafka.name", env =
//! "RINGBROKER_KAFKA_NAME", default = "...", kafka = Some("kafka.name") | None, live = false)]`,
//! its doc comment (the help line), `#[arg(long, ...)]`, and type `Option<T>` where `T: FromStr +
//! Display` (an existing one from `values`, or a new one there); then use
//! `resolved.settings.<field>.value` in `Resolved::broker_config`, and run
//! `ringbroker config reference --update docs/CONFIGURATION.md` (a test checks the page). A `live`
//! setting also needs its apply step in `Resolved::apply_live`.

mod config_file;
pub mod listeners;
pub mod logging;
pub mod profile;
mod rate_limit;
mod reload;
pub mod resolved;
pub mod settings;
#[cfg(test)]
mod tests;
pub mod values;

use std::path::PathBuf;
use std::process::ExitCode;

use ringbroker_engine::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN};
use thiserror::Error;

use listeners::{ListenerNames, OptionalListenerName, ProtocolMap, DEFAULT_PROTOCOL_MAP};
pub use resolved::Resolved;
use settings::serve_settings;
use values::{
    AdvertisedListener, AuthorizerChoice, CipherSuites, DataDir, IntIn, Listener, LogFilter,
    LogFormat, MetricsListen, OptionalAddress, OptionalMechanism, OptionalName, OptionalPath,
    OptionalProtocol, Principals, ProcessRoles, ProfileChoice, QuorumVoters, SaslMechanisms,
    ScramUsers, Secret, ShardCount, Switch, TlsProtocols,
};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "RINGBROKER_CONFIG";

/// Why the settings cannot be used; every message names the setting and where its value came from.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot use config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("config file {path}: unknown key `{key}`; {hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("{origin}: `{key}` = {value} is invalid: {reason}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Profile(#[from] ringbroker_tuning::ProfileError),
    #[error("{0}")]
    Other(String),
}

/// Flags of `serve` that are not settings: where settings come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingSources {
    /// Config file: TOML with Kafka's setting names (`listeners`, `log.dirs`, `num.partitions`, ...),
    /// or Kafka's server.properties (a name ending in .properties). Env: RINGBROKER_CONFIG.
    /// Without one, the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one tuning-profile key (its profile or Kafka name), e.g. --set flush_policy=always
    /// --set segment_bytes=64MiB.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// A client listener, NAME://HOST:PORT: NAME is a security protocol (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL) or a name listener.security.protocol.map gives one (CLIENT,
    /// REPLICATION, ...); repeatable. Added to --listen when both are given, else they replace
    /// `listeners` (the first is the primary one).
    #[arg(long = "listener", value_name = "NAME://HOST:PORT")]
    pub listeners: Vec<String>,
}

serve_settings! {
    /// Flags of `ringbroker serve`. Each is also a config-file key and an environment variable
    /// (see `ringbroker config reference` and docs/CONFIGURATION.md).
    #[derive(Debug, Clone, Default, clap::Args)]
    #[command(
        after_help = "Examples:\n  ringbroker serve\n  ringbroker serve --config /etc/ringbroker/ringbroker.toml\n  \
ringbroker serve --listen 0.0.0.0:9092 --advertised-listener broker1.example.com:9092 --data-dir /var/lib/ringbroker\n  \
ringbroker serve --shards 1 --set flush_policy=always\n  ringbroker serve --profile dev\n  \
ringbroker serve --node-id 1 --process-roles broker,controller --controller-quorum-voters \
1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093 --controller-listen 10.0.0.1:9093 --listen 10.0.0.1:9092\n\n\
Precedence: flag, then environment (RINGBROKER_*), then config file, then default.\n\
SIGHUP re-reads the config file and applies what can change live; SIGINT/SIGTERM stop cleanly."
    )]
    pub struct ServeArgs {
        #[command(flatten)]
        pub sources: SettingSources,

        #[setting(key = "listeners", env = "RINGBROKER_LISTENERS", default = DEFAULT_LISTEN, kafka = Some("listeners"), live = false)]
        /// Address the Kafka listener binds on (one SO_REUSEPORT listener per shard); HOST:PORT (one
        /// PLAINTEXT listener) or Kafka's list, NAME://HOST:PORT,... with each NAME in
        /// listener.security.protocol.map (entries named in controller.listener.names are
        /// reported and not served).
        #[arg(long, value_name = "HOST:PORT")]
        pub listen: Option<Listener>,

        #[setting(key = "listener.security.protocol.map", env = "RINGBROKER_LISTENER_SECURITY_PROTOCOL_MAP", default = DEFAULT_PROTOCOL_MAP, kafka = Some("listener.security.protocol.map"), live = false)]
        /// Each listener name's security protocol, NAME:PROTOCOL,... (e.g.
        /// CLIENT:SASL_SSL,REPLICATION:SSL); several names may share a protocol. Setting it
        /// replaces Kafka's default, where each protocol's name maps to itself.
        #[arg(long, value_name = "NAME:PROTOCOL,...")]
        pub listener_security_protocol_map: Option<ProtocolMap>,

        #[setting(key = "controller.listener.names", env = "RINGBROKER_CONTROLLER_LISTENER_NAMES", default = "CONTROLLER", kafka = Some("controller.listener.names"), live = false)]
        /// Names of `listeners` entries that are the controller quorum's, not client listeners:
        /// reported at start and not served (the quorum listens on controller.listen, with its
        /// own unencrypted protocol).
        #[arg(long, value_name = "NAME,...")]
        pub controller_listener_names: Option<ListenerNames>,

        #[setting(key = "ssl.enabled.protocols", env = "RINGBROKER_SSL_ENABLED_PROTOCOLS", default = "TLSv1.2,TLSv1.3", kafka = Some("ssl.enabled.protocols"), live = true)]
        /// TLS versions SSL and SASL_SSL listeners accept and brokers use with each other:
        /// TLSv1.2, TLSv1.3 or both (older versions are not supported). SIGHUP applies a change
        /// to new connections.
        #[arg(long, value_name = "TLSv1.2,TLSv1.3")]
        pub ssl_enabled_protocols: Option<TlsProtocols>,

        #[setting(key = "ssl.cipher.suites", env = "RINGBROKER_SSL_CIPHER_SUITES", default = "", kafka = Some("ssl.cipher.suites"), live = true)]
        /// Cipher suites of SSL and SASL_SSL listeners and of brokers with each other, IANA names
        /// (TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ...) in preference
        /// order: the broker's order picks the suite, as Kafka's JDK does. Empty: every suite of
        /// rustls (AES-256-GCM first). A name rustls lacks stops the start, naming it.
        #[arg(long, value_name = "SUITE,...")]
        pub ssl_cipher_suites: Option<CipherSuites>,

        #[setting(key = "ssl.cert", env = "RINGBROKER_SSL_CERT", default = "", kafka = None, live = true)]
        /// PEM certificate chain of SSL and SASL_SSL listeners (Kafka keeps it in
        /// ssl.keystore.*). SIGHUP re-reads the certificate, key and client CA files: new
        /// connections get the new ones.
        #[arg(long, value_name = "FILE")]
        pub ssl_cert: Option<OptionalPath>,

        #[setting(key = "ssl.key", env = "RINGBROKER_SSL_KEY", default = "", kafka = None, live = true)]
        /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1, unencrypted).
        #[arg(long, value_name = "FILE")]
        pub ssl_key: Option<OptionalPath>,

        #[setting(key = "ssl.client.ca", env = "RINGBROKER_SSL_CLIENT_CA", default = "", kafka = None, live = true)]
        /// PEM CA certificates; when set, TLS clients must present a certificate signed by one of
        /// them (Kafka's ssl.client.auth=required).
        #[arg(long, value_name = "FILE")]
        pub ssl_client_ca: Option<OptionalPath>,

        #[setting(key = "sasl.enabled.mechanisms", env = "RINGBROKER_SASL_ENABLED_MECHANISMS", default = "SCRAM-SHA-256,SCRAM-SHA-512", kafka = Some("sasl.enabled.mechanisms"), live = false)]
        /// SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer: PLAIN, SCRAM-SHA-256,
        /// SCRAM-SHA-512 (PLAIN sends the password: enable it on SASL_SSL only).
        #[arg(long, value_name = "MECHANISM,...")]
        pub sasl_mechanisms: Option<SaslMechanisms>,

        #[setting(key = "add.scram", env = "RINGBROKER_ADD_SCRAM", default = "", kafka = None, live = false)]
        /// SCRAM credentials, as kafka-storage format --add-scram:
        /// 'SCRAM-SHA-512=[name=admin,password=admin-secret]' (several separated by `;`). Read at
        /// every start; PLAIN checks passwords against them too.
        #[arg(long, value_name = "MECHANISM=[name=USER,password=PASSWORD]")]
        pub add_scram: Option<ScramUsers>,

        #[setting(key = "authorizer.class.name", env = "RINGBROKER_AUTHORIZER_CLASS_NAME", default = "", kafka = Some("authorizer.class.name"), live = false)]
        /// `acl` turns on Kafka's ACL authorizer (Kafka's StandardAuthorizer class name is
        /// accepted too): every request is checked against the ACLs `kafka-acls` manages. Empty:
        /// no authorization, every client may do everything.
        #[arg(long, value_name = "acl")]
        pub authorizer: Option<AuthorizerChoice>,

        #[setting(key = "super.users", env = "RINGBROKER_SUPER_USERS", default = "", kafka = Some("super.users"), live = false)]
        /// Principals the authorizer allows everything, `;`-separated: 'User:admin;User:ops'.
        #[arg(long, value_name = "User:NAME;...")]
        pub super_users: Option<Principals>,

        #[setting(key = "allow.everyone.if.no.acl.found", env = "RINGBROKER_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default = "false", kafka = Some("allow.everyone.if.no.acl.found"), live = false)]
        /// With the authorizer: whether a resource no ACL mentions is open to everyone.
        #[arg(long, value_name = "BOOL")]
        pub allow_everyone_if_no_acl_found: Option<Switch>,

        #[setting(key = "connections.max.reauth.ms", env = "RINGBROKER_CONNECTIONS_MAX_REAUTH_MS", default = "0", kafka = Some("connections.max.reauth.ms"), live = false)]
        /// How long a SASL session lasts (KIP-368): clients re-authenticate on the same
        /// connection before the end, and a connection still unauthenticated after it is closed
        /// at its next request, so a removed user or a changed password reaches open
        /// connections. 0: sessions never expire.
        #[arg(long, value_name = "MS")]
        pub connections_max_reauth_ms: Option<IntIn<0, { i64::MAX }>>,

        #[setting(key = "inter.broker.listener.name", env = "RINGBROKER_INTER_BROKER_LISTENER_NAME", default = "", kafka = Some("inter.broker.listener.name"), live = false)]
        /// The listener the brokers of a cluster reach each other on (followers' fetches,
        /// transaction markers), by name: one of `listeners`, e.g. REPLICATION or SSL. Empty:
        /// security.inter.broker.protocol's, else PLAINTEXT as Kafka (a single node without
        /// one: its first listener). Give every broker the same.
        #[arg(long, value_name = "NAME")]
        pub inter_broker_listener_name: Option<OptionalListenerName>,

        #[setting(key = "security.inter.broker.protocol", env = "RINGBROKER_SECURITY_INTER_BROKER_PROTOCOL", default = "", kafka = Some("security.inter.broker.protocol"), live = false)]
        /// The inter-broker listener by its security protocol: the listener of that name (Kafka's
        /// older setting; set it or inter.broker.listener.name, not both).
        #[arg(long, value_name = "PROTOCOL")]
        pub security_inter_broker_protocol: Option<OptionalProtocol>,

        #[setting(key = "sasl.mechanism.inter.broker.protocol", env = "RINGBROKER_SASL_MECHANISM_INTER_BROKER_PROTOCOL", default = "", kafka = Some("sasl.mechanism.inter.broker.protocol"), live = false)]
        /// The SASL mechanism a broker authenticates with on another broker's SASL inter-broker
        /// listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, one of sasl.enabled.mechanisms.
        /// Empty: the first of those (Kafka's default, GSSAPI, is not supported).
        #[arg(long, value_name = "MECHANISM")]
        pub sasl_mechanism_inter_broker_protocol: Option<OptionalMechanism>,

        #[setting(key = "inter.broker.sasl.username", env = "RINGBROKER_INTER_BROKER_SASL_USERNAME", default = "", kafka = None, live = false)]
        /// The user a broker authenticates as on another broker's SASL inter-broker listener
        /// (Kafka takes it from the listener's JAAS config); required with a SASL inter-broker
        /// listener. Its principal needs ClusterAction on the cluster, or be a super user.
        #[arg(long, value_name = "USER")]
        pub inter_broker_sasl_username: Option<OptionalName>,

        #[setting(key = "inter.broker.sasl.password", env = "RINGBROKER_INTER_BROKER_SASL_PASSWORD", default = "", kafka = None, live = false)]
        /// That user's password (printed as `(set)`). Prefer the environment variable or the
        /// config file to the flag: other users of the host can see a process's arguments.
        #[arg(long, value_name = "PASSWORD")]
        pub inter_broker_sasl_password: Option<Secret>,

        #[setting(key = "inter.broker.ssl.ca.file", env = "RINGBROKER_INTER_BROKER_SSL_CA_FILE", default = "", kafka = None, live = true)]
        /// PEM CA certificates a broker trusts for the other brokers' certificates on an SSL or
        /// SASL_SSL inter-broker listener (Kafka's ssl.truststore.location); required with one.
        /// Their host names are checked as Kafka does. A broker presents its own ssl.cert when
        /// the other's listener asks for a client certificate. SIGHUP re-reads it.
        #[arg(long, value_name = "FILE")]
        pub inter_broker_ssl_ca_file: Option<OptionalPath>,

        #[setting(key = "advertised.listeners", env = "RINGBROKER_ADVERTISED_LISTENERS", default = "", kafka = Some("advertised.listeners"), live = false)]
        /// host:port that clients are told to connect to, per listener name: NAME://HOST:PORT,...
        /// (a bare HOST:PORT is PLAINTEXT's, or the primary listener's if that has no entry;
        /// listeners without one take its host and their own port). Empty: each listener's own
        /// address.
        #[arg(long, value_name = "HOST:PORT")]
        pub advertised_listener: Option<AdvertisedListener>,

        #[setting(key = "log.dirs", env = "RINGBROKER_LOG_DIRS", default = DEFAULT_DATA_DIR, kafka = Some("log.dirs"), live = false)]
        /// Directory holding the topic table and every partition's log (one directory).
        #[arg(long, value_name = "DIR")]
        pub data_dir: Option<DataDir>,

        #[setting(key = "node.id", env = "RINGBROKER_NODE_ID", default = "0", kafka = Some("node.id"), live = false)]
        /// This node's id, unique in the cluster (its data directory remembers it).
        #[arg(long, value_name = "N")]
        pub node_id: Option<IntIn<0, { i32::MAX as i64 - 1 }>>,

        #[setting(key = "process.roles", env = "RINGBROKER_PROCESS_ROLES", default = "broker,controller", kafka = Some("process.roles"), live = false)]
        /// What this node does: broker, controller, or broker,controller (combined).
        #[arg(long, value_name = "ROLES")]
        pub process_roles: Option<ProcessRoles>,

        #[setting(key = "controller.quorum.voters", env = "RINGBROKER_CONTROLLER_QUORUM_VOTERS", default = "", kafka = Some("controller.quorum.voters"), live = false)]
        /// The controller quorum, ID@HOST:PORT,... (empty: this node alone, a single-node cluster
        /// that needs no controller listener).
        #[arg(long, value_name = "ID@HOST:PORT,...")]
        pub controller_quorum_voters: Option<QuorumVoters>,

        #[setting(key = "controller.listen", env = "RINGBROKER_CONTROLLER_LISTEN", default = "", kafka = None, live = false)]
        /// Where this node's controller accepts the other controllers and the brokers (its entry
        /// in the voters); required for a controller in a quorum of several voters. Kafka names
        /// it with a CONTROLLER entry in `listeners`.
        #[arg(long, value_name = "HOST:PORT")]
        pub controller_listen: Option<OptionalAddress>,

        #[setting(key = "broker.rack", env = "RINGBROKER_BROKER_RACK", default = "", kafka = Some("broker.rack"), live = false)]
        /// This broker's rack: replicas of a partition are spread over racks.
        #[arg(long, value_name = "RACK")]
        pub rack: Option<OptionalName>,

        #[setting(key = "cluster.id", env = "RINGBROKER_CLUSTER_ID", default = "", kafka = None, live = false)]
        /// The id of a cluster this quorum starts (as `kafka-storage format --cluster-id`); empty:
        /// the first active controller picks a random one.
        #[arg(long, value_name = "ID")]
        pub cluster_id: Option<OptionalName>,

        #[setting(key = "initial.broker.registration.timeout.ms", env = "RINGBROKER_INITIAL_BROKER_REGISTRATION_TIMEOUT_MS", default = "60000", kafka = Some("initial.broker.registration.timeout.ms"), live = false)]
        /// How long a starting broker waits to register with the controller quorum (and to be let
        /// in) before it gives up, naming the controllers it could not reach.
        #[arg(long, value_name = "MS")]
        pub initial_broker_registration_timeout_ms: Option<IntIn<1, 3_600_000>>,

        #[setting(key = "default.replication.factor", env = "RINGBROKER_DEFAULT_REPLICATION_FACTOR", default = "1", kafka = Some("default.replication.factor"), live = false)]
        /// Replication factor of topics created without one.
        #[arg(long, value_name = "N")]
        pub default_replication_factor: Option<IntIn<1, { i16::MAX as i64 }>>,

        #[setting(key = "min.insync.replicas", env = "RINGBROKER_MIN_INSYNC_REPLICAS", default = "1", kafka = Some("min.insync.replicas"), live = false)]
        /// In-sync replicas an acks=all produce needs (topics may override it): fewer and the
        /// produce is refused with NOT_ENOUGH_REPLICAS.
        #[arg(long, value_name = "N")]
        pub min_insync_replicas: Option<IntIn<1, { i16::MAX as i64 }>>,

        #[setting(key = "replica.lag.time.max.ms", env = "RINGBROKER_REPLICA_LAG_TIME_MAX_MS", default = "30000", kafka = Some("replica.lag.time.max.ms"), live = false)]
        /// A follower that has not caught up with its leader's log end for this long leaves the
        /// ISR (acks=all then stops waiting for it).
        #[arg(long, value_name = "MS")]
        pub replica_lag_time_max_ms: Option<IntIn<100, 3_600_000>>,

        #[setting(key = "replica.fetch.max.bytes", env = "RINGBROKER_REPLICA_FETCH_MAX_BYTES", default = "1048576", kafka = Some("replica.fetch.max.bytes"), live = false)]
        /// Bytes a follower asks its leader for per partition and fetch (a larger first batch
        /// still comes whole).
        #[arg(long, value_name = "BYTES")]
        pub replica_fetch_max_bytes: Option<IntIn<1024, { i32::MAX as i64 }>>,

        #[setting(key = "replica.fetch.wait.max.ms", env = "RINGBROKER_REPLICA_FETCH_WAIT_MAX_MS", default = "500", kafka = Some("replica.fetch.wait.max.ms"), live = false)]
        /// How long a leader holds a follower's fetch that finds nothing new.
        #[arg(long, value_name = "MS")]
        pub replica_fetch_wait_max_ms: Option<IntIn<0, 30_000>>,

        #[setting(key = "unclean.leader.election.enable", env = "RINGBROKER_UNCLEAN_LEADER_ELECTION_ENABLE", default = "false", kafka = Some("unclean.leader.election.enable"), live = false)]
        /// Let a replica outside the ISR lead when no in-sync replica is left (topics may override
        /// it): the partition comes back, but acknowledged records may be lost.
        #[arg(long, value_name = "true|false")]
        pub unclean_leader_election: Option<Switch>,

        #[setting(key = "offsets.topic.replication.factor", env = "RINGBROKER_OFFSETS_TOPIC_REPLICATION_FACTOR", default = "3", kafka = Some("offsets.topic.replication.factor"), live = false)]
        /// Replicas of each __consumer_offsets partition (committed offsets and group state),
        /// capped by the brokers alive when the topic is created on the first FindCoordinator.
        #[arg(long, value_name = "N")]
        pub offsets_topic_replication_factor: Option<IntIn<1, { i16::MAX as i64 }>>,

        #[setting(key = "transaction.state.log.replication.factor", env = "RINGBROKER_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", default = "3", kafka = Some("transaction.state.log.replication.factor"), live = false)]
        /// Replicas of each __transaction_state partition (the transaction coordinators' state),
        /// capped by the brokers alive when the topic is created on the first FindCoordinator for
        /// a transactional id in a cluster of several brokers.
        #[arg(long, value_name = "N")]
        pub transaction_state_log_replication_factor: Option<IntIn<1, { i16::MAX as i64 }>>,

        #[setting(key = "transaction.state.log.min.isr", env = "RINGBROKER_TRANSACTION_STATE_LOG_MIN_ISR", default = "2", kafka = Some("transaction.state.log.min.isr"), live = false)]
        /// The min.insync.replicas of __transaction_state (capped by its replication factor): a
        /// transaction coordinator with fewer in-sync replicas refuses state changes, and the
        /// client retries.
        #[arg(long, value_name = "N")]
        pub transaction_state_log_min_isr: Option<IntIn<1, { i16::MAX as i64 }>>,

        #[setting(key = "transaction.partition.verification.enable", env = "RINGBROKER_TRANSACTION_PARTITION_VERIFICATION_ENABLE", default = "true", kafka = Some("transaction.partition.verification.enable"), live = false)]
        /// Before a transaction's first batch on a partition (and before a TxnOffsetCommit), ask
        /// the transaction coordinator whether the producer added that partition, so no partition
        /// is left with an open transaction nobody will end (KIP-890).
        #[arg(long, value_name = "true|false")]
        pub transaction_partition_verification: Option<Switch>,

        #[setting(key = "offsets.commit.timeout.ms", env = "RINGBROKER_OFFSETS_COMMIT_TIMEOUT_MS", default = "5000", kafka = Some("offsets.commit.timeout.ms"), live = false)]
        /// How long a group coordinator waits for the in-sync replicas of its __consumer_offsets
        /// partition to hold a write (an offset commit, a group change) before the request fails
        /// and the client retries.
        #[arg(long, value_name = "MS")]
        pub offsets_commit_timeout_ms: Option<IntIn<1, 3_600_000>>,

        #[setting(key = "auto.leader.rebalance.enable", env = "RINGBROKER_AUTO_LEADER_REBALANCE_ENABLE", default = "true", kafka = Some("auto.leader.rebalance.enable"), live = false)]
        /// Give each partition back to its preferred (first) replica once it is in sync again,
        /// checked every leader.imbalance.check.interval.seconds.
        #[arg(long, value_name = "true|false")]
        pub auto_leader_rebalance: Option<Switch>,

        #[setting(key = "leader.imbalance.check.interval.seconds", env = "RINGBROKER_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS", default = "300", kafka = Some("leader.imbalance.check.interval.seconds"), live = false)]
        /// How often the active controller looks for brokers leading fewer partitions than they
        /// are preferred for (more than 10% off).
        #[arg(long, value_name = "S")]
        pub leader_imbalance_check_interval_seconds: Option<IntIn<1, 86_400>>,

        #[setting(key = "auto.create.topics.enable", env = "RINGBROKER_AUTO_CREATE_TOPICS_ENABLE", default = "true", kafka = Some("auto.create.topics.enable"), live = false)]
        /// Create unknown topics when clients ask for them in Metadata.
        #[arg(long, value_name = "true|false")]
        pub auto_create_topics: Option<Switch>,

        #[setting(key = "num.partitions", env = "RINGBROKER_NUM_PARTITIONS", default = "1", kafka = Some("num.partitions"), live = false)]
        /// Partitions of auto-created topics and of CreateTopics with -1.
        #[arg(long, value_name = "N")]
        pub default_partitions: Option<IntIn<1, 10_000>>,

        #[setting(key = "log.retention.ms", env = "RINGBROKER_LOG_RETENTION_MS", default = "604800000", kafka = Some("log.retention.ms"), live = true)]
        /// How long data is kept in topics that do not set retention.ms (-1: forever; 7 days).
        /// A config file may give log.retention.hours or .minutes instead, as in Kafka.
        #[arg(long, value_name = "MS", allow_negative_numbers = true)]
        pub log_retention_ms: Option<IntIn<-1, { i64::MAX }>>,

        #[setting(key = "log.retention.bytes", env = "RINGBROKER_LOG_RETENTION_BYTES", default = "-1", kafka = Some("log.retention.bytes"), live = true)]
        /// Partition size kept in topics that do not set retention.bytes (-1: no limit).
        #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
        pub log_retention_bytes: Option<IntIn<-1, { i64::MAX }>>,

        #[setting(key = "shards", env = "RINGBROKER_SHARDS", default = "auto", kafka = None, live = false)]
        /// Number of shards (one executor per core); auto: one per shard core of the profile.
        #[arg(long, value_name = "N|auto")]
        pub shards: Option<ShardCount>,

        #[setting(key = "profile", env = "RINGBROKER_PROFILE", default = "default", kafka = None, live = false)]
        /// Tuning profile: a shipped one by name (default, dev, bare-metal-16c) or a TOML file.
        #[arg(long, value_name = "NAME|FILE")]
        pub profile: Option<ProfileChoice>,

        #[setting(key = "metrics_listen", env = "RINGBROKER_METRICS_LISTEN", default = DEFAULT_METRICS_LISTEN, kafka = None, live = false)]
        /// Address of the metrics endpoint (/metrics, /health, /ready); `none` disables it and all
        /// metrics recording.
        #[arg(long, value_name = "ADDR|none")]
        pub metrics_listen: Option<MetricsListen>,

        #[setting(key = "shutdown_drain_ms", env = "RINGBROKER_SHUTDOWN_DRAIN_MS", default = "0", kafka = None, live = true)]
        /// On SIGTERM, keep serving this long after /ready turned 503, so load balancers stop
        /// sending clients before the listeners close.
        #[arg(long, value_name = "MS")]
        pub shutdown_drain_ms: Option<IntIn<0, 3_600_000>>,

        #[setting(key = "log_filter", env = "RINGBROKER_LOG_FILTER", default = "info", kafka = None, live = true)]
        /// Log filter (tracing syntax: `info`, `warn,ringbroker_engine=debug`).
        #[arg(long = "log", value_name = "FILTER")]
        pub log: Option<LogFilter>,

        #[setting(key = "log_format", env = "RINGBROKER_LOG_FORMAT", default = "text", kafka = None, live = false)]
        /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line, for
        /// log shippers).
        #[arg(long, value_name = "text|json")]
        pub log_format: Option<LogFormat>,

        #[setting(key = "log_warnings_per_second", env = "RINGBROKER_LOG_WARNINGS_PER_SECOND", default = "10", kafka = None, live = true)]
        /// Warnings and errors logged per second from one place in the code; the rest are counted
        /// and reported in one line (0: no limit).
        #[arg(long, value_name = "N")]
        pub log_warnings_per_second: Option<IntIn<0, 1_000_000>>,
    }
}

/// Runs the broker until SIGINT/SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    let resolved = match Resolved::load(&args, &settings::process_environment) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = match resolved.broker_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let logging = logging::init(&resolved.settings);
    resolved.log_start_up();
    let reloader = match reload::spawn(
        args,
        &resolved,
        config.live.clone(),
        config.security.tls.clone(),
        config.security.inter_broker.tls.clone(),
        logging,
    ) {
        Ok(reloader) => Some(reloader),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP reload unavailable: cannot install its handler");
            None
        }
    };
    let outcome = ringbroker_engine::server::run(config);
    if let Some(reloader) = reloader {
        reloader.stop();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("ringbroker failed: {e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
