//! The produce path for one partition: validate the producer's record batches (`validate`:
//! headers, CRC, and a walk over every record, without decoding them), append them on the owning
//! shard (in place when that is this shard, over the mesh otherwise) and report the base offset.
//! Records are decoded only on compacted topics, whose records must all carry a key (`keys`).

mod keys;
mod validate;

pub use validate::{any_transactional, validate_records, Refusal};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ringbroker_schema::{
    Payload, ProduceRequest as MeshProduce, ProduceRequestArgs, ProduceResult, ProduceResultArgs,
};

use crate::errors::{self, storage_error_code};
use crate::metrics::{hooks, Stage};
use crate::producer_state::Decision;
use crate::replication;
use crate::shard::Shard;
use crate::storage::PartitionLog;
use std::time::Duration;

/// What one partition's produce came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// Broker time stamped on a LogAppendTime topic; -1 under CreateTime.
    pub log_append_time_ms: i64,
}

impl ProduceOutcome {
    pub fn error(code: i16) -> ProduceOutcome {
        ProduceOutcome {
            error_code: code,
            base_offset: -1,
            log_start_offset: -1,
            log_append_time_ms: -1,
        }
    }
}

/// How a produce request wants to be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks {
    /// Kafka's acks: 0 or 1 (the leader wrote it), -1 (every in-sync replica holds it).
    pub acks: i16,
    /// The request's timeout: how long acks=-1 waits for the in-sync replicas.
    pub timeout_ms: i32,
}

/// Appends already-validated batches to a partition this shard owns; with acks=-1, answers once
/// the high watermark has passed them (`replication::acks`). A transactional producer's batches
/// (`transactional_id`) are verified with the transaction coordinator first, when their
/// transaction is new here (`transactions::verification`).
pub async fn append_local(
    shard: &Shard,
    topic: &str,
    partition: i32,
    records: &[u8],
    acks: Acks,
    transactional_id: Option<&str>,
) -> ProduceOutcome {
    // Before the leadership checks: they must hold after this wait, not before it.
    let turn = match crate::transactions::verification::before_append(
        shard,
        transactional_id,
        topic,
        partition,
        records,
    )
    .await
    {
        Ok(turn) => turn,
        Err(code) => return ProduceOutcome::error(code),
    };
    let Some(log) = shard.log(topic, partition) else {
        return ProduceOutcome::error(ResponseError::UnknownTopicOrPartition.code());
    };
    let leader_epoch = shard.leader_epoch(topic, partition);
    // A replicated partition takes produce only once this shard leads it in the image's epoch
    // (its producer state rebuilt, no fetcher appending to it any more).
    let replicated = shard.is_replicated(topic, partition);
    if replicated && !shard.replication.leads(topic, partition, leader_epoch) {
        return ProduceOutcome::error(ResponseError::NotLeaderOrFollower.code());
    }
    let wait_for_replicas = acks.acks == replication::acks::ACKS_ALL;
    if wait_for_replicas {
        if let Err(code) = replication::acks::check_min_insync(shard, topic, partition) {
            return ProduceOutcome::error(code);
        }
    }
    let outcome = append_leader(shard, topic, partition, records, &log, leader_epoch).await;
    // The producer's next batch waiting for this one's verification may append now.
    drop(turn);
    if !wait_for_replicas || outcome.error_code != errors::NONE {
        return outcome;
    }
    let end_offset = replication::acks::end_offset_of(records, outcome.base_offset);
    let timeout = Duration::from_millis(u64::try_from(acks.timeout_ms).unwrap_or(0));
    let code = replication::acks::wait_for_high_watermark(
        shard,
        &log,
        topic,
        partition,
        leader_epoch,
        end_offset,
        timeout,
    )
    .await;
    if code == errors::NONE {
        outcome
    } else {
        ProduceOutcome::error(code)
    }
}

