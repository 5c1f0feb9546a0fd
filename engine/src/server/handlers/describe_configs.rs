//! DescribeConfigs: every known config of a topic (explicit values as DYNAMIC_TOPIC_CONFIG, the
//! rest as defaults) and the broker settings clients ask about. Kafka's `kafka-topics --describe`
//! needs it, and Kafka Connect checks `cleanup.policy=compact` of its internal topics with it.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::config::BrokerConfig;
use crate::security::acl::{Operation, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;
use crate::topic_config::{self, ConfigType, TopicSettings};

/// Kafka's resource type codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes.
pub const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// Kafka's check of a config resource: `operation` (DescribeConfigs, AlterConfigs) on the topic,
/// or on the cluster for broker configs; the error code when it is denied.
pub fn config_refusal(
    session: &Session,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Option<i16> {
    if resource_type == RESOURCE_TOPIC {
        session.refusal(operation, crate::security::acl::ResourceType::Topic, name)
    } else {
        session.cluster_refusal(operation)
    }
}

/// The answer for a config resource the client may not alter (AlterConfigs on it), if so.
pub fn alter_refusal(
    session: &Session,
    resource_type: i8,
    name: &str,
) -> Option<crate::admin::AdminOutcome> {
    config_refusal(session, Operation::AlterConfigs, resource_type, name)
        .map(crate::admin::AdminOutcome::refused)
}

/// First version carrying `config_type` and `documentation`.
const CONFIG_TYPE_MIN_VERSION: i16 = 3;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DescribeConfigsRequest = decode_body(request)?;
    let table = shard.topic_table();
    let options = Options {
        synonyms: body.include_synonyms,
        documentation: body.include_documentation,
        types: request.version() >= CONFIG_TYPE_MIN_VERSION,
    };
    let mut results = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        // Null or empty keys mean every config (as Kafka's ConfigHelper reads them).
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
        };
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let name = resource.resource_name.as_str();
        if let Some(code) = config_refusal(
            session,
            Operation::DescribeConfigs,
            resource.resource_type,
            name,
        ) {
            results.push(result.with_error_code(code));
            continue;
        }
        let result = match resource.resource_type {
            RESOURCE_TOPIC => match table.get(name) {
                Some(meta) => result.with_configs(
                    topic_config::describe(&shard.config, &meta.configs)
                        .into_iter()
                        .filter(|d| wanted(d.def.name))
                        .map(|d| {
                            let mut synonyms = Vec::new();
                            if d.is_explicit {
                                synonyms.push(synonym(
                                    d.def.name,
                                    &d.value,
                                    SOURCE_DYNAMIC_TOPIC_CONFIG,
                                ));
                            }
                            synonyms.push(synonym(
                                d.def.broker_synonym,
                                &d.default_value,
                                SOURCE_DEFAULT_CONFIG,
                            ));
                            let source = if d.is_explicit {
                                SOURCE_DYNAMIC_TOPIC_CONFIG
                            } else {
                                SOURCE_DEFAULT_CONFIG
                            };
                            entry(
                                &options,
                                d.def.name,
                                d.value,
                                source,
                                false,
                                d.def.config_type,
                                d.def.doc,
                                synonyms,
                            )
                        })
                        .chain(
                            accepted_not_enforced(&meta.configs)
                                .filter(|(config, _)| wanted(config))
                                .map(|(config, value)| {
                                    let synonyms =
                                        vec![synonym(config, value, SOURCE_DYNAMIC_TOPIC_CONFIG)];
                                    entry(
                                        &options,
                                        config,
                                        value.to_string(),
                                        SOURCE_DYNAMIC_TOPIC_CONFIG,
                                        false,
                                        ConfigType::String,
                                        ACCEPTED_NOT_ENFORCED_DOC,
                                        synonyms,
                                    )
                                }),
                        )
                        .collect(),
                ),
                None => result
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Topic '{name}' does not exist."
                    )))),
            },
            RESOURCE_BROKER
                if name.is_empty() || name == shard.config.node_id.to_string().as_str() =>
            {
                result.with_configs(
                    broker_configs(&shard.config)
                        .into_iter()
                        .filter(|c| wanted(c.name))
                        .map(|c| {
                            let synonyms = vec![synonym(c.name, &c.value, c.source)];
                            entry(
                                &options,
                                c.name,
                                c.value,
                                c.source,
                                true,
                                c.config_type,
                                c.doc,
                                synonyms,
                            )
                        })
                        .collect(),
                )
            }
            RESOURCE_BROKER => result
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Unexpected broker id, expected {} or empty string, but received {name}",
                    shard.config.node_id
                )))),
            other => result
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "resource type {other} is not supported"
                )))),
        };
        results.push(result);
    }
    respond(
        request,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

/// Documentation of a config kept as given but without effect on this broker.
const ACCEPTED_NOT_ENFORCED_DOC: &str = "accepted and stored, not enforced by ringbroker";

/// The topic's explicit configs that are stored but not enforced (`topic_config::ACCEPTED_NOT_ENFORCED`):
/// listed so that `kafka-configs --describe` shows what was set, as Kafka does.
pub(crate) fn accepted_not_enforced(
    configs: &std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = (&str, &str)> {
    configs
        .iter()
        .filter(|(name, _)| topic_config::config_def(name).is_none())
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// What the request asked to include.
struct Options {
    synonyms: bool,
    documentation: bool,
    types: bool,
}

#[allow(clippy::too_many_arguments)]
fn entry(
    options: &Options,
    name: &str,
    value: String,
    source: i8,
    read_only: bool,
    config_type: ConfigType,
    doc: &str,
    synonyms: Vec<DescribeConfigsSynonym>,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(false);
    if options.synonyms {
        entry = entry.with_synonyms(synonyms);
    }
    if options.types {
        entry = entry.with_config_type(config_type as i8);
        if options.documentation {
            entry = entry.with_documentation(Some(StrBytes::from_string(doc.to_string())));
        }
    }
    entry
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_source(source)
}

/// One broker setting as DescribeConfigs reports it.
struct BrokerEntry {
    name: &'static str,
    value: String,
    source: i8,
    config_type: ConfigType,
    doc: &'static str,
}

/// The broker settings we know, under Kafka's names: the topic defaults and what AdminClient,
/// `kafka-configs` and Kafka Connect look up. None can be altered at runtime (read-only).
fn broker_configs(config: &BrokerConfig) -> Vec<BrokerEntry> {
    let defaults = TopicSettings::defaults(config);
    let topic_default = |name: &str| defaults.value_of(name).unwrap_or_default();
    let mut entries = vec![
        BrokerEntry {
            name: "node.id",
            value: config.node_id.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "this broker's id",
        },
        BrokerEntry {
            name: "broker.id",
            value: config.node_id.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "this broker's id",
        },
        BrokerEntry {
            name: "log.dirs",
            value: config.data_dir.display().to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::String,
            doc: "data directory",
        },
        BrokerEntry {
            name: "num.partitions",
            value: config.default_partitions.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "partitions of auto-created topics",
        },
        BrokerEntry {
            name: "auto.create.topics.enable",
            value: config.auto_create_topics.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::String,
            doc: "create unknown topics on Metadata requests",
        },
        BrokerEntry {
            name: "transaction.partition.verification.enable",
            value: config.transaction_partition_verification.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::String,
            doc:
                "ask the transaction coordinator before a transaction's first write to a partition",
        },
        BrokerEntry {
            name: "default.replication.factor",
            value: config.cluster.default_replication_factor.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "replication factor of topics created without one",
        },
        BrokerEntry {
            name: "min.insync.replicas",
            value: config.cluster.replication.min_insync_replicas.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "in-sync replicas an acks=all produce needs",
        },
        BrokerEntry {
            name: "socket.request.max.bytes",
            value: config.max_request_bytes.to_string(),
            source: SOURCE_STATIC_BROKER_CONFIG,
            config_type: ConfigType::Int,
            doc: "largest request frame accepted",
        },
    ];
    for def in topic_config::TOPIC_CONFIGS {
        let source = if def.name == topic_config::SEGMENT_BYTES
            || def.name == topic_config::MAX_MESSAGE_BYTES
        {
            SOURCE_STATIC_BROKER_CONFIG
        } else {
            SOURCE_DEFAULT_CONFIG
        };
        entries.push(BrokerEntry {
            name: def.broker_synonym,
            value: topic_default(def.name),
            source,
            config_type: def.config_type,
            doc: def.doc,
        });
    }
    entries
}
