//! The transaction APIs: InitProducerId with a transactional id, AddPartitionsToTxn (v0-3 from
//! producers; v4-5, Kafka's broker-to-broker batch whose `verify_only` transactions ask whether
//! partitions are in a transaction, KIP-890), AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! DescribeTransactions and ListTransactions. A
//! transactional id is coordinated by the shard owning its `__transaction_state` partition; a
//! request arriving elsewhere travels there as its raw Kafka body (the group APIs' mesh message,
//! `GroupRequest`), and the encoded response body comes back. TxnOffsetCommit is the group
//! coordinator's, as in Kafka (clients send it to the group's coordinator): it travels to the
//! shard owning the group's `__consumer_offsets` partition instead.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::groups::{decode, encode, frame_body, route_to};
use super::not_coordinator;
use super::transactions_authorization as authorization;
use crate::metadata::owner_shard;
use crate::security::acl::{Operation, Session};
use crate::server::dispatch::HandlerError;
use crate::server::dispatch::Outcome;
use crate::shard::Shard;
use crate::transactions::{
    state_partition_for, ProducerIdAndEpoch, TxnCoordinator, TRANSACTION_STATE_TOPIC,
};

/// First versions that know PRODUCER_FENCED (older clients get INVALID_PRODUCER_EPOCH).
const INIT_PRODUCER_ID_FENCED_VERSION: i16 = 3;
const ADD_PARTITIONS_FENCED_VERSION: i16 = 2;
const ADD_OFFSETS_FENCED_VERSION: i16 = 2;
const END_TXN_FENCED_VERSION: i16 = 2;
/// First AddPartitionsToTxn version of Kafka's broker-to-broker form (several transactions, each
/// maybe `verify_only`), needing ClusterAction.
pub const ADD_PARTITIONS_BROKER_VERSION: i16 = 4;

/// Whether `api` is one of the transaction coordinator's.
pub fn is_transaction_api(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::InitProducerId
            | ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::TxnOffsetCommit
            | ApiKey::EndTxn
            | ApiKey::DescribeTransactions
    )
}

/// The shard coordinating `transactional_id`.
pub fn coordinator_shard(transactional_id: &str, shard_count: usize) -> usize {
    owner_shard(
        TRANSACTION_STATE_TOPIC,
        state_partition_for(transactional_id),
        shard_count,
    )
}

/// The transactional id of a request (routing key); DescribeTransactions is split by the caller.
pub fn transactional_id_of(
    api: ApiKey,
    version: i16,
    body: &Bytes,
) -> Result<String, HandlerError> {
    Ok(match api {
        ApiKey::InitProducerId => {
            let request: InitProducerIdRequest = decode(api, version, body.clone())?;
            request
                .transactional_id
                .map(|id| id.0.to_string())
                .unwrap_or_default()
        }
        ApiKey::AddPartitionsToTxn if version < ADD_PARTITIONS_BROKER_VERSION => {
            let request: AddPartitionsToTxnRequest = decode(api, version, body.clone())?;
            request.v3_and_below_transactional_id.0.to_string()
        }
        ApiKey::AddOffsetsToTxn => {
            let request: AddOffsetsToTxnRequest = decode(api, version, body.clone())?;
            request.transactional_id.0.to_string()
        }
        ApiKey::EndTxn => {
            let request: EndTxnRequest = decode(api, version, body.clone())?;
            request.transactional_id.0.to_string()
        }
        other => {
            return Err(HandlerError::Refused(format!(
                "{other:?} has no single transactional id"
            )))
        }
    })
}

