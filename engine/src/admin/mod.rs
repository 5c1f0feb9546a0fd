//! Topic creation and deletion. Requests from any shard go to the controller shard (shard 0),
//! which validates them, has each owning shard open (or remove) its partition logs, persists the
//! new topic table and broadcasts it to every shard before answering: once a client sees
//! CreateTopics succeed, every shard routes the new topic.

pub mod configs;
pub mod partitions;

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::ResponseError;
use ringbroker_schema::{
    Ack, AckArgs, ConfigEntry, ConfigEntryArgs, CreateTopicRequest, CreateTopicRequestArgs,
    DeleteTopicRequest, DeleteTopicRequestArgs, MetadataUpdate, MetadataUpdateArgs,
    PartitionsCommand, PartitionsCommandArgs, Payload, TopicEntry, TopicEntryArgs,
};

use crate::errors;
use crate::metadata::topic_name::validate_topic_name;
use crate::metadata::{new_topic_id, owner_shard, partition_dir, TopicMeta, TopicTable};
use crate::shard::mesh::MeshMessage;
use crate::shard::{Shard, CONTROLLER_SHARD};
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
    /// -1 means the broker default.
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    pub validate_only: bool,
}

/// Creates a topic (from any shard).
pub async fn create_topic(shard: &Shard, topic: &NewTopic) -> AdminOutcome {
    if shard.id == CONTROLLER_SHARD {
        return controller_create(shard, topic).await;
    }
    let reply = shard
        .mesh
        .call(CONTROLLER_SHARD, 256, |fbb| {
            let name = fbb.create_string(&topic.name);
            let configs = config_entries(fbb, &topic.configs);
            let request = CreateTopicRequest::create(
                fbb,
                &CreateTopicRequestArgs {
                    name: Some(name),
                    partitions: topic.partitions,
                    configs: Some(configs),
                    validate_only: topic.validate_only,
                },
            );
            (Payload::CreateTopicRequest, request.as_union_value())
        })
        .await;
    ack_outcome(reply)
}

/// Deletes a topic (from any shard).
pub async fn delete_topic(shard: &Shard, name: &str) -> AdminOutcome {
    if shard.id == CONTROLLER_SHARD {
        return controller_delete(shard, name).await;
    }
    let reply = shard
        .mesh
        .call(CONTROLLER_SHARD, 128, |fbb| {
            let name = fbb.create_string(name);
            let request =
                DeleteTopicRequest::create(fbb, &DeleteTopicRequestArgs { name: Some(name) });
            (Payload::DeleteTopicRequest, request.as_union_value())
        })
        .await;
    ack_outcome(reply)
}

pub(crate) fn ack_outcome(
    reply: Result<MeshMessage, crate::shard::mesh::MeshError>,
) -> AdminOutcome {
    let message = match reply {
        Ok(m) => m,
        Err(e) => return AdminOutcome::error(ResponseError::NotController, e.to_string()),
    };
    match message.envelope().ok().and_then(|env| env.payload_as_ack()) {
        Some(ack) => AdminOutcome {
            error_code: ack.error_code(),
            message: ack.message().map(str::to_string),
        },
        None => AdminOutcome::error(
            ResponseError::UnknownServerError,
            "malformed controller reply",
        ),
    }
}

/// Topics being created or deleted right now (the controller awaits while doing it; a second
/// request for the same name must not pass the existence check meanwhile).
#[derive(Default)]
pub struct ControllerState {
    pub in_progress: std::cell::RefCell<HashSet<String>>,
}

thread_local! {
    static CONTROLLER: ControllerState = ControllerState::default();
}

pub(crate) fn begin(name: &str) -> bool {
    CONTROLLER.with(|c| c.in_progress.borrow_mut().insert(name.to_string()))
}

pub(crate) fn end(name: &str) {
    CONTROLLER.with(|c| c.in_progress.borrow_mut().remove(name));
}

fn in_progress(name: &str) -> bool {
    CONTROLLER.with(|c| c.in_progress.borrow().contains(name))
}

/// How often a request waits on another change of the same topic to finish.
const IN_PROGRESS_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// Longest wait on another change of the same topic (a create commits the table to every shard,
/// which takes milliseconds; this bounds a stuck one).
const IN_PROGRESS_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until no create or delete of `name` is running. A second CreateTopics for a name being
/// created is then answered TOPIC_ALREADY_EXISTS only once the topic is visible on every shard:
/// Kafka Connect workers starting together create the same internal topics and describe their
/// configs right after, which failed with UNKNOWN_TOPIC_OR_PARTITION for a few hundred ms.
async fn wait_until_not_in_progress(name: &str) {
    let deadline = std::time::Instant::now() + IN_PROGRESS_WAIT_MAX;
    while in_progress(name) && std::time::Instant::now() < deadline {
        glommio::timer::sleep(IN_PROGRESS_POLL).await;
    }
}

