//! Role changes: after every metadata image this shard installs, the replicated partitions it
//! owns are led, followed or left alone as the image says (Kafka's makeLeaders/makeFollowers).
//!
//! - Becoming leader (a new leader epoch naming this broker): the partition leaves its fetcher,
//!   its producer state is made current (kept if the follower followed the log to its end, else
//!   rebuilt from the log) and its transaction state (open and aborted transactions, for the last
//!   stable offset and read_committed) is rebuilt from the log, its high watermark is driven by
//!   the ISR, and only then does it take produce (`ShardReplication::leads`).
//! - Becoming follower: the partition stops taking produce, keeps its producer state (building it
//!   from the log if it has none) and removes its snapshot (which a truncation could make wrong),
//!   then goes to the fetcher of its leader, which truncates it to the leader's log before
//!   fetching; the fetcher replays each appended batch into the producer state.
//! - No leader: neither.
//!
//! Partitions with one replica are not touched: their high watermark stays the written end.
//!
//! `__consumer_offsets` and `__transaction_state` partitions are replicated the same way; their
//! coordinators follow their leadership: a new leader loads the partition's groups (or
//! transactional ids) from its log before it takes writes, and a broker that stops leading one
//! drops them (`GroupCoordinator::load_partition`/`unload_partition`, the same on
//! `TxnCoordinator`). A new transaction coordinator then completes the transactions it found
//! prepared, as Kafka's does.

use std::rc::Rc;
use std::time::Instant;

use super::fetcher;
use super::leader::LeaderState;
use super::Followed;
use crate::cluster::MetadataImage;
use crate::groups::{ScanBound, OFFSETS_TOPIC_NAME};
use crate::metadata::{PartitionState, NO_LEADER};
use crate::metrics::ShardMetrics;
use crate::shard::Shard;
use crate::transactions::{PartitionTxns, TRANSACTION_STATE_TOPIC};

/// Runs for the life of the shard: reconciles roles after every installed image.
pub fn spawn(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        let mut seen = 0;
        loop {
            let installed = shard.replication.installed.wait_until(move |i| i != seen);
            let stopping = shard.stop.load(std::sync::atomic::Ordering::Relaxed);
            if stopping {
                return;
            }
            // Woken at least every second to notice the stop flag.
            seen = match ringbroker_quorum::watch::within(
                std::time::Duration::from_secs(1),
                installed,
            )
            .await
            {
                Some(index) => index,
                None => continue,
            };
            reconcile(&shard).await;
        }
    })
    .detach();
}

/// Brings this shard's replicated partitions in line with its current image.
pub async fn reconcile(shard: &Rc<Shard>) {
    let image = shard.image();
    let me = shard.config.node_id;
    let mut wanted_leader = Vec::new();
    let mut wanted_follower = Vec::new();
    for (name, meta) in &image.topics.topics {
        for (index, state) in meta.assignments.iter().enumerate() {
            let partition = index as i32;
            if state.replicas.len() <= 1
                || !state.replicas.contains(&me)
                || shard.owner_of(name, partition) != shard.id
            {
                continue;
            }
            if state.leader == me {
                wanted_leader.push((name.clone(), partition, state.clone()));
            } else if state.leader != NO_LEADER {
                wanted_follower.push((name.clone(), partition, state.clone()));
            }
        }
    }
    drop_gone(shard, &image);
    for (topic, partition, state) in wanted_follower {
        become_follower(shard, &topic, partition, &state).await;
    }
    // Concurrently: each new leadership reads its partition's log (producer state, and a group
    // coordinator's state for `__consumer_offsets`), and a broker taking over from a dead one
    // takes many at once; none of them should wait for the others' reads.
    futures::future::join_all(
        wanted_leader
            .iter()
            .map(|(topic, partition, state)| become_leader(shard, topic, *partition, state)),
    )
    .await;
}

