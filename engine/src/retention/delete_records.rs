//! DeleteRecords: moving a partition's log start offset on its owner shard (locally or over the
//! mesh). Offset -1 means "the high watermark" (Kafka's convention).

use kafka_protocol::ResponseError;
use ringbroker_schema::{
    DeleteRecordsRequest as MeshDeleteRecords, DeleteRecordsRequestArgs, DeleteRecordsResult,
    DeleteRecordsResultArgs, Payload,
};

use crate::errors::{self, storage_error_code};
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

/// Deletes the records of a partition this shard owns below `offset`.
pub async fn delete_local(
    shard: &Shard,
    topic: &str,
    partition: i32,
    offset: i64,
) -> DeleteRecordsOutcome {
    let Some(log) = shard.log(topic, partition) else {
        return DeleteRecordsOutcome::error(ResponseError::UnknownTopicOrPartition.code());
    };
    let target = if offset == HIGH_WATERMARK_OFFSET {
        log.high_watermark()
    } else {
        offset
    };
    match log.delete_records_before(target).await {
        Ok(low_watermark) => DeleteRecordsOutcome {
            error_code: errors::NONE,
            low_watermark,
        },
        Err(e) => DeleteRecordsOutcome::error(storage_error_code(&e)),
    }
}

/// Deletes records wherever the partition lives.
pub async fn delete(
    shard: &Shard,
    topic: &str,
    partition: i32,
    offset: i64,
) -> DeleteRecordsOutcome {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return delete_local(shard, topic, partition, offset).await;
    }
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
    let outcome = delete_local(shard, &topic, request.partition(), request.offset()).await;
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
