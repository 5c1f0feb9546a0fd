//! Assignor properties: every partition of a subscribed topic assigned once, only to a subscriber; balance;
//! stickiness (a member joining or leaving moves only what it must); range's contiguous, co-partitioned
//! layout.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;

fn topic(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn spec(
    members: &[(&str, &[u8])],
    partitions: &[(u8, i32)],
    previous: &BTreeMap<String, TopicPartitions>,
) -> AssignmentSpec {
    let mut members: Vec<MemberSpec> = members
        .iter()
        .map(|(id, topics)| MemberSpec {
            member_id: id.to_string(),
            topics: topics.iter().map(|t| topic(*t)).collect(),
            previous: previous.get(*id).cloned().unwrap_or_default(),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    AssignmentSpec {
        members,
        partitions: partitions.iter().map(|(t, n)| (topic(*t), *n)).collect(),
    }
}

fn counts(assignment: &BTreeMap<String, TopicPartitions>) -> Vec<usize> {
    assignment
        .values()
        .map(|t| t.values().map(BTreeSet::len).sum())
        .collect()
}

/// Every partition of every topic owned by exactly one member subscribed to it.
fn check_complete(spec: &AssignmentSpec, assignment: &BTreeMap<String, TopicPartitions>) {
    let mut seen = BTreeSet::new();
    for member in &spec.members {
        for (t, partitions) in &assignment[&member.member_id] {
            assert!(
                member.topics.contains(t),
                "{} got a topic it does not subscribe to",
                member.member_id
            );
            for p in partitions {
                assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
            }
        }
    }
    for (t, count) in &spec.partitions {
        if spec.members.iter().any(|m| m.topics.contains(t)) {
            for p in 0..*count {
                assert!(seen.contains(&(*t, p)), "{t}-{p} unassigned");
            }
        }
    }
}

fn moved(
    before: &BTreeMap<String, TopicPartitions>,
    after: &BTreeMap<String, TopicPartitions>,
) -> usize {
    after
        .iter()
        .map(|(member, topics)| {
            topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .filter(|(t, p)| {
                    !before
                        .get(member)
                        .is_some_and(|b| b.get(t).is_some_and(|s| s.contains(p)))
                })
                .count()
        })
        .sum()
}

#[test]
fn uniform_balances_and_a_joining_member_takes_only_its_share() {
    let none = BTreeMap::new();
    let three = spec(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &[(1, 12)], &none);
    let first = assign(UNIFORM, &three);
    check_complete(&three, &first);
    assert_eq!(counts(&first), vec![4, 4, 4]);

    let four = spec(
        &[("a", &[1]), ("b", &[1]), ("c", &[1]), ("d", &[1])],
        &[(1, 12)],
        &first,
    );
    let second = assign(UNIFORM, &four);
    check_complete(&four, &second);
    assert_eq!(counts(&second), vec![3, 3, 3, 3]);
    assert_eq!(
        moved(&first, &second),
        3,
        "only the newcomer's three partitions move"
    );

    let back = spec(
        &[("a", &[1]), ("b", &[1]), ("d", &[1])],
        &[(1, 12)],
        &second,
    );
    let third = assign(UNIFORM, &back);
    check_complete(&back, &third);
    assert_eq!(counts(&third), vec![4, 4, 4]);
    assert_eq!(
        moved(&second, &third),
        3,
        "only the leaver's three partitions move"
    );
}

#[test]
fn uniform_handles_mixed_subscriptions() {
    let none = BTreeMap::new();
    let mixed = spec(
        &[("a", &[1]), ("b", &[1, 2]), ("c", &[2])],
        &[(1, 6), (2, 6)],
        &none,
    );
    let got = assign(UNIFORM, &mixed);
    check_complete(&mixed, &got);
    assert_eq!(counts(&got), vec![4, 4, 4]);
    // A member subscribed to a topic that does not exist gets nothing from it, and is not an error.
    let missing = spec(&[("a", &[1, 9])], &[(1, 2)], &none);
    let got = assign(UNIFORM, &missing);
    check_complete(&missing, &got);
}

#[test]
fn range_gives_contiguous_co_partitioned_ranges() {
    let none = BTreeMap::new();
    let two = spec(
        &[("m1", &[1, 2]), ("m2", &[1, 2])],
        &[(1, 5), (2, 5)],
        &none,
    );
    let got = assign(RANGE, &two);
    check_complete(&two, &got);
    for t in [1, 2] {
        assert_eq!(got["m1"][&topic(t)], BTreeSet::from([0, 1, 2]));
        assert_eq!(got["m2"][&topic(t)], BTreeSet::from([3, 4]));
    }
}

#[test]
fn range_is_sticky_within_each_quota() {
    let none = BTreeMap::new();
    let two = spec(&[("m1", &[1]), ("m3", &[1])], &[(1, 6)], &none);
    let first = assign(RANGE, &two);
    let three = spec(
        &[("m1", &[1]), ("m2", &[1]), ("m3", &[1])],
        &[(1, 6)],
        &first,
    );
    let second = assign(RANGE, &three);
    check_complete(&three, &second);
    assert_eq!(counts(&second), vec![2, 2, 2]);
    // m1 had 0-2 and keeps 0-1; m3 had 3-5 and keeps 3-4; the newcomer gets the two released.
    assert_eq!(second["m1"][&topic(1)], BTreeSet::from([0, 1]));
    assert_eq!(second["m3"][&topic(1)], BTreeSet::from([3, 4]));
    assert_eq!(moved(&first, &second), 2);
}

#[test]
fn random_groups_are_always_complete_and_uniform_stays_balanced() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut previous: BTreeMap<String, TopicPartitions> = BTreeMap::new();
    for round in 0..200 {
        let topics = 1 + next(4) as u8;
        let partitions: Vec<(u8, i32)> = (1..=topics).map(|t| (t, 1 + next(20) as i32)).collect();
        let member_count = 1 + next(8) as usize;
        let homogeneous = round % 2 == 0;
        let subscriptions: Vec<(String, Vec<u8>)> = (0..member_count)
            .map(|m| {
                let subscribed: Vec<u8> = if homogeneous {
                    (1..=topics).collect()
                } else {
                    (1..=topics).filter(|_| next(2) == 0).collect()
                };
                (format!("m{m}"), subscribed)
            })
            .collect();
        let members: Vec<(&str, &[u8])> = subscriptions
            .iter()
            .map(|(id, t)| (id.as_str(), t.as_slice()))
            .collect();
        let s = spec(&members, &partitions, &previous);
        for assignor in SUPPORTED {
            let got = assign(assignor, &s);
            check_complete(&s, &got);
            if assignor == UNIFORM && homogeneous {
                let c = counts(&got);
                let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
                assert!(max - min <= 1, "round {round}: unbalanced {c:?}");
                previous = got;
            }
        }
    }
}
