//! The leader side of a replica fetch (Kafka's Fetch with a replica id): refused unless this
//! broker leads the partition in the follower's leader epoch (FENCED_LEADER_EPOCH for an older
//! one, UNKNOWN_LEADER_EPOCH for a newer one), then recorded as the follower's progress: its fetch
//! offset is its log end, which moves the high watermark and may bring it back into the ISR, and
//! its log start counts for the low watermark DeleteRecords waits for. The read itself is the consumers' path bounded by the written end instead of the high watermark,
//! served the same zero-copy way.

use std::time::Instant;

use kafka_protocol::ResponseError;

use crate::shard::Shard;
use crate::storage::PartitionLog;

/// Whether this broker leads `partition` in `current_leader_epoch` (-1: any epoch), by this
/// shard's image (any shard may check): what a follower's Fetch and OffsetForLeaderEpoch and a
/// ListOffsets with a current leader epoch need, as Kafka's `localLogWithEpochOrThrow`.
pub fn check_leader_epoch(
    shard: &Shard,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    let image = shard.image();
    let Some(state) = image
        .topics
        .get(topic)
        .and_then(|m| m.partition_state(partition))
    else {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    };
    if current_leader_epoch >= 0 {
        if current_leader_epoch < state.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch.code());
        }
        if current_leader_epoch > state.leader_epoch {
            return Err(ResponseError::UnknownLeaderEpoch.code());
        }
    }
    if state.leader != shard.config.node_id {
        return Err(ResponseError::NotLeaderOrFollower.code());
    }
    Ok(())
}

/// What a follower's fetch of one partition says of its replica: its log end (the fetch offset)
/// and its log start.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    pub follower: i32,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
}

/// Records `fetch` of `partition` (on the owning shard): moves the high watermark, and wakes
/// DeleteRecords waiting for the low watermark when the follower's log start moved. Err: this
/// shard does not lead the partition with replicas (yet).
pub fn record_follower_fetch(
    shard: &Shard,
    topic: &str,
    partition: i32,
    fetch: FollowerFetch,
    log: &PartitionLog,
) -> Result<(), i16> {
    let now = Instant::now();
    let leader_end = log.log_end_offset();
    let written_end = log.written_end_offset();
    let follower = fetch.follower;
    let outcome = shard.replication.with_leader(topic, partition, |led| {
        if !led.record_fetch(follower, fetch.fetch_offset, leader_end, now) {
            return Err(ResponseError::NotLeaderOrFollower.code());
        }
        let log_start_moved = led.record_log_start(follower, fetch.log_start_offset);
        let high_watermark = led.high_watermark(written_end);
        let isr_may_grow = led.followers.get(&follower).is_some_and(|p| {
            !led.isr.contains(&follower) && p.log_end_offset >= log.high_watermark()
        });
        Ok((high_watermark, isr_may_grow, log_start_moved))
    });
    let (high_watermark, isr_may_grow, log_start_moved) = match outcome {
        Some(Ok(found)) => found,
        Some(Err(code)) => return Err(code),
        None => return Err(ResponseError::NotLeaderOrFollower.code()),
    };
    if let Some(high_watermark) = high_watermark {
        debug_assert!(high_watermark <= written_end);
        log.set_high_watermark(high_watermark.min(leader_end));
    }
    if isr_may_grow {
        // The ISR checker sends the AlterPartition (it owns the task that can wait for it).
        shard.replication.isr_check.bump();
    }
    if log_start_moved {
        shard.replication.log_starts.bump();
    }
    Ok(())
}

/// The low watermark of a partition this shard leads with replicas (its own log start and its
/// live followers'); `None` when it does not lead it.
pub fn low_watermark(
    shard: &Shard,
    topic: &str,
    partition: i32,
    log: &PartitionLog,
) -> Option<i64> {
    let image = shard.image();
    let leader_log_start = log.log_start_offset();
    shard.replication.with_leader(topic, partition, |led| {
        led.low_watermark(leader_log_start, |id| image.is_live(id))
    })
}
