//! Metadata: the cluster's live brokers, its id, and the topics asked for (all when null, or for v0
//! an empty list) with each partition's leader, leader epoch, replicas, ISR and offline replicas,
//! as the metadata image says; unknown topics are created when allowed (Kafka
//! `auto.create.topics.enable`). The controller id given to clients is this broker: any broker
//! forwards admin requests to the active controller, as in Kafka's KRaft mode.
//!
//! Brokers are given at their endpoint for the listener the client's connection came in on, as
//! Kafka does: a broker without that listener is left out, and a partition whose leader lacks it
//! is LISTENER_NOT_FOUND (v6+; LEADER_NOT_AVAILABLE before) with no leader.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;
use uuid::Uuid;

use crate::admin::{self, NewTopic};
use crate::cluster::MetadataImage;
use crate::metadata::{PartitionState, TopicMeta, NO_LEADER};
use crate::security::acl::types::{CLUSTER_NAME, OPERATIONS_NOT_REQUESTED};
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// First Metadata version whose topic name may be null (a topic known only by id).
const METADATA_NULLABLE_NAME_VERSION: i16 = 12;

/// Topics whose names start with this are the broker's own (reported `is_internal`).
pub const INTERNAL_TOPIC_PREFIX: &str = "__";
/// First Metadata version told LISTENER_NOT_FOUND for a leader without the client's listener
/// (Kafka's `errorUnavailableListeners`); earlier ones get LEADER_NOT_AVAILABLE.
const METADATA_LISTENER_NOT_FOUND_VERSION: i16 = 6;

/// Whom an answer is for: the listener the client came in on, and the request's version.
#[derive(Clone, Copy)]
struct ClientView<'a> {
    listener: &'a str,
    version: i16,
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    listener: &crate::security::ClientListener,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: MetadataRequest = decode_body(request)?;
    let version = request.version();
    let view = ClientView {
        listener: listener.name(),
        version,
    };
    // Topics asked for by id (v10+; the Java client sends an empty name with the id) that this broker
    // does not know are answered UNKNOWN_TOPIC_ID, as Kafka does.
    let mut unknown_ids = Vec::new();
    let requested: Option<Vec<String>> = match &body.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.iter()
                .filter_map(|t| match &t.name {
                    Some(name) if !name.0.is_empty() || t.topic_id.is_nil() => {
                        Some(name.0.to_string())
                    }
                    _ => {
                        let found = topic_name_by_id(shard, t.topic_id);
                        if found.is_none() {
                            unknown_ids.push(t.topic_id);
                        }
                        found
                    }
                })
                .collect(),
        ),
    };
    let auto_create =
        shard.config.auto_create_topics && (version < 4 || body.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => {
            let table = shard.topic_table();
            let image = shard.image();
            // Topics the client may not describe are left out, without an audit line each
            // (Kafka's filter of "all topics").
            for (name, meta) in &table.topics {
                if session.allows(Operation::Describe, ResourceType::Topic, name) {
                    topics.push(describe_topic(&image, name, meta, view));
                }
            }
        }
        Some(names) => {
            for name in names {
                let exists = shard.topic_table().get(&name).is_some();
                // Auto-creation needs Create on the cluster or the topic, as in Kafka; a client
                // that may not is told TOPIC_AUTHORIZATION_FAILED (it stops waiting for it).
                let refused = !session.authorize(Operation::Describe, ResourceType::Topic, &name)
                    || (!exists && auto_create && !session.may_create_topic(&name));
                let topic = if refused {
                    missing_topic(&name, ResponseError::TopicAuthorizationFailed.code())
                } else {
                    lookup_or_create(shard, &name, auto_create, view).await
                };
                topics.push(topic);
            }
        }
    }
    // Kafka: when asked (v8+), the operations this principal may do on each topic described.
    if body.include_topic_authorized_operations {
        let refused = ResponseError::TopicAuthorizationFailed.code();
        for topic in topics.iter_mut().filter(|t| t.error_code != refused) {
            if let Some(name) = &topic.name {
                topic.topic_authorized_operations =
                    session.authorized_operations(ResourceType::Topic, name.as_str());
            }
        }
    }
    // The name is nullable from v12; before, an unknown id's entry carries an empty one.
    let unknown_name =
        (version < METADATA_NULLABLE_NAME_VERSION).then(|| TopicName(StrBytes::default()));
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_id(id)
            .with_name(unknown_name.clone())
            .with_partitions(Vec::new())
    }));
    let image = shard.image();
    // Kafka: v8-v10 could ask for the cluster's operations too (DescribeCluster since).
    let cluster_operations = if body.include_cluster_authorized_operations {
        session.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let response = MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(brokers_for_listener(&image, listener.name()))
        .with_cluster_id(image.cluster_id.clone().map(StrBytes::from_string))
        .with_controller_id(BrokerId(controller_id_for_clients(shard)))
        .with_topics(topics);
    respond(request, &response)
}

