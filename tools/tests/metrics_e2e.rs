//! End to end: the real broker with `--metrics-listen` on a free port; records produced with
//! `ringbroker produce` and read by a consumer group must show up in `/metrics` (bytes, records,
//! request counts, latency histograms, lag equal to `groups describe`), `/health` and `/ready`
//! answer 200, and `ringbroker stats --once` renders the view. Records read back from segment
//! files (sendfile) count in `ringbroker_fetch_records_out_total` like those from memory.

mod support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, http_get as get, ok_stdout, ringbroker_bin, run_tool, unique_topic};

/// Longest the broker may take to serve /ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Shards refresh partition offsets and group commits this often (engine SAMPLE_INTERVAL).
const SAMPLE_WAIT: Duration = Duration::from_millis(1500);

struct MetricsBroker {
    child: Child,
    bootstrap: String,
    metrics: String,
    _data: tempfile::TempDir,
}

impl Drop for MetricsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> MetricsBroker {
    start_with(&[])
}

/// A broker with `extra` serve flags.
fn start_with(extra: &[&str]) -> MetricsBroker {
    let data = tempfile::tempdir().expect("temp dir");
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(data.path().join("broker.log")).expect("log file");
    let child = Command::new(ringbroker_bin())
        .args(["serve", "--listen", &bootstrap, "--shards", "2"])
        .args(["--metrics-listen", &metrics])
        .args(extra)
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn ringbroker serve");
    let broker = MetricsBroker {
        child,
        bootstrap,
        metrics,
        _data: data,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    while get(&broker.metrics, "/ready").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "broker never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    broker
}

/// Sum of every sample of `name` whose labels include all of `labels`.
fn sum(scrape: &str, name: &str, labels: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn scrape_shows_produce_fetch_latency_and_lag() {
    let broker = start();
    assert_eq!(get(&broker.metrics, "/health").map(|r| r.0), Some(200));
    let topic = unique_topic("metrics");
    let group = unique_topic("metrics-group");
    let bs = broker.bootstrap.as_str();
    ok_stdout(&run_tool(
        &[
            "topics",
            "create",
            "--bootstrap-server",
            bs,
            "--topic",
            &topic,
            "--partitions",
            "1",
        ],
        None,
    ));
    let input: String = (0..50).map(|n| format!("record-{n}\n")).collect();
    ok_stdout(&run_tool(
        &["produce", "--bootstrap-server", bs, "--topic", &topic],
        Some(input.as_bytes()),
    ));
    ok_stdout(&run_tool(
        &[
            "consume",
            "--bootstrap-server",
            bs,
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "20",
            "--timeout-ms",
            "10000",
        ],
        None,
    ));
    std::thread::sleep(SAMPLE_WAIT);
    let (status, scrape) = get(&broker.metrics, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    assert!(
        sum(&scrape, "ringbroker_produce_records_in_total", &[]) >= 50.0,
        "{scrape}"
    );
    assert!(sum(&scrape, "ringbroker_produce_bytes_in_total", &[]) > 0.0);
    assert!(sum(&scrape, "ringbroker_fetch_bytes_out_total", &[]) > 0.0);
    assert!(sum(&scrape, "ringbroker_requests_total", &["api=\"Produce\""]) >= 1.0);
    assert!(sum(&scrape, "ringbroker_requests_total", &["api=\"Fetch\""]) >= 1.0);
    let produce_latency = ["api=\"Produce\"", "le=\"+Inf\""];
    assert!(
        sum(
            &scrape,
            "ringbroker_request_latency_seconds_bucket",
            &produce_latency
        ) >= 1.0
    );
    assert!(
        sum(
            &scrape,
            "ringbroker_stage_latency_seconds_count",
            &["stage=\"append\""]
        ) >= 1.0
    );
    let topic_label = format!("topic=\"{topic}\"");
    assert_eq!(
        sum(
            &scrape,
            "ringbroker_partition_high_watermark",
            &[&topic_label]
        ),
        50.0
    );
    // Lag as `groups describe` computes it: log end offset − committed offset.
    let metrics_lag = sum(
        &scrape,
        "ringbroker_consumer_group_lag",
        &[&format!("group=\"{group}\"")],
    );
    let described = ok_stdout(&run_tool(
        &[
            "groups",
            "describe",
            "--bootstrap-server",
            bs,
            "--group",
            &group,
            "--output",
            "json",
        ],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(&described).expect("groups describe json");
    let described_lag: f64 = json
        .pointer("/partitions")
        .and_then(|rows| rows.as_array())
        .map(|rows| rows.iter().filter_map(|r| r["lag"].as_f64()).sum())
        .unwrap_or_else(|| panic!("no lag rows in {described}"));
    assert_eq!(metrics_lag, described_lag, "{described}");
    assert_eq!(metrics_lag, 30.0);
    let view = ok_stdout(&run_tool(
        &[
            "stats",
            "--metrics",
            &format!("http://{}/metrics", broker.metrics),
            "--once",
        ],
        None,
    ));
    assert!(view.contains("Produce") && view.contains(&group), "{view}");
}

#[test]
fn fetch_records_out_counts_records_sent_by_sendfile() {
    // Partitions hold more than their tail cache (1 MiB at least): the oldest records are read
    // back from segment files.
    let broker = start_with(&[
        "--set",
        "tail_cache_bytes_per_shard=64KiB",
        "--set",
        "segment_bytes=1MiB",
    ]);
    let topic = unique_topic("metrics-sendfile");
    let bs = broker.bootstrap.as_str();
    let create = ["topics", "create", "--bootstrap-server", bs, "--topic"];
    ok_stdout(&run_tool(
        &[&create[..], &[&topic, "--partitions", "2"]].concat(),
        None,
    ));
    const RECORDS: usize = 150_000;
    let input: String = (0..RECORDS).map(|n| format!("record-{n}\n")).collect();
    ok_stdout(&run_tool(
        &["produce", "--bootstrap-server", bs, "--topic", &topic],
        Some(input.as_bytes()),
    ));
    let max_messages = RECORDS.to_string();
    let consumed = ok_stdout(&run_tool(
        &[
            "consume",
            "--bootstrap-server",
            bs,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            &max_messages,
            "--timeout-ms",
            "20000",
        ],
        None,
    ));
    assert_eq!(consumed.lines().count(), RECORDS);
    let (_, scrape) = get(&broker.metrics, "/metrics").expect("scrape");
    let sendfile = ["method=\"sendfile\""];
    assert!(
        sum(&scrape, "ringbroker_response_bytes_sent_total", &sendfile) > 0.0,
        "{scrape}"
    );
    assert_eq!(
        sum(&scrape, "ringbroker_fetch_records_out_total", &[]),
        RECORDS as f64,
        "{scrape}"
    );
}

#[test]
fn metrics_listen_none_serves_kafka_without_the_endpoint() {
    let data = tempfile::tempdir().expect("temp dir");
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let log_path = data.path().join("broker.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(ringbroker_bin())
        .args([
            "serve",
            "--listen",
            &bootstrap,
            "--shards",
            "1",
            "--metrics-listen",
            "none",
        ])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn ringbroker serve");
    let deadline = Instant::now() + READY_TIMEOUT;
    // The ready line first: a bare connect can reach another test's forked copy of a listener.
    while !std::fs::read_to_string(&log_path).is_ok_and(|text| text.contains("ringbroker ready"))
        || TcpStream::connect(&bootstrap).is_err()
    {
        assert!(Instant::now() < deadline, "broker never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    let topic = unique_topic("no-metrics");
    let produced = run_tool(
        &[
            "produce",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
        ],
        Some(b"a\nb\n"),
    );
    let _ = child.kill();
    let _ = child.wait();
    ok_stdout(&produced);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("metrics endpoint"), "{log}");
}
