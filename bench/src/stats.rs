//! Measurement: per-thread latency recorders, shared throughput counters, and the collector that
//! once per second turns them into interval histograms (for the live line and the .hlog) and,
//! after the warm-up, into the run's totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

/// Highest latency a histogram holds (ns); larger values are clamped to it, which the summary's
/// `max` then shows honestly as "≥ 10 min".
pub const LATENCY_MAX_NS: u64 = 600_000_000_000;
/// Significant decimal digits of the histograms (0.1% value resolution).
pub const LATENCY_SIGFIGS: u8 = 3;
/// Period of the interval histograms and of the live progress line.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// An empty latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_SIGFIGS)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// Which latency a recorder measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// Produce request to ack (from the intended send time with --rate).
    Produce,
    /// Produce (intended) time in the record to the time a consumer saw it.
    E2e,
}

impl LatencyKind {
    /// The .hlog tag.
    pub fn tag(self) -> &'static str {
        match self {
            LatencyKind::Produce => "produce",
            LatencyKind::E2e => "e2e",
        }
    }
}

/// A thread's latency recorder. Recording takes an uncontended lock once per response, not per
/// record; the collector swaps the histogram out once per interval.
#[derive(Clone)]
pub struct Recorder {
    histogram: Arc<Mutex<Histogram<u64>>>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            histogram: Arc::new(Mutex::new(new_histogram())),
        }
    }

    /// Records `count` records whose intended times were `spacing_ns` apart, the first of which
    /// waited `first_latency_ns` (later ones waited correspondingly less).
    pub fn record_spaced(&self, first_latency_ns: u64, spacing_ns: u64, count: u64) {
        let mut h = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if spacing_ns == 0 {
            h.saturating_record_n(first_latency_ns.max(1), count);
            return;
        }
        for i in 0..count {
            let latency = first_latency_ns
                .saturating_sub(i.saturating_mul(spacing_ns))
                .max(1);
            h.saturating_record(latency);
        }
    }

    fn take_into(&self, spare: &mut Histogram<u64>) {
        let mut h = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *h, spare);
    }
}

/// Throughput counters shared by all workers.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records written to sockets.
    pub sent_records: AtomicU64,
    /// Records acknowledged without error (equals sent for acks=0).
    pub acked_records: AtomicU64,
    /// Payload (key + value) bytes acknowledged.
    pub acked_payload_bytes: AtomicU64,
    /// Record-batch bytes acknowledged (what the broker stores).
    pub acked_batch_bytes: AtomicU64,
    /// Records a consumer read.
    pub consumed_records: AtomicU64,
    /// Record-batch bytes a consumer read.
    pub consumed_batch_bytes: AtomicU64,
    /// Partition-level errors in Produce or Fetch responses.
    pub errors: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`Counters::sent_records`].
    pub sent_records: u64,
    /// See [`Counters::acked_records`].
    pub acked_records: u64,
    /// See [`Counters::acked_payload_bytes`].
    pub acked_payload_bytes: u64,
    /// See [`Counters::acked_batch_bytes`].
    pub acked_batch_bytes: u64,
    /// See [`Counters::consumed_records`].
    pub consumed_records: u64,
    /// See [`Counters::consumed_batch_bytes`].
    pub consumed_batch_bytes: u64,
    /// See [`Counters::errors`].
    pub errors: u64,
    /// CPU clock ticks the bench process has used.
    pub bench_cpu_ticks: u64,
    /// CPU clock ticks the broker process (`--broker-pid`) has used, if known.
    pub broker_cpu_ticks: Option<u64>,
}

impl Counters {
    /// Reads all counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            sent_records: r(&self.sent_records),
            acked_records: r(&self.acked_records),
            acked_payload_bytes: r(&self.acked_payload_bytes),
            acked_batch_bytes: r(&self.acked_batch_bytes),
            consumed_records: r(&self.consumed_records),
            consumed_batch_bytes: r(&self.consumed_batch_bytes),
            errors: r(&self.errors),
            bench_cpu_ticks: 0,
            broker_cpu_ticks: None,
        }
    }
}

impl CounterSnapshot {
    /// Field-wise difference `self - earlier`.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            sent_records: self.sent_records - earlier.sent_records,
            acked_records: self.acked_records - earlier.acked_records,
            acked_payload_bytes: self.acked_payload_bytes - earlier.acked_payload_bytes,
            acked_batch_bytes: self.acked_batch_bytes - earlier.acked_batch_bytes,
            consumed_records: self.consumed_records - earlier.consumed_records,
            consumed_batch_bytes: self.consumed_batch_bytes - earlier.consumed_batch_bytes,
            errors: self.errors - earlier.errors,
            bench_cpu_ticks: self.bench_cpu_ticks.saturating_sub(earlier.bench_cpu_ticks),
            broker_cpu_ticks: match (self.broker_cpu_ticks, earlier.broker_cpu_ticks) {
                (Some(now), Some(then)) => Some(now.saturating_sub(then)),
                _ => None,
            },
        }
    }
}

