//! A consumer group in the log: the records of a member leaving or a group being deleted (tombstones), the
//! full snapshot compaction rewrites, and the replay that rebuilds a group at start-up. Records of one
//! change are written together before the change is answered; replaying them in order gives the state
//! the coordinator had.

use std::time::Instant;

use super::model::{ConsumerGroup, ConsumerMember};
use super::values::{
    ConsumerRecord, ConsumerRecordKind, CurrentAssignmentValue, GroupEpochValue, MemberState,
    TargetEpochValue, TopicPartitions,
};
use crate::groups::store::CoordinatorRecord;

pub fn record(group_id: &str, kind: ConsumerRecordKind) -> CoordinatorRecord {
    CoordinatorRecord::Consumer(ConsumerRecord {
        group_id: group_id.to_string(),
        kind,
    })
}

pub fn group_epoch(group_id: &str, group: &ConsumerGroup) -> CoordinatorRecord {
    record(
        group_id,
        ConsumerRecordKind::GroupEpoch(Some(GroupEpochValue {
            epoch: group.group_epoch,
            metadata_hash: group.metadata_hash,
        })),
    )
}

pub fn member(group_id: &str, member: &ConsumerMember) -> CoordinatorRecord {
    record(
        group_id,
        ConsumerRecordKind::Member {
            member_id: member.member_id.clone(),
            value: Some(member.metadata.clone()),
        },
    )
}

pub fn current_assignment(group_id: &str, member: &ConsumerMember) -> CoordinatorRecord {
    record(
        group_id,
        ConsumerRecordKind::CurrentAssignment {
            member_id: member.member_id.clone(),
            value: Some(member.current.clone()),
        },
    )
}

pub fn target_member(
    group_id: &str,
    member_id: &str,
    target: &TopicPartitions,
) -> CoordinatorRecord {
    record(
        group_id,
        ConsumerRecordKind::TargetMember {
            member_id: member_id.to_string(),
            value: Some(target.clone()),
        },
    )
}

pub fn target_epoch(group_id: &str, group: &ConsumerGroup) -> CoordinatorRecord {
    record(
        group_id,
        ConsumerRecordKind::TargetEpoch(Some(TargetEpochValue {
            assignment_epoch: group.assignment_epoch,
            assignment_timestamp_ms: group.assignment_timestamp_ms,
        })),
    )
}

/// A member leaving: its current assignment, target and subscription are deleted (in that order, as
/// Kafka writes them).
pub fn member_tombstones(group_id: &str, member_id: &str) -> Vec<CoordinatorRecord> {
    let member_id = member_id.to_string();
    vec![
        record(
            group_id,
            ConsumerRecordKind::CurrentAssignment {
                member_id: member_id.clone(),
                value: None,
            },
        ),
        record(
            group_id,
            ConsumerRecordKind::TargetMember {
                member_id: member_id.clone(),
                value: None,
            },
        ),
        record(
            group_id,
            ConsumerRecordKind::Member {
                member_id,
                value: None,
            },
        ),
    ]
}

/// Every record of the group deleted; the group epoch goes last, so a replay drops the group there.
pub fn group_tombstones(group_id: &str, group: &ConsumerGroup) -> Vec<CoordinatorRecord> {
    let mut out: Vec<CoordinatorRecord> = group
        .members
        .keys()
        .flat_map(|member_id| member_tombstones(group_id, member_id))
        .collect();
    out.extend(group.regexes.keys().map(|regex| {
        record(
            group_id,
            ConsumerRecordKind::Regex {
                regex: regex.clone(),
                value: None,
            },
        )
    }));
    out.push(record(group_id, ConsumerRecordKind::TargetEpoch(None)));
    out.push(record(group_id, ConsumerRecordKind::GroupEpoch(None)));
    out
}

/// The whole group as records: what a replay of a compacted log must yield.
pub fn snapshot(group_id: &str, group: &ConsumerGroup) -> Vec<CoordinatorRecord> {
    let mut out = vec![group_epoch(group_id, group)];
    out.extend(group.regexes.iter().map(|(regex, value)| {
        record(
            group_id,
            ConsumerRecordKind::Regex {
                regex: regex.clone(),
                value: Some(value.clone()),
            },
        )
    }));
    out.extend(group.members.values().map(|m| member(group_id, m)));
    out.extend(
        group
            .target
            .iter()
            .map(|(member_id, target)| target_member(group_id, member_id, target)),
    );
    out.push(target_epoch(group_id, group));
    out.extend(
        group
            .members
            .values()
            .map(|m| current_assignment(group_id, m)),
    );
    out
}

/// Applies one record to a group being rebuilt. Members' deadlines are placeholders (`now`): sessions
/// start when the load completes, and the indexes are rebuilt then (`ConsumerGroup::reindex`). A
/// group-epoch tombstone is the caller's to act on (the group is gone).
pub fn replay(group: &mut ConsumerGroup, kind: &ConsumerRecordKind, now: Instant) {
    match kind {
        ConsumerRecordKind::GroupEpoch(value) => {
            let value = value.clone().unwrap_or(GroupEpochValue {
                epoch: 0,
                metadata_hash: 0,
            });
            group.group_epoch = value.epoch;
            group.metadata_hash = value.metadata_hash;
        }
        ConsumerRecordKind::Member { member_id, value } => match value {
            Some(metadata) => {
                let mut member = group
                    .members
                    .get(member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerMember::new(member_id, now));
                member.metadata = metadata.clone();
                group.members.insert(member_id.clone(), member);
            }
            None => {
                group.members.remove(member_id);
            }
        },
        ConsumerRecordKind::TargetEpoch(value) => {
            group.assignment_epoch = value.as_ref().map_or(0, |v| v.assignment_epoch);
            group.assignment_timestamp_ms = value.as_ref().map_or(0, |v| v.assignment_timestamp_ms);
        }
        ConsumerRecordKind::TargetMember { member_id, value } => match value {
            Some(target) => {
                group.target.insert(member_id.clone(), target.clone());
            }
            None => {
                group.target.remove(member_id);
            }
        },
        ConsumerRecordKind::CurrentAssignment { member_id, value } => {
            let mut member = group
                .members
                .get(member_id)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(member_id, now));
            member.current = value.clone().unwrap_or(CurrentAssignmentValue {
                member_epoch: 0,
                previous_member_epoch: -1,
                state: MemberState::Stable,
                assigned: TopicPartitions::new(),
                pending_revocation: TopicPartitions::new(),
            });
            group.members.insert(member_id.clone(), member);
        }
        ConsumerRecordKind::Regex { regex, value } => match value {
            Some(resolved) => {
                group.regexes.insert(regex.clone(), resolved.clone());
            }
            None => {
                group.regexes.remove(regex);
            }
        },
    }
}
