//! `ringbroker stats`: a live terminal view of a broker's metrics endpoint for a person at a
//! shell: throughput in and out, request rates, errors and latency percentiles by api, and the
//! most lagging consumer groups. It scrapes `/metrics` (Prometheus text) every interval and shows
//! the difference between the last two scrapes; `--once` prints one such view and exits.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::stop_on_ctrl_c;
use crate::error::ToolError;

/// Port of the metrics endpoint assumed with `--bootstrap-server HOST:PORT`.
pub const DEFAULT_METRICS_PORT: u16 = 9644;
/// Longest a scrape may take (connect, send, read).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest scrape body accepted (a broker with many partitions and groups stays far below).
pub const MAX_SCRAPE_BYTES: u64 = 64 << 20;

/// Flags of `ringbroker stats`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ringbroker stats\n  ringbroker stats --metrics http://broker1:9644/metrics\n  \
ringbroker stats --bootstrap-server broker1:9092 --once"
)]
pub struct StatsArgs {
    /// Metrics endpoint URL (http://HOST:PORT/metrics).
    #[arg(long, value_name = "URL", conflicts_with = "bootstrap_server")]
    pub metrics: Option<String>,
    /// Broker HOST[:PORT]: its metrics endpoint is assumed at http://HOST:9644/metrics.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// Print one view (two scrapes one interval apart) and exit.
    #[arg(long)]
    pub once: bool,
    /// Time between scrapes.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
    /// How many lagging groups to show.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
}

/// Runs the view until Ctrl-C (or once).
pub fn run(args: StatsArgs) -> Result<(), ToolError> {
    let url = metrics_url(&args)?;
    let interval = Duration::from_millis(args.interval_ms.max(100));
    let stop = stop_on_ctrl_c()?;
    let mut previous = (Instant::now(), Snapshot::parse(&scrape(&url)?));
    loop {
        std::thread::sleep(interval);
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let current = (Instant::now(), Snapshot::parse(&scrape(&url)?));
        let elapsed = current.0.duration_since(previous.0).as_secs_f64();
        let view = render(&url, &previous.1, &current.1, elapsed, args.top);
        let mut out = std::io::stdout().lock();
        let written = if args.once {
            out.write_all(view.as_bytes())
        } else if !std::io::stdout().is_terminal() {
            // A file or a pipe gets plain views one after another, no terminal control codes.
            out.write_all(format!("{view}\n").as_bytes())
        } else {
            // Clear the screen and home the cursor: a refreshing view, like `top`.
            out.write_all(format!("\x1b[2J\x1b[H{view}").as_bytes())
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(ToolError::Stdout(e)),
        }
        if args.once {
            return Ok(());
        }
        previous = current;
    }
}

fn metrics_url(args: &StatsArgs) -> Result<String, ToolError> {
    if let Some(url) = &args.metrics {
        return Ok(url.clone());
    }
    let server = args.bootstrap_server.as_deref().unwrap_or("localhost");
    let first = server.split(',').next().unwrap_or(server).trim();
    let host = match first.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => first,
    };
    if host.is_empty() {
        return Err(ToolError::Usage("--bootstrap-server has no host".into()));
    }
    Ok(format!("http://{host}:{DEFAULT_METRICS_PORT}/metrics"))
}

/// (host:port, path) of an `http://` URL.
fn split_url(url: &str) -> Result<(&str, &str), ToolError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        ToolError::Usage(format!(
            "--metrics {url}: expected http://HOST:PORT/metrics"
        ))
    })?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/metrics"),
    })
}

