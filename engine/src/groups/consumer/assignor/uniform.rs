//! `uniform`: every partition goes to a member subscribed to its topic, partition counts per member as
//! even as the subscriptions allow, and as few moves as possible. Each partition stays with its previous
//! owner while that owner still subscribes to it; new or orphaned partitions go to the eligible member
//! with the fewest; then partitions move, one at a time, from a member to an eligible one holding at
//! least two fewer, until no such move is left. With identical subscriptions this ends with counts
//! differing by at most one, and a joining member takes exactly its share from the others.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{AssignmentSpec, TopicPartitions};

pub fn assign(spec: &AssignmentSpec) -> BTreeMap<String, TopicPartitions> {
    let members = &spec.members;
    let eligible = |member: usize, topic: &Uuid| members[member].topics.contains(topic);
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); members.len()];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (index, member) in members.iter().enumerate() {
        for (topic, partitions) in spec.still_valid(member) {
            for partition in partitions {
                // A partition two members claim (never in a consistent target) stays with the first.
                if owner.insert((topic, partition), index).is_none() {
                    owned[index].insert((topic, partition));
                }
            }
        }
    }
    for (topic, count) in &spec.partitions {
        for partition in 0..*count {
            if owner.contains_key(&(*topic, partition)) {
                continue;
            }
            let fewest = (0..members.len())
                .filter(|m| eligible(*m, topic))
                .min_by_key(|m| owned[*m].len());
            if let Some(member) = fewest {
                owner.insert((*topic, partition), member);
                owned[member].insert((*topic, partition));
            }
        }
    }
    balance(&mut owned, &eligible);
    members
        .iter()
        .zip(owned)
        .map(|(member, partitions)| {
            let mut out = TopicPartitions::new();
            for (topic, partition) in partitions {
                out.entry(topic).or_default().insert(partition);
            }
            (member.member_id.clone(), out)
        })
        .collect()
}

/// Moves partitions from the fullest members to eligible members holding at least two fewer, the
/// highest-numbered partition first, until no move is left. Each move lowers the sum of squared counts,
/// so the loop ends.
fn balance(owned: &mut [BTreeSet<(Uuid, i32)>], eligible: &impl Fn(usize, &Uuid) -> bool) {
    loop {
        let mut order: Vec<usize> = (0..owned.len()).collect();
        order.sort_by_key(|m| std::cmp::Reverse(owned[*m].len()));
        let moved = order.iter().find_map(|&from| {
            owned[from].iter().rev().find_map(|&(topic, partition)| {
                let to = (0..owned.len())
                    .filter(|m| *m != from && eligible(*m, &topic))
                    .filter(|m| owned[*m].len() + 1 < owned[from].len())
                    .min_by_key(|m| owned[*m].len())?;
                Some((from, to, (topic, partition)))
            })
        });
        let Some((from, to, partition)) = moved else {
            return;
        };
        owned[from].remove(&partition);
        owned[to].insert(partition);
    }
}
