//! acks=all: an acks=all produce is refused when the ISR is smaller than `min.insync.replicas`
//! (NOT_ENOUGH_REPLICAS, nothing appended), and otherwise answered once the high watermark has
//! passed its last offset: every in-sync replica then holds it written (Kafka's DelayedProduce).
//! A wait that outlives the request's timeout answers REQUEST_TIMED_OUT; a leadership lost while
//! waiting answers NOT_LEADER_OR_FOLLOWER (the records may still commit: an idempotent producer's
//! retry is then answered as a duplicate, with the original offsets).

use std::time::{Duration, Instant};

use futures::future::select;
use kafka_protocol::ResponseError;

use crate::shard::Shard;
use crate::storage::{LogHealth, PartitionLog};
use crate::topic_config::TopicSettings;

/// Kafka's acks value for "all in-sync replicas".
pub const ACKS_ALL: i16 = -1;

/// The in-sync replicas of a partition and its `min.insync.replicas`, from this shard's image.
fn isr_and_minimum(shard: &Shard, topic: &str, partition: i32) -> Option<(usize, i32)> {
    let image = shard.image();
    let meta = image.topics.get(topic)?;
    let state = meta.partition_state(partition)?;
    let minimum = if meta.configs.is_empty() {
        shard.config.cluster.replication.min_insync_replicas
    } else {
        TopicSettings::resolve(&shard.config, &meta.configs).min_insync_replicas
    };
    Some((state.isr.len(), minimum))
}

/// Before an acks=all append: NOT_ENOUGH_REPLICAS when the ISR is below `min.insync.replicas`.
pub fn check_min_insync(shard: &Shard, topic: &str, partition: i32) -> Result<(), i16> {
    match isr_and_minimum(shard, topic, partition) {
        Some((isr, minimum)) if (isr as i64) < i64::from(minimum) => {
            Err(ResponseError::NotEnoughReplicas.code())
        }
        _ => Ok(()),
    }
}

/// The offset one past the last record of `records` (concatenated v2 batches) stored from
/// `base_offset`: each batch holds `lastOffsetDelta + 1` offsets.
pub fn end_offset_of(records: &[u8], base_offset: i64) -> i64 {
    /// Bytes before a batch's `lastOffsetDelta`: baseOffset, batchLength, partitionLeaderEpoch,
    /// magic, crc, attributes.
    const LAST_OFFSET_DELTA_AT: usize = 23;
    /// Bytes before a batch's records count from its start: the header up to batchLength.
    const LENGTH_PREFIX: usize = 12;
    let mut end = base_offset;
    let mut at = 0usize;
    while at + LAST_OFFSET_DELTA_AT + 4 <= records.len() {
        let length = i32::from_be_bytes([
            records[at + 8],
            records[at + 9],
            records[at + 10],
            records[at + 11],
        ]);
        let delta = i32::from_be_bytes([
            records[at + LAST_OFFSET_DELTA_AT],
            records[at + LAST_OFFSET_DELTA_AT + 1],
            records[at + LAST_OFFSET_DELTA_AT + 2],
            records[at + LAST_OFFSET_DELTA_AT + 3],
        ]);
        end += i64::from(delta.max(0)) + 1;
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        at += LENGTH_PREFIX + length;
    }
    end
}

/// Waits until the high watermark reaches `end_offset` (every record below it is on every
/// in-sync replica), for at most `timeout`. Returns the error code to answer.
pub async fn wait_for_high_watermark(
    shard: &Shard,
    log: &PartitionLog,
    topic: &str,
    partition: i32,
    leader_epoch: i32,
    end_offset: i64,
    timeout: Duration,
) -> i16 {
    let deadline = Instant::now() + timeout;
    loop {
        if log.high_watermark() >= end_offset {
            // Kafka's rule: committed, but to fewer replicas than the topic asks for.
            return match check_min_insync(shard, topic, partition) {
                Ok(()) => 0,
                Err(_) => ResponseError::NotEnoughReplicasAfterAppend.code(),
            };
        }
        if log.health() != LogHealth::Online || !leads(shard, topic, partition, leader_epoch) {
            return ResponseError::NotLeaderOrFollower.code();
        }
        let now = Instant::now();
        if now >= deadline {
            return ResponseError::RequestTimedOut.code();
        }
        // Wake on new high watermarks, on role changes (a new image) and at the deadline.
        let installed = shard.replication.installed.get();
        let role_change = shard
            .replication
            .installed
            .wait_until(move |i| i != installed);
        let data = log.wait_for_data(end_offset - 1);
        let timer = glommio::timer::sleep(deadline - now);
        futures::pin_mut!(data, role_change, timer);
        let either = select(data, role_change);
        let _ = select(either, timer).await;
    }
}

fn leads(shard: &Shard, topic: &str, partition: i32, leader_epoch: i32) -> bool {
    let replicated = shard.is_replicated(topic, partition);
    !replicated || shard.replication.leads(topic, partition, leader_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(last_offset_delta: i32, records_bytes: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; 61 + records_bytes];
        let length = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        bytes[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
        bytes
    }

    #[test]
    fn the_end_offset_counts_every_batch() {
        let mut records = batch(4, 10);
        records.extend(batch(0, 3));
        assert_eq!(end_offset_of(&records, 100), 106);
        assert_eq!(end_offset_of(&batch(9, 0), 0), 10);
        assert_eq!(end_offset_of(&[], 7), 7);
    }
}
