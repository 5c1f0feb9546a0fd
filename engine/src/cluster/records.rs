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
use crate::security::sasl::credentials::{ScramCredential, ScramMechanism};
use crate::security::SecurityProtocol;

/// Kafka topic id (UUID bytes).
pub type TopicId = [u8; 16];

/// One client listener of a broker as it registered it (Kafka's BrokerEndpoint): clients that
/// came in on a listener of this name are given this host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: i32,
    pub protocol: SecurityProtocol,
}

impl BrokerEndpoint {
    /// The endpoint a record written before brokers registered their listeners stands for: the
    /// broker's first listener, which a cluster had to keep PLAINTEXT.
    pub fn plaintext(host: &str, port: i32) -> BrokerEndpoint {
        BrokerEndpoint {
            name: SecurityProtocol::Plaintext.name().to_string(),
            host: host.to_string(),
            port,
            protocol: SecurityProtocol::Plaintext,
        }
    }
}

/// A broker as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// Random per broker process start: a restart is a new incarnation.
    pub incarnation: [u8; 16],
    /// The broker epoch: the metadata log index of the registration (set when applied).
    pub epoch: i64,
    /// Every client listener, never empty; the broker puts its inter-broker one first.
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub shutting_down: bool,
}

impl BrokerRegistration {
    /// The endpoint the broker registered first: its inter-broker listener (other brokers find
    /// that one by `inter.broker.listener.name`; this names the broker in messages and fills the
    /// record's one-endpoint fields).
    pub fn inter_broker_endpoint(&self) -> Option<&BrokerEndpoint> {
        debug_assert!(!self.listeners.is_empty(), "a registration has a listener");
        self.listeners.first()
    }

    /// The endpoint of the listener named `name`, which clients of that listener are given
    /// (`None`: the broker has no such listener, and Kafka leaves it out of their answers).
    pub fn endpoint(&self, name: &str) -> Option<&BrokerEndpoint> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// One user's SCRAM credential for one mechanism (Kafka's UserScramCredentialRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredential {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
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
    /// A SCRAM credential added or replaced (Kafka's UserScramCredentialRecord).
    UserScramCredential(UserScramCredential),
    /// A SCRAM credential removed (Kafka's RemoveUserScramCredentialRecord).
    RemoveUserScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
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
            // The first listener also fills the one-endpoint fields, which a ringbroker from
            // before `listeners` reads (a rolling upgrade, or a step back).
            let first = b.inter_broker_endpoint();
            let host = Some(fbb.create_string(first.map_or("", |l| l.host.as_str())));
            let listeners = Some(build_endpoints(fbb, &b.listeners));
            let rack = b.rack.as_deref().map(|r| fbb.create_string(r));
            let r = fb::BrokerRecord::create(
                fbb,
                &fb::BrokerRecordArgs {
                    node_id: b.node_id,
                    incarnation,
                    epoch: b.epoch,
                    host,
                    port: first.map_or(-1, |l| l.port),
                    rack,
                    fenced: b.fenced,
                    listeners,
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
        MetadataRecord::UserScramCredential(c) => {
            let r = build_scram_credential(fbb, c);
            (
                fb::RecordBody::UserScramCredentialRecord,
                r.as_union_value(),
            )
        }
        MetadataRecord::RemoveUserScramCredential { user, mechanism } => {
            let r = build_scram_removal(fbb, user, *mechanism);
            (
                fb::RecordBody::RemoveUserScramCredentialRecord,
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

/// Builds a broker's listener list (shared by records and registrations).
pub fn build_endpoints<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    endpoints: &[BrokerEndpoint],
) -> WIPOffset<Vector<'b, ForwardsUOffset<fb::BrokerEndpoint<'b>>>> {
    let entries: Vec<_> = endpoints
        .iter()
        .map(|e| {
            let name = Some(fbb.create_string(&e.name));
            let host = Some(fbb.create_string(&e.host));
            fb::BrokerEndpoint::create(
                fbb,
                &fb::BrokerEndpointArgs {
                    name,
                    host,
                    port: e.port,
                    security_protocol: e.protocol.id(),
                },
            )
        })
        .collect();
    fbb.create_vector(&entries)
}

/// Reads a broker's listener list back. A record or registration without one (written before
/// brokers registered every listener) stands for its one endpoint `host:port`, as a PLAINTEXT
/// listener. `None` when an entry lacks a field or names an unknown protocol.
pub fn read_endpoints(
    entries: Option<Vector<'_, ForwardsUOffset<fb::BrokerEndpoint<'_>>>>,
    host: Option<&str>,
    port: i32,
) -> Option<Vec<BrokerEndpoint>> {
    let listed = entries.as_ref().map_or(0, |v| v.len());
    if listed == 0 {
        return Some(vec![BrokerEndpoint::plaintext(host?, port)]);
    }
    entries
        .iter()
        .flatten()
        .map(|e| {
            Some(BrokerEndpoint {
                name: e.name()?.to_string(),
                host: e.host()?.to_string(),
                port: e.port(),
                protocol: SecurityProtocol::from_id(e.security_protocol())?,
            })
        })
        .collect()
}

/// Builds a SCRAM credential (shared by records and requests).
pub fn build_scram_credential<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    c: &UserScramCredential,
) -> WIPOffset<fb::UserScramCredentialRecord<'b>> {
    let name = Some(fbb.create_string(&c.user));
    let salt = Some(fbb.create_vector(&c.credential.salt));
    let stored_key = Some(fbb.create_vector(&c.credential.stored_key));
    let server_key = Some(fbb.create_vector(&c.credential.server_key));
    fb::UserScramCredentialRecord::create(
        fbb,
        &fb::UserScramCredentialRecordArgs {
            name,
            mechanism: c.mechanism.kafka_type(),
            salt,
            stored_key,
            server_key,
            iterations: i32::try_from(c.credential.iterations).unwrap_or(i32::MAX),
        },
    )
}

/// Reads a SCRAM credential back: `None` when a field is absent or the mechanism is not Kafka's.
pub fn read_scram_credential(
    r: Option<fb::UserScramCredentialRecord<'_>>,
) -> Option<UserScramCredential> {
    let r = r?;
    Some(UserScramCredential {
        user: r.name()?.to_string(),
        mechanism: ScramMechanism::of_kafka_type(r.mechanism())?,
        credential: ScramCredential {
            salt: r.salt()?.bytes().to_vec(),
            iterations: u32::try_from(r.iterations()).ok()?,
            stored_key: r.stored_key()?.bytes().to_vec(),
            server_key: r.server_key()?.bytes().to_vec(),
        },
    })
}

/// Builds a SCRAM credential removal (shared by records and requests).
pub fn build_scram_removal<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    user: &str,
    mechanism: ScramMechanism,
) -> WIPOffset<fb::RemoveUserScramCredentialRecord<'b>> {
    let name = Some(fbb.create_string(user));
    fb::RemoveUserScramCredentialRecord::create(
        fbb,
        &fb::RemoveUserScramCredentialRecordArgs {
            name,
            mechanism: mechanism.kafka_type(),
        },
    )
}