/// Serves a transaction request from a client connection, once the client may (Kafka's checks:
/// Write on the transactional id, Read on the group of offsets sent to the transaction, and Read
/// on each topic of a TxnOffsetCommit).
pub async fn handle(
    shard: &Shard,
    request: &ringbroker_protocol::frame::Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let (api, version) = (request.api_key, request.version());
    let body = if api == ApiKey::AddPartitionsToTxn && version >= ADD_PARTITIONS_BROKER_VERSION {
        // Brokers' own traffic (Kafka's KafkaApis: ClusterAction, else one top-level error).
        match session.cluster_refusal(Operation::ClusterAction) {
            Some(code) => encode(
                api,
                version,
                &AddPartitionsToTxnResponse::default().with_error_code(code),
            )?,
            None => {
                let batch: AddPartitionsToTxnRequest = decode(api, version, request.body.clone())?;
                encode(api, version, &route_batch(shard, &batch, version).await?)?
            }
        }
    } else if api == ApiKey::ListTransactions {
        let listed = list_transactions(shard, version, request.body.clone()).await?;
        authorization::visible_transactions(session, api, version, listed)?
    } else if api == ApiKey::DescribeTransactions {
        let body = authorization::describable(session, api, version, request.body.clone())?;
        let described = route(shard, api, version, body.asked).await?;
        authorization::with_refused(api, version, described, body.refused)?
    } else if let Some(refused) = authorization::refusal(session, api, version, &request.body)? {
        refused
    } else if let Some(split) = (api == ApiKey::TxnOffsetCommit)
        .then(|| authorization::split_txn_commit(session, version, &request.body))
        .transpose()?
        .flatten()
    {
        let committed = match split.allowed {
            Some(allowed) => Some(route(shard, api, version, allowed).await?),
            None => None,
        };
        authorization::join_txn_commit(version, committed, split.denied)?
    } else {
        route(
            shard,
            request.api_key,
            request.version(),
            request.body.clone(),
        )
        .await?
    };
    Ok(Outcome::Reply(frame_body(request, body)?))
}

/// Routes a single-id transaction request to its coordinator shard; returns the response body.
pub async fn route(
    shard: &Shard,
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    if api == ApiKey::DescribeTransactions {
        return describe_transactions(shard, version, body).await;
    }
    if api == ApiKey::TxnOffsetCommit {
        return route_txn_offset_commit(shard, version, body).await;
    }
    if api == ApiKey::AddPartitionsToTxn && version >= ADD_PARTITIONS_BROKER_VERSION {
        let batch: AddPartitionsToTxnRequest = decode(api, version, body)?;
        return encode(api, version, &route_batch(shard, &batch, version).await?);
    }
    let id = transactional_id_of(api, version, &body)?;
    let owner = coordinator_shard(&id, shard.count);
    route_to(shard, owner, api, version, body).await
}

/// AddPartitionsToTxn v4+ (from another broker, or this broker's own verification): each
/// transaction of the batch goes to its coordinator shard alone; the answers are gathered.
pub async fn route_batch(
    shard: &Shard,
    batch: &AddPartitionsToTxnRequest,
    version: i16,
) -> Result<AddPartitionsToTxnResponse, HandlerError> {
    debug_assert!(version >= ADD_PARTITIONS_BROKER_VERSION);
    let api = ApiKey::AddPartitionsToTxn;
    let mut results = Vec::with_capacity(batch.transactions.len());
    for transaction in &batch.transactions {
        let owner = coordinator_shard(transaction.transactional_id.as_str(), shard.count);
        let one = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction.clone()]);
        let reply = route_to(shard, owner, api, version, encode(api, version, &one)?).await?;
        let answer: AddPartitionsToTxnResponse = decode(api, version, reply)?;
        results.extend(answer.results_by_transaction);
    }
    Ok(AddPartitionsToTxnResponse::default().with_results_by_transaction(results))
}

/// Routes a TxnOffsetCommit to its group's coordinator shard, when this broker coordinates the
/// group (NOT_COORDINATOR otherwise: the client finds the group's coordinator again).
async fn route_txn_offset_commit(
    shard: &Shard,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::TxnOffsetCommit;
    let request: TxnOffsetCommitRequest = decode(api, version, body.clone())?;
    let group = request.group_id.0.as_str();
    if !not_coordinator::coordinates(shard, group) {
        return encode(
            api,
            version,
            &txn_offset_commit_response(&request, ResponseError::NotCoordinator.code()),
        );
    }
    let owner = super::groups::coordinator_shard(group, shard.count);
    route_to(shard, owner, api, version, body).await
}

fn coordinator(shard: &Shard) -> Result<std::rc::Rc<TxnCoordinator>, i16> {
    shard
        .transactions()
        .ok_or(ResponseError::CoordinatorLoadInProgress.code())
}

