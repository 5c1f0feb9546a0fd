//! One shard's transaction coordinator: the transactional ids whose `__transaction_state`
//! partition this shard owns, their state in memory (`metadata`) backed by the log (`log_store`),
//! and the requests of Kafka's transaction protocol. Every state change is durable before the
//! request is answered; a transaction's end is persisted as Prepare*, then its markers are written
//! (`markers`: the groups' offsets partitions too, whose group coordinators hold the offsets the
//! producer sent), then Complete* is persisted, as Kafka does.
//!
//! Requests of one shard take turns (one lock): a transaction's steps must not interleave, and
//! the lock is held while markers are written (one round of appends: they go out together).
//!
//! Replication: in a cluster the coordinator of a transactional id is the leader of its
//! `__transaction_state` partition. A broker that becomes leader of one loads the partition's
//! states from its log (`load_partition`, replacing any stale copy) before it serves those ids,
//! then completes the transactions left prepared (their markers written again, as Kafka's new
//! coordinator does); ongoing ones run on to their timeout. A broker that stops leading one drops
//! its ids (`unload_partition`). Every write goes through the store's replica gate.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use glommio::sync::Semaphore;
use kafka_protocol::ResponseError;

use super::config::{TxnConfig, TRANSACTION_STATE_TOPIC};
use super::error::TxnError;
use super::log_store::{state_partition_for, TxnLogStore};
use super::markers::{self, Marker};
use super::metadata::{fenced_error, TopicPartition, TxnMetadata, TxnStatus};
use crate::groups::{
    now_ms, offsets_partition_for, ReplicaGate, OFFSETS_TOPIC_NAME, OFFSETS_TOPIC_PARTITIONS,
};
use crate::metrics::ShardMetrics;
use crate::shard::Shard;
use crate::storage::PartitionLog;

/// Attempts at one partition's marker before the transaction is left prepared for the next
/// sweep (Kafka retries forever in the background; we retry here, then in the sweep).
const MARKER_ATTEMPTS: u32 = 5;
/// Markers of one transaction written at once: enough to cover the partitions of any usual
/// transaction in one round, few enough that a huge one does not flood the mesh and the logs.
const MARKER_WRITES_IN_FLIGHT: usize = 64;
/// Pause between marker attempts (a partition briefly unavailable, e.g. while it opens).
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// InitProducerId's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The transaction coordinator of one shard.
pub struct TxnCoordinator {
    config: TxnConfig,
    store: TxnLogStore,
    txns: RefCell<HashMap<String, TxnMetadata>>,
    lock: Semaphore,
    /// Open transactions (status Ongoing), kept as states change.
    ongoing: std::cell::Cell<u64>,
    metrics: Option<Arc<ShardMetrics>>,
}

/// Why a transaction ended (for the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    /// EndTxn from its producer.
    Requested,
    /// Past its timeout, or its producer fenced by a new one with the same id.
    Expired,
}

fn storage_failed(e: &TxnError) -> i16 {
    if let TxnError::NotCommitted(reason) = e {
        // Leadership moved, or too few in-sync replicas: the client finds the coordinator again.
        tracing::info!(%reason, "transaction state not written: answering NOT_COORDINATOR");
        return ResponseError::NotCoordinator.code();
    }
    tracing::warn!(error = %e, "transaction state write failed");
    ResponseError::CoordinatorNotAvailable.code()
}

/// The coordinator epoch a marker carries: the leader epoch of the id's `__transaction_state`
/// partition (0 for a broker alone, as Kafka's first coordinator).
fn coordinator_epoch(shard: &Shard, transactional_id: &str) -> i32 {
    shard
        .leader_epoch(
            TRANSACTION_STATE_TOPIC,
            state_partition_for(transactional_id),
        )
        .max(0)
}

impl TxnCoordinator {
    /// Opens the coordinator over `store`, replaying its state.
    pub async fn open(config: TxnConfig, store: TxnLogStore) -> Result<Self, TxnError> {
        let txns = store.load_all().await?;
        let open = txns
            .values()
            .filter(|t| t.status == TxnStatus::Ongoing || t.status.is_prepared())
            .count();
        tracing::debug!(ids = txns.len(), open, "transaction coordinator recovered");
        let ongoing = txns
            .values()
            .filter(|t| t.status == TxnStatus::Ongoing)
            .count() as u64;
        Ok(TxnCoordinator {
            config,
            store,
            txns: RefCell::new(txns),
            lock: Semaphore::new(1),
            ongoing: std::cell::Cell::new(ongoing),
            metrics: None,
        })
    }

