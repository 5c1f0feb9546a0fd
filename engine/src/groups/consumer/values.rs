//! What the log stores about a consumer-protocol group (KIP-848), one type per Kafka record: the group
//! epoch, each member's subscription, the target assignment (its epoch and one entry per member), each
//! member's current assignment and the topics each subscribed regular expression resolved to. Keys and
//! values follow Kafka's `ConsumerGroup*` schemas (see `record_codec::consumer_group`).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id: an assignment, or the partitions pending revocation.
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// `ConsumerGroupMetadataValue`: the group epoch, bumped whenever membership, subscriptions or the
/// metadata of subscribed topics change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEpochValue {
    pub epoch: i32,
    /// Hash of the subscribed topics' metadata (names, ids, partition counts) at this epoch; a change
    /// bumps the epoch (Kafka's KIP-1101 `MetadataHash`, tagged field 0; 0 when unknown).
    pub metadata_hash: i64,
}

/// `ConsumerGroupMemberMetadataValue`: a member's identity and subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupTargetAssignmentMetadataValue`: the epoch the target assignment was computed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEpochValue {
    pub assignment_epoch: i32,
    /// Wall-clock ms of the computation (tagged field 0; 0 when unknown).
    pub assignment_timestamp_ms: i64,
}

/// Kafka's `MemberState` (the byte stored in the current-assignment record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// The member owns its whole target assignment (or waits for nothing).
    Stable,
    /// The member must revoke partitions before it may move on.
    UnrevokedPartitions,
    /// The member waits for partitions other members still own.
    UnreleasedPartitions,
    /// A state this version does not know: the member is fenced and rejoins from scratch.
    Unknown,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_code(code: i8) -> Self {
        match code {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// `ConsumerGroupCurrentMemberAssignmentValue`: where a member is in its reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    /// The epoch before the last bump: a member whose answer carrying the bump was lost may still use it.
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

/// `ConsumerGroupRegularExpressionValue`: the topics a subscribed regular expression matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRegexValue {
    pub topics: Vec<String>,
    /// Kafka stores the metadata image offset it resolved against; we store a resolution counter.
    pub version: i64,
    pub timestamp_ms: i64,
}

/// One consumer-group record: which key, and its value (`None`: tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecordKind {
    /// Key type 3.
    GroupEpoch(Option<GroupEpochValue>),
    /// Key type 5.
    Member {
        member_id: String,
        value: Option<MemberMetadataValue>,
    },
    /// Key type 6.
    TargetEpoch(Option<TargetEpochValue>),
    /// Key type 7.
    TargetMember {
        member_id: String,
        value: Option<TopicPartitions>,
    },
    /// Key type 8.
    CurrentAssignment {
        member_id: String,
        value: Option<CurrentAssignmentValue>,
    },
    /// Key type 16.
    Regex {
        regex: String,
        value: Option<ResolvedRegexValue>,
    },
}

impl ConsumerRecordKind {
    pub fn is_tombstone(&self) -> bool {
        match self {
            ConsumerRecordKind::GroupEpoch(v) => v.is_none(),
            ConsumerRecordKind::Member { value, .. } => value.is_none(),
            ConsumerRecordKind::TargetEpoch(v) => v.is_none(),
            ConsumerRecordKind::TargetMember { value, .. } => value.is_none(),
            ConsumerRecordKind::CurrentAssignment { value, .. } => value.is_none(),
            ConsumerRecordKind::Regex { value, .. } => value.is_none(),
        }
    }
}

/// A consumer-group record of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub group_id: String,
    pub kind: ConsumerRecordKind,
}
