//! FindCoordinator: a group's coordinator is the broker leading the group's `__consumer_offsets`
//! partition (Kafka's placement). The topic is created on the first request, as Kafka does, with
//! `offsets.topic.replication.factor` capped by the live brokers; until it has a leader the answer
//! is COORDINATOR_NOT_AVAILABLE (clients retry). A transactional id's coordinator is, the same way,
//! the broker leading the id's `__transaction_state` partition: in a cluster of several brokers
//! the topic is created on the first request with `transaction.state.log.replication.factor`
//! capped by the live brokers and `transaction.state.log.min.isr` (capped by that factor) as its
//! `min.insync.replicas`; a broker alone coordinates every id. The coordinator is given at its
//! endpoint for the listener the client came in on; one without that listener is
//! COORDINATOR_NOT_AVAILABLE, as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::frame::Request;

use crate::cluster::controller::{TopicSpec, OFFSETS_TOPIC};
use crate::cluster::forward;
use crate::cluster::rpc_api::AdminRequest;
use crate::cluster::MetadataImage;
use crate::groups::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::NO_LEADER;
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, respond, HandlerError, Outcome};
use crate::shard::Shard;
use crate::transactions::{
    state_partition_for, TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};

/// Key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a coordinator lives, or why there is none.
struct Found {
    error_code: i16,
    message: Option<StrBytes>,
    node_id: i32,
    host: StrBytes,
    port: i32,
}

impl Found {
    fn error(error: ResponseError, message: &'static str) -> Found {
        Found {
            error_code: error.code(),
            message: Some(StrBytes::from_static_str(message)),
            node_id: -1,
            host: StrBytes::default(),
            port: -1,
        }
    }
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    listener: &crate::security::ClientListener,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: FindCoordinatorRequest = decode_body(request)?;
    if body.key_type == KEY_TYPE_GROUP {
        ensure_offsets_topic(shard).await;
    }
    let clustered = shard.image().brokers.len() > 1;
    let listener = listener.name();
    if body.key_type == KEY_TYPE_TRANSACTION && clustered {
        ensure_transaction_state_topic(shard).await;
    }
    // Kafka: Describe on the group or transactional id whose coordinator is asked for.
    let find = |key: &str| match body.key_type {
        KEY_TYPE_GROUP if !session.authorize(Operation::Describe, ResourceType::Group, key) => {
            Found::error(ResponseError::GroupAuthorizationFailed, "not authorized")
        }
        KEY_TYPE_TRANSACTION
            if !session.authorize(Operation::Describe, ResourceType::TransactionalId, key) =>
        {
            Found::error(
                ResponseError::TransactionalIdAuthorizationFailed,
                "not authorized",
            )
        }
        KEY_TYPE_GROUP => group_coordinator(shard, key, listener),
        KEY_TYPE_TRANSACTION if clustered => transaction_coordinator(shard, key, listener),
        KEY_TYPE_TRANSACTION => this_broker(shard, listener),
        _ => Found::error(
            ResponseError::InvalidRequest,
            "unknown coordinator key type",
        ),
    };
    let mut response = FindCoordinatorResponse::default();
    if request.version() >= 4 {
        response.coordinators = body
            .coordinator_keys
            .iter()
            .map(|key| {
                let found = find(key.as_str());
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(found.node_id))
                    .with_host(found.host)
                    .with_port(found.port)
                    .with_error_code(found.error_code)
                    .with_error_message(found.message)
            })
            .collect();
    } else {
        let found = find(body.key.as_str());
        response = response
            .with_error_code(found.error_code)
            .with_error_message(found.message)
            .with_node_id(BrokerId(found.node_id))
            .with_host(found.host)
            .with_port(found.port);
    }
    respond(request, &response)
}

/// The broker leading `group`'s offsets partition.
fn group_coordinator(shard: &Shard, group: &str, listener: &str) -> Found {
    let partition = offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS);
    leader_of(
        shard,
        OFFSETS_TOPIC,
        partition,
        listener,
        "the group's offsets partition has no leader right now",
    )
}

/// The broker leading `transactional_id`'s `__transaction_state` partition.
fn transaction_coordinator(shard: &Shard, transactional_id: &str, listener: &str) -> Found {
    leader_of(
        shard,
        TRANSACTION_STATE_TOPIC,
        state_partition_for(transactional_id),
        listener,
        "the transactional id's state partition has no leader right now",
    )
}

