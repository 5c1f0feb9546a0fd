//! The transactional workload (`txn`, issue 22): each producer thread runs transactions back to
//! back (AddPartitionsToTxn for P partitions, one Produce with N records spread over them, EndTxn
//! commit), one transactional id per thread; one consumer thread reads every partition with
//! `read_committed` and measures end to end from the send time stamped in each batch's first
//! record to the moment the committed batch is fetched. Reports commits/s, records/s, the commit
//! latency (start of AddPartitionsToTxn to the EndTxn answer) and the e2e latency percentiles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringbroker_protocol::records::{BatchBuilder, Record};
use serde::Serialize;

use crate::cli::TxnArgs;
use crate::client::admin::{self, TopicLayout, LATEST_TIMESTAMP};
use crate::client::batch_view::{self, batches, Stamp};
use crate::client::connection::Connection;
use crate::client::fetch::{self, FetchLimits};
use crate::client::txn::{self, ProducerIdentity};
use crate::client::versions::FETCH;
use crate::error::{BenchError, Result};
use crate::stats::new_histogram;
use crate::workload::pinning::CorePlan;
use crate::workload::{Clock, StopFlags};

/// Kafka's `read_committed` isolation level in Fetch.
const READ_COMMITTED: i8 = 1;
/// How long the consumer keeps reading after the producers stopped, for the last commits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetch long-poll wait: short, so the consumer notices the end of the run.
const FETCH_MAX_WAIT_MS: i32 = 100;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER: a new topic's
/// partitions are not serving yet.
const NOT_READY_YET: [i16; 3] = [3, 5, 6];
/// The producers' `transaction.timeout.ms` (the Java client's default).
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TxnResult {
    /// `--label`, else the bootstrap address.
    pub label: String,
    /// Records per transaction (N).
    pub txn_records: usize,
    /// Partitions every transaction writes to (P).
    pub partitions: i32,
    /// Producer threads, one transactional id each.
    pub producers: usize,
    /// Bytes of each record value.
    pub record_size: usize,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Transactions committed in the measured time.
    pub commits: u64,
    /// `commits` per second.
    pub commits_per_sec: f64,
    /// Committed records per second.
    pub records_per_sec: f64,
    /// AddPartitionsToTxn start to EndTxn answer, µs: median, 99th percentile, largest.
    pub commit_latency_us_p50: f64,
    pub commit_latency_us_p99: f64,
    pub commit_latency_us_max: f64,
    /// Send time to the read_committed fetch, µs, weighted by records: percentiles and largest.
    pub e2e_latency_us_p50: f64,
    pub e2e_latency_us_p99: f64,
    pub e2e_latency_us_p999: f64,
    pub e2e_latency_us_max: f64,
    /// Records the read_committed consumer saw in the measured time (should match commits x N).
    pub e2e_records: u64,
}

/// What every thread of a run shares.
struct RunContext {
    args: TxnArgs,
    layout: TopicLayout,
    shared: Shared,
    flags: StopFlags,
    clock: Clock,
    /// Transactions started and batches fetched before this are not measured (warm-up).
    measure_from: Instant,
    read_timeout: Duration,
}

/// Counters and histograms shared by the threads.
struct Shared {
    commits: AtomicU64,
    committed_records: AtomicU64,
    consumed_records: AtomicU64,
    commit_latency: Mutex<Histogram<u64>>,
    e2e_latency: Mutex<Histogram<u64>>,
}