/// The leader's append: keys of compacted topics, the idempotent producers' check, the write.
async fn append_leader(
    shard: &Shard,
    topic: &str,
    partition: i32,
    records: &[u8],
    log: &PartitionLog,
    leader_epoch: i32,
) -> ProduceOutcome {
    // Checked on the owning shard, before the producer state sees the batches (Kafka's
    // LogValidator runs before the duplicate check), and synchronously like it.
    let compacted = shard
        .topic_table()
        .get(topic)
        .is_some_and(|meta| keys::keys_required(&shard.config, &meta.configs));
    if compacted {
        if let Err((code, reason)) = keys::check_keys(records, topic, partition) {
            tracing::warn!(topic, partition, error_code = code, %reason, "rejected produce");
            return ProduceOutcome::error(code);
        }
    }
    // Idempotent producers: checked and recorded synchronously with the offsets `append` is
    // about to assign (no await in between), so pipelined batches are checked in order.
    let end = log.log_end_offset();
    match shard
        .producers
        .check_and_record(topic, partition, records, end)
    {
        Decision::Append => {}
        Decision::Duplicate { base_offset } => {
            return ProduceOutcome {
                error_code: errors::NONE,
                base_offset,
                log_start_offset: log.log_start_offset(),
                log_append_time_ms: -1,
            }
        }
        Decision::Reject(code) => return ProduceOutcome::error(code),
    }
    // Transactional batches: fencing check and the partition's open transactions (LSO).
    if let Err(code) =
        crate::transactions::before_append(shard, topic, partition, log.dir(), records, end)
    {
        shard.producers.rollback(topic, partition, end);
        return ProduceOutcome::error(code);
    }
    // Every batch is stamped with the partition's current leader epoch (the leader-epoch cache
    // and, with replication, followers' truncation rely on it).
    let append = log.append(records, leader_epoch);
    match hooks::timed(shard.metrics(), Stage::ProduceAppend, append).await {
        Ok(outcome) => {
            hooks::appended(shard.metrics(), records.len(), &outcome);
            ProduceOutcome {
                error_code: errors::NONE,
                base_offset: outcome.base_offset,
                log_start_offset: log.log_start_offset(),
                log_append_time_ms: outcome.log_append_time_ms,
            }
        }
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, "append failed");
            shard.producers.rollback(topic, partition, end);
            crate::transactions::append_failed(shard, topic, partition, end);
            ProduceOutcome::error(storage_error_code(&e))
        }
    }
}

/// Appends to a partition wherever it lives. Per-connection order holds: local appends take
/// their offsets when first polled, remote ones travel a FIFO channel to the owner, which
/// appends in arrival order.
pub async fn append(
    shard: &Shard,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: Acks,
    transactional_id: Option<&str>,
) -> ProduceOutcome {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return append_local(shard, topic, partition, &records, acks, transactional_id).await;
    }
    let extra = transactional_id.map_or(0, str::len);
    let hop = shard.mesh.call(owner, records.len() + extra + 128, |fbb| {
        let topic = fbb.create_string(topic);
        let records = fbb.create_vector(&records);
        let transactional_id = transactional_id.map(|id| fbb.create_string(id));
        let request = MeshProduce::create(
            fbb,
            &ProduceRequestArgs {
                topic: Some(topic),
                partition,
                records: Some(records),
                acks: acks.acks,
                timeout_ms: acks.timeout_ms,
                transactional_id,
            },
        );
        (Payload::ProduceRequest, request.as_union_value())
    });
    let reply = hooks::timed(shard.metrics(), Stage::ProduceHop, hop).await;
    let message = match reply {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, "cross-shard produce failed");
            return ProduceOutcome::error(ResponseError::NotLeaderOrFollower.code());
        }
    };
    match message
        .envelope()
        .ok()
        .and_then(|env| env.payload_as_produce_result())
    {
        Some(result) => ProduceOutcome {
            error_code: result.error_code(),
            base_offset: result.base_offset(),
            log_start_offset: result.log_start_offset(),
            log_append_time_ms: result.log_append_time_ms(),
        },
        None => ProduceOutcome::error(ResponseError::UnknownServerError.code()),
    }
}

/// Serves a produce request that arrived over the mesh (this shard owns the partition).
pub async fn serve_remote(shard: &Shard, from: usize, correlation: u64, request: MeshProduce<'_>) {
    let topic = request.topic().unwrap_or_default();
    let records = request.records().map(|v| v.bytes()).unwrap_or_default();
    let acks = Acks {
        acks: request.acks(),
        timeout_ms: request.timeout_ms(),
    };
    let outcome = append_local(
        shard,
        topic,
        request.partition(),
        records,
        acks,
        request.transactional_id(),
    )
    .await;
    shard
        .mesh
        .reply(from, correlation, 64, |fbb| {
            let result = ProduceResult::create(
                fbb,
                &ProduceResultArgs {
                    error_code: outcome.error_code,
                    base_offset: outcome.base_offset,
                    log_start_offset: outcome.log_start_offset,
                    log_append_time_ms: outcome.log_append_time_ms,
                },
            );
            (Payload::ProduceResult, result.as_union_value())
        })
        .await;
}