/// This shard's coordinator, for a request about `transactional_id`: NOT_COORDINATOR when the
/// cluster's `__transaction_state` names another broker leader of the id's partition (the client
/// asks FindCoordinator again), COORDINATOR_LOAD_IN_PROGRESS while this broker, its new leader,
/// still loads the partition's states (the client retries here), as Kafka answers. Without that
/// topic (a broker alone) this broker coordinates every id.
fn coordinator_for(
    shard: &Shard,
    transactional_id: &str,
) -> Result<std::rc::Rc<TxnCoordinator>, i16> {
    let leader = shard
        .image()
        .topics
        .get(TRANSACTION_STATE_TOPIC)
        .map(|meta| meta.leader_of(state_partition_for(transactional_id)));
    if leader.is_some_and(|leader| leader != shard.config.node_id) {
        return Err(ResponseError::NotCoordinator.code());
    }
    let coordinator = coordinator(shard)?;
    if !coordinator.serves(transactional_id) {
        return Err(ResponseError::CoordinatorLoadInProgress.code());
    }
    Ok(coordinator)
}

/// Serves a transaction request on this (the coordinating) shard.
pub async fn serve_local(
    shard: &Shard,
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    match api {
        ApiKey::InitProducerId => {
            let request: InitProducerIdRequest = decode(api, version, body)?;
            let id = request
                .transactional_id
                .as_ref()
                .map(|id| id.0.to_string())
                .unwrap_or_default();
            let expected = (request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
            });
            let answer = match coordinator_for(shard, &id) {
                Ok(c) => {
                    c.init_producer_id(
                        shard,
                        &id,
                        request.transaction_timeout_ms,
                        expected,
                        version >= INIT_PRODUCER_ID_FENCED_VERSION,
                    )
                    .await
                }
                Err(code) => Err(code),
            };
            let response = match answer {
                Ok(p) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(p.producer_id))
                    .with_producer_epoch(p.producer_epoch),
                Err(code) => InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            };
            encode(api, version, &response)
        }
        ApiKey::AddPartitionsToTxn if version >= ADD_PARTITIONS_BROKER_VERSION => {
            let request: AddPartitionsToTxnRequest = decode(api, version, body)?;
            let mut results = Vec::with_capacity(request.transactions.len());
            for transaction in &request.transactions {
                results.push(broker_transaction(shard, transaction).await);
            }
            encode(
                api,
                version,
                &AddPartitionsToTxnResponse::default().with_results_by_transaction(results),
            )
        }
        ApiKey::AddPartitionsToTxn => {
            let request: AddPartitionsToTxnRequest = decode(api, version, body)?;
            let producer = ProducerIdAndEpoch {
                producer_id: request.v3_and_below_producer_id.0,
                producer_epoch: request.v3_and_below_producer_epoch,
            };
            let results = add_topics(
                shard,
                request.v3_and_below_transactional_id.as_str(),
                producer,
                &request.v3_and_below_topics,
                version >= ADD_PARTITIONS_FENCED_VERSION,
            )
            .await;
            encode(
                api,
                version,
                &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            )
        }
        ApiKey::AddOffsetsToTxn => {
            let request: AddOffsetsToTxnRequest = decode(api, version, body)?;
            let group = crate::transactions::offsets_group_partition(request.group_id.0.as_str());
            let producer = ProducerIdAndEpoch {
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
            };
            let code = match coordinator_for(shard, request.transactional_id.0.as_str()) {
                Ok(c) => c
                    .add_partitions(
                        request.transactional_id.0.as_str(),
                        producer,
                        &[group],
                        version >= ADD_OFFSETS_FENCED_VERSION,
                    )
                    .await
                    .err()
                    .unwrap_or(0),
                Err(code) => code,
            };
            encode(
                api,
                version,
                &AddOffsetsToTxnResponse::default().with_error_code(code),
            )
        }
        ApiKey::TxnOffsetCommit => {
            let request: TxnOffsetCommitRequest = decode(api, version, body)?;
            // As every group request: only once this shard has loaded the group's partition.
            if !not_coordinator::loaded_here(shard, request.group_id.0.as_str()) {
                let code = ResponseError::NotCoordinator.code();
                return encode(api, version, &txn_offset_commit_response(&request, code));
            }
            if let Err(code) = verify_txn_offset_commit(shard, &request).await {
                return encode(api, version, &txn_offset_commit_response(&request, code));
            }
            let response = shard.groups.txn_offset_commit(request, version).await;
            encode(api, version, &response)
        }
        ApiKey::EndTxn => {
            let request: EndTxnRequest = decode(api, version, body)?;
            let producer = ProducerIdAndEpoch {
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
            };
            let code = match coordinator_for(shard, request.transactional_id.0.as_str()) {
                Ok(c) => c
                    .end_txn(
                        shard,
                        request.transactional_id.0.as_str(),
                        producer,
                        request.committed,
                        version >= END_TXN_FENCED_VERSION,
                    )
                    .await
                    .err()
                    .unwrap_or(0),
                Err(code) => code,
            };
            encode(
                api,
                version,
                &EndTxnResponse::default().with_error_code(code),
            )
        }
        ApiKey::DescribeTransactions => {
            let request: DescribeTransactionsRequest = decode(api, version, body)?;
            let states = request
                .transactional_ids
                .iter()
                .map(|id| describe_one(shard, id.0.as_str()))
                .collect();
            encode(
                api,
                version,
                &DescribeTransactionsResponse::default().with_transaction_states(states),
            )
        }
        ApiKey::ListTransactions => {
            let request: ListTransactionsRequest = decode(api, version, body)?;
            let response = ListTransactionsResponse::default()
                .with_transaction_states(list_local(shard, &request));
            encode(api, version, &response)
        }
        other => Err(HandlerError::Refused(format!(
            "{other:?} is not a transaction api"
        ))),
    }
}

