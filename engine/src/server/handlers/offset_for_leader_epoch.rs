//! OffsetForLeaderEpoch (v2-4): where this leader's log for a leader epoch ends, asked by a
//! follower before it fetches (it truncates there: Kafka's KIP-101/279) and by consumers that
//! check for log truncation (KIP-320). Each partition is answered by its owning shard; only the
//! partition's leader answers (NOT_LEADER_OR_FOLLOWER otherwise), fenced by the caller's
//! current leader epoch (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).

use futures::future::join_all;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;
use ringbroker_schema::{EpochEndOffsetRequest, EpochEndOffsetRequestArgs, EpochEndOffsetResult};
use ringbroker_schema::{EpochEndOffsetResultArgs, Payload};

use crate::replication::serve::check_leader_epoch;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// One partition's answer: (error, epoch, end offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub error_code: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl EpochEnd {
    fn error(code: i16) -> EpochEnd {
        EpochEnd {
            error_code: code,
            leader_epoch: -1,
            end_offset: -1,
        }
    }
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: OffsetForLeaderEpochRequest = decode_body(request)?;
    // Kafka: a follower (replica id set, v3+) needs ClusterAction on the cluster, a consumer
    // Describe on each topic.
    let replica_refused = (body.replica_id.0 >= 0)
        .then(|| session.cluster_refusal(Operation::ClusterAction))
        .flatten();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.topic.0.as_str();
        let denied = if body.replica_id.0 >= 0 {
            replica_refused
        } else {
            session.refusal(Operation::Describe, ResourceType::Topic, name)
        };
        let answers = join_all(topic.partitions.iter().map(|p| async move {
            let checked = denied.map_or_else(
                || check_leader_epoch(shard, name, p.partition, p.current_leader_epoch),
                Err,
            );
            let end = match checked {
                Err(code) => EpochEnd::error(code),
                Ok(()) => epoch_end(shard, name, p.partition, p.leader_epoch).await,
            };
            EpochEndOffset::default()
                .with_partition(p.partition)
                .with_error_code(end.error_code)
                .with_leader_epoch(end.leader_epoch)
                .with_end_offset(end.end_offset)
        }))
        .await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(answers),
        );
    }
    respond(
        request,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}

/// Where `leader_epoch` ends in the partition's log, from its owning shard.
async fn epoch_end(shard: &Shard, topic: &str, partition: i32, leader_epoch: i32) -> EpochEnd {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return epoch_end_local(shard, topic, partition, leader_epoch);
    }
    let reply = shard
        .mesh
        .call(owner, 128 + topic.len(), |fbb| {
            let topic = fbb.create_string(topic);
            let request = EpochEndOffsetRequest::create(
                fbb,
                &EpochEndOffsetRequestArgs {
                    topic: Some(topic),
                    partition,
                    leader_epoch,
                },
            );
            (Payload::EpochEndOffsetRequest, request.as_union_value())
        })
        .await;
    let Ok(message) = reply else {
        return EpochEnd::error(ResponseError::NotLeaderOrFollower.code());
    };
    match message
        .envelope()
        .ok()
        .and_then(|e| e.payload_as_epoch_end_offset_result())
    {
        Some(result) => EpochEnd {
            error_code: result.error_code(),
            leader_epoch: result.leader_epoch(),
            end_offset: result.end_offset(),
        },
        None => EpochEnd::error(ResponseError::UnknownServerError.code()),
    }
}

fn epoch_end_local(shard: &Shard, topic: &str, partition: i32, leader_epoch: i32) -> EpochEnd {
    let Some(log) = shard.log(topic, partition) else {
        return EpochEnd::error(ResponseError::NotLeaderOrFollower.code());
    };
    match log.end_offset_for_epoch(leader_epoch) {
        Some((epoch, end_offset)) => EpochEnd {
            error_code: 0,
            leader_epoch: epoch,
            end_offset,
        },
        // UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET, as Kafka answers an unknown epoch.
        None => EpochEnd {
            error_code: 0,
            leader_epoch: -1,
            end_offset: -1,
        },
    }
}

/// Serves an `EpochEndOffsetRequest` from another shard (this shard owns the partition).
pub async fn serve_remote(
    shard: &Shard,
    from: usize,
    correlation: u64,
    request: EpochEndOffsetRequest<'_>,
) {
    let end = epoch_end_local(
        shard,
        request.topic().unwrap_or_default(),
        request.partition(),
        request.leader_epoch(),
    );
    shard
        .mesh
        .reply(from, correlation, 64, |fbb| {
            let result = EpochEndOffsetResult::create(
                fbb,
                &EpochEndOffsetResultArgs {
                    error_code: end.error_code,
                    leader_epoch: end.leader_epoch,
                    end_offset: end.end_offset,
                },
            );
            (Payload::EpochEndOffsetResult, result.as_union_value())
        })
        .await;
}