/// Everything workers share with the collector.
#[derive(Default)]
pub struct Shared {
    /// Throughput counters.
    pub counters: Counters,
    recorders: Mutex<Vec<(LatencyKind, Recorder)>>,
}

impl Shared {
    /// Registers and returns a recorder for one worker thread.
    pub fn recorder(&self, kind: LatencyKind) -> Recorder {
        let r = Recorder::new();
        self.recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind, r.clone()));
        r
    }
}

/// One interval histogram of the .hlog.
pub struct IntervalHistogram {
    /// Start, relative to the run's start.
    pub start: Duration,
    /// Length of the interval.
    pub duration: Duration,
    /// Which latency.
    pub kind: LatencyKind,
    /// The values recorded in the interval (ns).
    pub histogram: Histogram<u64>,
}

/// The measured part of a run.
pub struct Measurement {
    /// Wall-clock start of the run.
    pub started_at: SystemTime,
    /// Length of the measured window (after the warm-up).
    pub measured: Duration,
    /// Counter deltas over the measured window.
    pub counters: CounterSnapshot,
    /// Produce latency over the measured window.
    pub produce: Histogram<u64>,
    /// End-to-end latency over the measured window.
    pub e2e: Histogram<u64>,
    /// Every interval, warm-up included (the .hlog shows the whole run).
    pub intervals: Vec<IntervalHistogram>,
    /// Whether the run ended before the warm-up did, so the whole run was measured.
    pub warmup_not_reached: bool,
}

/// The counters plus the CPU time of the bench and the broker.
fn snapshot(shared: &Shared, broker_pid: Option<u32>) -> CounterSnapshot {
    CounterSnapshot {
        bench_cpu_ticks: crate::cpu::process_cpu_ticks(None).unwrap_or(0),
        broker_cpu_ticks: broker_pid.and_then(|pid| crate::cpu::process_cpu_ticks(Some(pid))),
        ..shared.counters.snapshot()
    }
}

/// Drives the interval ticks.
pub struct Collector {
    shared: Arc<Shared>,
    started: Instant,
    started_at: SystemTime,
    warmup: Duration,
    last_tick: Instant,
    last_counters: CounterSnapshot,
    baseline: Option<(Instant, CounterSnapshot)>,
    broker_pid: Option<u32>,
    spare: Histogram<u64>,
    total_produce: Histogram<u64>,
    total_e2e: Histogram<u64>,
    intervals: Vec<IntervalHistogram>,
}

/// What the live progress line shows for one interval.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Seconds since the start.
    pub elapsed: Duration,
    /// Acked records per second in the interval.
    pub acked_per_s: f64,
    /// Acked batch MB/s (10^6 bytes) in the interval.
    pub acked_mb_per_s: f64,
    /// Consumed records per second.
    pub consumed_per_s: f64,
    /// Consumed MB/s.
    pub consumed_mb_per_s: f64,
    /// p99 of produce latency in the interval (ns), if any.
    pub produce_p99_ns: Option<u64>,
    /// p99 of e2e latency in the interval (ns), if any.
    pub e2e_p99_ns: Option<u64>,
    /// Whether the interval was part of the warm-up.
    pub warming_up: bool,
}

