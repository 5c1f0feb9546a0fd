//! The requests brokers send the active controller over the controller listener, and their
//! answers: one sub-API id each, payloads as flatbuffers (`schema/fbs/controller.fbs`). Kafka
//! defines BrokerRegistration and BrokerHeartbeat for the same purpose; ours carry what our
//! controller needs, and the admin requests carry our own decoded form of Kafka's requests.

use flatbuffers::FlatBufferBuilder;
use ringbroker_schema::controller as fb;
use thiserror::Error;

use super::controller::{Heartbeat, Registration, TopicOutcome, TopicSpec};
use super::records::{
    build_acl, build_configs, build_endpoints, build_scram_credential, build_scram_removal,
    read_acl, read_configs, read_endpoints, read_scram_credential, read_scram_removal,
    UserScramCredential,
};
use crate::admin::configs::{ConfigOp, OpType};
use crate::security::acl::types::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
};
use crate::security::sasl::credentials::ScramMechanism;

/// A broker registers (answer: `RegisterBrokerResponse`).
pub const API_REGISTER_BROKER: u16 = 1;
/// A broker heartbeats (answer: `HeartbeatResponse`).
pub const API_HEARTBEAT: u16 = 2;
/// A broker that is not a voter fetches committed metadata (answer: `FetchMetadataResponse`).
pub const API_FETCH_METADATA: u16 = 3;
/// CreateTopics forwarded by a broker (answer: `TopicsResponse`).
pub const API_CREATE_TOPICS: u16 = 10;
/// DeleteTopics forwarded by a broker (answer: `TopicsResponse`).
pub const API_DELETE_TOPICS: u16 = 11;
/// CreatePartitions forwarded by a broker (answer: `TopicsResponse`).
pub const API_CREATE_PARTITIONS: u16 = 12;
/// AlterConfigs / IncrementalAlterConfigs forwarded by a broker (answer: `TopicsResponse`).
pub const API_ALTER_CONFIGS: u16 = 13;
/// A partition leader's ISR change (Kafka's AlterPartition).
pub const API_ALTER_PARTITION: u16 = 14;
/// Leader elections asked by an operator (Kafka's ElectLeaders).
pub const API_ELECT_LEADERS: u16 = 15;
/// CreateAcls forwarded by a broker (answer: `TopicsResponse`, one outcome per ACL).
pub const API_CREATE_ACLS: u16 = 16;
/// DeleteAcls forwarded by a broker (answer: `TopicsResponse`, one outcome per filter, and the
/// ACLs removed).
pub const API_DELETE_ACLS: u16 = 17;
/// AlterUserScramCredentials forwarded by a broker, or a broker's start-up credentials (answer:
/// `TopicsResponse`, one outcome per user).
pub const API_ALTER_SCRAM_CREDENTIALS: u16 = 18;

/// The error text a voter that is not the active controller answers with, followed by the
/// leader it knows of (-1: none); the caller retries there.
pub const NOT_CONTROLLER: &str = "NOT_CONTROLLER leader=";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed controller message: {0}")]
pub struct DecodeError(pub String);

fn root<'a, T: flatbuffers::Follow<'a> + flatbuffers::Verifiable + 'a>(
    bytes: &'a [u8],
) -> Result<T::Inner, DecodeError> {
    flatbuffers::root::<T>(bytes).map_err(|e| DecodeError(e.to_string()))
}

fn finish<T>(mut fbb: FlatBufferBuilder<'_>, root: flatbuffers::WIPOffset<T>) -> Vec<u8> {
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

fn incarnation_of(bytes: Option<flatbuffers::Vector<'_, u8>>) -> Result<[u8; 16], DecodeError> {
    bytes
        .and_then(|v| v.bytes().try_into().ok())
        .ok_or_else(|| DecodeError("incarnation must be 16 bytes".into()))
}

// ------------------------------------------------------------------------------ registration

pub fn encode_registration(r: &Registration) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(256);
    let incarnation = Some(fbb.create_vector(&r.incarnation));
    // The inter-broker listener also fills the one-endpoint fields (a controller from before
    // `listeners` reads those).
    let first = r.listeners.first();
    let host = Some(fbb.create_string(first.map_or("", |l| l.host.as_str())));
    let listeners = Some(build_endpoints(&mut fbb, &r.listeners));
    let rack = r.rack.as_deref().map(|s| fbb.create_string(s));
    let cluster_id = r.cluster_id.as_deref().map(|s| fbb.create_string(s));
    let root = fb::RegisterBrokerRequest::create(
        &mut fbb,
        &fb::RegisterBrokerRequestArgs {
            node_id: r.node_id,
            incarnation,
            host,
            port: first.map_or(-1, |l| l.port),
            rack,
            cluster_id,
            listeners,
        },
    );
    finish(fbb, root)
}

