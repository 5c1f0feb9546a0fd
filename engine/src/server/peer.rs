//! Serves what other shards send over the mesh: replies wake the waiting request; requests are
//! handled in arrival order (each as its own task, started in that order).

use std::rc::Rc;

use futures::StreamExt;
use glommio::channels::channel_mesh::Receivers;
use ringbroker_schema::Payload;

use crate::admin::{self, table_from_update, AdminOutcome, NewTopic};
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

async fn serve_request(shard: &Shard, from: usize, message: MeshMessage) {
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
        Payload::MetadataUpdate => {
            if let Some(update) = envelope.payload_as_metadata_update() {
                shard.set_topic_table(table_from_update(&update));
                crate::retention::apply_roll_sizes(shard);
            }
            admin::reply_ack(shard, from, correlation, &AdminOutcome::ok()).await;
        }
        Payload::CreateTopicRequest => {
            let outcome = match envelope.payload_as_create_topic_request() {
                Some(request) => {
                    let topic = NewTopic {
                        name: request.name().unwrap_or_default().to_string(),
                        partitions: request.partitions(),
                        configs: admin::configs_from_entries(request.configs()),
                        validate_only: request.validate_only(),
                    };
                    admin::create_topic(shard, &topic).await
                }
                None => {
                    AdminOutcome::error(kafka_protocol::ResponseError::InvalidRequest, "malformed")
                }
            };
            admin::reply_ack(shard, from, correlation, &outcome).await;
        }
        Payload::CreatePartitionsRequest => {
            let outcome = match envelope.payload_as_create_partitions_request() {
                Some(request) => {
                    let name = request.name().unwrap_or_default().to_string();
                    admin::partitions::create_partitions(
                        shard,
                        &name,
                        request.count(),
                        request.validate_only(),
                    )
                    .await
                }
                None => {
                    AdminOutcome::error(kafka_protocol::ResponseError::InvalidRequest, "malformed")
                }
            };
            admin::reply_ack(shard, from, correlation, &outcome).await;
        }
        Payload::DeleteTopicRequest => {
            let name = envelope
                .payload_as_delete_topic_request()
                .and_then(|r| r.name())
                .unwrap_or_default()
                .to_string();
            let outcome = admin::delete_topic(shard, &name).await;
            admin::reply_ack(shard, from, correlation, &outcome).await;
        }
        Payload::PartitionsCommand => {
            let outcome = match envelope.payload_as_partitions_command() {
                Some(command) => {
                    let topic = command.topic().unwrap_or_default().to_string();
                    let partitions: Vec<i32> = command
                        .partitions()
                        .map(|v| v.iter().collect())
                        .unwrap_or_default();
                    admin::apply_partitions_command(shard, &topic, &partitions, command.remove())
                        .await
                }
                None => {
                    AdminOutcome::error(kafka_protocol::ResponseError::InvalidRequest, "malformed")
                }
            };
            admin::reply_ack(shard, from, correlation, &outcome).await;
        }
        Payload::AlterTopicConfigsRequest => {
            let outcome = match envelope.payload_as_alter_topic_configs_request() {
                Some(request) => admin::configs::serve_remote(shard, request).await,
                None => {
                    AdminOutcome::error(kafka_protocol::ResponseError::InvalidRequest, "malformed")
                }
            };
            admin::reply_ack(shard, from, correlation, &outcome).await;
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
        other => tracing::error!(from, ?other, "unexpected mesh request"),
    }
}
