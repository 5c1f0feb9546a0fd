//! KIP-890 (part 1) on the writing side: before a transaction's first batch on a partition, the
//! partition's leader asks the transaction coordinator whether the producer added that partition
//! to its transaction (AddPartitionsToTxn v4 with `verify_only`, as Kafka 3.6+ brokers do), and
//! the group coordinator asks the same of a group's `__consumer_offsets` partition before a
//! TxnOffsetCommit. A write outside the transaction (a client bug, or a retry arriving after the
//! transaction ended) is refused instead of opening a transaction no marker will ever end (a
//! "hanging transaction": it pins the partition's last stable offset, and read_committed
//! consumers stop there). `transaction.partition.verification.enable=false` turns it off.
//!
//! The coordinator's answer is kept in the partition's transaction state (`partition_state`)
//! until the transaction's marker, so the rest of the transaction's batches cost one lookup; the
//! append re-checks it synchronously (`before_append`), so a marker written while the question
//! was out is not overtaken. One producer's batches waiting for an answer on a partition go
//! through one at a time, in arrival order, so pipelined batches keep their sequence order.
//!
//! The coordinator is asked where it is: a shard of this broker over the mesh
//! (`handlers::transactions::route_batch`), or another broker over the inter-broker connections
//! the markers use (`remote_markers`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use glommio::sync::{Semaphore, StaticPermit};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::batches;

use super::config::TRANSACTION_STATE_TOPIC;
use super::coordinator::ProducerIdAndEpoch;
use super::log_store::state_partition_for;
use super::remote_markers;
use crate::server::handlers::transactions::{route_batch, ADD_PARTITIONS_BROKER_VERSION};
use crate::shard::Shard;

/// How long a coordinator on another broker may take to answer (it reads memory: a slow answer
/// means a broker in trouble, and the producer retries).
const VERIFICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Batches waiting for a verification on this shard, by topic, then (partition, producer id):
/// the turn they take it in. Entries exist only while some batch waits or verifies. Nested so the
/// hot path looks a topic up by `&str`, without allocating.
#[derive(Default)]
pub struct Verifications {
    turns: RefCell<HashMap<String, TopicTurns>>,
}

/// One topic's turns, by (partition, producer id).
type TopicTurns = HashMap<(i32, i64), Rc<Semaphore>>;

impl Verifications {
    fn waiting(&self, topic: &str, key: (i32, i64)) -> bool {
        self.turns
            .borrow()
            .get(topic)
            .is_some_and(|t| t.contains_key(&key))
    }
}

/// A batch's turn, held until its append is done (so a later batch of the producer cannot
/// overtake it); frees the entry when no other batch waits.
pub struct Turn<'a> {
    verifications: &'a Verifications,
    topic: String,
    key: (i32, i64),
    semaphore: Rc<Semaphore>,
    permit: Option<StaticPermit>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.permit.take();
        // The map and this turn: nobody else waits.
        if Rc::strong_count(&self.semaphore) == 2 {
            let mut turns = self.verifications.turns.borrow_mut();
            if let Some(topic) = turns.get_mut(&self.topic) {
                topic.remove(&self.key);
                if topic.is_empty() {
                    turns.remove(&self.topic);
                }
            }
        }
    }
}

/// The producer of the transactional batches of `records` (one produce request's records for a
/// partition come from one producer), if any.
fn transactional_producer(records: &[u8]) -> Option<ProducerIdAndEpoch> {
    batches(records)
        .flatten()
        .find(|(header, _)| header.is_transactional() && !header.is_control())
        .map(|(header, _)| ProducerIdAndEpoch {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
        })
}

