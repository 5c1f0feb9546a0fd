//! Consumer-group calls: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups (and ConsumerGroupDescribe for consumer-protocol groups) and
//! DeleteGroups. Group calls go to the group's coordinator, found once
//! and cached; a NOT_COORDINATOR-style answer drops the cache so the next call looks it up again.

use super::assignor::{encode_assignment, Assignment, CONSUMER_PROTOCOL_TYPE};
use super::error::{
    check_code, ClientError, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
    GROUP_ID_NOT_FOUND, MEMBER_ID_REQUIRED, NOT_COORDINATOR,
};
use super::{Client, Target};
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeMap;
use std::time::Duration;

/// The state DescribeGroups reports for a group it does not know.
const GROUP_STATE_DEAD: &str = "Dead";
/// FindCoordinator rounds while the coordinator is loading or not yet available.
const COORDINATOR_RETRIES: usize = 20;
/// Pause between those rounds.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// FindCoordinator key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// First LeaveGroup version with the `members` array.
const LEAVE_GROUP_MEMBERS_VERSION: i16 = 3;
/// OffsetCommit retention "use the broker's default" (v2-4).
const DEFAULT_RETENTION_MS: i64 = -1;

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn group_id(value: &str) -> GroupId {
    GroupId(str_bytes(value))
}

/// Parameters of a JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub group_id: String,
    /// "" on the first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (assignor name, subscription bytes) in preference order.
    pub protocols: Vec<(String, Bytes)>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, subscription bytes); only the leader gets them.
    pub members: Vec<(String, Bytes)>,
}