/// GETs `url` and returns the body of a 200 answer.
pub fn scrape(url: &str) -> Result<String, ToolError> {
    let (authority, path) = split_url(url)?;
    let failed = |e: std::io::Error| ToolError::Failed(format!("cannot scrape {url}: {e}"));
    let addr = authority
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| ToolError::Failed(format!("cannot resolve {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).map_err(failed)?;
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(failed)?;
    stream
        .set_write_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(failed)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(failed)?;
    let mut response = Vec::new();
    stream
        .take(MAX_SCRAPE_BYTES)
        .read_to_end(&mut response)
        .map_err(failed)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ToolError::Failed(format!("{url}: not an HTTP response")))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_ascii_whitespace().nth(1) != Some("200") {
        return Err(ToolError::Failed(format!("{url} answered {status}")));
    }
    Ok(body.to_string())
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `name{k="v",...} value` lines; comments and malformed lines are skipped.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(mut text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_string(), value));
        text = rest[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// What the view needs from one scrape, summed over shards.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub bytes_in: f64,
    pub records_in: f64,
    pub bytes_out: f64,
    pub records_out: f64,
    pub connections: f64,
    /// api → requests.
    pub requests: BTreeMap<String, f64>,
    /// api → errors.
    pub errors: BTreeMap<String, f64>,
    /// api → (le → cumulative count).
    pub latency: BTreeMap<String, Vec<(f64, f64)>>,
    /// group → total lag.
    pub lag: BTreeMap<String, f64>,
}

impl Snapshot {
    pub fn parse(text: &str) -> Snapshot {
        let mut s = Snapshot::default();
        let mut buckets: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
        for sample in parse_samples(text) {
            let api = sample.label("api").unwrap_or_default().to_string();
            match sample.name.as_str() {
                "ringbroker_produce_bytes_in_total" => s.bytes_in += sample.value,
                "ringbroker_produce_records_in_total" => s.records_in += sample.value,
                "ringbroker_fetch_bytes_out_total" => s.bytes_out += sample.value,
                "ringbroker_fetch_records_out_total" => s.records_out += sample.value,
                "ringbroker_connections_open" => s.connections += sample.value,
                "ringbroker_requests_total" => *s.requests.entry(api).or_default() += sample.value,
                "ringbroker_request_errors_total" => {
                    *s.errors.entry(api).or_default() += sample.value
                }
                "ringbroker_consumer_group_lag" => {
                    let group = sample.label("group").unwrap_or_default().to_string();
                    *s.lag.entry(group).or_default() += sample.value;
                }
                "ringbroker_request_latency_seconds_bucket" => {
                    let le = match sample.label("le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(v) => v.parse().unwrap_or(f64::INFINITY),
                        None => continue,
                    };
                    let entry = buckets
                        .entry(api)
                        .or_default()
                        .entry(le.to_bits())
                        .or_insert((le, 0.0));
                    entry.1 += sample.value;
                }
                _ => {}
            }
        }
        for (api, by_le) in buckets {
            let mut list: Vec<(f64, f64)> = by_le.into_values().collect();
            list.sort_by(|a, b| a.0.total_cmp(&b.0));
            s.latency.insert(api, list);
        }
        s
    }
}

/// The `q` quantile of cumulative buckets, interpolated inside the bucket the way Prometheus'
/// `histogram_quantile` does. `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// Bucket counts of `current` minus `previous` (the interval's observations).
fn bucket_delta(current: &[(f64, f64)], previous: Option<&Vec<(f64, f64)>>) -> Vec<(f64, f64)> {
    current
        .iter()
        .map(|&(le, count)| {
            let before = previous
                .and_then(|p| p.iter().find(|(l, _)| *l == le))
                .map_or(0.0, |(_, c)| *c);
            (le, (count - before).max(0.0))
        })
        .collect()
}

fn rate(current: f64, previous: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (current - previous).max(0.0) / seconds
    } else {
        0.0
    }
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_string(), |s| format!("{:.3}", s * 1e3))
}

