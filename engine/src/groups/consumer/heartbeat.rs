//! ConsumerGroupHeartbeat (v0-1), following Kafka's `GroupMetadataManager.consumerGroupHeartbeat` check
//! by check: validate the request; leave (epoch -1, or -2 for a static member that will come back); else
//! get or create the group (an empty classic group converts) and the member (a static member may take
//! over the entry of its previous incarnation), update its subscription, bump the group epoch when
//! subscriptions or subscribed topics changed, compute a new target assignment when the group epoch is
//! ahead of it, and move the member one step towards its target. The records of the change are durable
//! before the answer goes out.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as ResponseTopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use uuid::Uuid;

use super::assignor;
use super::model::{ConsumerGroup, ConsumerMember, JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH};
use super::records;
use super::subscription::{self, TopicShape};
use super::values::{MemberMetadataValue, MemberState, TopicPartitions};
use crate::groups::coordinator::{now_ms, ClientInfo, Inner};
use crate::groups::group::Group;
use crate::groups::responses::*;
use crate::groups::store::{CoordinatorRecord, GroupMetadataRecord};
use crate::metadata::TopicTable;

/// First ConsumerGroupHeartbeat version where the client must bring its own member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// An error answer: Kafka's code and a message saying what was wrong.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: i16,
    pub message: String,
}

impl Failure {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How the member of a heartbeat came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Already in the group.
    Known,
    /// Joined just now.
    New,
    /// A static member back under a new member id, taking over its previous entry.
    Takeover,
}

/// A decided heartbeat: its answer, and the records to make durable first.
pub(crate) struct Decision {
    pub response: ConsumerGroupHeartbeatResponse,
    pub records: Vec<CoordinatorRecord>,
}

pub(crate) fn failure_response(failure: Failure) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.error_code = failure.code;
    response.error_message = Some(str_bytes(&failure.message));
    response.member_epoch = -1;
    response
}

