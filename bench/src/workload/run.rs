//! One benchmark run: set up the topic, start producer and consumer threads, tick the collector
//! once per second (live progress on a terminal), stop on time or count, and build the result.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::cli::{RunArgs, Workload};
use crate::client::admin::{
    self, PartitionLeader, TopicLayout, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use crate::client::connection::Connection;
use crate::client::fetch::FetchLimits;
use crate::error::{BenchError, Result};
use crate::report::{self, BrokerInfo, Derived, RunResult, RESULT_FORMAT};
use crate::stats::{Collector, Measurement, Progress, Shared, INTERVAL};
use crate::workload::consumer::{self, ConsumerPlan};
use crate::workload::generator::BatchShape;
use crate::workload::pinning::CorePlan;
use crate::workload::producer::{self, ProducerPlan};
use crate::workload::{Clock, StopFlags};

/// Longest a fetch waits on the broker for data (long poll); short enough that consumers notice
/// the end of a run quickly.
pub const FETCH_MAX_WAIT_MS: i32 = 100;
/// Extra time, beyond the request timeout, that we wait for a socket read before giving up.
pub const READ_TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// Runs a workload and returns its result (the caller prints and saves it).
pub fn run(
    workload: Workload,
    args: &RunArgs,
    cores: CorePlan,
) -> Result<(RunResult, Measurement)> {
    args.validate(workload)?;
    let read_timeout =
        Duration::from_millis(args.request_timeout_ms.max(0) as u64) + READ_TIMEOUT_SLACK;
    let mut bootstrap = Connection::connect(&args.bootstrap_server, read_timeout)?;
    let mut just_created = false;
    if let Some(partitions) = args.partitions {
        just_created = admin::create_topic(
            &mut bootstrap,
            &args.topic,
            partitions,
            args.replication_factor,
            args.request_timeout_ms,
        )?;
    }
    let layout = Arc::new(admin::topic_layout(
        &mut bootstrap,
        &args.topic,
        &args.bootstrap_server,
        just_created,
    )?);
    drop(bootstrap);
    let shape = BatchShape::new(args);
    let (start, end) = consumer_offsets(workload, &layout, read_timeout)?;

    let shared = Arc::new(Shared::default());
    let flags = Arc::new(StopFlags::default());
    let clock = Clock::new();
    let mut consumers = Vec::new();
    if workload.consumes() {
        let n = args.consumers.min(layout.partitions.len());
        for (i, partitions) in split(&layout.partitions, n).into_iter().enumerate() {
            let plan = ConsumerPlan {
                partitions,
                start: start.clone(),
                end: end.clone(),
                records_limit: if workload == Workload::Consume {
                    args.records
                } else {
                    None
                },
                e2e: workload == Workload::E2e,
                limits: FetchLimits {
                    max_wait_ms: FETCH_MAX_WAIT_MS,
                    min_bytes: 1,
                    max_bytes: args.fetch_max_bytes,
                    partition_max_bytes: args.fetch_partition_max_bytes,
                },
                core: cores.core_for(args.producers * usize::from(workload.produces()) + i),
            };
            let (layout, shared, flags) = (layout.clone(), shared.clone(), flags.clone());
            consumers.push(spawn(format!("consumer-{i}"), flags.clone(), move || {
                consumer::run(plan, layout, shared, flags, clock, read_timeout)
            })?);
        }
    }
    let mut producers = Vec::new();
    if workload.produces() {
        let limits = split_count(args.records, args.producers);
        for (i, records_limit) in limits.into_iter().enumerate() {
            let partitions = assigned(&layout.partitions, i, args.producers);
            let plan = ProducerPlan {
                index: i,
                partitions,
                records_limit,
                rate: args.rate.map(|r| r / args.producers as f64),
                shape,
                acks: args.acks,
                timeout_ms: args.request_timeout_ms,
                max_in_flight: args.max_in_flight,
                core: cores.core_for(i),
            };
            let (layout, shared, flags) = (layout.clone(), shared.clone(), flags.clone());
            producers.push(spawn(format!("producer-{i}"), flags.clone(), move || {
                producer::run(plan, layout, shared, flags, clock, read_timeout)
            })?);
        }
    }
    let measurement = drive(workload, args, &shared, &flags, &producers, &consumers);
    let mut first_error = None;
    for h in producers.into_iter().chain(consumers) {
        let r = h
            .join()
            .unwrap_or_else(|_| Err(BenchError::Worker("worker panicked".into())));
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let result = RunResult {
        format: RESULT_FORMAT,
        label: args.display_label(workload),
        workload,
        started_at_unix_ms: measurement
            .started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        parameters: args.clone(),
        derived: Derived {
            records_per_batch: shape.records_per_batch,
            cores: cores.cores().to_vec(),
            partitions: layout.partitions.len(),
        },
        machine: crate::machine::describe(),
        broker: BrokerInfo {
            bootstrap: args.bootstrap_server.clone(),
            brokers: layout.brokers.clone(),
        },
        results: report::results(workload, &measurement),
    };
    Ok((result, measurement))
}

type Offsets = HashMap<i32, i64>;

/// Where consumers start and (for catch-up reads) stop.
fn consumer_offsets(
    workload: Workload,
    layout: &TopicLayout,
    read_timeout: Duration,
) -> Result<(Offsets, Option<Offsets>)> {
    match workload {
        Workload::Produce => Ok((HashMap::new(), None)),
        Workload::Consume => Ok((
            admin::list_offsets(layout, EARLIEST_TIMESTAMP, read_timeout)?,
            Some(admin::list_offsets(layout, LATEST_TIMESTAMP, read_timeout)?),
        )),
        Workload::E2e => Ok((
            admin::list_offsets(layout, LATEST_TIMESTAMP, read_timeout)?,
            None,
        )),
    }
}

fn spawn(
    name: String,
    flags: Arc<StopFlags>,
    body: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<JoinHandle<Result<()>>> {
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let r = body();
            if r.is_err() {
                flags.request_stop();
            }
            r
        })
        .map_err(|e| BenchError::Worker(format!("spawning thread: {e}")))
}

/// Ticks the collector until the run ends; returns the measurement.
fn drive(
    workload: Workload,
    args: &RunArgs,
    shared: &Arc<Shared>,
    flags: &StopFlags,
    producers: &[JoinHandle<Result<()>>],
    consumers: &[JoinHandle<Result<()>>],
) -> Measurement {
    let warmup =
        Duration::from_secs(args.warmup.as_secs() + u64::from(args.warmup.subsec_nanos() > 0));
    let mut collector = Collector::new(shared.clone(), warmup, args.broker_pid);
    let deadline = args
        .measured_duration(workload)
        .map(|d| collector.started() + warmup + d);
    let live = std::io::stderr().is_terminal();
    let mut next_tick = collector.started() + INTERVAL;
    loop {
        let producers_done = producers.iter().all(JoinHandle::is_finished);
        if producers_done {
            flags.producers_done.store(true, Ordering::Relaxed);
        }
        if producers_done && consumers.iter().all(JoinHandle::is_finished) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            flags.request_stop();
            break;
        }
        if now >= next_tick {
            let progress = collector.tick();
            if live {
                print_progress(&progress);
            }
            next_tick += INTERVAL;
        }
        let wake = deadline.map_or(next_tick, |d| d.min(next_tick));
        thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(10)),
        );
    }
    if live {
        eprintln!();
    }
    collector.finish()
}

