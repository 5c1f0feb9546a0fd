//! Running `ringbroker serve` as an operator does: from a config file (TOML, or Kafka's own
//! server.properties) with environment overrides, logs a file or a shipper can take (no colour codes
//! off a terminal, JSON lines), SIGHUP reloading what can change live and naming what cannot, and a
//! shutdown that turns `/ready` to 503 while the listener still serves. Plus `config check`, the
//! shell completions and the man pages.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    free_port, http_get as get, ok_stdout, ringbroker_bin, run_tool, stderr_text, unique_topic,
};

/// Longest the broker may take to answer on its port, or to log an expected line.
const WAIT: Duration = Duration::from_secs(60);
/// Segments are preallocated; small ones keep test brokers off the disk.
const TEST_SEGMENT_BYTES: &str = "log.segment.bytes=4MiB";

/// A `ringbroker serve` child with its log in a file.
struct Served {
    child: Child,
    bootstrap: String,
    metrics: String,
    dir: tempfile::TempDir,
}

impl Served {
    /// Starts `serve` with `args` and `env`, on free ports given through the environment (so that a
    /// config file's own listener is overridden, as an operator would), data in a temp dir.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("broker.log")).expect("log file");
        let child = Command::new(ringbroker_bin())
            .arg("serve")
            .args(args)
            .args(["--shards", "1", "--set", TEST_SEGMENT_BYTES])
            .env("RINGBROKER_LISTENERS", format!("PLAINTEXT://{bootstrap}"))
            .env("RINGBROKER_ADVERTISED_LISTENERS", &bootstrap)
            .env("RINGBROKER_METRICS_LISTEN", &metrics)
            .env("RINGBROKER_LOG_DIRS", dir.path().join("data"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn ringbroker serve");
        let mut served = Served {
            child,
            bootstrap,
            metrics,
            dir,
        };
        served.wait_for(|s| get(&s.metrics, "/ready").is_some_and(|(status, _)| status == 200));
        served
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Waits until `ready` holds, failing with the log if the broker exits or time runs out.
    fn wait_for(&mut self, ready: impl Fn(&Served) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(self) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("ringbroker serve exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "timed out; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_log(&mut self, text: &str) {
        self.wait_for(|s| s.log().contains(text));
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn tool(&self, subcommand: &[&str], args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut full: Vec<&str> = subcommand.to_vec();
        full.extend(["--bootstrap-server", self.bootstrap.as_str()]);
        full.extend(args);
        ok_stdout(&run_tool(&full, stdin))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Produces `lines` and reads them back.
fn round_trip(served: &Served, topic: &str, lines: &str) {
    served.tool(&["produce"], &["--topic", topic], Some(lines.as_bytes()));
    let count = lines.lines().count().to_string();
    let read = served.tool(
        &["consume"],
        &[
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &count,
            "--timeout-ms",
            "20000",
        ],
        None,
    );
    assert_eq!(read, lines);
}

#[test]
fn kafka_server_properties_start_a_broker_with_plain_logs() {
    let properties = fixture("kafka-server.properties");
    let served = Served::start(&["--config", &properties.display().to_string()], &[]);
    round_trip(&served, &unique_topic("props"), "one\ntwo\nthree\n");
    let log = served.log();
    assert!(log.contains("(Kafka properties)"), "{log}");
    assert!(log.contains("setting node.id = 1 (file)"), "{log}");
    assert!(
        log.contains("setting log.retention.ms = 604800000 (file)"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "setting listeners = PLAINTEXT://{} (env RINGBROKER_LISTENERS)",
            served.bootstrap
        )),
        "{log}"
    );
    assert_eq!(
        log.matches("settings ringbroker does not use").count(),
        1,
        "{log}"
    );
    // stderr is a file here: no terminal colour codes.
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let served = Served::start(&["--log-format", "json"], &[]);
    let topic = unique_topic("json");
    round_trip(&served, &topic, "a\n");
    let log = served.log();
    let mut created = false;
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        assert!(object["message"].is_string(), "{line}");
        created |= object["message"] == "created topic" && object["topic"] == topic.as_str();
    }
    assert!(
        created,
        "no `created topic` line with a topic field:\n{log}"
    );
}

#[test]
fn sighup_reloads_what_can_change_live_and_names_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("ringbroker.toml");
    std::fs::write(
        &config,
        "log_filter = \"info\"\nnum.partitions = 1\nlog.cleaner.backoff.ms = 5000\n",
    )
    .expect("write config");
    let mut served = Served::start(&["--config", &config.display().to_string()], &[]);
    let before = unique_topic("before");
    served.tool(&["topics", "create"], &["--topic", &before], None);
    served.wait_for_log(&format!("topic={before}"));

    std::fs::write(
        &config,
        "log_filter = \"warn\"\nnum.partitions = 3\nlog.cleaner.backoff.ms = 1000\n",
    )
    .expect("rewrite config");
    served.signal("-HUP");
    served.wait_for_log("SIGHUP: reloaded log_filter: info -> warn");
    let log = served.log();
    assert!(
        log.contains("SIGHUP: reloaded log.cleaner.backoff.ms: 5000 -> 1000"),
        "{log}"
    );
    assert!(
        log.contains(
            "SIGHUP: num.partitions changed (1 -> 3) but cannot change while the broker runs"
        ),
        "{log}"
    );
    // The new filter is in force: info lines are gone.
    let hidden = unique_topic("hidden");
    served.tool(&["topics", "create"], &["--topic", &hidden], None);
    // A bad file changes nothing and says so.
    std::fs::write(&config, "num.partition = 2\n").expect("write a bad config");
    served.signal("-HUP");
    served.wait_for_log("SIGHUP: cannot reload");
    // Back to info: info lines return.
    std::fs::write(
        &config,
        "log_filter = \"info\"\nnum.partitions = 3\nlog.cleaner.backoff.ms = 1000\n",
    )
    .expect("rewrite config");
    served.signal("-HUP");
    let after = unique_topic("after");
    served.wait_for_log("SIGHUP: log filter is now info");
    served.tool(&["topics", "create"], &["--topic", &after], None);
    served.wait_for_log(&format!("topic={after}"));
    let log = served.log();
    assert!(
        !log.contains(&format!("topic={hidden}")),
        "an info line passed the warn filter:\n{log}"
    );
    assert!(log.contains("unknown key `num.partition`"), "{log}");
    // The broker still serves, with the settings it had.
    round_trip(&served, &unique_topic("still"), "x\n");
}

#[test]
fn ready_turns_503_before_the_listener_closes() {
    let mut served = Served::start(&["--shutdown-drain-ms", "3000"], &[]);
    assert_eq!(get(&served.metrics, "/ready").map(|r| r.0), Some(200));
    served.signal("-TERM");
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(2);
    while get(&served.metrics, "/ready").map(|r| r.0) != Some(503) {
        assert!(
            Instant::now() < deadline,
            "/ready never turned 503:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not ready, still serving: a client connects and is answered.
    assert!(
        asked.elapsed() < Duration::from_millis(2500),
        "checked too late to prove the order"
    );
    round_trip(&served, &unique_topic("draining"), "still here\n");
    let status = loop {
        if let Some(status) = served.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            asked.elapsed() < WAIT,
            "broker did not stop:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit {status}:\n{}", served.log());
    assert!(
        asked.elapsed() >= Duration::from_millis(3000),
        "stopped before the drain ended"
    );
    assert!(TcpStream::connect(&served.bootstrap).is_err());
    assert!(served.log().contains("shutting down: /ready is 503"));
}

#[test]
fn config_check_validates_without_starting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listeners = \"PLAINTEXT://127.0.0.1:1\"\nnum.partitions = 4\n",
    )
    .unwrap();
    let out = ok_stdout(&run_tool(
        &["config", "check", &good.display().to_string()],
        None,
    ));
    assert!(out.contains("num.partitions = 4 (file)"), "{out}");
    assert!(
        out.contains("listeners = PLAINTEXT://127.0.0.1:1 (file)"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("good.toml: ok"), "{out}");
    // Nothing listens: the check starts no broker.
    assert!(TcpStream::connect("127.0.0.1:1").is_err());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "num.partitons = 4\n").unwrap();
    let output = run_tool(&["config", "check", &bad.display().to_string()], None);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr_text(&output);
    assert!(error.contains("unknown key `num.partitons`"), "{error}");
    assert!(error.contains("did you mean `num.partitions`?"), "{error}");

    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/ringbroker.toml");
    let out = ok_stdout(&run_tool(
        &["config", "check", &packaged.display().to_string()],
        None,
    ));
    assert!(
        out.contains("log.dirs = /var/lib/ringbroker (file)"),
        "{out}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definitions() {
    let bash = ok_stdout(&run_tool(&["completions", "bash"], None));
    assert!(
        bash.contains("--advertised-listener"),
        "bash completion lacks serve flags"
    );
    let zsh = ok_stdout(&run_tool(&["completions", "zsh"], None));
    assert!(zsh.contains("#compdef ringbroker"));
    let dir = tempfile::tempdir().expect("temp dir");
    ok_stdout(&run_tool(
        &["man", "--out-dir", &dir.path().display().to_string()],
        None,
    ));
    let serve = std::fs::read_to_string(dir.path().join("ringbroker-serve.1")).expect("serve page");
    assert!(serve.contains("config"), "{serve}");
    assert!(serve.contains("log\\-retention\\-ms"), "{serve}");
    assert!(dir.path().join("ringbroker.1").exists());
    assert!(dir.path().join("ringbroker-config-check.1").exists());
}
