//! What members subscribe to, seen through the broker's topic table: topic ids and partition counts, the
//! hash of the subscribed topics' metadata (a change re-triggers assignment), and regular-expression
//! subscriptions (`subscribed_topic_regex`).
//!
//! Kafka compiles these with RE2/J and a topic matches when the whole name matches (`Matcher.matches`).
//! We use the `regex` crate, anchored to the whole name, with the same RE2 syntax family. Known
//! differences: RE2/J accepts `\Q...\E` quoting, `\C` and octal escapes such as `\123`, which `regex`
//! refuses (the member gets INVALID_REGULAR_EXPRESSION); `regex` accepts class set operations
//! (`[a-z&&[^x]]`, `--`, `~~`) that RE2/J reads differently; `\d`, `\w`, `\s` are Unicode-aware in `regex`
//! and ASCII in RE2/J, which cannot change a match because topic names are ASCII
//! (`[a-zA-Z0-9._-]`). Internal topics (`__` prefix) never match, as in Kafka.

use std::collections::BTreeSet;

use regex::{Regex, RegexBuilder};
use uuid::Uuid;

use crate::metadata::TopicTable;

/// Most bytes a compiled subscription regex may take: a pattern that expands past it is refused as
/// invalid, so a client cannot make the coordinator build a huge automaton (the `regex` default is 10 MiB;
/// real topic patterns need a few KiB).
pub const REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;

/// Prefix of the broker's own topics, which regular expressions never match.
const INTERNAL_TOPIC_PREFIX: &str = "__";

/// A topic as the assignors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicShape {
    pub id: Uuid,
    pub partitions: i32,
}

/// The topic named `name`, if it exists.
pub fn topic(table: &TopicTable, name: &str) -> Option<TopicShape> {
    table.topics.get(name).map(|meta| TopicShape {
        id: Uuid::from_bytes(meta.id),
        partitions: meta.partitions,
    })
}

/// The name of the topic with this id, if it exists.
pub fn topic_name(table: &TopicTable, id: Uuid) -> Option<&str> {
    table
        .topics
        .iter()
        .find(|(_, meta)| meta.id == *id.as_bytes())
        .map(|(name, _)| name.as_str())
}

/// FNV-1a over each existing subscribed topic's name, id and partition count, in name order: a change of
/// any of them (a topic created, deleted or given more partitions) changes the hash. Stable across
/// versions and restarts because it is stored in the group-epoch record.
pub fn metadata_hash(table: &TopicTable, topics: &BTreeSet<String>) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for name in topics {
        if let Some(shape) = topic(table, name) {
            feed(name.as_bytes());
            feed(&[0]);
            feed(shape.id.as_bytes());
            feed(&shape.partitions.to_be_bytes());
        }
    }
    hash as i64
}

/// Compiles a subscription pattern to match whole topic names; the error says why it is invalid.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_COMPILED_BYTES_MAX)
        .build()
        .map_err(|error| error.to_string())
}

/// The non-internal topics whose whole name matches, sorted.
pub fn resolve(regex: &Regex, table: &TopicTable) -> Vec<String> {
    table
        .topics
        .keys()
        .filter(|name| !name.starts_with(INTERNAL_TOPIC_PREFIX) && regex.is_match(name))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TopicMeta;

    fn table(topics: &[(&str, i32)]) -> TopicTable {
        let mut table = TopicTable::default();
        for (i, (name, partitions)) in topics.iter().enumerate() {
            table.topics.insert(
                name.to_string(),
                TopicMeta {
                    id: [i as u8 + 1; 16],
                    partitions: *partitions,
                    configs: Default::default(),
                    assignments: Vec::new(),
                },
            );
        }
        table
    }

    #[test]
    fn regex_matches_whole_names_and_skips_internal_topics() {
        let t = table(&[
            ("orders", 1),
            ("orders-eu", 1),
            ("xorders", 1),
            ("__orders", 1),
        ]);
        assert_eq!(
            resolve(&compile("orders.*").unwrap(), &t),
            vec!["orders", "orders-eu"]
        );
        assert_eq!(
            resolve(&compile("orders|xorders").unwrap(), &t),
            vec!["orders", "xorders"]
        );
        assert!(
            resolve(&compile("order").unwrap(), &t).is_empty(),
            "no partial match"
        );
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for pattern in ["(unclosed", "a{2,1}", "\\Qquoted\\E", "[z-a]"] {
            assert!(compile(pattern).is_err(), "{pattern}");
        }
        assert!(
            compile(&"(a|b){1000}".repeat(50)).is_err(),
            "too big once compiled"
        );
    }

    #[test]
    fn metadata_hash_follows_partition_counts_and_existence() {
        let subscribed: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let before = metadata_hash(&table(&[("a", 3)]), &subscribed);
        assert_ne!(before, metadata_hash(&table(&[("a", 4)]), &subscribed));
        assert_ne!(
            before,
            metadata_hash(&table(&[("a", 3), ("b", 1)]), &subscribed)
        );
        assert_eq!(
            before,
            metadata_hash(&table(&[("a", 3), ("c", 9)]), &subscribed)
        );
    }
}
