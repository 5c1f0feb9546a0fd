//! ListOffsets for one partition: earliest (-2), latest (-1), max timestamp (-3), or the first
//! offset whose timestamp is at least the given one (docs/COMPATIBILITY.md trap 14).

use kafka_protocol::ResponseError;
use ringbroker_schema::{
    ListOffsetsRequest as MeshListOffsets, ListOffsetsRequestArgs, ListOffsetsResult,
    ListOffsetsResultArgs, Payload,
};

use crate::errors::{self, storage_error_code};
use crate::shard::Shard;
use crate::transactions::fetch_view::stable_view;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetLookup {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
}

impl OffsetLookup {
    fn error(code: i16) -> OffsetLookup {
        OffsetLookup {
            error_code: code,
            offset: -1,
            timestamp: -1,
        }
    }
}

/// Looks up an offset of a partition this shard owns.
pub async fn lookup_local(
    shard: &Shard,
    topic: &str,
    partition: i32,
    timestamp: i64,
    read_committed: bool,
) -> OffsetLookup {
    let Some(log) = shard.log(topic, partition) else {
        return OffsetLookup::error(ResponseError::UnknownTopicOrPartition.code());
    };
    let found = |offset, timestamp| OffsetLookup {
        error_code: errors::NONE,
        offset,
        timestamp,
    };
    match timestamp {
        EARLIEST_TIMESTAMP => found(log.log_start_offset(), -1),
        LATEST_TIMESTAMP if read_committed => {
            let view = stable_view(shard, topic, partition, &log, log.high_watermark(), false);
            found(view.last_stable_offset, -1)
        }
        LATEST_TIMESTAMP => found(log.high_watermark(), -1),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((ts, offset)) => found(offset, ts),
            None => found(-1, -1),
        },
        t if t < 0 => OffsetLookup::error(ResponseError::InvalidRequest.code()),
        t => match log.offset_for_timestamp(t).await {
            Ok(Some((offset, ts))) => found(offset, ts),
            Ok(None) => found(-1, -1),
            Err(e) => OffsetLookup::error(storage_error_code(&e)),
        },
    }
}

/// Looks up an offset wherever the partition lives; `read_committed` (isolation level 1) makes
/// "latest" the last stable offset.
pub async fn lookup(
    shard: &Shard,
    topic: &str,
    partition: i32,
    timestamp: i64,
    read_committed: bool,
) -> OffsetLookup {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return lookup_local(shard, topic, partition, timestamp, read_committed).await;
    }
    let reply = shard
        .mesh
        .call(owner, 96, |fbb| {
            let topic = fbb.create_string(topic);
            let request = MeshListOffsets::create(
                fbb,
                &ListOffsetsRequestArgs {
                    topic: Some(topic),
                    partition,
                    timestamp,
                    read_committed,
                },
            );
            (Payload::ListOffsetsRequest, request.as_union_value())
        })
        .await;
    match reply
        .ok()
        .as_ref()
        .and_then(|m| m.envelope().ok())
        .and_then(|env| env.payload_as_list_offsets_result())
    {
        Some(result) => OffsetLookup {
            error_code: result.error_code(),
            offset: result.offset(),
            timestamp: result.timestamp(),
        },
        None => OffsetLookup::error(ResponseError::NotLeaderOrFollower.code()),
    }
}

/// Serves a lookup that arrived over the mesh.
pub async fn serve_remote(
    shard: &Shard,
    from: usize,
    correlation: u64,
    request: MeshListOffsets<'_>,
) {
    let topic = request.topic().unwrap_or_default().to_string();
    let result = lookup_local(
        shard,
        &topic,
        request.partition(),
        request.timestamp(),
        request.read_committed(),
    )
    .await;
    shard
        .mesh
        .reply(from, correlation, 64, |fbb| {
            let reply = ListOffsetsResult::create(
                fbb,
                &ListOffsetsResultArgs {
                    error_code: result.error_code,
                    offset: result.offset,
                    timestamp: result.timestamp,
                },
            );
            (Payload::ListOffsetsResult, reply.as_union_value())
        })
        .await;
}