/// Runs the workload and returns its figures.
pub fn run(args: &TxnArgs, cores: CorePlan) -> Result<TxnResult> {
    let read_timeout = Duration::from_millis(args.request_timeout_ms as u64 + 5_000);
    let mut conn = Connection::connect(&args.bootstrap_server, read_timeout)?;
    let created = admin::create_topic(&mut conn, &args.topic, args.partitions, 1, 30_000)?;
    let layout = admin::topic_layout(&mut conn, &args.topic, &args.bootstrap_server, created)?;
    let start = start_offsets(&layout, read_timeout)?;
    let ctx = Arc::new(RunContext {
        args: args.clone(),
        layout,
        shared: Shared {
            commits: AtomicU64::new(0),
            committed_records: AtomicU64::new(0),
            consumed_records: AtomicU64::new(0),
            commit_latency: Mutex::new(new_histogram()),
            e2e_latency: Mutex::new(new_histogram()),
        },
        flags: StopFlags::default(),
        clock: Clock::new(),
        measure_from: Instant::now() + args.warmup,
        read_timeout,
    });
    let consumer = {
        let (ctx, core) = (ctx.clone(), cores.core_for(0));
        thread::spawn(move || consume(&ctx, start, core))
    };
    let producers: Vec<_> = (0..args.producers)
        .map(|i| {
            let (ctx, core) = (ctx.clone(), cores.core_for(i + 1));
            thread::spawn(move || {
                let outcome = produce(&ctx, i, core);
                if outcome.is_err() {
                    ctx.flags.request_stop();
                }
                outcome
            })
        })
        .collect();
    let ends_at = ctx.measure_from + args.duration;
    while Instant::now() < ends_at && !ctx.flags.stopped() {
        thread::sleep(Duration::from_millis(50));
    }
    let measured = Instant::now().saturating_duration_since(ctx.measure_from);
    ctx.flags.producers_done.store(true, Ordering::Relaxed);
    for p in producers {
        join(p)?;
    }
    join(consumer)?;
    Ok(summarize(args, &ctx.shared, measured))
}

/// The partitions' end offsets, where the consumer starts. Apache Kafka shows a new topic's
/// leaders a moment before its partitions answer (NOT_LEADER_OR_FOLLOWER meanwhile): ask again.
fn start_offsets(layout: &TopicLayout, read_timeout: Duration) -> Result<HashMap<i32, i64>> {
    let mut attempt = 0;
    loop {
        match admin::list_offsets(layout, LATEST_TIMESTAMP, read_timeout) {
            Err(BenchError::Broker { code, .. })
                if NOT_READY_YET.contains(&code) && attempt < admin::METADATA_RETRIES =>
            {
                attempt += 1;
                thread::sleep(admin::METADATA_RETRY_PAUSE);
            }
            other => return other,
        }
    }
}

fn join(handle: thread::JoinHandle<Result<()>>) -> Result<()> {
    handle
        .join()
        .map_err(|_| BenchError::Protocol("a bench thread panicked".into()))?
}

/// One producer thread: transactions back to back until the run ends.
fn produce(ctx: &RunContext, index: usize, core: Option<usize>) -> Result<()> {
    CorePlan::pin_current(core);
    let (args, layout, shared, flags) = (&ctx.args, &ctx.layout, &ctx.shared, &ctx.flags);
    let read_timeout = ctx.read_timeout;
    let transactional_id = format!("{}-{index}", args.transactional_id);
    let mut bootstrap = Connection::connect(&args.bootstrap_server, read_timeout)?;
    let coordinator = txn::find_coordinator(&mut bootstrap, &transactional_id)?;
    let mut conn = Connection::connect(&coordinator, read_timeout)?;
    let producer = txn::init_producer_id(&mut conn, &transactional_id, TRANSACTION_TIMEOUT_MS)?;
    // One broker (or every partition led by the coordinator's broker): the bench measures the
    // single-broker transaction path; a multi-broker layout would need a connection per leader.
    if layout
        .partitions
        .iter()
        .any(|p| p.leader != layout.partitions[0].leader)
    {
        return Err(BenchError::InvalidArgument(
            "txn workload: all partitions must have one leader".into(),
        ));
    }
    let partitions: Vec<i32> = layout.partitions.iter().map(|p| p.partition).collect();
    let per_partition = records_per_partition(args.txn_records, partitions.len());
    let templates = build_templates(&per_partition, args.record_size)?;
    let mut sequences = vec![0i32; partitions.len()];
    while !flags.producers_done.load(Ordering::Relaxed) && !flags.stopped() {
        let started = Instant::now();
        txn::add_partitions(
            &mut conn,
            &transactional_id,
            producer,
            &layout.topic,
            &partitions,
        )?;
        let now_ns = ctx.clock.now_ns();
        let batches = stamped_batches(&templates, &partitions, &mut sequences, producer, now_ns);
        let timeout_ms = args.request_timeout_ms;
        txn::produce(
            &mut conn,
            &transactional_id,
            &layout.topic,
            batches,
            timeout_ms,
        )?;
        txn::end_txn(&mut conn, &transactional_id, producer, true)?;
        if started >= ctx.measure_from {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            let records = per_partition.iter().sum::<usize>() as u64;
            shared
                .committed_records
                .fetch_add(records, Ordering::Relaxed);
            let ns = started.elapsed().as_nanos() as u64;
            lock(&shared.commit_latency).saturating_record(ns.max(1));
        }
    }
    Ok(())
}

