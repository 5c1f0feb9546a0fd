//! Topic administration: CreateTopics, DeleteTopics, DescribeConfigs, IncrementalAlterConfigs and
//! ListOffsets.

use super::error::{check_code, ClientError};
use super::{Client, Target};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;
/// DescribeConfigs (v1+) config source DEFAULT_CONFIG: the broker's default, not set on the topic.
const CONFIG_SOURCE_DEFAULT: i8 = 5;
/// IncrementalAlterConfigs operation SET.
const ALTER_OP_SET: i8 = 0;
/// IncrementalAlterConfigs operation DELETE (back to the default).
const ALTER_OP_DELETE: i8 = 1;
/// First DeleteTopics version naming topics in `topics` rather than `topic_names`.
const DELETE_TOPICS_STATE_VERSION: i16 = 6;
/// ListOffsets timestamp meaning "log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "log end offset" (high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;

/// Per-topic outcomes of CreateTopics/DeleteTopics, in the broker's answer order.
pub type TopicResults = Vec<(String, Result<(), ClientError>)>;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1 lets the broker use its default (CreateTopics v4+).
    pub partitions: i32,
    /// -1 lets the broker use its default (CreateTopics v4+).
    pub replication_factor: i16,
    /// Topic configs, e.g. ("cleanup.policy", "compact").
    pub configs: Vec<(String, String)>,
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// True when the value is the broker default (config source DEFAULT_CONFIG).
    pub is_default: bool,
    pub is_sensitive: bool,
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (next offset to be written).
    Latest,
    /// The first offset whose timestamp is >= this (ms); -1 from the broker if none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
            OffsetSpec::Latest => LATEST_TIMESTAMP,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn topic_name(value: &str) -> TopicName {
    TopicName(str_bytes(value))
}

impl Client {
    /// Creates topics; the outer error is a failed request, the inner ones per-topic outcomes.
    pub fn create_topics(
        &mut self,
        topics: &[NewTopic],
        timeout_ms: i32,
    ) -> Result<TopicResults, ClientError> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|topic| {
                        CreatableTopic::default()
                            .with_name(topic_name(&topic.name))
                            .with_num_partitions(topic.partitions)
                            .with_replication_factor(topic.replication_factor)
                            .with_configs(
                                topic
                                    .configs
                                    .iter()
                                    .map(|(name, value)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(name))
                                            .with_value(Some(str_bytes(value)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (response, _) = self.send_to_controller(&request)?;
        Ok(response
            .topics
            .into_iter()
            .map(|result| {
                let name = result.name.0.to_string();
                let outcome = check_code(
                    result.error_code,
                    || format!("CreateTopics {name}"),
                    result.error_message.as_deref(),
                );
                (name, outcome)
            })
            .collect())
    }

    /// Deletes topics by name; inner results per topic.
    pub fn delete_topics(
        &mut self,
        names: &[&str],
        timeout_ms: i32,
    ) -> Result<TopicResults, ClientError> {
        let (response, _) = self.send_built(Target::Controller, |version| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            // v0-5 carry names in topic_names, v6+ in topics.
            if version >= DELETE_TOPICS_STATE_VERSION {
                request.with_topics(
                    names
                        .iter()
                        .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
                        .collect(),
                )
            } else {
                request.with_topic_names(names.iter().map(|name| topic_name(name)).collect())
            }
        })?;
        for name in names {
            self.invalidate_topic(name);
        }
        Ok(response
            .responses
            .into_iter()
            .map(|result| {
                let name = result
                    .name
                    .map(|name| name.0.to_string())
                    .unwrap_or_default();
                let outcome = check_code(
                    result.error_code,
                    || format!("DeleteTopics {name}"),
                    result.error_message.as_deref(),
                );
                (name, outcome)
            })
            .collect())
    }

    /// All configs of a topic, sorted by name.
    pub fn describe_topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(str_bytes(topic))
                .with_configuration_keys(None),
        ]);
        let (response, _) = self.send_any(&request)?;
        let result = response
            .results
            .into_iter()
            .find(|result| result.resource_name.as_str() == topic)
            .ok_or_else(|| ClientError::Protocol {
                addr: "DescribeConfigs".into(),
                reason: format!("no result for topic {topic}"),
            })?;
        check_code(
            result.error_code,
            || format!("DescribeConfigs {topic}"),
            result.error_message.as_deref(),
        )?;
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|config| ConfigEntry {
                name: config.name.to_string(),
                value: config.value.map(|value| value.to_string()),
                read_only: config.read_only,
                is_default: config.config_source == CONFIG_SOURCE_DEFAULT,
                is_sensitive: config.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Sets (`Some(value)`) or deletes back to the default (`None`) configs of a topic with
    /// IncrementalAlterConfigs (what `kafka-configs --alter` sends).
    pub fn alter_topic_configs(
        &mut self,
        topic: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), ClientError> {
        let configs = changes
            .iter()
            .map(|(name, value)| {
                AlterableConfig::default()
                    .with_name(str_bytes(name))
                    .with_config_operation(if value.is_some() {
                        ALTER_OP_SET
                    } else {
                        ALTER_OP_DELETE
                    })
                    .with_value(value.as_deref().map(str_bytes))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(str_bytes(topic))
                .with_configs(configs),
        ]);
        let (response, _) = self.send_any(&request)?;
        let result = response
            .responses
            .into_iter()
            .find(|result| result.resource_name.as_str() == topic)
            .ok_or_else(|| ClientError::Protocol {
                addr: "IncrementalAlterConfigs".into(),
                reason: format!("no result for topic {topic}"),
            })?;
        check_code(
            result.error_code,
            || format!("IncrementalAlterConfigs {topic}"),
            result.error_message.as_deref(),
        )
    }

    /// Looks up offsets of `partitions` of `topic`, asking each partition's leader. Returns
    /// partition → (offset, timestamp); any partition error fails the call.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, (i64, i64)>, ClientError> {
        let by_leader =
            self.group_by_leader(topic, partitions.iter().map(|p| (*p, ())).collect())?;
        let mut found = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(partition, ())| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*partition)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(spec.timestamp())
                            })
                            .collect(),
                    )]);
            let (response, _) = self.send_to(leader, &request)?;
            for topic_response in response.topics {
                for partition in topic_response.partitions {
                    if partition.error_code != 0 {
                        self.invalidate_topic(topic);
                    }
                    check_code(
                        partition.error_code,
                        || format!("ListOffsets {topic}-{}", partition.partition_index),
                        None,
                    )?;
                    found.insert(
                        partition.partition_index,
                        (partition.offset, partition.timestamp),
                    );
                }
            }
        }
        Ok(found)
    }
}
