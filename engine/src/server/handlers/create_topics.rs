//! CreateTopics: validated, placed and committed by the active controller (see `admin`), with the
//! replication factor (or explicit replica assignment) asked for; answered once this broker has
//! the topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use ringbroker_protocol::frame::Request;
use uuid::Uuid;

use crate::admin::{self, NewTopic};
use crate::security::acl::Session;
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::server::handlers::describe_configs::{
    accepted_not_enforced, SOURCE_DEFAULT_CONFIG, SOURCE_DYNAMIC_TOPIC_CONFIG,
};
use crate::shard::Shard;
use crate::topic_config;

/// First CreateTopics version whose response carries the created topic's configs (KIP-525).
const CONFIGS_IN_RESPONSE_MIN_VERSION: i16 = 5;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: CreateTopicsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.name.0.to_string();
        let mut assignments: Vec<_> = topic.assignments.iter().collect();
        assignments.sort_by_key(|a| a.partition_index);
        let assignments: Vec<Vec<i32>> = assignments
            .into_iter()
            .map(|a| a.broker_ids.iter().map(|id| id.0).collect())
            .collect();
        let new_topic = NewTopic {
            name: name.clone(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments,
            configs: requested_configs(topic),
            validate_only: body.validate_only,
        };
        let outcome = if session.may_create_topic(&name) {
            admin::create_topic(shard, &new_topic).await
        } else {
            admin::AdminOutcome::error(
                kafka_protocol::ResponseError::TopicAuthorizationFailed,
                "Authorization failed.",
            )
        };
        let table = shard.topic_table();
        let created = table.get(&name);
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_code(outcome.error_code)
            .with_error_message(outcome.message.map(StrBytes::from_string));
        if outcome.error_code == 0 {
            let replication_factor = created
                .and_then(|m| m.assignments.first())
                .map_or(topic.replication_factor.max(1), |s| s.replicas.len() as i16);
            result = result
                .with_num_partitions(created.map_or(topic.num_partitions, |m| m.partitions))
                .with_replication_factor(replication_factor)
                .with_topic_id(created.map_or(Uuid::nil(), |m| Uuid::from_bytes(m.id)));
            if request.version() >= CONFIGS_IN_RESPONSE_MIN_VERSION {
                // validate_only creates nothing: describe the configs as they would be.
                let configs = match created {
                    Some(meta) if !body.validate_only => meta.configs.clone(),
                    _ => requested_configs(topic),
                };
                result = result.with_configs(Some(created_topic_configs(shard, &configs)));
            }
        } else {
            result = result.with_num_partitions(-1).with_replication_factor(-1);
        }
        results.push(result);
    }
    respond(
        request,
        &CreateTopicsResponse::default().with_topics(results),
    )
}

/// The configs a CreateTopics entry asks for (null values mean "the default": left out).
fn requested_configs(topic: &CreatableTopic) -> BTreeMap<String, String> {
    topic
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect()
}

/// Every config of a new topic with its value and source, as Kafka returns them from
/// CreateTopics v5+ (the AdminClient's `createTopics(...).config(topic)` reads them).
fn created_topic_configs(
    shard: &Shard,
    configs: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    let row = |name: &str, value: String, source: i8| {
        CreatableTopicConfigs::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(Some(StrBytes::from_string(value)))
            .with_read_only(false)
            .with_config_source(source)
            .with_is_sensitive(false)
    };
    topic_config::describe(&shard.config, configs)
        .into_iter()
        .map(|d| {
            let source = if d.is_explicit {
                SOURCE_DYNAMIC_TOPIC_CONFIG
            } else {
                SOURCE_DEFAULT_CONFIG
            };
            row(d.def.name, d.value, source)
        })
        .chain(
            accepted_not_enforced(configs)
                .map(|(name, value)| row(name, value.to_string(), SOURCE_DYNAMIC_TOPIC_CONFIG)),
        )
        .collect()
}
