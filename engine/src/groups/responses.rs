//! Kafka error codes the coordinator answers with, and the shaping of internal outcomes into responses
//! for the request's version (the kafka-protocol encoder refuses fields a version does not have, and
//! pre-flexible versions need "" where later ones allow null).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::member::{JoinOutcome, SyncOutcome};

pub const NONE: i16 = 0;
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
pub const GROUP_MAX_SIZE_REACHED: i16 = ResponseError::GroupMaxSizeReached.code();
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();
pub const FENCED_MEMBER_EPOCH: i16 = ResponseError::FencedMemberEpoch.code();
pub const UNRELEASED_INSTANCE_ID: i16 = ResponseError::UnreleasedInstanceId.code();
pub const UNSUPPORTED_ASSIGNOR: i16 = ResponseError::UnsupportedAssignor.code();
pub const STALE_MEMBER_EPOCH: i16 = ResponseError::StaleMemberEpoch.code();
pub const INVALID_REGULAR_EXPRESSION: i16 = ResponseError::InvalidRegularExpression.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
pub const UNSTABLE_OFFSET_COMMIT: i16 = ResponseError::UnstableOffsetCommit.code();
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();

pub fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// JoinGroup versions 0-5 have a non-nullable protocol name; 6+ (flexible) allow null.
const JOIN_NULLABLE_PROTOCOL_NAME_VERSION: i16 = 6;
/// JoinGroup version that added `protocol_type` to the response.
const JOIN_PROTOCOL_TYPE_VERSION: i16 = 7;
/// Version (JoinGroup member list, SyncGroup, LeaveGroup member list) that added static membership fields.
const JOIN_INSTANCE_ID_VERSION: i16 = 5;
const SYNC_PROTOCOL_FIELDS_VERSION: i16 = 5;
const LEAVE_BATCH_VERSION: i16 = 3;

pub fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = outcome.error_code;
    response.generation_id = outcome.generation_id;
    if version >= JOIN_PROTOCOL_TYPE_VERSION {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
    }
    response.protocol_name = match outcome.protocol_name.as_deref() {
        Some(name) => Some(str_bytes(name)),
        None if version < JOIN_NULLABLE_PROTOCOL_NAME_VERSION => Some(StrBytes::default()),
        None => None,
    };
    response.leader = str_bytes(&outcome.leader_id);
    response.member_id = str_bytes(&outcome.member_id);
    response.members = outcome
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = str_bytes(&m.member_id);
            if version >= JOIN_INSTANCE_ID_VERSION {
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            }
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}

pub fn sync_response(outcome: SyncOutcome, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = outcome.error_code;
    if version >= SYNC_PROTOCOL_FIELDS_VERSION {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
    }
    // Never null: an errored sync still carries empty assignment bytes.
    response.assignment = if outcome.error_code == NONE {
        outcome.assignment
    } else {
        Bytes::new()
    };
    response
}

pub fn heartbeat_response(error_code: i16) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default();
    response.error_code = error_code;
    response
}

/// One leaving member's result: (member id, group instance id, error code).
pub type LeaveResult = (String, Option<String>, i16);

pub fn leave_response(
    error_code: i16,
    members: Vec<LeaveResult>,
    version: i16,
) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    if version >= LEAVE_BATCH_VERSION {
        response.error_code = error_code;
        response.members = members
            .into_iter()
            .map(|(member_id, instance_id, code)| {
                let mut member = MemberResponse::default();
                member.member_id = str_bytes(&member_id);
                member.group_instance_id = instance_id.as_deref().map(str_bytes);
                member.error_code = code;
                member
            })
            .collect();
    } else {
        // Before v3 the single member's error is the response's error (Kafka's LeaveGroupResponse does this).
        response.error_code = if error_code != NONE {
            error_code
        } else {
            members.first().map(|(_, _, code)| *code).unwrap_or(NONE)
        };
    }
    response
}

/// TxnOffsetCommit's answer: `codes[t][p]` for partition `p` of topic `t` of the request.
pub fn txn_offset_commit_response(
    req: &TxnOffsetCommitRequest,
    codes: Vec<Vec<i16>>,
) -> TxnOffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(topic, topic_codes)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(topic_codes)
                        .map(|(p, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
