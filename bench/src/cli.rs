//! Command-line interface: the workloads (`produce`, `consume`, `e2e`), their options, and `compare`.
//!
//! Option names follow the Kafka tools where one exists (`--bootstrap-server`, `--acks`, `--linger-ms`,
//! `--batch-size` in bytes like the producer's `batch.size`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// Default size of one record value in bytes.
pub const DEFAULT_RECORD_SIZE: usize = 1024;
/// Default producer batch size in bytes (Kafka's default is 16 KiB; larger batches are what
/// benchmarks of throughput use, and the bench states the value in every result).
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;
/// Largest batch we build: Kafka's default `message.max.bytes` is about 1 MiB.
pub const MAX_BATCH_BYTES: usize = 16 << 20;
/// Largest record value we generate.
pub const MAX_RECORD_SIZE: usize = 8 << 20;
/// Default requests in flight per connection (the Java producer's
/// `max.in.flight.requests.per.connection`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 5;
/// Upper bound of in-flight requests per connection: more buys nothing and hides broker stalls.
pub const MAX_IN_FLIGHT_LIMIT: usize = 1024;
/// Most producer or consumer threads one run may start.
pub const MAX_WORKERS: usize = 256;
/// Default Fetch `max_bytes` (whole response).
pub const DEFAULT_FETCH_MAX_BYTES: i32 = 64 << 20;
/// Default Fetch `partition_max_bytes`.
pub const DEFAULT_FETCH_PARTITION_MAX_BYTES: i32 = 16 << 20;
/// How long a run lasts when neither `--records` nor `--duration` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// ringbroker-bench: a pipelined Kafka load generator with HdrHistogram latency, for any
/// Kafka-compatible broker.
#[derive(Debug, Parser)]
#[command(name = "ringbroker-bench", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce as fast as possible (or at --rate); latency is request→ack.
    Produce(RunArgs),
    /// Catch-up read of the data already in the topic (run `produce` first).
    Consume(RunArgs),
    /// Produce and consume at once; latency is consume time minus the produce time in the record.
    E2e(RunArgs),
    /// Transactions back to back (issue 22): commits/s and read_committed end-to-end latency.
    Txn(TxnArgs),
    /// Compare result files written with --json: a side-by-side table with ratios, optionally a plot.
    Compare(CompareArgs),
}

/// The workload kind, as stored in the JSON result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Producers only.
    Produce,
    /// Consumers only, reading existing data.
    Consume,
    /// Producers and consumers at once.
    E2e,
}

impl Workload {
    /// Whether producer threads run.
    pub fn produces(self) -> bool {
        matches!(self, Workload::Produce | Workload::E2e)
    }

    /// Whether consumer threads run.
    pub fn consumes(self) -> bool {
        matches!(self, Workload::Consume | Workload::E2e)
    }
}

/// Options of the transactional workload.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct TxnArgs {
    /// host:port of a broker to bootstrap from.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Topic to use (created with --partitions when missing).
    #[arg(long, default_value = "ringbroker-bench-txn")]
    pub topic: String,
    /// Partitions of the topic; every transaction writes to all of them (P).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Records per transaction (N), spread evenly over the partitions.
    #[arg(long, default_value_t = 100)]
    pub txn_records: usize,
    /// Size of each record value in bytes (at least the 16-byte send-time stamp).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producer threads, each with its own transactional id, running transactions back to back.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Transactional id prefix (thread i uses PREFIX-i).
    #[arg(long, default_value = "ringbroker-bench-txn")]
    pub transactional_id: String,
    /// Measured time (after --warmup).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Unmeasured time at the start.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Pin threads to these cores (the consumer takes the first, producers the next, round-robin).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Request timeout (Produce timeout and socket read timeout base).
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: i32,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Name of the run in the summary and the JSON.
    #[arg(long)]
    pub label: Option<String>,
}

/// Compression codec of produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4 frame.
    Lz4,
    /// zstd.
    Zstd,
}

