//! Transaction markers: the commit or abort control batch the coordinator writes into every
//! partition of a finished transaction (Kafka's WriteTxnMarkers; inside one broker a mesh message
//! to the partition's owning shard, schema `TxnMarkerRequest`). The owner appends the batch and
//! updates the partition's transaction state in the same synchronous step, so the last stable
//! offset moves past the transaction exactly when its marker is in the log. A `__consumer_offsets`
//! partition's marker is its group coordinator's to write: it ends the producer's pending offsets.

use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::{crc32c_of, CRC_START};
use ringbroker_protocol::records::{BatchBuilder, Compression, Record, RecordsError};
use ringbroker_schema::{Payload, TxnMarkerRequest, TxnMarkerRequestArgs};

use super::partition_state::{CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT};
use crate::admin::{self, AdminOutcome};
use crate::errors::storage_error_code;
use crate::groups::{TxnMarkerRecord, OFFSETS_TOPIC_NAME};
use crate::metadata::NO_LEADER;
use crate::shard::Shard;

/// Attribute bit of a control batch (Kafka's `isControlBatch`).
const CONTROL_ATTRIBUTE: u8 = 0x20;
/// Byte offset of the CRC in a v2 batch header.
const CRC_OFFSET: usize = 17;

/// One partition's marker.
#[derive(Debug, Clone, Copy)]
pub struct Marker<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// A control batch holding one `EndTransactionMarker` record (key: version 0 and the control
/// type; value: version 0 and the coordinator epoch), as Kafka writes it.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<Vec<u8>, RecordsError> {
    let control_type = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = [0u8; 4];
    key[2..4].copy_from_slice(&control_type.to_be_bytes());
    let mut value = [0u8; 6];
    value[2..6].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None);
    builder.set_producer(producer_id, producer_epoch, -1);
    builder.set_transactional(true);
    builder.push(&Record {
        key: Some(&key),
        value: Some(&value),
        headers: &[],
        timestamp_ms: crate::groups::now_ms(),
    })?;
    let mut batch = builder.finish()?.to_vec();
    // The low byte of the big-endian attributes holds the control bit; the CRC covers it.
    batch[CRC_START + 1] |= CONTROL_ATTRIBUTE;
    let crc = crc32c_of(&batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(batch)
}

/// Appends a marker to a partition this shard owns and leads; a Kafka error code (0 on
/// success). A follower's copy is written by replication only: NOT_LEADER_OR_FOLLOWER there.
pub async fn write_local(shard: &Shard, marker: Marker<'_>) -> i16 {
    if marker.topic == OFFSETS_TOPIC_NAME {
        return write_offsets_marker(shard, marker).await;
    }
    let Some(log) = shard.log(marker.topic, marker.partition) else {
        return ResponseError::UnknownTopicOrPartition.code();
    };
    if let Err(code) = shard.check_leader(marker.topic, marker.partition) {
        return code;
    }
    let leader_epoch = shard.leader_epoch(marker.topic, marker.partition);
    if !ready_leader(shard, marker) {
        // Leader in the image, but not ready yet (its producer state is being rebuilt).
        return ResponseError::NotLeaderOrFollower.code();
    }
    let batch = match control_batch(
        marker.producer_id,
        marker.producer_epoch,
        marker.commit,
        marker.coordinator_epoch,
    ) {
        Ok(batch) => batch,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a transaction marker");
            return ResponseError::UnknownServerError.code();
        }
    };
    // Offset and state change in one synchronous step (no await in between): a fetch sees the
    // marker and the moved LSO together once the append is durable.
    let offset = log.log_end_offset();
    shard.txn_partitions.note_marker(
        marker.topic,
        marker.partition,
        marker.producer_id,
        marker.producer_epoch,
        marker.commit,
        offset,
    );
    match log.append(&batch, leader_epoch).await {
        Ok(_) => 0,
        Err(e) => {
            tracing::warn!(topic = marker.topic, partition = marker.partition, error = %e, "writing a transaction marker failed");
            storage_error_code(&e)
        }
    }
}

/// Whether this broker leads the marker's partition in the image's epoch with its state ready
/// (always for a partition with one replica).
fn ready_leader(shard: &Shard, marker: Marker<'_>) -> bool {
    !shard.is_replicated(marker.topic, marker.partition)
        || shard.replication.leads(
            marker.topic,
            marker.partition,
            shard.leader_epoch(marker.topic, marker.partition),
        )
}

