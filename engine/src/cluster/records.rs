//! The metadata log's records as Rust values, and their flatbuffers form (`schema/fbs/controller.fbs`).
//!
//! One Raft entry is one `MetadataEntry`: the records of one controller decision, applied together. A
//! snapshot is one `MetadataEntry` as well, holding the records that rebuild the whole image. Decoding
//! checks every field a record needs: an entry that does not decode is a bug or a damaged log, and
//! the caller refuses it as a whole.

use std::collections::BTreeMap;

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};
use ringbroker_schema::controller as fb;
use thiserror::Error;

use crate::metadata::PartitionState;
use crate::security::acl::types::{AclBinding, Operation, PatternType, Permission, ResourceType};

/// Kafka topic id (UUID bytes).
pub type TopicId = [u8; 16];

/// A broker as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// Random per broker process start: a restart is a new incarnation.
    pub incarnation: [u8; 16],
    /// The broker epoch: the metadata log index of the registration (set when applied).
    pub epoch: i64,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
    pub shutting_down: bool,
}

/// One metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    ClusterId(String),
    Broker(BrokerRegistration),
    BrokerState {
        node_id: i32,
        epoch: i64,
        fenced: bool,
        shutting_down: bool,
    },
    /// The broker's data directory went offline or came back (`replication::log_dir`).
    BrokerLogDir {
        node_id: i32,
        epoch: i64,
        offline: bool,
    },
    Topic {
        name: String,
        topic_id: TopicId,
        configs: BTreeMap<String, String>,
    },
    Partition {
        topic_id: TopicId,
        partition: i32,
        state: PartitionState,
    },
    RemoveTopic {
        topic_id: TopicId,
    },
    TopicConfig {
        topic_id: TopicId,
        configs: BTreeMap<String, String>,
    },
    /// An ACL added (Kafka's AccessControlEntryRecord).
    AccessControlEntry(AclBinding),
    /// An ACL removed (Kafka's RemoveAccessControlEntryRecord).
    RemoveAccessControlEntry(AclBinding),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("metadata entry is not a valid flatbuffer: {0}")]
    Malformed(String),
    #[error("metadata record {index} lacks {field}")]
    Missing { index: usize, field: &'static str },
    #[error("metadata record {index} has an unknown type")]
    UnknownType { index: usize },
}

/// Encodes records as one `MetadataEntry`.
pub fn encode(records: &[MetadataRecord]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(256 + 64 * records.len());
    let offsets: Vec<_> = records.iter().map(|r| build_record(&mut fbb, r)).collect();
    let records = fbb.create_vector(&offsets);
    let entry = fb::MetadataEntry::create(
        &mut fbb,
        &fb::MetadataEntryArgs {
            records: Some(records),
        },
    );
    fbb.finish(entry, None);
    fbb.finished_data().to_vec()
}

