//! Produce (v3-8): validate each partition's batches, append them all (local partitions in
//! place, the others on their shards, concurrently), answer with base offsets. A partition this
//! broker does not lead is answered NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata).
//! acks=0 gets no answer; acks=1 and acks=-1 both answer once the write is done (partitions have
//! one replica until replication exists: the ISR is the leader).
//! From v8 on, a refused partition also carries Kafka's `error_message` and, when one record is
//! at fault, its index in `record_errors`.

use futures::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::metrics::hooks;
use crate::produce::{self, ProduceOutcome, Refusal};
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

const ACKS_NONE: i16 = 0;
/// First Produce version whose response carries `record_errors` and `error_message`.
const RECORD_ERRORS_VERSION: i16 = 8;

/// One partition of the request, validated.
struct Entry {
    index: i32,
    records: bytes::Bytes,
    checked: Result<usize, Refusal>,
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: ProduceRequest = decode_body(request)?;
    if !matches!(body.acks, -1..=1) {
        return Err(HandlerError::Refused(format!("invalid acks {}", body.acks)));
    }
    // Kafka (KafkaApis.handleProduceRequest): transactional batches in a request without a
    // transactional id fail the whole request with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, before
    // any partition is looked at.
    let transactional = body.topic_data.iter().any(|topic| {
        topic.partition_data.iter().any(|data| {
            data.records
                .as_ref()
                .is_some_and(|records| produce::any_transactional(records))
        })
    });
    // With an authorizer: a transactional producer needs Write on its transactional id.
    let refuse_all = match &body.transactional_id {
        None if transactional => Some(ResponseError::TransactionalIdAuthorizationFailed.code()),
        Some(id) => session.refusal(Operation::Write, ResourceType::TransactionalId, id.as_str()),
        None => None,
    };
    let layout = validate_all(shard, &body, refuse_all, session);
    // Build every partition's append future first, in request order: they are polled in this
    // order, which is the order offsets are assigned in.
    let mut appends = Vec::new();
    let acks = produce::Acks {
        acks: body.acks,
        timeout_ms: body.timeout_ms,
    };
    for (name, entries) in &layout {
        for entry in entries {
            appends.push(append(
                shard,
                name.as_str(),
                entry,
                acks,
                body.transactional_id.as_ref().map(|id| id.as_str()),
            ));
        }
    }
    let outcomes = join_all(appends).await;
    hooks::produced(shard.metrics(), &outcomes);
    if body.acks == ACKS_NONE {
        return Ok(Outcome::NoReply);
    }
    let version = request.version();
    let mut outcomes = outcomes.into_iter();
    let mut responses = Vec::with_capacity(layout.len());
    for (name, entries) in layout {
        let partition_responses = entries
            .iter()
            .map(|entry| {
                let outcome = outcomes.next().unwrap_or(ProduceOutcome::error(
                    ResponseError::UnknownServerError.code(),
                ));
                partition_response(entry, &outcome, version)
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

/// Validates every partition's records on this shard, in request order (none when the whole
/// request is refused with `refuse_all`).
fn validate_all(
    shard: &Shard,
    body: &ProduceRequest,
    refuse_all: Option<i16>,
    session: &Session,
) -> Vec<(TopicName, Vec<Entry>)> {
    let table = shard.topic_table();
    let mut validator = shard.record_validator.borrow_mut();
    let mut layout = Vec::with_capacity(body.topic_data.len());
    for topic in &body.topic_data {
        let name = topic.name.0.as_str();
        // Checked once per topic, before its partitions: a denied topic is not looked up.
        let denied = refuse_all
            .is_none()
            .then(|| session.refusal(Operation::Write, ResourceType::Topic, name))
            .flatten();
        let max_message_bytes = table
            .get(name)
            .map_or(shard.config.max_message_bytes, |meta| {
                crate::topic_config::max_message_bytes(&shard.config, &meta.configs)
            });
        let entries = topic
            .partition_data
            .iter()
            .map(|data| {
                let records = data.records.clone().unwrap_or_default();
                let checked = match (refuse_all, denied, shard.check_leader(name, data.index)) {
                    (Some(code), _, _) => Err(Refusal {
                        code,
                        reason: "the transactional id is missing or not authorized".to_string(),
                        record_index: None,
                    }),
                    (None, Some(code), _) => Err(Refusal {
                        code,
                        reason: String::new(),
                        record_index: None,
                    }),
                    (None, None, Ok(())) => {
                        produce::validate_records(&records, max_message_bytes, &mut validator)
                    }
                    // Not the leader (or no such partition): the client refreshes its metadata.
                    (None, None, Err(code)) => Err(Refusal {
                        code,
                        reason: String::new(),
                        record_index: None,
                    }),
                };
                if let Err(refusal) = &checked {
                    if !refusal.reason.is_empty() {
                        tracing::warn!(topic = %name, partition = data.index, error_code = refusal.code, record = ?refusal.record_index, reason = %refusal.reason, "rejected produce");
                    }
                }
                Entry {
                    index: data.index,
                    records,
                    checked,
                }
            })
            .collect();
        layout.push((topic.name.clone(), entries));
    }
    layout
}

/// The append of one validated partition, or its refusal.
async fn append(
    shard: &Shard,
    topic: &str,
    entry: &Entry,
    acks: produce::Acks,
    transactional_id: Option<&str>,
) -> ProduceOutcome {
    match &entry.checked {
        Err(refusal) => ProduceOutcome::error(refusal.code),
        Ok(_) => {
            produce::append(
                shard,
                topic,
                entry.index,
                entry.records.clone(),
                acks,
                transactional_id,
            )
            .await
        }
    }
}

fn partition_response(
    entry: &Entry,
    outcome: &ProduceOutcome,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(entry.index)
        .with_error_code(outcome.error_code)
        .with_base_offset(outcome.base_offset)
        .with_log_append_time_ms(outcome.log_append_time_ms)
        .with_log_start_offset(outcome.log_start_offset);
    let Err(refusal) = &entry.checked else {
        return response;
    };
    if version < RECORD_ERRORS_VERSION || refusal.reason.is_empty() {
        return response;
    }
    let message = StrBytes::from_string(refusal.reason.clone());
    let record_errors = refusal
        .record_index
        .map(|index| {
            vec![BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(message.clone()))]
        })
        .unwrap_or_default();
    response
        .with_record_errors(record_errors)
        .with_error_message(Some(message))
}
