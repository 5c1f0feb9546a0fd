//! The follower side: one fetcher task per (shard, leader broker) copies the leader's log of every
//! partition this shard follows from that leader, as Kafka's ReplicaFetcherThread:
//!
//! 1. A partition new to the fetcher (or after an epoch change, or an out-of-range answer) is
//!    first truncated to the leader's log: OffsetForLeaderEpoch with its latest leader epoch
//!    tells where the leader's log for that epoch ends; everything from there on is removed, so no
//!    replica keeps records the cluster lost.
//! 2. Then Fetch (Kafka's, with this broker's id as replica id) at its log end offset. The
//!    leader's batches are appended byte for byte (`append_as_follower`: same offsets, same CRCs)
//!    and the next fetch waits until they are written (DMA write done): the next fetch offset
//!    tells the leader what this replica holds durably.
//!    Offsets may jump between batches: the leader's compaction removed the ones between, and
//!    the follower's log has the same gaps (Kafka's followers accept them).
//! 3. The follower's high watermark is min(the leader's, its own log end); its log start follows
//!    the leader's (`log_start_offset` of each answer, once below its high watermark: DeleteRecords
//!    or retention on the leader), deleting the whole segments below it, as Kafka's
//!    `maybeIncrementLogStartOffset` on followers.
//! 4. An OFFSET_OUT_OF_RANGE answer carries no usable log start (Kafka's leaders send -1): the
//!    follower asks the leader ListOffsets (earliest), as Kafka's `fetchEarliestOffsetFromLeader`.
//!    A log start above its log end (retention on the leader deleted what this replica would
//!    fetch next, e.g. while it was down) empties the log and restarts it there (Kafka's
//!    `truncateFullyAndStartAt`); otherwise the offset was out of range above the leader's end,
//!    and the partition is truncated by leader epoch again (step 1).
//!
//! A truncation that fails (a disk that cannot be written) leaves the partition untruncated: it
//! never fetches past a divergence it could not remove, and tries again after a backoff. An
//! append that fails for a storage error backs off too instead of fetching the same bytes again
//! at once (the log retries its writes by itself once space is back, see `storage::rollback`).
//!
//! Errors back off and retry; a partition whose leader changed leaves the fetcher when the roles
//! task sees the new image.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::client::{broker_address, BrokerConnection, ClientError};
use super::{Followed, PartitionKey};
use crate::metrics::ShardMetrics;
use crate::shard::Shard;
use crate::storage::{StorageError, TruncateOptions};

/// Fetch version a follower sends (the last non-flexible one our leaders serve; it carries the
/// replica id and the current leader epoch).
pub const REPLICA_FETCH_VERSION: i16 = 11;
/// OffsetForLeaderEpoch version a follower sends (v3 adds the replica id).
pub const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 3;
/// ListOffsets version a follower sends to learn its leader's log start (v4 adds the current
/// leader epoch, which fences an answer from a former leader).
pub const LIST_OFFSETS_VERSION: i16 = 4;
/// ListOffsets' timestamp asking for the log start offset (Kafka's `EARLIEST_TIMESTAMP`).
const EARLIEST_TIMESTAMP: i64 = -2;
/// Bytes a follower asks per fetch response over all partitions (Kafka's
/// `replica.fetch.response.max.bytes` default).
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES: i32 = 10 << 20;
/// Pause after a failed connection or request, doubled per failure up to the maximum (Kafka's
/// `replica.fetch.backoff.ms` is 1 s; a shorter first pause makes failover faster).
pub const FETCH_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Slack on top of the fetch's own wait before a request counts as lost.
pub const REQUEST_TIMEOUT_SLACK: Duration = Duration::from_secs(10);

