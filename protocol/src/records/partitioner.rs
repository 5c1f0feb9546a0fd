//! Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`, bit for bit as
//! the Java client (`org.apache.kafka.common.utils.Utils.murmur2`) computes it, so a key lands on the same
//! partition whichever client wrote it.

/// Java's `Utils.murmur2` seed.
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// MurmurHash2 multiplier.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// MurmurHash2 shift.
const MURMUR2_R: u32 = 24;

/// MurmurHash2 of `data`, identical to the Java client's `Utils.murmur2` (32-bit, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    // Java works on signed ints with wrapping multiplication and `>>>` (logical shift): u32 arithmetic
    // with wrapping_mul gives the same bits.
    let mut hash = MURMUR2_SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        hash = hash.wrapping_mul(MURMUR2_M);
        hash ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(MURMUR2_M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(MURMUR2_M);
    hash ^= hash >> 15;
    hash as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(value: i32) -> i32 {
    value & 0x7fff_ffff
}

/// The partition the Java client's default partitioner picks for a record with `key`.
///
/// `partitions` must be positive (a topic always has at least one partition).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "a topic has at least one partition, got {partitions}"
    );
    to_positive(murmur2(key)) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Apache Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java_utils_test() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partition_for_key_uses_to_positive_not_abs() {
        // murmur2("21") is negative: toPositive keeps the low 31 bits.
        assert_eq!(
            partition_for_key(b"21", 1_000_000_000),
            (-973_932_308i32 & 0x7fff_ffff) % 1_000_000_000
        );
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        for partitions in 1..20 {
            let partition = partition_for_key(b"some key", partitions);
            assert!((0..partitions).contains(&partition));
        }
    }

    #[test]
    fn empty_key_hashes_like_java() {
        // Java: h = seed ^ 0, no body, no tail: only the final mix.
        let mut hash = MURMUR2_SEED;
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(MURMUR2_M);
        hash ^= hash >> 15;
        assert_eq!(murmur2(b""), hash as i32);
    }
}