fn empty(value: &Option<kafka_protocol::protocol::StrBytes>) -> bool {
    value.as_ref().is_some_and(|v| v.is_empty())
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate(req: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), Failure> {
    let invalid = |message: &str| Err(Failure::new(INVALID_REQUEST, message));
    let epoch = req.member_epoch;
    if (version >= CLIENT_MEMBER_ID_VERSION || epoch > 0 || epoch == LEAVE_EPOCH)
        && req.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if req.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if empty(&req.instance_id) {
        return invalid("InstanceId can't be empty.");
    }
    if empty(&req.rack_id) {
        return invalid("RackId can't be empty.");
    }
    if epoch == JOIN_EPOCH {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == STATIC_LEAVE_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if epoch < STATIC_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = &req.server_assignor {
        if !assignor::is_supported(name) {
            return Err(Failure::new(
                UNSUPPORTED_ASSIGNOR,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    assignor::SUPPORTED.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A new member id as Kafka prints a `Uuid`: its 16 bytes in URL-safe base64 without padding (22
/// characters).
pub(crate) fn new_member_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = *Uuid::new_v4().as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        // A chunk of n bytes gives n + 1 characters (no padding).
        for digit in 0..=chunk.len() {
            let shift = 18 - 6 * digit;
            out.push(ALPHABET[((bits >> shift) & 0x3f) as usize] as char);
        }
    }
    debug_assert_eq!(out.len(), 22);
    out
}

/// The owned partitions of a heartbeat as a map (`None`: not sent).
fn owned_partitions(req: &ConsumerGroupHeartbeatRequest) -> Option<TopicPartitions> {
    req.topic_partitions.as_ref().map(|list| {
        let mut out = TopicPartitions::new();
        for topic in list {
            out.entry(topic.topic_id)
                .or_default()
                .extend(topic.partitions.iter().copied());
        }
        out.retain(|_, partitions| !partitions.is_empty());
        out
    })
}

fn is_subset(owned: Option<&TopicPartitions>, assigned: &TopicPartitions) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(topic, partitions)| {
        assigned
            .get(topic)
            .is_some_and(|mine| partitions.is_subset(mine))
    })
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: an epoch from the future, or from the past unless
/// it is the previous one and the member owns nothing it was not given (the answer with the bump may
/// have been lost), is fenced.
fn check_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&TopicPartitions>,
) -> Result<(), Failure> {
    let known = member.epoch();
    let fenced = received > known
        || (received < known
            && (received != member.current.previous_member_epoch
                || !is_subset(owned, &member.current.assigned)));
    if fenced {
        return Err(Failure::new(
            FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a member epoch ({received}) other than the one known by the \
                 group coordinator ({known}). The member must abandon all its partitions and rejoin."
            ),
        ));
    }
    Ok(())
}

impl Inner {
    /// ConsumerGroupHeartbeat: decided at once, answered once its records are durable.
    pub(crate) async fn consumer_heartbeat(
        self: &Rc<Self>,
        req: &ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo,
        topics: &TopicTable,
    ) -> ConsumerGroupHeartbeatResponse {
        let decided =
            validate(req, version).and_then(|()| self.decide_heartbeat(req, client, topics));
        let decision = match decided {
            Ok(decision) => decision,
            Err(failure) => return failure_response(failure),
        };
        if !decision.records.is_empty() {
            if let Err(error) = self.persist_and_apply(decision.records).await {
                tracing::warn!(group = %req.group_id.0.as_str(), %error, "consumer group change not persisted");
                // As for offsets: the client finds the coordinator again and retries.
                return failure_response(Failure::new(NOT_COORDINATOR, error.to_string()));
            }
        }
        decision.response
    }

    fn decide_heartbeat(
        self: &Rc<Self>,
        req: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        topics: &TopicTable,
    ) -> Result<Decision, Failure> {
        let mut groups = self.groups.borrow_mut();
        let group_id = req.group_id.0.to_string();
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            let group = groups.get_mut(&group_id);
            return self.consumer_leave(group, req);
        }
        let now = Instant::now();
        let mut records = Vec::new();
        let group =
            self.group_for_heartbeat(&mut groups, &group_id, req.member_epoch, &mut records)?;
        let Some(consumer) = group.consumer.as_deref_mut() else {
            debug_assert!(false, "group_for_heartbeat returns consumer groups");
            return Err(Failure::new(
                COORDINATOR_NOT_AVAILABLE,
                "group is not a consumer group",
            ));
        };
        if consumer.members.len() >= self.config.group_members_max
            && !consumer.members.contains_key(req.member_id.as_str())
        {
            return Err(Failure::new(
                GROUP_MAX_SIZE_REACHED,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.config.group_members_max
                ),
            ));
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.to_string()
        };
        let owned = owned_partitions(req);
        let session = self.config.consumer_session_timeout();
        let (member, arrival) = member_for_heartbeat(
            &group_id,
            consumer,
            &member_id,
            req,
            owned.as_ref(),
            now,
            session,
            &mut records,
        )?;
        let step = HeartbeatStep {
            inner: self,
            group_id: &group_id,
            topics,
            now,
        };
        step.apply(
            consumer,
            member,
            arrival,
            req,
            client,
            owned.as_ref(),
            &mut records,
        )
    }

    /// Kafka's `getOrMaybeCreateConsumerGroup`: a join creates a missing group and converts an empty
    /// classic one (its metadata is tombstoned, its offsets stay); a classic group with members cannot be
    /// joined with this protocol (GROUP_ID_NOT_FOUND, as Kafka answers when it cannot upgrade a group).
    fn group_for_heartbeat<'g>(
        &self,
        groups: &'g mut std::collections::HashMap<String, Group>,
        group_id: &str,
        member_epoch: i32,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<&'g mut Group, Failure> {
        let joining = member_epoch == JOIN_EPOCH;
        if !groups.contains_key(group_id) {
            if !joining {
                return Err(Failure::new(
                    GROUP_ID_NOT_FOUND,
                    format!("Consumer group {group_id} not found."),
                ));
            }
            let mut group = Group::new(group_id, Instant::now(), now_ms());
            group.consumer = Some(Box::default());
            groups.insert(group_id.to_string(), group);
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Err(Failure::new(COORDINATOR_NOT_AVAILABLE, "group vanished"));
        };
        if group.state == crate::groups::group::GroupState::Dead {
            return Err(Failure::new(
                COORDINATOR_NOT_AVAILABLE,
                "group is being deleted",
            ));
        }
        if group.consumer.is_none() {
            if !joining || !group.has_no_members() {
                return Err(Failure::new(
                    GROUP_ID_NOT_FOUND,
                    format!("Group {group_id} is not a consumer group."),
                ));
            }
            if group.persisted_metadata.is_some() {
                records.push(CoordinatorRecord::GroupMetadata(GroupMetadataRecord {
                    group_id: group_id.to_string(),
                    value: None,
                }));
            }
            tracing::info!(
                group = group_id,
                "empty classic group converted to the consumer protocol"
            );
            group.consumer = Some(Box::default());
            group.generation_id = 0;
            group.protocol_type = None;
        }
        Ok(group)
    }
}

