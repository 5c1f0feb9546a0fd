//! The in-memory state of one consumer-protocol group: its epochs, members (subscription and where each
//! is in its reconciliation), the target assignment, resolved regular expressions, and two indexes kept
//! in step with the members: which member owns each partition (assigned or pending revocation) and which
//! member holds each static instance id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use uuid::Uuid;

use super::values::{
    CurrentAssignmentValue, MemberMetadataValue, MemberState, ResolvedRegexValue, TopicPartitions,
};

/// Epoch of a member that has joined but has no assignment yet, and the epoch a join request carries.
pub const JOIN_EPOCH: i32 = 0;
/// Epoch a leaving member sends (and is answered with).
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member sends when it leaves for a while and means to come back with its assignment.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Kafka's consumer group states (the names DescribeGroups-style tools show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved past the target assignment's: a new target is due.
    Assigning,
    /// Some member is not at the target assignment yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub metadata: MemberMetadataValue,
    pub current: CurrentAssignmentValue,
    /// The member is removed when no heartbeat arrives by then.
    pub session_deadline: Instant,
    /// While the member must revoke partitions: it is removed if it has not by then (its rebalance
    /// timeout).
    pub revocation_deadline: Option<Instant>,
}

impl ConsumerMember {
    /// A member that just joined: epoch 0, nothing assigned.
    pub fn new(member_id: &str, session_deadline: Instant) -> Self {
        Self {
            member_id: member_id.to_string(),
            metadata: MemberMetadataValue::default(),
            current: CurrentAssignmentValue {
                member_epoch: JOIN_EPOCH,
                previous_member_epoch: LEAVE_EPOCH,
                state: MemberState::Stable,
                assigned: TopicPartitions::new(),
                pending_revocation: TopicPartitions::new(),
            },
            session_deadline,
            revocation_deadline: None,
        }
    }

    pub fn epoch(&self) -> i32 {
        self.current.member_epoch
    }

    /// Kafka's `isReconciledTo`: at the target epoch with nothing outstanding.
    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.current.member_epoch == target_epoch && self.current.state == MemberState::Stable
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    /// Hash of the subscribed topics' metadata at `group_epoch`.
    pub metadata_hash: i64,
    pub assignment_epoch: i32,
    pub assignment_timestamp_ms: i64,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The target assignment, per member.
    pub target: BTreeMap<String, TopicPartitions>,
    /// Subscribed regular expressions and the topics each matched.
    pub regexes: BTreeMap<String, ResolvedRegexValue>,
    /// When the regular expressions were last matched against the topics (`None`: not since start-up).
    pub regexes_resolved_at: Option<Instant>,
    /// Compiled forms of `regexes` (not stored: compiled again after a restart).
    pub compiled_regexes: HashMap<String, regex::Regex>,
    /// Static instance id → member id.
    static_members: HashMap<String, String>,
    /// (topic id, partition) → the member owning it (assigned or pending revocation).
    partition_owners: HashMap<(Uuid, i32), String>,
}

impl ConsumerGroup {
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member currently holding a static instance id.
    pub fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    /// The member owning a partition (assigned to it, or still pending its revocation).
    pub fn partition_owner(&self, topic_id: Uuid, partition: i32) -> Option<&str> {
        self.partition_owners
            .get(&(topic_id, partition))
            .map(String::as_str)
    }

    /// Adds a member or replaces its entry, keeping the indexes in step.
    pub fn put_member(&mut self, member: ConsumerMember) {
        if let Some(old) = self.members.get(&member.member_id) {
            let old = old.clone();
            self.unindex(&old);
        }
        self.index(&member);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Replaces a member's current assignment, keeping the partition owners in step.
    pub fn set_current(&mut self, member_id: &str, current: CurrentAssignmentValue) {
        let Some(mut member) = self.members.get(member_id).cloned() else {
            debug_assert!(false, "set_current of an unknown member");
            return;
        };
        member.current = current;
        self.put_member(member);
    }

    /// Removes a member and its target entry; returns it.
    pub fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        self.unindex(&member);
        self.target.remove(member_id);
        Some(member)
    }

    fn index(&mut self, member: &ConsumerMember) {
        if let Some(instance) = &member.metadata.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        for (topic_id, partition) in owned_partitions(member) {
            let previous = self
                .partition_owners
                .insert((topic_id, partition), member.member_id.clone());
            debug_assert!(
                previous.is_none_or(|p| p == member.member_id),
                "partition {topic_id}-{partition} owned by two members"
            );
        }
    }

    fn unindex(&mut self, member: &ConsumerMember) {
        if let Some(instance) = &member.metadata.instance_id {
            if self.static_members.get(instance) == Some(&member.member_id) {
                self.static_members.remove(instance);
            }
        }
        for key in owned_partitions(member) {
            if self.partition_owners.get(&key) == Some(&member.member_id) {
                self.partition_owners.remove(&key);
            }
        }
    }

    /// Rebuilds the indexes from the members (after a replay).
    pub fn reindex(&mut self) {
        self.static_members.clear();
        self.partition_owners.clear();
        let members: Vec<ConsumerMember> = self.members.values().cloned().collect();
        for member in &members {
            self.index(member);
        }
    }

    /// The server assignor most members asked for (ties: the name first in order); `None` when no member
    /// asked for one.
    pub fn preferred_assignor(&self) -> Option<String> {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = &member.metadata.server_assignor {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_string())
    }

    /// Topic names one member subscribes to: its names, plus what its regular expression matched.
    pub fn member_topics(&self, member: &MemberMetadataValue) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = member.subscribed_topic_names.iter().cloned().collect();
        if let Some(resolved) = member
            .subscribed_topic_regex
            .as_ref()
            .and_then(|regex| self.regexes.get(regex))
        {
            topics.extend(resolved.topics.iter().cloned());
        }
        topics
    }

    /// Topic names any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topics(&m.metadata))
            .collect()
    }
}

/// Every partition a member owns: assigned, or still pending its revocation.
fn owned_partitions(member: &ConsumerMember) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    member
        .current
        .assigned
        .iter()
        .chain(member.current.pending_revocation.iter())
        .flat_map(|(topic_id, partitions)| partitions.iter().map(move |p| (*topic_id, *p)))
}
