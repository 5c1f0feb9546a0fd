//! WriteTxnMarkers (v1, Kafka's broker-to-broker API): the transaction coordinator on another
//! broker asks this broker, the leader of some of a transaction's partitions, to write the
//! transaction's commit or abort marker into them (`transactions::markers`). With an authorizer
//! it needs ClusterAction on the cluster, as replica fetches do (brokers' own traffic).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use ringbroker_protocol::frame::Request;

use crate::security::acl::{Operation, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;
use crate::transactions::markers::{self, Marker};

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: WriteTxnMarkersRequest = decode_body(request)?;
    let refused = session.cluster_refusal(Operation::ClusterAction);
    let mut response = WriteTxnMarkersResponse::default();
    for marker in &body.markers {
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in &marker.topics {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for &partition in &topic.partition_indexes {
                let code = match refused {
                    Some(code) => code,
                    // Only this broker's copy: a partition led elsewhere is refused, never
                    // forwarded again.
                    None => {
                        markers::write_on_this_broker(
                            shard,
                            Marker {
                                topic: topic.name.0.as_str(),
                                partition,
                                producer_id: marker.producer_id.0,
                                producer_epoch: marker.producer_epoch,
                                commit: marker.transaction_result,
                                coordinator_epoch: marker.coordinator_epoch,
                            },
                        )
                        .await
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        response.markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    respond(request, &response)
}