/// The text of one view.
pub fn render(
    url: &str,
    previous: &Snapshot,
    current: &Snapshot,
    seconds: f64,
    top: usize,
) -> String {
    let mut out = String::new();
    let mb = 1e6;
    out.push_str(&format!(
        "ringbroker stats  {url}  (last {seconds:.1} s)\n\n"
    ));
    out.push_str(&format!(
        "in   {:>12.0} records/s {:>10.2} MB/s\nout  {:>12.0} records/s {:>10.2} MB/s\nconnections {}\n\n",
        rate(current.records_in, previous.records_in, seconds),
        rate(current.bytes_in, previous.bytes_in, seconds) / mb,
        rate(current.records_out, previous.records_out, seconds),
        rate(current.bytes_out, previous.bytes_out, seconds) / mb,
        current.connections,
    ));
    out.push_str(&format!(
        "{:<18} {:>10} {:>8} {:>10} {:>10} {:>10}\n",
        "api", "req/s", "err/s", "p50 ms", "p99 ms", "p99.9 ms"
    ));
    for (api, requests) in &current.requests {
        let before = previous.requests.get(api).copied().unwrap_or(0.0);
        let errors = current.errors.get(api).copied().unwrap_or(0.0);
        let errors_before = previous.errors.get(api).copied().unwrap_or(0.0);
        let buckets = current
            .latency
            .get(api)
            .map(|b| bucket_delta(b, previous.latency.get(api)))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<18} {:>10.1} {:>8.1} {:>10} {:>10} {:>10}\n",
            api,
            rate(*requests, before, seconds),
            rate(errors, errors_before, seconds),
            ms(quantile(&buckets, 0.5)),
            ms(quantile(&buckets, 0.99)),
            ms(quantile(&buckets, 0.999)),
        ));
    }
    let mut lagging: Vec<(&String, &f64)> =
        current.lag.iter().filter(|(_, lag)| **lag > 0.0).collect();
    lagging.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    out.push_str(&format!(
        "\ntop lagging groups\n{:<40} {:>14}\n",
        "group", "lag (records)"
    ));
    if lagging.is_empty() {
        out.push_str("(none)\n");
    }
    for (group, lag) in lagging.into_iter().take(top) {
        out.push_str(&format!("{group:<40} {lag:>14.0}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP x y\n\
ringbroker_produce_bytes_in_total{shard=\"0\"} 1000\n\
ringbroker_produce_bytes_in_total{shard=\"1\"} 1000\n\
ringbroker_requests_total{shard=\"0\",api=\"Produce\"} 10\n\
ringbroker_request_latency_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.001\"} 5\n\
ringbroker_request_latency_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.002\"} 10\n\
ringbroker_request_latency_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"+Inf\"} 10\n\
ringbroker_consumer_group_lag{group=\"g,\\\"1\",topic=\"t\",partition=\"0\"} 7\n";

    #[test]
    fn parses_and_sums_over_shards() {
        let s = Snapshot::parse(SCRAPE);
        assert_eq!(s.bytes_in, 2000.0);
        assert_eq!(s.requests["Produce"], 10.0);
        assert_eq!(s.latency["Produce"].len(), 3);
        assert_eq!(s.lag["g,\"1"], 7.0);
    }

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        let buckets = [(0.001, 5.0), (0.002, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&buckets, 0.5), Some(0.001));
        assert!((quantile(&buckets, 0.75).unwrap() - 0.0015).abs() < 1e-12);
        assert_eq!(quantile(&[(1.0, 0.0)], 0.5), None);
    }

    #[test]
    fn urls_from_flags() {
        let args = |metrics: Option<&str>, bootstrap: Option<&str>| StatsArgs {
            metrics: metrics.map(str::to_string),
            bootstrap_server: bootstrap.map(str::to_string),
            once: true,
            interval_ms: 1000,
            top: 5,
        };
        assert_eq!(
            metrics_url(&args(None, Some("b1:9092,b2:9092"))).unwrap(),
            "http://b1:9644/metrics"
        );
        assert_eq!(
            metrics_url(&args(Some("http://h:1/m"), None)).unwrap(),
            "http://h:1/m"
        );
        assert_eq!(split_url("http://h:1").unwrap(), ("h:1", "/metrics"));
        assert!(split_url("https://h").is_err());
    }

    #[test]
    fn view_shows_rates_and_lag() {
        let before = Snapshot::default();
        let after = Snapshot::parse(SCRAPE);
        let view = render("u", &before, &after, 2.0, 5);
        assert!(view.contains("Produce"), "{view}");
        assert!(view.contains("0.00 MB/s") || view.contains("MB/s"));
        assert!(view.contains("g,\"1"));
    }
}
