//! Produce (v3-7): validate each partition's batches, append them all (local partitions in
//! place, the others on their shards, concurrently), answer with base offsets. A partition this
//! broker does not lead is answered NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata).
//! acks=0 gets no answer; acks=1 and acks=-1 both answer once the write is done (partitions have
//! one replica until replication exists: the ISR is the leader).

use futures::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::metrics::hooks;
use crate::produce::{self, ProduceOutcome};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

const ACKS_NONE: i16 = 0;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Outcome, HandlerError> {
    let body: ProduceRequest = decode_body(request)?;
    if !matches!(body.acks, -1..=1) {
        return Err(HandlerError::Refused(format!("invalid acks {}", body.acks)));
    }
    let table = shard.topic_table();
    let max_message_bytes = shard.config.max_message_bytes;
    // Build every partition's append future first, in request order: they are polled in this
    // order, which is the order offsets are assigned in.
    let mut appends = Vec::new();
    let mut layout = Vec::with_capacity(body.topic_data.len());
    for topic in &body.topic_data {
        let name = topic.name.0.as_str();
        let max_message_bytes = table.get(name).map_or(max_message_bytes, |meta| {
            crate::topic_config::max_message_bytes(&shard.config, &meta.configs)
        });
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for data in &topic.partition_data {
            let index = data.index;
            indexes.push(index);
            let records = data.records.clone().unwrap_or_default();
            let validation = match shard.check_leader(name, index) {
                Ok(()) => produce::validate_records(&records, max_message_bytes),
                Err(code) => Err((code, String::new())),
            };
            let name = name.to_string();
            appends.push(async move {
                match validation {
                    Ok(_) => produce::append(shard, &name, index, records).await,
                    Err((code, reason)) => {
                        if !reason.is_empty() {
                            tracing::warn!(topic = %name, partition = index, error_code = code, %reason, "rejected produce");
                        }
                        ProduceOutcome::error(code)
                    }
                }
            });
        }
        layout.push((topic.name.clone(), indexes));
    }
    let outcomes = join_all(appends).await;
    hooks::produced(shard.metrics(), &outcomes);
    if body.acks == ACKS_NONE {
        return Ok(Outcome::NoReply);
    }
    let mut outcomes = outcomes.into_iter();
    let mut responses = Vec::with_capacity(layout.len());
    for (name, indexes) in layout {
        let partition_responses = indexes
            .into_iter()
            .map(|index| {
                let outcome = outcomes.next().unwrap_or(ProduceOutcome::error(
                    ResponseError::UnknownServerError.code(),
                ));
                PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(outcome.error_code)
                    .with_base_offset(outcome.base_offset)
                    .with_log_append_time_ms(outcome.log_append_time_ms)
                    .with_log_start_offset(outcome.log_start_offset)
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    respond(
        request,
        &ProduceResponse::default().with_responses(responses),
    )
}
