//! A partition's transactions as its own log shows them, for replicas that keep no transaction
//! state: followers of transactional topics and every replica of `__consumer_offsets` (whose
//! transactional batches the group coordinator writes). Kafka's followers know the same from the
//! producer state they rebuild from replicated batches; here the log cleaner only needs the last
//! stable offset and the aborted transactions ([`CleanerTxns`]), and both follow from the batch
//! headers in offset order:
//! - a producer's transactional data batch opens its transaction (if not open yet), at that
//!   batch's base offset;
//! - its control batch (marker) closes it; an abort marker makes the range from the first
//!   batch to the marker an aborted range;
//! - the last stable offset is the first offset of the oldest transaction still open, or the
//!   end of what was observed.
//!
//! Compaction keeps markers and removes data batches only, so a log observed after some passes
//! gives a view the cleaner may still use: a transaction whose batches are gone opens nothing, and
//! an aborted one whose batches are gone has nothing left to remove.

use std::collections::HashMap;

use ringbroker_protocol::batch::BatchHeader;

use super::transactions::{AbortedRange, CleanerTxns};

/// What a control batch (a transaction marker) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Commit,
    Abort,
}

/// The transactions of a log observed up to some offset (incrementally: the retention task keeps
/// one per log between passes and feeds it what was appended since).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTxnTracker {
    /// The offset the next observed batch must end after: everything below was observed.
    observed_to: i64,
    /// Producer id → first offset of its open transaction.
    open: HashMap<i64, i64>,
    aborted: Vec<AbortedRange>,
}

impl LogTxnTracker {
    /// A tracker that starts observing at `log_start` (nothing below it is in the log).
    pub fn starting_at(log_start: i64) -> LogTxnTracker {
        LogTxnTracker {
            observed_to: log_start,
            ..LogTxnTracker::default()
        }
    }

    /// The end of what was observed.
    pub fn observed_to(&self) -> i64 {
        self.observed_to
    }

    /// Observes the next batch of the log (`marker` is what a control batch says). A batch that
    /// ends below what was observed is skipped: a read comes back in whole batches, and the first
    /// may begin below the offset it was asked for.
    pub fn observe(&mut self, header: &BatchHeader, marker: Option<Marker>) {
        if header.last_offset() < self.observed_to {
            return;
        }
        self.observed_to = header.last_offset() + 1;
        if !header.is_transactional() {
            return;
        }
        let producer_id = header.producer_id;
        if header.is_control() {
            let Some(first_offset) = self.open.remove(&producer_id) else {
                // A marker of a transaction with no data batch left (compacted, or before the log start).
                return;
            };
            if marker == Some(Marker::Abort) {
                debug_assert!(first_offset < header.base_offset);
                self.aborted.push(AbortedRange {
                    producer_id,
                    first_offset,
                    last_offset: header.base_offset,
                });
            }
            return;
        }
        self.open.entry(producer_id).or_insert(header.base_offset);
    }

    /// The cleaner's view: cleaning stops at the oldest open transaction, or at what was observed.
    pub fn cleaner_txns(&self) -> CleanerTxns {
        let last_stable_offset = self
            .open
            .values()
            .copied()
            .min()
            .unwrap_or(self.observed_to);
        CleanerTxns::new(last_stable_offset, &self.aborted)
    }

    /// Forgets aborted ranges that end below `offset`: the log start moved past them, or a
    /// compaction pass cleaned past them (their batches are gone).
    pub fn forget_aborted_below(&mut self, offset: i64) {
        self.aborted.retain(|range| range.last_offset >= offset);
    }
}

#[cfg(test)]
mod tests {
    use super::super::transactions::test_header as header;
    use super::*;

    fn data(pid: i64, base: i64, count: i32) -> BatchHeader {
        header(pid, base, count, true, false)
    }

    fn marker(pid: i64, at: i64) -> BatchHeader {
        header(pid, at, 1, true, true)
    }

    fn plain(base: i64, count: i32) -> BatchHeader {
        header(-1, base, count, false, false)
    }

    #[test]
    fn an_open_transaction_bounds_the_cleaner_and_an_abort_is_a_range() {
        let mut tracker = LogTxnTracker::starting_at(0);
        tracker.observe(&plain(0, 10), None);
        tracker.observe(&data(7, 10, 5), None);
        tracker.observe(&data(8, 15, 5), None);
        tracker.observe(&data(7, 20, 5), None);
        tracker.observe(&marker(7, 25), Some(Marker::Abort));
        tracker.observe(&plain(26, 4), None);
        assert_eq!(tracker.observed_to(), 30);
        let view = tracker.cleaner_txns();
        assert_eq!(view.cleanable_end(100), 15, "producer 8 is still open");
        assert!(view.is_aborted(&data(7, 10, 5)));
        assert!(view.is_aborted(&data(7, 20, 5)));
        assert!(!view.is_aborted(&data(8, 15, 5)));

        tracker.observe(&marker(8, 30), Some(Marker::Commit));
        let view = tracker.cleaner_txns();
        assert_eq!(
            view.cleanable_end(100),
            31,
            "nothing open: what was observed"
        );
        assert_eq!(view.cleanable_end(20), 20, "never past the high watermark");
        assert!(!view.is_aborted(&data(8, 15, 5)), "committed");
    }

    #[test]
    fn markers_without_data_and_batches_seen_twice_change_nothing() {
        let mut tracker = LogTxnTracker::starting_at(100);
        // Compacted away (or below the log start): the marker closes nothing.
        tracker.observe(&marker(7, 100), Some(Marker::Abort));
        tracker.observe(&data(7, 101, 2), None);
        // A read handing back a batch already observed (it began below the read's offset).
        tracker.observe(&data(7, 101, 2), None);
        tracker.observe(&marker(7, 103), Some(Marker::Commit));
        let view = tracker.cleaner_txns();
        assert_eq!(view.cleanable_end(1000), 104);
        assert!(!view.is_aborted(&data(7, 101, 2)));
        assert_eq!(tracker, {
            let mut expected = LogTxnTracker::starting_at(100);
            expected.observed_to = 104;
            expected
        });
    }

    #[test]
    fn aborted_ranges_below_an_offset_are_forgotten() {
        let mut tracker = LogTxnTracker::starting_at(0);
        tracker.observe(&data(7, 0, 2), None);
        tracker.observe(&marker(7, 2), Some(Marker::Abort));
        tracker.observe(&data(7, 3, 2), None);
        tracker.observe(&marker(7, 5), Some(Marker::Abort));
        tracker.forget_aborted_below(3);
        let view = tracker.cleaner_txns();
        assert!(!view.is_aborted(&data(7, 0, 2)));
        assert!(view.is_aborted(&data(7, 3, 2)));
    }
}