    /// Attaches the shard's metrics (before the coordinator is shared).
    pub fn with_metrics(mut self, metrics: Option<Arc<ShardMetrics>>) -> Self {
        self.metrics = metrics;
        self.publish_ongoing();
        self
    }

    fn publish_ongoing(&self) {
        if let Some(m) = &self.metrics {
            m.counters
                .transactions_ongoing
                .store(self.ongoing.get(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Closes the state logs (clean shutdown).
    pub async fn close(&self) -> Result<(), TxnError> {
        self.store.close().await
    }

    /// A copy of one transactional id's state (DescribeTransactions, tests).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(transactional_id).cloned()
    }

    /// Every transactional id's state this coordinator serves (ListTransactions): not the stale
    /// copies of partitions it does not lead.
    pub fn list(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|t| self.serves(&t.transactional_id))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Whether this coordinator serves `transactional_id` now: it leads the id's partition and
    /// has loaded it (always for a partition with one replica).
    pub fn serves(&self, transactional_id: &str) -> bool {
        self.store
            .gate()
            .leads(state_partition_for(transactional_id))
    }

    /// The state store (tests write "replicated" records beneath the coordinator with it).
    #[cfg(test)]
    pub(super) fn store(&self) -> &TxnLogStore {
        &self.store
    }

    /// Makes the store's writes ask `gate` (the broker's replication of `__transaction_state`).
    pub fn set_gate(&self, gate: Rc<dyn ReplicaGate>) {
        self.store.set_gate(gate);
    }

    /// The log of state `partition`, if open (replication reaches it through `Shard::log`).
    pub fn state_log(&self, partition: i32) -> Option<PartitionLog> {
        self.store.open_log(partition)
    }

    /// Opens the log of state `partition` (created if new): this broker is one of its replicas.
    pub async fn open_state_log(&self, partition: i32) -> Result<PartitionLog, TxnError> {
        self.store.log_or_open(partition).await
    }

    /// Takes over the transactional ids of state `partition` as its new leader: what memory held
    /// of them (a stale copy from an earlier leadership, or from start-up) is replaced by the
    /// partition's log as this broker holds it. Requests wait meanwhile (the lock). Returns how
    /// many ids were loaded; the caller then completes the prepared ones
    /// ([`TxnCoordinator::complete_loaded`]) once the partition is writable.
    pub async fn load_partition(&self, partition: i32) -> Result<usize, TxnError> {
        let _permit = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| TxnError::Storage("the coordinator is closing".into()))?;
        let loaded = self.store.load_partition(partition).await?;
        // After the await: nothing touches this partition's ids between the drop and the insert.
        let dropped = self.forget_partition(partition);
        let count = loaded.len();
        let prepared = loaded.values().filter(|t| t.status.is_prepared()).count();
        self.txns.borrow_mut().extend(loaded);
        self.recount_ongoing();
        tracing::info!(
            partition,
            dropped,
            loaded = count,
            prepared,
            "took over the transactional ids of a transaction state partition"
        );
        Ok(count)
    }

    /// Forgets the transactional ids of state `partition`: this broker no longer leads it (its
    /// leader coordinates them; a follower's copy of the log is written by replication alone).
    /// Returns how many were dropped.
    pub fn unload_partition(&self, partition: i32) -> usize {
        let dropped = self.forget_partition(partition);
        self.recount_ongoing();
        dropped
    }

    fn forget_partition(&self, partition: i32) -> usize {
        let mut txns = self.txns.borrow_mut();
        let before = txns.len();
        txns.retain(|id, _| state_partition_for(id) != partition);
        before - txns.len()
    }

    fn recount_ongoing(&self) {
        let ongoing = self
            .txns
            .borrow()
            .values()
            .filter(|t| t.status == TxnStatus::Ongoing)
            .count() as u64;
        self.ongoing.set(ongoing);
        self.publish_ongoing();
    }

    /// Makes `txn` durable, then current; compacts its log when that is due. The caller holds
    /// the lock.
    async fn persist(&self, txn: TxnMetadata) -> Result<(), i16> {
        let partition = state_partition_for(&txn.transactional_id);
        self.store
            .persist(&txn, now_ms())
            .await
            .map_err(|e| storage_failed(&e))?;
        if !self.store.gate().leads(partition) {
            // Committed, but the leadership moved meanwhile: the new leader loads this state from
            // its log; this broker must not keep a copy it no longer serves.
            return Err(ResponseError::NotCoordinator.code());
        }
        let was_ongoing = self
            .txns
            .borrow()
            .get(&txn.transactional_id)
            .is_some_and(|t| t.status == TxnStatus::Ongoing);
        let is_ongoing = txn.status == TxnStatus::Ongoing;
        if was_ongoing != is_ongoing {
            let ongoing = self.ongoing.get();
            self.ongoing.set(if is_ongoing {
                ongoing + 1
            } else {
                ongoing.saturating_sub(1)
            });
            self.publish_ongoing();
        }
        self.txns
            .borrow_mut()
            .insert(txn.transactional_id.clone(), txn);
        if !self.store.wants_compaction(partition) {
            return Ok(());
        }
        let live: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|t| state_partition_for(&t.transactional_id) == partition)
            .cloned()
            .collect();
        let live: Vec<&TxnMetadata> = live.iter().collect();
        if let Err(e) = self
            .store
            .compact_if_needed(partition, &live, now_ms())
            .await
        {
            // The state is durable; the log stays as it was and compaction is tried again later.
            tracing::warn!(partition, error = %e, "compacting a transaction state log failed");
        }
        Ok(())
    }

    /// InitProducerId with a transactional id (v0-4; `knows_fenced` from v3).
    pub async fn init_producer_id(
        &self,
        shard: &Shard,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        knows_fenced: bool,
    ) -> Result<ProducerIdAndEpoch, i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout.code());
        }
        let _permit = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let now = now_ms();
        let existing = self.txns.borrow().get(transactional_id).cloned();
        let Some(mut txn) = existing else {
            let producer_id = allocate(shard).await?;
            let txn = TxnMetadata::new(transactional_id, producer_id, timeout_ms, now);
            self.persist(txn).await?;
            return Ok(ProducerIdAndEpoch {
                producer_id,
                producer_epoch: 0,
            });
        };
        if let Some(expected) = expected {
            // KIP-360: a producer re-initializing after an error names its id and epoch; anything
            // but the current ones means another producer took over.
            if expected.producer_id != txn.producer_id
                || expected.producer_epoch != txn.producer_epoch
            {
                return Err(fenced_error(knows_fenced));
            }
        }
        if txn.status.is_prepared() {
            txn = self.finish_locked(shard, txn, EndReason::Requested).await?;
        }
        if txn.status == TxnStatus::Ongoing {
            txn = self.fence_and_abort_locked(shard, txn).await?;
        }
        let new_producer_id = if txn.bumped_epoch().is_none() {
            allocate(shard).await?
        } else {
            txn.producer_id
        };
        let next = txn.reinitialized(timeout_ms, now_ms(), new_producer_id);
        let answer = ProducerIdAndEpoch {
            producer_id: next.producer_id,
            producer_epoch: next.producer_epoch,
        };
        self.persist(next).await?;
        Ok(answer)
    }

    /// AddPartitionsToTxn (v0-3) and AddOffsetsToTxn (the group's offsets partition): one error
    /// code for the whole request (answered for every partition by the caller).
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
        knows_fenced: bool,
    ) -> Result<(), i16> {
        let _permit = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let txn = self.checked(transactional_id, producer, knows_fenced)?;
        match txn.add_partitions(partitions, now_ms())? {
            Some(next) => self.persist(next).await,
            None => Ok(()),
        }
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890, asked by a partition leader before a
    /// transaction's first batch there, or by a group coordinator before a TxnOffsetCommit):
    /// whether each of `partitions` is in `producer`'s transaction, without adding any. Kafka's
    /// answers: INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer id,
    /// PRODUCER_FENCED for another epoch, CONCURRENT_TRANSACTIONS while the transaction ends, and
    /// per partition INVALID_TXN_STATE when it is not in the transaction. It takes no lock: it
    /// only reads the current state, and a transaction ending meanwhile is caught by the
    /// partition (its marker clears what this answer allowed).
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<Vec<i16>, i16> {
        let txns = self.txns.borrow();
        let txn = txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping.code())?;
        if txn.producer_id != producer.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        }
        if txn.producer_epoch != producer.producer_epoch {
            return Err(ResponseError::ProducerFenced.code());
        }
        if txn.status.is_prepared() {
            return Err(ResponseError::ConcurrentTransactions.code());
        }
        Ok(partitions
            .iter()
            .map(|p| {
                if txn.partitions.contains(p) {
                    0
                } else {
                    ResponseError::InvalidTxnState.code()
                }
            })
            .collect())
    }

    /// EndTxn (v0-4): commits or aborts the producer's transaction; answered once every marker
    /// is written.
    pub async fn end_txn(
        &self,
        shard: &Shard,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        commit: bool,
        knows_fenced: bool,
    ) -> Result<(), i16> {
        let _permit = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let txn = self.checked(transactional_id, producer, knows_fenced)?;
        let Some(prepared) = txn.prepare_end(commit, now_ms())? else {
            return Ok(());
        };
        self.persist(prepared.clone()).await?;
        let done = self
            .finish_locked(shard, prepared, EndReason::Requested)
            .await?;
        debug_assert!(matches!(
            done.status,
            TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
        ));
        Ok(())
    }

    /// Aborts transactions past their timeout and finishes prepared ones whose markers are not
    /// all written yet (after a restart, or a marker that failed); returns how many it ended.
    pub async fn sweep(&self, shard: &Shard) -> usize {
        self.end_due(shard, None).await
    }

    /// After [`TxnCoordinator::load_partition`], once the partition is writable: completes the
    /// loaded transactions Kafka's new coordinator completes (prepared ones get their markers
    /// written again and are completed; those past their timeout are aborted). Ongoing ones run
    /// on until their producer ends them or their timeout does. Returns how many it ended.
    pub async fn complete_loaded(&self, shard: &Shard, partition: i32) -> usize {
        self.end_due(shard, Some(partition)).await
    }

    /// Ends the due transactions this coordinator serves (of `only` that partition when given).
    async fn end_due(&self, shard: &Shard, only: Option<i32>) -> usize {
        // Not before this broker is in the cluster: until its image arrives it cannot know which
        // of its state logs it leads, and a follower's copy must not be written.
        if shard.live.get() == 0 {
            return 0;
        }
        let Ok(_permit) = self.lock.acquire_permit(1).await else {
            return 0;
        };
        let now = now_ms();
        let due: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|t| t.timed_out(now) || t.status.is_prepared())
            .filter(|t| only.is_none_or(|p| state_partition_for(&t.transactional_id) == p))
            .filter(|t| self.serves(&t.transactional_id))
            .cloned()
            .collect();
        let mut ended = 0;
        for txn in due {
            let outcome = if txn.status == TxnStatus::Ongoing {
                tracing::info!(transactional_id = %txn.transactional_id, timeout_ms = txn.timeout_ms, "aborting a transaction past its timeout");
                self.fence_and_abort_locked(shard, txn).await
            } else {
                tracing::info!(transactional_id = %txn.transactional_id, status = txn.status.name(), "completing a prepared transaction");
                self.finish_locked(shard, txn, EndReason::Requested).await
            };
            match outcome {
                Ok(_) => ended += 1,
                Err(code) => tracing::warn!(
                    error_code = code,
                    "ending a transaction failed; retrying at the next sweep"
                ),
            }
        }
        ended
    }

    /// Starts the periodic sweep on this shard's executor.
    pub fn spawn_sweep(self: &Rc<Self>, shard: std::rc::Weak<Shard>) {
        let interval = Duration::from_millis(self.config.abort_check_interval_ms);
        let weak = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(interval).await;
                let (Some(coordinator), Some(shard)) = (weak.upgrade(), shard.upgrade()) else {
                    return;
                };
                coordinator.sweep(&shard).await;
            }
        })
        .detach();
    }

    /// The state of `transactional_id` if `producer` is its current producer.
    fn checked(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        knows_fenced: bool,
    ) -> Result<TxnMetadata, i16> {
        let txn = self
            .txns
            .borrow()
            .get(transactional_id)
            .cloned()
            .ok_or(ResponseError::InvalidProducerIdMapping.code())?;
        txn.check_producer(producer.producer_id, producer.producer_epoch, knows_fenced)?;
        Ok(txn)
    }

    /// Bumps the epoch of an ongoing transaction's producer and aborts the transaction.
    async fn fence_and_abort_locked(
        &self,
        shard: &Shard,
        txn: TxnMetadata,
    ) -> Result<TxnMetadata, i16> {
        let prepared = match txn.fence_and_abort(now_ms()) {
            Some(prepared) => prepared,
            // Epoch exhausted: abort under the current epoch (the next InitProducerId takes a
            // new producer id, which fences the old producer just as well).
            None => txn
                .prepare_end(false, now_ms())?
                .ok_or(ResponseError::InvalidTxnState.code())?,
        };
        self.persist(prepared.clone()).await?;
        self.finish_locked(shard, prepared, EndReason::Expired)
            .await
    }

    /// Writes a prepared transaction's markers (its groups' offsets partitions included), then
    /// persists it complete. A failure leaves it prepared, for the next sweep.
    async fn finish_locked(
        &self,
        shard: &Shard,
        txn: TxnMetadata,
        reason: EndReason,
    ) -> Result<TxnMetadata, i16> {
        debug_assert!(txn.status.is_prepared());
        let commit = txn.status == TxnStatus::PrepareCommit;
        // Each marker goes to its own partition (often on another shard) and changes only that
        // partition's state, so they are written at once: a transaction over P partitions waits
        // for about one append instead of P in a row, and holds the coordinator's lock that much
        // shorter. A failure leaves the transaction prepared; the sweep writes all its markers
        // again, as after a failure of one written in a row.
        // A group's offsets partition takes its marker like any other: its group coordinator
        // commits or drops the offsets the producer sent (TxnOffsetCommit) on it.
        let writes = txn.partitions.iter().map(|(topic, partition)| {
            write_marker_with_retries(
                shard,
                Marker {
                    topic,
                    partition: *partition,
                    producer_id: txn.producer_id,
                    producer_epoch: txn.producer_epoch,
                    commit,
                    coordinator_epoch: coordinator_epoch(shard, &txn.transactional_id),
                },
            )
        });
        let outcomes: Vec<Result<(), i16>> = futures::stream::iter(writes)
            .buffer_unordered(MARKER_WRITES_IN_FLIGHT)
            .collect()
            .await;
        outcomes.into_iter().collect::<Result<(), i16>>()?;
        let done = txn.complete(now_ms());
        self.persist(done.clone()).await?;
        if let Some(m) = &self.metrics {
            let counter = match (commit, reason) {
                (true, _) => &m.counters.transactions_committed,
                (false, EndReason::Requested) => &m.counters.transactions_aborted,
                (false, EndReason::Expired) => &m.counters.transactions_timed_out,
            };
            ShardMetrics::add(counter, 1);
        }
        Ok(done)
    }
}

