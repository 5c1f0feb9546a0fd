//! The data of one classic group and its pure (timer-free) rules: state, generation, members, protocol
//! selection by vote, leader choice, static-member fencing, subscribed topics, committed offsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use super::consumer::model::ConsumerGroup;
use super::member::{JoinedMember, Member, MemberProtocol};
use super::store::{CommittedOffset, GroupMetadata};

/// Kafka's classic group states (the names are what DescribeGroups/ListGroups report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation forms.
    PreparingRebalance,
    /// Generation formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Being deleted: no request may touch it.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Highest ConsumerProtocolSubscription version we decode; later versions only append fields, so a newer
/// client's metadata is read as this version.
const SUBSCRIPTION_VERSION_MAX: i16 = 3;

#[derive(Debug)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// Members in join order (the order picks a new leader and breaks protocol-vote ties).
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet, with their expiry.
    pub pending_members: HashMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// Bumped whenever a rebalance starts, so timers of an older rebalance know they are stale.
    pub rebalance_epoch: u64,
    /// During PreparingRebalance: the join does not complete before this (initial rebalance delay).
    pub join_not_before: Instant,
    /// During PreparingRebalance: members that have not rejoined by then are dropped.
    pub join_deadline: Instant,
    /// Wall-clock ms when the group last became Empty (offset retention of empty groups counts from it).
    pub empty_since_ms: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The group's metadata as the log last recorded it (`None`: never written, or tombstoned). Kept for
    /// compaction, which must rewrite exactly what a replay would give.
    pub persisted_metadata: Option<GroupMetadata>,
    /// Set when the group uses the consumer protocol (KIP-848): then it has no classic members and its
    /// classic state stays Empty; `None` for classic groups.
    pub consumer: Option<Box<ConsumerGroup>>,
}

impl Group {
    pub fn new(group_id: &str, now: Instant, now_ms: i64) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            rebalance_epoch: 0,
            join_not_before: now,
            join_deadline: now,
            empty_since_ms: now_ms,
            offsets: BTreeMap::new(),
            persisted_metadata: None,
            consumer: None,
        }
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.member(member_id).is_some()
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Member id currently registered for a static `group_instance_id`.
    pub fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
            .map(|m| m.member_id.as_str())
    }

    /// Kafka's `isStaticMemberFenced`: the instance id is registered under another member id.
    pub fn is_static_member_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|id| self.static_member_id(id)) {
            Some(registered) => registered != member_id,
            None => false,
        }
    }

    pub fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    /// Whether the group uses the consumer protocol (KIP-848).
    pub fn is_consumer_group(&self) -> bool {
        self.consumer.is_some()
    }

    /// No member of either protocol: the group may be converted, deleted, or its offsets expire.
    pub fn has_no_members(&self) -> bool {
        self.state == GroupState::Empty
            && self.size() == 0
            && self.consumer.as_ref().is_none_or(|c| c.is_empty())
    }

    /// Every member has a parked JoinGroup and nobody holds a member id without having joined.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(Member::is_awaiting_join)
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|p| &p.name == name))
            })
            .collect()
    }

    /// Kafka's `supportsProtocols`: may a member with these protocols join?
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[MemberProtocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|name| protocols.iter().any(|p| &p.name == name))
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those all support; most
    /// votes wins, ties go to the protocol earlier in the first member's preference.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for member in &self.members {
            if let Some(index) = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| c == &p.name))
            {
                votes[index] += 1;
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (index, count) in votes.iter().copied().enumerate() {
            if best.is_none_or(|(_, best_count)| count > best_count) {
                best = Some((index, count));
            }
        }
        best.map(|(index, _)| candidates[index].clone())
    }

    /// Removes a member, fixing up leadership and pending syncs; returns it so the caller can answer its
    /// parked requests.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let index = self.members.iter().position(|m| m.member_id == member_id)?;
        let member = self.members.remove(index);
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            // Prefer a member that already rejoined, so a join in progress keeps a leader that will answer.
            self.leader_id = self
                .members
                .iter()
                .find(|m| m.is_awaiting_join())
                .or(self.members.first())
                .map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// Keeps the leader if it rejoined; otherwise the first member that did (or any member) leads.
    pub fn elect_joined_leader(&mut self) {
        let leader_rejoined = self
            .leader_id
            .as_deref()
            .and_then(|id| self.member(id))
            .is_some_and(|m| m.is_awaiting_join());
        if !leader_rejoined {
            self.leader_id = self
                .members
                .iter()
                .find(|m| m.is_awaiting_join())
                .or(self.members.first())
                .map(|m| m.member_id.clone());
        }
    }

    /// Every member with its metadata for the selected protocol (the leader's JoinGroup view).
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    /// Topics the members subscribe to, from their consumer-protocol metadata; `None` when that cannot be
    /// known (not a consumer group, or metadata that does not parse), which callers treat as "maybe".
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in &self.members {
            let subscription = decode_subscription(member.metadata_for(protocol))?;
            topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

fn decode_subscription(mut metadata: Bytes) -> Option<ConsumerProtocolSubscription> {
    if metadata.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    let _ = bytes::Buf::get_i16(&mut metadata);
    if version < 0 {
        return None;
    }
    ConsumerProtocolSubscription::decode(&mut metadata, version.min(SUBSCRIPTION_VERSION_MAX)).ok()
}