/// The member a heartbeat is about: Kafka's `getOrMaybeSubscribe{Dynamic,Static}ConsumerGroupMember`.
/// Returns it (a copy to update) and how it arrived.
#[allow(clippy::too_many_arguments)]
fn member_for_heartbeat(
    group_id: &str,
    consumer: &mut ConsumerGroup,
    member_id: &str,
    req: &ConsumerGroupHeartbeatRequest,
    owned: Option<&TopicPartitions>,
    now: Instant,
    session: Duration,
    records: &mut Vec<CoordinatorRecord>,
) -> Result<(ConsumerMember, Arrival), Failure> {
    let unknown = || {
        Failure::new(
            UNKNOWN_MEMBER_ID,
            format!("Member {member_id} is not a member of group {group_id}."),
        )
    };
    let Some(instance_id) = req.instance_id.as_deref() else {
        if req.member_epoch == JOIN_EPOCH {
            return Ok(match consumer.members.get(member_id) {
                Some(member) => (member.clone(), Arrival::Known),
                None => (ConsumerMember::new(member_id, now + session), Arrival::New),
            });
        }
        let member = consumer.members.get(member_id).ok_or_else(unknown)?;
        check_epoch(member, req.member_epoch, owned)?;
        return Ok((member.clone(), Arrival::Known));
    };
    let holder = consumer.static_member_id(instance_id).map(str::to_string);
    if req.member_epoch != JOIN_EPOCH {
        let holder = holder.ok_or_else(|| {
            Failure::new(
                UNKNOWN_MEMBER_ID,
                format!("Instance id {instance_id} is unknown."),
            )
        })?;
        if holder != member_id {
            return Err(Failure::new(
                FENCED_INSTANCE_ID,
                format!("Static member {member_id} with instance id {instance_id} was fenced by member {holder}."),
            ));
        }
        let member = consumer.members.get(member_id).ok_or_else(unknown)?;
        check_epoch(member, req.member_epoch, owned)?;
        return Ok((member.clone(), Arrival::Known));
    }
    match holder {
        None => Ok(match consumer.members.get(member_id) {
            Some(member) => (member.clone(), Arrival::Known),
            None => (ConsumerMember::new(member_id, now + session), Arrival::New),
        }),
        Some(holder) if holder == member_id => {
            Ok((consumer.members[&holder].clone(), Arrival::Known))
        }
        Some(holder) => {
            let previous = &consumer.members[&holder];
            if previous.epoch() != STATIC_LEAVE_EPOCH {
                return Err(Failure::new(
                    UNRELEASED_INSTANCE_ID,
                    format!(
                        "Static member {member_id} with instance id {instance_id} cannot join the group \
                         because the instance id is owned by {holder} member."
                    ),
                ));
            }
            let member = take_over_static(
                group_id,
                consumer,
                &holder,
                member_id,
                now + session,
                records,
            );
            Ok((member, Arrival::Takeover))
        }
    }
}

