//! The process-wide view over every shard's metrics: created before the shards start (one
//! `Arc<ShardMetrics>` per shard), read by the HTTP endpoint, encoded with `prometheus-client`
//! in the Prometheus text format. Consumer lag is computed here, at scrape time, by joining the
//! committed offsets published by the coordinators' shards with the high watermarks published by
//! the partitions' shards: no shard ever waits for another or for a scrape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::histogram::HistogramSnapshot;
use super::shard::{slot_error_code, Published, ShardMetrics, Stage, API_SLOTS, ERROR_CODE_SLOTS};
use crate::storage::LogHealth;

/// Prefix of every exported metric name.
pub const METRIC_PREFIX: &str = "ringbroker";

/// All shards' metrics plus readiness.
#[derive(Debug)]
pub struct MetricsRegistry {
    shards: Vec<Arc<ShardMetrics>>,
    ready_shards: AtomicUsize,
    /// Set at the start of shutdown: `/ready` and `ringbroker_ready` turn false before listeners
    /// close, so load balancers drain first.
    stopping: AtomicBool,
    started_unix_ms: AtomicU64,
}

type Labels = Vec<(&'static str, String)>;

impl MetricsRegistry {
    pub fn new(shard_count: usize) -> Arc<MetricsRegistry> {
        assert!(shard_count >= 1);
        // Metrics are on: calibrate the hooks' clock before any request needs it.
        super::hooks::calibrate_clock();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Arc::new(MetricsRegistry {
            shards: (0..shard_count)
                .map(|id| Arc::new(ShardMetrics::new(id)))
                .collect(),
            ready_shards: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            started_unix_ms: AtomicU64::new(started),
        })
    }

    /// The metrics of shard `id` (the shard keeps this Arc and writes only through it).
    pub fn shard(&self, id: usize) -> Option<Arc<ShardMetrics>> {
        self.shards.get(id).cloned()
    }

    pub fn shards(&self) -> &[Arc<ShardMetrics>] {
        &self.shards
    }

    /// A shard finished recovery and serves its listener.
    pub fn mark_ready(&self) {
        let ready = self.ready_shards.fetch_add(1, Ordering::SeqCst) + 1;
        debug_assert!(ready <= self.shards.len());
    }

    /// Shards that finished recovery and serve.
    pub fn ready_shards(&self) -> usize {
        self.ready_shards.load(Ordering::SeqCst)
    }

    /// The broker is shutting down: not ready any more, whatever the shards say.
    pub fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Every shard recovered and serving, and no shutdown started.
    pub fn is_ready(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst)
            && self.ready_shards.load(Ordering::SeqCst) >= self.shards.len()
    }

    /// The whole scrape in the Prometheus text format (version 0.0.4).
    pub fn encode_text(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut out = String::with_capacity(64 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// The collector that encodes a registry on each scrape.
#[derive(Debug)]
struct Scrape(Arc<MetricsRegistry>);

fn api_name(slot: usize) -> String {
    i16::try_from(slot)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| format!("api_{slot}"), |api| format!("{api:?}"))
}

fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| format!("code_{code}"), |e| format!("{e:?}"))
}

fn name(metric: &str) -> String {
    format!("{METRIC_PREFIX}_{metric}")
}

/// Writes one counter family: `values` are (labels, value) rows.
fn counter_family<V: EncodeCounterValue + Copy>(
    encoder: &mut DescriptorEncoder,
    metric: &str,
    help: &str,
    rows: &[(Labels, V)],
) -> Result<(), std::fmt::Error> {
    let name = name(metric);
    let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge_family<V: EncodeGaugeValue + Copy>(
    encoder: &mut DescriptorEncoder,
    metric: &str,
    help: &str,
    rows: &[(Labels, V)],
) -> Result<(), std::fmt::Error> {
    let name = name(metric);
    let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram_family(
    encoder: &mut DescriptorEncoder,
    metric: &str,
    help: &str,
    rows: &[(Labels, HistogramSnapshot)],
) -> Result<(), std::fmt::Error> {
    let name = name(metric);
    let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        family
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
    }
    Ok(())
}

fn shard_label(m: &ShardMetrics) -> Labels {
    vec![("shard", m.shard.to_string())]
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = self.0.shards();
        encode_throughput(&mut encoder, shards)?;
        encode_requests(&mut encoder, shards)?;
        encode_stages(&mut encoder, shards)?;
        encode_connections(&mut encoder, shards)?;
        encode_transactions(&mut encoder, shards)?;
        encode_io(&mut encoder, shards)?;
        encode_partitions_and_lag(&mut encoder, shards)?;
        gauge_family(
            &mut encoder,
            "ready",
            "1 when every shard has recovered its partitions and serves.",
            &[(Vec::new(), i64::from(self.0.is_ready()))],
        )?;
        gauge_family(
            &mut encoder,
            "start_time_seconds",
            "Unix time the broker started.",
            &[(
                Vec::new(),
                self.0.started_unix_ms.load(Ordering::Relaxed) as f64 / 1e3,
            )],
        )
    }
}