fn build_record<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    record: &MetadataRecord,
) -> WIPOffset<fb::Record<'b>> {
    let (body_type, body) = match record {
        MetadataRecord::ClusterId(id) => {
            let cluster_id = Some(fbb.create_string(id));
            let r = fb::ClusterIdRecord::create(fbb, &fb::ClusterIdRecordArgs { cluster_id });
            (fb::RecordBody::ClusterIdRecord, r.as_union_value())
        }
        MetadataRecord::Broker(b) => {
            let incarnation = Some(fbb.create_vector(&b.incarnation));
            let host = Some(fbb.create_string(&b.host));
            let rack = b.rack.as_deref().map(|r| fbb.create_string(r));
            let r = fb::BrokerRecord::create(
                fbb,
                &fb::BrokerRecordArgs {
                    node_id: b.node_id,
                    incarnation,
                    epoch: b.epoch,
                    host,
                    port: b.port,
                    rack,
                    fenced: b.fenced,
                },
            );
            (fb::RecordBody::BrokerRecord, r.as_union_value())
        }
        MetadataRecord::BrokerState {
            node_id,
            epoch,
            fenced,
            shutting_down,
        } => {
            let r = fb::BrokerStateRecord::create(
                fbb,
                &fb::BrokerStateRecordArgs {
                    node_id: *node_id,
                    epoch: *epoch,
                    fenced: *fenced,
                    shutting_down: *shutting_down,
                },
            );
            (fb::RecordBody::BrokerStateRecord, r.as_union_value())
        }
        MetadataRecord::BrokerLogDir {
            node_id,
            epoch,
            offline,
        } => {
            let r = fb::BrokerLogDirRecord::create(
                fbb,
                &fb::BrokerLogDirRecordArgs {
                    node_id: *node_id,
                    epoch: *epoch,
                    offline: *offline,
                },
            );
            (fb::RecordBody::BrokerLogDirRecord, r.as_union_value())
        }
        MetadataRecord::Topic {
            name,
            topic_id,
            configs,
        } => {
            let name = Some(fbb.create_string(name));
            let topic_id = Some(fbb.create_vector(topic_id));
            let configs = Some(build_configs(fbb, configs));
            let r = fb::TopicRecord::create(
                fbb,
                &fb::TopicRecordArgs {
                    name,
                    topic_id,
                    configs,
                },
            );
            (fb::RecordBody::TopicRecord, r.as_union_value())
        }
        MetadataRecord::Partition {
            topic_id,
            partition,
            state,
        } => {
            let topic_id = Some(fbb.create_vector(topic_id));
            let replicas = Some(fbb.create_vector(&state.replicas));
            let isr = Some(fbb.create_vector(&state.isr));
            let r = fb::PartitionRecord::create(
                fbb,
                &fb::PartitionRecordArgs {
                    topic_id,
                    partition: *partition,
                    replicas,
                    isr,
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    partition_epoch: state.partition_epoch,
                },
            );
            (fb::RecordBody::PartitionRecord, r.as_union_value())
        }
        MetadataRecord::RemoveTopic { topic_id } => {
            let topic_id = Some(fbb.create_vector(topic_id));
            let r = fb::RemoveTopicRecord::create(fbb, &fb::RemoveTopicRecordArgs { topic_id });
            (fb::RecordBody::RemoveTopicRecord, r.as_union_value())
        }
        MetadataRecord::TopicConfig { topic_id, configs } => {
            let topic_id = Some(fbb.create_vector(topic_id));
            let configs = Some(build_configs(fbb, configs));
            let r = fb::TopicConfigRecord::create(
                fbb,
                &fb::TopicConfigRecordArgs { topic_id, configs },
            );
            (fb::RecordBody::TopicConfigRecord, r.as_union_value())
        }
        MetadataRecord::AccessControlEntry(acl) => {
            let acl = Some(build_acl(fbb, acl));
            let r = fb::AccessControlEntryRecord::create(
                fbb,
                &fb::AccessControlEntryRecordArgs { acl },
            );
            (fb::RecordBody::AccessControlEntryRecord, r.as_union_value())
        }
        MetadataRecord::RemoveAccessControlEntry(acl) => {
            let acl = Some(build_acl(fbb, acl));
            let r = fb::RemoveAccessControlEntryRecord::create(
                fbb,
                &fb::RemoveAccessControlEntryRecordArgs { acl },
            );
            (
                fb::RecordBody::RemoveAccessControlEntryRecord,
                r.as_union_value(),
            )
        }
    };
    fb::Record::create(
        fbb,
        &fb::RecordArgs {
            body_type,
            body: Some(body),
        },
    )
}

/// Builds a config list (shared by records and requests).
pub fn build_configs<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    configs: &BTreeMap<String, String>,
) -> WIPOffset<Vector<'b, ForwardsUOffset<fb::ConfigEntry<'b>>>> {
    let entries: Vec<_> = configs
        .iter()
        .map(|(k, v)| {
            let key = Some(fbb.create_string(k));
            let value = Some(fbb.create_string(v));
            fb::ConfigEntry::create(fbb, &fb::ConfigEntryArgs { key, value })
        })
        .collect();
    fbb.create_vector(&entries)
}

