//! CreateTopics: validated and applied by the controller shard (see `admin`). Replication is
//! not implemented: a replication factor other than 1 (or -1, "broker default") is refused the
//! way Kafka refuses a factor larger than its broker count.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;
use uuid::Uuid;

use crate::admin::{self, AdminOutcome, NewTopic};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// Brokers in this cluster: replication across brokers is a later issue.
const AVAILABLE_BROKERS: i16 = 1;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Outcome, HandlerError> {
    let body: CreateTopicsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.name.0.to_string();
        let outcome = if topic.replication_factor > AVAILABLE_BROKERS
            || topic.replication_factor == 0
            || topic.replication_factor < -1
        {
            AdminOutcome::error(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Replication factor: {} larger than available brokers: {AVAILABLE_BROKERS}.",
                    topic.replication_factor
                ),
            )
        } else if !topic.assignments.is_empty() {
            AdminOutcome::error(
                ResponseError::InvalidRequest,
                "manual replica assignments are not supported; give num_partitions instead",
            )
        } else {
            let configs: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            admin::create_topic(
                shard,
                &NewTopic {
                    name: name.clone(),
                    partitions: topic.num_partitions,
                    configs,
                    validate_only: body.validate_only,
                },
            )
            .await
        };
        let table = shard.topic_table();
        let created = table.get(&name);
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_code(outcome.error_code)
            .with_error_message(outcome.message.map(StrBytes::from_string));
        if outcome.error_code == 0 {
            result = result
                .with_num_partitions(created.map_or(topic.num_partitions, |m| m.partitions))
                .with_replication_factor(1)
                .with_topic_id(created.map_or(Uuid::nil(), |m| Uuid::from_bytes(m.id)));
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
