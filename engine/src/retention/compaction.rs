//! Scheduling of log compaction from the retention task: a partition of a topic whose
//! `cleanup.policy` includes `compact` gets a compaction pass at most every
//! `log_cleaner_interval_ms` (`LiveSettings`, read at each tick so a reload takes effect at once). The pass itself (`PartitionLog::compact`) only runs
//! when sealed segments are dirty or tombstones are due, and yields between batches. It cleans only
//! below the partition's last stable offset and drops aborted transactions (the shard's
//! transaction table says which; see `storage::compaction::transactions`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::BrokerConfig;
use crate::storage::{AbortedRange, CleanerTxns, CompactionMemo, PartitionLog};
use crate::topic_config::TopicSettings;
use crate::transactions::PartitionTxnTable;

/// What the scheduler remembers of one partition between ticks.
#[derive(Debug, Default, Clone, Copy)]
struct Scheduled {
    last_pass_ms: Option<i64>,
    memo: CompactionMemo,
}

thread_local! {
    /// Per partition directory, on this shard's executor (each shard cleans the logs it owns).
    static SCHEDULE: RefCell<HashMap<PathBuf, Scheduled>> = RefCell::new(HashMap::new());
}

/// Runs a compaction pass of `log` (partition `partition` of `topic`) if its topic is compacted
/// and its interval passed.
pub async fn maybe_compact(
    broker: &BrokerConfig,
    txn_partitions: &PartitionTxnTable,
    (topic, partition): (&str, i32),
    log: &PartitionLog,
    settings: &TopicSettings,
    now_ms: i64,
) {
    let Some(policy) = settings.compaction_policy(broker.live.log_cleaner_max_keys().max(1)) else {
        return;
    };
    let dir = log.dir().to_path_buf();
    let interval = i64::try_from(broker.live.log_cleaner_interval_ms()).unwrap_or(i64::MAX);
    let Some(mut scheduled) = SCHEDULE.with(|schedule| {
        let schedule = schedule.borrow();
        let scheduled = schedule.get(&dir).copied().unwrap_or_default();
        let due = scheduled
            .last_pass_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= interval);
        due.then_some(scheduled)
    }) else {
        return;
    };
    let txns = cleaner_txns(txn_partitions, topic, partition, log);
    match log
        .compact(&policy, &txns, now_ms, &mut scheduled.memo)
        .await
    {
        Ok(Some(outcome)) => {
            tracing::debug!(dir = %dir.display(), ?outcome, "compaction pass");
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "compaction failed"),
    }
    scheduled.last_pass_ms = Some(now_ms);
    SCHEDULE.with(|schedule| schedule.borrow_mut().insert(dir, scheduled));
}

/// The partition's transactions as the cleaner needs them, taken when the pass starts: what is
/// below the last stable offset then is decided, committed or aborted, for good.
pub fn cleaner_txns(
    txn_partitions: &PartitionTxnTable,
    topic: &str,
    partition: i32,
    log: &PartitionLog,
) -> CleanerTxns {
    let Some((last_stable_offset, aborted)) = txn_partitions.cleaner_view(
        topic,
        partition,
        log.high_watermark(),
        log.log_start_offset(),
    ) else {
        return CleanerTxns::none();
    };
    let aborted: Vec<AbortedRange> = aborted
        .iter()
        .map(|a| AbortedRange {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
            last_offset: a.last_offset,
        })
        .collect();
    CleanerTxns::new(last_stable_offset, &aborted)
}
