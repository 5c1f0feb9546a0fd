//! Fetch (v4-11): read every requested partition (concurrently, wherever it lives), wait for new
//! data when the result is smaller than `min_bytes` (long poll, up to `max_wait_ms`), cap the
//! response at `max_bytes` (the first batch always goes, KIP-74), and write the stored batches
//! into the response without re-encoding them.
//!
//! The response is encoded by hand: v4-11 are non-flexible and simple, and writing the header
//! around the record bytes lets those bytes go out as they are (tail cache buffers, no copy)
//! instead of being copied into an encoder's buffer.

use bytes::{BufMut, BytesMut};
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::FetchRequest;
use ringbroker_protocol::frame::Request;

use crate::fetch::{self, FetchOutcome, PartitionRead};
use crate::metrics::{hooks, Stage};
use crate::security::acl::{Operation, ResourceType, Session};
use crate::server::dispatch::{decode_body, HandlerError, Outcome, Part};
use crate::server::sendfile::FileRange;
use crate::shard::Shard;
use crate::storage::ReadChunk;

/// Largest wait a client may ask for; longer waits are cut to this (Kafka clients use ≤ 500 ms).
pub const MAX_FETCH_WAIT_MS: i32 = 30_000;
/// Kafka's isolation_level of read_committed consumers.
const READ_COMMITTED: i8 = 1;

struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// Why this broker does not serve the partition (it does not lead it, or it does not exist).
    refused: Option<i16>,
    /// isolation_level 1 (see `transactions::fetch_view`).
    read_committed: bool,
    /// A replica fetch's log start offset (the follower's): -1 for a consumer.
    log_start_offset: i64,
}

pub async fn handle(
    shard: &Shard,
    request: &Request,
    session: &Session,
) -> Result<Outcome, HandlerError> {
    let body: FetchRequest = decode_body(request)?;
    // A follower broker's fetch (Kafka's replica fetch): fenced by leader epoch, read to the
    // written end, and its offsets are the follower's progress.
    let replica_id = body.replica_id.0.max(-1);
    // Followers need ClusterAction on the cluster (Kafka's replica fetch check); consumers Read
    // on each topic.
    let replica_refused = (replica_id >= 0)
        .then(|| session.cluster_refusal(Operation::ClusterAction))
        .flatten();
    let mut wanted = Vec::new();
    let mut topic_order: Vec<(String, usize)> = Vec::new();
    for topic in &body.topics {
        let name = topic.topic.0.to_string();
        topic_order.push((name.clone(), topic.partitions.len()));
        let denied = if replica_id >= 0 {
            replica_refused
        } else {
            session.refusal(Operation::Read, ResourceType::Topic, &name)
        };
        for p in &topic.partitions {
            wanted.push(Wanted {
                topic: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                log_start_offset: if replica_id >= 0 {
                    p.log_start_offset
                } else {
                    -1
                },
                refused: if denied.is_some() {
                    denied
                } else if replica_id >= 0 {
                    crate::replication::serve::check_leader_epoch(
                        shard,
                        &name,
                        p.partition,
                        p.current_leader_epoch,
                    )
                    .err()
                } else {
                    shard.check_leader(&name, p.partition).err()
                },
                read_committed: body.isolation_level == READ_COMMITTED,
            });
        }
    }
    let max_bytes = usize::try_from(body.max_bytes).unwrap_or(0);
    let min_bytes = u64::try_from(body.min_bytes).unwrap_or(0);
    let max_wait_ms = body.max_wait_ms.clamp(0, MAX_FETCH_WAIT_MS) as u32;

    let mut outcomes = read_all(shard, &wanted, 0, replica_id).await;
    let total: u64 = outcomes.iter().map(FetchOutcome::bytes).sum();
    let should_wait =
        total < min_bytes && max_wait_ms > 0 && !wanted.is_empty() && all_clean(&outcomes);
    let wait = wait_for_any(shard, &wanted, max_wait_ms, replica_id);
    if should_wait && hooks::timed(shard.metrics(), Stage::FetchWait, wait).await {
        outcomes = read_all(shard, &wanted, 0, replica_id).await;
    }
    apply_max_bytes(&mut outcomes, max_bytes);
    hooks::fetched(shard.metrics(), &outcomes);
    let parts = encode_response(request, &topic_order, &wanted, &mut outcomes);
    Ok(Outcome::Reply(parts))
}

fn all_clean(outcomes: &[FetchOutcome]) -> bool {
    outcomes.iter().all(|o| o.error_code == 0)
}

