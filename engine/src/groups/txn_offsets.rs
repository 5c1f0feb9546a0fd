//! Offsets committed inside transactions (TxnOffsetCommit) while their transaction is open, as
//! Kafka's group coordinator keeps them (`pendingTransactionalOffsets`): by producer id, not
//! visible to OffsetFetch (a fetch requiring stable offsets is told UNSTABLE_OFFSET_COMMIT), until
//! the transaction coordinator's marker reaches the group's `__consumer_offsets` partition: a
//! commit marker makes them the group's committed offsets, an abort drops them.
//!
//! Order between a transaction's offset and a plain commit of the same partition follows the log,
//! as Kafka's `recordOffset` comparison: a plain commit appended after the transactional one wins
//! (the transactional offset is `superseded` and never materialises unless that commit is deleted
//! before the marker), one appended before it loses once the transaction commits. Replaying the log rebuilds exactly this state, so a new
//! coordinator (fail-over, restart) holds the same pending offsets as the old one.
//!
//! The producer epochs seen here fence zombies as the producer state of Kafka's offsets partition
//! does: a TxnOffsetCommit with an older epoch than one already seen is refused.

use std::collections::{BTreeMap, HashMap};

use super::store::{CommittedOffset, OffsetKey, OffsetRecord, TxnMarkerRecord, TxnOffsetRecord};

/// Producers whose epoch is remembered for fencing when none of their offsets is pending: their
/// count grows with the transactional producers a shard ever served, so it is bounded; past it the
/// epochs of producers with nothing pending are forgotten (those producers' coordinator fences
/// them anyway, by epoch, at their next transaction).
const IDLE_PRODUCER_EPOCHS_MAX: usize = 65_536;

/// One pending offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingOffset {
    value: CommittedOffset,
    /// A plain commit of the same partition came after it in the log.
    superseded: bool,
}

/// One producer's open transaction, as far as this coordinator's groups go.
#[derive(Debug, Clone, Default)]
struct ProducerOffsets {
    offsets: BTreeMap<OffsetKey, PendingOffset>,
}

/// The pending transactional offsets of one shard's groups.
#[derive(Debug, Default)]
pub(crate) struct PendingTxnOffsets {
    by_producer: HashMap<i64, ProducerOffsets>,
    /// Latest epoch seen per producer id (offsets and markers).
    epochs: HashMap<i64, i16>,
}

impl PendingTxnOffsets {
    /// Whether a producer with `epoch` may add offsets: not older than an epoch seen already.
    pub fn is_fenced(&self, producer_id: i64, epoch: i16) -> bool {
        self.epochs
            .get(&producer_id)
            .is_some_and(|&seen| seen > epoch)
    }

    fn note_epoch(&mut self, producer_id: i64, epoch: i16) {
        let seen = self.epochs.entry(producer_id).or_insert(epoch);
        *seen = (*seen).max(epoch);
        if self.epochs.len() > IDLE_PRODUCER_EPOCHS_MAX {
            let pending = &self.by_producer;
            self.epochs.retain(|id, _| pending.contains_key(id));
        }
    }

    /// A transaction's offset the log accepted: pending until its marker.
    pub fn add(&mut self, record: &TxnOffsetRecord) {
        self.note_epoch(record.producer_id, record.producer_epoch);
        let Some(value) = record.offset.value.clone() else {
            // TxnOffsetCommit never writes a tombstone; nothing to hold.
            return;
        };
        self.by_producer
            .entry(record.producer_id)
            .or_default()
            .offsets
            .insert(
                record.offset.key.clone(),
                PendingOffset {
                    value,
                    superseded: false,
                },
            );
    }

    /// A plain commit (`committed`) or deletion of `key` the log accepted: pending offsets of it
    /// written before lose to a commit; after a deletion nothing outranks them any more (Kafka
    /// compares with the offset the group holds, and a deleted one is none).
    pub fn note_plain(&mut self, key: &OffsetKey, committed: bool) {
        for producer in self.by_producer.values_mut() {
            if let Some(pending) = producer.offsets.get_mut(key) {
                pending.superseded = committed;
            }
        }
    }

    /// A marker the log accepted in `marker.partition` (whose groups `in_partition` tells): the
    /// producer's pending offsets of those groups end. Returns the offsets a commit makes the
    /// groups' committed ones (none for an abort), in key order.
    pub fn complete(
        &mut self,
        marker: &TxnMarkerRecord,
        in_partition: impl Fn(&str) -> bool,
    ) -> Vec<OffsetRecord> {
        self.note_epoch(marker.producer_id, marker.producer_epoch);
        let Some(producer) = self.by_producer.get_mut(&marker.producer_id) else {
            return Vec::new();
        };
        let ended: Vec<OffsetKey> = producer
            .offsets
            .keys()
            .filter(|key| in_partition(&key.group_id))
            .cloned()
            .collect();
        let mut committed = Vec::new();
        for key in ended {
            let Some(pending) = producer.offsets.remove(&key) else {
                continue;
            };
            if marker.commit && !pending.superseded {
                committed.push(OffsetRecord {
                    key,
                    value: Some(pending.value),
                });
            }
        }
        if producer.offsets.is_empty() {
            self.by_producer.remove(&marker.producer_id);
        }
        committed
    }

