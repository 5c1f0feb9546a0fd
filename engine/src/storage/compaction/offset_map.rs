//! The cleaner's key -> latest offset map (Kafka's `SkimpyOffsetMap`): keys are stored as a 16-byte
//! digest (xxh3-128), so memory is bounded by the entry cap, not by key sizes. A digest collision
//! (probability ~n²/2¹²⁸) would drop the older of two different keys' records, as in Kafka.

use std::collections::HashMap;

use twox_hash::XxHash3_128;

/// Approximate bytes one map entry costs (digest, offset, hash-table overhead); documents what
/// `max_keys` means in memory.
pub const OFFSET_MAP_ENTRY_BYTES: usize = 40;

/// Key digest -> latest offset, capped at `capacity` keys.
pub(crate) struct OffsetMap {
    entries: HashMap<u128, i64>,
    capacity: usize,
}

/// The digest of a record key.
pub(crate) fn key_digest(key: &[u8]) -> u128 {
    XxHash3_128::oneshot(key)
}

impl OffsetMap {
    pub(crate) fn new(capacity: usize) -> OffsetMap {
        assert!(capacity > 0, "an offset map needs room for one key");
        OffsetMap {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Whether `digests` (the keys of one batch) fit without passing the cap.
    pub(crate) fn fits(&self, digests: &[u128]) -> bool {
        let new_keys: std::collections::HashSet<&u128> = digests
            .iter()
            .filter(|digest| !self.entries.contains_key(digest))
            .collect();
        let new_keys = new_keys.len();
        self.entries.len() + new_keys <= self.capacity
    }

    /// Records `offset` as the latest offset of `digest` (offsets arrive in increasing order).
    pub(crate) fn put(&mut self, digest: u128, offset: i64) {
        debug_assert!(
            self.entries.len() < self.capacity || self.entries.contains_key(&digest),
            "callers check `fits` first"
        );
        let latest = self.entries.entry(digest).or_insert(offset);
        *latest = (*latest).max(offset);
    }

    /// The latest offset of `digest` in the mapped range.
    pub(crate) fn latest(&self, digest: u128) -> Option<i64> {
        self.entries.get(&digest).copied()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_respects_the_cap() {
        let mut map = OffsetMap::new(2);
        let a = key_digest(b"a");
        let b = key_digest(b"b");
        let c = key_digest(b"c");
        assert_ne!(a, b);
        assert!(map.fits(&[a, b, a]));
        map.put(a, 1);
        map.put(b, 2);
        map.put(a, 3);
        assert_eq!(map.latest(a), Some(3));
        assert_eq!(map.latest(c), None);
        assert!(map.fits(&[a, b]));
        assert!(!map.fits(&[c]));
        assert_eq!(map.len(), 2);
    }
}
