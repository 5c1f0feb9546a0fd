//! A latency histogram that one shard writes without locks and a scraper reads at any time:
//! fixed log-scale buckets (factor √2 from 1 µs to ~34 s) held in `AtomicU64`s. Recording finds
//! the bucket from the duration's leading zeros (one or two compares) and does three single-writer
//! adds (see `single_writer`); reading is a sweep of loads.
//!
//! The scraper may see a bucket incremented before the count (relaxed ordering): a scrape can be
//! off by the events recorded while it runs, which Prometheus tolerates (counters only grow).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::single_writer;

/// Smallest finite bucket bound, in nanoseconds (1 µs: below that the clock read dominates).
pub const FIRST_BOUND_NS: u64 = 1_000;
/// Number of finite buckets; bound `i` is `FIRST_BOUND_NS * 2^(i/2)`, so the last is ~34 s.
pub const FINITE_BUCKETS: usize = 51;
/// Finite buckets plus the `+Inf` bucket.
pub const BUCKETS: usize = FINITE_BUCKETS + 1;

/// Upper bounds (inclusive, Prometheus `le`) of the finite buckets in nanoseconds, √2 apart.
pub static BOUNDS_NS: [u64; FINITE_BUCKETS] = bounds_ns();

const fn bounds_ns() -> [u64; FINITE_BUCKETS] {
    // √2 scaled by 2^20, rounded: exact enough for bucket bounds and computable in a const fn.
    const SQRT2_Q20: u64 = 1_482_910;
    let mut bounds = [0u64; FINITE_BUCKETS];
    let mut i = 0;
    while i < FINITE_BUCKETS {
        let whole = FIRST_BOUND_NS << (i / 2);
        bounds[i] = if i % 2 == 0 {
            whole
        } else {
            (whole * SQRT2_Q20) >> 20
        };
        i += 1;
    }
    bounds
}

/// The bucket of `ns`: the first bound >= `ns` (`BUCKETS - 1`, +Inf, past the last). Bound `i` is
/// about 2^(9.97 + i/2) ns, so `2 * log2(ns) - 19` lands within a bucket or two of the answer; the
/// two loops settle it against the table, so the guess only decides how many compares it takes.
#[inline]
fn bucket_index(ns: u64) -> usize {
    let log2 = 63 - (ns | 1).leading_zeros() as usize;
    let mut index = (2 * log2).saturating_sub(19).min(FINITE_BUCKETS);
    while index > 0 && BOUNDS_NS[index - 1] >= ns {
        index -= 1;
    }
    while index < FINITE_BUCKETS && BOUNDS_NS[index] < ns {
        index += 1;
    }
    index
}

/// A histogram of durations with the bucket layout above.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of a histogram, buckets NOT cumulative.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, events in this bucket); the last bound is `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one duration.
    #[inline]
    pub fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.record_ns(ns);
    }

    /// Records one duration given in nanoseconds. Only the histogram's owning thread records.
    #[inline]
    pub fn record_ns(&self, ns: u64) {
        let index = bucket_index(ns);
        debug_assert_eq!(index, BOUNDS_NS.partition_point(|bound| *bound < ns));
        single_writer::add(&self.buckets[index], 1);
        single_writer::add(&self.sum_ns, ns);
        single_writer::add(&self.count, 1);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Copies the histogram (not cumulative; the encoder accumulates).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let bound = BOUNDS_NS
                    .get(i)
                    .map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
                (bound, bucket.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Adds another snapshot of the same layout (to sum shards).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        debug_assert_eq!(self.buckets.len(), other.buckets.len());
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_grow_by_root_two() {
        assert_eq!(BOUNDS_NS[0], 1_000);
        assert_eq!(BOUNDS_NS[1], 1_414);
        assert_eq!(BOUNDS_NS[2], 2_000);
        assert_eq!(BOUNDS_NS[20], 1_024_000);
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert!(BOUNDS_NS[FINITE_BUCKETS - 1] > 30_000_000_000);
    }

    #[test]
    fn records_land_in_the_le_bucket() {
        let h = LatencyHistogram::default();
        h.record_ns(1_000); // exactly the first bound: le="1e-6"
        h.record_ns(1_001); // just above: next bucket
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(3600)); // beyond every bound: +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0].1, 1);
        assert_eq!(s.buckets[1].1, 1);
        let ms_bucket = BOUNDS_NS.partition_point(|b| *b < 1_000_000);
        assert_eq!(s.buckets[ms_bucket].1, 1);
        assert_eq!(s.buckets[BUCKETS - 1], (f64::INFINITY, 1));
        assert!((s.sum_seconds - (3600.001 + 2.001e-6)).abs() < 1e-6);
    }

    #[test]
    fn bucket_index_matches_a_search_of_the_bounds() {
        let search = |ns: u64| BOUNDS_NS.partition_point(|bound| *bound < ns);
        let mut probes = vec![0, 1, 999, u64::MAX - 1, u64::MAX];
        for bound in BOUNDS_NS {
            probes.extend([bound - 1, bound, bound + 1]);
        }
        // Every power of two and its neighbours: where the leading-zeros guess changes.
        for shift in 0..64 {
            let p = 1u64 << shift;
            probes.extend([p - 1, p, p.saturating_add(1)]);
        }
        for ns in probes {
            assert_eq!(bucket_index(ns), search(ns), "ns = {ns}");
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = x >> (x % 64);
            assert_eq!(bucket_index(ns), search(ns), "ns = {ns}");
        }
    }

    #[test]
    fn merge_adds_buckets_sums_and_counts() {
        let a = LatencyHistogram::default();
        let b = LatencyHistogram::default();
        a.record_ns(5_000);
        b.record_ns(5_000);
        b.record_ns(9_000_000);
        let mut s = a.snapshot();
        s.merge(&b.snapshot());
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
    }
}