fn per_shard(
    shards: &[Arc<ShardMetrics>],
    read: impl Fn(&ShardMetrics) -> u64,
) -> Vec<(Labels, u64)> {
    shards.iter().map(|m| (shard_label(m), read(m))).collect()
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn encode_throughput(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let c = |f: fn(&ShardMetrics) -> &AtomicU64| per_shard(shards, move |m| load(f(m)));
    counter_family(
        e,
        "produce_bytes_in",
        "Record batch bytes appended by Produce (counted on the partition's shard).",
        &c(|m| &m.counters.produce_bytes_in),
    )?;
    counter_family(
        e,
        "produce_records_in",
        "Records appended by Produce.",
        &c(|m| &m.counters.produce_records_in),
    )?;
    counter_family(
        e,
        "fetch_bytes_out",
        "Record batch bytes returned by Fetch (counted on the connection's shard).",
        &c(|m| &m.counters.fetch_bytes_out),
    )?;
    counter_family(
        e,
        "fetch_records_out",
        "Records returned by Fetch from memory (tail cache); sendfile ranges count in bytes only.",
        &c(|m| &m.counters.fetch_records_out),
    )?;
    let mut sent = Vec::new();
    for m in shards {
        for (how, value) in [
            ("copy", load(&m.counters.bytes_sent_copied)),
            ("sendfile", load(&m.counters.bytes_sent_sendfile)),
        ] {
            sent.push((
                vec![("shard", m.shard.to_string()), ("method", how.to_string())],
                value,
            ));
        }
    }
    counter_family(
        e,
        "response_bytes_sent",
        "Response bytes written to clients, by method: copied from memory, or from segment files \
         (method=sendfile: by sendfile when the page cache holds the range, else read through io_uring and sent).",
        &sent,
    )
}

fn encode_requests(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    let mut latency = Vec::new();
    for m in shards {
        for slot in 0..API_SLOTS {
            let count = m.requests_of(slot);
            if count == 0 {
                continue;
            }
            let api = api_name(slot);
            let labels = vec![("shard", m.shard.to_string()), ("api", api.clone())];
            requests.push((labels.clone(), count));
            latency.push((labels, m.latency_of(slot).snapshot()));
            for error_slot in 0..ERROR_CODE_SLOTS {
                let n = m.errors_of(slot, error_slot);
                if n > 0 {
                    let code = slot_error_code(error_slot);
                    errors.push((
                        vec![
                            ("shard", m.shard.to_string()),
                            ("api", api.clone()),
                            ("error_code", code.to_string()),
                            ("error", error_name(code)),
                        ],
                        n,
                    ));
                }
            }
        }
    }
    counter_family(e, "requests", "Requests received, by api.", &requests)?;
    counter_family(e, "request_errors", "Error codes answered, by api and code (per partition for Produce/Fetch; -1 = connection closed on a bad request).", &errors)?;
    histogram_family(
        e,
        "request_latency_seconds",
        "Time from a request's frame being read to its response written, by api.",
        &latency,
    )
}

fn encode_stages(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let mut rows = Vec::new();
    for m in shards {
        for stage in Stage::ALL {
            let h = m.stage_histogram(stage);
            if h.count() == 0 {
                continue;
            }
            let (api, step) = stage.labels();
            rows.push((
                vec![
                    ("shard", m.shard.to_string()),
                    ("api", api.to_string()),
                    ("stage", step.to_string()),
                ],
                h.snapshot(),
            ));
        }
    }
    histogram_family(e, "stage_latency_seconds", "Latency of each step of the produce and fetch paths (queue, hop, append/read, wait, reply).", &rows)
}

/// The transaction coordinators' outcomes and open transactions.
fn encode_transactions(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let ongoing: Vec<(Labels, i64)> = shards
        .iter()
        .map(|m| {
            let open = load(&m.counters.transactions_ongoing);
            (shard_label(m), i64::try_from(open).unwrap_or(i64::MAX))
        })
        .collect();
    gauge_family(
        e,
        "transactions_ongoing",
        "Transactions open on the shard's transaction coordinator.",
        &ongoing,
    )?;
    counter_family(
        e,
        "transactions_committed",
        "Transactions committed (EndTxn commit).",
        &per_shard(shards, |m| load(&m.counters.transactions_committed)),
    )?;
    counter_family(
        e,
        "transactions_aborted",
        "Transactions aborted by their producer (EndTxn abort).",
        &per_shard(shards, |m| load(&m.counters.transactions_aborted)),
    )?;
    counter_family(
        e,
        "transactions_timed_out",
        "Transactions aborted by the coordinator: past transaction.timeout.ms, or their producer fenced by a new one.",
        &per_shard(shards, |m| load(&m.counters.transactions_timed_out)),
    )
}

fn encode_connections(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let open: Vec<(Labels, i64)> = shards
        .iter()
        .map(|m| (shard_label(m), load(&m.connections_open) as i64))
        .collect();
    gauge_family(e, "connections_open", "Open client connections.", &open)?;
    counter_family(
        e,
        "connections_accepted",
        "Client connections accepted.",
        &per_shard(shards, |m| load(&m.counters.connections_accepted)),
    )?;
    counter_family(
        e,
        "connections_refused",
        "Client connections refused at max_connections.",
        &per_shard(shards, |m| load(&m.counters.connections_refused)),
    )?;
    counter_family(
        e,
        "tls_handshake_failures",
        "TLS handshakes that failed on SSL and SASL_SSL listeners.",
        &per_shard(shards, |m| load(&m.counters.tls_handshake_failures)),
    )?;
    counter_family(
        e,
        "sasl_authentication_failures",
        "SASL exchanges refused (wrong password, unknown user or mechanism, bad token, request before authentication).",
        &per_shard(shards, |m| load(&m.counters.sasl_authentication_failures)),
    )?;
    counter_family(
        e,
        "sasl_reauthentications",
        "Successful SASL re-authentications of open connections (KIP-368, connections.max.reauth.ms).",
        &per_shard(shards, |m| load(&m.counters.sasl_reauthentications)),
    )?;
    counter_family(
        e,
        "sasl_expired_sessions_closed",
        "Connections closed because their SASL session ended without a re-authentication (connections.max.reauth.ms).",
        &per_shard(shards, |m| load(&m.counters.sasl_expired_sessions_closed)),
    )?;
    counter_family(
        e,
        "authorization_denied",
        "Operations the ACL authorizer refused (each topic, group or cluster check of a request).",
        &per_shard(shards, |m| load(&m.counters.authorization_denied)),
    )?;
    encode_read_pauses(e, shards)?;
    encode_replication_counters(e, shards)
}

fn encode_replication_counters(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    counter_family(
        e,
        "replication_bytes_in",
        "Bytes followers on this broker appended from their leaders.",
        &per_shard(shards, |m| load(&m.counters.replication_bytes_in)),
    )?;
    counter_family(
        e,
        "replication_bytes_out",
        "Bytes leaders on this broker read for followers' fetches.",
        &per_shard(shards, |m| load(&m.counters.replication_bytes_out)),
    )?;
    counter_family(
        e,
        "isr_shrinks",
        "Followers that left the ISR of a partition this broker leads (Kafka's IsrShrinksPerSec).",
        &per_shard(shards, |m| load(&m.counters.isr_shrinks)),
    )?;
    counter_family(
        e,
        "isr_expands",
        "Followers that joined the ISR of a partition this broker leads (Kafka's IsrExpandsPerSec).",
        &per_shard(shards, |m| load(&m.counters.isr_expands)),
    )?;
    counter_family(
        e,
        "leader_elections",
        "Partitions this broker started leading.",
        &per_shard(shards, |m| load(&m.counters.leaderships_taken)),
    )
}

/// Connections that stopped reading their socket at `max_in_flight_bytes_per_connection`.
fn encode_read_pauses(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let paused_now: Vec<(Labels, i64)> = shards
        .iter()
        .map(|m| {
            // Ended first: both only grow, so the difference read this way is never negative.
            let ended = load(&m.counters.connection_read_pauses_ended);
            let started = load(&m.counters.connection_read_pauses);
            (shard_label(m), started.saturating_sub(ended) as i64)
        })
        .collect();
    gauge_family(
        e,
        "connections_read_paused",
        "Connections not reading their socket right now: their requests in flight reached \
         max_in_flight_bytes_per_connection.",
        &paused_now,
    )?;
    counter_family(
        e,
        "connection_read_paused",
        "Times a connection stopped reading its socket at max_in_flight_bytes_per_connection.",
        &per_shard(shards, |m| load(&m.counters.connection_read_pauses)),
    )?;
    let paused_seconds: Vec<(Labels, f64)> = shards
        .iter()
        .map(|m| {
            let us = load(&m.counters.connection_read_paused_us);
            (shard_label(m), us as f64 / 1e6)
        })
        .collect();
    counter_family(
        e,
        "connection_read_paused_seconds",
        "Seconds connections spent not reading their socket (ended pauses).",
        &paused_seconds,
    )
}

fn encode_io(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let io = |f: fn(&ShardMetrics) -> &AtomicU64| per_shard(shards, move |m| load(f(m)));
    counter_family(
        e,
        "io_file_reads",
        "File reads through the executor's io_uring rings (glommio IoStats).",
        &io(|m| &m.io.file_reads),
    )?;
    counter_family(
        e,
        "io_file_read_bytes",
        "Bytes read through the rings.",
        &io(|m| &m.io.file_bytes_read),
    )?;
    counter_family(
        e,
        "io_file_buffered_reads",
        "Buffered file reads.",
        &io(|m| &m.io.file_buffered_reads),
    )?;
    counter_family(
        e,
        "io_file_buffered_read_bytes",
        "Buffered bytes read.",
        &io(|m| &m.io.file_buffered_bytes_read),
    )?;
    counter_family(
        e,
        "io_file_writes",
        "DMA file writes through the rings.",
        &io(|m| &m.io.file_writes),
    )?;
    counter_family(
        e,
        "io_file_write_bytes",
        "Bytes written by DMA writes.",
        &io(|m| &m.io.file_bytes_written),
    )?;
    counter_family(
        e,
        "io_file_buffered_writes",
        "Buffered file writes.",
        &io(|m| &m.io.file_buffered_writes),
    )?;
    counter_family(
        e,
        "io_file_buffered_write_bytes",
        "Buffered bytes written.",
        &io(|m| &m.io.file_buffered_bytes_written),
    )?;
    counter_family(
        e,
        "io_files_opened",
        "Files opened by the executor.",
        &io(|m| &m.io.files_opened),
    )?;
    counter_family(
        e,
        "io_files_closed",
        "Files closed by the executor.",
        &io(|m| &m.io.files_closed),
    )?;
    let mut quantiles = Vec::new();
    for m in shards {
        for (q, bits) in [
            ("0.5", &m.io.io_latency_us_p50_bits),
            ("0.99", &m.io.io_latency_us_p99_bits),
        ] {
            quantiles.push((
                vec![("shard", m.shard.to_string()), ("quantile", q.to_string())],
                f64::from_bits(load(bits)) / 1e6,
            ));
        }
    }
    gauge_family(
        e,
        "io_latency_seconds",
        "File read latency quantiles (io_uring submission to completion, glommio IoStats) over the last second; NaN without reads. Writes are in the produce append stage.",
        &quantiles,
    )
}

fn encode_partitions_and_lag(
    e: &mut DescriptorEncoder,
    shards: &[Arc<ShardMetrics>],
) -> Result<(), std::fmt::Error> {
    let published: Vec<_> = shards.iter().map(|m| (m.shard, m.published())).collect();
    let mut high_watermarks: HashMap<(&str, i32), i64> = HashMap::new();
    let mut start = Vec::new();
    let mut hw = Vec::new();
    let mut lso_lag = Vec::new();
    let mut end = Vec::new();
    let mut size = Vec::new();
    for (shard, p) in &published {
        for s in &p.partitions {
            high_watermarks.insert((s.topic.as_str(), s.partition), s.high_watermark);
            let labels = vec![
                ("shard", shard.to_string()),
                ("topic", s.topic.clone()),
                ("partition", s.partition.to_string()),
            ];
            start.push((labels.clone(), s.log_start_offset));
            hw.push((labels.clone(), s.high_watermark));
            lso_lag.push((
                labels.clone(),
                (s.high_watermark - s.last_stable_offset).max(0),
            ));
            end.push((labels.clone(), s.log_end_offset));
            size.push((labels, i64::try_from(s.size_bytes).unwrap_or(i64::MAX)));
        }
    }
    gauge_family(
        e,
        "partition_log_start_offset",
        "First offset of the partition's log.",
        &start,
    )?;
    gauge_family(
        e,
        "partition_high_watermark",
        "One past the last readable offset.",
        &hw,
    )?;
    gauge_family(
        e,
        "partition_last_stable_offset_lag",
        "High watermark minus last stable offset: records read_committed consumers cannot read yet because a transaction over them is still open (0 without open transactions).",
        &lso_lag,
    )?;
    gauge_family(
        e,
        "partition_log_end_offset",
        "Next offset to assign.",
        &end,
    )?;
    gauge_family(
        e,
        "partition_size_bytes",
        "Bytes of data in the partition's segments.",
        &size,
    )?;
    encode_partition_health(e, &published)?;
    encode_replication(e, &published)?;
    let mut committed = Vec::new();
    let mut lag = Vec::new();
    for (_, p) in &published {
        for g in &p.groups {
            for (topic, partition, offset) in &g.offsets {
                let labels = vec![
                    ("group", g.group.clone()),
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ];
                committed.push((labels.clone(), *offset));
                if let Some(end) = high_watermarks.get(&(topic.as_str(), *partition)) {
                    // Same definition as `kafka-consumer-groups.sh`: latest offset − committed.
                    lag.push((labels, (end - offset).max(0)));
                }
            }
        }
    }
    gauge_family(
        e,
        "consumer_group_committed_offset",
        "Committed offset per group and partition.",
        &committed,
    )?;
    gauge_family(
        e,
        "consumer_group_lag",
        "High watermark minus committed offset per group and partition.",
        &lag,
    )
}

/// Replicated partitions this broker leads: under-replicated ones per shard (always exported, so an
/// alert on `> 0` sees zeroes too: Kafka's UnderReplicatedPartitions), and each one's ISR size and
/// largest follower lag.
fn encode_replication(
    e: &mut DescriptorEncoder,
    published: &[(usize, Published)],
) -> Result<(), std::fmt::Error> {
    let mut under = Vec::new();
    let mut isr = Vec::new();
    let mut lag = Vec::new();
    for (shard, p) in published {
        let mut count = 0i64;
        for s in &p.partitions {
            let Some(r) = s.replication else {
                continue;
            };
            if r.in_sync < r.replicas {
                count += 1;
            }
            let labels = vec![
                ("shard", shard.to_string()),
                ("topic", s.topic.clone()),
                ("partition", s.partition.to_string()),
            ];
            isr.push((labels.clone(), i64::from(r.in_sync)));
            lag.push((labels, r.max_follower_lag));
        }
        under.push((vec![("shard", shard.to_string())], count));
    }
    gauge_family(
        e,
        "under_replicated_partitions",
        "Partitions this broker leads whose ISR is smaller than their replica set.",
        &under,
    )?;
    gauge_family(
        e,
        "partition_in_sync_replicas",
        "ISR size of each replicated partition this broker leads.",
        &isr,
    )?;
    gauge_family(
        e,
        "partition_max_follower_lag_records",
        "Largest distance in records of a follower's log end to the leader's, per partition it leads.",
        &lag,
    )
}

/// Partition logs that refuse appends: a count per shard and state, always exported so that an
/// alert on `> 0` sees zeroes too (Kafka's `OfflinePartitionsCount`), and a series per offline
/// partition naming it.
fn encode_partition_health(
    e: &mut DescriptorEncoder,
    published: &[(usize, Published)],
) -> Result<(), std::fmt::Error> {
    const OFFLINE: [(LogHealth, &str); 2] = [
        (LogHealth::Suspended, "suspended"),
        (LogHealth::Fenced, "fenced"),
    ];
    let mut counts = Vec::new();
    let mut offline = Vec::new();
    for (shard, p) in published {
        for (health, state) in OFFLINE {
            let of_state = p.partitions.iter().filter(|s| s.health == health);
            for s in of_state.clone() {
                let labels = vec![
                    ("shard", shard.to_string()),
                    ("topic", s.topic.clone()),
                    ("partition", s.partition.to_string()),
                    ("state", state.to_string()),
                ];
                offline.push((labels, 1i64));
            }
            let labels = vec![("shard", shard.to_string()), ("state", state.to_string())];
            counts.push((labels, of_state.count() as i64));
        }
    }
    gauge_family(
        e,
        "partition_logs_offline",
        "Partition logs refusing appends: suspended (disk full, retried) or fenced (write error, \
         until a restart).",
        &counts,
    )?;
    gauge_family(
        e,
        "partition_log_offline",
        "1 for each partition log refusing appends, by state (absent while it takes them).",
        &offline,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::shard::{GroupSample, PartitionSample, Published};

    fn sample_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn scrape_reports_recorded_events() {
        let registry = MetricsRegistry::new(2);
        let s0 = registry.shard(0).unwrap();
        let s1 = registry.shard(1).unwrap();
        ShardMetrics::add(&s0.counters.produce_bytes_in, 1000);
        ShardMetrics::add(&s0.counters.produce_records_in, 10);
        s0.request(0);
        s0.request(0);
        s0.request_latency(0, Duration::from_micros(300));
        s0.error(0, 3);
        s1.stage(Stage::ProduceAppend, Duration::from_micros(50));
        let text = registry.encode_text().unwrap();
        assert_eq!(
            sample_line(&text, "ringbroker_produce_bytes_in_total{shard=\"0\"}"),
            Some("1000")
        );
        assert_eq!(
            sample_line(&text, "ringbroker_produce_records_in_total{shard=\"0\"}"),
            Some("10")
        );
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_requests_total{shard=\"0\",api=\"Produce\"}"
            ),
            Some("2")
        );
        assert!(text.contains(
            "ringbroker_request_errors_total{shard=\"0\",api=\"Produce\",error_code=\"3\",error=\"UnknownTopicOrPartition\"} 1"
        ));
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_request_latency_seconds_count{shard=\"0\",api=\"Produce\"}"
            ),
            Some("1")
        );
        assert_eq!(sample_line(&text, "ringbroker_request_latency_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"+Inf\"}"), Some("1"));
        assert!(text.contains("# TYPE ringbroker_request_latency_seconds histogram"));
        assert_eq!(sample_line(&text, "ringbroker_stage_latency_seconds_count{shard=\"1\",api=\"Produce\",stage=\"append\"}"), Some("1"));
        assert_eq!(sample_line(&text, "ringbroker_ready "), Some("0"));
        registry.mark_ready();
        registry.mark_ready();
        assert!(registry.is_ready());
        registry.mark_stopping();
        assert!(!registry.is_ready());
        let text = registry.encode_text().unwrap();
        assert_eq!(sample_line(&text, "ringbroker_ready "), Some("0"));
    }

    #[test]
    fn lag_joins_commits_with_high_watermarks_across_shards() {
        let registry = MetricsRegistry::new(2);
        let partition = |p: i32, hw: i64| PartitionSample {
            topic: "orders".into(),
            partition: p,
            log_start_offset: 0,
            high_watermark: hw,
            last_stable_offset: hw,
            log_end_offset: hw,
            size_bytes: 4096,
            health: LogHealth::Online,
            replication: None,
        };
        assert!(registry.shard(0).unwrap().publish(Published {
            partitions: vec![partition(0, 100)],
            groups: vec![GroupSample {
                group: "billing".into(),
                offsets: vec![("orders".into(), 0, 90), ("orders".into(), 1, 7)],
            }],
        }));
        assert!(registry.shard(1).unwrap().publish(Published {
            partitions: vec![partition(1, 7)],
            groups: Vec::new(),
        }));
        let text = registry.encode_text().unwrap();
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_consumer_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"}"
            ),
            Some("10")
        );
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_consumer_group_lag{group=\"billing\",topic=\"orders\",partition=\"1\"}"
            ),
            Some("0")
        );
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_partition_size_bytes{shard=\"1\",topic=\"orders\",partition=\"1\"}"
            ),
            Some("4096")
        );
    }

    #[test]
    fn last_stable_offset_lag_is_the_open_transactions_span() {
        let registry = MetricsRegistry::new(1);
        let partition = |p: i32, lso: i64| PartitionSample {
            topic: "payments".into(),
            partition: p,
            log_start_offset: 0,
            high_watermark: 100,
            last_stable_offset: lso,
            log_end_offset: 100,
            size_bytes: 0,
            health: LogHealth::Online,
            replication: None,
        };
        assert!(registry.shard(0).unwrap().publish(Published {
            partitions: vec![partition(0, 60), partition(1, 100)],
            groups: Vec::new(),
        }));
        let text = registry.encode_text().unwrap();
        let line = |p: &str| {
            sample_line(
                &text,
                &format!("ringbroker_partition_last_stable_offset_lag{{shard=\"0\",topic=\"payments\",partition=\"{p}\"}}"),
            )
            .map(str::to_owned)
        };
        assert_eq!(
            line("0").as_deref(),
            Some("40"),
            "a transaction open since offset 60"
        );
        assert_eq!(line("1").as_deref(), Some("0"), "nothing open");
    }

    #[test]
    fn offline_partition_logs_are_counted_per_shard_and_state() {
        let registry = MetricsRegistry::new(2);
        let partition = |p: i32, health: LogHealth| PartitionSample {
            topic: "orders".into(),
            partition: p,
            log_start_offset: 0,
            high_watermark: 0,
            last_stable_offset: 0,
            log_end_offset: 0,
            size_bytes: 0,
            health,
            replication: None,
        };
        let partitions = vec![
            partition(0, LogHealth::Online),
            partition(1, LogHealth::Suspended),
            partition(2, LogHealth::Fenced),
            partition(3, LogHealth::Suspended),
        ];
        assert!(registry.shard(0).unwrap().publish(Published {
            partitions,
            groups: Vec::new(),
        }));
        let text = registry.encode_text().unwrap();
        let count = |shard: &str, state: &str| {
            let series =
                format!("ringbroker_partition_logs_offline{{shard=\"{shard}\",state=\"{state}\"}}");
            sample_line(&text, &series).map(str::to_string)
        };
        assert_eq!(count("0", "suspended").as_deref(), Some("2"));
        assert_eq!(count("0", "fenced").as_deref(), Some("1"));
        assert_eq!(count("1", "suspended").as_deref(), Some("0"), "{text}");
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_partition_log_offline{shard=\"0\",topic=\"orders\",partition=\"2\",state=\"fenced\"}"
            ),
            Some("1")
        );
        assert!(
            !text.contains("partition=\"0\",state="),
            "an online log has no series"
        );
    }

    #[test]
    fn under_replicated_partitions_are_counted_per_shard() {
        use crate::metrics::shard::LeaderSample;
        let registry = MetricsRegistry::new(2);
        let partition = |p: i32, in_sync: u32, lag: i64| PartitionSample {
            topic: "orders".into(),
            partition: p,
            log_start_offset: 0,
            high_watermark: 0,
            last_stable_offset: 0,
            log_end_offset: 0,
            size_bytes: 0,
            health: LogHealth::Online,
            replication: Some(LeaderSample {
                replicas: 3,
                in_sync,
                max_follower_lag: lag,
            }),
        };
        assert!(registry.shard(0).unwrap().publish(Published {
            partitions: vec![partition(0, 3, 0), partition(1, 2, 120), partition(2, 1, 7)],
            groups: Vec::new(),
        }));
        let text = registry.encode_text().unwrap();
        assert_eq!(
            sample_line(&text, "ringbroker_under_replicated_partitions{shard=\"0\"}"),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample_line(&text, "ringbroker_under_replicated_partitions{shard=\"1\"}"),
            Some("0")
        );
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_partition_max_follower_lag_records{shard=\"0\",topic=\"orders\",partition=\"1\"}"
            ),
            Some("120")
        );
        assert_eq!(
            sample_line(
                &text,
                "ringbroker_partition_in_sync_replicas{shard=\"0\",topic=\"orders\",partition=\"2\"}"
            ),
            Some("1")
        );
    }
}
