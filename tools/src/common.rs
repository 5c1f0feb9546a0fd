//! Pieces every client subcommand shares: the connection flags, `--output`, `--property k=v` parsing,
//! aligned tables, and a stdout writer that ends quietly when the reader closes the pipe.

use crate::error::ToolError;
use ringbroker_protocol::client::{Client, ClientConfig};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A flag that turns true on SIGINT (Ctrl-C) or SIGTERM, so a command can finish cleanly (flush,
/// commit, leave its group) instead of dying mid-way.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>, ToolError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|error| {
            ToolError::Failed(format!("cannot install the Ctrl-C handler: {error}"))
        })?;
    }
    Ok(stop)
}

/// Where the broker is: shared by every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Broker(s) to bootstrap from, comma-separated HOST:PORT.
    #[arg(
        long = "bootstrap-server",
        value_name = "HOST:PORT",
        default_value = "localhost:9092"
    )]
    pub bootstrap_server: String,
    /// How long to wait for any single broker answer.
    #[arg(
        long = "request-timeout-ms",
        value_name = "MS",
        default_value_t = 30_000
    )]
    pub request_timeout_ms: u64,
}

impl ConnectArgs {
    /// Connects and reads cluster metadata.
    pub fn connect(&self) -> Result<Client, ToolError> {
        let mut config = ClientConfig::new(&self.bootstrap_server);
        if config.bootstrap_servers.is_empty() {
            return Err(ToolError::Usage("--bootstrap-server is empty".into()));
        }
        config.request_timeout = Duration::from_millis(self.request_timeout_ms.max(1));
        Ok(Client::connect(config)?)
    }
}

/// Output style of listing/describing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text and aligned tables.
    Plain,
    /// One JSON document, for scripts.
    Json,
}

/// Parses "key=value" (used by --config, --header, --property).
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Renders rows as columns separated by two spaces, each as wide as its widest cell.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in rows {
        debug_assert_eq!(row.len(), header.len(), "table row width");
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (index, cell) in cells.enumerate() {
            if index > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[index].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Buffered stdout. A closed pipe (`| head`) is not an error: `write` reports it as `Ok(false)` and the
/// command stops.
pub struct Output {
    stdout: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    /// Wraps the process's stdout.
    pub fn new() -> Output {
        Output {
            stdout: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Writes bytes; `Ok(false)` when the reader went away.
    pub fn write(&mut self, bytes: &[u8]) -> Result<bool, ToolError> {
        match self.stdout.write_all(bytes) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(error) => Err(ToolError::Stdout(error)),
        }
    }

    /// Flushes; `Ok(false)` when the reader went away.
    pub fn flush(&mut self) -> Result<bool, ToolError> {
        match self.stdout.flush() {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(error) => Err(ToolError::Stdout(error)),
        }
    }

    /// Writes a whole text and flushes.
    pub fn print(&mut self, text: &str) -> Result<(), ToolError> {
        if self.write(text.as_bytes())? {
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(
            parse_key_value("k=").unwrap(),
            ("k".to_string(), String::new())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let table = render_table(
            &["A", "LONGER"],
            &[
                vec!["wide-cell".into(), "1".into()],
                vec!["x".into(), "22".into()],
            ],
        );
        assert_eq!(table, "A          LONGER\nwide-cell  1\nx          22\n");
    }
}
