//! The transactional producer's calls (transaction protocol version 1, what every broker serves and
//! the Java client falls back to): FindCoordinator for a transactional id, InitProducerId,
//! AddPartitionsToTxn, a transactional Produce of one batch per partition, EndTxn. Each is one
//! blocking round trip, as a transaction's steps are for a real producer.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest,
    ProduceRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use ringbroker_protocol::batch;

use crate::client::admin::topic_name;
use crate::client::connection::Connection;
use crate::client::versions::{
    ADD_PARTITIONS_TO_TXN, END_TXN, FIND_COORDINATOR, INIT_PRODUCER_ID, PRODUCE,
};
use crate::error::{BenchError, Result};

/// FindCoordinator's key type for a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Kafka's COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR /
/// CONCURRENT_TRANSACTIONS: retriable answers while a coordinator starts (Apache Kafka creates
/// `__transaction_state` on the first FindCoordinator and loads it) or finishes the previous
/// transaction. One broker is its own coordinator, so asking it again is the retry.
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];
/// Attempts of a call that gets a retriable answer, and the pause between them (5 s in all). The
/// pause is short on purpose: Apache Kafka answers the next transaction's AddPartitionsToTxn with
/// CONCURRENT_TRANSACTIONS until the previous one's markers are written, and the bench measures
/// when the broker is ready, not a client's back-off (the Java client waits 20 ms there).
const RETRIES: u32 = 5_000;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
/// Attribute bit of a transactional batch.
const TRANSACTIONAL_ATTRIBUTE: i16 = 0x10;
/// Offsets of the idempotence fields in a v2 batch header (all before the CRC-covered range ends,
/// so the CRC is recomputed after patching).
const ATTRIBUTES_OFFSET: usize = 21;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;

/// A producer id and epoch, as InitProducerId hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// Producer id.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
}

/// The coordinator of `transactional_id` as "host:port".
pub fn find_coordinator(conn: &mut Connection, transactional_id: &str) -> Result<String> {
    let version = conn.versions().pick(FIND_COORDINATOR)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_owned()))
        .with_key_type(KEY_TYPE_TRANSACTION);
    let response = call_retrying(conn, &request, version, "FindCoordinator", |r| r.error_code)?;
    Ok(format!("{}:{}", response.host, response.port))
}

/// InitProducerId with a transactional id: a producer id and a fresh epoch.
pub fn init_producer_id(
    conn: &mut Connection,
    transactional_id: &str,
    timeout_ms: i32,
) -> Result<ProducerIdentity> {
    let version = conn.versions().pick(INIT_PRODUCER_ID)?;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(transactional_id_of(transactional_id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response = call_retrying(conn, &request, version, "InitProducerId", |r| r.error_code)?;
    Ok(ProducerIdentity {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    })
}

/// AddPartitionsToTxn for `partitions` of `topic`; the first call of a transaction starts it.
pub fn add_partitions(
    conn: &mut Connection,
    transactional_id: &str,
    producer: ProducerIdentity,
    topic: &str,
    partitions: &[i32],
) -> Result<()> {
    let version = conn.versions().pick(ADD_PARTITIONS_TO_TXN)?;
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(transactional_id_of(transactional_id))
        .with_v3_and_below_producer_id(ProducerId(producer.id))
        .with_v3_and_below_producer_epoch(producer.epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions.to_vec())]);
    call_retrying(conn, &request, version, "AddPartitionsToTxn", |r| {
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .find(|&code| code != 0)
            .unwrap_or(r.error_code)
    })?;
    Ok(())
}

/// One Produce request (acks=all) with one transactional batch per partition; the batches come
/// from `patch_transactional`.
pub fn produce(
    conn: &mut Connection,
    transactional_id: &str,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    timeout_ms: i32,
) -> Result<()> {
    let version = conn.versions().pick(PRODUCE)?;
    let request = ProduceRequest::default()
        .with_transactional_id(Some(transactional_id_of(transactional_id)))
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(
                batches
                    .into_iter()
                    .map(|(partition, records)| {
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records))
                    })
                    .collect(),
            )]);
    let response = conn.call(&request, version)?;
    for topic in &response.responses {
        for p in &topic.partition_responses {
            if p.error_code != 0 {
                return Err(BenchError::broker(
                    p.error_code,
                    format!("transactional Produce to partition {}", p.index),
                ));
            }
        }
    }
    Ok(())
}

/// EndTxn: commit (or abort) the open transaction.
pub fn end_txn(
    conn: &mut Connection,
    transactional_id: &str,
    producer: ProducerIdentity,
    commit: bool,
) -> Result<()> {
    let version = conn.versions().pick(END_TXN)?;
    let request = EndTxnRequest::default()
        .with_transactional_id(transactional_id_of(transactional_id))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    call_retrying(conn, &request, version, "EndTxn", |r| r.error_code)?;
    Ok(())
}

/// Makes a built (non-idempotent) batch transactional: producer id, epoch, base sequence and the
/// transactional attribute, then the CRC32C again.
pub fn patch_transactional(batch: &mut [u8], producer: ProducerIdentity, base_sequence: i32) {
    debug_assert!(batch::BatchHeader::parse(batch).is_ok());
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]);
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
        .copy_from_slice(&(attributes | TRANSACTIONAL_ATTRIBUTE).to_be_bytes());
    batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer.id.to_be_bytes());
    batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer.epoch.to_be_bytes());
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = batch::crc32c_of(batch);
    batch[batch::CRC_START - 4..batch::CRC_START].copy_from_slice(&crc.to_be_bytes());
}

fn transactional_id_of(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

/// One call, repeated while the answer's error (`error_of`) is retriable.
fn call_retrying<R: Request>(
    conn: &mut Connection,
    request: &R,
    version: i16,
    what: &str,
    error_of: impl Fn(&R::Response) -> i16,
) -> Result<R::Response> {
    let mut attempt = 0;
    loop {
        let response = conn.call(request, version)?;
        let code = error_of(&response);
        if code == 0 {
            return Ok(response);
        }
        attempt += 1;
        if !RETRIABLE.contains(&code) || attempt >= RETRIES {
            return Err(BenchError::broker(code, what));
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::batch_view::tests::built_batch;
    use ringbroker_protocol::batch::{validate_batch, Compression};

    #[test]
    fn patched_batches_are_valid_and_transactional() {
        let mut b = built_batch(4, b"", &[9u8; 40], Compression::None);
        let producer = ProducerIdentity { id: 77, epoch: 3 };
        patch_transactional(&mut b, producer, 12);
        let h = validate_batch(&b).expect("CRC recomputed");
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 3, 12)
        );
        assert_eq!(h.record_count, 4);
    }
}
