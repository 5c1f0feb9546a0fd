//! Which shard owns a partition. Deterministic from (topic, partition, shard count), so every
//! shard computes the same answer with no coordination: a topic's partitions start at a
//! per-topic offset and go round-robin over the shards, which spreads each topic evenly and
//! keeps different topics' partition 0 off the same shard.

/// The shard owning `partition` of `topic` with `shard_count` shards.
pub fn owner_shard(topic: &str, partition: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "a broker has at least one shard");
    debug_assert!(partition >= 0);
    let start = fnv1a(topic.as_bytes()) as usize % shard_count;
    (start + partition as usize) % shard_count
}

/// FNV-1a: stable across builds and platforms (std's hasher is randomly seeded).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_all_shards() {
        let owners: Vec<usize> = (0..8).map(|p| owner_shard("t", p, 2)).collect();
        assert_eq!(owners.iter().filter(|o| **o == 0).count(), 4);
        assert_eq!(owners.iter().filter(|o| **o == 1).count(), 4);
    }

    #[test]
    fn one_shard_owns_everything() {
        assert!((0..16).all(|p| owner_shard("any", p, 1) == 0));
    }
}
