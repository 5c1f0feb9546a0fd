//! All producers' state on one partition, and the per-append decision: the batches of one Produce
//! partition entry are checked in order against the state, the state is updated synchronously
//! with the offsets the log is about to assign (so pipelined requests see their predecessors).

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::BatchHeader;

use super::entry::{increment_sequence, BatchMeta, IncomingBatch, ProducerEntry, Verdict};

/// Producers remembered per partition. Kafka expires idle producers after
/// `producer.id.expiration.ms` (1 day); we bound memory (and snapshot size) by count instead and
/// forget the producer that appended least recently. A forgotten producer is treated as Kafka
/// treats an expired one: its next batch is accepted at any sequence.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// What the produce path does with one partition's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Append; the state already records the batches at the offsets starting at the given
    /// log end offset. On a failed append call [`PartitionProducers::rollback`].
    Append,
    /// A retried batch: answer success with this original base offset, append nothing.
    Duplicate { base_offset: i64 },
    /// Refuse the whole partition entry with this Kafka error code.
    Reject(i16),
}

/// The producer state of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionProducers {
    pub producers: HashMap<i64, ProducerEntry>,
}

impl PartitionProducers {
    /// Checks already-validated `records` that the log will append at `log_end_offset`, and on
    /// `Append` records their idempotent batches. Like Kafka, a duplicate anywhere answers the
    /// whole entry with that batch's original offset.
    pub fn check_and_record(&mut self, records: &[u8], log_end_offset: i64) -> Decision {
        let mut staged: Vec<(i64, ProducerEntry)> = Vec::new();
        let mut offset = log_end_offset;
        let mut position = 0usize;
        while position < records.len() {
            let Ok(header) = BatchHeader::parse(&records[position..]) else {
                return Decision::Reject(ResponseError::CorruptMessage.code());
            };
            position += header.total_bytes();
            let base_offset = offset;
            offset += i64::from(header.last_offset_delta) + 1;
            if !header.has_producer_id() || header.is_control() {
                continue;
            }
            if header.base_sequence < 0 || header.last_offset_delta < 0 {
                return Decision::Reject(ResponseError::InvalidRecord.code());
            }
            let index = match staged.iter().position(|(id, _)| *id == header.producer_id) {
                Some(i) => i,
                None => {
                    let current = self
                        .producers
                        .get(&header.producer_id)
                        .cloned()
                        .unwrap_or_default();
                    staged.push((header.producer_id, current));
                    staged.len() - 1
                }
            };
            let entry = &mut staged[index].1;
            let incoming = IncomingBatch {
                epoch: header.producer_epoch,
                first_seq: header.base_sequence,
                last_offset_delta: header.last_offset_delta,
            };
            match entry.check(&incoming) {
                Verdict::Append => entry.record(
                    header.producer_epoch,
                    BatchMeta {
                        first_seq: incoming.first_seq,
                        last_seq: incoming.last_seq(),
                        base_offset,
                        last_offset: offset - 1,
                    },
                ),
                Verdict::Duplicate(original) => {
                    return Decision::Duplicate {
                        base_offset: original.base_offset,
                    }
                }
                Verdict::Reject(code) => return Decision::Reject(code),
            }
        }
        for (id, entry) in staged {
            self.producers.insert(id, entry);
        }
        self.evict_over_limit();
        Decision::Append
    }

