//! Results of a run: the JSON document (`--json`), percentile summaries, and the text summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cli::{RunArgs, Workload};
use crate::error::{BenchError, Result};
use crate::machine::Machine;
use crate::stats::{CounterSnapshot, Measurement};

/// Version of the JSON layout; `compare` refuses other versions.
pub const RESULT_FORMAT: u32 = 1;
/// Percentile distribution resolution: HdrHistogram's `ticks per half distance`.
pub const DISTRIBUTION_TICKS_PER_HALF: u32 = 5;
/// The percentiles of the summary, as quantiles, with their column names.
pub const SUMMARY_QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

/// A whole run, as written by `--json` and read by `compare`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// [`RESULT_FORMAT`].
    pub format: u32,
    /// Label for comparisons.
    pub label: String,
    /// Which workload.
    pub workload: Workload,
    /// Start of the run, ms since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// The command-line parameters.
    pub parameters: RunArgs,
    /// Values derived from the parameters.
    pub derived: Derived,
    /// The machine.
    pub machine: Machine,
    /// The broker.
    pub broker: BrokerInfo,
    /// The numbers.
    pub results: Results,
}

/// Values the run derived from its parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Derived {
    /// Records per produced batch.
    pub records_per_batch: usize,
    /// Cores the bench threads were pinned to (empty: not pinned).
    pub cores: Vec<usize>,
    /// Partitions read or written.
    pub partitions: usize,
}

/// The broker side of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// The --bootstrap-server.
    pub bootstrap: String,
    /// node id → address, from Metadata.
    pub brokers: BTreeMap<i32, String>,
}

/// Measured numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Seconds measured (after the warm-up).
    pub measured_s: f64,
    /// The run ended inside the warm-up, so all of it was measured.
    pub warmup_not_reached: bool,
    /// Partition errors in responses.
    pub errors: u64,
    /// Producer throughput (acknowledged records).
    pub produce: Option<Throughput>,
    /// Consumer throughput.
    pub consume: Option<Throughput>,
    /// CPU seconds the bench used over the measured window.
    #[serde(default)]
    pub bench_cpu_s: f64,
    /// CPU seconds the broker (`--broker-pid`) used over the measured window.
    #[serde(default)]
    pub broker_cpu_s: Option<f64>,
    /// Produce request→ack latency.
    pub produce_latency: Option<LatencySummary>,
    /// End-to-end latency.
    pub e2e_latency: Option<LatencySummary>,
}

/// Throughput over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Records.
    pub records: u64,
    /// Records per second.
    pub records_per_s: f64,
    /// Record-batch bytes (what travels and what the broker stores).
    pub bytes: u64,
    /// Record-batch MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Key + value MB/s, for producers (what `kafka-producer-perf-test` reports).
    pub payload_mb_per_s: Option<f64>,
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Records measured.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Smallest.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// (percentile in %, latency in µs) pairs of the whole distribution, for plots.
    pub distribution: Vec<(f64, f64)>,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds; `None` when empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |quantile: f64| us(h.value_at_quantile(quantile));
        let mut distribution: Vec<(f64, f64)> = Vec::new();
        for v in h.iter_quantiles(DISTRIBUTION_TICKS_PER_HALF) {
            // Rounded so the JSON stays short and reads back exactly.
            let percentile = (v.quantile_iterated_to() * 100.0 * 1e6).round() / 1e6;
            let point = (percentile, us(v.value_iterated_to()));
            if distribution.last().is_none_or(|last| last.0 < point.0) {
                distribution.push(point);
            }
        }
        Some(LatencySummary {
            count: h.len(),
            mean_us: h.mean() / 1000.0,
            min_us: us(h.min()),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: us(h.max()),
            distribution,
        })
    }

    /// The summary columns in [`SUMMARY_QUANTILES`] order.
    pub fn columns(&self) -> [f64; 6] {
        [
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.p9999_us,
            self.max_us,
        ]
    }
}