/// Produce path, on the partition's owning shard before its append: verifies the transaction of
/// transactional `records` with its coordinator unless known here. `Ok(Some(turn))` must be held
/// until the append is done; the error is the producer's (Kafka's translation for produce).
pub async fn before_append<'a>(
    shard: &'a Shard,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Result<Option<Turn<'a>>, i16> {
    // Non-transactional producers send no transactional id: they stop here.
    let Some(transactional_id) = transactional_id else {
        return Ok(None);
    };
    if !shard.config.transaction_partition_verification {
        return Ok(None);
    }
    let Some(producer) = transactional_producer(records) else {
        return Ok(None);
    };
    let known = || {
        shard.txn_partitions.in_transaction(
            topic,
            partition,
            producer.producer_id,
            producer.producer_epoch,
        )
    };
    let verifications = &shard.txn_verifications;
    // The hot path: the transaction is known here and no earlier batch of it waits.
    let key = (partition, producer.producer_id);
    if known() && !verifications.waiting(topic, key) {
        return Ok(None);
    }
    let semaphore = verifications
        .turns
        .borrow_mut()
        .entry(topic.to_string())
        .or_default()
        .entry(key)
        .or_insert_with(|| Rc::new(Semaphore::new(1)))
        .clone();
    let mut turn = Turn {
        verifications,
        topic: topic.to_string(),
        key,
        semaphore: semaphore.clone(),
        permit: None,
    };
    turn.permit = Some(
        semaphore
            .acquire_static_permit(1)
            .await
            .map_err(|_| ResponseError::NotEnoughReplicas.code())?,
    );
    if known() {
        return Ok(Some(turn));
    }
    let code = ask_coordinator(shard, transactional_id, producer, topic, partition).await;
    if code != 0 {
        tracing::debug!(
            topic,
            partition,
            producer_id = producer.producer_id,
            code,
            "transactional produce not verified"
        );
        return Err(produce_error(code));
    }
    shard.txn_partitions.note_verified(
        topic,
        partition,
        producer.producer_id,
        producer.producer_epoch,
    );
    Ok(Some(turn))
}

/// Kafka's translation of a verification error for a producer (ReplicaManager, produce v0-11):
/// retriable coordinator errors become NOT_ENOUGH_REPLICAS, which every client retries without a
/// metadata refresh; INVALID_TXN_STATE and the rest stay.
pub fn produce_error(code: i16) -> i16 {
    let retriable = [
        ResponseError::NetworkException.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::ConcurrentTransactions.code(),
    ];
    if retriable.contains(&code) {
        ResponseError::NotEnoughReplicas.code()
    } else {
        code
    }
}

/// Asks the coordinator of `transactional_id` whether `topic`/`partition` is in `producer`'s
/// transaction: 0 if so, else the error as Kafka's AddPartitionsToTxnManager hands it on
/// (PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, which producers expect here; a refused
/// ClusterAction as INVALID_TXN_STATE).
pub async fn ask_coordinator(
    shard: &Shard,
    transactional_id: &str,
    producer: ProducerIdAndEpoch,
    topic: &str,
    partition: i32,
) -> i16 {
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.producer_epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])]),
    ]);
    // Kafka's coordinator of an id: the leader of its `__transaction_state` partition; without
    // that topic (a broker alone) this broker coordinates every id.
    let leader = shard
        .image()
        .topics
        .get(TRANSACTION_STATE_TOPIC)
        .map(|meta| meta.leader_of(state_partition_for(transactional_id)));
    let answer = match leader {
        None => ask_here(shard, &request).await,
        Some(leader) if leader == shard.config.node_id => ask_here(shard, &request).await,
        Some(leader) if leader < 0 => Err(ResponseError::CoordinatorNotAvailable.code()),
        Some(leader) => ask_broker(shard, leader, &request).await,
    };
    match answer {
        Ok(response) => partition_code(&response, topic, partition),
        Err(code) => code,
    }
}