/// N records over P partitions: as even as possible, every partition gets at least one.
fn records_per_partition(records: usize, partitions: usize) -> Vec<usize> {
    let records = records.max(partitions);
    (0..partitions)
        .map(|i| records / partitions + usize::from(i < records % partitions))
        .collect()
}

/// One built batch per partition (uncompressed, so the stamp can be patched in).
fn build_templates(per_partition: &[usize], record_size: usize) -> Result<Vec<Vec<u8>>> {
    let value = vec![b'x'; record_size.max(batch_view::STAMP_BYTES)];
    per_partition
        .iter()
        .map(|&n| {
            let mut builder = BatchBuilder::new(ringbroker_protocol::batch::Compression::None);
            for _ in 0..n {
                let record = Record {
                    key: None,
                    value: Some(&value),
                    headers: &[],
                    timestamp_ms: 0,
                };
                builder
                    .push(&record)
                    .map_err(|e| BenchError::Batch(e.to_string()))?;
            }
            let built = builder
                .finish()
                .map_err(|e| BenchError::Batch(e.to_string()))?;
            Ok(built.to_vec())
        })
        .collect()
}

/// The templates with this transaction's send time, sequences and producer identity (one copy of
/// each batch per transaction: the Produce encoding owns its bytes).
fn stamped_batches(
    templates: &[Vec<u8>],
    partitions: &[i32],
    sequences: &mut [i32],
    producer: ProducerIdentity,
    now_ns: u64,
) -> Vec<(i32, Bytes)> {
    let now_ms = (now_ns / 1_000_000) as i64;
    let stamp = Stamp {
        first_ns: now_ns,
        spacing_ns: 0,
    };
    templates
        .iter()
        .zip(partitions)
        .zip(sequences.iter_mut())
        .map(|((template, &partition), sequence)| {
            let mut batch = template.clone();
            let stamp_at = batch_view::first_value_range(&batch).map(|(at, _)| at);
            batch_view::patch_batch(&mut batch, now_ms, now_ms, stamp_at, stamp);
            txn::patch_transactional(&mut batch, producer, *sequence);
            let count = i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]);
            // Sequences wrap at i32::MAX, as Kafka's do.
            *sequence = sequence.wrapping_add(count) & i32::MAX;
            (partition, Bytes::from(batch))
        })
        .collect()
}

/// The read_committed consumer: every partition from the run's start offsets.
fn consume(ctx: &RunContext, start: HashMap<i32, i64>, core: Option<usize>) -> Result<()> {
    CorePlan::pin_current(core);
    let (layout, shared, flags, read_timeout) =
        (&ctx.layout, &ctx.shared, &ctx.flags, ctx.read_timeout);
    let leader = layout.partitions.first().map(|p| p.leader).unwrap_or(0);
    let mut conn = Connection::connect(layout.broker_addr(leader)?, read_timeout)?;
    let version = conn.versions().pick(FETCH)?;
    let mut positions: Vec<(i32, i64)> = layout
        .partitions
        .iter()
        .map(|p| (p.partition, start.get(&p.partition).copied().unwrap_or(0)))
        .collect();
    let limits = FetchLimits {
        max_wait_ms: FETCH_MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: 64 << 20,
        partition_max_bytes: 16 << 20,
    };
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if flags.stopped() {
            return Ok(());
        }
        if flags.producers_done.load(Ordering::Relaxed) {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            let caught_up = shared.consumed_records.load(Ordering::Relaxed)
                >= shared.committed_records.load(Ordering::Relaxed);
            if caught_up || Instant::now() >= deadline {
                return Ok(());
            }
        }
        let request =
            fetch::request_with_isolation(&layout.topic, &positions, limits, READ_COMMITTED);
        let response = conn.call(&request, version)?;
        let results = fetch::results(response).map_err(|code| BenchError::broker(code, "Fetch"))?;
        let now_ns = ctx.clock.now_ns();
        let measuring = Instant::now() >= ctx.measure_from;
        for r in results {
            if r.error_code != 0 {
                return Err(BenchError::broker(r.error_code, "read_committed Fetch"));
            }
            if let Some(slot) = positions.iter_mut().find(|(p, _)| *p == r.partition) {
                account(&r.records, &mut slot.1, shared, now_ns, measuring);
            }
        }
    }
}