    /// Whether an open transaction holds an offset of the group's partition (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT for it, as Kafka).
    pub fn is_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = OffsetKey {
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            partition,
        };
        self.by_producer
            .values()
            .any(|p| p.offsets.contains_key(&key))
    }

    /// Forgets the pending offsets of the groups `in_partition` tells (a partition this broker no
    /// longer leads, or about to be loaded again from its log).
    pub fn forget(&mut self, in_partition: impl Fn(&str) -> bool) {
        for producer in self.by_producer.values_mut() {
            producer
                .offsets
                .retain(|key, _| !in_partition(&key.group_id));
        }
        self.by_producer.retain(|_, p| !p.offsets.is_empty());
    }

    /// The pending offsets a compacted log must keep (written after the plain records, so a
    /// replay gives them the same order against plain commits): superseded ones are left out (so
    /// one whose outranking commit is deleted after a compaction stays dropped: a rare divergence
    /// from Kafka, whose compaction keeps record offsets).
    pub fn live_records(&self) -> Vec<TxnOffsetRecord> {
        let mut live = Vec::new();
        for (&producer_id, producer) in &self.by_producer {
            let producer_epoch = self.epochs.get(&producer_id).copied().unwrap_or(0);
            for (key, pending) in producer.offsets.iter().filter(|(_, p)| !p.superseded) {
                live.push(TxnOffsetRecord {
                    producer_id,
                    producer_epoch,
                    offset: OffsetRecord {
                        key: key.clone(),
                        value: Some(pending.value.clone()),
                    },
                });
            }
        }
        live.sort_by_key(|r| r.producer_id);
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, partition: i32) -> OffsetKey {
        OffsetKey {
            group_id: group.into(),
            topic: "t".into(),
            partition,
        }
    }

    fn txn_offset(producer_id: i64, epoch: i16, group: &str, offset: i64) -> TxnOffsetRecord {
        TxnOffsetRecord {
            producer_id,
            producer_epoch: epoch,
            offset: OffsetRecord {
                key: key(group, 0),
                value: Some(CommittedOffset {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 1,
                }),
            },
        }
    }

    fn marker(producer_id: i64, epoch: i16, commit: bool) -> TxnMarkerRecord {
        TxnMarkerRecord {
            partition: 0,
            producer_id,
            producer_epoch: epoch,
            commit,
            coordinator_epoch: 0,
        }
    }

    #[test]
    fn a_commit_marker_materialises_an_abort_drops() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(&txn_offset(7, 0, "g", 10));
        pending.add(&txn_offset(8, 0, "h", 20));
        assert!(pending.is_pending("g", "t", 0));
        let committed = pending.complete(&marker(7, 0, true), |_| true);
        assert_eq!(committed.len(), 1);
        assert_eq!(committed[0].value.as_ref().map(|v| v.offset), Some(10));
        assert!(!pending.is_pending("g", "t", 0));
        assert!(pending.complete(&marker(8, 0, false), |_| true).is_empty());
        assert!(!pending.is_pending("h", "t", 0));
    }

    #[test]
    fn a_later_plain_commit_wins_over_a_committed_transaction() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(&txn_offset(7, 0, "g", 10));
        pending.note_plain(&key("g", 0), true);
        assert!(pending.complete(&marker(7, 0, true), |_| true).is_empty());
    }

    #[test]
    fn a_deleted_offset_no_longer_outranks_a_pending_one() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(&txn_offset(7, 0, "g", 10));
        pending.note_plain(&key("g", 0), true);
        pending.note_plain(&key("g", 0), false);
        assert_eq!(pending.complete(&marker(7, 0, true), |_| true).len(), 1);
    }

    #[test]
    fn a_marker_ends_only_its_partitions_groups() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(&txn_offset(7, 0, "g", 10));
        pending.add(&txn_offset(7, 0, "other", 11));
        let committed = pending.complete(&marker(7, 0, true), |g| g == "g");
        assert_eq!(committed.len(), 1);
        assert!(pending.is_pending("other", "t", 0));
    }

    #[test]
    fn an_older_epoch_is_fenced_after_a_newer_one_was_seen() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(&txn_offset(7, 1, "g", 10));
        pending.complete(&marker(7, 2, false), |_| true);
        assert!(pending.is_fenced(7, 1));
        assert!(!pending.is_fenced(7, 2));
        assert!(!pending.is_fenced(9, 0));
    }
}