async fn controller_create(shard: &Shard, topic: &NewTopic) -> AdminOutcome {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    if let Err(reason) = validate_topic_name(&topic.name) {
        return AdminOutcome::error(ResponseError::InvalidTopicException, reason);
    }
    if is_reserved_topic(&topic.name) {
        return AdminOutcome::error(
            ResponseError::InvalidTopicException,
            format!(
                "'{}' is an internal topic of the broker and cannot be created",
                topic.name
            ),
        );
    }
    if let Err(e) = crate::topic_config::validate(&shard.config, &topic.configs) {
        return AdminOutcome::error(ResponseError::InvalidConfig, e.to_string());
    }
    let partitions = if topic.partitions == -1 {
        shard.config.default_partitions
    } else {
        topic.partitions
    };
    if partitions < 1 || partitions > shard.config.max_partitions_per_topic {
        return AdminOutcome::error(
            ResponseError::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {} (setting max_partitions_per_topic), got {partitions}",
                shard.config.max_partitions_per_topic
            ),
        );
    }
    wait_until_not_in_progress(&topic.name).await;
    if shard.topic_table().get(&topic.name).is_some() || !begin(&topic.name) {
        return AdminOutcome::error(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{}' already exists.", topic.name),
        );
    }
    if topic.validate_only {
        end(&topic.name);
        return AdminOutcome::ok();
    }
    let outcome = create_committed(shard, topic, partitions).await;
    end(&topic.name);
    outcome
}

async fn create_committed(shard: &Shard, topic: &NewTopic, partitions: i32) -> AdminOutcome {
    let all: Vec<i32> = (0..partitions).collect();
    if let Err(outcome) = command_owners(shard, &topic.name, &all, false).await {
        return outcome;
    }
    let mut table = (*shard.topic_table()).clone();
    table.topics.insert(
        topic.name.clone(),
        TopicMeta {
            id: new_topic_id(),
            partitions,
            configs: topic.configs.clone(),
            assignments: Vec::new(),
        },
    );
    if let Err(outcome) = commit_table(shard, table).await {
        return outcome;
    }
    tracing::info!(topic = %topic.name, partitions, "created topic");
    AdminOutcome::ok()
}

async fn controller_delete(shard: &Shard, name: &str) -> AdminOutcome {
    let Some(meta) = shard.topic_table().get(name).cloned() else {
        return AdminOutcome::error(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        );
    };
    if !begin(name) {
        return AdminOutcome::error(
            ResponseError::UnknownTopicOrPartition,
            "topic is being changed",
        );
    }
    let mut table = (*shard.topic_table()).clone();
    table.topics.remove(name);
    let committed = commit_table(shard, table).await;
    let outcome = match committed {
        Ok(()) => {
            let all: Vec<i32> = (0..meta.partitions).collect();
            match command_owners(shard, name, &all, true).await {
                Ok(()) => AdminOutcome::ok(),
                Err(outcome) => outcome,
            }
        }
        Err(outcome) => outcome,
    };
    end(name);
    if outcome.error_code == errors::NONE {
        tracing::info!(topic = %name, "deleted topic");
    }
    outcome
}

/// Persists the new table, then installs it on every shard (others over the mesh).
pub(crate) async fn commit_table(shard: &Shard, table: TopicTable) -> Result<(), AdminOutcome> {
    // A small synchronous write on the controller: topic changes are rare and must be durable
    // before anyone is told they happened.
    table
        .persist(&shard.config.data_dir)
        .map_err(|e| AdminOutcome::error(ResponseError::KafkaStorageError, e.to_string()))?;
    let table = Rc::new(table);
    for peer in (0..shard.count).filter(|p| *p != shard.id) {
        let reply = shard
            .mesh
            .call(peer, 1024, |fbb| {
                let update = build_metadata_update(fbb, &table, shard.count);
                (Payload::MetadataUpdate, update.as_union_value())
            })
            .await;
        if let Err(e) = reply {
            return Err(AdminOutcome::error(
                ResponseError::UnknownServerError,
                e.to_string(),
            ));
        }
    }
    *shard.topics.borrow_mut() = table;
    crate::retention::apply_roll_sizes(shard);
    Ok(())
}