async fn ask_here(
    shard: &Shard,
    request: &AddPartitionsToTxnRequest,
) -> Result<AddPartitionsToTxnResponse, i16> {
    // Boxed: a TxnOffsetCommit's verification runs inside the mesh's request serving, which
    // this route enters again (on the coordinator's shard).
    let routed: std::pin::Pin<Box<dyn std::future::Future<Output = _> + '_>> =
        Box::pin(route_batch(shard, request, ADD_PARTITIONS_BROKER_VERSION));
    routed.await.map_err(|error| {
        tracing::warn!(%error, "transaction verification on this broker failed");
        ResponseError::CoordinatorNotAvailable.code()
    })
}

async fn ask_broker(
    shard: &Shard,
    broker: i32,
    request: &AddPartitionsToTxnRequest,
) -> Result<AddPartitionsToTxnResponse, i16> {
    let mut connection = remote_markers::connection(shard, broker).await?;
    match connection
        .send(request, ADD_PARTITIONS_BROKER_VERSION, VERIFICATION_TIMEOUT)
        .await
    {
        Ok(response) => {
            remote_markers::put_back(shard, broker, connection);
            Ok(response)
        }
        Err(error) => {
            tracing::warn!(broker, %error, "transaction verification request to the coordinator failed");
            Err(ResponseError::NetworkException.code())
        }
    }
}

/// The answer for one partition, as Kafka's AddPartitionsToTxnManager hands it on.
fn partition_code(response: &AddPartitionsToTxnResponse, topic: &str, partition: i32) -> i16 {
    if response.error_code != 0 {
        // Kafka never shows a producer CLUSTER_AUTHORIZATION_FAILED for the brokers' own request.
        return if response.error_code == ResponseError::ClusterAuthorizationFailed.code() {
            ResponseError::InvalidTxnState.code()
        } else {
            response.error_code
        };
    }
    let code = response
        .results_by_transaction
        .iter()
        .flat_map(|t| t.topic_results.iter())
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| t.results_by_partition.iter())
        .find(|p| p.partition_index == partition)
        .map_or(ResponseError::UnknownServerError.code(), |p| {
            p.partition_error_code
        });
    if code == ResponseError::ProducerFenced.code() {
        ResponseError::InvalidProducerEpoch.code()
    } else if code == ResponseError::TransactionAbortable.code() {
        // Only clients of transaction version 2 know it (KIP-890 part 2).
        ResponseError::InvalidTxnState.code()
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };

    fn answer(code: i16) -> AddPartitionsToTxnResponse {
        AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
            AddPartitionsToTxnResult::default().with_topic_results(vec![
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_results_by_partition(vec![AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(3)
                        .with_partition_error_code(code)]),
            ]),
        ])
    }

    #[test]
    fn coordinator_answers_are_handed_on_as_kafka_does() {
        let fenced = ResponseError::ProducerFenced.code();
        let invalid_state = ResponseError::InvalidTxnState.code();
        assert_eq!(partition_code(&answer(0), "t", 3), 0);
        assert_eq!(
            partition_code(&answer(fenced), "t", 3),
            ResponseError::InvalidProducerEpoch.code()
        );
        assert_eq!(
            partition_code(&answer(invalid_state), "t", 3),
            invalid_state
        );
        // A partition the answer does not name is no confirmation.
        assert_ne!(partition_code(&answer(0), "t", 4), 0);
        let refused = AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        assert_eq!(partition_code(&refused, "t", 3), invalid_state);
    }

    #[test]
    fn retriable_coordinator_errors_reach_producers_as_not_enough_replicas() {
        let not_enough = ResponseError::NotEnoughReplicas.code();
        for code in [
            ResponseError::NetworkException.code(),
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::CoordinatorNotAvailable.code(),
            ResponseError::NotCoordinator.code(),
            ResponseError::ConcurrentTransactions.code(),
        ] {
            assert_eq!(produce_error(code), not_enough);
        }
        for code in [
            ResponseError::InvalidTxnState.code(),
            ResponseError::InvalidProducerEpoch.code(),
            ResponseError::InvalidProducerIdMapping.code(),
        ] {
            assert_eq!(produce_error(code), code);
        }
    }
}
