//! Placement of a group on a `__consumer_offsets` partition, bit for bit as Kafka computes it, so a
//! group lands on the same partition (and so the same shard) as it would in Kafka.

/// Number of `__consumer_offsets` partitions (Kafka's `offsets.topic.num.partitions` default).
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping on i32.
pub fn java_string_hashcode(value: &str) -> i32 {
    value.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that holds `group_id`: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, where `Utils.abs(Integer.MIN_VALUE)` is 0.
pub fn offsets_partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "offsets topic needs at least one partition");
    let hash = java_string_hashcode(group_id);
    // Kafka's Utils.abs is `n & 0x7fffffff`, which maps i32::MIN to 0 (not i32::MIN).
    (hash & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashcode_matches_java() {
        // Values computed with java.lang.String#hashCode.
        assert_eq!(java_string_hashcode(""), 0);
        assert_eq!(java_string_hashcode("a"), 97);
        assert_eq!(java_string_hashcode("hello"), 99_162_322);
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        // A character outside the BMP counts as two UTF-16 code units (a surrogate pair).
        assert_eq!(java_string_hashcode("😀"), 1_772_899);
    }

    #[test]
    fn partition_is_within_range_and_handles_min_value() {
        assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
        assert_eq!(offsets_partition_for("hello", 50), 99_162_322 % 50);
        for group in [
            "",
            "g",
            "my-group",
            "console-consumer-12345",
            "connect-cluster",
        ] {
            let partition = offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS);
            assert!((0..OFFSETS_TOPIC_PARTITIONS).contains(&partition));
        }
    }
}