pub fn decode_registration(bytes: &[u8]) -> Result<Registration, DecodeError> {
    let r = root::<fb::RegisterBrokerRequest>(bytes)?;
    Ok(Registration {
        node_id: r.node_id(),
        incarnation: incarnation_of(r.incarnation())?,
        listeners: read_endpoints(r.listeners(), r.host(), r.port())
            .ok_or_else(|| DecodeError("registration without a valid listener".into()))?,
        rack: r.rack().map(str::to_string),
        cluster_id: r.cluster_id().map(str::to_string),
    })
}

/// The answer to a registration: the broker epoch, or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationReply {
    pub error_code: i16,
    pub message: Option<String>,
    pub epoch: i64,
}

pub fn encode_registration_reply(r: &RegistrationReply) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64);
    let message = r.message.as_deref().map(|m| fbb.create_string(m));
    let root = fb::RegisterBrokerResponse::create(
        &mut fbb,
        &fb::RegisterBrokerResponseArgs {
            error_code: r.error_code,
            message,
            epoch: r.epoch,
        },
    );
    finish(fbb, root)
}

pub fn decode_registration_reply(bytes: &[u8]) -> Result<RegistrationReply, DecodeError> {
    let r = root::<fb::RegisterBrokerResponse>(bytes)?;
    Ok(RegistrationReply {
        error_code: r.error_code(),
        message: r.message().map(str::to_string),
        epoch: r.epoch(),
    })
}

// ------------------------------------------------------------------------------ heartbeats

pub fn encode_heartbeat(h: &Heartbeat) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64);
    let root = fb::HeartbeatRequest::create(
        &mut fbb,
        &fb::HeartbeatRequestArgs {
            node_id: h.node_id,
            epoch: h.epoch,
            applied_index: h.applied_index as i64,
            want_shutdown: h.want_shutdown,
            log_dir_offline: h.log_dir_offline,
        },
    );
    finish(fbb, root)
}

pub fn decode_heartbeat(bytes: &[u8]) -> Result<Heartbeat, DecodeError> {
    let r = root::<fb::HeartbeatRequest>(bytes)?;
    Ok(Heartbeat {
        node_id: r.node_id(),
        epoch: r.epoch(),
        applied_index: u64::try_from(r.applied_index()).unwrap_or(0),
        want_shutdown: r.want_shutdown(),
        log_dir_offline: r.log_dir_offline(),
    })
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub error_code: i16,
    pub message: Option<String>,
    pub fenced: bool,
    pub shutdown_complete: bool,
}

pub fn encode_heartbeat_reply(r: &HeartbeatReply) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64);
    let message = r.message.as_deref().map(|m| fbb.create_string(m));
    let root = fb::HeartbeatResponse::create(
        &mut fbb,
        &fb::HeartbeatResponseArgs {
            error_code: r.error_code,
            message,
            fenced: r.fenced,
            shutdown_complete: r.shutdown_complete,
        },
    );
    finish(fbb, root)
}

pub fn decode_heartbeat_reply(bytes: &[u8]) -> Result<HeartbeatReply, DecodeError> {
    let r = root::<fb::HeartbeatResponse>(bytes)?;
    Ok(HeartbeatReply {
        error_code: r.error_code(),
        message: r.message().map(str::to_string),
        fenced: r.fenced(),
        shutdown_complete: r.shutdown_complete(),
    })
}

// ------------------------------------------------------------------------------ metadata fetch

/// A fetch of committed metadata entries from `from_index` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchMetadata {
    pub node_id: i32,
    pub from_index: u64,
    pub max_bytes: usize,
}

pub fn encode_fetch_metadata(f: &FetchMetadata) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(64);
    let root = fb::FetchMetadataRequest::create(
        &mut fbb,
        &fb::FetchMetadataRequestArgs {
            node_id: f.node_id,
            from_index: f.from_index as i64,
            max_bytes: i32::try_from(f.max_bytes).unwrap_or(i32::MAX),
        },
    );
    finish(fbb, root)
}

pub fn decode_fetch_metadata(bytes: &[u8]) -> Result<FetchMetadata, DecodeError> {
    let r = root::<fb::FetchMetadataRequest>(bytes)?;
    Ok(FetchMetadata {
        node_id: r.node_id(),
        from_index: u64::try_from(r.from_index()).unwrap_or(0),
        max_bytes: usize::try_from(r.max_bytes()).unwrap_or(0),
    })
}