/// Records the e2e latency of the committed data batches past `position` and moves it past the
/// last whole batch (markers included: they are control batches, not records).
fn account(records: &[u8], position: &mut i64, shared: &Shared, now_ns: u64, measuring: bool) {
    for (header, bytes) in batches(records) {
        let last = header.last_offset();
        if last < *position {
            continue;
        }
        *position = last + 1;
        if header.is_control() || !measuring {
            continue;
        }
        let count = header.record_count.max(0) as u64;
        shared.consumed_records.fetch_add(count, Ordering::Relaxed);
        if let Some(stamp) = batch_view::read_stamp(bytes) {
            let latency = now_ns.saturating_sub(stamp.first_ns).max(1);
            lock(&shared.e2e_latency).saturating_record_n(latency, count.max(1));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking bench thread is reported by join; its histogram is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn summarize(args: &TxnArgs, shared: &Shared, measured: Duration) -> TxnResult {
    let seconds = measured.as_secs_f64().max(1e-9);
    let commits = shared.commits.load(Ordering::Relaxed);
    let records = shared.committed_records.load(Ordering::Relaxed);
    let commit = lock(&shared.commit_latency);
    let e2e = lock(&shared.e2e_latency);
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    TxnResult {
        label: args
            .label
            .clone()
            .unwrap_or_else(|| args.bootstrap_server.clone()),
        txn_records: args.txn_records,
        partitions: args.partitions,
        producers: args.producers,
        record_size: args.record_size,
        seconds,
        commits,
        commits_per_sec: commits as f64 / seconds,
        records_per_sec: records as f64 / seconds,
        commit_latency_us_p50: us(&commit, 0.5),
        commit_latency_us_p99: us(&commit, 0.99),
        commit_latency_us_max: commit.max() as f64 / 1_000.0,
        e2e_latency_us_p50: us(&e2e, 0.5),
        e2e_latency_us_p99: us(&e2e, 0.99),
        e2e_latency_us_p999: us(&e2e, 0.999),
        e2e_latency_us_max: e2e.max() as f64 / 1_000.0,
        e2e_records: shared.consumed_records.load(Ordering::Relaxed),
    }
}

/// The human-readable summary.
pub fn summary_text(r: &TxnResult) -> String {
    format!(
        "txn {label}: {txn} records x {p} partitions per transaction, {prod} producer(s), {size} B records, {secs:.1} s\n\
         commits/s {cps:.0}  records/s {rps:.0}  commits {commits}\n\
         commit latency µs  p50 {c50:.0}  p99 {c99:.0}  max {cmax:.0}\n\
         e2e read_committed µs  p50 {e50:.0}  p99 {e99:.0}  p99.9 {e999:.0}  max {emax:.0}  ({seen} records seen)\n",
        label = r.label,
        txn = r.txn_records,
        p = r.partitions,
        prod = r.producers,
        size = r.record_size,
        secs = r.seconds,
        cps = r.commits_per_sec,
        rps = r.records_per_sec,
        commits = r.commits,
        c50 = r.commit_latency_us_p50,
        c99 = r.commit_latency_us_p99,
        cmax = r.commit_latency_us_max,
        e50 = r.e2e_latency_us_p50,
        e99 = r.e2e_latency_us_p99,
        e999 = r.e2e_latency_us_p999,
        emax = r.e2e_latency_us_max,
        seen = r.e2e_records,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::validate_batch;

    #[test]
    fn records_spread_over_partitions() {
        assert_eq!(records_per_partition(10, 3), vec![4, 3, 3]);
        assert_eq!(records_per_partition(1, 4), vec![1, 1, 1, 1]);
    }

    #[test]
    fn stamped_batches_carry_sequences_and_stamp() {
        let templates = build_templates(&[2, 3], 64).expect("built");
        let mut sequences = vec![0, i32::MAX - 1];
        let producer = ProducerIdentity { id: 5, epoch: 1 };
        let out = stamped_batches(&templates, &[0, 1], &mut sequences, producer, 42_000_000);
        assert_eq!(
            sequences,
            vec![2, 1],
            "sequences advance by the record count and wrap"
        );
        let h = validate_batch(&out[1].1).expect("valid CRC");
        assert!(h.is_transactional());
        assert_eq!(h.base_sequence, i32::MAX - 1);
        assert_eq!(
            batch_view::read_stamp(&out[0].1).map(|s| s.first_ns),
            Some(42_000_000)
        );
    }
}
