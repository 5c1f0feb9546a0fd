//! DeleteRecords (v0-2): moves each partition's log start offset (the low watermark) forward on
//! its owner shard; whole segments below it are deleted (`retention::delete_records`). The
//! partitions are handled together: a replicated one answers once its followers' log starts
//! followed, within the request's `timeout_ms` (Kafka's `DelayedDeleteRecords`).

use std::time::Duration;

use futures::future::join_all;
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
    let timeout = Duration::from_millis(u64::try_from(body.timeout_ms).unwrap_or(0));
    // Every partition of every topic at once: the wait for replicas is one timeout, not one each.
    let outcomes = join_all(body.topics.iter().map(|topic| async move {
        let name = topic.name.0.as_str();
        let denied = session.refusal(Operation::Delete, ResourceType::Topic, name);
        join_all(topic.partitions.iter().map(|p| async move {
            match denied.map_or_else(|| shard.check_leader(name, p.partition_index), Err) {
                Ok(()) => {
                    delete_records::delete(shard, name, p.partition_index, p.offset, timeout).await
                }
                Err(error_code) => delete_records::DeleteRecordsOutcome {
                    error_code,
                    low_watermark: -1,
                },
            }
        }))
        .await
    }))
    .await;
    let topics = body
        .topics
        .iter()
        .zip(outcomes)
        .map(|(topic, outcomes)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(outcomes)
                .map(|(p, outcome)| {
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(outcome.error_code)
                        .with_low_watermark(outcome.low_watermark)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        request,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}
