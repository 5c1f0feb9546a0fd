//! One member's next current assignment towards the target (Kafka's `CurrentAssignmentBuilder`). A member
//! moves in steps: partitions it must give up are revoked first (it stays at its epoch, in
//! UNREVOKED_PARTITIONS, until a heartbeat shows it no longer owns them); then it moves to the target
//! epoch and gets every target partition nobody else still owns; partitions another member has not
//! released yet come later (UNRELEASED_PARTITIONS). So no partition is ever owned by two members.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::model::{ConsumerGroup, ConsumerMember};
use super::values::{CurrentAssignmentValue, MemberState, TopicPartitions};
use crate::groups::responses::FENCED_MEMBER_EPOCH;

/// The member's next current assignment (unchanged when it cannot move yet). `subscribed`: ids of the
/// topics it subscribes to; `owned`: the partitions its heartbeat says it owns (`None`: not sent).
/// Fails with FENCED_MEMBER_EPOCH for a member in a state this version does not know that still owns
/// partitions (it must rejoin from scratch).
pub fn next_assignment(
    group: &ConsumerGroup,
    member: &ConsumerMember,
    subscribed: &BTreeSet<Uuid>,
    owned: Option<&TopicPartitions>,
) -> Result<CurrentAssignmentValue, i16> {
    let current = &member.current;
    let step = Step {
        group,
        member,
        subscribed,
        owned,
    };
    match current.state {
        MemberState::Stable if current.member_epoch != group.assignment_epoch => {
            Ok(step.towards_target(current.member_epoch))
        }
        MemberState::Stable => Ok(current.clone()),
        MemberState::UnrevokedPartitions if step.owns_any(&current.pending_revocation) => {
            Ok(current.clone())
        }
        MemberState::UnrevokedPartitions | MemberState::UnreleasedPartitions => {
            Ok(step.towards_target(current.member_epoch))
        }
        MemberState::Unknown => match owned {
            Some(owned) if owned.values().all(BTreeSet::is_empty) => {
                Ok(step.towards_target(group.assignment_epoch))
            }
            _ => Err(FENCED_MEMBER_EPOCH),
        },
    }
}

struct Step<'a> {
    group: &'a ConsumerGroup,
    member: &'a ConsumerMember,
    subscribed: &'a BTreeSet<Uuid>,
    owned: Option<&'a TopicPartitions>,
}

