//! `range`: topic by topic, the subscribed members in member-id order share the partitions as contiguous
//! ranges, the first `partitions % members` getting one more. Like Kafka's server-side range assignor it
//! is sticky: each member first keeps its lowest previous partitions of the topic up to its quota (one
//! more when an extra slot is left), and only the rest is handed out, in ascending ranges, to members
//! below their quota. Members with the same subscriptions get the same partition numbers of
//! co-partitioned topics.

use std::collections::{BTreeMap, BTreeSet};

use super::{AssignmentSpec, TopicPartitions};

pub fn assign(spec: &AssignmentSpec) -> BTreeMap<String, TopicPartitions> {
    let valid: Vec<TopicPartitions> = spec.members.iter().map(|m| spec.still_valid(m)).collect();
    let mut out: BTreeMap<String, TopicPartitions> = BTreeMap::new();
    for (topic, count) in &spec.partitions {
        let subscribed: Vec<usize> = (0..spec.members.len())
            .filter(|m| spec.members[*m].topics.contains(topic))
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        let quota = *count as usize / subscribed.len();
        let mut extra = *count as usize % subscribed.len();
        let mut kept: BTreeSet<i32> = BTreeSet::new();
        // (member, partitions it still needs to reach its minimum quota)
        let mut unfilled: Vec<(usize, usize)> = Vec::new();
        for &member in &subscribed {
            // Partitions another member already kept are not this one's (never in a consistent target).
            let previous: Vec<i32> = valid[member]
                .get(topic)
                .map(|p| p.iter().copied().filter(|p| !kept.contains(p)).collect())
                .unwrap_or_default();
            let keep = previous.len().min(quota);
            let mut mine: BTreeSet<i32> = previous[..keep].iter().copied().collect();
            if previous.len() > quota && extra > 0 {
                extra -= 1;
                mine.insert(previous[quota]);
            } else {
                unfilled.push((member, quota - keep));
            }
            kept.extend(mine.iter().copied());
            if !mine.is_empty() {
                out.entry(spec.members[member].member_id.clone())
                    .or_default()
                    .insert(*topic, mine);
            }
        }
        let mut free = (0..*count).filter(|p| !kept.contains(p));
        for (member, mut needed) in unfilled {
            if extra > 0 {
                extra -= 1;
                needed += 1;
            }
            let taken: BTreeSet<i32> = free.by_ref().take(needed).collect();
            if !taken.is_empty() {
                out.entry(spec.members[member].member_id.clone())
                    .or_default()
                    .entry(*topic)
                    .or_default()
                    .extend(taken);
            }
        }
    }
    out
}