/// Committed entries (`(index, MetadataEntry bytes)`), or a snapshot to restore first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChunk {
    pub entries: Vec<(u64, Vec<u8>)>,
    pub snapshot: Option<(u64, Vec<u8>)>,
}

pub fn encode_metadata_chunk(c: &MetadataChunk) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(
        256 + c.entries.iter().map(|(_, e)| e.len() + 16).sum::<usize>(),
    );
    let entries: Vec<_> = c
        .entries
        .iter()
        .map(|(index, entry)| {
            let entry = Some(fbb.create_vector(entry));
            fb::FetchMetadataEntry::create(
                &mut fbb,
                &fb::FetchMetadataEntryArgs {
                    index: *index as i64,
                    entry,
                },
            )
        })
        .collect();
    let entries = Some(fbb.create_vector(&entries));
    let snapshot = c.snapshot.as_ref().map(|(_, s)| fbb.create_vector(s));
    let root = fb::FetchMetadataResponse::create(
        &mut fbb,
        &fb::FetchMetadataResponseArgs {
            error_code: 0,
            entries,
            snapshot,
            snapshot_index: c.snapshot.as_ref().map_or(0, |(i, _)| *i as i64),
            high_index: 0,
        },
    );
    finish(fbb, root)
}

pub fn decode_metadata_chunk(bytes: &[u8]) -> Result<MetadataChunk, DecodeError> {
    let r = root::<fb::FetchMetadataResponse>(bytes)?;
    let entries = r
        .entries()
        .iter()
        .flatten()
        .map(|e| {
            let entry = e.entry().map(|v| v.bytes().to_vec()).unwrap_or_default();
            (u64::try_from(e.index()).unwrap_or(0), entry)
        })
        .collect();
    let snapshot = r.snapshot().map(|s| {
        (
            u64::try_from(r.snapshot_index()).unwrap_or(0),
            s.bytes().to_vec(),
        )
    });
    Ok(MetadataChunk { entries, snapshot })
}

// ------------------------------------------------------------------------------ admin requests

/// A topic-changing request forwarded to the active controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    CreateTopics {
        topics: Vec<TopicSpec>,
        validate_only: bool,
        internal: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    },
    AlterConfigs {
        name: String,
        ops: Vec<ConfigOp>,
        replace_all: bool,
        validate_only: bool,
    },
    AlterPartition {
        name: String,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    /// The answer has one outcome per partition, named `topic:partition` (a topic name has no
    /// colon), in the order of `partitions` (every partition's, for None).
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    /// ACLs already checked as Kafka checks a new ACL; one outcome per ACL, named by its index.
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// Filters already checked; one outcome per filter, named by its index.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// SCRAM credential changes already checked as Kafka checks them; one outcome per user,
    /// named by the user, in the order users first appear (`scram_users`).
    AlterScramCredentials(ScramChanges),
}

/// SCRAM credentials to add or replace and to remove (see `AlterScramCredentialsRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramChanges {
    pub upsertions: Vec<UserScramCredential>,
    pub deletions: Vec<(String, ScramMechanism)>,
    /// Add only what the cluster lacks, never replace (start-up credentials).
    pub only_if_absent: bool,
}

impl ScramChanges {
    /// The users the changes touch, each once, in the order they first appear (upsertions, then
    /// deletions): what the answer's outcomes are named.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = Vec::new();
        let named = self
            .upsertions
            .iter()
            .map(|u| &u.user)
            .chain(self.deletions.iter().map(|(user, _)| user));
        for user in named {
            if !users.contains(user) {
                users.push(user.clone());
            }
        }
        users
    }
}

fn assignments<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    lists: &[Vec<i32>],
) -> flatbuffers::WIPOffset<
    flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<fb::PartitionAssignment<'b>>>,
> {
    let items: Vec<_> = lists
        .iter()
        .map(|replicas| {
            let replicas = Some(fbb.create_vector(replicas));
            fb::PartitionAssignment::create(fbb, &fb::PartitionAssignmentArgs { replicas })
        })
        .collect();
    fbb.create_vector(&items)
}

fn read_assignments(
    items: Option<
        flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::PartitionAssignment<'_>>>,
    >,
) -> Vec<Vec<i32>> {
    items
        .iter()
        .flatten()
        .map(|a| a.replicas().map(|r| r.iter().collect()).unwrap_or_default())
        .collect()
}