impl Step<'_> {
    /// Whether the member may still own any of `partitions` (it did not say what it owns: assume so).
    fn owns_any(&self, partitions: &TopicPartitions) -> bool {
        let Some(owned) = self.owned else {
            return true;
        };
        owned.iter().any(|(topic, ps)| {
            partitions
                .get(topic)
                .is_some_and(|pending| ps.iter().any(|p| pending.contains(p)))
        })
    }

    /// Kafka's `computeNextAssignment`, from the member at `member_epoch`.
    fn towards_target(&self, member_epoch: i32) -> CurrentAssignmentValue {
        let empty = BTreeSet::new();
        let target = self.group.target.get(&self.member.member_id);
        let assigned = &self.member.current.assigned;
        let topics: BTreeSet<Uuid> = target
            .into_iter()
            .flat_map(|t| t.keys().copied())
            .chain(assigned.keys().copied())
            .collect();
        let mut kept = TopicPartitions::new();
        let mut revoking = TopicPartitions::new();
        let mut incoming = TopicPartitions::new();
        let mut unreleased = false;
        for topic in topics {
            // A topic the member no longer subscribes to has an empty target, whatever the target says.
            let wanted = match target.and_then(|t| t.get(&topic)) {
                Some(wanted) if self.subscribed.contains(&topic) => wanted,
                _ => &empty,
            };
            let had = assigned.get(&topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = had.intersection(wanted).copied().collect();
            let revoke: BTreeSet<i32> = had.difference(&keep).copied().collect();
            let mut take: BTreeSet<i32> = wanted.difference(&keep).copied().collect();
            let before = take.len();
            take.retain(|p| {
                self.group
                    .partition_owner(topic, *p)
                    .is_none_or(|owner| owner == self.member.member_id)
            });
            unreleased |= take.len() != before;
            for (set, partitions) in [
                (&mut kept, keep),
                (&mut revoking, revoke),
                (&mut incoming, take),
            ] {
                if !partitions.is_empty() {
                    set.insert(topic, partitions);
                }
            }
        }
        let target_epoch = self.group.assignment_epoch;
        if !revoking.is_empty() && self.owns_any(&revoking) {
            return self.value(
                member_epoch,
                MemberState::UnrevokedPartitions,
                kept,
                revoking,
            );
        }
        for (topic, partitions) in incoming {
            kept.entry(topic).or_default().extend(partitions);
        }
        let state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        self.value(target_epoch, state, kept, TopicPartitions::new())
    }

    /// The member at `epoch` (the previous epoch becomes what it had, as Kafka's `updateMemberEpoch`).
    fn value(
        &self,
        epoch: i32,
        state: MemberState,
        assigned: TopicPartitions,
        pending_revocation: TopicPartitions,
    ) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: epoch,
            previous_member_epoch: self.member.current.member_epoch,
            state,
            assigned,
            pending_revocation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn topic() -> Uuid {
        Uuid::from_bytes([7; 16])
    }

    fn parts(list: &[i32]) -> TopicPartitions {
        TopicPartitions::from([(topic(), list.iter().copied().collect())])
    }

    fn member(id: &str, epoch: i32, assigned: &[i32]) -> ConsumerMember {
        let mut m = ConsumerMember::new(id, Instant::now());
        m.current.member_epoch = epoch;
        m.current.assigned = parts(assigned);
        m
    }

    /// a owns 0-3 at epoch 1; the target at epoch 2 gives b partitions 2-3.
    fn group() -> ConsumerGroup {
        let mut g = ConsumerGroup::default();
        g.group_epoch = 2;
        g.assignment_epoch = 2;
        g.put_member(member("a", 1, &[0, 1, 2, 3]));
        g.put_member(member("b", 0, &[]));
        g.target.insert("a".into(), parts(&[0, 1]));
        g.target.insert("b".into(), parts(&[2, 3]));
        g
    }

    #[test]
    fn revocation_comes_first_and_partitions_move_only_once_released() {
        let mut g = group();
        let subscribed = BTreeSet::from([topic()]);
        // b cannot take 2-3 while a owns them: it moves to epoch 2 with nothing yet.
        let b = next_assignment(&g, &g.members["b"], &subscribed, Some(&parts(&[]))).unwrap();
        assert_eq!(
            (b.member_epoch, b.state),
            (2, MemberState::UnreleasedPartitions)
        );
        assert!(b.assigned.is_empty());
        g.set_current("b", b);
        // a must revoke 2-3 and stays at epoch 1 until its heartbeat no longer lists them.
        let owned_all = parts(&[0, 1, 2, 3]);
        let a = next_assignment(&g, &g.members["a"], &subscribed, Some(&owned_all)).unwrap();
        assert_eq!(
            (a.member_epoch, a.state),
            (1, MemberState::UnrevokedPartitions)
        );
        assert_eq!(a.pending_revocation, parts(&[2, 3]));
        g.set_current("a", a);
        let still = next_assignment(&g, &g.members["a"], &subscribed, None).unwrap();
        assert_eq!(
            still.state,
            MemberState::UnrevokedPartitions,
            "no owned list: assume still owned"
        );
        let a = next_assignment(&g, &g.members["a"], &subscribed, Some(&parts(&[0, 1]))).unwrap();
        assert_eq!((a.member_epoch, a.state), (2, MemberState::Stable));
        assert_eq!((a.assigned, a.previous_member_epoch), (parts(&[0, 1]), 1));
        g.set_current(
            "a",
            next_assignment(&g, &g.members["a"], &subscribed, Some(&parts(&[0, 1]))).unwrap(),
        );
        // Now b gets them.
        let b = next_assignment(&g, &g.members["b"], &subscribed, Some(&parts(&[]))).unwrap();
        assert_eq!(
            (b.member_epoch, b.state, b.assigned),
            (2, MemberState::Stable, parts(&[2, 3]))
        );
    }

    #[test]
    fn unsubscribed_topics_are_revoked_and_unknown_states_fence() {
        let g = group();
        let a = next_assignment(
            &g,
            &g.members["a"],
            &BTreeSet::new(),
            Some(&parts(&[0, 1, 2, 3])),
        )
        .unwrap();
        assert_eq!(a.pending_revocation, parts(&[0, 1, 2, 3]));
        let mut unknown = g.members["a"].clone();
        unknown.current.state = MemberState::Unknown;
        let subscribed = BTreeSet::from([topic()]);
        assert_eq!(
            next_assignment(&g, &unknown, &subscribed, Some(&parts(&[0]))),
            Err(FENCED_MEMBER_EPOCH)
        );
    }
}