/// Builds the results section from a measurement.
pub fn results(workload: Workload, m: &Measurement) -> Results {
    let secs = m.measured.as_secs_f64().max(1e-9);
    let c: &CounterSnapshot = &m.counters;
    let produce = workload.produces().then(|| Throughput {
        records: c.acked_records,
        records_per_s: c.acked_records as f64 / secs,
        bytes: c.acked_batch_bytes,
        mb_per_s: c.acked_batch_bytes as f64 / secs / 1e6,
        payload_mb_per_s: Some(c.acked_payload_bytes as f64 / secs / 1e6),
    });
    let consume = workload.consumes().then(|| Throughput {
        records: c.consumed_records,
        records_per_s: c.consumed_records as f64 / secs,
        bytes: c.consumed_batch_bytes,
        mb_per_s: c.consumed_batch_bytes as f64 / secs / 1e6,
        payload_mb_per_s: None,
    });
    Results {
        measured_s: secs,
        warmup_not_reached: m.warmup_not_reached,
        errors: c.errors,
        produce,
        consume,
        bench_cpu_s: c.bench_cpu_ticks as f64 / crate::cpu::ticks_per_second(),
        broker_cpu_s: c
            .broker_cpu_ticks
            .map(|t| t as f64 / crate::cpu::ticks_per_second()),
        produce_latency: LatencySummary::from_histogram(&m.produce),
        e2e_latency: LatencySummary::from_histogram(&m.e2e),
    }
}