/// Starts the fetcher for `leader` on this shard unless it runs.
pub fn ensure_running(shard: &Rc<Shard>, leader: i32) {
    if shard
        .replication
        .fetchers
        .borrow_mut()
        .insert(leader, ())
        .is_some()
    {
        return;
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        run(&shard, leader).await;
        shard.replication.fetchers.borrow_mut().remove(&leader);
        // A partition may have been handed to this leader while the task was ending.
        if !partitions_of(&shard, leader).is_empty() && !stopping(&shard) {
            ensure_running(&shard, leader);
        }
    })
    .detach();
}

fn stopping(shard: &Shard) -> bool {
    shard.stop.load(std::sync::atomic::Ordering::Relaxed)
}

/// The partitions this shard follows from `leader`.
fn partitions_of(shard: &Shard, leader: i32) -> Vec<(PartitionKey, Followed)> {
    shard
        .replication
        .followed
        .borrow()
        .iter()
        .filter(|(_, f)| f.leader == leader)
        .map(|(k, f)| (k.clone(), f.clone()))
        .collect()
}

/// Whether `key` is still followed from `leader` in `leader_epoch` (checked right before every
/// change to its log, with no await in between).
fn still_followed(shard: &Shard, key: &PartitionKey, leader: i32, leader_epoch: i32) -> bool {
    shard
        .replication
        .followed
        .borrow()
        .get(key)
        .is_some_and(|f| f.leader == leader && f.leader_epoch == leader_epoch)
}

async fn run(shard: &Rc<Shard>, leader: i32) {
    let mut connection: Option<BrokerConnection> = None;
    let mut backoff = FETCH_BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        if stopping(shard) {
            return;
        }
        let partitions = partitions_of(shard, leader);
        if partitions.is_empty() {
            return;
        }
        let result = step(shard, leader, &mut connection, &partitions).await;
        match result {
            Ok(Progress::Fetched) => {
                backoff = FETCH_BACKOFF_MIN;
                last_error = None;
            }
            Ok(Progress::Idle) => {
                // Nothing to fetch yet (every partition waits for its truncation or the image).
                let changed = shard.replication.followed_changed.get();
                let _ = ringbroker_quorum::watch::within(
                    backoff,
                    shard
                        .replication
                        .followed_changed
                        .wait_until(move |v| v != changed),
                )
                .await;
                backoff = (backoff * 2).min(FETCH_BACKOFF_MAX);
            }
            Err(error) => {
                let text = error.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(leader, error = %text, "replica fetcher: retrying");
                    last_error = Some(text);
                }
                connection = None;
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(FETCH_BACKOFF_MAX);
            }
        }
    }
}

enum Progress {
    Fetched,
    Idle,
}

async fn step(
    shard: &Rc<Shard>,
    leader: i32,
    connection: &mut Option<BrokerConnection>,
    partitions: &[(PartitionKey, Followed)],
) -> Result<Progress, ClientError> {
    let peer = broker_address(shard, leader)?;
    if connection
        .as_ref()
        .is_none_or(|c| c.addr() != peer.addr || c.session_ending())
    {
        *connection = None;
        let security = &shard.config.security.inter_broker;
        *connection = Some(BrokerConnection::connect(&peer, security).await?);
    }
    let Some(conn) = connection.as_mut() else {
        return Ok(Progress::Idle);
    };
    let untruncated: Vec<_> = partitions.iter().filter(|(_, f)| !f.truncated).collect();
    if !untruncated.is_empty() {
        truncate(shard, conn, leader, &untruncated).await?;
    }
    let ready: Vec<_> = partitions_of(shard, leader)
        .into_iter()
        .filter(|(_, f)| f.truncated)
        .collect();
    if ready.is_empty() {
        return Ok(Progress::Idle);
    }
    fetch(shard, conn, leader, &ready).await
}

