//! NOT_COORDINATOR answers: in a cluster a group is coordinated by the broker leading its
//! `__consumer_offsets` partition; a group request that reaches another broker (a client with a
//! stale FindCoordinator answer) gets Kafka's NOT_COORDINATOR in the shape of that API's response,
//! so the client looks the coordinator up again. Serving it here would start a second, empty copy
//! of the group on the wrong broker.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::*;

use super::groups::{decode, encode};
use crate::groups::member::{JoinOutcome, SyncOutcome};
use crate::groups::responses::{self, NOT_COORDINATOR};
use crate::groups::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
use crate::server::dispatch::HandlerError;
use crate::shard::Shard;

/// OffsetFetch version from which a request carries a batch of groups.
const OFFSET_FETCH_GROUPS_VERSION: i16 = 8;
/// OffsetFetch version from which the response has a top-level error code.
const OFFSET_FETCH_TOP_ERROR_VERSION: i16 = 2;

/// Whether this broker coordinates `group`: it leads the group's offsets partition. A broker
/// that has no metadata for the offsets topic yet (a single broker before its first
/// FindCoordinator) coordinates every group, as before there was a cluster.
pub fn coordinates(shard: &Shard, group: &str) -> bool {
    let image = shard.image();
    let Some(meta) = image.topics.get(crate::cluster::controller::OFFSETS_TOPIC) else {
        return image.brokers.len() <= 1;
    };
    let partition = offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS);
    meta.leader_of(partition) == shard.config.node_id
}

/// Whether this shard, owning `group`'s offsets partition, has taken the partition's groups
/// over: always for a partition with one replica; for a replicated one once this shard leads it
/// in the image's epoch (set after the groups are loaded from the log, see
/// `replication::roles`).
pub fn loaded_here(shard: &Shard, group: &str) -> bool {
    let partition = offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS);
    let topic = crate::groups::OFFSETS_TOPIC_NAME;
    !shard.is_replicated(topic, partition)
        || shard
            .replication
            .leads(topic, partition, shard.leader_epoch(topic, partition))
}

/// OffsetCommit's answer topics for `topics`, `code` for every partition.
pub fn commit_errors(
    topics: &[offset_commit_request::OffsetCommitRequestTopic],
    code: i16,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The encoded body of `api`'s response saying NOT_COORDINATOR for every group and partition of
/// the request.
pub fn response_body(api: ApiKey, version: i16, body: Bytes) -> Result<Bytes, HandlerError> {
    error_body(api, version, body, NOT_COORDINATOR)
}

/// The encoded body of `api`'s response with `code` for every group and partition of the request
/// (NOT_COORDINATOR, or GROUP_AUTHORIZATION_FAILED from the authorizer).
pub fn error_body(
    api: ApiKey,
    version: i16,
    body: Bytes,
    code: i16,
) -> Result<Bytes, HandlerError> {
    match api {
        ApiKey::JoinGroup => encode(
            api,
            version,
            &responses::join_response(JoinOutcome::error(code, ""), version),
        ),
        ApiKey::SyncGroup => encode(
            api,
            version,
            &responses::sync_response(SyncOutcome::error(code), version),
        ),
        ApiKey::Heartbeat => encode(api, version, &responses::heartbeat_response(code)),
        ApiKey::LeaveGroup => encode(
            api,
            version,
            &responses::leave_response(code, Vec::new(), version),
        ),
        ApiKey::OffsetCommit => {
            let request: OffsetCommitRequest = decode(api, version, body)?;
            let topics = commit_errors(&request.topics, code);
            encode(
                api,
                version,
                &OffsetCommitResponse::default().with_topics(topics),
            )
        }
        ApiKey::OffsetFetch => {
            let request: OffsetFetchRequest = decode(api, version, body)?;
            let mut response = OffsetFetchResponse::default();
            if version >= OFFSET_FETCH_GROUPS_VERSION {
                response.groups = request
                    .groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect();
            } else if version >= OFFSET_FETCH_TOP_ERROR_VERSION {
                response.error_code = code;
            }
            encode(api, version, &response)
        }
        ApiKey::OffsetDelete => encode(
            api,
            version,
            &OffsetDeleteResponse::default().with_error_code(code),
        ),
        ApiKey::ConsumerGroupHeartbeat => encode(
            api,
            version,
            &ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        other => Err(HandlerError::Refused(format!(
            "{other:?} has no error answer here"
        ))),
    }
}