/// The live brokers a client of listener `listener` is given, each at its endpoint of that
/// listener; brokers without one are left out (Kafka's `getAliveBrokerNodes(listenerName)`).
fn brokers_for_listener(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

/// A partition's leader and error as a client of `view` sees them: no leader is
/// LEADER_NOT_AVAILABLE; a leader the client cannot reach on its listener is no leader, with
/// LISTENER_NOT_FOUND from v6 (Kafka's `KRaftMetadataCache.partitionMetadata`).
fn leader_for_listener(
    image: &MetadataImage,
    state: &PartitionState,
    view: ClientView<'_>,
) -> (i32, i16) {
    if state.leader == NO_LEADER {
        return (NO_LEADER, ResponseError::LeaderNotAvailable.code());
    }
    match image.brokers.get(&state.leader) {
        Some(leader) if leader.endpoint(view.listener).is_none() => {
            let error = if view.version >= METADATA_LISTENER_NOT_FOUND_VERSION {
                ResponseError::ListenerNotFound
            } else {
                ResponseError::LeaderNotAvailable
            };
            (NO_LEADER, error.code())
        }
        _ => (state.leader, 0),
    }
}

/// The controller id clients are given: this broker (it forwards admin requests to the active
/// controller), or another live broker if this one is not live.
pub fn controller_id_for_clients(shard: &Shard) -> i32 {
    let image = shard.image();
    let node_id = shard.config.node_id;
    if image.is_live(node_id) {
        return node_id;
    }
    let first_live = image.live_brokers().next().map_or(node_id, |b| b.node_id);
    first_live
}

fn topic_name_by_id(shard: &Shard, id: Uuid) -> Option<String> {
    let table = shard.topic_table();
    table
        .topics
        .iter()
        .find(|(_, meta)| meta.id == *id.as_bytes())
        .map(|(name, _)| name.clone())
}

async fn lookup_or_create(
    shard: &Shard,
    name: &str,
    auto_create: bool,
    view: ClientView<'_>,
) -> MetadataResponseTopic {
    if let Some(meta) = shard.topic_table().get(name).cloned() {
        return describe_topic(&shard.image(), name, &meta, view);
    }
    if auto_create {
        let outcome = admin::create_topic(
            shard,
            &NewTopic {
                name: name.to_string(),
                partitions: -1,
                replication_factor: -1,
                assignments: Vec::new(),
                configs: Default::default(),
                validate_only: false,
            },
        )
        .await;
        if let Some(meta) = shard.topic_table().get(name).cloned() {
            return describe_topic(&shard.image(), name, &meta, view);
        }
        if outcome.error_code == ResponseError::InvalidTopicException.code() {
            return missing_topic(name, outcome.error_code);
        }
    }
    missing_topic(name, ResponseError::UnknownTopicOrPartition.code())
}

fn missing_topic(name: &str, error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_partitions(Vec::new())
}

fn describe_topic(
    image: &MetadataImage,
    name: &str,
    meta: &TopicMeta,
    view: ClientView<'_>,
) -> MetadataResponseTopic {
    let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let partitions = meta
        .assignments
        .iter()
        .enumerate()
        .map(|(p, state)| {
            let offline: Vec<i32> = state
                .replicas
                .iter()
                .copied()
                // Kafka lists replicas on offline log directories too.
                .filter(|r| !image.is_eligible(*r))
                .collect();
            let (leader, error) = leader_for_listener(image, state, view);
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(state.leader_epoch)
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(Uuid::from_bytes(meta.id))
        .with_is_internal(name.starts_with(INTERNAL_TOPIC_PREFIX))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{BrokerEndpoint, BrokerRegistration, MetadataRecord};
    use crate::security::SecurityProtocol;

    /// Brokers 1 and 2 with a PLAINTEXT and a SASL_SSL listener, broker 3 with PLAINTEXT only;
    /// all live.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for node_id in 1..=3 {
            let host = format!("10.0.0.{node_id}");
            let mut listeners = vec![BrokerEndpoint::plaintext(&host, 9092)];
            if node_id < 3 {
                listeners.push(BrokerEndpoint {
                    name: "SASL_SSL".into(),
                    host: format!("broker{node_id}.example"),
                    port: 9094,
                    protocol: SecurityProtocol::SaslSsl,
                });
            }
            let index = image.applied_index + 1;
            image.apply(
                index,
                &[MetadataRecord::Broker(BrokerRegistration {
                    node_id,
                    incarnation: [node_id as u8; 16],
                    epoch: 0,
                    listeners,
                    rack: None,
                    fenced: true,
                    shutting_down: false,
                })],
            );
            image.apply(
                index + 1,
                &[MetadataRecord::BrokerState {
                    node_id,
                    epoch: index as i64,
                    fenced: false,
                    shutting_down: false,
                }],
            );
        }
        image
    }

    fn endpoints(brokers: &[MetadataResponseBroker]) -> Vec<(i32, String, i32)> {
        brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect()
    }

    #[test]
    fn brokers_are_given_at_the_endpoint_of_the_clients_listener() {
        let image = image();
        assert_eq!(
            endpoints(&brokers_for_listener(&image, "SASL_SSL")),
            [
                (1, "broker1.example".to_string(), 9094),
                (2, "broker2.example".to_string(), 9094)
            ],
            "broker 3 has no SASL_SSL listener: left out"
        );
        assert_eq!(
            endpoints(&brokers_for_listener(&image, "PLAINTEXT")),
            [
                (1, "10.0.0.1".to_string(), 9092),
                (2, "10.0.0.2".to_string(), 9092),
                (3, "10.0.0.3".to_string(), 9092)
            ]
        );
        assert!(brokers_for_listener(&image, "SSL").is_empty());
    }

    #[test]
    fn a_leader_without_the_clients_listener_is_listener_not_found() {
        let image = image();
        let led_by = |leader| PartitionState {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch: 4,
            partition_epoch: 4,
        };
        let sasl = |version| ClientView {
            listener: "SASL_SSL",
            version,
        };
        assert_eq!(leader_for_listener(&image, &led_by(2), sasl(12)), (2, 0));
        assert_eq!(
            leader_for_listener(&image, &led_by(3), sasl(12)),
            (NO_LEADER, ResponseError::ListenerNotFound.code())
        );
        assert_eq!(
            leader_for_listener(&image, &led_by(3), sasl(5)),
            (NO_LEADER, ResponseError::LeaderNotAvailable.code()),
            "before v6 Kafka says LEADER_NOT_AVAILABLE"
        );
        let plaintext = ClientView {
            listener: "PLAINTEXT",
            version: 12,
        };
        assert_eq!(leader_for_listener(&image, &led_by(3), plaintext), (3, 0));
        assert_eq!(
            leader_for_listener(&image, &led_by(NO_LEADER), plaintext),
            (NO_LEADER, ResponseError::LeaderNotAvailable.code())
        );
    }
}