/// Asks each owning shard to open (or remove) its partitions of `topic`.
pub(crate) async fn command_owners(
    shard: &Shard,
    topic: &str,
    partitions: &[i32],
    remove: bool,
) -> Result<(), AdminOutcome> {
    let mut by_owner: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        by_owner
            .entry(shard.owner_of(topic, *p))
            .or_default()
            .push(*p);
    }
    for (owner, parts) in by_owner {
        let outcome = if owner == shard.id {
            apply_partitions_command(shard, topic, &parts, remove).await
        } else {
            let reply = shard
                .mesh
                .call(owner, 256, |fbb| {
                    let name = fbb.create_string(topic);
                    let list = fbb.create_vector(&parts);
                    let command = PartitionsCommand::create(
                        fbb,
                        &PartitionsCommandArgs {
                            topic: Some(name),
                            partitions: Some(list),
                            remove,
                        },
                    );
                    (Payload::PartitionsCommand, command.as_union_value())
                })
                .await;
            ack_outcome(reply)
        };
        if outcome.error_code != errors::NONE {
            return Err(outcome);
        }
    }
    Ok(())
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
    let log = PartitionLog::open(&dir, shard.config.log.clone())
        .await
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    shard
        .producers
        .load(topic, partition, &log)
        .await
        .map_err(|e| format!("cannot recover producer state of {}: {e}", dir.display()))?;
    Ok(log)
}

/// Builds the flatbuffer form of the topic table.
pub fn build_metadata_update<'b>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'b>,
    table: &TopicTable,
    shard_count: usize,
) -> flatbuffers::WIPOffset<MetadataUpdate<'b>> {
    let mut entries = Vec::with_capacity(table.topics.len());
    for (name_str, meta) in &table.topics {
        let name = fbb.create_string(name_str);
        let id = fbb.create_vector(&meta.id);
        let configs = config_entries(fbb, &meta.configs);
        let owners: Vec<u16> = (0..meta.partitions)
            .map(|p| owner_shard(name_str, p, shard_count) as u16)
            .collect();
        let owners = fbb.create_vector(&owners);
        entries.push(TopicEntry::create(
            fbb,
            &TopicEntryArgs {
                name: Some(name),
                id: Some(id),
                owners: Some(owners),
                configs: Some(configs),
            },
        ));
    }
    let topics = fbb.create_vector(&entries);
    MetadataUpdate::create(
        fbb,
        &MetadataUpdateArgs {
            topics: Some(topics),
        },
    )
}

fn config_entries<'b>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'b>,
    configs: &BTreeMap<String, String>,
) -> flatbuffers::WIPOffset<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<ConfigEntry<'b>>>>
{
    let entries: Vec<_> = configs
        .iter()
        .map(|(k, v)| {
            let key = fbb.create_string(k);
            let value = fbb.create_string(v);
            ConfigEntry::create(
                fbb,
                &ConfigEntryArgs {
                    key: Some(key),
                    value: Some(value),
                },
            )
        })
        .collect();
    fbb.create_vector(&entries)
}

/// Replies to a mesh request with an Ack.
pub async fn reply_ack(shard: &Shard, from: usize, correlation: u64, outcome: &AdminOutcome) {
    shard
        .mesh
        .reply(from, correlation, 128, |fbb| {
            let message = outcome.message.as_deref().map(|m| fbb.create_string(m));
            let ack = Ack::create(
                fbb,
                &AckArgs {
                    error_code: outcome.error_code,
                    message,
                },
            );
            (Payload::Ack, ack.as_union_value())
        })
        .await;
}

/// Rebuilds a topic table from its flatbuffer form (a controller broadcast).
pub fn table_from_update(update: &MetadataUpdate<'_>) -> TopicTable {
    let mut table = TopicTable::default();
    for entry in update.topics().iter().flatten() {
        let Some(name) = entry.name() else { continue };
        let mut id = [0u8; 16];
        if let Some(bytes) = entry.id() {
            if bytes.len() == 16 {
                id.copy_from_slice(bytes.bytes());
            }
        }
        let configs = configs_from_entries(entry.configs());
        let partitions = entry.owners().map_or(0, |o| o.len() as i32);
        table.topics.insert(
            name.to_string(),
            TopicMeta {
                id,
                partitions,
                configs,
                assignments: Vec::new(),
            },
        );
    }
    table
}

/// Reads flatbuffer config entries back into a map (keys without a name are dropped).
pub fn configs_from_entries(
    entries: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<ConfigEntry<'_>>>>,
) -> BTreeMap<String, String> {
    entries
        .iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c.key()?.to_string(),
                c.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}
