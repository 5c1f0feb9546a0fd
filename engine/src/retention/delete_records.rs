//! DeleteRecords: moving a partition's log start offset on its owner shard (locally or over the
//! mesh). Offset -1 means "the high watermark" (Kafka's convention).
//!
//! A partition with replicas answers as Kafka's `DelayedDeleteRecords`: once its low watermark
//! (the smallest log start of the leader and its followers on live brokers, which they report
//! in each fetch) reached the new log start, with that low watermark; REQUEST_TIMED_OUT when the
//! request's timeout passes first; NOT_LEADER_OR_FOLLOWER when this broker stops leading it
//! meanwhile. The followers move their log start as the leader's fetch answers tell them.

use std::time::Duration;

use kafka_protocol::ResponseError;
use ringbroker_quorum::watch::within;
use ringbroker_schema::{
    DeleteRecordsRequest as MeshDeleteRecords, DeleteRecordsRequestArgs, DeleteRecordsResult,
    DeleteRecordsResultArgs, Payload,
};

use crate::errors::{self, storage_error_code};
use crate::replication::serve::low_watermark;
use crate::shard::Shard;

/// DeleteRecords' "delete everything up to the high watermark".
pub const HIGH_WATERMARK_OFFSET: i64 = -1;

/// The answer for one partition: error code and the new low watermark (-1 on error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRecordsOutcome {
    pub error_code: i16,
    pub low_watermark: i64,
}

impl DeleteRecordsOutcome {
    fn error(code: i16) -> DeleteRecordsOutcome {
        DeleteRecordsOutcome {
            error_code: code,
            low_watermark: -1,
        }
    }
}

/// Deletes the records of a partition this shard owns below `offset`; with replicas, waits up
/// to `timeout` for the low watermark to follow.
pub async fn delete_local(
    shard: &Shard,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> DeleteRecordsOutcome {
    let Some(log) = shard.log(topic, partition) else {
        return DeleteRecordsOutcome::error(ResponseError::UnknownTopicOrPartition.code());
    };
    let target = if offset == HIGH_WATERMARK_OFFSET {
        log.high_watermark()
    } else {
        offset
    };
    let log_start = match log.delete_records_before(target).await {
        Ok(log_start) => log_start,
        Err(e) => return DeleteRecordsOutcome::error(storage_error_code(&e)),
    };
    if !shard.is_replicated(topic, partition) {
        return DeleteRecordsOutcome {
            error_code: errors::NONE,
            low_watermark: log_start,
        };
    }
    let waited = within(timeout, async {
        loop {
            let seen = shard.replication.log_starts.get();
            match low_watermark(shard, topic, partition, &log) {
                None => return Err(ResponseError::NotLeaderOrFollower.code()),
                Some(low) if low >= log_start => return Ok(low),
                Some(_) => {}
            }
            // A follower's next fetch reports its log start; a leadership change ends the wait too.
            let leadership = shard.replication.installed.get();
            let changed = shard.replication.log_starts.wait_until(|now| now != seen);
            let image = shard
                .replication
                .installed
                .wait_until(|now| now != leadership);
            futures::pin_mut!(changed, image);
            futures::future::select(changed, image).await;
        }
    })
    .await;
    match waited {
        Some(Ok(low_watermark)) => DeleteRecordsOutcome {
            error_code: errors::NONE,
            low_watermark,
        },
        Some(Err(code)) => DeleteRecordsOutcome::error(code),
        None => DeleteRecordsOutcome::error(ResponseError::RequestTimedOut.code()),
    }
}

/// Deletes records wherever the partition lives (waiting up to `timeout` for its replicas).
pub async fn delete(
    shard: &Shard,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> DeleteRecordsOutcome {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return delete_local(shard, topic, partition, offset, timeout).await;
    }
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let reply = shard
        .mesh
        .call(owner, 96, |fbb| {
            let topic = fbb.create_string(topic);
            let request = MeshDeleteRecords::create(
                fbb,
                &DeleteRecordsRequestArgs {
                    topic: Some(topic),
                    partition,
                    offset,
                    timeout_ms,
                },
            );
            (Payload::DeleteRecordsRequest, request.as_union_value())
        })
        .await;
    match reply
        .ok()
        .as_ref()
        .and_then(|m| m.envelope().ok())
        .and_then(|env| env.payload_as_delete_records_result())
    {
        Some(result) => DeleteRecordsOutcome {
            error_code: result.error_code(),
            low_watermark: result.low_watermark(),
        },
        None => DeleteRecordsOutcome::error(ResponseError::NotLeaderOrFollower.code()),
    }
}

/// Serves a DeleteRecords that arrived over the mesh.
pub async fn serve_remote(
    shard: &Shard,
    from: usize,
    correlation: u64,
    request: MeshDeleteRecords<'_>,
) {
    let topic = request.topic().unwrap_or_default().to_string();
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms()).unwrap_or(0));
    let outcome = delete_local(
        shard,
        &topic,
        request.partition(),
        request.offset(),
        timeout,
    )
    .await;
    shard
        .mesh
        .reply(from, correlation, 64, |fbb| {
            let reply = DeleteRecordsResult::create(
                fbb,
                &DeleteRecordsResultArgs {
                    error_code: outcome.error_code,
                    low_watermark: outcome.low_watermark,
                },
            );
            (Payload::DeleteRecordsResult, reply.as_union_value())
        })
        .await;
}