/// Options shared by the three workloads.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct RunArgs {
    /// host:port of a broker to bootstrap from.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Topic to use.
    #[arg(long, default_value = "ringbroker-bench")]
    pub topic: String,
    /// Create the topic with this many partitions (an existing topic is used as is).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor when creating the topic.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Size of each record value in bytes.
    #[arg(long, default_value_t = DEFAULT_RECORD_SIZE)]
    pub record_size: usize,
    /// Size of each record key in bytes (0: null key).
    #[arg(long, default_value_t = 0)]
    pub key_size: usize,
    /// Producer batch size in bytes (Kafka `batch.size`): records per batch = what fits.
    #[arg(long, default_value_t = DEFAULT_BATCH_BYTES)]
    pub batch_size: usize,
    /// With --rate: the longest a record waits for its batch to fill (Kafka `linger.ms`; fractions
    /// such as 0.2 are allowed, for latency runs).
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Produce acks: 0, 1 or all (-1).
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: i16,
    /// Compression codec of produced batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Records to produce (produce, e2e) or read (consume) in total, warm-up included.
    #[arg(long, conflicts_with = "duration")]
    pub records: Option<u64>,
    /// Measured run time after the warm-up, e.g. 30s, 500ms, 2m (default 10s; consume: until caught up).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up time excluded from the results (rounded up to whole seconds).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Fixed target rate in records/s over all producers; latency counts from the intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Producer threads (each with its own connections).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer threads (each with its own connections).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Requests in flight per producer connection.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Cores to pin bench threads to, e.g. 1,2 (threads take them round-robin).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Tuning profile (TOML) whose bench cores to use when --cores is not given.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Fetch max_bytes per request.
    #[arg(long, default_value_t = DEFAULT_FETCH_MAX_BYTES)]
    pub fetch_max_bytes: i32,
    /// Fetch partition_max_bytes.
    #[arg(long, default_value_t = DEFAULT_FETCH_PARTITION_MAX_BYTES)]
    pub fetch_partition_max_bytes: i32,
    /// Request timeout sent to the broker, and how long we wait for any response.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: i32,
    /// Write all results (parameters, machine, percentiles) to this JSON file.
    #[arg(long)]
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// Write HdrHistogram interval logs (.hlog, one interval per second) to this file.
    #[arg(long)]
    #[serde(skip)]
    pub hdr_log: Option<PathBuf>,
    /// Process id of a broker on this machine: its CPU time over the measured window is reported.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Label of this run in `compare` tables and plots (default: derived from the parameters).
    #[arg(long)]
    pub label: Option<String>,
    /// Connect with TLS, trusting the CAs of this PEM file (consume and admin calls only: the
    /// pipelined producer stays plaintext).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The name the broker's certificate must hold (default: the host of each address).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl RunArgs {
    /// Checks the options against each other and the limits; called before anything connects.
    pub fn validate(&self, workload: Workload) -> Result<()> {
        let bad = |m: String| Err(BenchError::InvalidArgument(m));
        if self.record_size > MAX_RECORD_SIZE {
            return bad(format!(
                "--record-size {} exceeds {MAX_RECORD_SIZE}",
                self.record_size
            ));
        }
        if self.key_size > MAX_RECORD_SIZE {
            return bad(format!(
                "--key-size {} exceeds {MAX_RECORD_SIZE}",
                self.key_size
            ));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_BYTES {
            return bad(format!("--batch-size must be 1..={MAX_BATCH_BYTES}"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT_LIMIT {
            return bad(format!("--max-in-flight must be 1..={MAX_IN_FLIGHT_LIMIT}"));
        }
        if workload.produces() && (self.producers == 0 || self.producers > MAX_WORKERS) {
            return bad(format!("--producers must be 1..={MAX_WORKERS}"));
        }
        if workload.consumes() && (self.consumers == 0 || self.consumers > MAX_WORKERS) {
            return bad(format!("--consumers must be 1..={MAX_WORKERS}"));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return bad(format!("--rate must be a positive number, got {rate}"));
            }
        }
        if !(self.linger_ms.is_finite() && self.linger_ms >= 0.0) {
            return bad(format!("--linger-ms must be >= 0, got {}", self.linger_ms));
        }
        if let Some(p) = self.partitions {
            if p <= 0 {
                return bad(format!("--partitions must be positive, got {p}"));
            }
        }
        if self.records == Some(0) {
            return bad("--records must be positive".into());
        }
        if workload == Workload::E2e && self.acks == 0 {
            return bad("e2e needs acks 1 or all to know what was written".into());
        }
        if self.fetch_max_bytes <= 0 || self.fetch_partition_max_bytes <= 0 {
            return bad("fetch sizes must be positive".into());
        }
        Ok(())
    }

    /// How long the measured part runs when bounded by time. A catch-up read without a bound ends
    /// when it reaches the log end the run started with.
    pub fn measured_duration(&self, workload: Workload) -> Option<Duration> {
        match (self.records, self.duration) {
            (Some(_), _) => None,
            (None, Some(d)) => Some(d),
            (None, None) if workload == Workload::Consume => None,
            (None, None) => Some(DEFAULT_DURATION),
        }
    }

    /// The label shown in comparisons.
    pub fn display_label(&self, workload: Workload) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let mut s = format!("{workload:?} {}B", self.record_size).to_lowercase();
        if let Some(rate) = self.rate {
            s.push_str(&format!(" @{rate:.0}/s"));
        }
        s
    }
}

/// Options of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result files written by --json; the first is the baseline of the ratios.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Draw latency percentile distributions and throughput bars to FILE.svg (or .png via rsvg-convert).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Draw latency against offered load of the runs made with --rate, one series per label prefix
    /// before `@` (e.g. `kafka @40000`, `kafka @80000`), to FILE.svg (or .png).
    #[arg(long)]
    pub sweep_plot: Option<PathBuf>,
}