    /// Drops the least recently appending producers beyond [`PRODUCERS_PER_PARTITION_MAX`].
    fn evict_over_limit(&mut self) {
        while self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, e)| e.batches.back().map_or(i64::MIN, |b| b.last_offset))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.producers.remove(&id),
                None => break,
            };
        }
    }

    /// Forgets batches recorded at or after `base_offset` (their append failed), so that their
    /// retry is checked against what is really in the log.
    pub fn rollback(&mut self, base_offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.base_offset < base_offset);
        }
    }

    /// Replays one batch header read back from the log (recovery): the log is the truth.
    pub fn replay(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.is_control() || header.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        entry.record(
            header.producer_epoch,
            BatchMeta {
                first_seq: header.base_sequence,
                last_seq: increment_sequence(header.base_sequence, header.last_offset_delta.max(0)),
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
            },
        );
        self.evict_over_limit();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ringbroker_protocol::batch::build_simple_batch;

    /// A batch of `records` one-byte records from producer `id`/`epoch` starting at `seq`.
    pub(crate) fn idempotent_batch(id: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
        let values: Vec<&[u8]> = (0..records).map(|_| b"x".as_slice()).collect();
        let mut batch = build_simple_batch(1, &values);
        batch[43..51].copy_from_slice(&id.to_be_bytes());
        batch[51..53].copy_from_slice(&epoch.to_be_bytes());
        batch[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = ringbroker_protocol::batch::crc32c_of(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn duplicate_answers_the_original_offset_without_recording() {
        let mut table = PartitionProducers::default();
        let batch = idempotent_batch(7, 0, 0, 3);
        assert_eq!(table.check_and_record(&batch, 100), Decision::Append);
        let before = table.clone();
        assert_eq!(
            table.check_and_record(&batch, 103),
            Decision::Duplicate { base_offset: 100 }
        );
        assert_eq!(table, before);
        assert_eq!(
            table.check_and_record(&idempotent_batch(7, 0, 3, 1), 103),
            Decision::Append
        );
    }

    #[test]
    fn several_batches_in_one_entry_are_checked_in_order() {
        let mut table = PartitionProducers::default();
        let mut records = idempotent_batch(1, 0, 0, 2);
        records.extend(idempotent_batch(1, 0, 2, 2));
        assert_eq!(table.check_and_record(&records, 0), Decision::Append);
        let entry = &table.producers[&1];
        assert_eq!(entry.batches.len(), 2);
        assert_eq!(entry.batches[1].base_offset, 2);
        assert_eq!(entry.batches[1].last_seq, 3);
        // A gap in the second batch refuses the whole entry and records nothing.
        let mut gap = idempotent_batch(1, 0, 4, 1);
        gap.extend(idempotent_batch(1, 0, 9, 1));
        let before = table.clone();
        assert_eq!(table.check_and_record(&gap, 4), Decision::Reject(45));
        assert_eq!(table, before);
    }

    #[test]
    fn stale_epoch_and_non_idempotent_batches() {
        let mut table = PartitionProducers::default();
        assert_eq!(
            table.check_and_record(&idempotent_batch(1, 2, 0, 1), 0),
            Decision::Append
        );
        assert_eq!(
            table.check_and_record(&idempotent_batch(1, 1, 1, 1), 1),
            Decision::Reject(47)
        );
        let plain = build_simple_batch(1, &[b"a"]);
        assert_eq!(table.check_and_record(&plain, 1), Decision::Append);
        assert_eq!(table.check_and_record(&plain, 2), Decision::Append);
    }

    #[test]
    fn the_least_recent_producer_is_forgotten_beyond_the_limit() {
        let mut table = PartitionProducers::default();
        let limit = PRODUCERS_PER_PARTITION_MAX as i64;
        for id in 0..=limit {
            table.check_and_record(&idempotent_batch(id, 0, 5, 1), id);
        }
        assert_eq!(table.producers.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(!table.producers.contains_key(&0));
        assert!(table.producers.contains_key(&limit));
        // Forgotten means accepted at any sequence, like an expired producer in Kafka.
        assert_eq!(
            table.check_and_record(&idempotent_batch(0, 0, 42, 1), limit + 1),
            Decision::Append
        );
    }

    #[test]
    fn rollback_forgets_failed_batches() {
        let mut table = PartitionProducers::default();
        table.check_and_record(&idempotent_batch(1, 0, 0, 1), 0);
        table.check_and_record(&idempotent_batch(1, 0, 1, 1), 1);
        table.rollback(1);
        assert_eq!(
            table.check_and_record(&idempotent_batch(1, 0, 1, 1), 1),
            Decision::Append
        );
    }

    #[test]
    fn replay_rebuilds_the_same_state() {
        let mut live = PartitionProducers::default();
        let mut replayed = PartitionProducers::default();
        let mut offset = 0;
        for seq in 0..8 {
            let mut batch = idempotent_batch(5, 1, seq * 2, 2);
            assert_eq!(live.check_and_record(&batch, offset), Decision::Append);
            batch[0..8].copy_from_slice(&offset.to_be_bytes());
            replayed.replay(&BatchHeader::parse(&batch).unwrap());
            offset += 2;
        }
        assert_eq!(live, replayed);
    }
}