async fn read_all(
    shard: &Shard,
    wanted: &[Wanted],
    wait_ms: u32,
    replica_id: i32,
) -> Vec<FetchOutcome> {
    join_all(wanted.iter().map(|w| async move {
        if let Some(code) = w.refused {
            return FetchOutcome::error(code);
        }
        fetch::read(
            shard,
            PartitionRead {
                topic: &w.topic,
                partition: w.partition,
                offset: w.offset,
                max_bytes: w.max_bytes,
                wait_ms,
                replica_id,
                read_committed: w.read_committed,
                log_start_offset: w.log_start_offset,
            },
        )
        .await
    }))
    .await
}

/// Waits until any partition has data past its fetch offset or the wait ends. Each read waits on
/// its partition's new-data notifier (no polling); the first one with data ends the wait.
async fn wait_for_any(shard: &Shard, wanted: &[Wanted], wait_ms: u32, replica_id: i32) -> bool {
    let mut waits: FuturesUnordered<_> = wanted
        .iter()
        .filter(|w| w.refused.is_none())
        .map(|w| {
            fetch::read(
                shard,
                PartitionRead {
                    topic: &w.topic,
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes: 0,
                    wait_ms,
                    replica_id,
                    read_committed: w.read_committed,
                    log_start_offset: w.log_start_offset,
                },
            )
        })
        .collect();
    // Any partition answering (data arrived, or its wait ended) ends the wait for all.
    waits.next().await.is_some()
}

/// Caps the response at `max_bytes` in request order; the first partition with data keeps at
/// least its data even when larger (clients must always make progress, KIP-74).
fn apply_max_bytes(outcomes: &mut [FetchOutcome], max_bytes: usize) {
    let mut total = 0u64;
    let mut any = false;
    for outcome in outcomes.iter_mut() {
        let bytes = outcome.bytes();
        if bytes == 0 {
            continue;
        }
        if any && total + bytes > max_bytes as u64 {
            outcome.chunks.clear();
            continue;
        }
        any = true;
        total += bytes;
    }
}

fn put_string(out: &mut BytesMut, s: &str) {
    debug_assert!(s.len() <= i16::MAX as usize);
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// Encodes a Fetch v4-11 response frame around the record data: tail-cache bytes go out as they
/// are, segment file ranges by `sendfile`.
fn encode_response(
    request: &Request,
    topics: &[(String, usize)],
    wanted: &[Wanted],
    outcomes: &mut [FetchOutcome],
) -> Vec<Part> {
    let version = request.version();
    debug_assert!((4..=11).contains(&version));
    let mut parts: Vec<Part> = Vec::new();
    let mut head = BytesMut::with_capacity(256);
    head.put_i32(0); // frame size, patched below
    head.put_i32(request.correlation_id()); // response header v0
    head.put_i32(0); // throttle_time_ms
    if version >= 7 {
        head.put_i16(0); // top-level error_code
        head.put_i32(0); // session_id: no fetch session
    }
    head.put_i32(topics.len() as i32);
    let mut index = 0usize;
    for (name, count) in topics {
        put_string(&mut head, name);
        head.put_i32(*count as i32);
        for _ in 0..*count {
            let w = &wanted[index];
            let o = &mut outcomes[index];
            index += 1;
            let data_len = o.bytes();
            head.put_i32(w.partition);
            head.put_i16(o.error_code);
            head.put_i64(o.high_watermark);
            head.put_i64(o.stable.last_stable_offset);
            if version >= 5 {
                head.put_i64(o.log_start_offset);
            }
            crate::transactions::fetch_view::put_aborted(&mut head, &o.stable.aborted);
            if version >= 11 {
                head.put_i32(-1); // preferred_read_replica: none
            }
            // records: never null (librdkafka rejects a -1 size, docs/COMPATIBILITY.md trap 11)
            head.put_i32(i32::try_from(data_len).unwrap_or(i32::MAX));
            if data_len > 0 {
                parts.push(Part::Bytes(head.split().freeze()));
                for chunk in std::mem::take(&mut o.chunks) {
                    parts.push(match chunk {
                        ReadChunk::Memory(bytes) => Part::Bytes(bytes),
                        ReadChunk::File {
                            path,
                            position,
                            len,
                            inode,
                            ..
                        } => Part::File(FileRange {
                            path,
                            position,
                            len,
                            inode,
                        }),
                    });
                }
            }
        }
    }
    parts.push(Part::Bytes(head.split().freeze()));
    let total: usize = parts.iter().map(Part::len).sum();
    if let Some(Part::Bytes(first)) = parts.first_mut() {
        // One small copy: the first part is always header bytes written above.
        let mut patched = BytesMut::from(&first[..]);
        patched[0..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
        *first = patched.freeze();
    }
    parts
}