/// Reads a config list back (entries without a key are dropped).
pub fn read_configs(
    entries: Option<Vector<'_, ForwardsUOffset<fb::ConfigEntry<'_>>>>,
) -> BTreeMap<String, String> {
    entries
        .iter()
        .flatten()
        .filter_map(|c| Some((c.key()?.to_string(), c.value().unwrap_or("").to_string())))
        .collect()
}

/// Builds an ACL (shared by records and requests).
pub fn build_acl<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    acl: &AclBinding,
) -> WIPOffset<fb::AclEntry<'b>> {
    let resource_name = Some(fbb.create_string(&acl.resource_name));
    let principal = Some(fbb.create_string(&acl.principal));
    let host = Some(fbb.create_string(&acl.host));
    fb::AclEntry::create(
        fbb,
        &fb::AclEntryArgs {
            resource_type: acl.resource_type.code(),
            resource_name,
            pattern_type: acl.pattern_type.code(),
            principal,
            host,
            operation: acl.operation.code(),
            permission: acl.permission.code(),
        },
    )
}

/// Reads an ACL back: `None` when a field is absent or a code is not Kafka's.
pub fn read_acl(entry: Option<fb::AclEntry<'_>>) -> Option<AclBinding> {
    let entry = entry?;
    Some(AclBinding {
        resource_type: ResourceType::from_code(entry.resource_type())?,
        resource_name: entry.resource_name()?.to_string(),
        pattern_type: PatternType::from_code(entry.pattern_type())?,
        principal: entry.principal()?.to_string(),
        host: entry.host()?.to_string(),
        operation: Operation::from_code(entry.operation())?,
        permission: Permission::from_code(entry.permission())?,
    })
}

/// Decodes one `MetadataEntry`.
pub fn decode(bytes: &[u8]) -> Result<Vec<MetadataRecord>, RecordError> {
    let entry = flatbuffers::root::<fb::MetadataEntry>(bytes)
        .map_err(|e| RecordError::Malformed(e.to_string()))?;
    let Some(records) = entry.records() else {
        return Ok(Vec::new());
    };
    records
        .iter()
        .enumerate()
        .map(|(index, record)| decode_record(index, &record))
        .collect()
}

