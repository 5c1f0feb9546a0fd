//! The group coordinator's part of transactions, as Kafka's: TxnOffsetCommit (the offsets a
//! producer sends to its transaction, `sendOffsetsToTransaction`) is validated like a commit and
//! written to the group's `__consumer_offsets` partition as a transactional batch of the producer,
//! then held pending (`txn_offsets`); the transaction coordinator's marker for that partition
//! (WriteTxnMarkers, `transactions::markers`) is written to the same log and commits or drops
//! them. Both go through the persist queue, so they take their place in the log's one order and
//! are replicated and replayed like any other offsets record.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::coordinator::Inner;
use super::error::GroupError;
use super::group::Group;
use super::offsets::{AskedOffset, Committer};
use super::partitioner::{offsets_partition_for, OFFSETS_TOPIC_PARTITIONS};
use super::responses::*;
use super::store::{CoordinatorRecord, OffsetRecord, TxnMarkerRecord, TxnOffsetRecord};

/// First TxnOffsetCommit version carrying the group generation, member id and instance id.
const TXN_COMMIT_MEMBER_VERSION: i16 = 3;
/// First TxnOffsetCommit version whose clients know PRODUCER_FENCED.
const TXN_COMMIT_FENCED_VERSION: i16 = 3;

impl Inner {
    /// Applies a transaction's record the log accepted (offset or marker), or notes a plain
    /// commit against the pending offsets it outranks; `true` when `record` was a transaction's
    /// and needs nothing more.
    pub(crate) fn apply_txn_record(
        &self,
        groups: &mut HashMap<String, Group>,
        record: &CoordinatorRecord,
        now: Instant,
        now_ms: i64,
    ) -> bool {
        match record {
            CoordinatorRecord::TxnOffset(txn) => {
                self.pending_txn.borrow_mut().add(txn);
                true
            }
            CoordinatorRecord::TxnMarker(marker) => {
                let in_partition = |group: &str| {
                    offsets_partition_for(group, OFFSETS_TOPIC_PARTITIONS) == marker.partition
                };
                let committed = self.pending_txn.borrow_mut().complete(marker, in_partition);
                for OffsetRecord { key, value } in committed {
                    let Some(value) = value else { continue };
                    groups
                        .entry(key.group_id.clone())
                        .or_insert_with(|| Group::new(&key.group_id, now, now_ms))
                        .offsets
                        .insert((key.topic, key.partition), value);
                }
                true
            }
            CoordinatorRecord::Offset(OffsetRecord { key, value }) => {
                self.pending_txn
                    .borrow_mut()
                    .note_plain(key, value.is_some());
                false
            }
            _ => false,
        }
    }

    /// TxnOffsetCommit (v0-4): checks the producer's epoch and the member as a commit's, then
    /// writes the offsets as the producer's transactional batch; answered once durable. They stay
    /// pending until the transaction's marker.
    pub(crate) async fn txn_offset_commit(
        self: &Rc<Self>,
        req: &TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let (producer_id, producer_epoch) = (req.producer_id.0, req.producer_epoch);
        let with_member = version >= TXN_COMMIT_MEMBER_VERSION;
        let checked = if self
            .pending_txn
            .borrow()
            .is_fenced(producer_id, producer_epoch)
        {
            Err(if version >= TXN_COMMIT_FENCED_VERSION {
                PRODUCER_FENCED
            } else {
                INVALID_PRODUCER_EPOCH
            })
        } else {
            self.check_committer(&Committer {
                group_id: req.group_id.0.as_str(),
                generation_id: if with_member { req.generation_id } else { -1 },
                member_id: if with_member {
                    req.member_id.as_str()
                } else {
                    ""
                },
                instance_id: if with_member {
                    req.group_instance_id.as_deref()
                } else {
                    None
                },
                transactional: true,
                version,
            })
        };
        let asked = req.topics.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| AskedOffset {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_deref(),
            });
            (topic.name.0.as_str(), partitions)
        });
        let (mut codes, offsets) = self.decide_commit(req.group_id.0.as_str(), checked, asked);
        let records = offsets
            .into_iter()
            .map(|offset| {
                CoordinatorRecord::TxnOffset(TxnOffsetRecord {
                    producer_id,
                    producer_epoch,
                    offset,
                })
            })
            .collect();
        self.persist_commit(req.group_id.0.as_str(), records, &mut codes)
            .await;
        txn_offset_commit_response(req, codes)
    }

    /// Writes a transaction's marker into offsets partition `marker.partition` (which this shard
    /// leads) and ends the producer's pending offsets of its groups; `Ok` once durable (on every
    /// in-sync replica), as Kafka's markers are written with acks=all.
    pub(crate) async fn write_txn_marker(
        self: &Rc<Self>,
        marker: TxnMarkerRecord,
    ) -> Result<(), GroupError> {
        self.persist_and_apply(vec![CoordinatorRecord::TxnMarker(marker)])
            .await
    }
}
