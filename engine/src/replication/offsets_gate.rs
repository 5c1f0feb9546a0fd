//! The replication of `__consumer_offsets`, as the group coordinator's store sees it (see
//! `groups::ReplicaGate`). Committed offsets and group state are records in the offsets
//! partitions, replicated like any partition (fetchers, high watermark, ISR, elections); the
//! group coordinator of a partition is its leader. Here: a write is refused unless this shard
//! leads the partition in the image's epoch with enough in-sync replicas, and it is done once the
//! high watermark passed it (acks=all), within `offsets.commit.timeout.ms`, as Kafka's
//! coordinator writes. A partition with one replica is written as before replication existed.

use std::rc::Weak;

use crate::groups::{GroupError, LocalBoxFuture, ReplicaGate, OFFSETS_TOPIC_NAME};
use crate::shard::Shard;

use super::acks;

/// The gate of one shard's offsets store.
pub struct ShardOffsetsGate {
    shard: Weak<Shard>,
}

impl ShardOffsetsGate {
    pub fn new(shard: Weak<Shard>) -> ShardOffsetsGate {
        ShardOffsetsGate { shard }
    }
}

fn refused(partition: i32, reason: impl Into<String>) -> GroupError {
    GroupError::NotCommitted {
        partition,
        reason: reason.into(),
    }
}

impl ReplicaGate for ShardOffsetsGate {
    fn writable(&self, partition: i32) -> Result<i32, GroupError> {
        let Some(shard) = self.shard.upgrade() else {
            return Err(refused(partition, "the shard is stopping"));
        };
        let leader_epoch = shard.leader_epoch(OFFSETS_TOPIC_NAME, partition);
        if !shard.is_replicated(OFFSETS_TOPIC_NAME, partition) {
            return Ok(leader_epoch);
        }
        if !shard
            .replication
            .leads(OFFSETS_TOPIC_NAME, partition, leader_epoch)
        {
            return Err(refused(partition, "this broker does not lead it"));
        }
        acks::check_min_insync(&shard, OFFSETS_TOPIC_NAME, partition)
            .map_err(|_| refused(partition, "fewer in-sync replicas than min.insync.replicas"))?;
        Ok(leader_epoch)
    }

    fn committed(
        &self,
        partition: i32,
        leader_epoch: i32,
        end_offset: i64,
    ) -> LocalBoxFuture<'_, Result<(), GroupError>> {
        Box::pin(async move {
            let Some(shard) = self.shard.upgrade() else {
                return Err(refused(partition, "the shard is stopping"));
            };
            if !shard.is_replicated(OFFSETS_TOPIC_NAME, partition) {
                return Ok(());
            }
            let Some(log) = shard.log(OFFSETS_TOPIC_NAME, partition) else {
                return Err(refused(partition, "its log is not open"));
            };
            let timeout = shard.config.cluster.replication.offsets_commit_timeout;
            let code = acks::wait_for_high_watermark(
                &shard,
                &log,
                OFFSETS_TOPIC_NAME,
                partition,
                leader_epoch,
                end_offset,
                timeout,
            )
            .await;
            if code == 0 {
                Ok(())
            } else {
                Err(refused(
                    partition,
                    format!("not on the in-sync replicas (error code {code})"),
                ))
            }
        })
    }

    fn is_replicated(&self, partition: i32) -> bool {
        self.shard
            .upgrade()
            .is_some_and(|shard| shard.is_replicated(OFFSETS_TOPIC_NAME, partition))
    }
}