/// Forgets led and followed partitions the image no longer gives this broker (deleted, moved,
/// leaderless).
fn drop_gone(shard: &Shard, image: &MetadataImage) {
    let me = shard.config.node_id;
    let state_of = |topic: &str, partition: i32| -> Option<PartitionState> {
        image
            .topics
            .get(topic)
            .and_then(|meta| meta.partition_state(partition))
            .cloned()
    };
    let replication = &shard.replication;
    let mut let_go = Vec::new();
    for (topic, partitions) in replication.leaders.borrow_mut().iter_mut() {
        partitions.retain(|partition, led| {
            let kept = state_of(topic, *partition)
                .is_some_and(|s| s.leader == me && s.leader_epoch == led.leader_epoch);
            if !kept {
                let_go.push((topic.clone(), *partition));
            }
            kept
        });
    }
    // Another broker coordinates these groups and transactional ids now (or nobody until an
    // election).
    for (topic, partition) in let_go {
        unload_coordinator(shard, &topic, partition);
    }
    replication
        .leaders
        .borrow_mut()
        .retain(|_, partitions| !partitions.is_empty());
    let before = replication.followed.borrow().len();
    replication
        .followed
        .borrow_mut()
        .retain(|(topic, partition), followed| {
            state_of(topic, *partition).is_some_and(|s| {
                s.leader == followed.leader
                    && s.leader_epoch == followed.leader_epoch
                    && s.replicas.contains(&me)
            })
        });
    if replication.followed.borrow().len() != before {
        replication.followed_changed.bump();
    }
}

