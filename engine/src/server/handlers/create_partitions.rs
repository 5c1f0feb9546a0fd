//! CreatePartitions (v0-3): grow topics (`kafka-topics --alter --partitions N`), the new partitions
//! placed by the active controller or as the request assigns them.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use ringbroker_protocol::frame::Request;

use crate::admin::partitions::create_partitions;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: CreatePartitionsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let assignments = topic
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|id| id.0).collect())
            .collect();
        let name = topic.name.0.as_str();
        let outcome = match session.refusal(Operation::Alter, ResourceType::Topic, name) {
            Some(error_code) => crate::admin::AdminOutcome::refused(error_code),
            None => {
                create_partitions(shard, name, topic.count, assignments, body.validate_only).await
            }
        };
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.map(StrBytes::from_string)),
        );
    }
    respond(
        request,
        &CreatePartitionsResponse::default().with_results(results),
    )
}