/// The live broker leading `partition` of an internal topic.
fn leader_of(
    shard: &Shard,
    topic: &str,
    partition: i32,
    listener: &str,
    none: &'static str,
) -> Found {
    let image = shard.image();
    let leader = image
        .topics
        .get(topic)
        .map_or(NO_LEADER, |meta| meta.leader_of(partition));
    if !image.is_live(leader) {
        return Found::error(ResponseError::CoordinatorNotAvailable, none);
    }
    broker_at_listener(&image, leader, listener)
}

/// This broker, as the image lists it (it is live: it serves clients only then).
fn this_broker(shard: &Shard, listener: &str) -> Found {
    broker_at_listener(&shard.image(), shard.config.node_id, listener)
}

/// Broker `node_id` at its endpoint for `listener` (Kafka's `getAliveBrokerNode(id, listener)`).
fn broker_at_listener(image: &MetadataImage, node_id: i32, listener: &str) -> Found {
    let Some(broker) = image.brokers.get(&node_id) else {
        return Found::error(
            ResponseError::CoordinatorNotAvailable,
            "the coordinator is not registered",
        );
    };
    match broker.endpoint(listener) {
        Some(endpoint) => Found {
            error_code: 0,
            message: None,
            node_id,
            host: StrBytes::from_string(endpoint.host.clone()),
            port: endpoint.port,
        },
        None => Found::error(
            ResponseError::CoordinatorNotAvailable,
            "the coordinator has no endpoint for this listener",
        ),
    }
}

/// Creates `__consumer_offsets` if the cluster does not have it yet.
async fn ensure_offsets_topic(shard: &Shard) {
    let factor =
        capped_by_live_brokers(shard, shard.config.cluster.offsets_topic_replication_factor);
    ensure_internal_topic(shard, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, factor, None).await;
}

/// Creates `__transaction_state` if the cluster does not have it yet, replicated as Kafka's:
/// `transaction.state.log.replication.factor` and `transaction.state.log.min.isr`.
async fn ensure_transaction_state_topic(shard: &Shard) {
    let cluster = &shard.config.cluster;
    let factor = capped_by_live_brokers(shard, cluster.transaction_state_replication_factor);
    // Capped by the factor: a cluster of fewer brokers than the min.isr could never write.
    let min_isr = cluster.transaction_state_min_isr.min(i32::from(factor));
    ensure_internal_topic(
        shard,
        TRANSACTION_STATE_TOPIC,
        TRANSACTION_STATE_PARTITIONS,
        factor,
        Some(min_isr),
    )
    .await;
}

/// A replication factor capped by the brokers alive now (Kafka's creation of internal topics).
fn capped_by_live_brokers(shard: &Shard, factor: i16) -> i16 {
    let live = shard.image().live_brokers().count().max(1);
    factor.min(i16::try_from(live).unwrap_or(i16::MAX))
}

/// Creates a compacted internal topic through the controller unless it exists (with its
/// `min.insync.replicas` when given).
async fn ensure_internal_topic(
    shard: &Shard,
    name: &str,
    partitions: i32,
    factor: i16,
    min_insync_replicas: Option<i32>,
) {
    if shard.topic_table().get(name).is_some() {
        return;
    }
    let mut configs: std::collections::BTreeMap<String, String> =
        [("cleanup.policy".to_string(), "compact".to_string())].into();
    if let Some(min_isr) = min_insync_replicas {
        configs.insert(
            crate::topic_config::MIN_INSYNC_REPLICAS.to_string(),
            min_isr.to_string(),
        );
    }
    let request = AdminRequest::CreateTopics {
        topics: vec![TopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor: factor,
            assignments: Vec::new(),
            configs,
        }],
        validate_only: false,
        internal: true,
    };
    let reply = forward::admin(shard, request).await;
    if let Some(outcome) = reply.outcomes.first() {
        let exists = outcome.error_code == ResponseError::TopicAlreadyExists.code();
        if outcome.error_code != 0 && !exists {
            tracing::warn!(topic = name, error_code = outcome.error_code, message = ?outcome.message, "could not create an internal topic");
        }
    }
}
