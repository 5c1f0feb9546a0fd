//! The ACL checks of the transaction APIs, as Kafka's KafkaApis makes them: Write on the
//! transactional id for InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and
//! EndTxn (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); Write on each topic a transaction adds
//! (TOPIC_AUTHORIZATION_FAILED, the other partitions OPERATION_NOT_ATTEMPTED); Read on the group
//! whose offsets join it (GROUP_AUTHORIZATION_FAILED), and for TxnOffsetCommit Read on each topic
//! (TOPIC_AUTHORIZATION_FAILED for those, the others committed: `split_txn_commit`); Describe on
//! the ids DescribeTransactions and ListTransactions show. With the authorizer off nothing is
//! decoded here.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::groups::{decode, encode};
use super::groups_authorization::take_unreadable;
use super::transactions::txn_offset_commit_response;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::HandlerError;

/// The encoded answer refusing a single-id transaction request, or `None` when it may run.
pub fn refusal(
    session: &Session,
    api: ApiKey,
    version: i16,
    body: &Bytes,
) -> Result<Option<Bytes>, HandlerError> {
    if !session.enforcing() {
        return Ok(None);
    }
    let write_id = |id: &str| session.refusal(Operation::Write, ResourceType::TransactionalId, id);
    let read_group = |group: &str| session.refusal(Operation::Read, ResourceType::Group, group);
    let refused = match api {
        ApiKey::InitProducerId => {
            let request: InitProducerIdRequest = decode(api, version, body.clone())?;
            let id = request
                .transactional_id
                .as_ref()
                .map_or("", |id| id.as_str());
            write_id(id).map(|code| {
                encode(
                    api,
                    version,
                    &InitProducerIdResponse::default()
                        .with_error_code(code)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )
            })
        }
        ApiKey::AddPartitionsToTxn => {
            let request: AddPartitionsToTxnRequest = decode(api, version, body.clone())?;
            add_partitions_refusal(session, &request)
                .map(|response| encode(api, version, &response))
        }
        ApiKey::AddOffsetsToTxn => {
            let request: AddOffsetsToTxnRequest = decode(api, version, body.clone())?;
            write_id(request.transactional_id.as_str())
                .or_else(|| read_group(request.group_id.as_str()))
                .map(|code| {
                    encode(
                        api,
                        version,
                        &AddOffsetsToTxnResponse::default().with_error_code(code),
                    )
                })
        }
        ApiKey::TxnOffsetCommit => {
            let request: TxnOffsetCommitRequest = decode(api, version, body.clone())?;
            write_id(request.transactional_id.as_str())
                .or_else(|| read_group(request.group_id.as_str()))
                .map(|code| encode(api, version, &txn_offset_commit_response(&request, code)))
        }
        ApiKey::EndTxn => {
            let request: EndTxnRequest = decode(api, version, body.clone())?;
            write_id(request.transactional_id.as_str()).map(|code| {
                encode(
                    api,
                    version,
                    &EndTxnResponse::default().with_error_code(code),
                )
            })
        }
        _ => None,
    };
    refused.transpose()
}

