//! Scheduling of log compaction from the retention task: a partition of a topic whose
//! `cleanup.policy` includes `compact` gets a compaction pass at most every
//! `log_cleaner_interval_ms` (`LiveSettings`, read at each tick so a reload takes effect at once). The pass itself (`PartitionLog::compact`) only runs
//! when sealed segments are dirty or tombstones are due, and yields between batches. It cleans only
//! below the partition's last stable offset and drops aborted transactions (the shard's
//! transaction table says which; see `storage::compaction::transactions`). A follower of a
//! partition known to hold transactional batches does not compact it (it keeps no transaction
//! state): its leader does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::BrokerConfig;
use crate::shard::Shard;
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
/// and its interval passed, and this replica knows the partition's transactions.
pub async fn maybe_compact(
    shard: &Shard,
    (topic, partition): (&str, i32),
    log: &PartitionLog,
    settings: &TopicSettings,
    now_ms: i64,
) {
    let broker: &BrokerConfig = &shard.config;
    let Some(policy) = settings.compaction_policy(broker.live.log_cleaner_max_keys().max(1)) else {
        return;
    };
    let txn_partitions = &shard.txn_partitions;
    let replicated = shard.is_replicated(topic, partition);
    let leads = shard
        .replication
        .with_leader(topic, partition, |_| ())
        .is_some();
    if !knows_transactions(
        replicated,
        leads,
        txn_partitions.is_flagged(topic, partition),
    ) {
        return;
    }
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

/// Whether this replica knows which transactional batches of the partition are aborted or still
/// open: its leader (or only replica) does; a follower keeps no transaction state, so it leaves a
/// partition holding transactional batches uncompacted (a pass could keep an aborted value as a
/// key's latest and drop the committed one, which read_committed readers would then miss after
/// a failover). Partitions without transactions are compacted on every replica.
fn knows_transactions(replicated: bool, leads: bool, transactional: bool) -> bool {
    !transactional || !replicated || leads
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

#[cfg(test)]
mod tests {
    use super::knows_transactions;

    #[test]
    fn only_a_follower_of_a_transactional_partition_skips_compaction() {
        assert!(knows_transactions(false, false, true), "the only replica");
        assert!(knows_transactions(true, true, true), "the leader");
        assert!(!knows_transactions(true, false, true), "a follower");
        assert!(knows_transactions(true, false, false), "no transactions");
    }
}