impl Collector {
    /// Starts the clock. A zero warm-up starts the measured window at once.
    pub fn new(shared: Arc<Shared>, warmup: Duration, broker_pid: Option<u32>) -> Self {
        let now = Instant::now();
        let counters = snapshot(&shared, broker_pid);
        Collector {
            shared,
            started: now,
            started_at: SystemTime::now(),
            warmup,
            last_tick: now,
            last_counters: counters,
            baseline: warmup.is_zero().then_some((now, counters)),
            broker_pid,
            spare: new_histogram(),
            total_produce: new_histogram(),
            total_e2e: new_histogram(),
            intervals: Vec::new(),
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Closes the interval ending now.
    pub fn tick(&mut self) -> Progress {
        let now = Instant::now();
        let counters = snapshot(&self.shared, self.broker_pid);
        let interval_start = self.last_tick.duration_since(self.started);
        let length = now.duration_since(self.last_tick);
        let warming_up = self.baseline.is_none();
        let mut merged = [
            (LatencyKind::Produce, new_histogram()),
            (LatencyKind::E2e, new_histogram()),
        ];
        let recorders = self
            .shared
            .recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (kind, recorder) in &recorders {
            self.spare.reset();
            recorder.take_into(&mut self.spare);
            let slot = if *kind == LatencyKind::Produce { 0 } else { 1 };
            merged[slot]
                .1
                .add(&self.spare)
                .unwrap_or_else(|e| unreachable!("same bounds: {e}"));
        }
        let delta = counters.since(&self.last_counters);
        let secs = length.as_secs_f64().max(1e-9);
        let p99 = |h: &Histogram<u64>| (!h.is_empty()).then(|| h.value_at_quantile(0.99));
        let progress = Progress {
            elapsed: now.duration_since(self.started),
            acked_per_s: delta.acked_records as f64 / secs,
            acked_mb_per_s: delta.acked_batch_bytes as f64 / secs / 1e6,
            consumed_per_s: delta.consumed_records as f64 / secs,
            consumed_mb_per_s: delta.consumed_batch_bytes as f64 / secs / 1e6,
            produce_p99_ns: p99(&merged[0].1),
            e2e_p99_ns: p99(&merged[1].1),
            warming_up,
        };
        for (kind, histogram) in merged {
            if !warming_up {
                let total = if kind == LatencyKind::Produce {
                    &mut self.total_produce
                } else {
                    &mut self.total_e2e
                };
                total
                    .add(&histogram)
                    .unwrap_or_else(|e| unreachable!("same bounds: {e}"));
            }
            if !histogram.is_empty() {
                self.intervals.push(IntervalHistogram {
                    start: interval_start,
                    duration: length,
                    kind,
                    histogram,
                });
            }
        }
        if warming_up && now.duration_since(self.started) >= self.warmup {
            self.baseline = Some((now, counters));
        }
        self.last_tick = now;
        self.last_counters = counters;
        progress
    }

    /// Closes the last interval and returns the measurement.
    pub fn finish(mut self) -> Measurement {
        let warmup_not_reached = self.baseline.is_none();
        if warmup_not_reached {
            // The run ended inside the warm-up: measure all of it rather than nothing.
            self.baseline = Some((self.started, CounterSnapshot::default()));
            for i in &self.intervals {
                let total = if i.kind == LatencyKind::Produce {
                    &mut self.total_produce
                } else {
                    &mut self.total_e2e
                };
                total
                    .add(&i.histogram)
                    .unwrap_or_else(|e| unreachable!("same bounds: {e}"));
            }
        }
        self.tick();
        let (since, base) = self
            .baseline
            .unwrap_or((self.started, CounterSnapshot::default()));
        Measurement {
            started_at: self.started_at,
            measured: self.last_tick.duration_since(since),
            counters: self.last_counters.since(&base),
            produce: self.total_produce,
            e2e: self.total_e2e,
            intervals: self.intervals,
            warmup_not_reached,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_records_subtract_the_spacing() {
        let shared = Arc::new(Shared::default());
        let r = shared.recorder(LatencyKind::Produce);
        r.record_spaced(10_000, 1_000, 5);
        r.record_spaced(500, 0, 3);
        let mut c = Collector::new(shared.clone(), Duration::ZERO, None);
        shared
            .counters
            .acked_records
            .fetch_add(8, Ordering::Relaxed);
        c.tick();
        let m = c.finish();
        assert_eq!(m.produce.len(), 8);
        assert!(m.produce.equivalent(m.produce.max(), 10_000));
        assert_eq!(m.produce.min(), 500);
        assert_eq!(m.counters.acked_records, 8);
        assert!(!m.warmup_not_reached);
    }

    #[test]
    fn warmup_intervals_are_excluded() {
        let shared = Arc::new(Shared::default());
        let r = shared.recorder(LatencyKind::E2e);
        let mut c = Collector::new(shared.clone(), Duration::from_millis(20), None);
        r.record_spaced(1_000_000, 0, 10);
        shared
            .counters
            .consumed_records
            .fetch_add(10, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(25));
        let p = c.tick();
        assert!(p.warming_up);
        r.record_spaced(2_000, 0, 4);
        shared
            .counters
            .consumed_records
            .fetch_add(4, Ordering::Relaxed);
        let m = c.finish();
        assert_eq!(m.e2e.len(), 4);
        assert_eq!(m.counters.consumed_records, 4);
        assert_eq!(m.intervals.len(), 2);
    }

    #[test]
    fn a_run_shorter_than_the_warmup_is_measured_whole() {
        let shared = Arc::new(Shared::default());
        let r = shared.recorder(LatencyKind::Produce);
        let c = Collector::new(shared.clone(), Duration::from_secs(60), None);
        r.record_spaced(7_000, 0, 2);
        let m = c.finish();
        assert!(m.warmup_not_reached);
        assert_eq!(m.produce.len(), 2);
    }
}