/// A leader that refuses this broker's replica requests for want of ClusterAction will go on
/// refusing: an error for the fetcher's loop to log (once) and back off on, not a quiet retry.
fn not_authorized(conn: &BrokerConnection, error_code: i16) -> Result<(), ClientError> {
    if error_code == ResponseError::ClusterAuthorizationFailed.code() {
        return Err(ClientError::NotAuthorized { addr: conn.addr() });
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ truncation

async fn truncate(
    shard: &Rc<Shard>,
    conn: &mut BrokerConnection,
    leader: i32,
    partitions: &[&(PartitionKey, Followed)],
) -> Result<(), ClientError> {
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut without_epochs = Vec::new();
    for ((topic, partition), followed) in partitions {
        let Some(log) = shard.log(topic, *partition) else {
            continue;
        };
        match log.latest_epoch() {
            Some(epoch) => topics.entry(topic.as_str()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(*partition)
                    .with_current_leader_epoch(followed.leader_epoch)
                    .with_leader_epoch(epoch),
            ),
            // Nothing written under an epoch: an empty log, nothing to compare.
            None => without_epochs.push(((topic.clone(), *partition), followed.leader_epoch)),
        }
    }
    for (key, epoch) in without_epochs {
        let mut done = true;
        if let Some(log) = shard.log(&key.0, key.1) {
            if log.log_end_offset() > log.log_start_offset() {
                // Batches without epochs (written before epochs existed): keep what is known
                // committed, as Kafka's followers truncated to their high watermark.
                let offset = log.high_watermark();
                done = truncate_log(shard, &key, leader, epoch, offset).await;
            }
        }
        if done {
            mark_truncated(shard, &key, leader, epoch);
        }
    }
    if topics.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(shard.config.node_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let timeout = REQUEST_TIMEOUT_SLACK;
    let response = conn
        .send(&request, OFFSET_FOR_LEADER_EPOCH_VERSION, timeout)
        .await?;
    for topic in response.topics {
        let name = topic.topic.0.to_string();
        for answer in topic.partitions {
            let key = (name.clone(), answer.partition);
            let Some(followed) = partitions
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, f)| f.clone())
            else {
                continue;
            };
            if answer.error_code != 0 {
                not_authorized(conn, answer.error_code)?;
                tracing::debug!(topic = %name, partition = answer.partition, error_code = answer.error_code, "OffsetForLeaderEpoch refused; retrying");
                continue;
            }
            let Some(log) = shard.log(&name, answer.partition) else {
                continue;
            };
            let local_end = log.log_end_offset();
            let offset = if answer.leader_epoch < 0 || answer.end_offset < 0 {
                // UNDEFINED: the leader knows no epoch at or below ours; keep what is committed.
                log.high_watermark()
            } else if Some(answer.leader_epoch) == log.latest_epoch() {
                answer.end_offset.min(local_end)
            } else {
                // The leader's log diverged at an earlier epoch: end there, or where our own log
                // for that epoch ends, whichever comes first.
                let ours = log
                    .end_offset_for_epoch(answer.leader_epoch)
                    .map_or(local_end, |(_, end)| end);
                answer.end_offset.min(ours).min(local_end)
            };
            if truncate_log(shard, &key, leader, followed.leader_epoch, offset).await {
                mark_truncated(shard, &key, leader, followed.leader_epoch);
            }
        }
    }
    Ok(())
}

/// Truncates the partition's log to `offset`. Returns whether its log now ends at or below
/// `offset` (false: the truncation failed, the partition must not fetch yet).
async fn truncate_log(
    shard: &Shard,
    key: &PartitionKey,
    leader: i32,
    epoch: i32,
    offset: i64,
) -> bool {
    let Some(log) = shard.log(&key.0, key.1) else {
        return true;
    };
    if offset >= log.log_end_offset() || !still_followed(shard, key, leader, epoch) {
        return true;
    }
    if offset < log.high_watermark() {
        // Committed records are on every in-sync replica: only an unclean election (or a bug)
        // takes a follower below its high watermark. Kafka truncates anyway; so do we, loudly.
        tracing::warn!(topic = %key.0, partition = key.1, offset, high_watermark = log.high_watermark(), "truncating below the high watermark");
    }
    let options = TruncateOptions {
        allow_below_high_watermark: true,
    };
    match log.truncate_to(offset, options).await {
        Ok(end) => {
            tracing::info!(
                topic = %key.0,
                partition = key.1,
                log_end_offset = end,
                "truncated to the leader's log"
            );
            true
        }
        Err(error) => {
            tracing::error!(topic = %key.0, partition = key.1, offset, %error, "truncation failed; retrying");
            false
        }
    }
}

/// Empties the partition's log and restarts it at `start`, the leader's log start (step 4 of the
/// module doc). Returns whether it did.
async fn restart_at_leader_start(
    shard: &Shard,
    key: &PartitionKey,
    leader: i32,
    epoch: i32,
    start: i64,
) -> bool {
    let Some(log) = shard.log(&key.0, key.1) else {
        return false;
    };
    // Checked with no await before the truncation takes the log.
    if !still_followed(shard, key, leader, epoch) || start <= log.log_end_offset() {
        return false;
    }
    let old_end = log.log_end_offset();
    match log.truncate_fully_and_start_at(start).await {
        Ok(()) => {
            tracing::info!(topic = %key.0, partition = key.1, old_log_end_offset = old_end, start_offset = start, "log below the leader's log start: truncated fully and starting at the leader's log start");
            true
        }
        Err(error) => {
            tracing::error!(topic = %key.0, partition = key.1, start_offset = start, %error, "cannot restart the log at the leader's log start; retrying");
            false
        }
    }
}

fn mark_truncated(shard: &Shard, key: &PartitionKey, leader: i32, epoch: i32) {
    if let Some(followed) = shard.replication.followed.borrow_mut().get_mut(key) {
        if followed.leader == leader && followed.leader_epoch == epoch {
            followed.truncated = true;
        }
    }
}

fn mark_untruncated(shard: &Shard, key: &PartitionKey) {
    if let Some(followed) = shard.replication.followed.borrow_mut().get_mut(key) {
        followed.truncated = false;
    }
}

// ------------------------------------------------------------------------------------------ fetch

async fn fetch(
    shard: &Rc<Shard>,
    conn: &mut BrokerConnection,
    leader: i32,
    partitions: &[(PartitionKey, Followed)],
) -> Result<Progress, ClientError> {
    let replication = &shard.config.cluster.replication;
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, partition), followed) in partitions {
        let Some(log) = shard.log(topic, *partition) else {
            continue;
        };
        topics.entry(topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(followed.leader_epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(replication.replica_fetch_max_bytes),
        );
    }
    if topics.is_empty() {
        return Ok(Progress::Idle);
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(shard.config.node_id))
        .with_max_wait_ms(replication.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(REPLICA_FETCH_RESPONSE_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let timeout =
        Duration::from_millis(replication.replica_fetch_wait_max_ms as u64) + REQUEST_TIMEOUT_SLACK;
    let response = conn.send(&request, REPLICA_FETCH_VERSION, timeout).await?;
    if response.error_code != 0 {
        return Err(ClientError::Protocol {
            addr: conn.addr(),
            reason: format!("fetch refused with error {}", response.error_code),
        });
    }
    let mut appends: Vec<AppendFuture> = Vec::new();
    let mut out_of_range: Vec<(PartitionKey, i32)> = Vec::new();
    let mut refused = false;
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for data in topic.partitions {
            let key = (name.clone(), data.partition_index);
            let Some((_, followed)) = partitions.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let epoch = followed.leader_epoch;
            match ResponseError::try_from_code(data.error_code) {
                None => {}
                Some(ResponseError::OffsetOutOfRange) => {
                    // The answer's log start is -1 (Kafka's): the leader is asked below.
                    out_of_range.push((key, epoch));
                    continue;
                }
                Some(error) => {
                    not_authorized(conn, data.error_code)?;
                    tracing::debug!(topic = %name, partition = data.partition_index, ?error, "replica fetch refused");
                    refused = true;
                    continue;
                }
            }
            let Some(log) = shard.log(&name, data.partition_index) else {
                continue;
            };
            let records = data.records.unwrap_or_default();
            let leader_high_watermark = data.high_watermark;
            let leader_log_start = data.log_start_offset;
            // Checked with no await before the append: a partition that became leader or moved
            // on to another leader takes nothing more from this fetch.
            if !still_followed(shard, &key, leader, epoch) {
                continue;
            }
            // Transactional batches: the partition is flagged first, so that its transaction
            // state is rebuilt from the log when this broker leads it. (A coordinator's topic
            // has its own: `__consumer_offsets` holds transactions' offsets, which its group
            // coordinator replays.)
            let coordinator_topic = super::roles::is_coordinator_topic(&name);
            if !coordinator_topic && crate::produce::any_transactional(&records) {
                if let Err(error) =
                    shard
                        .txn_partitions
                        .ensure_flagged(&name, data.partition_index, log.dir())
                {
                    tracing::warn!(topic = %name, partition = data.partition_index, %error, "cannot mark a partition transactional");
                    continue;
                }
            }
            let bytes = records.len() as u64;
            if !records.is_empty() && !coordinator_topic {
                // The producer state follows the log, ready for a leadership of this replica.
                shard
                    .producers
                    .follow(&name, data.partition_index, &records, log.log_end_offset());
            }
            // Kept for a second try after a restart at the first batch's base (a cheap clone).
            let fetched = records.clone();
            let append = (!records.is_empty()).then(|| log.append_as_follower(records));
            let shard = shard.clone();
            appends.push(Box::pin(async move {
                if let Some(append) = append {
                    let mut result = append.await;
                    if let Err(StorageError::UnexpectedAppendOffset { expected, found }) = result {
                        if restart_at_first_batch(&shard, &key, leader, epoch, &fetched, expected, found).await {
                            result = log.append_as_follower(fetched).await;
                        }
                    }
                    if let Err(error) = result {
                        // Its batches were replayed into the producer state: rebuilt at the next leadership.
                        shard.producers.forget_partition(&key.0, key.1);
                        if matches!(error, StorageError::UnexpectedAppendOffset { .. } | StorageError::StaleLeaderEpoch { .. }) {
                            tracing::warn!(topic = %key.0, partition = key.1, %error, "follower append refused: truncating again");
                            mark_untruncated(&shard, &key);
                            // Not a failure to wait out: the next step truncates at once.
                            return true;
                        }
                        tracing::debug!(topic = %key.0, partition = key.1, %error, "follower append failed");
                        return false;
                    }
                    if let Some(m) = shard.metrics() {
                        ShardMetrics::add(&m.counters.replication_bytes_in, bytes);
                    }
                }
                let high_watermark = leader_high_watermark.min(log.log_end_offset());
                if high_watermark >= 0 {
                    log.set_high_watermark(high_watermark);
                }
                if still_followed(&shard, &key, leader, epoch) {
                    follow_log_start(&key, &log, leader_log_start).await;
                }
                true
            }));
        }
    }
    let mut tried = appends.len();
    let mut results = join_all(appends).await;
    if !out_of_range.is_empty() {
        tried += out_of_range.len();
        results.extend(restart_out_of_range(shard, conn, leader, &out_of_range).await?);
    }
    // Nothing went into any log (refused by the leader, or a disk that cannot take it): back off
    // instead of fetching the same bytes again at once.
    if (refused || tried > 0) && results.iter().all(|appended| !*appended) {
        return Ok(Progress::Idle);
    }
    Ok(Progress::Fetched)
}

/// Raises the follower's log start to its leader's `leader_log_start` (step 3 of the module doc),
/// never past its own high watermark (Kafka's rule for any log start increment: what is not known
/// committed stays). A failure only delays it to the next answer.
async fn follow_log_start(
    key: &PartitionKey,
    log: &crate::storage::PartitionLog,
    leader_log_start: i64,
) {
    let start = leader_log_start.min(log.high_watermark());
    if start <= log.log_start_offset() {
        return;
    }
    match log.delete_records_before(start).await {
        Ok(new_start) => {
            tracing::debug!(topic = %key.0, partition = key.1, log_start_offset = new_start, "log start follows the leader's");
        }
        Err(error) => {
            tracing::warn!(topic = %key.0, partition = key.1, start_offset = start, %error, "cannot move the log start to the leader's; retrying with the next fetch");
        }
    }
}

/// Step 4 of the module doc for the partitions whose fetch was out of range: asks the leader its
/// log start (ListOffsets, earliest) and restarts each log there when it is above the log end, or
/// truncates by epoch again. One result per partition, as the appends' (false: nothing changed).
async fn restart_out_of_range(
    shard: &Rc<Shard>,
    conn: &mut BrokerConnection,
    leader: i32,
    partitions: &[(PartitionKey, i32)],
) -> Result<Vec<bool>, ClientError> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for ((topic, partition), epoch) in partitions {
        topics.entry(topic.as_str()).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_current_leader_epoch(*epoch)
                .with_timestamp(EARLIEST_TIMESTAMP),
        );
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(shard.config.node_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = conn
        .send(&request, LIST_OFFSETS_VERSION, REQUEST_TIMEOUT_SLACK)
        .await?;
    let mut results = Vec::with_capacity(partitions.len());
    for topic in response.topics {
        let name = topic.name.0.to_string();
        for answer in topic.partitions {
            let key = (name.clone(), answer.partition_index);
            let Some((_, epoch)) = partitions.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if answer.error_code != 0 || answer.offset < 0 {
                tracing::debug!(topic = %name, partition = answer.partition_index, error_code = answer.error_code, "the leader did not tell its log start; fetching again");
                results.push(false);
                continue;
            }
            let below_start = shard
                .log(&name, answer.partition_index)
                .is_some_and(|log| answer.offset > log.log_end_offset());
            if below_start {
                results.push(
                    restart_at_leader_start(shard, &key, leader, *epoch, answer.offset).await,
                );
            } else {
                tracing::warn!(topic = %name, partition = answer.partition_index, leader_log_start_offset = answer.offset, "fetch offset out of the leader's range: truncating again");
                mark_untruncated(shard, &key);
                results.push(true);
            }
        }
    }
    Ok(results)
}

/// A follower that restarted at its leader's log start and got a first batch starting before it
/// (DeleteRecords put the leader's start inside that batch): as Kafka's follower, it restarts its
/// still empty log at the batch's base offset, so that the batch can be stored whole. Returns
/// whether it did (the caller appends again).
async fn restart_at_first_batch(
    shard: &Shard,
    key: &PartitionKey,
    leader: i32,
    epoch: i32,
    fetched: &bytes::Bytes,
    expected: i64,
    found: i64,
) -> bool {
    let Some(log) = shard.log(&key.0, key.1) else {
        return false;
    };
    let empty = log.log_start_offset() == log.log_end_offset();
    let spans_the_start = ringbroker_protocol::batch::batches(fetched)
        .next()
        .and_then(Result::ok)
        .is_some_and(|(header, _)| {
            header.base_offset == found && found < expected && header.last_offset() >= expected
        });
    if !empty || !spans_the_start || !still_followed(shard, key, leader, epoch) {
        return false;
    }
    match log.truncate_fully_and_start_at(found).await {
        Ok(()) => {
            tracing::info!(topic = %key.0, partition = key.1, start_offset = found, "the leader's log start is inside a batch: starting at the batch's base offset");
            true
        }
        Err(error) => {
            tracing::warn!(topic = %key.0, partition = key.1, start_offset = found, %error, "cannot restart the log at the first batch's base offset");
            false
        }
    }
}

/// One partition's work on a fetch answer: an append, or a restart at the leader's log start.
/// False when its log could not take what the leader sent (a storage failure, or a restart that
/// failed): when every partition's is false, the fetcher backs off.
type AppendFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>;