impl JoinOutcome {
    /// True if this member must compute the assignment.
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 if the group has no offset for this partition.
    pub offset: i64,
    pub metadata: Option<String>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty before ListGroups v4.
    pub state: String,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// "Empty", "Stable", "PreparingRebalance", "CompletingRebalance", "Dead".
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignor, e.g. "range".
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

impl Client {
    /// The coordinator's node id for `group`, looked up once and cached.
    pub fn find_coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        if let Some(node) = self.coordinators.get(group) {
            return Ok(*node);
        }
        let request = FindCoordinatorRequest::default()
            .with_key(str_bytes(group))
            .with_key_type(KEY_TYPE_GROUP);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (response, _) = self.send_any(&request)?;
            let code = response.error_code;
            let transient =
                code == COORDINATOR_NOT_AVAILABLE || code == COORDINATOR_LOAD_IN_PROGRESS;
            if transient && attempt < COORDINATOR_RETRIES {
                std::thread::sleep(COORDINATOR_RETRY_BACKOFF);
                continue;
            }
            check_code(
                code,
                || format!("FindCoordinator for group {group}"),
                response.error_message.as_deref(),
            )?;
            let node = response.node_id.0;
            let host = response.host.to_string();
            let addr = if host.contains(':') {
                format!("[{host}]:{}", response.port)
            } else {
                format!("{host}:{}", response.port)
            };
            self.learn_broker(node, addr);
            self.coordinators.insert(group.to_owned(), node);
            return Ok(node);
        }
    }

    fn send_to_coordinator<R: Request + Clone>(
        &mut self,
        group: &str,
        request: &R,
    ) -> Result<(R::Response, i16), ClientError> {
        self.send_built_to_coordinator(group, |_| request.clone())
    }

    fn send_built_to_coordinator<R: Request>(
        &mut self,
        group: &str,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(R::Response, i16), ClientError> {
        let node = self.find_coordinator(group)?;
        let result = self.send_built(Target::Node(node), build);
        if result.is_err() {
            self.coordinators.remove(group);
        }
        result
    }

    /// Checks a group answer's code, forgetting the coordinator when it moved.
    fn check_group_code(
        &mut self,
        group: &str,
        code: i16,
        context: impl FnOnce() -> String,
    ) -> Result<(), ClientError> {
        if code == NOT_COORDINATOR || code == COORDINATOR_NOT_AVAILABLE {
            self.coordinators.remove(group);
        }
        check_code(code, context, None)
    }

    /// JoinGroup, repeating once with the assigned member id when the broker asks for it (v4+).
    pub fn join_group(&mut self, params: &JoinParams) -> Result<JoinOutcome, ClientError> {
        let mut member_id = params.member_id.clone();
        loop {
            let request = JoinGroupRequest::default()
                .with_group_id(group_id(&params.group_id))
                .with_session_timeout_ms(params.session_timeout_ms)
                .with_rebalance_timeout_ms(params.rebalance_timeout_ms)
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(params.group_instance_id.as_deref().map(str_bytes))
                .with_protocol_type(str_bytes(&params.protocol_type))
                .with_protocols(
                    params
                        .protocols
                        .iter()
                        .map(|(name, metadata)| {
                            JoinGroupRequestProtocol::default()
                                .with_name(str_bytes(name))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let (response, _) = self.send_to_coordinator(&params.group_id, &request)?;
            if response.error_code == MEMBER_ID_REQUIRED
                && member_id.is_empty()
                && !response.member_id.is_empty()
            {
                member_id = response.member_id.to_string();
                continue;
            }
            self.check_group_code(&params.group_id, response.error_code, || {
                format!("JoinGroup {}", params.group_id)
            })?;
            return Ok(JoinOutcome {
                generation_id: response.generation_id,
                protocol_name: response.protocol_name.map(|name| name.to_string()),
                leader: response.leader.to_string(),
                member_id: response.member_id.to_string(),
                members: response
                    .members
                    .into_iter()
                    .map(|member| (member.member_id.to_string(), member.metadata))
                    .collect(),
            });
        }
    }

    /// SyncGroup: the leader passes every member's assignment, others pass none; returns this member's.
    pub fn sync_group(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        protocol: Option<(&str, &str)>,
        assignments: &[(String, Bytes)],
    ) -> Result<Bytes, ClientError> {
        let request = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(protocol.map(|(kind, _)| str_bytes(kind)))
            .with_protocol_name(protocol.map(|(_, name)| str_bytes(name)))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(str_bytes(member))
                            .with_assignment(assignment.clone())
                    })
                    .collect(),
            );
        let (response, _) = self.send_to_coordinator(group, &request)?;
        self.check_group_code(group, response.error_code, || format!("SyncGroup {group}"))?;
        Ok(response.assignment)
    }

    /// Heartbeat; REBALANCE_IN_PROGRESS comes back as `ClientError::Kafka` (the caller rejoins).
    pub fn heartbeat(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
    ) -> Result<(), ClientError> {
        let request = HeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id));
        let (response, _) = self.send_to_coordinator(group, &request)?;
        self.check_group_code(group, response.error_code, || format!("Heartbeat {group}"))
    }

    /// LeaveGroup for one member (v0-2 member_id field, v3+ members array).
    pub fn leave_group(&mut self, group: &str, member_id: &str) -> Result<(), ClientError> {
        let (response, _) = self.send_built_to_coordinator(group, |version| {
            let request = LeaveGroupRequest::default().with_group_id(group_id(group));
            if version >= LEAVE_GROUP_MEMBERS_VERSION {
                request.with_members(vec![
                    MemberIdentity::default().with_member_id(str_bytes(member_id))
                ])
            } else {
                request.with_member_id(str_bytes(member_id))
            }
        })?;
        self.check_group_code(group, response.error_code, || format!("LeaveGroup {group}"))?;
        for member in response.members {
            check_code(
                member.error_code,
                || format!("LeaveGroup {group} member {}", member.member_id),
                None,
            )?;
        }
        Ok(())
    }

    /// Commits offsets of `topic` (partition, next offset to read). Outside a generation (an admin
    /// reset of an empty group) pass generation -1 and member "".
    pub fn commit_offsets(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), ClientError> {
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_retention_time_ms(DEFAULT_RETENTION_MS)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(partition, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*partition)
                                .with_committed_offset(*offset)
                                .with_committed_leader_epoch(-1)
                                // Empty, not null: null metadata breaks sarama (docs/COMPATIBILITY.md trap 15).
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                )]);
        let (response, _) = self.send_to_coordinator(group, &request)?;
        for topic_response in response.topics {
            for partition in topic_response.partitions {
                self.check_group_code(group, partition.error_code, || {
                    format!("OffsetCommit {group} {topic}-{}", partition.partition_index)
                })?;
            }
        }
        Ok(())
    }

    /// Committed offsets of `group`: of `topics` if given, else of every topic it has offsets for.
    /// Sorted by (topic, partition).
    pub fn fetch_committed_offsets(
        &mut self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            }));
        let (response, _) = self.send_to_coordinator(group, &request)?;
        self.check_group_code(group, response.error_code, || {
            format!("OffsetFetch {group}")
        })?;
        let mut offsets = Vec::new();
        for topic in response.topics {
            let name = topic.name.0.to_string();
            for partition in topic.partitions {
                check_code(
                    partition.error_code,
                    || format!("OffsetFetch {group} {name}-{}", partition.partition_index),
                    None,
                )?;
                offsets.push(CommittedOffset {
                    topic: name.clone(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    metadata: partition.metadata.map(|metadata| metadata.to_string()),
                });
            }
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// Every group on every broker (each broker lists the groups it coordinates), sorted by id.
    pub fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        let mut groups = BTreeMap::new();
        for node in self.broker_ids() {
            let (response, _) = self.send_to(node, &ListGroupsRequest::default())?;
            check_code(
                response.error_code,
                || format!("ListGroups on broker {node}"),
                None,
            )?;
            for group in response.groups {
                let listing = GroupListing {
                    group_id: group.group_id.0.to_string(),
                    protocol_type: group.protocol_type.to_string(),
                    state: group.group_state.to_string(),
                };
                groups.insert(listing.group_id.clone(), listing);
            }
        }
        Ok(groups.into_values().collect())
    }

    /// Describes one group (state, members, their assignments). A group DescribeGroups does not know
    /// (Dead) may be a consumer-protocol (KIP-848) group: it is then asked with ConsumerGroupDescribe, when
    /// the broker speaks it, and described alike (protocol type "consumer", the assignor as protocol, each
    /// member's assignment encoded as the classic consumer protocol's).
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let classic = self.describe_classic_group(group)?;
        if classic.state != GROUP_STATE_DEAD {
            return Ok(classic);
        }
        Ok(self.describe_consumer_group(group)?.unwrap_or(classic))
    }

    /// ConsumerGroupDescribe of one group; `None` when the broker does not speak it or the group is not a
    /// consumer-protocol group.
    fn describe_consumer_group(
        &mut self,
        group: &str,
    ) -> Result<Option<GroupDescription>, ClientError> {
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let response = match self.send_to_coordinator(group, &request) {
            Ok((response, _)) => response,
            Err(ClientError::UnsupportedApi { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(described) = response
            .groups
            .into_iter()
            .find(|described| described.group_id.0.as_str() == group)
        else {
            return Ok(None);
        };
        if described.error_code == GROUP_ID_NOT_FOUND {
            return Ok(None);
        }
        self.check_group_code(group, described.error_code, || {
            format!("ConsumerGroupDescribe {group}")
        })?;
        let members = described
            .members
            .into_iter()
            .map(|member| {
                let assigned: Assignment = member
                    .assignment
                    .topic_partitions
                    .iter()
                    .map(|t| (t.topic_name.0.to_string(), t.partitions.clone()))
                    .collect();
                Ok(GroupMember {
                    member_id: member.member_id.to_string(),
                    group_instance_id: member.instance_id.map(|id| id.to_string()),
                    client_id: member.client_id.to_string(),
                    client_host: member.client_host.to_string(),
                    metadata: Bytes::new(),
                    assignment: encode_assignment(&assigned)?,
                })
            })
            .collect::<Result<_, ClientError>>()?;
        Ok(Some(GroupDescription {
            group_id: group.to_owned(),
            state: described.group_state.to_string(),
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
            protocol: described.assignor_name.to_string(),
            members,
        }))
    }

    fn describe_classic_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let (response, _) = self.send_to_coordinator(group, &request)?;
        let described = response
            .groups
            .into_iter()
            .find(|described| described.group_id.0.as_str() == group)
            .ok_or_else(|| ClientError::Protocol {
                addr: format!("coordinator of {group}"),
                reason: "DescribeGroups answer does not name the group".into(),
            })?;
        self.check_group_code(group, described.error_code, || {
            format!("DescribeGroups {group}")
        })?;
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members: described
                .members
                .into_iter()
                .map(|member| GroupMember {
                    member_id: member.member_id.to_string(),
                    group_instance_id: member.group_instance_id.map(|id| id.to_string()),
                    client_id: member.client_id.to_string(),
                    client_host: member.client_host.to_string(),
                    metadata: member.member_metadata,
                    assignment: member.member_assignment,
                })
                .collect(),
        })
    }

    /// Deletes a group (it must have no active members) with its committed offsets.
    pub fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let (response, _) = self.send_to_coordinator(group, &request)?;
        let result = response
            .results
            .into_iter()
            .find(|result| result.group_id.0.as_str() == group)
            .ok_or_else(|| ClientError::Protocol {
                addr: format!("coordinator of {group}"),
                reason: "DeleteGroups answer does not name the group".into(),
            })?;
        self.coordinators.remove(group);
        check_code(result.error_code, || format!("DeleteGroups {group}"), None)
    }
}