/// The `__consumer_offsets` partition standing for `group` in a transaction (Kafka's way).
pub fn offsets_group_partition(group_id: &str) -> TopicPartition {
    (
        OFFSETS_TOPIC_NAME.to_string(),
        offsets_partition_for(group_id, OFFSETS_TOPIC_PARTITIONS),
    )
}

async fn allocate(shard: &Shard) -> Result<i64, i16> {
    shard.producers.allocate_producer_id().await.map_err(|e| {
        tracing::warn!(error = %e, "cannot allocate a producer id");
        ResponseError::UnknownServerError.code()
    })
}

async fn write_marker_with_retries(shard: &Shard, marker: Marker<'_>) -> Result<(), i16> {
    let mut code = 0;
    for attempt in 0..MARKER_ATTEMPTS {
        code = markers::write(shard, marker).await;
        if code == 0 {
            return Ok(());
        }
        // A partition deleted since it joined the transaction has nothing left to mark (one not
        // open yet, e.g. at start-up, is retried).
        let deleted = shard
            .topic_table()
            .get(marker.topic)
            .is_none_or(|meta| marker.partition >= meta.partitions);
        if code == ResponseError::UnknownTopicOrPartition.code() && deleted {
            return Ok(());
        }
        if attempt + 1 < MARKER_ATTEMPTS {
            glommio::timer::sleep(MARKER_RETRY_BACKOFF).await;
        }
    }
    tracing::warn!(
        topic = marker.topic,
        partition = marker.partition,
        error_code = code,
        "transaction marker not written"
    );
    Err(ResponseError::ConcurrentTransactions.code())
}