/// Reads a SCRAM credential removal back (`None` as `read_scram_credential`).
pub fn read_scram_removal(
    r: Option<fb::RemoveUserScramCredentialRecord<'_>>,
) -> Option<(String, ScramMechanism)> {
    let r = r?;
    Some((
        r.name()?.to_string(),
        ScramMechanism::of_kafka_type(r.mechanism())?,
    ))
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
            listeners: read_endpoints(r.listeners(), r.host(), r.port())
                .ok_or(missing("listeners"))?,
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
    if let Some(r) = record.body_as_user_scram_credential_record() {
        let credential = read_scram_credential(Some(r)).ok_or(missing("scram credential"))?;
        return Ok(MetadataRecord::UserScramCredential(credential));
    }
    if let Some(r) = record.body_as_remove_user_scram_credential_record() {
        let (user, mechanism) = read_scram_removal(Some(r)).ok_or(missing("scram credential"))?;
        return Ok(MetadataRecord::RemoveUserScramCredential { user, mechanism });
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
                listeners: vec![
                    BrokerEndpoint::plaintext("10.0.0.2", 9092),
                    BrokerEndpoint {
                        name: "SASL_SSL".into(),
                        host: "broker2.example".into(),
                        port: 9094,
                        protocol: SecurityProtocol::SaslSsl,
                    },
                ],
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
            MetadataRecord::UserScramCredential(UserScramCredential {
                user: "alice".into(),
                mechanism: ScramMechanism::Sha512,
                credential: ScramCredential::from_password(
                    ScramMechanism::Sha512,
                    b"alice-secret",
                    b"salt",
                    4096,
                ),
            }),
            MetadataRecord::RemoveUserScramCredential {
                user: "bob".into(),
                mechanism: ScramMechanism::Sha256,
            },
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

    /// A BrokerRecord as a ringbroker from before `listeners` wrote it: one endpoint.
    fn one_endpoint_broker_record() -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let incarnation = Some(fbb.create_vector(&[3u8; 16]));
        let host = Some(fbb.create_string("10.0.0.3"));
        let broker = fb::BrokerRecord::create(
            &mut fbb,
            &fb::BrokerRecordArgs {
                node_id: 3,
                incarnation,
                epoch: 5,
                host,
                port: 9092,
                rack: None,
                fenced: false,
                listeners: None,
            },
        );
        let record = fb::Record::create(
            &mut fbb,
            &fb::RecordArgs {
                body_type: fb::RecordBody::BrokerRecord,
                body: Some(broker.as_union_value()),
            },
        );
        let records = Some(fbb.create_vector(&[record]));
        let entry = fb::MetadataEntry::create(&mut fbb, &fb::MetadataEntryArgs { records });
        fbb.finish(entry, None);
        fbb.finished_data().to_vec()
    }

    #[test]
    fn a_one_endpoint_broker_record_reads_as_a_plaintext_listener() {
        let decoded = decode(&one_endpoint_broker_record()).expect("an old record decodes");
        let [MetadataRecord::Broker(broker)] = decoded.as_slice() else {
            panic!("one broker record: {decoded:?}");
        };
        assert_eq!(
            broker.listeners,
            vec![BrokerEndpoint::plaintext("10.0.0.3", 9092)]
        );
        assert_eq!(broker.endpoint("PLAINTEXT").map(|e| e.port), Some(9092));
        assert!(broker.endpoint("SASL_SSL").is_none());
        assert!(!broker.fenced);
    }

    #[test]
    fn a_broker_record_keeps_its_first_listener_in_the_one_endpoint_fields() {
        let records = every_kind();
        let bytes = encode(&records[1..2]);
        let entry = flatbuffers::root::<fb::MetadataEntry>(&bytes).expect("entry");
        let record = entry.records().expect("records").get(0);
        let broker = record.body_as_broker_record().expect("a broker record");
        // What a ringbroker from before `listeners` reads.
        assert_eq!((broker.host(), broker.port()), (Some("10.0.0.2"), 9092));
        assert_eq!(broker.listeners().map(|l| l.len()), Some(2));
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
