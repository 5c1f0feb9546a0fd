//! CreatePartitions: growing a topic. Like topic creation it runs on the controller shard: the
//! owners of the new partitions open their logs, then the table with the new count is persisted
//! and broadcast. Existing partitions keep their owner (ownership depends only on the topic, the
//! partition and the shard count), so their data and order are untouched.

use kafka_protocol::ResponseError;
use ringbroker_schema::{CreatePartitionsRequest, CreatePartitionsRequestArgs, Payload};

use super::{ack_outcome, begin, command_owners, commit_table, end, AdminOutcome};
use crate::shard::{Shard, CONTROLLER_SHARD};

/// Grows `name` to `count` partitions (from any shard).
pub async fn create_partitions(
    shard: &Shard,
    name: &str,
    count: i32,
    validate_only: bool,
) -> AdminOutcome {
    if shard.id == CONTROLLER_SHARD {
        return controller_create_partitions(shard, name, count, validate_only).await;
    }
    let reply = shard
        .mesh
        .call(CONTROLLER_SHARD, 128, |fbb| {
            let name = fbb.create_string(name);
            let request = CreatePartitionsRequest::create(
                fbb,
                &CreatePartitionsRequestArgs {
                    name: Some(name),
                    count,
                    validate_only,
                },
            );
            (Payload::CreatePartitionsRequest, request.as_union_value())
        })
        .await;
    ack_outcome(reply)
}

async fn controller_create_partitions(
    shard: &Shard,
    name: &str,
    count: i32,
    validate_only: bool,
) -> AdminOutcome {
    let Some(current) = shard.topic_table().get(name).map(|t| t.partitions) else {
        return AdminOutcome::error(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        );
    };
    if count <= current {
        return AdminOutcome::error(
            ResponseError::InvalidPartitions,
            format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
        );
    }
    if count > shard.config.max_partitions_per_topic {
        return AdminOutcome::error(
            ResponseError::InvalidPartitions,
            format!(
                "{count} partitions exceed max_partitions_per_topic ({})",
                shard.config.max_partitions_per_topic
            ),
        );
    }
    if validate_only {
        return AdminOutcome::ok();
    }
    if !begin(name) {
        return AdminOutcome::error(
            ResponseError::InvalidPartitions,
            "topic is being changed, retry",
        );
    }
    let outcome = grow(shard, name, current, count).await;
    end(name);
    outcome
}

async fn grow(shard: &Shard, name: &str, current: i32, count: i32) -> AdminOutcome {
    let added: Vec<i32> = (current..count).collect();
    if let Err(outcome) = command_owners(shard, name, &added, false).await {
        return outcome;
    }
    let mut table = (*shard.topic_table()).clone();
    match table.topics.get_mut(name) {
        Some(meta) => meta.partitions = count,
        None => {
            return AdminOutcome::error(
                ResponseError::UnknownTopicOrPartition,
                "topic was deleted meanwhile",
            )
        }
    }
    if let Err(outcome) = commit_table(shard, table).await {
        return outcome;
    }
    tracing::info!(topic = name, from = current, to = count, "added partitions");
    AdminOutcome::ok()
}
