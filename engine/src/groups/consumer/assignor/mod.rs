//! The server-side assignors a consumer group chooses with `group.remote.assignor`: `uniform` (Kafka's
//! default: balanced and sticky, for any mix of subscriptions) and `range` (per topic, contiguous ranges
//! of partitions by member id, sticky within each member's quota, so co-partitioned topics line up).
//! Both take the previous target assignment into account, so a member joining or leaving moves only the
//! partitions it must.

mod range;
mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::values::TopicPartitions;

/// Kafka's `uniform` assignor name.
pub const UNIFORM: &str = "uniform";
/// Kafka's `range` assignor name.
pub const RANGE: &str = "range";
/// The server assignors, in Kafka's `group.consumer.assignors` default order: the first one is used when
/// no member asks for one.
pub const SUPPORTED: [&str; 2] = [UNIFORM, RANGE];

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub member_id: String,
    /// Ids of the existing topics it subscribes to.
    pub topics: BTreeSet<Uuid>,
    /// Its previous target assignment (stickiness).
    pub previous: TopicPartitions,
}

/// What to assign: members sorted by id, and the partition count of every subscribed topic.
#[derive(Debug, Clone, Default)]
pub struct AssignmentSpec {
    pub members: Vec<MemberSpec>,
    pub partitions: BTreeMap<Uuid, i32>,
}

impl AssignmentSpec {
    /// A member's previous partitions that still exist and that it still subscribes to, per topic.
    fn still_valid(&self, member: &MemberSpec) -> TopicPartitions {
        member
            .previous
            .iter()
            .filter(|(topic, _)| member.topics.contains(topic))
            .filter_map(|(topic, partitions)| {
                let count = *self.partitions.get(topic)?;
                let kept: BTreeSet<i32> = partitions
                    .iter()
                    .copied()
                    .filter(|p| (0..count).contains(p))
                    .collect();
                (!kept.is_empty()).then_some((*topic, kept))
            })
            .collect()
    }
}

/// Whether `name` is a server assignor we run.
pub fn is_supported(name: &str) -> bool {
    SUPPORTED.contains(&name)
}

/// The new target assignment: an entry (maybe empty) for every member.
pub fn assign(assignor: &str, spec: &AssignmentSpec) -> BTreeMap<String, TopicPartitions> {
    debug_assert!(
        spec.members
            .windows(2)
            .all(|w| w[0].member_id < w[1].member_id),
        "members sorted by id"
    );
    let mut out: BTreeMap<String, TopicPartitions> = spec
        .members
        .iter()
        .map(|m| (m.member_id.clone(), TopicPartitions::new()))
        .collect();
    let assigned = match assignor {
        RANGE => range::assign(spec),
        _ => uniform::assign(spec),
    };
    for (member_id, partitions) in assigned {
        out.insert(member_id, partitions);
    }
    debug_assert!(each_partition_once(&out), "a partition assigned twice");
    out
}

fn each_partition_once(assignment: &BTreeMap<String, TopicPartitions>) -> bool {
    let mut seen = BTreeSet::new();
    assignment
        .values()
        .flat_map(|t| {
            t.iter()
                .flat_map(|(id, ps)| ps.iter().map(move |p| (*id, *p)))
        })
        .all(|tp| seen.insert(tp))
}

#[cfg(test)]
mod tests;
