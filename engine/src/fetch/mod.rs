//! The fetch path for one partition: resolve (offset, max bytes) on the owning shard to whole
//! record batches, as tail-cache bytes or segment file ranges, waiting for new data when asked
//! (long poll). The connection's shard sends file ranges with `sendfile` (see `server::sendfile`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{select, Either};
use kafka_protocol::ResponseError;
use ringbroker_schema::{
    AbortedTxnEntry, AbortedTxnEntryArgs, FetchChunk, FetchChunkArgs, FetchRequest as MeshFetch,
    FetchRequestArgs, FetchResult, FetchResultArgs, FileRange, FileRangeArgs, Payload,
};

use crate::errors::{self, storage_error_code};
use crate::metrics::{hooks, Stage};
use crate::shard::Shard;
use crate::storage::ReadChunk;
use crate::transactions::fetch_view::{readable_end, stable_view, StableView};
use crate::transactions::AbortedTxn;

/// What one partition's read came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub chunks: Vec<ReadChunk>,
    /// The last stable offset and, for read_committed, the aborted transactions read over.
    pub stable: StableView,
}

impl FetchOutcome {
    pub fn error(code: i16) -> FetchOutcome {
        FetchOutcome {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            chunks: Vec::new(),
            stable: StableView {
                last_stable_offset: -1,
                aborted: Vec::new(),
            },
        }
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(ReadChunk::len).sum()
    }
}

/// One partition read request.
#[derive(Debug, Clone, Copy)]
pub struct PartitionRead<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
    /// When the partition has nothing at `offset`, wait up to this long for new data.
    pub wait_ms: u32,
    /// Kafka's replica id: -1 for a consumer; a follower's node id for a replica fetch, which
    /// reads up to the written end and reports the follower's progress (`replication::serve`).
    pub replica_id: i32,
    /// isolation_level 1: read only below the last stable offset.
    pub read_committed: bool,
    /// A replica fetch's log start offset (the follower's, for the leader's low watermark); -1
    /// for a consumer.
    pub log_start_offset: i64,
}

/// Reads from a partition this shard owns.
pub async fn read_local(shard: &Shard, read: PartitionRead<'_>) -> FetchOutcome {
    let Some(log) = shard.log(read.topic, read.partition) else {
        return FetchOutcome::error(ResponseError::UnknownTopicOrPartition.code());
    };
    let replica = read.replica_id >= 0;
    if replica {
        let fetch = crate::replication::serve::FollowerFetch {
            follower: read.replica_id,
            fetch_offset: read.offset,
            log_start_offset: read.log_start_offset,
        };
        if let Err(code) = crate::replication::serve::record_follower_fetch(
            shard,
            read.topic,
            read.partition,
            fetch,
            &log,
        ) {
            return FetchOutcome::error(code);
        }
    }
    if read.wait_ms > 0 && read.offset >= log.log_start_offset() {
        if replica {
            // A follower waits for the leader's next write, not for the high watermark.
            if read.offset >= log.written_end_offset() {
                let wait = log.wait_for_written_data(read.offset);
                let timeout = glommio::timer::sleep(Duration::from_millis(u64::from(read.wait_ms)));
                futures::pin_mut!(wait);
                futures::pin_mut!(timeout);
                let _ = select(wait, timeout).await;
            }
        } else {
            wait_readable(shard, &log, read).await;
        }
    }
    let stable = stable_view(
        shard,
        read.topic,
        read.partition,
        &log,
        read.offset,
        read.read_committed,
    );
    if read.max_bytes == 0 {
        return FetchOutcome {
            error_code: errors::NONE,
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            chunks: Vec::new(),
            stable,
        };
    }
    let limit = if read.read_committed {
        stable.last_stable_offset
    } else {
        i64::MAX
    };
    let result = async {
        if replica {
            log.read_for_replica(read.offset, read.max_bytes).await
        } else {
            log.read_below(read.offset, read.max_bytes, limit).await
        }
    };
    match hooks::timed(shard.metrics(), Stage::FetchRead, result).await {
        Ok(result) if replica => {
            let outcome = FetchOutcome {
                error_code: errors::NONE,
                high_watermark: result.high_watermark,
                log_start_offset: result.log_start_offset,
                chunks: result.chunks,
                stable,
            };
            if let Some(m) = shard.metrics() {
                crate::metrics::ShardMetrics::add(
                    &m.counters.replication_bytes_out,
                    outcome.bytes(),
                );
            }
            outcome
        }
        Ok(result) => FetchOutcome {
            error_code: errors::NONE,
            high_watermark: result.high_watermark,
            log_start_offset: result.log_start_offset,
            chunks: result.chunks,
            stable,
        },
        Err(e) => {
            let code = storage_error_code(&e);
            if code != ResponseError::OffsetOutOfRange.code() {
                tracing::warn!(topic = read.topic, partition = read.partition, error = %e, "read failed");
            }
            // Kafka answers a failed read (OFFSET_OUT_OF_RANGE included) with -1 for the high
            // watermark, last stable offset and log start: consumers and followers ask
            // ListOffsets for the bounds they need.
            FetchOutcome::error(code)
        }
    }
}

/// Waits until `read.offset` is readable (below the high watermark, or for read_committed below
/// the last stable offset) or `read.wait_ms` passed. Each append wakes the wait: the LSO moves
/// only when a marker is appended.
async fn wait_readable(shard: &Shard, log: &crate::storage::PartitionLog, read: PartitionRead<'_>) {
    let deadline = Instant::now() + Duration::from_millis(u64::from(read.wait_ms));
    loop {
        let end = readable_end(shard, read.topic, read.partition, log, read.read_committed);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if read.offset < end || remaining.is_zero() {
            return;
        }
        // Past the high watermark wait for data at the offset; below it (an open transaction
        // holds the LSO back) wait for the next append.
        let high_watermark = log.high_watermark();
        let wait = log.wait_for_data(read.offset.max(high_watermark));
        let timeout = glommio::timer::sleep(remaining);
        futures::pin_mut!(wait);
        futures::pin_mut!(timeout);
        // A wake without new data means the log closed or failed: the read reports it.
        if let Either::Right(_) = select(wait, timeout).await {
            return;
        }
        if log.high_watermark() == high_watermark {
            return;
        }
    }
}