/// KIP-890 for TxnOffsetCommit (`transaction.partition.verification.enable`): the group's
/// `__consumer_offsets` partition must be in the producer's transaction (AddOffsetsToTxn), as
/// Kafka's group coordinator asks the transaction coordinator before writing the offsets. Asked
/// on every TxnOffsetCommit (usually one per transaction). Errors as Kafka's group coordinator
/// normalizes them: INVALID_TXN_STATE when the group was not added; retriable ones as the
/// COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR clients retry.
async fn verify_txn_offset_commit(
    shard: &Shard,
    request: &TxnOffsetCommitRequest,
) -> Result<(), i16> {
    if !shard.config.transaction_partition_verification {
        return Ok(());
    }
    let (topic, partition) =
        crate::transactions::offsets_group_partition(request.group_id.0.as_str());
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let code = crate::transactions::verification::ask_coordinator(
        shard,
        request.transactional_id.as_str(),
        producer,
        &topic,
        partition,
    )
    .await;
    let unavailable = [
        ResponseError::NetworkException.code(),
        ResponseError::NotEnoughReplicas.code(),
        ResponseError::UnknownTopicOrPartition.code(),
        ResponseError::RequestTimedOut.code(),
    ];
    Err(match code {
        0 => return Ok(()),
        code if unavailable.contains(&code) => ResponseError::CoordinatorNotAvailable.code(),
        code if code == ResponseError::NotLeaderOrFollower.code()
            || code == ResponseError::KafkaStorageError.code() =>
        {
            ResponseError::NotCoordinator.code()
        }
        code => code,
    })
}

/// TxnOffsetCommit's answer: `code` for every partition of the request.
pub(super) fn txn_offset_commit_response(
    request: &TxnOffsetCommitRequest,
    code: i16,
) -> TxnOffsetCommitResponse {
    let codes = request
        .topics
        .iter()
        .map(|t| vec![code; t.partitions.len()])
        .collect();
    crate::groups::responses::txn_offset_commit_response(request, codes)
}

/// One transaction of an AddPartitionsToTxn v4+ batch, on its coordinator shard: verified
/// (`verify_only`) or added as a producer's v3 request is (a v4 sender knows PRODUCER_FENCED).
async fn broker_transaction(
    shard: &Shard,
    transaction: &AddPartitionsToTxnTransaction,
) -> AddPartitionsToTxnResult {
    let id = transaction.transactional_id.as_str();
    let producer = ProducerIdAndEpoch {
        producer_id: transaction.producer_id.0,
        producer_epoch: transaction.producer_epoch,
    };
    let topic_results = if !transaction.verify_only {
        add_topics(shard, id, producer, &transaction.topics, true).await
    } else {
        let partitions: Vec<(String, i32)> = transaction
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
            .collect();
        let verified = if id.is_empty() {
            Err(ResponseError::InvalidRequest.code())
        } else {
            coordinator_for(shard, id).and_then(|c| c.verify_partitions(id, producer, &partitions))
        };
        let mut codes = match verified {
            Ok(codes) => codes.into_iter(),
            Err(code) => vec![code; partitions.len()].into_iter(),
        };
        topic_results(&transaction.topics, |_| codes.next().unwrap_or(0))
    };
    AddPartitionsToTxnResult::default()
        .with_transactional_id(transaction.transactional_id.clone())
        .with_topic_results(topic_results)
}