impl AdminRequest {
    /// The sub-API id this request travels under.
    pub fn api(&self) -> u16 {
        match self {
            AdminRequest::CreateTopics { .. } => API_CREATE_TOPICS,
            AdminRequest::DeleteTopics { .. } => API_DELETE_TOPICS,
            AdminRequest::CreatePartitions { .. } => API_CREATE_PARTITIONS,
            AdminRequest::AlterConfigs { .. } => API_ALTER_CONFIGS,
            AdminRequest::AlterPartition { .. } => API_ALTER_PARTITION,
            AdminRequest::ElectLeaders { .. } => API_ELECT_LEADERS,
            AdminRequest::CreateAcls { .. } => API_CREATE_ACLS,
            AdminRequest::DeleteAcls { .. } => API_DELETE_ACLS,
            AdminRequest::AlterScramCredentials(_) => API_ALTER_SCRAM_CREDENTIALS,
        }
    }

    /// What the answer's outcomes are named: the topics, `topic:partition` for ElectLeaders, the
    /// entry's index for the ACL requests.
    pub fn entry_names(&self) -> Vec<String> {
        match self {
            AdminRequest::CreateTopics { topics, .. } => {
                topics.iter().map(|t| t.name.clone()).collect()
            }
            AdminRequest::DeleteTopics { names } => names.clone(),
            AdminRequest::CreatePartitions { name, .. }
            | AdminRequest::AlterConfigs { name, .. }
            | AdminRequest::AlterPartition { name, .. } => vec![name.clone()],
            AdminRequest::ElectLeaders { partitions, .. } => partitions
                .iter()
                .flatten()
                .map(|(topic, partition)| format!("{topic}:{partition}"))
                .collect(),
            AdminRequest::CreateAcls { acls } => (0..acls.len()).map(|i| i.to_string()).collect(),
            AdminRequest::DeleteAcls { filters } => {
                (0..filters.len()).map(|i| i.to_string()).collect()
            }
            AdminRequest::AlterScramCredentials(changes) => changes.users(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::with_capacity(256);
        match self {
            AdminRequest::CreateTopics {
                topics,
                validate_only,
                internal,
            } => {
                let specs: Vec<_> = topics
                    .iter()
                    .map(|t| {
                        let name = Some(fbb.create_string(&t.name));
                        let assignments = Some(assignments(&mut fbb, &t.assignments));
                        let configs = Some(build_configs(&mut fbb, &t.configs));
                        fb::NewTopicSpec::create(
                            &mut fbb,
                            &fb::NewTopicSpecArgs {
                                name,
                                partitions: t.partitions,
                                replication_factor: t.replication_factor,
                                assignments,
                                configs,
                            },
                        )
                    })
                    .collect();
                let topics = Some(fbb.create_vector(&specs));
                let root = fb::CreateTopicsRequest::create(
                    &mut fbb,
                    &fb::CreateTopicsRequestArgs {
                        topics,
                        validate_only: *validate_only,
                        internal: *internal,
                    },
                );
                finish(fbb, root)
            }
            AdminRequest::DeleteTopics { names } => {
                let names: Vec<_> = names.iter().map(|n| fbb.create_string(n)).collect();
                let names = Some(fbb.create_vector(&names));
                let root = fb::DeleteTopicsRequest::create(
                    &mut fbb,
                    &fb::DeleteTopicsRequestArgs { names },
                );
                finish(fbb, root)
            }
            AdminRequest::CreatePartitions {
                name,
                count,
                assignments: lists,
                validate_only,
            } => {
                let name = Some(fbb.create_string(name));
                let assignments = Some(assignments(&mut fbb, lists));
                let spec = fb::CreatePartitionsSpec::create(
                    &mut fbb,
                    &fb::CreatePartitionsSpecArgs {
                        name,
                        count: *count,
                        assignments,
                    },
                );
                let topics = Some(fbb.create_vector(&[spec]));
                let root = fb::CreatePartitionsRequest::create(
                    &mut fbb,
                    &fb::CreatePartitionsRequestArgs {
                        topics,
                        validate_only: *validate_only,
                    },
                );
                finish(fbb, root)
            }
            AdminRequest::AlterConfigs {
                name,
                ops,
                replace_all,
                validate_only,
            } => {
                let name = Some(fbb.create_string(name));
                let ops: Vec<_> = ops
                    .iter()
                    .map(|op| {
                        let key = Some(fbb.create_string(&op.key));
                        let value = op.value.as_deref().map(|v| fbb.create_string(v));
                        fb::ConfigOp::create(
                            &mut fbb,
                            &fb::ConfigOpArgs {
                                key,
                                value,
                                op: op.op as i8,
                            },
                        )
                    })
                    .collect();
                let ops = Some(fbb.create_vector(&ops));
                let topic = fb::AlterTopicConfigs::create(
                    &mut fbb,
                    &fb::AlterTopicConfigsArgs {
                        name,
                        ops,
                        replace_all: *replace_all,
                    },
                );
                let topics = Some(fbb.create_vector(&[topic]));
                let root = fb::AlterConfigsRequest::create(
                    &mut fbb,
                    &fb::AlterConfigsRequestArgs {
                        topics,
                        validate_only: *validate_only,
                    },
                );
                finish(fbb, root)
            }
            AdminRequest::AlterPartition {
                name,
                partition,
                leader_id,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let topic = Some(fbb.create_string(name));
                let new_isr = Some(fbb.create_vector(new_isr));
                let root = fb::AlterPartitionRequest::create(
                    &mut fbb,
                    &fb::AlterPartitionRequestArgs {
                        topic,
                        partition: *partition,
                        leader_id: *leader_id,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                        new_isr,
                    },
                );
                finish(fbb, root)
            }
            AdminRequest::ElectLeaders {
                partitions,
                unclean,
            } => {
                let listed = partitions.as_deref().unwrap_or_default();
                let topics: Vec<_> = listed.iter().map(|(t, _)| fbb.create_string(t)).collect();
                let topics = Some(fbb.create_vector(&topics));
                let indexes: Vec<i32> = listed.iter().map(|(_, p)| *p).collect();
                let partitions_vector = Some(fbb.create_vector(&indexes));
                let root = fb::ElectLeadersRequest::create(
                    &mut fbb,
                    &fb::ElectLeadersRequestArgs {
                        topics,
                        partitions: partitions_vector,
                        all: partitions.is_none(),
                        unclean: *unclean,
                    },
                );
                finish(fbb, root)
            }
            AdminRequest::CreateAcls { acls } => {
                let acls: Vec<_> = acls.iter().map(|a| build_acl(&mut fbb, a)).collect();
                let acls = Some(fbb.create_vector(&acls));
                let root =
                    fb::CreateAclsRequest::create(&mut fbb, &fb::CreateAclsRequestArgs { acls });
                finish(fbb, root)
            }
            AdminRequest::DeleteAcls { filters } => {
                let filters: Vec<_> = filters.iter().map(|f| build_filter(&mut fbb, f)).collect();
                let filters = Some(fbb.create_vector(&filters));
                let root =
                    fb::DeleteAclsRequest::create(&mut fbb, &fb::DeleteAclsRequestArgs { filters });
                finish(fbb, root)
            }
            AdminRequest::AlterScramCredentials(changes) => encode_scram_changes(fbb, changes),
        }
    }

    pub fn decode(api: u16, bytes: &[u8]) -> Result<AdminRequest, DecodeError> {
        match api {
            API_CREATE_TOPICS => {
                let r = root::<fb::CreateTopicsRequest>(bytes)?;
                let topics = r
                    .topics()
                    .iter()
                    .flatten()
                    .map(|t| {
                        Ok(TopicSpec {
                            name: t
                                .name()
                                .ok_or_else(|| DecodeError("topic without a name".into()))?
                                .to_string(),
                            partitions: t.partitions(),
                            replication_factor: t.replication_factor(),
                            assignments: read_assignments(t.assignments()),
                            configs: read_configs(t.configs()),
                        })
                    })
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                Ok(AdminRequest::CreateTopics {
                    topics,
                    validate_only: r.validate_only(),
                    internal: r.internal(),
                })
            }
            API_DELETE_TOPICS => {
                let r = root::<fb::DeleteTopicsRequest>(bytes)?;
                let names = r.names().iter().flatten().map(str::to_string).collect();
                Ok(AdminRequest::DeleteTopics { names })
            }
            API_CREATE_PARTITIONS => {
                let r = root::<fb::CreatePartitionsRequest>(bytes)?;
                let spec = r
                    .topics()
                    .and_then(|t| t.iter().next())
                    .ok_or_else(|| DecodeError("CreatePartitions without a topic".into()))?;
                Ok(AdminRequest::CreatePartitions {
                    name: spec.name().unwrap_or_default().to_string(),
                    count: spec.count(),
                    assignments: read_assignments(spec.assignments()),
                    validate_only: r.validate_only(),
                })
            }
            API_ALTER_CONFIGS => {
                let r = root::<fb::AlterConfigsRequest>(bytes)?;
                let topic = r
                    .topics()
                    .and_then(|t| t.iter().next())
                    .ok_or_else(|| DecodeError("AlterConfigs without a topic".into()))?;
                let ops = topic
                    .ops()
                    .iter()
                    .flatten()
                    .map(|op| {
                        let kind = OpType::from_code(op.op())
                            .ok_or_else(|| DecodeError(format!("config operation {}", op.op())))?;
                        Ok(ConfigOp {
                            key: op.key().unwrap_or_default().to_string(),
                            value: op.value().map(str::to_string),
                            op: kind,
                        })
                    })
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                Ok(AdminRequest::AlterConfigs {
                    name: topic.name().unwrap_or_default().to_string(),
                    ops,
                    replace_all: topic.replace_all(),
                    validate_only: r.validate_only(),
                })
            }
            API_ALTER_PARTITION => {
                let r = root::<fb::AlterPartitionRequest>(bytes)?;
                Ok(AdminRequest::AlterPartition {
                    name: r.topic().unwrap_or_default().to_string(),
                    partition: r.partition(),
                    leader_id: r.leader_id(),
                    leader_epoch: r.leader_epoch(),
                    partition_epoch: r.partition_epoch(),
                    new_isr: r.new_isr().map(|v| v.iter().collect()).unwrap_or_default(),
                })
            }
            API_ELECT_LEADERS => {
                let r = root::<fb::ElectLeadersRequest>(bytes)?;
                let partitions = if r.all() {
                    None
                } else {
                    let topics: Vec<String> =
                        r.topics().iter().flatten().map(str::to_string).collect();
                    let indexes: Vec<i32> = r
                        .partitions()
                        .map(|v| v.iter().collect())
                        .unwrap_or_default();
                    if topics.len() != indexes.len() {
                        return Err(DecodeError(
                            "ElectLeaders lists of different lengths".into(),
                        ));
                    }
                    Some(topics.into_iter().zip(indexes).collect())
                };
                Ok(AdminRequest::ElectLeaders {
                    partitions,
                    unclean: r.unclean(),
                })
            }
            API_CREATE_ACLS => {
                let r = root::<fb::CreateAclsRequest>(bytes)?;
                let acls = r
                    .acls()
                    .iter()
                    .flatten()
                    .map(|a| read_acl(Some(a)).ok_or_else(|| DecodeError("malformed ACL".into())))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                Ok(AdminRequest::CreateAcls { acls })
            }
            API_DELETE_ACLS => {
                let r = root::<fb::DeleteAclsRequest>(bytes)?;
                let filters = r
                    .filters()
                    .iter()
                    .flatten()
                    .map(read_filter)
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                Ok(AdminRequest::DeleteAcls { filters })
            }
            API_ALTER_SCRAM_CREDENTIALS => decode_scram_changes(bytes),
            other => Err(DecodeError(format!("unknown controller api {other}"))),
        }
    }
}

fn encode_scram_changes(mut fbb: FlatBufferBuilder<'_>, changes: &ScramChanges) -> Vec<u8> {
    let upsertions: Vec<_> = changes
        .upsertions
        .iter()
        .map(|c| build_scram_credential(&mut fbb, c))
        .collect();
    let upsertions = Some(fbb.create_vector(&upsertions));
    let deletions: Vec<_> = changes
        .deletions
        .iter()
        .map(|(user, mechanism)| build_scram_removal(&mut fbb, user, *mechanism))
        .collect();
    let deletions = Some(fbb.create_vector(&deletions));
    let root = fb::AlterScramCredentialsRequest::create(
        &mut fbb,
        &fb::AlterScramCredentialsRequestArgs {
            upsertions,
            deletions,
            only_if_absent: changes.only_if_absent,
        },
    );
    finish(fbb, root)
}

fn decode_scram_changes(bytes: &[u8]) -> Result<AdminRequest, DecodeError> {
    let r = root::<fb::AlterScramCredentialsRequest>(bytes)?;
    let malformed = || DecodeError("malformed SCRAM credential".into());
    let upsertions = r
        .upsertions()
        .iter()
        .flatten()
        .map(|c| read_scram_credential(Some(c)).ok_or_else(malformed))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let deletions = r
        .deletions()
        .iter()
        .flatten()
        .map(|d| read_scram_removal(Some(d)).ok_or_else(malformed))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    Ok(AdminRequest::AlterScramCredentials(ScramChanges {
        upsertions,
        deletions,
        only_if_absent: r.only_if_absent(),
    }))
}

fn build_filter<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    filter: &AclFilter,
) -> flatbuffers::WIPOffset<fb::AclFilterEntry<'b>> {
    let resource_name = filter
        .resource_name
        .as_deref()
        .map(|n| fbb.create_string(n));
    let principal = filter.principal.as_deref().map(|p| fbb.create_string(p));
    let host = filter.host.as_deref().map(|h| fbb.create_string(h));
    fb::AclFilterEntry::create(
        fbb,
        &fb::AclFilterEntryArgs {
            resource_type: filter.resource_type.code(),
            resource_name,
            pattern_type: filter.pattern_type.code(),
            principal,
            host,
            operation: filter.operation.code(),
            permission: filter.permission.code(),
        },
    )
}

