//! A consumer thread: Fetch loops over its partitions, one request in flight per leader (the next
//! fetch offset is only known once the previous answer is in), counting records from batch headers.
//! In e2e runs it also records end-to-end latency from the stamp producers put into the records.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;

use crate::client::admin::{PartitionLeader, TopicLayout};
use crate::client::batch_view::{self, batches};
use crate::client::connection::Connection;
use crate::client::fetch::{self, FetchLimits};
use crate::client::versions::FETCH;
use crate::error::{BenchError, Result};
use crate::stats::{LatencyKind, Recorder, Shared};
use crate::workload::pinning::CorePlan;
use crate::workload::{Clock, StopFlags};

/// How long e2e consumers keep reading after the producers finished, for records still in flight.
pub const E2E_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a retriable partition error (leader moving, broker busy).
pub const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Kafka's OFFSET_OUT_OF_RANGE: the data we are reading is gone; no point going on.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// What one consumer thread needs.
pub struct ConsumerPlan {
    /// Partitions this consumer reads.
    pub partitions: Vec<PartitionLeader>,
    /// Offset to start each partition at.
    pub start: HashMap<i32, i64>,
    /// Catch-up reads stop at these offsets (the log end when the run started).
    pub end: Option<HashMap<i32, i64>>,
    /// Stop when the run has consumed this many records in total.
    pub records_limit: Option<u64>,
    /// Whether to record end-to-end latency.
    pub e2e: bool,
    /// Fetch sizes and waits.
    pub limits: FetchLimits,
    /// The core to pin to.
    pub core: Option<usize>,
}

/// Runs one consumer until caught up, the limit, the time, or the e2e drain ends.
pub fn run(
    plan: ConsumerPlan,
    layout: Arc<TopicLayout>,
    shared: Arc<Shared>,
    flags: Arc<StopFlags>,
    clock: Clock,
    read_timeout: Duration,
) -> Result<()> {
    CorePlan::pin_current(plan.core);
    let recorder = plan.e2e.then(|| shared.recorder(LatencyKind::E2e));
    let mut by_leader: BTreeMap<i32, (Connection, i16, Vec<i32>)> = BTreeMap::new();
    for p in &plan.partitions {
        if let Some(entry) = by_leader.get_mut(&p.leader) {
            entry.2.push(p.partition);
            continue;
        }
        let conn = Connection::connect(layout.broker_addr(p.leader)?, read_timeout)?;
        let version = conn.versions().pick(FETCH)?;
        by_leader.insert(p.leader, (conn, version, vec![p.partition]));
    }
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &plan.partitions {
        let start = plan.start.get(&p.partition).copied().ok_or_else(|| {
            BenchError::Metadata(format!("no start offset for partition {}", p.partition))
        })?;
        positions.insert(p.partition, start);
    }
    let mut drain_deadline: Option<Instant> = None;
    while !should_stop(&plan, &positions, &shared, &flags, &mut drain_deadline) {
        for (conn, version, partitions) in by_leader.values_mut() {
            let wanted: Vec<(i32, i64)> = partitions
                .iter()
                .map(|p| (*p, positions[p]))
                .filter(|(p, offset)| !reached_end(&plan, *p, *offset))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let request: FetchRequest = fetch::request(&layout.topic, &wanted, plan.limits);
            let response = conn.call(&request, *version)?;
            let results =
                fetch::results(response).map_err(|code| BenchError::broker(code, "Fetch"))?;
            let now_ns = clock.now_ns();
            for r in results {
                if r.error_code == OFFSET_OUT_OF_RANGE {
                    return Err(BenchError::broker(
                        r.error_code,
                        format!("Fetch partition {}", r.partition),
                    ));
                }
                if r.error_code != 0 {
                    shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(RETRY_PAUSE);
                    continue;
                }
                let Some(position) = positions.get_mut(&r.partition) else {
                    continue;
                };
                account(&r.records, position, &shared, recorder.as_ref(), now_ns);
            }
        }
    }
    Ok(())
}

fn reached_end(plan: &ConsumerPlan, partition: i32, offset: i64) -> bool {
    plan.end
        .as_ref()
        .and_then(|end| end.get(&partition))
        .is_some_and(|&end| offset >= end)
}

fn should_stop(
    plan: &ConsumerPlan,
    positions: &BTreeMap<i32, i64>,
    shared: &Shared,
    flags: &StopFlags,
    drain_deadline: &mut Option<Instant>,
) -> bool {
    if flags.stopped() {
        return true;
    }
    let c = &shared.counters;
    if plan
        .records_limit
        .is_some_and(|limit| c.consumed_records.load(Ordering::Relaxed) >= limit)
    {
        return true;
    }
    if plan.end.is_some() && positions.iter().all(|(&p, &o)| reached_end(plan, p, o)) {
        return true;
    }
    if plan.e2e && flags.producers_done.load(Ordering::Relaxed) {
        let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + E2E_DRAIN_TIMEOUT);
        let caught_up =
            c.consumed_records.load(Ordering::Relaxed) >= c.acked_records.load(Ordering::Relaxed);
        return caught_up || Instant::now() >= deadline;
    }
    false
}

/// Counts the records past `position` in one partition's fetched batches, records their e2e
/// latency, and moves `position` past the last whole batch.
fn account(
    records: &[u8],
    position: &mut i64,
    shared: &Shared,
    recorder: Option<&Recorder>,
    now_ns: u64,
) {
    let c = &shared.counters;
    for (header, bytes) in batches(records) {
        let last = header.last_offset();
        if last < *position {
            continue; // a fetch offset inside an earlier batch returns that batch whole
        }
        let skipped = (*position - header.base_offset).max(0) as u64;
        let count = (header.record_count.max(0) as u64).saturating_sub(skipped);
        c.consumed_records.fetch_add(count, Ordering::Relaxed);
        c.consumed_batch_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Some(recorder) = recorder {
            let (first_ns, spacing_ns) = match batch_view::read_stamp(bytes) {
                Some(stamp) => (stamp.first_ns, stamp.spacing_ns),
                // Compressed or tiny records: the batch timestamp (ms) is all we have.
                None => (header.base_timestamp.max(0) as u64 * 1_000_000, 0),
            };
            let first_latency = now_ns.saturating_sub(first_ns + spacing_ns * skipped);
            recorder.record_spaced(first_latency, spacing_ns, count);
        }
        *position = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::batch_view::tests::built_batch;
    use crate::client::batch_view::{first_value_range, patch_batch, Stamp};
    use ringbroker_protocol::batch::{set_base_offset, Compression};

    #[test]
    fn account_counts_skips_and_advances() {
        let shared = Shared::default();
        let mut fetched = built_batch(5, b"", &[0u8; 32], Compression::None);
        set_base_offset(&mut fetched, 10);
        let mut second = built_batch(3, b"", &[0u8; 32], Compression::None);
        set_base_offset(&mut second, 15);
        let (at, _) = first_value_range(&second).expect("uncompressed");
        patch_batch(
            &mut second,
            0,
            0,
            Some(at),
            Stamp {
                first_ns: 1_000,
                spacing_ns: 100,
            },
        );
        fetched.extend_from_slice(&second);
        let recorder = shared.recorder(LatencyKind::E2e);
        let mut position = 12;
        account(&fetched, &mut position, &shared, Some(&recorder), 5_000);
        assert_eq!(position, 18);
        assert_eq!(
            shared.counters.consumed_records.load(Ordering::Relaxed),
            3 + 3
        );
    }
}
