//! One transactional id's state and Kafka's transaction state machine over it, without I/O: each
//! request checks the producer's id and epoch and the current status, and says what the next
//! state is (which the coordinator persists before it answers) or which Kafka error to return.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

/// Kafka's `TransactionState` with its on-disk ids (the `transaction_status` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnStatus {
    pub fn from_id(id: i8) -> Option<TxnStatus> {
        Some(match id {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's names (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// A decision was made and its markers may still be unwritten.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// A partition of a transaction.
pub type TopicPartition = (String, i32);

/// The coordinator's record of one transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// Partitions written in the current transaction (including the `__consumer_offsets`
    /// partitions of groups added with AddOffsetsToTxn, as Kafka records them).
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Epochs stop here: the next bump takes a new producer id (Kafka's `isEpochExhausted`).
pub const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Whether the request's version knows PRODUCER_FENCED; older clients get INVALID_PRODUCER_EPOCH.
pub fn fenced_error(knows_producer_fenced: bool) -> i16 {
    if knows_producer_fenced {
        ResponseError::ProducerFenced.code()
    } else {
        ResponseError::InvalidProducerEpoch.code()
    }
}

impl TxnMetadata {
    /// A new transactional id's state (InitProducerId of an unknown id).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Checks a request's producer id and epoch against this state.
    pub fn check_producer(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        knows_producer_fenced: bool,
    ) -> Result<(), i16> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        }
        if producer_epoch != self.producer_epoch {
            return Err(fenced_error(knows_producer_fenced));
        }
        Ok(())
    }

    /// The epoch after a bump; `None` when it is exhausted and a new producer id is needed.
    pub fn bumped_epoch(&self) -> Option<i16> {
        (self.producer_epoch < EPOCH_EXHAUSTED).then_some(self.producer_epoch + 1)
    }

    /// Whether an ongoing transaction has run past its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.status == TxnStatus::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the state with `partitions` added (Ongoing), `None`
    /// when nothing changes (all already in an ongoing transaction), or the error.
    pub fn add_partitions(
        &self,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, i16> {
        match self.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions.code())
            }
            TxnStatus::Dead => return Err(ResponseError::InvalidTxnState.code()),
            TxnStatus::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(None)
            }
            _ => {}
        }
        if self.partitions.len() + partitions.len() > super::config::TRANSACTION_PARTITIONS_MAX {
            return Err(ResponseError::InvalidRequest.code());
        }
        let mut next = self.clone();
        if next.status != TxnStatus::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn: the prepared state to persist before the markers are written, or `Ok(None)` when
    /// the same decision already completed (a retry), or the error.
    pub fn prepare_end(&self, commit: bool, now_ms: i64) -> Result<Option<TxnMetadata>, i16> {
        match (self.status, commit) {
            (TxnStatus::Ongoing, _) => {
                let mut next = self.clone();
                next.status = if commit {
                    TxnStatus::PrepareCommit
                } else {
                    TxnStatus::PrepareAbort
                };
                next.last_update_ms = now_ms;
                Ok(Some(next))
            }
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(None),
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions.code())
            }
            _ => Err(ResponseError::InvalidTxnState.code()),
        }
    }

    /// The completed state after a prepared transaction's markers are all written.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        debug_assert!(self.status.is_prepared(), "completing {:?}", self.status);
        let mut next = self.clone();
        next.status = if self.status == TxnStatus::PrepareCommit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }

    /// Fences the current producer and aborts its ongoing transaction (a new producer with the
    /// same id, or a timeout): the epoch is bumped so the old producer's requests fail, and the
    /// abort markers carry the new epoch. `None` when the epoch is exhausted (the caller aborts
    /// under a new producer id).
    pub fn fence_and_abort(&self, now_ms: i64) -> Option<TxnMetadata> {
        debug_assert_eq!(self.status, TxnStatus::Ongoing);
        let epoch = self.bumped_epoch()?;
        let mut next = self.clone();
        next.producer_epoch = epoch;
        next.status = TxnStatus::PrepareAbort;
        next.last_update_ms = now_ms;
        Some(next)
    }

    /// InitProducerId on a state with no transaction in flight: the next epoch, or a new producer
    /// id (from `new_producer_id`) when the epoch is exhausted.
    pub fn reinitialized(&self, timeout_ms: i32, now_ms: i64, new_producer_id: i64) -> TxnMetadata {
        debug_assert!(!self.status.is_prepared() && self.status != TxnStatus::Ongoing);
        let mut next = self.clone();
        match self.bumped_epoch() {
            Some(epoch) => next.producer_epoch = epoch,
            None => {
                next.producer_id = new_producer_id;
                next.producer_epoch = 0;
            }
        }
        next.timeout_ms = timeout_ms;
        next.status = TxnStatus::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_string(), partition)
    }

    fn ongoing() -> TxnMetadata {
        TxnMetadata::new("t", 7, 60_000, 1)
            .add_partitions(&[tp("a", 0)], 10)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn adding_partitions_starts_a_transaction_and_repeats_are_no_ops() {
        let txn = ongoing();
        assert_eq!(txn.status, TxnStatus::Ongoing);
        assert_eq!(txn.start_ms, 10);
        assert_eq!(txn.add_partitions(&[tp("a", 0)], 20), Ok(None));
        let more = txn.add_partitions(&[tp("b", 1)], 20).unwrap().unwrap();
        assert_eq!(more.partitions.len(), 2);
        assert_eq!(more.start_ms, 10, "the transaction keeps its start time");
    }

    #[test]
    fn commit_goes_through_prepare_to_complete_and_clears_the_partitions() {
        let prepared = ongoing().prepare_end(true, 30).unwrap().unwrap();
        assert_eq!(prepared.status, TxnStatus::PrepareCommit);
        assert_eq!(
            prepared.add_partitions(&[tp("a", 1)], 31),
            Err(ResponseError::ConcurrentTransactions.code())
        );
        let done = prepared.complete(40);
        assert_eq!(done.status, TxnStatus::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(
            done.prepare_end(true, 41),
            Ok(None),
            "a retried commit succeeds"
        );
        assert_eq!(
            done.prepare_end(false, 41),
            Err(ResponseError::InvalidTxnState.code())
        );
    }

    #[test]
    fn ending_without_a_transaction_is_invalid_txn_state() {
        let empty = TxnMetadata::new("t", 7, 60_000, 1);
        assert_eq!(
            empty.prepare_end(true, 2),
            Err(ResponseError::InvalidTxnState.code())
        );
    }

    #[test]
    fn a_stale_epoch_is_fenced_and_a_wrong_id_is_a_bad_mapping() {
        let txn = ongoing();
        assert_eq!(txn.check_producer(7, 0, true), Ok(()));
        assert_eq!(
            txn.check_producer(7, 1, true),
            Err(ResponseError::ProducerFenced.code())
        );
        assert_eq!(
            txn.check_producer(7, 1, false),
            Err(ResponseError::InvalidProducerEpoch.code())
        );
        assert_eq!(
            txn.check_producer(8, 0, true),
            Err(ResponseError::InvalidProducerIdMapping.code())
        );
    }

    #[test]
    fn fencing_bumps_the_epoch_and_prepares_an_abort() {
        let fenced = ongoing().fence_and_abort(50).unwrap();
        assert_eq!(fenced.producer_epoch, 1);
        assert_eq!(fenced.status, TxnStatus::PrepareAbort);
        assert_eq!(
            fenced.check_producer(7, 0, true),
            Err(ResponseError::ProducerFenced.code())
        );
        let done = fenced.complete(60);
        let again = done.reinitialized(30_000, 70, 99);
        assert_eq!((again.producer_id, again.producer_epoch), (7, 2));
        assert_eq!(again.status, TxnStatus::Empty);
    }

    #[test]
    fn an_exhausted_epoch_takes_a_new_producer_id() {
        let mut txn = TxnMetadata::new("t", 7, 60_000, 1);
        txn.producer_epoch = EPOCH_EXHAUSTED;
        let next = txn.reinitialized(60_000, 2, 99);
        assert_eq!((next.producer_id, next.producer_epoch), (99, 0));
    }

    #[test]
    fn timeouts_count_from_the_transaction_start() {
        let txn = ongoing();
        assert!(!txn.timed_out(10 + 60_000));
        assert!(txn.timed_out(10 + 60_001));
        assert!(
            !TxnMetadata::new("t", 7, 1, 0).timed_out(1_000),
            "no transaction, no timeout"
        );
    }
}