/// A marker for a `__consumer_offsets` partition: its group coordinator writes it in the order of
/// its log and commits or drops the producer's pending offsets there (Kafka's
/// `handleTxnCompletion`); answered once it is on every in-sync replica.
async fn write_offsets_marker(shard: &Shard, marker: Marker<'_>) -> i16 {
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let leader = shard
        .image()
        .topics
        .get(OFFSETS_TOPIC_NAME)
        .map(|meta| meta.leader_of(marker.partition));
    // Without the topic in the image (a broker alone) this broker coordinates every group.
    if leader.is_some_and(|leader| leader != shard.config.node_id) {
        return not_leader;
    }
    if !ready_leader(shard, marker) {
        // Leader in the image, but its groups are not loaded yet.
        return not_leader;
    }
    let record = TxnMarkerRecord {
        partition: marker.partition,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        commit: marker.commit,
        coordinator_epoch: marker.coordinator_epoch,
    };
    match shard.groups.write_txn_marker(record).await {
        Ok(()) => 0,
        Err(error) => {
            // Leadership moved or too few in-sync replicas, mostly: the coordinator retries.
            tracing::warn!(partition = marker.partition, %error, "transaction marker of an offsets partition not written");
            not_leader
        }
    }
}

/// Writes a marker through the partition's leader: this broker's owning shard, or another broker
/// (Kafka's WriteTxnMarkers, `remote_markers`).
pub async fn write(shard: &Shard, marker: Marker<'_>) -> i16 {
    let leader = shard
        .image()
        .topics
        .get(marker.topic)
        .map(|meta| meta.leader_of(marker.partition));
    match leader {
        Some(leader) if leader >= 0 && leader != shard.config.node_id => {
            return super::remote_markers::write_remote(shard, leader, marker).await;
        }
        Some(NO_LEADER) => return ResponseError::NotLeaderOrFollower.code(),
        _ => {}
    }
    write_on_this_broker(shard, marker).await
}

/// Writes a marker on this broker, on the shard owning the partition.
pub async fn write_on_this_broker(shard: &Shard, marker: Marker<'_>) -> i16 {
    let owner = shard.owner_of(marker.topic, marker.partition);
    if owner == shard.id {
        return write_local(shard, marker).await;
    }
    let reply = shard
        .mesh
        .call(owner, 128 + marker.topic.len(), |fbb| {
            let topic = fbb.create_string(marker.topic);
            let request = TxnMarkerRequest::create(
                fbb,
                &TxnMarkerRequestArgs {
                    topic: Some(topic),
                    partition: marker.partition,
                    producer_id: marker.producer_id,
                    producer_epoch: marker.producer_epoch,
                    commit: marker.commit,
                    coordinator_epoch: marker.coordinator_epoch,
                },
            );
            (Payload::TxnMarkerRequest, request.as_union_value())
        })
        .await;
    match reply {
        Ok(message) => message
            .envelope()
            .ok()
            .and_then(|env| env.payload_as_ack())
            .map_or(ResponseError::UnknownServerError.code(), |ack| {
                ack.error_code()
            }),
        Err(e) => {
            tracing::warn!(topic = marker.topic, partition = marker.partition, error = %e, "cross-shard marker failed");
            ResponseError::NotLeaderOrFollower.code()
        }
    }
}

/// Serves a marker that arrived over the mesh (this shard owns the partition).
pub async fn serve_remote(
    shard: &Shard,
    from: usize,
    correlation: u64,
    request: TxnMarkerRequest<'_>,
) {
    let topic = request.topic().unwrap_or_default().to_string();
    let code = write_local(
        shard,
        Marker {
            topic: &topic,
            partition: request.partition(),
            producer_id: request.producer_id(),
            producer_epoch: request.producer_epoch(),
            commit: request.commit(),
            coordinator_epoch: request.coordinator_epoch(),
        },
    )
    .await;
    let outcome = if code == 0 {
        AdminOutcome::ok()
    } else {
        AdminOutcome {
            error_code: code,
            message: None,
        }
    };
    admin::reply_ack(shard, from, correlation, &outcome).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::{validate_log_batch, BatchHeader};

    #[test]
    fn a_marker_is_a_valid_control_batch_of_the_producer() {
        let batch = control_batch(9, 3, true, 0).unwrap();
        validate_log_batch(&batch).unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch), (9, 3));
        assert_eq!(
            ringbroker_protocol::records::control_record_type(&batch),
            Some(CONTROL_TYPE_COMMIT)
        );
    }
}
