//! ElectLeaders (v0-2, what `kafka-leader-election` sends): preferred-replica elections (the
//! first replica leads again when it is live and in sync) or unclean ones (a live replica leads a
//! leaderless partition), decided by the active controller; answered once the new leaders have
//! reached this broker. Kafka's per-partition errors: ELECTION_NOT_NEEDED,
//! PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::cluster::forward;
use crate::cluster::rpc_api::AdminRequest;
use crate::security::acl::{Operation, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// Kafka's election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: ElectLeadersRequest = decode_body(request)?;
    if let Some(code) = session.cluster_refusal(Operation::Alter) {
        return respond(
            request,
            &ElectLeadersResponse::default().with_error_code(code),
        );
    }
    if !matches!(body.election_type, PREFERRED | UNCLEAN) {
        return respond(
            request,
            &ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        );
    }
    let partitions: Option<Vec<(String, i32)>> = body.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect()
    });
    let reply = forward::admin(
        shard,
        AdminRequest::ElectLeaders {
            partitions: partitions.clone(),
            unclean: body.election_type == UNCLEAN,
        },
    )
    .await;
    // One outcome per partition, named `topic:partition`; a failure before the controller decided
    // (no controller, timeout) has one per requested partition with the same error, or none for
    // "all partitions": then the top-level error says it.
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for outcome in &reply.outcomes {
        let Some((topic, partition)) = outcome
            .name
            .rsplit_once(':')
            .and_then(|(t, p)| p.parse::<i32>().ok().map(|p| (t.to_string(), p)))
        else {
            continue;
        };
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.clone().map(StrBytes::from_string)),
        );
    }
    let top_error = if reply.outcomes.is_empty() && partitions.is_none() && reply.index.is_none() {
        ResponseError::NotController.code()
    } else {
        0
    };
    let results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    respond(
        request,
        &ElectLeadersResponse::default()
            .with_error_code(top_error)
            .with_replica_election_results(results),
    )
}
