//! One producer's state on one partition and Kafka's sequence rules for it
//! (`ProducerStateEntry` / `ProducerAppendInfo.checkSequence` in Kafka): the epoch and the last
//! [`BATCH_WINDOW`] batches' sequence and offset ranges.

use std::collections::VecDeque;

use kafka_protocol::ResponseError;

/// Batches remembered per producer for duplicate detection: Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence (a client never has more
/// unacknowledged batches per partition than this).
pub const BATCH_WINDOW: usize = 5;

/// "No epoch yet": the entry of a producer this partition has not seen (Kafka's NO_PRODUCER_EPOCH).
pub const NO_EPOCH: i16 = -1;

/// Sequence and offset range of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// The sequence-relevant part of an incoming batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingBatch {
    pub epoch: i16,
    pub first_seq: i32,
    /// Records in the batch minus one (the header's `last_offset_delta`).
    pub last_offset_delta: i32,
}

impl IncomingBatch {
    /// Last sequence of the batch: sequences wrap from `i32::MAX` to 0 like Kafka's
    /// `DefaultRecordBatch.incrementSequence`.
    pub fn last_seq(&self) -> i32 {
        increment_sequence(self.first_seq, self.last_offset_delta)
    }
}

/// `seq + delta` wrapping at `i32::MAX` to 0.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    debug_assert!(seq >= 0 && delta >= 0);
    let sum = i64::from(seq) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Whether `next` directly follows `last` (Kafka's `inSequence`).
pub fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What to do with one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// In sequence (or the producer is new here): append it.
    Append,
    /// A retry of a batch already in the log: answer with its original offsets, append nothing.
    Duplicate(BatchMeta),
    /// Refuse with this Kafka error code.
    Reject(i16),
}

/// One producer's state on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCH_WINDOW`].
    pub batches: VecDeque<BatchMeta>,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: NO_EPOCH,
            batches: VecDeque::with_capacity(BATCH_WINDOW),
        }
    }
}

impl ProducerEntry {
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// Kafka's checks in order: stale epoch, duplicate of a remembered batch, sequence.
    pub fn check(&self, batch: &IncomingBatch) -> Verdict {
        if self.epoch != NO_EPOCH && batch.epoch < self.epoch {
            return Verdict::Reject(ResponseError::InvalidProducerEpoch.code());
        }
        if batch.epoch == self.epoch {
            let last_seq = batch.last_seq();
            if let Some(original) = self
                .batches
                .iter()
                .find(|b| b.first_seq == batch.first_seq && b.last_seq == last_seq)
            {
                return Verdict::Duplicate(*original);
            }
        }
        let accepted = if batch.epoch != self.epoch {
            // A new epoch starts at sequence 0; a producer unknown here (its state is gone, e.g.
            // after retention) is accepted at any sequence, as Kafka does since KIP-360.
            batch.first_seq == 0 || self.epoch == NO_EPOCH
        } else {
            match self.last_seq() {
                Some(last) => in_sequence(last, batch.first_seq),
                // Same epoch but no batches remembered (restored from a snapshot without them).
                None => true,
            }
        };
        if accepted {
            Verdict::Append
        } else {
            Verdict::Reject(ResponseError::OutOfOrderSequenceNumber.code())
        }
    }

