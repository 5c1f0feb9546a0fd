//! The metrics endpoint: a minimal HTTP/1.1 responder on its own std thread (never on a shard)
//! serving `GET /metrics` (Prometheus text), `/health` (the process is alive) and `/ready` (every
//! shard recovered and serving; 503 again from the moment shutdown starts, while the broker still
//! serves, so that load balancers drain before the listeners close). One request per connection, answered in turn: scrapers are few
//! and a scrape takes well under a millisecond, so a thread pool would buy nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::registry::MetricsRegistry;
use super::MetricsError;

/// Largest request head read (request line + headers); scrapers send a few hundred bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// A client must send its request head and accept the answer within this long.
pub const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the idle accept loop checks whether the broker is stopping.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running endpoint; the thread ends once `stop` is set (after the shards have stopped: `/ready`
/// must keep answering 503 while they drain).
pub struct MetricsEndpoint {
    pub local_addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves on a thread named `ringbroker-metrics` until `stop` is set.
    /// `shutting_down` is the broker's stop request: from the moment it is set, `/ready` answers 503.
    pub fn start(
        addr: SocketAddr,
        registry: Arc<MetricsRegistry>,
        shutting_down: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> Result<MetricsEndpoint, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let thread = std::thread::Builder::new()
            .name("ringbroker-metrics".into())
            .spawn(move || serve(listener, &registry, &shutting_down, &stop))
            .map_err(MetricsError::Thread)?;
        Ok(MetricsEndpoint { local_addr, thread })
    }

    /// Waits for the thread to end (after `stop` was set).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("metrics endpoint thread panicked");
        }
    }
}

fn serve(
    listener: TcpListener,
    registry: &Arc<MetricsRegistry>,
    shutting_down: &AtomicBool,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if shutting_down.load(Ordering::SeqCst) {
                    registry.mark_stopping();
                }
                if let Err(e) = answer(stream, registry) {
                    tracing::debug!(%peer, error = %e, "metrics request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(STOP_POLL_INTERVAL);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                std::thread::sleep(STOP_POLL_INTERVAL);
            }
        }
    }
}

/// A parsed request line: method and path (query string dropped).
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut words = line.split_ascii_whitespace();
    let method = words.next()?;
    let target = words.next()?;
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

/// The response to a method and path: (status line, content type, body).
fn route(
    method: &str,
    path: &str,
    registry: &Arc<MetricsRegistry>,
) -> (&'static str, &'static str, String) {
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain", "use GET\n".into());
    }
    match path {
        "/metrics" => match registry.encode_text() {
            Ok(text) => ("200 OK", PROMETHEUS_TEXT_CONTENT_TYPE, text),
            Err(_) => (
                "500 Internal Server Error",
                "text/plain",
                "encoding failed\n".into(),
            ),
        },
        "/health" => ("200 OK", "text/plain", "ok\n".into()),
        "/ready" if registry.is_ready() => ("200 OK", "text/plain", "ready\n".into()),
        "/ready" if registry.ready_shards() < registry.shards().len() => (
            "503 Service Unavailable",
            "text/plain",
            "recovering\n".into(),
        ),
        "/ready" => ("503 Service Unavailable", "text/plain", "stopping\n".into()),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /health or /ready\n".into(),
        ),
    }
}

fn answer(mut stream: TcpStream, registry: &Arc<MetricsRegistry>) -> std::io::Result<()> {
    // Accepted sockets inherit non-blocking mode from the listener on some systems.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
                false,
            );
        }
    }
    let head = String::from_utf8_lossy(&head);
    let Some((method, path)) = parse_request_line(&head) else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            "bad request line\n",
            false,
        );
    };
    let (status, content_type, body) = route(method, path, registry);
    respond(&mut stream, status, content_type, &body, method == "HEAD")
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_health_and_ready() {
        let registry = MetricsRegistry::new(1);
        let shutting_down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = MetricsEndpoint::start(
            "127.0.0.1:0".parse().unwrap(),
            registry.clone(),
            shutting_down.clone(),
            stop.clone(),
        )
        .unwrap();
        let addr = endpoint.local_addr;
        assert!(get(addr, "/health").starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/ready").ends_with("recovering\n"));
        registry.mark_ready();
        assert!(get(addr, "/ready").starts_with("HTTP/1.1 200 OK"));
        let metrics = get(addr, "/metrics?x=1");
        assert!(metrics.starts_with("HTTP/1.1 200 OK"));
        assert!(metrics.contains("ringbroker_ready 1"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        // Shutdown requested: not ready at once, while the endpoint (and the broker) still serve.
        shutting_down.store(true, Ordering::SeqCst);
        let ready = get(addr, "/ready");
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(ready.ends_with("stopping\n"), "{ready}");
        assert!(get(addr, "/metrics").contains("ringbroker_ready 0"));
        assert!(get(addr, "/health").starts_with("HTTP/1.1 200 OK"));
        stop.store(true, Ordering::Relaxed);
        endpoint.join();
    }

    #[test]
    fn request_line_parsing() {
        assert_eq!(
            parse_request_line("GET /metrics HTTP/1.1\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line("GET /ready?x HTTP/1.0\n"),
            Some(("GET", "/ready"))
        );
        assert_eq!(parse_request_line(""), None);
    }
}