async fn become_leader(shard: &Rc<Shard>, topic: &str, partition: i32, state: &PartitionState) {
    let now = Instant::now();
    let replication = &shard.replication;
    // Same epoch: only the ISR or the replicas changed.
    let updated = replication.with_leader(topic, partition, |led| {
        if led.leader_epoch != state.leader_epoch {
            return false;
        }
        if let Some(m) = shard.metrics() {
            let left = led.isr.iter().filter(|r| !state.isr.contains(r)).count();
            let joined = state.isr.iter().filter(|r| !led.isr.contains(r)).count();
            ShardMetrics::add(&m.counters.isr_shrinks, left as u64);
            ShardMetrics::add(&m.counters.isr_expands, joined as u64);
        }
        led.update(state.partition_epoch, &state.replicas, &state.isr, now);
        true
    });
    let Some(log) = shard.log(topic, partition) else {
        return;
    };
    if updated == Some(true) {
        log.set_high_watermark_follows_log_end(state.isr == [shard.config.node_id]);
        return;
    }
    // A new leadership: no fetcher appends to it any more (the fetcher checks `followed` before
    // every append, synchronously).
    if replication
        .followed
        .borrow_mut()
        .remove(&(topic.to_string(), partition))
        .is_some()
    {
        replication.followed_changed.bump();
    }
    // Producer state: the idempotent producers that wrote through the old leader retry here. A
    // follower kept it up to date as it appended (no scan of the log on the fail-over path);
    // after a truncation it is rebuilt from the log. (The coordinators' topics have no
    // producers: only their coordinator writes them.)
    let ready = if is_coordinator_topic(topic) {
        Ok(())
    } else {
        match shard.producers.lead(topic, partition, &log).await {
            Ok(rebuilt) => {
                if rebuilt {
                    tracing::info!(
                        topic,
                        partition,
                        log_end_offset = log.log_end_offset(),
                        "producer state rebuilt from the log"
                    );
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    };
    if let Err(error) = ready {
        tracing::error!(topic, partition, %error, "cannot rebuild producer state: not leading");
        return;
    }
    // Transaction state likewise (open transactions, aborted ones: the last stable offset and
    // what read_committed consumers skip), from everything this broker holds.
    if !is_coordinator_topic(topic) {
        match PartitionTxns::recover_to(&log, ScanBound::WrittenEnd).await {
            Ok(txns) => shard.txn_partitions.insert(topic, partition, txns),
            Err(error) => {
                tracing::error!(topic, partition, %error, "cannot rebuild transaction state: not leading");
                return;
            }
        }
    }
    // The groups or transactional ids of a coordinator's partition come from its log, as this
    // broker holds it now (a follower's memory had none, or a stale copy from before).
    if let Err(error) = load_coordinator(shard, topic, partition).await {
        tracing::error!(topic, partition, %error, "cannot load the partition's coordinator state: not leading");
        return;
    }
    // The image may have moved on while the state was rebuilt.
    let current = shard
        .image()
        .topics
        .get(topic)
        .and_then(|meta| meta.partition_state(partition))
        .cloned();
    let Some(current) = current
        .filter(|c| c.leader == shard.config.node_id && c.leader_epoch == state.leader_epoch)
    else {
        return;
    };
    log.set_high_watermark_follows_log_end(current.isr == [shard.config.node_id]);
    let led = LeaderState::new(
        shard.config.node_id,
        current.leader_epoch,
        current.partition_epoch,
        &current.replicas,
        &current.isr,
        now,
    );
    replication
        .leaders
        .borrow_mut()
        .entry(topic.to_string())
        .or_default()
        .insert(partition, led);
    if let Some(m) = shard.metrics() {
        ShardMetrics::add(&m.counters.leaderships_taken, 1);
    }
    if topic == TRANSACTION_STATE_TOPIC {
        complete_loaded_transactions(shard, partition);
    }
    tracing::info!(
        topic,
        partition,
        leader_epoch = current.leader_epoch,
        isr = ?current.isr,
        log_end_offset = log.log_end_offset(),
        high_watermark = log.high_watermark(),
        "leading partition"
    );
}

async fn become_follower(shard: &Rc<Shard>, topic: &str, partition: i32, state: &PartitionState) {
    let replication = &shard.replication;
    let key = (topic.to_string(), partition);
    let current = replication.followed.borrow().get(&key).cloned();
    if current
        .as_ref()
        .is_some_and(|f| f.leader == state.leader && f.leader_epoch == state.leader_epoch)
    {
        return;
    }
    let Some(log) = shard.log(topic, partition) else {
        return;
    };
    if let Some(partitions) = replication.leaders.borrow_mut().get_mut(topic) {
        partitions.remove(&partition);
    }
    log.set_high_watermark_follows_log_end(false);
    // A follower keeps its producer state up to date as it appends (`ShardProducers::follow`),
    // built here from the log (and the snapshot) if it has none yet; a snapshot is removed
    // afterwards, as a truncation could leave it describing batches that are gone.
    if !is_coordinator_topic(topic) {
        if let Err(error) = shard
            .producers
            .start_following(topic, partition, &log)
            .await
        {
            // The next leadership rebuilds it.
            tracing::warn!(topic, partition, %error, "cannot build a follower's producer state");
            shard.producers.forget_partition(topic, partition);
        }
    }
    unload_coordinator(shard, topic, partition);
    if let Err(error) = shard.producers.remove_files(log.dir()).await {
        tracing::warn!(topic, partition, %error, "cannot remove a follower's producer state snapshot");
    }
    replication.followed.borrow_mut().insert(
        key,
        Followed {
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            truncated: false,
        },
    );
    replication.followed_changed.bump();
    tracing::info!(
        topic,
        partition,
        leader = state.leader,
        leader_epoch = state.leader_epoch,
        log_end_offset = log.log_end_offset(),
        "following partition"
    );
    fetcher::ensure_running(shard, state.leader);
}

/// Whether `topic` is a coordinator's own (its records written by the coordinator alone).
pub(crate) fn is_coordinator_topic(topic: &str) -> bool {
    topic == OFFSETS_TOPIC_NAME || topic == TRANSACTION_STATE_TOPIC
}

/// A new leader of a coordinator's partition loads its state from the log.
async fn load_coordinator(shard: &Shard, topic: &str, partition: i32) -> Result<(), String> {
    if topic == OFFSETS_TOPIC_NAME {
        shard
            .groups
            .load_partition(partition)
            .await
            .map_err(|e| e.to_string())?;
    } else if topic == TRANSACTION_STATE_TOPIC {
        let Some(transactions) = shard.transactions() else {
            return Err("the transaction coordinator is not open".into());
        };
        transactions
            .load_partition(partition)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A broker that no longer leads a coordinator's partition drops its state.
fn unload_coordinator(shard: &Shard, topic: &str, partition: i32) {
    if topic == OFFSETS_TOPIC_NAME {
        shard.groups.unload_partition(partition);
    } else if topic == TRANSACTION_STATE_TOPIC {
        if let Some(transactions) = shard.transactions() {
            transactions.unload_partition(partition);
        }
    }
}

/// Completes, in the background, the transactions a new leader of state `partition` found
/// prepared (their markers are written again): the role change does not wait for markers to
/// other brokers.
fn complete_loaded_transactions(shard: &Rc<Shard>, partition: i32) {
    let Some(transactions) = shard.transactions() else {
        return;
    };
    let shard = Rc::clone(shard);
    glommio::spawn_local(async move {
        let ended = transactions.complete_loaded(&shard, partition).await;
        if ended > 0 {
            tracing::info!(
                partition,
                ended,
                "ended the transactions a new coordinator found due"
            );
        }
    })
    .detach();
}
