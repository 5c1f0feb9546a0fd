//! Runs the bench binary for about a second per workload against the real `ringbroker` broker binary
//! (started here on a free loopback port with a temporary data directory), or against any Kafka
//! broker named by `RINGBROKER_BENCH_BOOTSTRAP=host:port`. Skips with a message when neither exists.
//! No timing assertions: only that records flow and the result files have the promised shape.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the broker may take to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one bench invocation (it should take a few seconds).
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);

struct Broker {
    child: Option<Child>,
    addr: String,
    _data_dir: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the broker binary is: $RINGBROKER_BIN, else beside this bench binary (same profile), else in
/// the release directory of the same target dir.
fn broker_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGBROKER_BIN") {
        return Some(PathBuf::from(p));
    }
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_ringbroker-bench"));
    let profile_dir = bench.parent()?;
    let candidates = [
        profile_dir.join("ringbroker"),
        profile_dir.parent()?.join("release").join("ringbroker"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_broker() -> Option<Broker> {
    if let Ok(addr) = std::env::var("RINGBROKER_BENCH_BOOTSTRAP") {
        return Some(Broker {
            child: None,
            addr,
            _data_dir: None,
        });
    }
    let Some(binary) = broker_binary() else {
        eprintln!(
            "SKIPPED: no ringbroker binary found (build it with `cargo build -p ringbroker-tools`, set \
             RINGBROKER_BIN, or point RINGBROKER_BENCH_BOOTSTRAP at a running broker)"
        );
        return None;
    };
    let data_dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let log_path = data_dir.path().join("broker.log");
    let log = std::fs::File::create(&log_path).expect("broker log file");
    let child = Command::new(&binary)
        .args(["serve", "--listen", &addr, "--shards", "1", "--data-dir"])
        .arg(data_dir.path().join("data"))
        .stdout(log.try_clone().expect("broker log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let broker = Broker {
        child: Some(child),
        addr,
        _data_dir: Some(data_dir),
    };
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    // The ready line first: a bare connect can reach another test's forked copy of a listener
    // (the one `free_port` released, held by a child between its fork and exec).
    while !std::fs::read_to_string(&log_path).is_ok_and(|text| text.contains("ringbroker ready"))
        || TcpStream::connect(&broker.addr).is_err()
    {
        assert!(
            Instant::now() < deadline,
            "broker did not listen on {} in time",
            broker.addr
        );
        thread::sleep(Duration::from_millis(50));
    }
    Some(broker)
}

fn bench(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringbroker-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bench starts");
    let deadline = Instant::now() + BENCH_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench {args:?} did not finish in {BENCH_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("json written")).expect("valid json")
}

#[test]
fn produce_consume_e2e_and_compare_against_a_real_broker() {
    let Some(broker) = start_broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let topic = format!("bench-it-{}", std::process::id());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let common = [
        "--bootstrap-server",
        &broker.addr,
        "--topic",
        &topic,
        "--record-size",
        "200",
    ];

    let (p_json, hlog) = (path("produce.json"), path("produce.hlog"));
    let mut args = vec![
        "produce",
        "--partitions",
        "2",
        "--duration",
        "1s",
        "--json",
        &p_json,
        "--hdr-log",
        &hlog,
    ];
    args.extend_from_slice(&common);
    let out = bench(&args);
    assert!(String::from_utf8_lossy(&out.stdout).contains("records/s"));
    let produced = json(Path::new(&p_json));
    let records = produced["results"]["produce"]["records"]
        .as_u64()
        .expect("records");
    assert!(records > 0, "nothing acknowledged: {produced}");
    assert!(
        produced["results"]["produce_latency"]["p99_us"]
            .as_f64()
            .expect("p99")
            > 0.0
    );
    assert_eq!(produced["broker"]["bootstrap"], broker.addr.as_str());
    let log = std::fs::read_to_string(&hlog).expect("hlog");
    assert!(log.contains("Tag=produce,"), "{log}");

    let c_json = path("consume.json");
    let mut args = vec!["consume", "--json", &c_json];
    args.extend_from_slice(&common);
    bench(&args);
    let consumed = json(Path::new(&c_json));
    assert!(
        consumed["results"]["consume"]["records"]
            .as_u64()
            .expect("records")
            >= records,
        "catch-up read fewer records than were acknowledged: {consumed}"
    );

    let e_json = path("e2e.json");
    let mut args = vec![
        "e2e",
        "--duration",
        "1s",
        "--rate",
        "2000",
        "--json",
        &e_json,
    ];
    args.extend_from_slice(&common);
    bench(&args);
    let e2e = json(Path::new(&e_json));
    assert!(
        e2e["results"]["e2e_latency"]["count"]
            .as_u64()
            .expect("count")
            > 0,
        "{e2e}"
    );

    let svg = path("plot.svg");
    let out = bench(&["compare", &p_json, &e_json, "--plot", &svg]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("produce records/s") && table.contains("x"),
        "{table}"
    );
    assert!(std::fs::read_to_string(&svg)
        .expect("svg")
        .contains("<polyline"));
}
