//! Markers for partitions another broker leads: the coordinator sends that broker Kafka's
//! WriteTxnMarkers (v1) over a broker-to-broker connection (`replication::client`), and the
//! leader writes the marker as it would for its own coordinator (`handlers::write_txn_markers`).
//! Connections are kept per shard and leader broker and reused (by the transaction verification
//! too, `verification`); a failed one is dropped and the marker is retried by the caller (the
//! coordinator retries every marker until it is written).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::markers::Marker;
use crate::replication::client::{broker_address, BrokerConnection};
use crate::shard::Shard;

/// The WriteTxnMarkers version brokers exchange (Kafka 4 keeps only v1).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// How long a marker request may take on the leader (one durable append).
const REMOTE_MARKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per leader broker.
const IDLE_CONNECTIONS_PER_BROKER: usize = 4;

/// This shard's connections to other brokers for markers, by broker id.
#[derive(Default)]
pub struct MarkerLinks {
    idle: RefCell<HashMap<i32, Vec<BrokerConnection>>>,
}

impl MarkerLinks {
    /// An idle connection to `broker`, taken out of the pool (never borrowed across an await).
    fn take(&self, broker: i32) -> Option<BrokerConnection> {
        let mut idle = self.idle.borrow_mut();
        let pool = idle.get_mut(&broker)?;
        // A connection whose SASL session is ending is dropped: a new one authenticates again.
        pool.retain(|connection| !connection.session_ending());
        pool.pop()
    }

    fn put_back(&self, broker: i32, connection: BrokerConnection) {
        let mut idle = self.idle.borrow_mut();
        let pool = idle.entry(broker).or_default();
        if pool.len() < IDLE_CONNECTIONS_PER_BROKER {
            pool.push(connection);
        }
    }
}

/// A connection to `broker`, another broker: an idle one from this shard's pool, else a new one
/// (the transaction verification of `verification` shares the pool). Kafka's error code when
/// none can be had.
pub(super) async fn connection(shard: &Shard, broker: i32) -> Result<BrokerConnection, i16> {
    debug_assert_ne!(broker, shard.config.node_id);
    if let Some(connection) = shard.marker_links.take(broker) {
        return Ok(connection);
    }
    let peer = broker_address(shard, broker).map_err(|error| {
        tracing::debug!(broker, %error, "no address for a transaction request to another broker");
        ResponseError::NotLeaderOrFollower.code()
    })?;
    let security = &shard.config.security.inter_broker;
    BrokerConnection::connect(&peer, security)
        .await
        .map_err(|error| {
            tracing::warn!(broker, %error, "cannot reach a broker for a transaction request");
            ResponseError::CoordinatorNotAvailable.code()
        })
}

/// Gives a connection that answered back to the pool.
pub(super) fn put_back(shard: &Shard, broker: i32, connection: BrokerConnection) {
    shard.marker_links.put_back(broker, connection);
}

/// Writes `marker` through `leader`, another broker; a Kafka error code (0 on success).
pub async fn write_remote(shard: &Shard, leader: i32, marker: Marker<'_>) -> i16 {
    let not_available = ResponseError::CoordinatorNotAvailable.code();
    let mut connection = match connection(shard, leader).await {
        Ok(connection) => connection,
        Err(code) => return code,
    };
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(marker.topic.to_string())))
                .with_partition_indexes(vec![marker.partition])])]);
    let response = connection
        .send(&request, WRITE_TXN_MARKERS_VERSION, REMOTE_MARKER_TIMEOUT)
        .await;
    match response {
        Ok(response) => {
            put_back(shard, leader, connection);
            let code = response
                .markers
                .iter()
                .flat_map(|m| m.topics.iter())
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == marker.partition)
                .map_or(ResponseError::UnknownServerError.code(), |p| p.error_code);
            if code != 0 {
                tracing::debug!(
                    leader,
                    topic = marker.topic,
                    partition = marker.partition,
                    code,
                    "the partition leader refused a transaction marker"
                );
            }
            code
        }
        Err(error) => {
            tracing::warn!(leader, topic = marker.topic, partition = marker.partition, %error, "transaction marker request to the partition leader failed");
            not_available
        }
    }
}