/// Parses `0`, `1`, `-1` or `all`.
pub fn parse_acks(s: &str) -> std::result::Result<i16, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" => Ok(0),
        "1" => Ok(1),
        "-1" | "all" => Ok(-1),
        other => Err(format!("acks must be 0, 1 or all, got {other:?}")),
    }
}

/// Parses a duration such as `30s`, `500ms`, `2m`, `1.5s`, `250us`; a bare number means seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("valid command line")
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn produce_options_parse() {
        let cli = parse(&[
            "ringbroker-bench",
            "produce",
            "--bootstrap-server",
            "localhost:9999",
            "--partitions",
            "4",
            "--record-size",
            "100",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--duration",
            "20s",
            "--warmup",
            "2s",
            "--rate",
            "1000",
            "--cores",
            "1,2",
            "--producers",
            "2",
        ]);
        let Command::Produce(args) = cli.command else {
            panic!("expected produce");
        };
        assert_eq!(args.bootstrap_server, "localhost:9999");
        assert_eq!(args.partitions, Some(4));
        assert_eq!(args.acks, -1);
        assert_eq!(args.compression, Compression::Zstd);
        assert_eq!(args.duration, Some(Duration::from_secs(20)));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.rate, Some(1000.0));
        assert_eq!(args.cores, vec![1, 2]);
        assert_eq!(args.producers, 2);
        assert_eq!(args.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        args.validate(Workload::Produce).expect("valid");
    }

    #[test]
    fn records_and_duration_conflict() {
        let r = Cli::try_parse_from([
            "ringbroker-bench",
            "produce",
            "--records",
            "10",
            "--duration",
            "1s",
        ]);
        assert!(r.is_err());
    }

    #[test]
    fn validation_rejects_impossible_values() {
        let Command::E2e(mut args) = parse(&["ringbroker-bench", "e2e", "--acks", "0"]).command
        else {
            panic!("expected e2e");
        };
        assert!(args.validate(Workload::E2e).is_err());
        args.acks = 1;
        args.validate(Workload::E2e).expect("valid");
        args.max_in_flight = 0;
        assert!(args.validate(Workload::E2e).is_err());
    }

    #[test]
    fn default_run_is_time_bounded() {
        let Command::Consume(args) = parse(&["ringbroker-bench", "consume"]).command else {
            panic!("expected consume");
        };
        assert_eq!(args.measured_duration(Workload::Consume), None);
        assert_eq!(
            args.measured_duration(Workload::E2e),
            Some(DEFAULT_DURATION)
        );
        let Command::Consume(args) =
            parse(&["ringbroker-bench", "consume", "--records", "5"]).command
        else {
            panic!("expected consume");
        };
        assert_eq!(args.measured_duration(Workload::Produce), None);
    }

    #[test]
    fn compare_needs_files() {
        assert!(Cli::try_parse_from(["ringbroker-bench", "compare"]).is_err());
        let cli = parse(&[
            "ringbroker-bench",
            "compare",
            "a.json",
            "b.json",
            "--plot",
            "x.svg",
            "--sweep-plot",
            "s.png",
        ]);
        let Command::Compare(c) = cli.command else {
            panic!("expected compare");
        };
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.plot, Some(PathBuf::from("x.svg")));
        assert_eq!(c.sweep_plot, Some(PathBuf::from("s.png")));
    }
}