/// AddPartitionsToTxn's refusal: every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED, or the
/// denied topics' TOPIC_AUTHORIZATION_FAILED and OPERATION_NOT_ATTEMPTED for the rest.
fn add_partitions_refusal(
    session: &Session,
    request: &AddPartitionsToTxnRequest,
) -> Option<AddPartitionsToTxnResponse> {
    let id = request.v3_and_below_transactional_id.as_str();
    let id_refused = session.refusal(Operation::Write, ResourceType::TransactionalId, id);
    let topic_codes: Vec<Option<i16>> = request
        .v3_and_below_topics
        .iter()
        .map(|t| {
            id_refused
                .or_else(|| session.refusal(Operation::Write, ResourceType::Topic, t.name.as_str()))
        })
        .collect();
    if topic_codes.iter().all(Option::is_none) {
        return None;
    }
    let results = request
        .v3_and_below_topics
        .iter()
        .zip(topic_codes)
        .map(|(topic, code)| {
            let code = code.unwrap_or(ResponseError::OperationNotAttempted.code());
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}

/// A DescribeTransactions request split by what the client may describe.
pub struct Describable {
    /// The request with the ids it may describe (encoded).
    pub asked: Bytes,
    /// The ids it may not.
    pub refused: Vec<TransactionalId>,
}

pub fn describable(
    session: &Session,
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<Describable, HandlerError> {
    if !session.enforcing() {
        return Ok(Describable {
            asked: body,
            refused: Vec::new(),
        });
    }
    let request: DescribeTransactionsRequest = decode(api, version, body)?;
    let (allowed, refused): (Vec<TransactionalId>, Vec<TransactionalId>) =
        request.transactional_ids.into_iter().partition(|id| {
            session.authorize(
                Operation::Describe,
                ResourceType::TransactionalId,
                id.as_str(),
            )
        });
    Ok(Describable {
        asked: encode(
            api,
            version,
            &DescribeTransactionsRequest::default().with_transactional_ids(allowed),
        )?,
        refused,
    })
}

/// The DescribeTransactions answer with TRANSACTIONAL_ID_AUTHORIZATION_FAILED for `refused`.
pub fn with_refused(
    api: ApiKey,
    version: i16,
    described: Bytes,
    refused: Vec<TransactionalId>,
) -> Result<Bytes, HandlerError> {
    if refused.is_empty() {
        return Ok(described);
    }
    let mut response: DescribeTransactionsResponse = decode(api, version, described)?;
    response
        .transaction_states
        .extend(refused.into_iter().map(|id| {
            TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
        }));
    encode(api, version, &response)
}

/// The ListTransactions answer without the ids the client may not describe.
pub fn visible_transactions(
    session: &Session,
    api: ApiKey,
    version: i16,
    listed: Bytes,
) -> Result<Bytes, HandlerError> {
    if !session.enforcing() {
        return Ok(listed);
    }
    let mut response: ListTransactionsResponse = decode(api, version, listed)?;
    response.transaction_states.retain(|t| {
        session.allows(
            Operation::Describe,
            ResourceType::TransactionalId,
            t.transactional_id.as_str(),
        )
    });
    encode(api, version, &response)
}

/// A TxnOffsetCommit split by the topics the client may read, as Kafka's KafkaApis splits it: the
/// request to run with the allowed topics (`None` when no topic is allowed: nothing goes to the
/// coordinator) and the answer for the denied ones.
pub struct TxnCommitSplit {
    pub allowed: Option<Bytes>,
    pub denied: TxnOffsetCommitResponse,
}

/// Splits a TxnOffsetCommit (its id and group already allowed); `None`: every topic may be read.
pub fn split_txn_commit(
    session: &Session,
    version: i16,
    body: &Bytes,
) -> Result<Option<TxnCommitSplit>, HandlerError> {
    if !session.enforcing() {
        return Ok(None);
    }
    let api = ApiKey::TxnOffsetCommit;
    let mut request: TxnOffsetCommitRequest = decode(api, version, body.clone())?;
    let denied = take_unreadable(session, &mut request.topics, |t| t.name.as_str());
    if denied.is_empty() {
        return Ok(None);
    }
    let denied_request = TxnOffsetCommitRequest::default().with_topics(denied);
    let denied = txn_offset_commit_response(
        &denied_request,
        ResponseError::TopicAuthorizationFailed.code(),
    );
    let allowed = if request.topics.is_empty() {
        None
    } else {
        Some(encode(api, version, &request)?)
    };
    Ok(Some(TxnCommitSplit { allowed, denied }))
}

/// The TxnOffsetCommit answer (of the allowed topics, if any ran) with the denied topics added.
pub fn join_txn_commit(
    version: i16,
    committed: Option<Bytes>,
    denied: TxnOffsetCommitResponse,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::TxnOffsetCommit;
    let mut response: TxnOffsetCommitResponse = match committed {
        Some(body) => decode(api, version, body)?,
        None => TxnOffsetCommitResponse::default(),
    };
    response.topics.extend(denied.topics);
    encode(api, version, &response)
}
