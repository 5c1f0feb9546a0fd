//! Topic creation and deletion, partition increases and config changes, as the handlers ask for
//! them: each goes to the cluster's active controller (`cluster::forward`), which validates it and
//! commits the change to the metadata log; every broker's shards then open (or remove) their
//! partition logs as the new image says (`cluster::publish`). The answer comes once this broker's
//! shards have the change: a client sees what it created on the broker it asked.

pub mod configs;
pub mod partitions;

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use crate::cluster::controller::TopicSpec;
use crate::cluster::forward;
use crate::cluster::rpc_api::{AdminReply, AdminRequest};
use crate::errors;
use crate::metadata::partition_dir;
use crate::shard::Shard;
use crate::storage::PartitionLog;

/// The answer to a topic change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOutcome {
    pub error_code: i16,
    pub message: Option<String>,
}

impl AdminOutcome {
    pub fn ok() -> AdminOutcome {
        AdminOutcome {
            error_code: errors::NONE,
            message: None,
        }
    }

    /// A refusal by the authorizer: its error code, and no message (as Kafka answers).
    pub fn refused(error_code: i16) -> AdminOutcome {
        AdminOutcome {
            error_code,
            message: None,
        }
    }

    pub fn error(error: ResponseError, message: impl Into<String>) -> AdminOutcome {
        AdminOutcome {
            error_code: error.code(),
            message: Some(message.into()),
        }
    }
}

/// Names the broker keeps for itself: their partition directories are the group coordinators'
/// committed-offsets logs.
pub const RESERVED_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Whether `name` is a broker-internal topic a client may not create.
pub fn is_reserved_topic(name: &str) -> bool {
    RESERVED_TOPICS.contains(&name)
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker default (`num.partitions`).
    pub partitions: i32,
    /// -1 means the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// Explicit replicas per partition (then `partitions` and `replication_factor` are -1).
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
    pub validate_only: bool,
}

/// Creates a topic (from any shard): the active controller places and records it; answered once
/// this broker's shards have the topic.
pub async fn create_topic(shard: &Shard, topic: &NewTopic) -> AdminOutcome {
    let request = AdminRequest::CreateTopics {
        topics: vec![TopicSpec {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            assignments: topic.assignments.clone(),
            configs: topic.configs.clone(),
        }],
        validate_only: topic.validate_only,
        internal: false,
    };
    first_outcome(forward::admin(shard, request).await)
}

/// Deletes a topic (from any shard).
pub async fn delete_topic(shard: &Shard, name: &str) -> AdminOutcome {
    let request = AdminRequest::DeleteTopics {
        names: vec![name.to_string()],
    };
    first_outcome(forward::admin(shard, request).await)
}

/// The outcome of a one-topic request.
pub(crate) fn first_outcome(reply: AdminReply) -> AdminOutcome {
    match reply.outcomes.into_iter().next() {
        Some(outcome) => AdminOutcome {
            error_code: outcome.error_code,
            message: outcome.message,
        },
        None => AdminOutcome::error(
            ResponseError::UnknownServerError,
            "the controller gave no answer for the topic",
        ),
    }
}

/// Opens (creating if needed) or removes partition logs on this shard.
pub async fn apply_partitions_command(
    shard: &Shard,
    topic: &str,
    partitions: &[i32],
    remove: bool,
) -> AdminOutcome {
    if remove {
        shard.producers.forget(topic);
        shard.txn_partitions.forget(topic);
        for log in shard.take_logs(topic) {
            let dir = log.dir().to_path_buf();
            if let Err(e) = shard.producers.remove_files(&dir).await {
                tracing::warn!(topic, error = %e, "could not remove the producer state snapshot");
            }
            if let Err(e) = log.remove().await {
                tracing::warn!(topic, dir = %dir.display(), error = %e, "could not remove partition files");
            }
        }
        return AdminOutcome::ok();
    }
    for p in partitions {
        match open_partition(shard, topic, *p).await {
            Ok(log) => shard.insert_log(topic, *p, log),
            Err(e) => return AdminOutcome::error(ResponseError::KafkaStorageError, e),
        }
    }
    AdminOutcome::ok()
}

/// Opens one partition log this shard owns.
pub async fn open_partition(
    shard: &Shard,
    topic: &str,
    partition: i32,
) -> Result<PartitionLog, String> {
    let dir = partition_dir(&shard.config.data_dir, topic, partition);
    // A replicated partition's high watermark is the ISR's, restored from its checkpoint: the
    // written end of this replica may hold records the cluster has not committed.
    let replicated = shard.is_replicated(topic, partition);
    let mut config = shard.config.log.clone();
    config.high_watermark_follows_log_end = !replicated;
    let log = PartitionLog::open(&dir, config)
        .await
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    shard
        .producers
        .load(topic, partition, &log)
        .await
        .map_err(|e| format!("cannot recover producer state of {}: {e}", dir.display()))?;
    let txns = crate::transactions::PartitionTxns::recover(&log)
        .await
        .map_err(|e| format!("cannot recover transaction state of {}: {e}", dir.display()))?;
    shard.txn_partitions.insert(topic, partition, txns);
    Ok(log)
}

/// Replies to a mesh request with an Ack.
pub async fn reply_ack(shard: &Shard, from: usize, correlation: u64, outcome: &AdminOutcome) {
    shard
        .mesh
        .reply(from, correlation, 128, |fbb| {
            let message = outcome.message.as_deref().map(|m| fbb.create_string(m));
            let ack = ringbroker_schema::Ack::create(
                fbb,
                &ringbroker_schema::AckArgs {
                    error_code: outcome.error_code,
                    message,
                },
            );
            (ringbroker_schema::Payload::Ack, ack.as_union_value())
        })
        .await;
}
