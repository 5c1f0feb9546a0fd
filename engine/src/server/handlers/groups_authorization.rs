//! The ACL checks of the group APIs, as Kafka's KafkaApis makes them: Read on the group to join,
//! sync, heartbeat, leave and commit (and Read on each committed topic), Describe to fetch
//! offsets (topics the client may not describe are left out, or refused when named), describe a
//! group or list it, Delete to delete a group or its offsets. Refusals carry
//! GROUP_AUTHORIZATION_FAILED or TOPIC_AUTHORIZATION_FAILED in the shape of each API's answer.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::groups::{decode, encode};
use super::not_coordinator::commit_errors;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::HandlerError;

/// The operation a single-group request needs on its group.
pub fn group_operation(api: ApiKey) -> Operation {
    match api {
        ApiKey::OffsetFetch => Operation::Describe,
        ApiKey::OffsetDelete => Operation::Delete,
        _ => Operation::Read,
    }
}

/// An OffsetCommit split by the topics the client may read: the request to run (encoded) and
/// the denied topics' answers to add to its response. `None`: every topic may be committed.
pub struct CommitSplit {
    pub allowed: Bytes,
    pub denied: Vec<OffsetCommitResponseTopic>,
}

pub fn split_commit(
    session: &Session,
    version: i16,
    body: &Bytes,
) -> Result<Option<CommitSplit>, HandlerError> {
    if !session.enforcing() {
        return Ok(None);
    }
    let api = ApiKey::OffsetCommit;
    let mut request: OffsetCommitRequest = decode(api, version, body.clone())?;
    let denied = take_unreadable(session, &mut request.topics, |t| t.name.as_str());
    if denied.is_empty() {
        return Ok(None);
    }
    let denied = commit_errors(&denied, ResponseError::TopicAuthorizationFailed.code());
    Ok(Some(CommitSplit {
        allowed: encode(api, version, &request)?,
        denied,
    }))
}

/// Removes from `topics` those the client may not read (Read on the topic, as Kafka checks the
/// topics of OffsetCommit and TxnOffsetCommit) and returns them.
pub fn take_unreadable<T>(
    session: &Session,
    topics: &mut Vec<T>,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let (allowed, denied): (Vec<_>, Vec<_>) = topics
        .drain(..)
        .partition(|t| session.authorize(Operation::Read, ResourceType::Topic, name(t)));
    *topics = allowed;
    denied
}

/// The OffsetCommit answer with the denied topics added.
pub fn join_commit(
    version: i16,
    committed: Bytes,
    denied: Vec<OffsetCommitResponseTopic>,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::OffsetCommit;
    let mut response: OffsetCommitResponse = decode(api, version, committed)?;
    response.topics.extend(denied);
    encode(api, version, &response)
}

/// An OffsetFetch answer (either form) without the topics the client may not describe: left out
/// when it asked for all topics, TOPIC_AUTHORIZATION_FAILED when it named them.
pub fn visible_offsets(
    session: &Session,
    version: i16,
    request: &Bytes,
    fetched: Bytes,
) -> Result<Bytes, HandlerError> {
    if !session.enforcing() {
        return Ok(fetched);
    }
    let api = ApiKey::OffsetFetch;
    let asked: OffsetFetchRequest = decode(api, version, request.clone())?;
    let mut response: OffsetFetchResponse = decode(api, version, fetched)?;
    let may = |name: &str| session.allows(Operation::Describe, ResourceType::Topic, name);
    let refused = ResponseError::TopicAuthorizationFailed.code();
    if asked.topics.is_none() {
        response.topics.retain(|t| may(t.name.as_str()));
    }
    for topic in response.topics.iter_mut().filter(|t| !may(t.name.as_str())) {
        for p in &mut topic.partitions {
            p.error_code = refused;
            p.committed_offset = -1;
        }
    }
    for group in &mut response.groups {
        let named = asked
            .groups
            .iter()
            .find(|g| g.group_id == group.group_id)
            .is_some_and(|g| g.topics.is_some());
        if !named {
            group.topics.retain(|t| may(t.name.as_str()));
        }
        for topic in group.topics.iter_mut().filter(|t| !may(t.name.as_str())) {
            for p in &mut topic.partitions {
                p.error_code = refused;
                p.committed_offset = -1;
            }
        }
    }
    encode(api, version, &response)
}

/// The ListGroups answer without the groups the client may not describe (all of them with
/// Describe on the cluster).
pub fn visible_groups(session: &Session, groups: &mut Vec<list_groups_response::ListedGroup>) {
    if !session.enforcing()
        || session.allows(
            Operation::Describe,
            ResourceType::Cluster,
            crate::security::acl::types::CLUSTER_NAME,
        )
    {
        return;
    }
    groups.retain(|g| {
        session.allows(
            Operation::Describe,
            ResourceType::Group,
            g.group_id.as_str(),
        )
    });
}
