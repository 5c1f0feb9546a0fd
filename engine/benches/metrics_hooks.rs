//! What metrics cost one produce request, in CPU time: runs the exact hook calls the server makes
//! for a produce request (frame read, request count, queue, cross-shard hop, append, per-partition
//! errors, bytes sent, reply and request latency) with metrics on and with them off (`None`, what
//! `--metrics-listen none` gives), and prints nanoseconds per request for each and the difference.
//!
//!   cargo bench -p ringbroker-engine --bench metrics_hooks
//!
//! Relate the difference to the broker CPU time of one produce request (BENCHMARKS.md): that
//! ratio is the hot-path cost of metrics without the noise of an end-to-end run. What this cannot
//! see is cache pressure from the histograms in a busy broker; the end-to-end A/B
//! (`bench/scripts/metrics-ab.sh`) covers that.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringbroker_engine::metrics::{hooks, ShardMetrics, Stage};
use ringbroker_engine::produce::ProduceOutcome;
use ringbroker_engine::server::dispatch::Part;
use ringbroker_engine::storage::AppendOutcome;

/// Requests per timed run: long enough (~0.1-1 s) that the clock reads around it do not matter.
const REQUESTS_PER_RUN: u32 = 2_000_000;
/// Timed runs per mode; the fastest is reported (the others carry scheduler noise).
const RUNS: usize = 7;

/// The hook calls of one produce request to one partition, in server order.
fn produce_request(metrics: Option<&ShardMetrics>, response: &[Part], batch_bytes: usize) {
    let prefix_read = hooks::now(metrics);
    let received = hooks::now(metrics);
    hooks::frame_read(metrics, 0, prefix_read, received);
    if let Some(m) = metrics {
        m.request(0);
    }
    hooks::handler_started(metrics, 0, received);
    let outcomes = futures::executor::block_on(hooks::timed(metrics, Stage::ProduceHop, async {
        let outcome = hooks::timed(metrics, Stage::ProduceAppend, async {
            black_box(AppendOutcome {
                base_offset: 0,
                last_offset: 139,
                log_append_time_ms: -1,
            })
        })
        .await;
        hooks::appended(metrics, batch_bytes, &outcome);
        [ProduceOutcome {
            error_code: 0,
            base_offset: outcome.base_offset,
            log_start_offset: 0,
            log_append_time_ms: -1,
        }]
    }));
    hooks::produced(metrics, &outcomes);
    hooks::sending(metrics, response);
    let write_started = hooks::now(metrics);
    hooks::responded(metrics, 0, received, write_started);
}

/// Nanoseconds per call of `f`, fastest of `RUNS` runs.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..REQUESTS_PER_RUN {
                f();
            }
            started.elapsed().as_nanos() as f64 / f64::from(REQUESTS_PER_RUN)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Fastest of `RUNS` runs, in nanoseconds per request.
fn ns_per_request(metrics: Option<&ShardMetrics>) -> f64 {
    let response = [Part::Bytes(Bytes::from_static(&[0u8; 64]))];
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..REQUESTS_PER_RUN {
                produce_request(black_box(metrics), black_box(&response), black_box(16_384));
            }
            started.elapsed().as_nanos() as f64 / f64::from(REQUESTS_PER_RUN)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let metrics = ShardMetrics::new(0);
    let os_clock = ns_per_call(|| {
        black_box(Instant::now());
    });
    let hook_clock = ns_per_call(|| {
        black_box(hooks::Stamp::now());
    });
    let histogram = ns_per_call(|| {
        metrics.stage(Stage::ProduceAppend, black_box(Duration::from_micros(700)));
    });
    let off = ns_per_request(None);
    let on = ns_per_request(Some(&metrics));
    println!("clock read, std Instant::now       {os_clock:8.1} ns");
    println!("clock read, hooks::Stamp::now      {hook_clock:8.1} ns");
    println!("histogram record                   {histogram:8.1} ns");
    println!("produce request hooks, metrics off {off:8.1} ns");
    println!("produce request hooks, metrics on  {on:8.1} ns");
    println!("metrics cost per produce request   {:8.1} ns", on - off);
    assert!(metrics.stage_histogram(Stage::ProduceAppend).count() > 0);
}