fn print_progress(p: &Progress) {
    let mut line = format!(
        "\r[{:>4.0}s]{}",
        p.elapsed.as_secs_f64(),
        if p.warming_up { " warm-up" } else { "" }
    );
    if p.acked_per_s > 0.0 || p.produce_p99_ns.is_some() {
        line.push_str(&format!(
            " produce {} rec/s {:.1} MB/s",
            report::format_count(p.acked_per_s),
            p.acked_mb_per_s
        ));
        if let Some(ns) = p.produce_p99_ns {
            line.push_str(&format!(" p99 {}", report::format_us(ns as f64 / 1000.0)));
        }
    }
    if p.consumed_per_s > 0.0 || p.e2e_p99_ns.is_some() {
        line.push_str(&format!(
            " | consume {} rec/s {:.1} MB/s",
            report::format_count(p.consumed_per_s),
            p.consumed_mb_per_s
        ));
        if let Some(ns) = p.e2e_p99_ns {
            line.push_str(&format!(
                " e2e p99 {}",
                report::format_us(ns as f64 / 1000.0)
            ));
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{line:<100}");
    let _ = err.flush();
}

/// The partitions of the `index`-th of `n` workers: every n-th one; a worker left without any
/// (more workers than partitions) shares one, which only producers may do.
fn assigned(partitions: &[PartitionLeader], index: usize, n: usize) -> Vec<PartitionLeader> {
    debug_assert!(n > 0 && !partitions.is_empty());
    let mine: Vec<_> = partitions.iter().copied().skip(index).step_by(n).collect();
    if mine.is_empty() {
        vec![partitions[index % partitions.len()]]
    } else {
        mine
    }
}

/// Splits partitions among `n` consumers (no partition read twice).
fn split(partitions: &[PartitionLeader], n: usize) -> Vec<Vec<PartitionLeader>> {
    (0..n.max(1))
        .map(|i| assigned(partitions, i, n.max(1)))
        .collect()
}

/// Splits a record count among `n` workers.
fn split_count(total: Option<u64>, n: usize) -> Vec<Option<u64>> {
    (0..n)
        .map(|i| total.map(|t| t / n as u64 + u64::from((i as u64) < t % n as u64)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(n: i32) -> Vec<PartitionLeader> {
        (0..n)
            .map(|partition| PartitionLeader {
                partition,
                leader: 1,
            })
            .collect()
    }

    #[test]
    fn partitions_are_dealt_round_robin() {
        let p = parts(5);
        let got: Vec<i32> = assigned(&p, 1, 2).iter().map(|p| p.partition).collect();
        assert_eq!(got, vec![1, 3]);
        assert_eq!(assigned(&parts(1), 2, 3)[0].partition, 0);
        assert_eq!(split(&p, 2).iter().map(Vec::len).sum::<usize>(), 5);
    }

    #[test]
    fn record_counts_add_up() {
        assert_eq!(split_count(Some(10), 3), vec![Some(4), Some(3), Some(3)]);
        assert_eq!(split_count(None, 2), vec![None, None]);
    }
}
