//! ListOffsets: earliest, latest, max timestamp or by timestamp, per partition this broker leads
//! in the client's current leader epoch (v4+; FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH
//! otherwise, as Kafka). A follower broker asks it for its leader's log start.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::offsets::{self, MAX_TIMESTAMP};
use crate::replication::serve::check_leader_epoch;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// ListOffsets version that added the partition's leader epoch to the response.
const LEADER_EPOCH_MIN_VERSION: i16 = 4;
/// Kafka's isolation_level of read_committed consumers ("latest" is the last stable offset).
const READ_COMMITTED: i8 = 1;
/// ListOffsets version that introduced the max-timestamp (-3) lookup.
const MAX_TIMESTAMP_MIN_VERSION: i16 = 7;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: ListOffsetsRequest = decode_body(request)?;
    // A follower broker (replica id >= 0) asks for its leader's log start as our other
    // inter-broker requests do, with ClusterAction on the cluster (docs/SECURITY.md: the
    // permission brokers are granted); Kafka checks Describe on the topic, which its brokers
    // hold as super users. Clients need Describe on each topic.
    let replica_refused = (body.replica_id.0 >= 0)
        .then(|| session.cluster_refusal(Operation::ClusterAction))
        .flatten();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let denied = if body.replica_id.0 >= 0 {
            replica_refused
        } else {
            session.refusal(Operation::Describe, ResourceType::Topic, name)
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let error_code = if denied.is_some() {
                denied
            } else if let Err(code) =
                check_leader_epoch(shard, name, p.partition_index, p.current_leader_epoch)
            {
                Some(code)
            } else if p.timestamp == MAX_TIMESTAMP && request.version() < MAX_TIMESTAMP_MIN_VERSION
            {
                Some(ResponseError::UnsupportedVersion.code())
            } else {
                None
            };
            let response = match error_code {
                None => {
                    let read_committed = body.isolation_level == READ_COMMITTED;
                    let found = offsets::lookup(
                        shard,
                        name,
                        p.partition_index,
                        p.timestamp,
                        read_committed,
                    )
                    .await;
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(found.error_code)
                        .with_offset(found.offset)
                        .with_timestamp(found.timestamp)
                        .with_leader_epoch(if request.version() >= LEADER_EPOCH_MIN_VERSION {
                            shard.leader_epoch(name, p.partition_index)
                        } else {
                            -1
                        })
                }
                Some(code) => ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_offset(-1)
                    .with_timestamp(-1)
                    .with_leader_epoch(-1),
            };
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    respond(request, &ListOffsetsResponse::default().with_topics(topics))
}