/// Formats a latency in µs the way people read them (µs under 1 ms, else ms).
pub fn format_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Formats a count with thousands separators.
pub fn format_count(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The human summary printed at the end of a run.
pub fn summary_text(r: &RunResult) -> String {
    let mut s = String::new();
    let res = &r.results;
    let _ = writeln!(
        s,
        "ringbroker-bench {}: {:.1} s measured{}, {} partition(s), broker {}",
        format!("{:?}", r.workload).to_lowercase(),
        res.measured_s,
        if res.warmup_not_reached {
            " (ended inside the warm-up: all of it measured)"
        } else {
            ""
        },
        r.derived.partitions,
        r.broker.bootstrap
    );
    for (name, t) in [("produce", &res.produce), ("consume", &res.consume)] {
        if let Some(t) = t {
            let payload = t
                .payload_mb_per_s
                .map(|p| format!(" ({p:.1} MB/s payload)"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {name:<8} {:>14} records/s  {:>9.1} MB/s{payload}  ({} records)",
                format_count(t.records_per_s),
                t.mb_per_s,
                format_count(t.records as f64)
            );
        }
    }
    let share = |cpu_s: f64| cpu_s / res.measured_s.max(1e-9) * 100.0;
    let broker_cpu = res
        .broker_cpu_s
        .map(|b| format!(", broker {b:.2} s ({:.0}% of a core)", share(b)))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "  cpu      bench {:.2} s ({:.0}% of a core){broker_cpu}",
        res.bench_cpu_s,
        share(res.bench_cpu_s)
    );
    if let Some(load) = r.machine.load_average_1m {
        let cpu = r
            .machine
            .cpu_pressure_some_avg60
            .map(|p| format!(", CPU pressure {p:.0}%"))
            .unwrap_or_default();
        let io = r
            .machine
            .io_pressure_some_avg60
            .map(|p| format!(", IO pressure {p:.0}%"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  machine  {} cores, load average {load:.2}{cpu}{io}",
            r.machine.cores
        );
    }
    if res.errors > 0 {
        let _ = writeln!(s, "  errors   {} partition errors in responses", res.errors);
    }
    if res.produce_latency.is_none() && res.e2e_latency.is_none() {
        return s;
    }
    let _ = write!(s, "  {:<8}", "latency");
    for (name, _) in SUMMARY_QUANTILES {
        let _ = write!(s, " {name:>9}");
    }
    let _ = writeln!(s, " {:>12}", "count");
    for (name, l) in [("produce", &res.produce_latency), ("e2e", &res.e2e_latency)] {
        if let Some(l) = l {
            let _ = write!(s, "  {name:<8}");
            for v in l.columns() {
                let _ = write!(s, " {:>9}", format_us(v));
            }
            let _ = writeln!(s, " {:>12}", format_count(l.count as f64));
        }
    }
    s
}

/// Writes the JSON document.
pub fn write_json(path: &Path, r: &RunResult) -> Result<()> {
    let text = serde_json::to_string_pretty(r).map_err(|e| BenchError::Json {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

/// Reads a JSON document written by [`write_json`].
pub fn read_json(path: &Path) -> Result<RunResult> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
    let r: RunResult = serde_json::from_str(&text).map_err(|e| BenchError::Json {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if r.format != RESULT_FORMAT {
        return Err(BenchError::Json {
            path: path.display().to_string(),
            message: format!("result format {} is not {RESULT_FORMAT}", r.format),
        });
    }
    Ok(r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::stats::new_histogram;
    use clap::Parser;

    /// A plausible result for tests of the report, compare and plot code.
    pub(crate) fn sample(label: &str, scale: f64) -> RunResult {
        let Command::E2e(parameters) = Cli::parse_from(["ringbroker-bench", "e2e"]).command else {
            unreachable!("e2e parsed")
        };
        let mut h = new_histogram();
        for i in 1..=10_000u64 {
            h.record((i as f64 * 100.0 * scale) as u64)
                .expect("in range");
        }
        let lat = LatencySummary::from_histogram(&h);
        let t = Throughput {
            records: 1000,
            records_per_s: 1e6 / scale,
            bytes: 10,
            mb_per_s: 1000.0 / scale,
            payload_mb_per_s: Some(900.0 / scale),
        };
        RunResult {
            format: RESULT_FORMAT,
            label: label.into(),
            workload: Workload::E2e,
            started_at_unix_ms: 0,
            parameters,
            derived: Derived {
                records_per_batch: 60,
                cores: vec![1],
                partitions: 1,
            },
            machine: crate::machine::describe(),
            broker: BrokerInfo {
                bootstrap: "127.0.0.1:9092".into(),
                brokers: BTreeMap::new(),
            },
            results: Results {
                measured_s: 10.0,
                warmup_not_reached: false,
                errors: 0,
                produce: Some(t.clone()),
                consume: Some(t),
                bench_cpu_s: 1.0,
                broker_cpu_s: None,
                produce_latency: lat.clone(),
                e2e_latency: lat,
            },
        }
    }

    #[test]
    fn percentiles_of_a_uniform_histogram() {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).expect("in range");
        }
        let l = LatencySummary::from_histogram(&h).expect("not empty");
        assert_eq!(l.count, 1000);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "p50 {}", l.p50_us);
        assert!((l.p99_us - 990.0).abs() <= 1.0, "p99 {}", l.p99_us);
        assert!((l.max_us - 1000.0).abs() <= 1.0);
        assert!(l
            .distribution
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(l.distribution.last().expect("points").0, 100.0);
        assert!(LatencySummary::from_histogram(&new_histogram()).is_none());
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let r = sample("a", 1.0);
        let v = serde_json::to_value(&r).expect("serializes");
        for key in [
            "format",
            "label",
            "workload",
            "parameters",
            "machine",
            "broker",
            "results",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["workload"], "e2e");
        assert!(v["machine"]["kernel"].is_string());
        assert!(v["results"]["e2e_latency"]["p99_us"].is_number());
        assert!(v["parameters"]["record_size"].is_number());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        write_json(&path, &r).expect("writes");
        let back = read_json(&path).expect("reads");
        assert_eq!(back.results.e2e_latency, r.results.e2e_latency);
    }

    #[test]
    fn summary_mentions_throughput_and_percentiles() {
        let text = summary_text(&sample("a", 1.0));
        assert!(text.contains("records/s"));
        assert!(text.contains("p99.99"));
        assert!(text.contains("1,000,000"));
        assert_eq!(format_us(950.0), "950µs");
        assert_eq!(format_us(1500.0), "1.50ms");
        assert_eq!(format_count(1234567.0), "1,234,567");
    }
}