fn read_filter(f: fb::AclFilterEntry<'_>) -> Result<AclFilter, DecodeError> {
    let unknown = || DecodeError("an unknown code in an ACL filter".into());
    Ok(AclFilter {
        resource_type: ResourceType::from_code(f.resource_type()).ok_or_else(unknown)?,
        resource_name: f.resource_name().map(str::to_string),
        pattern_type: PatternType::from_code(f.pattern_type()).ok_or_else(unknown)?,
        principal: f.principal().map(str::to_string),
        host: f.host().map(str::to_string),
        operation: Operation::from_code(f.operation()).ok_or_else(unknown)?,
        permission: Permission::from_code(f.permission()).ok_or_else(unknown)?,
    })
}

/// The answer to an admin request: one outcome per topic, and the metadata log index that holds
/// the change (-1 when nothing changed). DeleteAcls also lists the ACLs removed, each with the
/// index of the filter that matched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminReply {
    pub outcomes: Vec<TopicOutcome>,
    pub index: Option<u64>,
    pub removed_acls: Vec<(usize, AclBinding)>,
}

impl AdminReply {
    /// The same error for every entry the request names (`AdminRequest::entry_names`).
    pub fn failed(request: &AdminRequest, error_code: i16, message: &str) -> AdminReply {
        AdminReply {
            outcomes: request
                .entry_names()
                .into_iter()
                .map(|name| TopicOutcome {
                    name,
                    error_code,
                    message: Some(message.to_string()),
                })
                .collect(),
            ..AdminReply::default()
        }
    }
}