/// A static member back under a new member id takes over its previous entry: its assignment (and target)
/// move to the new id; the old id's records are tombstoned.
fn take_over_static(
    group_id: &str,
    consumer: &mut ConsumerGroup,
    old_id: &str,
    new_id: &str,
    session_deadline: Instant,
    records: &mut Vec<CoordinatorRecord>,
) -> ConsumerMember {
    let target = consumer.target.get(old_id).cloned();
    let Some(previous) = consumer.remove_member(old_id) else {
        return ConsumerMember::new(new_id, session_deadline);
    };
    records.extend(records::member_tombstones(group_id, old_id));
    let mut member = previous;
    member.member_id = new_id.to_string();
    member.session_deadline = session_deadline;
    member.revocation_deadline = None;
    if let Some(target) = target {
        records.push(records::target_member(group_id, new_id, &target));
        consumer.target.insert(new_id.to_string(), target);
    }
    tracing::info!(
        group = group_id,
        old = old_id,
        new = new_id,
        "static member came back"
    );
    member
}

/// The member's subscription with what the heartbeat changed (a null field: unchanged).
fn updated_metadata(
    previous: &MemberMetadataValue,
    req: &ConsumerGroupHeartbeatRequest,
    client: &ClientInfo,
) -> MemberMetadataValue {
    let mut metadata = previous.clone();
    if let Some(instance) = &req.instance_id {
        metadata.instance_id = Some(instance.to_string());
    }
    if let Some(rack) = &req.rack_id {
        metadata.rack_id = Some(rack.to_string());
    }
    if req.rebalance_timeout_ms != -1 {
        metadata.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if let Some(name) = &req.server_assignor {
        metadata.server_assignor = Some(name.to_string());
    }
    if let Some(names) = &req.subscribed_topic_names {
        let sorted: BTreeSet<String> = names.iter().map(|n| n.0.to_string()).collect();
        metadata.subscribed_topic_names = sorted.into_iter().collect();
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        metadata.subscribed_topic_regex = Some(regex.to_string()).filter(|r| !r.is_empty());
    }
    metadata.client_id = client.client_id.clone();
    metadata.client_host = client.client_host.clone();
    metadata
}

/// The steps of a heartbeat once the member is known.
struct HeartbeatStep<'a> {
    inner: &'a Rc<Inner>,
    group_id: &'a str,
    topics: &'a TopicTable,
    now: Instant,
}

