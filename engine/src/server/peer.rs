//! Serves what other shards send over the mesh: replies wake the waiting request; requests are
//! handled in arrival order (each as its own task, started in that order).

use std::rc::Rc;

use futures::StreamExt;
use glommio::channels::channel_mesh::Receivers;
use ringbroker_schema::Payload;

use crate::admin::{self, AdminOutcome};
use crate::shard::mesh::MeshMessage;
use crate::shard::Shard;
use crate::{fetch, offsets, produce};

pub fn spawn_receivers(shard: Rc<Shard>, mut receivers: Receivers<MeshMessage>) {
    for (peer, mut stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(message) = stream.next().await {
                let Ok(envelope) = message.envelope() else {
                    tracing::error!(peer, "dropping malformed mesh message");
                    continue;
                };
                if envelope.is_reply() {
                    let correlation = envelope.correlation();
                    shard.mesh.complete(correlation, message);
                } else {
                    let shard = shard.clone();
                    glommio::spawn_local(async move { serve_request(&shard, peer, message).await })
                        .detach();
                }
            }
        })
        .detach();
    }
}

async fn serve_request(shard: &Rc<Shard>, from: usize, message: MeshMessage) {
    let Ok(envelope) = message.envelope() else {
        return;
    };
    let correlation = envelope.correlation();
    match envelope.payload_type() {
        Payload::ProduceRequest => {
            if let Some(request) = envelope.payload_as_produce_request() {
                produce::serve_remote(shard, from, correlation, request).await;
            }
        }
        Payload::FetchRequest => {
            if let Some(request) = envelope.payload_as_fetch_request() {
                fetch::serve_remote(shard, from, correlation, request).await;
            }
        }
        Payload::ListOffsetsRequest => {
            if let Some(request) = envelope.payload_as_list_offsets_request() {
                offsets::serve_remote(shard, from, correlation, request).await;
            }
        }
        Payload::ImageUpdate => {
            let outcome = match envelope.payload_as_image_update() {
                Some(update) => crate::cluster::publish::serve_remote(shard, update).await,
                None => {
                    AdminOutcome::error(kafka_protocol::ResponseError::InvalidRequest, "malformed")
                }
            };
            admin::reply_ack(shard, from, correlation, &outcome).await;
        }
        Payload::ControllerCall => {
            if let Some(call) = envelope.payload_as_controller_call() {
                crate::cluster::forward::serve_remote(shard, from, correlation, call).await;
            }
        }
        Payload::DeleteRecordsRequest => {
            if let Some(request) = envelope.payload_as_delete_records_request() {
                crate::retention::delete_records::serve_remote(shard, from, correlation, request)
                    .await;
            }
        }
        Payload::GroupRequest => {
            if let Some(request) = envelope.payload_as_group_request() {
                crate::server::handlers::groups::serve_remote(shard, from, correlation, request)
                    .await;
            }
        }
        Payload::EpochEndOffsetRequest => {
            if let Some(request) = envelope.payload_as_epoch_end_offset_request() {
                crate::server::handlers::offset_for_leader_epoch::serve_remote(
                    shard,
                    from,
                    correlation,
                    request,
                )
                .await;
            }
        }
        Payload::TxnMarkerRequest => {
            if let Some(request) = envelope.payload_as_txn_marker_request() {
                crate::transactions::markers::serve_remote(shard, from, correlation, request).await;
            }
        }
        other => tracing::error!(from, ?other, "unexpected mesh request"),
    }
}