pub fn encode_admin_reply(r: &AdminReply) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(128);
    let outcomes: Vec<_> = r
        .outcomes
        .iter()
        .map(|o| {
            let name = Some(fbb.create_string(&o.name));
            let message = o.message.as_deref().map(|m| fbb.create_string(m));
            fb::TopicOutcome::create(
                &mut fbb,
                &fb::TopicOutcomeArgs {
                    name,
                    error_code: o.error_code,
                    message,
                },
            )
        })
        .collect();
    let outcomes = Some(fbb.create_vector(&outcomes));
    let removed: Vec<_> = r
        .removed_acls
        .iter()
        .map(|(filter, acl)| {
            let acl = Some(build_acl(&mut fbb, acl));
            fb::RemovedAcl::create(
                &mut fbb,
                &fb::RemovedAclArgs {
                    filter: *filter as i32,
                    acl,
                },
            )
        })
        .collect();
    let removed_acls = (!removed.is_empty()).then(|| fbb.create_vector(&removed));
    let root = fb::TopicsResponse::create(
        &mut fbb,
        &fb::TopicsResponseArgs {
            outcomes,
            index: r.index.map_or(-1, |i| i as i64),
            removed_acls,
        },
    );
    finish(fbb, root)
}

pub fn decode_admin_reply(bytes: &[u8]) -> Result<AdminReply, DecodeError> {
    let r = root::<fb::TopicsResponse>(bytes)?;
    let outcomes = r
        .outcomes()
        .iter()
        .flatten()
        .map(|o| TopicOutcome {
            name: o.name().unwrap_or_default().to_string(),
            error_code: o.error_code(),
            message: o.message().map(str::to_string),
        })
        .collect();
    let removed_acls = r
        .removed_acls()
        .iter()
        .flatten()
        .map(|removed| {
            let filter = usize::try_from(removed.filter())
                .map_err(|_| DecodeError("a negative ACL filter index".into()))?;
            let acl = read_acl(removed.acl()).ok_or_else(|| DecodeError("malformed ACL".into()))?;
            Ok((filter, acl))
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    Ok(AdminReply {
        outcomes,
        index: u64::try_from(r.index()).ok(),
        removed_acls,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::records::BrokerEndpoint;

    #[test]
    fn every_request_round_trips() {
        let requests = vec![
            AdminRequest::CreateTopics {
                topics: vec![TopicSpec {
                    name: "t".into(),
                    partitions: 3,
                    replication_factor: -1,
                    assignments: vec![vec![1], vec![2]],
                    configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
                }],
                validate_only: true,
                internal: false,
            },
            AdminRequest::DeleteTopics {
                names: vec!["a".into(), "b".into()],
            },
            AdminRequest::CreatePartitions {
                name: "t".into(),
                count: 9,
                assignments: vec![],
                validate_only: false,
            },
            AdminRequest::AlterConfigs {
                name: "t".into(),
                ops: vec![ConfigOp {
                    key: "retention.ms".into(),
                    value: None,
                    op: OpType::Delete,
                }],
                replace_all: false,
                validate_only: false,
            },
            AdminRequest::CreateAcls {
                acls: vec![an_acl()],
            },
            AdminRequest::DeleteAcls {
                filters: vec![AclFilter {
                    resource_type: ResourceType::Topic,
                    resource_name: Some("orders".into()),
                    pattern_type: PatternType::Match,
                    principal: None,
                    host: None,
                    operation: Operation::Any,
                    permission: Permission::Allow,
                }],
            },
            AdminRequest::AlterScramCredentials(ScramChanges {
                upsertions: vec![UserScramCredential {
                    user: "alice".into(),
                    mechanism: ScramMechanism::Sha256,
                    credential: crate::security::sasl::credentials::ScramCredential::from_password(
                        ScramMechanism::Sha256,
                        b"pw",
                        b"salt",
                        8192,
                    ),
                }],
                deletions: vec![("bob".into(), ScramMechanism::Sha512)],
                only_if_absent: true,
            }),
        ];
        for request in requests {
            let decoded = AdminRequest::decode(request.api(), &request.encode()).expect("decode");
            assert_eq!(decoded, request);
        }
        let registration = Registration {
            node_id: 3,
            incarnation: [5; 16],
            listeners: vec![
                BrokerEndpoint::plaintext("h", 1),
                BrokerEndpoint {
                    name: "SASL_SSL".into(),
                    host: "h".into(),
                    port: 2,
                    protocol: crate::security::SecurityProtocol::SaslSsl,
                },
            ],
            rack: Some("r".into()),
            cluster_id: None,
        };
        let decoded = decode_registration(&encode_registration(&registration)).expect("decode");
        assert_eq!(decoded.incarnation, registration.incarnation);
        assert_eq!(decoded.rack, registration.rack);
        assert_eq!(decoded.listeners, registration.listeners);
        let beat = Heartbeat {
            node_id: 3,
            epoch: 7,
            applied_index: 9,
            want_shutdown: true,
            log_dir_offline: true,
        };
        let decoded = decode_heartbeat(&encode_heartbeat(&beat)).expect("decode");
        assert_eq!(
            (
                decoded.epoch,
                decoded.applied_index,
                decoded.want_shutdown,
                decoded.log_dir_offline
            ),
            (7, 9, true, true)
        );
        let chunk = MetadataChunk {
            entries: vec![(4, vec![1, 2]), (5, vec![])],
            snapshot: Some((3, vec![9])),
        };
        assert_eq!(
            decode_metadata_chunk(&encode_metadata_chunk(&chunk)).expect("decode"),
            chunk
        );
        let reply = AdminReply {
            outcomes: vec![TopicOutcome {
                name: "t".into(),
                error_code: 36,
                message: Some("exists".into()),
            }],
            index: Some(12),
            removed_acls: vec![(1, an_acl())],
        };
        assert_eq!(
            decode_admin_reply(&encode_admin_reply(&reply)).expect("decode"),
            reply
        );
        assert!(AdminRequest::decode(99, b"x").is_err());
        assert!(decode_heartbeat(b"garbage").is_err());
    }

    #[test]
    fn a_registration_without_listeners_is_its_one_plaintext_endpoint() {
        // What a broker from before `listeners` sends (a rolling upgrade).
        let mut fbb = FlatBufferBuilder::new();
        let incarnation = Some(fbb.create_vector(&[1u8; 16]));
        let host = Some(fbb.create_string("10.0.0.1"));
        let root = fb::RegisterBrokerRequest::create(
            &mut fbb,
            &fb::RegisterBrokerRequestArgs {
                node_id: 1,
                incarnation,
                host,
                port: 9092,
                ..Default::default()
            },
        );
        let decoded = decode_registration(&finish(fbb, root)).expect("decode");
        assert_eq!(
            decoded.listeners,
            vec![BrokerEndpoint::plaintext("10.0.0.1", 9092)]
        );
        let mut fbb = FlatBufferBuilder::new();
        let incarnation = Some(fbb.create_vector(&[1u8; 16]));
        let root = fb::RegisterBrokerRequest::create(
            &mut fbb,
            &fb::RegisterBrokerRequestArgs {
                node_id: 1,
                incarnation,
                ..Default::default()
            },
        );
        assert!(
            decode_registration(&finish(fbb, root)).is_err(),
            "no endpoint at all"
        );
    }

    fn an_acl() -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Group,
            resource_name: "g".into(),
            pattern_type: PatternType::Literal,
            principal: "User:bob".into(),
            host: "10.0.0.1".into(),
            operation: Operation::Read,
            permission: Permission::Deny,
        }
    }
}
