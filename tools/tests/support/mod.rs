//! Shared harness of the end-to-end tests: starts the real `ringbroker serve` on a free port with a
//! temporary data directory (or uses `RINGBROKER_TOOLS_BOOTSTRAP=host:port`, e.g. Apache Kafka from
//! bench/reference, to check the tests themselves against the reference broker), and runs the
//! `ringbroker` client subcommands with stdin/stdout like a user would.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest the broker may take to accept connections after start.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Segments are preallocated at full size (1 GiB by default): tests that create dozens of partitions
/// (and the broker's __consumer_offsets) would fill the disk, so test brokers use small segments.
const TEST_SEGMENT_BYTES: &str = "segment_bytes=4MiB";
/// Longest one tool invocation may run before the test fails.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Path of the `ringbroker` binary under test.
pub fn ringbroker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringbroker"))
}

/// A port nobody listens on (bound and released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A topic name no other test (or earlier run against an external broker) uses.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running broker for one test; stopped on drop.
pub struct Broker {
    child: Option<Child>,
    pub bootstrap: String,
    data_dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts `ringbroker serve --shards 1` on a free port, or uses RINGBROKER_TOOLS_BOOTSTRAP.
    pub fn start() -> Broker {
        if let Ok(bootstrap) = std::env::var("RINGBROKER_TOOLS_BOOTSTRAP") {
            return Broker {
                child: None,
                bootstrap,
                data_dir: None,
            };
        }
        let data_dir = tempfile::tempdir().expect("temp dir");
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(data_dir.path().join("broker.log")).expect("log file");
        let child = Command::new(ringbroker_bin())
            .args(["serve", "--listen", &bootstrap, "--data-dir"])
            .arg(data_dir.path().join("data"))
            .args(["--shards", "1", "--set", TEST_SEGMENT_BYTES])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn ringbroker serve");
        let mut broker = Broker {
            child: Some(child),
            bootstrap,
            data_dir: Some(data_dir),
        };
        broker.wait_until_listening();
        broker
    }

    /// Waits for the broker's "ringbroker ready" line, then for its port to answer. The line comes
    /// first because a connect alone can be answered by someone else's socket: while another test
    /// thread forks a child, the child holds (until its exec) a copy of whatever listener that
    /// thread had open, such as the one `free_port` just released on this very port. Seen in CI as
    /// a broker "listening" before it had started, then refusing the first tool.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains("ringbroker ready")
                && TcpStream::connect(&self.bootstrap).is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().expect("try_wait"))
            {
                panic!(
                    "ringbroker serve exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ringbroker serve did not log ready and listen on {} within {BROKER_START_TIMEOUT:?}:\n{}",
            self.bootstrap,
            self.log()
        );
    }

    /// The broker's log so far (empty for an external broker).
    pub fn log(&self) -> String {
        self.data_dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.path().join("broker.log")).ok())
            .unwrap_or_default()
    }

    /// Runs `ringbroker <subcommand> --bootstrap-server <this broker> <args>`.
    pub fn tool(&self, subcommand: &[&str], args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut full: Vec<&str> = subcommand.to_vec();
        full.extend(["--bootstrap-server", self.bootstrap.as_str()]);
        full.extend(args);
        run_tool(&full, stdin)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let exited_early = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            // A failing test shows what the broker said: a crash mid-test otherwise surfaces only as
            // "connection refused" in some client, far from its cause.
            if std::thread::panicking() {
                eprintln!(
                    "broker at {} (exited on its own: {exited_early:?}) logged:\n{}",
                    self.bootstrap,
                    self.log()
                );
            }
        }
    }
}

/// Runs `ringbroker args...`, feeding `stdin`, failing the test if it runs past `TOOL_TIMEOUT`.
pub fn run_tool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run_command(Command::new(ringbroker_bin()).args(args), stdin)
}

/// Runs any command with stdin, a timeout and captured output.
pub fn run_command(command: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // A command that fails early (broker down) exits before reading its input: not a test error.
        match pipe.write_all(input) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("write stdin: {error}")
            }
            _ => {}
        }
    }
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout pipe");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout
            .read_to_end(&mut buf)
            .map(|_| buf)
            .unwrap_or_default()
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr
            .read_to_end(&mut buf)
            .map(|_| buf)
            .unwrap_or_default()
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            let stderr =
                String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
            panic!("command {command:?} ran past {TOOL_TIMEOUT:?} ({status}); stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Asserts success and returns stdout as text.
pub fn ok_stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// stderr as text.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// (status, body) of an HTTP `GET path` (the metrics endpoint), or None when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
