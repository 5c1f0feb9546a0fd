//! Scheduling of log compaction from the retention task: a partition of a topic whose
//! `cleanup.policy` includes `compact` gets a compaction pass at most every
//! `log_cleaner_interval_ms` (`LiveSettings`, read at each tick so a reload takes effect at once). The pass itself (`PartitionLog::compact`) only runs
//! when sealed segments are dirty or tombstones are due, and yields between batches. It cleans only
//! below the partition's last stable offset and drops aborted transactions; which those are
//! depends on the replica ([`TxnSource`]): a leader (or only replica) asks the shard's
//! transaction table, a follower reads them from its own log (`txn_scan`), as Kafka's followers
//! know them from the producer state they rebuild.
//!
//! Every replica compacts on its own, as Kafka's log cleaner runs on leaders and followers alike:
//! offsets stay, so the copies differ only by the gaps each one's passes left, which fetches skip.
//! That includes the replicated coordinator topics ([`compact_coordinator_logs`]):
//! `__consumer_offsets` (its transactional offsets and markers read from the log, so a pending
//! transaction's offsets stay until its marker) and `__transaction_state` (plain records). With
//! one replica these are compacted by their coordinators instead (a rewrite of the live records).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use super::txn_scan;
use crate::config::BrokerConfig;
use crate::groups::OFFSETS_TOPIC_NAME;
use crate::shard::Shard;
use crate::storage::{AbortedRange, CleanerTxns, CompactionMemo, PartitionLog};
use crate::topic_config::TopicSettings;
use crate::transactions::{PartitionTxnTable, TRANSACTION_STATE_TOPIC};

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

/// Where a compaction pass of a partition takes its transactions from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnSource {
    /// The shard's transaction table (a leader, or the only replica).
    Table,
    /// The log itself (a follower, or any replica of `__consumer_offsets`).
    Log,
    /// The partition holds no transactional batch (`__transaction_state`).
    None,
}

/// Runs a compaction pass of `log` (partition `partition` of `topic`) if its topic is compacted
/// and its interval passed.
pub async fn maybe_compact(
    shard: &Shard,
    (topic, partition): (&str, i32),
    log: &PartitionLog,
    settings: &TopicSettings,
    now_ms: i64,
) {
    let replicated = shard.is_replicated(topic, partition);
    let leads = shard
        .replication
        .with_leader(topic, partition, |_| ())
        .is_some();
    let source = if knows_transactions(replicated, leads) {
        TxnSource::Table
    } else {
        TxnSource::Log
    };
    compact_if_due(shard, (topic, partition), log, settings, source, now_ms).await;
}

/// Compacts this shard's replicas of the replicated coordinator topics (`__consumer_offsets`,
/// `__transaction_state`), leaders and followers alike, under their topic's settings.
pub async fn compact_coordinator_logs(shard: &Shard, now_ms: i64) {
    let table = shard.topic_table();
    for (topic, source) in [
        (OFFSETS_TOPIC_NAME, TxnSource::Log),
        (TRANSACTION_STATE_TOPIC, TxnSource::None),
    ] {
        let Some(meta) = table.get(topic) else {
            continue;
        };
        let settings = TopicSettings::resolve(&shard.config, &meta.configs);
        for partition in 0..meta.partitions {
            if shard.owner_of(topic, partition) != shard.id
                || !shard.is_replicated(topic, partition)
            {
                continue;
            }
            // Open only where this shard holds the partition (a transaction state log on first use).
            let Some(log) = shard.log(topic, partition) else {
                continue;
            };
            compact_if_due(shard, (topic, partition), &log, &settings, source, now_ms).await;
            glommio::yield_if_needed().await;
        }
    }
}

/// A compaction pass of `log` if its topic is compacted and its interval passed, with the
/// partition's transactions from `source`.
async fn compact_if_due(
    shard: &Shard,
    (topic, partition): (&str, i32),
    log: &PartitionLog,
    settings: &TopicSettings,
    source: TxnSource,
    now_ms: i64,
) {
    let broker: &BrokerConfig = &shard.config;
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
    scheduled.last_pass_ms = Some(now_ms);
    SCHEDULE.with(|schedule| schedule.borrow_mut().insert(dir.clone(), scheduled));
    let txns = match source {
        TxnSource::Table => cleaner_txns(&shard.txn_partitions, topic, partition, log),
        TxnSource::None => CleanerTxns::none(),
        TxnSource::Log => match txn_scan::cleaner_txns(log).await {
            Ok(txns) => txns,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "not compacting: cannot read the log's transactions");
                return;
            }
        },
    };
    match log
        .compact(&policy, &txns, now_ms, &mut scheduled.memo)
        .await
    {
        Ok(Some(outcome)) => {
            tracing::debug!(dir = %dir.display(), ?outcome, "compaction pass");
            if source == TxnSource::Log {
                txn_scan::cleaned_below(&dir, outcome.cleaned_up_to);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "compaction failed"),
    }
    SCHEDULE.with(|schedule| schedule.borrow_mut().insert(dir, scheduled));
}

/// Whether this replica's transaction table knows which transactional batches of the partition
/// are aborted or still open: its leader (or only replica) does. A follower keeps no transaction
/// state, so it reads them from its log: a pass without them could keep an aborted value as a
/// key's latest and drop the committed one, which read_committed readers would then miss after a
/// failover.
fn knows_transactions(replicated: bool, leads: bool) -> bool {
    !replicated || leads
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
    fn only_a_follower_reads_its_transactions_from_its_log() {
        assert!(knows_transactions(false, false), "the only replica");
        assert!(knows_transactions(true, true), "the leader");
        assert!(!knows_transactions(true, false), "a follower");
    }
}
