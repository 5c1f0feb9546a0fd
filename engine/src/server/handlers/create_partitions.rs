//! CreatePartitions (v0-3): grow topics (`kafka-topics --alter --partitions N`). Manual replica
//! assignments are refused: there is one broker and placement over shards is the broker's.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::admin::partitions::create_partitions;
use crate::admin::AdminOutcome;
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Outcome, HandlerError> {
    let body: CreatePartitionsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let outcome = if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            AdminOutcome::error(
                ResponseError::InvalidReplicaAssignment,
                "manual replica assignments are not supported; give the partition count only",
            )
        } else {
            create_partitions(
                shard,
                topic.name.0.as_str(),
                topic.count,
                body.validate_only,
            )
            .await
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
