//! The replication of a coordinator's internal topic, as its store sees it (see
//! `groups::ReplicaGate`): `__consumer_offsets` for the group coordinator, `__transaction_state`
//! for the transaction coordinator. Their records are in partitions replicated like any other
//! (fetchers, high watermark, ISR, elections); the coordinator of a group or a transactional id is
//! the leader of its partition. Here: a write is refused unless this shard leads the partition in
//! the image's epoch with enough in-sync replicas, and it is done once the high watermark passed
//! it (acks=all), within the topic's commit timeout, as Kafka's coordinators write. A partition
//! with one replica is written as before replication existed.

use std::rc::Weak;
use std::time::Duration;

use crate::groups::{GroupError, LocalBoxFuture, ReplicaGate};
use crate::shard::Shard;

use super::acks;

/// The gate of one shard's store of a coordinator topic.
pub struct ShardCoordinatorGate {
    shard: Weak<Shard>,
    topic: &'static str,
    /// How long a write waits for the in-sync replicas (`offsets.commit.timeout.ms` for
    /// `__consumer_offsets`).
    commit_timeout: Duration,
}

impl ShardCoordinatorGate {
    pub fn new(shard: Weak<Shard>, topic: &'static str, commit_timeout: Duration) -> Self {
        ShardCoordinatorGate {
            shard,
            topic,
            commit_timeout,
        }
    }

    fn refused(&self, partition: i32, reason: impl Into<String>) -> GroupError {
        GroupError::NotCommitted {
            topic: self.topic,
            partition,
            reason: reason.into(),
        }
    }
}

impl ReplicaGate for ShardCoordinatorGate {
    fn writable(&self, partition: i32) -> Result<i32, GroupError> {
        let Some(shard) = self.shard.upgrade() else {
            return Err(self.refused(partition, "the shard is stopping"));
        };
        let leader_epoch = shard.leader_epoch(self.topic, partition);
        if !shard.is_replicated(self.topic, partition) {
            return Ok(leader_epoch);
        }
        if !shard.replication.leads(self.topic, partition, leader_epoch) {
            return Err(self.refused(partition, "this broker does not lead it"));
        }
        acks::check_min_insync(&shard, self.topic, partition).map_err(|_| {
            self.refused(partition, "fewer in-sync replicas than min.insync.replicas")
        })?;
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
                return Err(self.refused(partition, "the shard is stopping"));
            };
            if !shard.is_replicated(self.topic, partition) {
                return Ok(());
            }
            let Some(log) = shard.log(self.topic, partition) else {
                return Err(self.refused(partition, "its log is not open"));
            };
            let code = acks::wait_for_high_watermark(
                &shard,
                &log,
                self.topic,
                partition,
                leader_epoch,
                end_offset,
                self.commit_timeout,
            )
            .await;
            if code == 0 {
                Ok(())
            } else {
                Err(self.refused(
                    partition,
                    format!("not on the in-sync replicas (error code {code})"),
                ))
            }
        })
    }

    fn is_replicated(&self, partition: i32) -> bool {
        self.shard
            .upgrade()
            .is_some_and(|shard| shard.is_replicated(self.topic, partition))
    }

    fn leads(&self, partition: i32) -> bool {
        self.shard.upgrade().is_some_and(|shard| {
            !shard.is_replicated(self.topic, partition)
                || shard.replication.leads(
                    self.topic,
                    partition,
                    shard.leader_epoch(self.topic, partition),
                )
        })
    }
}