/// Each partition of `topics` answered with `code_of(partition)`, in request order.
fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    mut code_of: impl FnMut(&(&str, i32)) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|topic| {
            let results_by_partition = topic
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code_of(&(topic.name.0.as_str(), p)))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(results_by_partition)
        })
        .collect()
}

/// Adds `topics` to the producer's transaction (AddPartitionsToTxn v0-3, or a v4+ transaction
/// without `verify_only`).
async fn add_topics(
    shard: &Shard,
    transactional_id: &str,
    producer: ProducerIdAndEpoch,
    topics: &[AddPartitionsToTxnTopic],
    knows_fenced: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let table = shard.topic_table();
    let exists = |topic: &str, p: i32| {
        table
            .get(topic)
            .is_some_and(|meta| (0..meta.partitions).contains(&p))
    };
    let unknown = topics
        .iter()
        .any(|t| t.partitions.iter().any(|&p| !exists(t.name.0.as_str(), p)));
    // Like Kafka: unknown partitions get UNKNOWN_TOPIC_OR_PARTITION and the others
    // OPERATION_NOT_ATTEMPTED; otherwise one outcome for all.
    if unknown {
        return topic_results(topics, |&(t, p)| {
            if exists(t, p) {
                ResponseError::OperationNotAttempted.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            }
        });
    }
    let list: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
        .collect();
    let code = match coordinator_for(shard, transactional_id) {
        Ok(c) => c
            .add_partitions(transactional_id, producer, &list, knows_fenced)
            .await
            .err()
            .unwrap_or(0),
        Err(code) => code,
    };
    topic_results(topics, |_| code)
}

fn describe_one(shard: &Shard, id: &str) -> TransactionState {
    let base = TransactionState::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())));
    let c = match coordinator_for(shard, id) {
        Ok(c) => c,
        Err(code) => return base.with_error_code(code),
    };
    let Some(txn) = c.describe(id) else {
        return base.with_error_code(ResponseError::TransactionalIdNotFound.code());
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    base.with_transaction_state(txn.status.name().into())
        .with_transaction_timeout_ms(txn.timeout_ms)
        .with_transaction_start_time_ms(txn.start_ms)
        .with_producer_id(ProducerId(txn.producer_id))
        .with_producer_epoch(txn.producer_epoch)
        .with_topics(topics)
}

fn list_local(shard: &Shard, request: &ListTransactionsRequest) -> Vec<ListedTransaction> {
    let Ok(c) = coordinator(shard) else {
        return Vec::new();
    };
    let now = crate::groups::now_ms();
    c.list()
        .into_iter()
        .filter(|t| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == t.status.name())
        })
        .filter(|t| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == t.producer_id)
        })
        .filter(|t| {
            request.duration_filter < 0
                || (t.start_ms >= 0 && now - t.start_ms >= request.duration_filter)
        })
        .map(|t| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    t.transactional_id.clone(),
                )))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(t.status.name().into())
        })
        .collect()
}

/// DescribeTransactions: each id asked of its coordinator shard.
async fn describe_transactions(
    shard: &Shard,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::DescribeTransactions;
    let request: DescribeTransactionsRequest = decode(api, version, body)?;
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in &request.transactional_ids {
        let owner = coordinator_shard(id.0.as_str(), shard.count);
        let one = DescribeTransactionsRequest::default().with_transactional_ids(vec![id.clone()]);
        let reply = route_to(shard, owner, api, version, encode(api, version, &one)?).await?;
        let response: DescribeTransactionsResponse = decode(api, version, reply)?;
        states.extend(response.transaction_states);
    }
    encode(
        api,
        version,
        &DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}

/// ListTransactions: every shard's coordinator asked, answers merged.
pub async fn list_transactions(
    shard: &Shard,
    version: i16,
    body: Bytes,
) -> Result<Bytes, HandlerError> {
    let api = ApiKey::ListTransactions;
    let mut states = Vec::new();
    for owner in 0..shard.count {
        let reply = route_to(shard, owner, api, version, body.clone()).await?;
        let response: ListTransactionsResponse = decode(api, version, reply)?;
        states.extend(response.transaction_states);
    }
    encode(
        api,
        version,
        &ListTransactionsResponse::default().with_transaction_states(states),
    )
}
