//! Topic-level configs with Kafka's names, defaults and validation, and the effective settings of a
//! topic derived from them (`TopicSettings`: retention, segment size, cleanup policy, timestamps).
//! The topic table stores only the configs set explicitly (Kafka's DYNAMIC_TOPIC_CONFIG); every
//! other config reports its default, taken from the broker's settings where the broker has one.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::config::BrokerConfig;
use crate::storage::{CompactionPolicy, RetentionPolicy, SEGMENT_BYTES_MAX};

/// `retention.ms`: how long data is kept (-1: forever).
pub const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`: how large a partition may grow before old segments go (-1: unlimited).
pub const RETENTION_BYTES: &str = "retention.bytes";
/// `segment.bytes`: segment file size.
pub const SEGMENT_BYTES: &str = "segment.bytes";
/// `segment.ms`: roll a segment after this time even if not full.
pub const SEGMENT_MS: &str = "segment.ms";
/// `cleanup.policy`: delete, compact or both.
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// `min.compaction.lag.ms`: records younger than this are not compacted.
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
/// `delete.retention.ms`: how long tombstones survive compaction.
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// `max.message.bytes`: largest record batch accepted.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `message.timestamp.type`: CreateTime or LogAppendTime.
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
/// `min.insync.replicas`: in-sync replicas an acks=all produce needs.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `unclean.leader.election.enable`: a replica outside the ISR may lead when none in it is left.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// Kafka's default `segment.ms`: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `delete.retention.ms`: 1 day.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Smallest `segment.bytes` accepted. Kafka allows 14 bytes; a segment is at least one index and
/// file set per roll here, so tiny segments would flood the directory.
pub const MIN_SEGMENT_BYTES: i64 = 1 << 20;

/// Kafka's `ConfigType` codes as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

/// One known topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// The broker-level config whose value is this config's default (a DescribeConfigs synonym).
    pub broker_synonym: &'static str,
    pub doc: &'static str,
}

/// Every topic config this broker enforces, in Kafka's names. `ACCEPTED_NOT_ENFORCED` lists the
/// Kafka names kept without effect; any other name is refused (INVALID_CONFIG).
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: CLEANUP_POLICY,
        config_type: ConfigType::List,
        broker_synonym: "log.cleanup.policy",
        doc: "delete, compact or compact,delete",
    },
    ConfigDef {
        name: DELETE_RETENTION_MS,
        config_type: ConfigType::Long,
        broker_synonym: "log.cleaner.delete.retention.ms",
        doc: "how long tombstones are kept on compacted topics",
    },
    ConfigDef {
        name: MAX_MESSAGE_BYTES,
        config_type: ConfigType::Int,
        broker_synonym: "message.max.bytes",
        doc: "largest record batch accepted",
    },
    ConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        config_type: ConfigType::String,
        broker_synonym: "log.message.timestamp.type",
        doc: "CreateTime or LogAppendTime",
    },
    ConfigDef {
        name: MIN_INSYNC_REPLICAS,
        config_type: ConfigType::Int,
        broker_synonym: "min.insync.replicas",
        doc: "in-sync replicas an acks=all produce needs (NOT_ENOUGH_REPLICAS below it)",
    },
    ConfigDef {
        name: MIN_COMPACTION_LAG_MS,
        config_type: ConfigType::Long,
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        doc: "records younger than this stay uncompacted",
    },
    ConfigDef {
        name: RETENTION_BYTES,
        config_type: ConfigType::Long,
        broker_synonym: "log.retention.bytes",
        doc: "partition size kept before old segments are deleted (-1: unlimited)",
    },
    ConfigDef {
        name: RETENTION_MS,
        config_type: ConfigType::Long,
        broker_synonym: "log.retention.ms",
        doc: "how long data is kept (-1: forever)",
    },
    ConfigDef {
        name: SEGMENT_BYTES,
        config_type: ConfigType::Int,
        broker_synonym: "log.segment.bytes",
        doc: "segment file size",
    },
    ConfigDef {
        name: SEGMENT_MS,
        config_type: ConfigType::Long,
        broker_synonym: "log.roll.ms",
        doc: "time after which a segment is rolled",
    },
    ConfigDef {
        name: UNCLEAN_LEADER_ELECTION_ENABLE,
        config_type: ConfigType::Boolean,
        broker_synonym: "unclean.leader.election.enable",
        doc: "let a replica outside the ISR lead when none in it is left (may lose records)",
    },
];

/// Kafka topic config names accepted and kept in the topic table without an
/// effect yet: replication (one broker), compression conversion (batches are stored as sent),
/// flushing (the profile's flush policy governs), tiered storage, throttling.
pub const ACCEPTED_NOT_ENFORCED: &[&str] = &[
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "file.delete.delay.ms",
    "min.cleanable.dirty.ratio",
    "max.compaction.lag.ms",
    "preallocate",
    "message.downconversion.enable",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
    "local.retention.ms",
    "local.retention.bytes",
    "remote.storage.enable",
];

/// The definition of a topic config, if known.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicConfigError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// `cleanup.policy` as a pair of flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The effective settings of one topic: explicit configs over broker defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub min_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    pub max_message_bytes: i32,
    pub timestamp_type: TimestampType,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
}

impl TopicSettings {
    /// Broker defaults (no topic override). Retention comes from the broker's `log.retention.ms`
    /// and `log.retention.bytes`, which may change while it runs.
    pub fn defaults(broker: &BrokerConfig) -> TopicSettings {
        TopicSettings {
            retention_ms: broker.live.log_retention_ms(),
            retention_bytes: broker.live.log_retention_bytes(),
            segment_bytes: i64::try_from(broker.log.segment_bytes).unwrap_or(i64::MAX),
            segment_ms: DEFAULT_SEGMENT_MS,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
            },
            min_compaction_lag_ms: 0,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            max_message_bytes: i32::try_from(broker.max_message_bytes).unwrap_or(i32::MAX),
            timestamp_type: TimestampType::CreateTime,
            min_insync_replicas: broker.cluster.replication.min_insync_replicas,
            unclean_leader_election: broker.cluster.replication.unclean_leader_election,
        }
    }

    /// Effective settings of a topic whose table entry holds `configs`. Values were validated when
    /// they were stored; one that no longer parses (a hand-edited table) falls back to the default.
    pub fn resolve(broker: &BrokerConfig, configs: &BTreeMap<String, String>) -> TopicSettings {
        let mut settings = TopicSettings::defaults(broker);
        for (name, value) in configs {
            if let Err(e) = settings.set(name, value) {
                tracing::warn!(error = %e, "ignoring a stored topic config");
            }
        }
        settings
    }

    /// Parses, validates and applies one config.
    fn set(&mut self, name: &str, value: &str) -> Result<(), TopicConfigError> {
        let invalid = |reason: &str| TopicConfigError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let long = |min: i64, max: i64| -> Result<i64, TopicConfigError> {
            let parsed: i64 = value.trim().parse().map_err(|_| invalid("not a number"))?;
            if parsed < min || parsed > max {
                return Err(invalid(&format!("value must be within [{min}, {max}]")));
            }
            Ok(parsed)
        };
        match name {
            RETENTION_MS => self.retention_ms = long(-1, i64::MAX)?,
            RETENTION_BYTES => self.retention_bytes = long(-1, i64::MAX)?,
            SEGMENT_BYTES => {
                let max = i64::from(i32::MAX).min(SEGMENT_BYTES_MAX as i64);
                self.segment_bytes = long(MIN_SEGMENT_BYTES, max)?;
            }
            SEGMENT_MS => self.segment_ms = long(1, i64::MAX)?,
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms = long(0, i64::MAX)?,
            DELETE_RETENTION_MS => self.delete_retention_ms = long(0, i64::MAX)?,
            MAX_MESSAGE_BYTES => {
                // Bounded by the request size: a bigger batch could never arrive.
                self.max_message_bytes = long(0, i64::from(i32::MAX))? as i32;
            }
            CLEANUP_POLICY => {
                self.cleanup_policy = parse_cleanup_policy(value).ok_or_else(|| {
                    invalid("must be a list of delete and compact (e.g. compact,delete)")
                })?
            }
            MESSAGE_TIMESTAMP_TYPE => {
                self.timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("must be CreateTime or LogAppendTime")),
                }
            }
            MIN_INSYNC_REPLICAS => self.min_insync_replicas = long(1, i64::from(i16::MAX))? as i32,
            UNCLEAN_LEADER_ELECTION_ENABLE => {
                self.unclean_leader_election = match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("must be true or false")),
                }
            }
            // Kafka topic configs that clients and tools set routinely (Kafka Streams, Connect,
            // kafka-topics scripts) but that have no effect on a single-broker, uncompressing
            // log yet: stored as given (not yet listed by DescribeConfigs), so creating such a topic does
            // not fail.
            _ if ACCEPTED_NOT_ENFORCED.contains(&name) => {}
            _ => return Err(TopicConfigError::Unknown(name.to_string())),
        }
        Ok(())
    }

    /// The value of `name` in Kafka's text form.
    pub fn value_of(&self, name: &str) -> Option<String> {
        Some(match name {
            RETENTION_MS => self.retention_ms.to_string(),
            RETENTION_BYTES => self.retention_bytes.to_string(),
            SEGMENT_BYTES => self.segment_bytes.to_string(),
            SEGMENT_MS => self.segment_ms.to_string(),
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms.to_string(),
            DELETE_RETENTION_MS => self.delete_retention_ms.to_string(),
            MAX_MESSAGE_BYTES => self.max_message_bytes.to_string(),
            CLEANUP_POLICY => match (self.cleanup_policy.compact, self.cleanup_policy.delete) {
                (true, true) => "compact,delete".to_string(),
                (true, false) => "compact".to_string(),
                _ => "delete".to_string(),
            },
            MIN_INSYNC_REPLICAS => self.min_insync_replicas.to_string(),
            UNCLEAN_LEADER_ELECTION_ENABLE => self.unclean_leader_election.to_string(),
            MESSAGE_TIMESTAMP_TYPE => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_string(),
                TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            _ => return None,
        })
    }

    /// What compaction does under these settings; `None` unless `cleanup.policy` includes
    /// `compact`. `max_keys` is the broker's offset-map cap.
    pub fn compaction_policy(&self, max_keys: usize) -> Option<CompactionPolicy> {
        self.cleanup_policy.compact.then_some(CompactionPolicy {
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            delete_retention_ms: self.delete_retention_ms,
            max_keys,
        })
    }

    /// What retention deletes under these settings (compact-only topics are never deleted by
    /// time or size, as in Kafka).
    pub fn retention_policy(&self) -> RetentionPolicy {
        if !self.cleanup_policy.delete {
            return RetentionPolicy::default();
        }
        RetentionPolicy {
            retention_ms: (self.retention_ms >= 0).then_some(self.retention_ms),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
        }
    }
}

/// Parses `cleanup.policy` (a comma-separated list; Kafka accepts either order and spaces).
fn parse_cleanup_policy(value: &str) -> Option<CleanupPolicy> {
    let mut policy = CleanupPolicy {
        delete: false,
        compact: false,
    };
    for item in value.split(',').map(str::trim) {
        match item {
            "delete" => policy.delete = true,
            "compact" => policy.compact = true,
            _ => return None,
        }
    }
    (policy.delete || policy.compact).then_some(policy)
}

/// Validates a whole set of topic configs (CreateTopics, AlterConfigs): every name known, every
/// value valid.
pub fn validate(
    broker: &BrokerConfig,
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicConfigError> {
    let mut settings = TopicSettings::defaults(broker);
    for (name, value) in configs {
        settings.set(name, value)?;
    }
    Ok(())
}

/// The topic's `max.message.bytes` (the produce path's batch size limit): one map lookup, no
/// full resolve, as it runs per Produce request.
pub fn max_message_bytes(broker: &BrokerConfig, configs: &BTreeMap<String, String>) -> usize {
    configs
        .get(MAX_MESSAGE_BYTES)
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(broker.max_message_bytes)
}

/// One row of a topic's described configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub def: &'static ConfigDef,
    pub value: String,
    /// Set explicitly on the topic (DYNAMIC_TOPIC_CONFIG) rather than a default.
    pub is_explicit: bool,
    /// The broker default (reported as a synonym).
    pub default_value: String,
}

/// Every topic config with its effective value, in name order.
pub fn describe(broker: &BrokerConfig, configs: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    let defaults = TopicSettings::defaults(broker);
    let effective = TopicSettings::resolve(broker, configs);
    TOPIC_CONFIGS
        .iter()
        .map(|def| DescribedConfig {
            def,
            // Explicit values as given (Kafka reports them verbatim, e.g. "delete,compact").
            value: configs
                .get(def.name)
                .cloned()
                .unwrap_or_else(|| effective.value_of(def.name).unwrap_or_default()),
            is_explicit: configs.contains_key(def.name),
            default_value: defaults.value_of(def.name).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_kafka() {
        let broker = BrokerConfig::default();
        let described = describe(&broker, &BTreeMap::new());
        let value = |name: &str| {
            described
                .iter()
                .find(|d| d.def.name == name)
                .map(|d| d.value.clone())
        };
        assert_eq!(value(RETENTION_MS).as_deref(), Some("604800000"));
        assert_eq!(value(RETENTION_BYTES).as_deref(), Some("-1"));
        assert_eq!(value(SEGMENT_BYTES).as_deref(), Some("1073741824"));
        assert_eq!(value(CLEANUP_POLICY).as_deref(), Some("delete"));
        assert_eq!(value(MAX_MESSAGE_BYTES).as_deref(), Some("1048588"));
        assert_eq!(value(MESSAGE_TIMESTAMP_TYPE).as_deref(), Some("CreateTime"));
        assert!(described.iter().all(|d| !d.is_explicit));
        assert_eq!(described.len(), TOPIC_CONFIGS.len());
    }

    #[test]
    fn retention_defaults_follow_the_broker_settings_while_it_runs() {
        let broker = BrokerConfig::default();
        let explicit = configs(&[(RETENTION_MS, "1000")]);
        broker.live.set_log_retention_ms(3_600_000);
        broker.live.set_log_retention_bytes(1 << 30);
        let defaults = TopicSettings::resolve(&broker, &BTreeMap::new());
        assert_eq!(defaults.retention_ms, 3_600_000);
        assert_eq!(defaults.retention_bytes, 1 << 30);
        // A topic's own setting still wins over the broker default.
        assert_eq!(
            TopicSettings::resolve(&broker, &explicit).retention_ms,
            1000
        );
        let described = describe(&broker, &explicit);
        let retention = described.iter().find(|d| d.def.name == RETENTION_MS);
        assert_eq!(retention.map(|d| d.default_value.as_str()), Some("3600000"));
    }

    #[test]
    fn validation_accepts_kafka_values_and_refuses_others() {
        let broker = BrokerConfig::default();
        for ok in [
            (CLEANUP_POLICY, "compact"),
            (CLEANUP_POLICY, "compact,delete"),
            (CLEANUP_POLICY, "delete, compact"),
            (RETENTION_MS, "-1"),
            (RETENTION_MS, "3000"),
            (RETENTION_BYTES, "-1"),
            (SEGMENT_BYTES, "1048576"),
            (MESSAGE_TIMESTAMP_TYPE, "LogAppendTime"),
            (MAX_MESSAGE_BYTES, "2000000"),
        ] {
            assert_eq!(validate(&broker, &configs(&[ok])), Ok(()), "{ok:?}");
        }
        for bad in [
            (CLEANUP_POLICY, "forever"),
            (CLEANUP_POLICY, ""),
            (RETENTION_MS, "-2"),
            (RETENTION_MS, "soon"),
            (SEGMENT_BYTES, "1000"),
            (SEGMENT_MS, "0"),
            (MESSAGE_TIMESTAMP_TYPE, "Now"),
        ] {
            assert!(
                matches!(
                    validate(&broker, &configs(&[bad])),
                    Err(TopicConfigError::InvalidValue { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate(&broker, &configs(&[("retention.hours", "1")])),
            Err(TopicConfigError::Unknown("retention.hours".into()))
        );
    }

    #[test]
    fn retention_policy_follows_cleanup_policy() {
        let broker = BrokerConfig::default();
        let settings = TopicSettings::resolve(
            &broker,
            &configs(&[(RETENTION_MS, "3000"), (RETENTION_BYTES, "-1")]),
        );
        assert_eq!(
            settings.retention_policy(),
            RetentionPolicy {
                retention_ms: Some(3000),
                retention_bytes: None
            }
        );
        let compacted = TopicSettings::resolve(
            &broker,
            &configs(&[(RETENTION_MS, "3000"), (CLEANUP_POLICY, "compact")]),
        );
        assert_eq!(compacted.retention_policy(), RetentionPolicy::default());
        let infinite = TopicSettings::resolve(&broker, &configs(&[(RETENTION_MS, "-1")]));
        assert_eq!(infinite.retention_policy().retention_ms, None);
    }

    #[test]
    fn compaction_policy_follows_cleanup_policy() {
        let broker = BrokerConfig::default();
        let deleted = TopicSettings::resolve(&broker, &configs(&[]));
        assert_eq!(deleted.compaction_policy(10), None);
        let both = TopicSettings::resolve(
            &broker,
            &configs(&[
                (CLEANUP_POLICY, "compact,delete"),
                (MIN_COMPACTION_LAG_MS, "5"),
                (DELETE_RETENTION_MS, "7"),
            ]),
        );
        assert_eq!(
            both.compaction_policy(10),
            Some(CompactionPolicy {
                min_compaction_lag_ms: 5,
                delete_retention_ms: 7,
                max_keys: 10
            })
        );
        assert!(both.retention_policy().retention_ms.is_some());
    }

    #[test]
    fn described_configs_mark_explicit_values() {
        let broker = BrokerConfig::default();
        let described = describe(&broker, &configs(&[(CLEANUP_POLICY, "compact")]));
        let cleanup = described
            .iter()
            .find(|d| d.def.name == CLEANUP_POLICY)
            .expect("listed");
        assert!(cleanup.is_explicit);
        assert_eq!(cleanup.value, "compact");
        assert_eq!(cleanup.default_value, "delete");
    }

    #[test]
    fn kafka_configs_without_effect_yet_are_accepted() {
        let broker = BrokerConfig::default();
        let configs = BTreeMap::from([
            ("compression.type".to_string(), "lz4".to_string()),
            ("min.insync.replicas".to_string(), "2".to_string()),
        ]);
        assert_eq!(validate(&broker, &configs), Ok(()));
    }
}
