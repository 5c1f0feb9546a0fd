//! DeleteRecords (v0-2): moves each partition's log start offset (the low watermark) forward on
//! its owner shard; whole segments below it are deleted (`retention::delete_records`).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use ringbroker_protocol::frame::Request;

use crate::retention::delete_records;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: DeleteRecordsRequest = decode_body(request)?;
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let denied = session.refusal(Operation::Delete, ResourceType::Topic, name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let outcome = match denied
                .map_or_else(|| shard.check_leader(name, p.partition_index), Err)
            {
                Ok(()) => delete_records::delete(shard, name, p.partition_index, p.offset).await,
                Err(error_code) => delete_records::DeleteRecordsOutcome {
                    error_code,
                    low_watermark: -1,
                },
            };
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(outcome.error_code)
                    .with_low_watermark(outcome.low_watermark),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    respond(
        request,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}