fn decode_record(index: usize, record: &fb::Record<'_>) -> Result<MetadataRecord, RecordError> {
    let missing = |field| RecordError::Missing { index, field };
    let topic_id = |bytes: Option<Vector<'_, u8>>| -> Result<TopicId, RecordError> {
        let bytes = bytes.ok_or(missing("topic_id"))?;
        bytes.bytes().try_into().map_err(|_| missing("topic_id"))
    };
    if let Some(r) = record.body_as_cluster_id_record() {
        let id = r.cluster_id().ok_or(missing("cluster_id"))?;
        return Ok(MetadataRecord::ClusterId(id.to_string()));
    }
    if let Some(r) = record.body_as_broker_record() {
        let incarnation = r
            .incarnation()
            .and_then(|v| v.bytes().try_into().ok())
            .ok_or(missing("incarnation"))?;
        return Ok(MetadataRecord::Broker(BrokerRegistration {
            node_id: r.node_id(),
            incarnation,
            epoch: r.epoch(),
            host: r.host().ok_or(missing("host"))?.to_string(),
            port: r.port(),
            rack: r.rack().map(str::to_string),
            fenced: r.fenced(),
            shutting_down: false,
        }));
    }
    if let Some(r) = record.body_as_broker_state_record() {
        return Ok(MetadataRecord::BrokerState {
            node_id: r.node_id(),
            epoch: r.epoch(),
            fenced: r.fenced(),
            shutting_down: r.shutting_down(),
        });
    }
    if let Some(r) = record.body_as_broker_log_dir_record() {
        return Ok(MetadataRecord::BrokerLogDir {
            node_id: r.node_id(),
            epoch: r.epoch(),
            offline: r.offline(),
        });
    }
    if let Some(r) = record.body_as_topic_record() {
        return Ok(MetadataRecord::Topic {
            name: r.name().ok_or(missing("name"))?.to_string(),
            topic_id: topic_id(r.topic_id())?,
            configs: read_configs(r.configs()),
        });
    }
    if let Some(r) = record.body_as_partition_record() {
        let ints = |v: Option<Vector<'_, i32>>| v.map(|v| v.iter().collect()).unwrap_or_default();
        return Ok(MetadataRecord::Partition {
            topic_id: topic_id(r.topic_id())?,
            partition: r.partition(),
            state: PartitionState {
                replicas: ints(r.replicas()),
                isr: ints(r.isr()),
                leader: r.leader(),
                leader_epoch: r.leader_epoch(),
                partition_epoch: r.partition_epoch(),
            },
        });
    }
    if let Some(r) = record.body_as_remove_topic_record() {
        return Ok(MetadataRecord::RemoveTopic {
            topic_id: topic_id(r.topic_id())?,
        });
    }
    if let Some(r) = record.body_as_topic_config_record() {
        return Ok(MetadataRecord::TopicConfig {
            topic_id: topic_id(r.topic_id())?,
            configs: read_configs(r.configs()),
        });
    }
    if let Some(r) = record.body_as_access_control_entry_record() {
        let acl = read_acl(r.acl()).ok_or(missing("acl"))?;
        return Ok(MetadataRecord::AccessControlEntry(acl));
    }
    if let Some(r) = record.body_as_remove_access_control_entry_record() {
        let acl = read_acl(r.acl()).ok_or(missing("acl"))?;
        return Ok(MetadataRecord::RemoveAccessControlEntry(acl));
    }
    Err(RecordError::UnknownType { index })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<MetadataRecord> {
        vec![
            MetadataRecord::ClusterId("c-1".into()),
            MetadataRecord::Broker(BrokerRegistration {
                node_id: 2,
                incarnation: [7; 16],
                epoch: 12,
                host: "10.0.0.2".into(),
                port: 9092,
                rack: Some("r1".into()),
                fenced: true,
                shutting_down: false,
            }),
            MetadataRecord::BrokerState {
                node_id: 2,
                epoch: 12,
                fenced: false,
                shutting_down: true,
            },
            MetadataRecord::BrokerLogDir {
                node_id: 2,
                epoch: 12,
                offline: true,
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: [1; 16],
                configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            },
            MetadataRecord::Partition {
                topic_id: [1; 16],
                partition: 3,
                state: PartitionState {
                    replicas: vec![2, 3],
                    isr: vec![2],
                    leader: 2,
                    leader_epoch: 4,
                    partition_epoch: 5,
                },
            },
            MetadataRecord::RemoveTopic { topic_id: [1; 16] },
            MetadataRecord::TopicConfig {
                topic_id: [1; 16],
                configs: BTreeMap::new(),
            },
            MetadataRecord::AccessControlEntry(an_acl()),
            MetadataRecord::RemoveAccessControlEntry(AclBinding {
                permission: Permission::Deny,
                ..an_acl()
            }),
        ]
    }

    fn an_acl() -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "orders-".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = every_kind();
        assert_eq!(decode(&encode(&records)).expect("decode"), records);
        assert_eq!(decode(&encode(&[])).expect("empty"), vec![]);
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let bytes = encode(&every_kind());
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xFF;
            let _ = decode(&flipped);
            flipped[i] ^= 0xFF;
        }
        assert!(decode(b"not a flatbuffer").is_err());
    }
}
