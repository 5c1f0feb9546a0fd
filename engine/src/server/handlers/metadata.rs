//! Metadata: the cluster's live brokers, its id, and the topics asked for (all when null, or for v0
//! an empty list) with each partition's leader, leader epoch, replicas, ISR and offline replicas,
//! as the metadata image says; unknown topics are created when allowed (Kafka
//! `auto.create.topics.enable`). The controller id given to clients is this broker: any broker
//! forwards admin requests to the active controller, as in Kafka's KRaft mode.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;
use uuid::Uuid;

use crate::admin::{self, NewTopic};
use crate::metadata::{TopicMeta, NO_LEADER};
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;

/// First Metadata version whose topic name may be null (a topic known only by id).
const METADATA_NULLABLE_NAME_VERSION: i16 = 12;

/// Topics whose names start with this are the broker's own (reported `is_internal`).
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

pub async fn handle(
    shard: &Shard,
    request: &Request,
    listener: &crate::security::ClientListener,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: MetadataRequest = decode_body(request)?;
    let version = request.version();
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
            // Topics the client may not describe are left out, without an audit line each
            // (Kafka's filter of "all topics").
            for (name, meta) in &table.topics {
                if session.allows(Operation::Describe, ResourceType::Topic, name) {
                    topics.push(describe_topic(shard, name, meta));
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
                    lookup_or_create(shard, &name, auto_create).await
                };
                topics.push(topic);
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
    let brokers = image
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let mut brokers: Vec<MetadataResponseBroker> = brokers;
    // Security: this broker as the listener the client came in on advertises it.
    for broker in &mut brokers {
        let node_id = broker.node_id.0;
        listener.advertise_own(
            shard.config.node_id,
            node_id,
            &mut broker.host,
            &mut broker.port,
        );
    }
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(image.cluster_id.clone().map(StrBytes::from_string))
        .with_controller_id(BrokerId(controller_id_for_clients(shard)))
        .with_topics(topics);
    respond(request, &response)
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

async fn lookup_or_create(shard: &Shard, name: &str, auto_create: bool) -> MetadataResponseTopic {
    if let Some(meta) = shard.topic_table().get(name).cloned() {
        return describe_topic(shard, name, &meta);
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
            return describe_topic(shard, name, &meta);
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

fn describe_topic(shard: &Shard, name: &str, meta: &TopicMeta) -> MetadataResponseTopic {
    let image = shard.image();
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
            let error = if state.leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(state.leader))
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