impl HeartbeatStep<'_> {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        consumer: &mut ConsumerGroup,
        mut member: ConsumerMember,
        arrival: Arrival,
        req: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        owned: Option<&TopicPartitions>,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<Decision, Failure> {
        let metadata = updated_metadata(&member.metadata, req, client);
        // Everything that can refuse the heartbeat comes before the group changes.
        if let Some(pattern) = &metadata.subscribed_topic_regex {
            compile_once(consumer, pattern)?;
        }
        if member.current.state == MemberState::Unknown && owned.is_none_or(|o| !o.is_empty()) {
            return Err(Failure::new(
                FENCED_MEMBER_EPOCH,
                "The consumer group member is in an unknown state; it must rejoin without partitions.",
            ));
        }
        // A static member taking over its old entry keeps its subscription: no new epoch unless it
        // changed.
        let subscription_changed = arrival == Arrival::New
            || metadata.subscribed_topic_names != member.metadata.subscribed_topic_names
            || metadata.subscribed_topic_regex != member.metadata.subscribed_topic_regex
            || metadata.server_assignor != member.metadata.server_assignor;
        let joined = arrival != Arrival::Known;
        if joined || metadata != member.metadata {
            member.metadata = metadata;
            records.push(records::member(self.group_id, &member));
        }
        let old_assigned = member.current.assigned.clone();
        member.session_deadline = self.now + self.inner.config.consumer_session_timeout();
        consumer.put_member(member.clone());
        let mut bump = consumer.group_epoch == 0 || subscription_changed;
        bump |= self.refresh_regexes(consumer, records)?;
        let hash = subscription::metadata_hash(self.topics, &consumer.subscribed_topics());
        if hash != consumer.metadata_hash {
            consumer.metadata_hash = hash;
            bump = true;
        }
        if bump {
            consumer.group_epoch += 1;
            records.push(records::group_epoch(self.group_id, consumer));
            tracing::debug!(
                group = self.group_id,
                epoch = consumer.group_epoch,
                "group epoch bumped"
            );
        }
        if consumer.group_epoch > consumer.assignment_epoch {
            self.update_target(consumer, records);
        }
        let member_id = member.member_id.clone();
        self.reconcile(consumer, &member_id, owned, records)?;
        if joined {
            self.inner
                .spawn_consumer_session_timer(self.group_id, &member_id);
        }
        let member = &consumer.members[&member_id];
        let full = req.member_epoch == JOIN_EPOCH
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.topic_partitions.is_some());
        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.member_id = Some(str_bytes(&member_id));
        response.member_epoch = member.epoch();
        response.heartbeat_interval_ms = self.inner.config.consumer_heartbeat_interval_ms;
        if full || member.current.assigned != old_assigned {
            response.assignment = Some(assignment_of(&member.current.assigned));
        }
        Ok(Decision {
            response,
            records: std::mem::take(records),
        })
    }

    /// Resolves new regular expressions (invalid ones are refused), forgets unused ones, and matches the
    /// rest again when their resolution is older than the refresh interval. Returns whether any
    /// resolution changed (the group epoch must move).
    fn refresh_regexes(
        &self,
        consumer: &mut ConsumerGroup,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<bool, Failure> {
        let wanted: BTreeSet<String> = consumer
            .members
            .values()
            .filter_map(|m| m.metadata.subscribed_topic_regex.clone())
            .collect();
        let stale = consumer.regexes_resolved_at.is_none_or(|at| {
            self.now.saturating_duration_since(at)
                >= self.inner.config.consumer_regex_refresh_interval()
        });
        let mut changed = false;
        for pattern in &wanted {
            compile_once(consumer, pattern)?;
            if !stale && consumer.regexes.contains_key(pattern) {
                continue;
            }
            let topics = subscription::resolve(&consumer.compiled_regexes[pattern], self.topics);
            if consumer
                .regexes
                .get(pattern)
                .is_some_and(|r| r.topics == topics)
            {
                continue;
            }
            let version = consumer.regexes.get(pattern).map_or(1, |r| r.version + 1);
            let value = super::values::ResolvedRegexValue {
                topics,
                version,
                timestamp_ms: now_ms(),
            };
            consumer.regexes.insert(pattern.clone(), value.clone());
            records.push(records::record(
                self.group_id,
                super::values::ConsumerRecordKind::Regex {
                    regex: pattern.clone(),
                    value: Some(value),
                },
            ));
            changed = true;
        }
        if stale {
            consumer.regexes_resolved_at = Some(self.now);
        }
        let unused: Vec<String> = consumer
            .regexes
            .keys()
            .filter(|r| !wanted.contains(*r))
            .cloned()
            .collect();
        for pattern in unused {
            consumer.regexes.remove(&pattern);
            consumer.compiled_regexes.remove(&pattern);
            records.push(records::record(
                self.group_id,
                super::values::ConsumerRecordKind::Regex {
                    regex: pattern,
                    value: None,
                },
            ));
            changed = true;
        }
        Ok(changed)
    }

    /// Ids of the existing topics a member subscribes to.
    fn subscribed_ids(
        &self,
        consumer: &ConsumerGroup,
        metadata: &MemberMetadataValue,
    ) -> BTreeSet<Uuid> {
        consumer
            .member_topics(metadata)
            .iter()
            .filter_map(|name| subscription::topic(self.topics, name))
            .map(|shape| shape.id)
            .collect()
    }

    /// A new target assignment at the group epoch, with the group's assignor; records the members whose
    /// target changed and the new target epoch.
    fn update_target(&self, consumer: &mut ConsumerGroup, records: &mut Vec<CoordinatorRecord>) {
        let mut spec = assignor::AssignmentSpec::default();
        for (member_id, member) in &consumer.members {
            let topics = self.subscribed_ids(consumer, &member.metadata);
            spec.members.push(assignor::MemberSpec {
                member_id: member_id.clone(),
                topics,
                previous: consumer.target.get(member_id).cloned().unwrap_or_default(),
            });
        }
        for name in consumer.subscribed_topics() {
            if let Some(TopicShape { id, partitions }) = subscription::topic(self.topics, &name) {
                spec.partitions.insert(id, partitions);
            }
        }
        let name = consumer
            .preferred_assignor()
            .unwrap_or_else(|| assignor::SUPPORTED[0].to_string());
        let target = assignor::assign(&name, &spec);
        for (member_id, partitions) in &target {
            if consumer.target.get(member_id) != Some(partitions) {
                records.push(records::target_member(self.group_id, member_id, partitions));
            }
        }
        consumer.target = target;
        consumer.assignment_epoch = consumer.group_epoch;
        consumer.assignment_timestamp_ms = now_ms();
        records.push(records::target_epoch(self.group_id, consumer));
        tracing::debug!(group = self.group_id, epoch = consumer.assignment_epoch, assignor = %name, "target assignment computed");
    }

    /// Moves the member one step towards its target; a member entering UNREVOKED_PARTITIONS gets its
    /// rebalance timeout to revoke.
    fn reconcile(
        &self,
        consumer: &mut ConsumerGroup,
        member_id: &str,
        owned: Option<&TopicPartitions>,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<(), Failure> {
        let member = &consumer.members[member_id];
        let subscribed = self.subscribed_ids(consumer, &member.metadata);
        let next = super::reconcile::next_assignment(consumer, member, &subscribed, owned)
            .map_err(|code| {
                Failure::new(
                    code,
                    "The consumer group member is in an unknown state; it must rejoin.",
                )
            })?;
        if next == member.current {
            return Ok(());
        }
        let revoking = next.state == MemberState::UnrevokedPartitions
            && (member.current.state != MemberState::UnrevokedPartitions
                || member.current.member_epoch != next.member_epoch);
        let rebalance_timeout =
            Duration::from_millis(u64::try_from(member.metadata.rebalance_timeout_ms).unwrap_or(0));
        let epoch = next.member_epoch;
        consumer.set_current(member_id, next);
        let Some(member) = consumer.members.get_mut(member_id) else {
            return Ok(());
        };
        if revoking {
            member.revocation_deadline = Some(self.now + rebalance_timeout);
            self.inner.spawn_consumer_revocation_timer(
                self.group_id,
                member_id,
                epoch,
                rebalance_timeout,
            );
        } else if member.current.state != MemberState::UnrevokedPartitions {
            member.revocation_deadline = None;
        }
        records.push(records::current_assignment(self.group_id, member));
        Ok(())
    }
}

/// Compiles a subscribed pattern into the group's cache unless it is there; an invalid one is refused
/// with INVALID_REGULAR_EXPRESSION.
fn compile_once(consumer: &mut ConsumerGroup, pattern: &str) -> Result<(), Failure> {
    if consumer.compiled_regexes.contains_key(pattern) {
        return Ok(());
    }
    let compiled = subscription::compile(pattern).map_err(|reason| {
        Failure::new(
            INVALID_REGULAR_EXPRESSION,
            format!(
                "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}."
            ),
        )
    })?;
    consumer
        .compiled_regexes
        .insert(pattern.to_string(), compiled);
    Ok(())
}

fn assignment_of(assigned: &TopicPartitions) -> Assignment {
    let mut assignment = Assignment::default();
    assignment.topic_partitions = assigned
        .iter()
        .map(|(topic_id, partitions)| {
            let mut entry = ResponseTopicPartitions::default();
            entry.topic_id = *topic_id;
            entry.partitions = partitions.iter().copied().collect();
            entry
        })
        .collect();
    assignment
}
