//! The shard-side refresher: once a second, on the shard's own executor, copy what is cheap to
//! read but not worth counting on the hot path into the shard's `ShardMetrics`: partition offsets,
//! sizes and health, the committed offsets of the groups this shard coordinates, open connections,
//! and the executor's glommio `IoStats` (which glommio resets on every read, so they are summed
//! here).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::shard::{
    GroupSample, IoCounters, LeaderSample, PartitionSample, Published, ShardMetrics,
};
use crate::shard::Shard;

/// How often a shard refreshes its published snapshot.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the refresher of `shard` (a detached task that lives as long as the executor).
pub fn spawn(shard: Rc<Shard>) {
    let Some(metrics) = shard.metrics.clone() else {
        return;
    };
    glommio::spawn_local(async move {
        loop {
            refresh(&shard, &metrics);
            glommio::timer::sleep(SAMPLE_INTERVAL).await;
        }
    })
    .detach();
}

/// One refresh (synchronous: it only reads shard-local state).
pub fn refresh(shard: &Shard, metrics: &ShardMetrics) {
    metrics
        .connections_open
        .store(shard.connections.get() as u64, Ordering::Relaxed);
    add_io_stats(&metrics.io, &glommio::executor().io_stats());
    let published = Published {
        partitions: partition_samples(shard),
        groups: group_samples(shard),
    };
    // A scrape holding the snapshot right now gets the next one.
    let _ = metrics.publish(published);
}

fn partition_samples(shard: &Shard) -> Vec<PartitionSample> {
    let table = shard.topic_table();
    let mut samples = Vec::new();
    for (name, meta) in &table.topics {
        for partition in 0..meta.partitions {
            if shard.owner_of(name, partition) != shard.id {
                continue;
            }
            if let Some(log) = shard.log(name, partition) {
                samples.push(PartitionSample {
                    topic: name.clone(),
                    partition,
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    last_stable_offset: crate::transactions::fetch_view::readable_end(
                        shard, name, partition, &log, true,
                    ),
                    log_end_offset: log.log_end_offset(),
                    size_bytes: log.size_bytes(),
                    health: log.health(),
                    replication: leader_sample(shard, name, partition, log.log_end_offset()),
                });
            }
        }
    }
    samples
}

fn leader_sample(shard: &Shard, topic: &str, partition: i32, end: i64) -> Option<LeaderSample> {
    shard
        .replication
        .with_leader(topic, partition, |led| LeaderSample {
            replicas: led.replicas.len() as u32,
            in_sync: led.isr.len() as u32,
            max_follower_lag: led
                .followers
                .values()
                .map(|f| {
                    if f.log_end_offset < 0 {
                        end
                    } else {
                        (end - f.log_end_offset).max(0)
                    }
                })
                .max()
                .unwrap_or(0),
        })
}

fn group_samples(shard: &Shard) -> Vec<GroupSample> {
    shard
        .groups
        .group_ids()
        .into_iter()
        .map(|group| GroupSample {
            offsets: shard.groups.committed_offsets(&group),
            group,
        })
        .collect()
}

fn add(counter: &AtomicU64, delta: u64) {
    counter.fetch_add(delta, Ordering::Relaxed);
}

/// Adds one `io_stats()` delta (glommio hands out the counts since its last call).
fn add_io_stats(io: &IoCounters, stats: &glommio::IoStats) {
    let rings = stats.all_rings();
    let (reads, read_bytes) = rings.file_reads();
    let (buffered_reads, buffered_read_bytes) = rings.file_buffered_reads();
    let (writes, write_bytes) = rings.file_writes();
    let (buffered_writes, buffered_write_bytes) = rings.file_buffered_writes();
    add(&io.file_reads, reads);
    add(&io.file_bytes_read, read_bytes);
    add(&io.file_buffered_reads, buffered_reads);
    add(&io.file_buffered_bytes_read, buffered_read_bytes);
    add(&io.file_writes, writes);
    add(&io.file_bytes_written, write_bytes);
    add(&io.file_buffered_writes, buffered_writes);
    add(&io.file_buffered_bytes_written, buffered_write_bytes);
    add(&io.files_opened, rings.files_opened());
    add(&io.files_closed, rings.files_closed());
    // glommio times file reads only (DMA and buffered), when the executor records latencies
    // (metrics on). An interval without reads has no quantiles: NaN, as Prometheus summaries
    // report an empty window, rather than the last interval's value.
    let latency = rings.io_latency_us();
    for (q, slot) in [
        (0.5, &io.io_latency_us_p50_bits),
        (0.99, &io.io_latency_us_p99_bits),
    ] {
        let value = match latency.quantile(q) {
            Ok(Some(value)) if latency.count() > 0 => value,
            _ => f64::NAN,
        };
        slot.store(value.to_bits(), Ordering::Relaxed);
    }
}