    /// Records an appended batch (after `check` said `Append`, or while replaying the log).
    pub fn record(&mut self, epoch: i16, meta: BatchMeta) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCH_WINDOW {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
        debug_assert!(self.batches.len() <= BATCH_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(epoch: i16, first_seq: i32, records: i32) -> IncomingBatch {
        IncomingBatch {
            epoch,
            first_seq,
            last_offset_delta: records - 1,
        }
    }

    fn meta(first_seq: i32, records: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq: increment_sequence(first_seq, records - 1),
            base_offset,
            last_offset: base_offset + i64::from(records) - 1,
        }
    }

    fn entry_with(epoch: i16, batches: &[BatchMeta]) -> ProducerEntry {
        let mut entry = ProducerEntry::default();
        for b in batches {
            entry.record(epoch, *b);
        }
        entry
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        let entry = ProducerEntry::default();
        assert_eq!(entry.check(&incoming(0, 0, 3)), Verdict::Append);
        assert_eq!(entry.check(&incoming(4, 17, 3)), Verdict::Append);
    }

    #[test]
    fn next_sequence_appends_and_gap_is_out_of_order() {
        let entry = entry_with(0, &[meta(0, 10, 100)]);
        assert_eq!(entry.check(&incoming(0, 10, 5)), Verdict::Append);
        assert_eq!(entry.check(&incoming(0, 11, 5)), Verdict::Reject(45));
        assert_eq!(entry.check(&incoming(0, 9, 1)), Verdict::Reject(45));
    }

    #[test]
    fn duplicate_returns_original_offsets() {
        let first = meta(0, 10, 100);
        let second = meta(10, 10, 200);
        let entry = entry_with(0, &[first, second]);
        assert_eq!(entry.check(&incoming(0, 0, 10)), Verdict::Duplicate(first));
        assert_eq!(
            entry.check(&incoming(0, 10, 10)),
            Verdict::Duplicate(second)
        );
        // Same first sequence, different length: not a duplicate, and out of order.
        assert_eq!(entry.check(&incoming(0, 10, 3)), Verdict::Reject(45));
    }

    #[test]
    fn stale_epoch_is_invalid_producer_epoch() {
        let entry = entry_with(3, &[meta(0, 1, 0)]);
        assert_eq!(entry.check(&incoming(2, 1, 1)), Verdict::Reject(47));
        assert_eq!(entry.check(&incoming(2, 0, 1)), Verdict::Reject(47));
    }

    #[test]
    fn newer_epoch_must_start_at_zero() {
        let entry = entry_with(3, &[meta(0, 5, 0)]);
        assert_eq!(entry.check(&incoming(4, 0, 1)), Verdict::Append);
        assert_eq!(entry.check(&incoming(4, 5, 1)), Verdict::Reject(45));
        let mut bumped = entry.clone();
        bumped.record(4, meta(0, 1, 5));
        assert_eq!(bumped.epoch, 4);
        assert_eq!(bumped.batches.len(), 1);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let near_max = meta(i32::MAX - 4, 5, 0);
        assert_eq!(near_max.last_seq, i32::MAX);
        let entry = entry_with(0, &[near_max]);
        assert_eq!(entry.check(&incoming(0, 0, 2)), Verdict::Append);
        assert_eq!(entry.check(&incoming(0, 1, 2)), Verdict::Reject(45));
        // A batch straddling the wrap is a duplicate by (first, last) too.
        let straddling = meta(i32::MAX - 1, 4, 10);
        assert_eq!(straddling.last_seq, 1);
        let entry = entry_with(0, &[straddling]);
        assert_eq!(
            entry.check(&incoming(0, i32::MAX - 1, 4)),
            Verdict::Duplicate(straddling)
        );
        assert_eq!(entry.check(&incoming(0, 2, 1)), Verdict::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let batches: Vec<BatchMeta> = (0..6).map(|i| meta(i * 2, 2, i64::from(i) * 2)).collect();
        let entry = entry_with(0, &batches);
        assert_eq!(entry.batches.len(), BATCH_WINDOW);
        // The oldest fell out of the window: its retry is out of order, not a duplicate.
        assert_eq!(entry.check(&incoming(0, 0, 2)), Verdict::Reject(45));
        for b in &batches[1..] {
            assert_eq!(
                entry.check(&incoming(0, b.first_seq, 2)),
                Verdict::Duplicate(*b)
            );
        }
        assert_eq!(entry.check(&incoming(0, 12, 2)), Verdict::Append);
    }
}
