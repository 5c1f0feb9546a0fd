//! The per-shard retention task: every `RETENTION_CHECK_INTERVAL` it applies each owned partition's
//! topic settings to its log — the roll size (`segment.bytes`) and retention (`retention.ms`,
//! `retention.bytes`, deleting whole sealed segments) and, for `cleanup.policy=compact` topics,
//! compaction (`compaction`, at most every `log_cleaner_interval_ms`; also of the replicated
//! coordinator topics' logs, which the coordinators own). It runs in its own low-share task queue and
//! yields between partitions, so produce and fetch keep the core when they need it.

pub mod compaction;
pub mod delete_records;
#[cfg(test)]
mod tests;
pub(crate) mod txn_scan;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glommio::{Latency, Shares};

use crate::shard::Shard;
use crate::storage::PartitionLog;
use crate::topic_config::{TimestampType, TopicSettings};

/// How often retention is checked (Kafka's `log.retention.check.interval.ms` is 5 minutes; a few
/// seconds keeps short test retentions honest, and a check of an idle log is a few comparisons).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// CPU shares of the retention task queue (glommio's default queue has 1000): deleting files must
/// never take the core from the request path.
pub const RETENTION_TASK_SHARES: usize = 50;

/// Starts this shard's retention task (detached; it lives as long as the executor).
pub fn spawn(shard: Rc<Shard>) {
    let queue = glommio::executor().create_task_queue(
        Shares::Static(RETENTION_TASK_SHARES),
        Latency::NotImportant,
        "retention",
    );
    apply_roll_sizes(&shard);
    let spawned = glommio::spawn_local_into(
        async move {
            loop {
                glommio::timer::sleep(RETENTION_CHECK_INTERVAL).await;
                run_once(&shard).await;
            }
        },
        queue,
    );
    match spawned {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!(error = %e, "cannot start the retention task"),
    }
}

/// Applies each topic's `segment.bytes` and `message.timestamp.type` to the open logs at once (after a table change); no I/O.
pub fn apply_roll_sizes(shard: &Shard) {
    let table = shard.topic_table();
    for log in shard.all_logs() {
        let settings = topic_of(&log).and_then(|topic| {
            table
                .get(&topic)
                .map(|meta| TopicSettings::resolve(&shard.config, &meta.configs))
        });
        if let Some(settings) = settings {
            apply_log_settings(&log, &settings);
        }
    }
}

/// One pass over every log this shard owns.
pub async fn run_once(shard: &Shard) {
    let table = shard.topic_table();
    for log in shard.all_logs() {
        let Some((topic, partition)) = topic_partition_of(&log) else {
            continue;
        };
        let Some(meta) = table.get(&topic) else {
            continue;
        };
        let settings = TopicSettings::resolve(&shard.config, &meta.configs);
        apply_settings(&log, &settings).await;
        glommio::yield_if_needed().await;
        compaction::maybe_compact(shard, (&topic, partition), &log, &settings, now_ms()).await;
        glommio::yield_if_needed().await;
    }
    compaction::compact_coordinator_logs(shard, now_ms()).await;
}

/// Applies a topic's settings to one of its partition logs.
pub async fn apply_settings(log: &PartitionLog, settings: &TopicSettings) {
    apply_log_settings(log, settings);
    let policy = settings.retention_policy();
    if policy.retention_ms.is_none() && policy.retention_bytes.is_none() {
        return;
    }
    if let Err(e) = log.apply_retention(policy, now_ms()).await {
        tracing::warn!(dir = %log.dir().display(), error = %e, "retention failed");
    }
}

/// The settings an open log takes without I/O: roll size and age, timestamp type.
fn apply_log_settings(log: &PartitionLog, settings: &TopicSettings) {
    if let Ok(segment_bytes) = u64::try_from(settings.segment_bytes) {
        log.set_segment_bytes(segment_bytes);
    }
    log.set_log_append_time(settings.timestamp_type == TimestampType::LogAppendTime);
    // Kafka's default segment.ms (7 days) is a real limit there too; only explicit values differ.
    log.set_segment_ms(Some(settings.segment_ms));
}

/// The topic of a partition log, from its directory name `<topic>-<partition>` (topic names may
/// contain '-', the partition is what follows the last one).
fn topic_of(log: &PartitionLog) -> Option<String> {
    topic_partition_of(log).map(|(topic, _)| topic)
}

/// The topic and partition of a log, from its directory name (`<topic>-<partition>`).
fn topic_partition_of(log: &PartitionLog) -> Option<(String, i32)> {
    let name = log.dir().file_name()?.to_str()?;
    let (topic, partition) = name.rsplit_once('-')?;
    Some((topic.to_string(), partition.parse::<i32>().ok()?))
}

/// Wall-clock milliseconds since the Unix epoch (record timestamps are in this clock).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