/// Reads from a partition wherever it lives.
pub async fn read(shard: &Shard, read: PartitionRead<'_>) -> FetchOutcome {
    let owner = shard.owner_of(read.topic, read.partition);
    if owner == shard.id {
        return read_local(shard, read).await;
    }
    let hop = shard.mesh.call(owner, 128, |fbb| {
        let topic = fbb.create_string(read.topic);
        let request = MeshFetch::create(
            fbb,
            &FetchRequestArgs {
                topic: Some(topic),
                partition: read.partition,
                offset: read.offset,
                max_bytes: i32::try_from(read.max_bytes).unwrap_or(i32::MAX),
                wait_ms: read.wait_ms as i32,
                replica_id: read.replica_id,
                read_committed: read.read_committed,
                log_start_offset: read.log_start_offset,
            },
        );
        (Payload::FetchRequest, request.as_union_value())
    });
    // Long-poll waits are measured as the wait stage, not as hops.
    let metrics = shard.metrics().filter(|_| read.wait_ms == 0);
    let reply = hooks::timed(metrics, Stage::FetchHop, hop).await;
    let message = match reply {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic = read.topic, partition = read.partition, error = %e, "cross-shard fetch failed");
            return FetchOutcome::error(ResponseError::NotLeaderOrFollower.code());
        }
    };
    let Some(result) = message
        .envelope()
        .ok()
        .and_then(|env| env.payload_as_fetch_result())
    else {
        return FetchOutcome::error(ResponseError::UnknownServerError.code());
    };
    let mut chunks = Vec::new();
    for chunk in result.chunks().iter().flatten() {
        if let Some(file) = chunk.file() {
            chunks.push(ReadChunk::File {
                path: file.path().unwrap_or_default().into(),
                position: file.position(),
                len: file.length(),
                records: file.records(),
                inode: file.inode(),
            });
        } else if let Some(data) = chunk.data() {
            // One copy: out of the mesh message into bytes the response can own.
            chunks.push(ReadChunk::Memory(Bytes::copy_from_slice(data.bytes())));
        }
    }
    let aborted = result
        .aborted()
        .iter()
        .flatten()
        .map(|a| AbortedTxn {
            producer_id: a.producer_id(),
            first_offset: a.first_offset(),
            last_offset: -1,
        })
        .collect();
    FetchOutcome {
        error_code: result.error_code(),
        high_watermark: result.high_watermark(),
        log_start_offset: result.log_start_offset(),
        chunks,
        stable: StableView {
            last_stable_offset: result.last_stable_offset(),
            aborted,
        },
    }
}

/// Serves a fetch that arrived over the mesh (this shard owns the partition).
pub async fn serve_remote(shard: &Shard, from: usize, correlation: u64, request: MeshFetch<'_>) {
    let topic = request.topic().unwrap_or_default().to_string();
    let outcome = read_local(
        shard,
        PartitionRead {
            topic: &topic,
            partition: request.partition(),
            offset: request.offset(),
            max_bytes: usize::try_from(request.max_bytes()).unwrap_or(0),
            wait_ms: u32::try_from(request.wait_ms()).unwrap_or(0),
            replica_id: request.replica_id(),
            read_committed: request.read_committed(),
            log_start_offset: request.log_start_offset(),
        },
    )
    .await;
    let capacity = 128 + outcome.bytes() as usize;
    shard
        .mesh
        .reply(from, correlation, capacity, |fbb| {
            let mut chunk_offsets = Vec::with_capacity(outcome.chunks.len());
            for chunk in &outcome.chunks {
                let args = match chunk {
                    ReadChunk::Memory(bytes) => FetchChunkArgs {
                        data: Some(fbb.create_vector(bytes)),
                        file: None,
                    },
                    ReadChunk::File {
                        path,
                        position,
                        len,
                        records,
                        inode,
                    } => {
                        let path = fbb.create_string(&path.to_string_lossy());
                        let file = FileRange::create(
                            fbb,
                            &FileRangeArgs {
                                path: Some(path),
                                position: *position,
                                length: *len,
                                records: *records,
                                inode: *inode,
                            },
                        );
                        FetchChunkArgs {
                            data: None,
                            file: Some(file),
                        }
                    }
                };
                chunk_offsets.push(FetchChunk::create(fbb, &args));
            }
            let chunks = fbb.create_vector(&chunk_offsets);
            let aborted: Vec<_> = outcome
                .stable
                .aborted
                .iter()
                .map(|a| {
                    AbortedTxnEntry::create(
                        fbb,
                        &AbortedTxnEntryArgs {
                            producer_id: a.producer_id,
                            first_offset: a.first_offset,
                        },
                    )
                })
                .collect();
            let aborted = fbb.create_vector(&aborted);
            let result = FetchResult::create(
                fbb,
                &FetchResultArgs {
                    error_code: outcome.error_code,
                    high_watermark: outcome.high_watermark,
                    log_start_offset: outcome.log_start_offset,
                    chunks: Some(chunks),
                    last_stable_offset: outcome.stable.last_stable_offset,
                    aborted: Some(aborted),
                },
            );
            (Payload::FetchResult, result.as_union_value())
        })
        .await;
}
