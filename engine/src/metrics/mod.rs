//! Broker metrics: each shard records into its own `ShardMetrics` (relaxed atomics that only it
//! writes, log-scale latency histograms) and refreshes a snapshot of partition offsets, group
//! commits and IO stats once a second; a std thread serves them over HTTP in the Prometheus text
//! format (`/metrics`), with `/health` and `/ready`.
//!
//! - `histogram`: the lock-free latency histogram.
//! - `hooks`: the one-line calls the server and data paths make.
//! - `shard`: one shard's counters, histograms, stages and published snapshot.
//! - `registry`: every shard's metrics, readiness, and the Prometheus encoding (lag is joined here).
//! - `sampler`: the once-a-second refresher running on each shard.
//! - `single_writer`: lock-free adds for counters only their shard writes.
//! - `http`: the endpoint thread.
//!
//! Recording is off when the endpoint is disabled (`metrics_listen: None`): the shard then has no
//! `ShardMetrics` and every hook is a not-taken branch.

pub mod histogram;
pub mod hooks;
pub mod http;
pub mod registry;
pub mod sampler;
pub mod shard;
pub mod single_writer;

use std::net::SocketAddr;

use thiserror::Error;

pub use histogram::{HistogramSnapshot, LatencyHistogram};
pub use http::MetricsEndpoint;
pub use registry::MetricsRegistry;
pub use shard::{ShardMetrics, Stage};

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the metrics thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the endpoint when metrics are on. A bind failure is logged and the broker serves
/// without it: metrics must never keep a broker from serving Kafka clients.
/// `shutting_down` turns `/ready` to 503; `stop` ends the endpoint's thread.
pub fn start_endpoint(
    listen: Option<SocketAddr>,
    registry: Option<&std::sync::Arc<MetricsRegistry>>,
    shutting_down: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<MetricsEndpoint> {
    let (listen, registry) = (listen?, registry?);
    match MetricsEndpoint::start(
        listen,
        registry.clone(),
        shutting_down.clone(),
        stop.clone(),
    ) {
        Ok(endpoint) => {
            tracing::info!(listen = %endpoint.local_addr, "metrics endpoint serving /metrics, /health, /ready");
            Some(endpoint)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics endpoint disabled");
            None
        }
    }
}
