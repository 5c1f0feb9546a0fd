//! Replica placement for new partitions: replicas on distinct brokers, spread over racks when brokers
//! declare them, and leaders (each partition's first replica) spread evenly over the brokers, also
//! across topics: placement starts at the broker that leads the fewest partitions now.
//!
//! Kafka's rule, in short: order the brokers so that racks alternate, then give partition `p` the
//! brokers at `start + p`, `start + p + 1`, ... of that order. Consecutive brokers of a
//! rack-alternating order sit on different racks, so each partition's replicas span
//! `min(replication factor, racks)` racks.

use std::collections::BTreeMap;

use thiserror::Error;

/// A broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: i32,
    pub rack: Option<String>,
    /// Partitions this broker leads now (placement starts at the least loaded).
    pub leaders: usize,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlacementError {
    /// Kafka's INVALID_REPLICATION_FACTOR.
    #[error("Replication factor: {wanted} larger than available brokers: {available}.")]
    NotEnoughBrokers { wanted: usize, available: usize },
    #[error("Replication factor must be larger than 0, got {0}.")]
    InvalidFactor(i32),
}

/// Replicas for `count` new partitions (each list's first replica leads).
pub fn place(
    candidates: &[Candidate],
    count: i32,
    replication_factor: i32,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor < 1 {
        return Err(PlacementError::InvalidFactor(replication_factor));
    }
    let factor = replication_factor as usize;
    if factor > candidates.len() {
        return Err(PlacementError::NotEnoughBrokers {
            wanted: factor,
            available: candidates.len(),
        });
    }
    let order = rack_alternating(candidates);
    debug_assert_eq!(order.len(), candidates.len());
    let start = order
        .iter()
        .enumerate()
        .min_by_key(|(position, c)| (c.leaders, *position))
        .map_or(0, |(position, _)| position);
    let n = order.len();
    let placed = (0..count)
        .map(|i| {
            let base = start + i as usize;
            (0..factor)
                .map(|j| order[(base + j) % n].node_id)
                .collect::<Vec<i32>>()
        })
        .collect::<Vec<_>>();
    debug_assert!(placed.iter().all(|replicas| {
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        sorted.len() == factor
    }));
    Ok(placed)
}

/// Brokers ordered so that racks alternate (rack A, B, C, A, B, C, ...; brokers without a rack
/// form one group of their own), each rack's brokers by id.
fn rack_alternating(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        by_rack.entry(c.rack.as_deref()).or_default().push(c);
    }
    for brokers in by_rack.values_mut() {
        brokers.sort_by_key(|c| c.node_id);
    }
    let mut order = Vec::with_capacity(candidates.len());
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for level in 0..deepest {
        for brokers in by_rack.values() {
            if let Some(c) = brokers.get(level) {
                order.push((*c).clone());
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Candidate> {
        racks
            .iter()
            .enumerate()
            .map(|(i, rack)| Candidate {
                node_id: i as i32 + 1,
                rack: rack.map(str::to_string),
                leaders: 0,
            })
            .collect()
    }

    #[test]
    fn twelve_partitions_on_three_brokers_get_four_leaders_each() {
        let placed = place(&brokers(&[None, None, None]), 12, 1).expect("place");
        let mut leaders = BTreeMap::new();
        for replicas in &placed {
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders, BTreeMap::from([(1, 4), (2, 4), (3, 4)]));
    }

    #[test]
    fn replicas_are_distinct_and_span_racks() {
        let candidates = brokers(&[
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            Some("c"),
        ]);
        let racks: BTreeMap<i32, String> = candidates
            .iter()
            .map(|c| (c.node_id, c.rack.clone().unwrap_or_default()))
            .collect();
        for replicas in place(&candidates, 24, 3).expect("place") {
            let mut spanned: Vec<&String> = replicas.iter().map(|r| &racks[r]).collect();
            spanned.sort();
            spanned.dedup();
            assert_eq!(spanned.len(), 3, "{replicas:?} should span three racks");
        }
    }

    #[test]
    fn placement_starts_at_the_least_loaded_broker() {
        let mut candidates = brokers(&[None, None, None]);
        candidates[0].leaders = 5;
        candidates[1].leaders = 1;
        candidates[2].leaders = 3;
        assert_eq!(place(&candidates, 1, 1).expect("place"), vec![vec![2]]);
    }

    #[test]
    fn too_few_brokers_is_invalid_replication_factor() {
        assert_eq!(
            place(&brokers(&[None, None]), 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                wanted: 3,
                available: 2
            })
        );
        assert_eq!(
            place(&brokers(&[None]), 1, 0),
            Err(PlacementError::InvalidFactor(0))
        );
    }
}
