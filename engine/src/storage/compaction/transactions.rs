//! What the cleaner needs from a partition's transactions, as Kafka's cleaner takes it from the
//! last stable offset and the `.txnindex`:
//! - cleaning stops at the last stable offset: records of a transaction still open may yet be
//!   aborted, so they may neither shadow older values nor be judged themselves;
//! - records of aborted transactions are neither mapped nor kept. An aborted value mapped as a
//!   key's latest would remove the committed value before it, and read_committed readers (Kafka
//!   Connect's exactly-once workers read their offsets and config topics so) would then find
//!   neither: a source task would restart from its first offset.
//!
//! Markers (control batches) stay: the partition's transaction state is rebuilt from them at
//! start-up, and an abort marker whose data is gone rebuilds nothing.
//!
//! The storage layer does not know the transactions module: the shard's retention task hands
//! this view over (`retention::compaction`).

use std::collections::HashMap;

use ringbroker_protocol::batch::BatchHeader;

/// One aborted transaction of the partition: its producer's batches from `first_offset` to the
/// abort marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedRange {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A partition's transactions as one compaction pass sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerTxns {
    /// The last stable offset when the pass starts; `None` for a partition without transactions
    /// (the high watermark bounds the pass then).
    last_stable_offset: Option<i64>,
    /// Producer id → its aborted transactions as (first offset, marker offset), by first offset.
    /// A producer has one transaction open at a time, so its ranges do not overlap.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
}

impl CleanerTxns {
    /// A partition that never held a transactional batch.
    pub fn none() -> CleanerTxns {
        CleanerTxns::default()
    }

    /// The view of a partition whose last stable offset is `last_stable_offset`, with its aborted
    /// transactions (any order).
    pub fn new(last_stable_offset: i64, aborted: &[AbortedRange]) -> CleanerTxns {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for a in aborted {
            debug_assert!(a.first_offset < a.last_offset, "{a:?}");
            by_producer
                .entry(a.producer_id)
                .or_default()
                .push((a.first_offset, a.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        CleanerTxns {
            last_stable_offset: Some(last_stable_offset),
            aborted: by_producer,
        }
    }

    /// The end of what a pass may clean: the last stable offset, at most `high_watermark`.
    pub fn cleanable_end(&self, high_watermark: i64) -> i64 {
        self.last_stable_offset
            .map_or(high_watermark, |lso| lso.min(high_watermark))
    }

    /// Whether the data batch `header` belongs to an aborted transaction (it goes whole).
    pub fn is_aborted(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(ranges) = self.aborted.get(&header.producer_id) else {
            return false;
        };
        let base = header.base_offset;
        let after = ranges.partition_point(|(first, _)| *first <= base);
        after > 0 && ranges[after - 1].1 > base
    }
}

/// The header of a batch of `producer_id` at `base_offset` spanning `count` offsets, transactional
/// and control as asked (tests of the cleaner's transaction views).
#[cfg(test)]
pub(crate) fn test_header(
    producer_id: i64,
    base_offset: i64,
    count: i32,
    transactional: bool,
    control: bool,
) -> BatchHeader {
    use ringbroker_protocol::records::{BatchBuilder, Compression, Record};
    let mut builder = BatchBuilder::new(Compression::None);
    builder
        .push(&Record {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
            timestamp_ms: 1,
        })
        .expect("push");
    let mut header = BatchHeader::parse(&builder.finish().expect("finish")).expect("header");
    header.producer_id = producer_id;
    header.base_offset = base_offset;
    header.last_offset_delta = count - 1;
    if transactional {
        header.attributes |= 0x10;
    }
    if control {
        header.attributes |= 0x20;
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, base_offset: i64, transactional: bool) -> BatchHeader {
        test_header(producer_id, base_offset, 1, transactional, false)
    }

    #[test]
    fn only_batches_inside_their_producers_aborted_range_are_aborted() {
        let txns = CleanerTxns::new(
            100,
            &[
                AbortedRange {
                    producer_id: 7,
                    first_offset: 10,
                    last_offset: 20,
                },
                AbortedRange {
                    producer_id: 8,
                    first_offset: 5,
                    last_offset: 30,
                },
                AbortedRange {
                    producer_id: 7,
                    first_offset: 40,
                    last_offset: 45,
                },
            ],
        );
        assert!(txns.is_aborted(&header(7, 10, true)));
        assert!(txns.is_aborted(&header(7, 19, true)));
        assert!(!txns.is_aborted(&header(7, 21, true)), "between its aborts");
        assert!(txns.is_aborted(&header(7, 44, true)));
        assert!(!txns.is_aborted(&header(7, 9, true)));
        assert!(!txns.is_aborted(&header(9, 12, true)), "another producer");
        assert!(!txns.is_aborted(&header(7, 12, false)), "not transactional");
        assert!(txns.is_aborted(&header(8, 25, true)));
    }

    #[test]
    fn the_pass_stops_at_the_last_stable_offset() {
        assert_eq!(CleanerTxns::none().cleanable_end(50), 50);
        assert_eq!(CleanerTxns::new(30, &[]).cleanable_end(50), 30);
        assert_eq!(CleanerTxns::new(60, &[]).cleanable_end(50), 50);
    }
}
