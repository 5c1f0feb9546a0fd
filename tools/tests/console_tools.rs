//! End to end: the `ringbroker` client subcommands against the real broker binary, driven through
//! stdin/stdout as a user would (the Kafka quickstart, keys, codecs, groups and lag, errors).

mod support;

use ringbroker_protocol::records::partition_for_key;
use support::{ok_stdout, run_tool, stderr_text, unique_topic, Broker};

/// Produces `lines` of `key:value` with the console producer (`parse.key`, `key.separator=:`).
fn produce_keyed(broker: &Broker, topic: &str, lines: &str) {
    ok_stdout(&broker.tool(
        &["produce"],
        &[
            "--topic",
            topic,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        Some(lines.as_bytes()),
    ));
}

/// Consumers in these tests stop after this long without new records.
const IDLE_TIMEOUT_MS: &str = "10000";

fn lines(count: usize, prefix: &str) -> String {
    (0..count).map(|n| format!("{prefix}-{n}\n")).collect()
}

#[test]
fn quickstart_produce_then_consume_from_beginning() {
    let broker = Broker::start();
    let topic = unique_topic("sample_topic");
    // As in the Kafka quickstart: no explicit create, the producer's Metadata auto-creates the topic.
    let input = "This is my first event\nThis is my second event\n";
    ok_stdout(&broker.tool(&["produce"], &["--topic", &topic], Some(input.as_bytes())));
    let output = broker.tool(
        &["consume"],
        &[
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            IDLE_TIMEOUT_MS,
        ],
        None,
    );
    assert_eq!(ok_stdout(&output), input);
    assert!(stderr_text(&output).contains("Processed a total of 2 messages"));
}

#[test]
fn topics_create_list_describe_delete() {
    let broker = Broker::start();
    let topic = unique_topic("admin");
    let created = broker.tool(
        &["topics", "create"],
        &[
            "--topic",
            &topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    assert_eq!(ok_stdout(&created), format!("Created topic {topic}.\n"));
    let again = broker.tool(&["topics", "create"], &["--topic", &topic], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr_text(&again).contains("already exists"),
        "{}",
        stderr_text(&again)
    );
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &["--topic", &topic, "--if-not-exists"],
        None,
    ));

    let listed = ok_stdout(&broker.tool(&["topics", "list"], &[], None));
    assert!(listed.lines().any(|line| line == topic), "{listed}");

    ok_stdout(&broker.tool(
        &["produce"],
        &["--topic", &topic],
        Some(lines(7, "r").as_bytes()),
    ));
    let described = ok_stdout(&broker.tool(
        &["topics", "describe"],
        &["--topic", &topic, "--output", "json"],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(&described).expect("describe --output json");
    let partitions = json["topics"][0]["partitions"]
        .as_array()
        .expect("partitions");
    assert_eq!(partitions.len(), 3);
    let records: i64 = partitions
        .iter()
        .map(|p| p["log_end_offset"].as_i64().unwrap() - p["log_start_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(records, 7);
    let table = ok_stdout(&broker.tool(&["topics", "describe"], &["--topic", &topic], None));
    assert!(table.contains("PartitionCount: 3"), "{table}");
    assert!(table.contains("LOG-END-OFFSET"), "{table}");

    assert_eq!(
        ok_stdout(&broker.tool(&["topics", "delete"], &["--topic", &topic], None)),
        format!("Deleted topic {topic}.\n")
    );
    let gone = broker.tool(&["topics", "describe"], &["--topic", &topic], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr_text(&gone).contains("does not exist"),
        "{}",
        stderr_text(&gone)
    );
}

/// Configs given at creation come back from DescribeConfigs (Kafka Connect depends on it, see
/// docs/COMPATIBILITY.md section 3). Passes against Apache Kafka 4.4 (RINGBROKER_TOOLS_BOOTSTRAP).
#[test]
fn topic_configs_given_at_creation_are_described() {
    let broker = Broker::start();
    let topic = unique_topic("configured");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &[
            "--topic",
            &topic,
            "--config",
            "retention.ms=3600000",
            "--config",
            "cleanup.policy=compact",
        ],
        None,
    ));
    let described = ok_stdout(&broker.tool(
        &["topics", "describe"],
        &["--topic", &topic, "--output", "json"],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(&described).expect("describe --output json");
    let configs = &json["topics"][0]["configs"];
    assert_eq!(configs["retention.ms"], "3600000", "{json}");
    assert_eq!(configs["cleanup.policy"], "compact", "{json}");
    let table = ok_stdout(&broker.tool(&["topics", "describe"], &["--topic", &topic], None));
    assert!(table.contains("cleanup.policy=compact"), "{table}");
}

#[test]
fn keyed_records_land_on_the_java_partitioner_partition() {
    let broker = Broker::start();
    let topic = unique_topic("keyed");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &["--topic", &topic, "--partitions", "4"],
        None,
    ));
    let input: String = (0..40).map(|n| format!("user{n}:event{n}\n")).collect();
    produce_keyed(&broker, &topic, &input);
    let output = ok_stdout(&broker.tool(
        &["consume"],
        &[
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "40",
            "--timeout-ms",
            IDLE_TIMEOUT_MS,
            "--format",
            "%p %k %s\\n",
        ],
        None,
    ));
    let mut seen = 0;
    for line in output.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let (partition, key, value) = (parts[0].parse::<i32>().unwrap(), parts[1], parts[2]);
        assert_eq!(partition, partition_for_key(key.as_bytes(), 4), "key {key}");
        assert_eq!(value, format!("event{}", &key[4..]));
        seen += 1;
    }
    assert_eq!(seen, 40);
}

#[test]
fn every_codec_round_trips_through_the_broker() {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("codec-{codec}"));
        ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
        let input = lines(200, codec);
        ok_stdout(&broker.tool(
            &["produce"],
            &["--topic", &topic, "--compression", codec],
            Some(input.as_bytes()),
        ));
        let output = broker.tool(
            &["consume"],
            &[
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "200",
                "--timeout-ms",
                IDLE_TIMEOUT_MS,
            ],
            None,
        );
        assert_eq!(ok_stdout(&output), input, "codec {codec}");
    }
}

#[test]
fn partition_offset_and_print_properties() {
    let broker = Broker::start();
    let topic = unique_topic("offsets");
    ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
    ok_stdout(&broker.tool(
        &["produce"],
        &[
            "--topic",
            &topic,
            "--header",
            "source=test",
            "--property",
            "parse.key=true",
        ],
        Some(lines(10, "k\tv").as_bytes()),
    ));
    let output = ok_stdout(&broker.tool(
        &["consume"],
        &[
            "--topic",
            &topic,
            "--partition",
            "0",
            "--offset",
            "5",
            "--max-messages",
            "2",
            "--timeout-ms",
            IDLE_TIMEOUT_MS,
            "--property",
            "print.offset=true",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
            "--property",
            "print.partition=true",
        ],
        None,
    ));
    assert_eq!(
        output,
        "Partition:0\tOffset:5\tsource:test\tk\tv-5\nPartition:0\tOffset:6\tsource:test\tk\tv-6\n"
    );
    let json = ok_stdout(&broker.tool(
        &["consume"],
        &[
            "--topic",
            &topic,
            "--partition",
            "0",
            "--offset",
            "9",
            "--max-messages",
            "1",
            "--timeout-ms",
            IDLE_TIMEOUT_MS,
            "--output",
            "json",
        ],
        None,
    ));
    let record: serde_json::Value = serde_json::from_str(json.trim()).expect("json line");
    assert_eq!(record["offset"], 9);
    assert_eq!(record["key"], "k");
    assert_eq!(record["value"], "v-9");
}

#[test]
fn group_consume_commits_and_describe_shows_lag() {
    let broker = Broker::start();
    let topic = unique_topic("grouped");
    let group = unique_topic("group");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &["--topic", &topic, "--partitions", "2"],
        None,
    ));
    let keyed: String = (0..10).map(|n| format!("k{n}:v{n}\n")).collect();
    produce_keyed(&broker, &topic, &keyed);
    let consume_args = [
        "--topic",
        topic.as_str(),
        "--group",
        group.as_str(),
        "--from-beginning",
        "--timeout-ms",
        "5000",
    ];
    let first = ok_stdout(&broker.tool(&["consume"], &consume_args, None));
    assert_eq!(first.lines().count(), 10, "{first}");

    let describe = |broker: &Broker| -> serde_json::Value {
        let text = ok_stdout(&broker.tool(
            &["groups", "describe"],
            &["--group", &group, "--output", "json"],
            None,
        ));
        serde_json::from_str(&text).expect("groups describe json")
    };
    let described = describe(&broker);
    let rows = described["partitions"].as_array().expect("partitions");
    assert_eq!(rows.len(), 2, "{described}");
    let committed: i64 = rows
        .iter()
        .map(|row| row["current_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 10);
    assert!(rows.iter().all(|row| row["lag"] == 0), "{described}");

    ok_stdout(&broker.tool(
        &["produce"],
        &["--topic", &topic],
        Some(b"late-1\nlate-2\nlate-3\n"),
    ));
    let lag: i64 = describe(&broker)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["lag"].as_i64().unwrap())
        .sum();
    assert_eq!(lag, 3);
    let table = ok_stdout(&broker.tool(&["groups", "describe"], &["--group", &group], None));
    assert!(table.contains("LAG"), "{table}");

    let second = ok_stdout(&broker.tool(&["consume"], &consume_args, None));
    let mut late: Vec<&str> = second.lines().collect();
    late.sort_unstable();
    assert_eq!(late, ["late-1", "late-2", "late-3"]);

    let listed = ok_stdout(&broker.tool(&["groups", "list"], &[], None));
    assert!(listed.lines().any(|line| line == group), "{listed}");

    let dry = ok_stdout(&broker.tool(
        &["groups", "reset-offsets"],
        &["--group", &group, "--topic", &topic, "--to-earliest"],
        None,
    ));
    assert!(dry.contains("Dry run"), "{dry}");
    ok_stdout(&broker.tool(
        &["groups", "reset-offsets"],
        &[
            "--group",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
        None,
    ));
    let again = ok_stdout(&broker.tool(&["consume"], &consume_args, None));
    assert_eq!(again.lines().count(), 13, "{again}");

    // Back by two per partition (2 partitions): exactly the last four records again.
    let reset = |target: &[&str]| {
        let mut args = vec![
            "--group",
            group.as_str(),
            "--topic",
            topic.as_str(),
            "--execute",
        ];
        args.extend_from_slice(target);
        ok_stdout(&broker.tool(&["groups", "reset-offsets"], &args, None))
    };
    reset(&["--shift-by", "-2"]);
    let shifted = ok_stdout(&broker.tool(&["consume"], &consume_args, None));
    assert_eq!(shifted.lines().count(), 4, "{shifted}");
    // Before every record: all 13 again; far in the future: none.
    reset(&["--to-datetime", "2000-01-01T00:00:00.000"]);
    let from_2000 = ok_stdout(&broker.tool(&["consume"], &consume_args, None));
    assert_eq!(from_2000.lines().count(), 13, "{from_2000}");
    reset(&["--to-datetime", "2999-01-01T00:00:00.000"]);
    let described = describe(&broker);
    let lag: i64 = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["lag"].as_i64().unwrap())
        .sum();
    assert_eq!(lag, 0, "{described}");

    let deleted = ok_stdout(&broker.tool(&["groups", "delete"], &["--group", &group], None));
    assert_eq!(deleted, format!("Deleted consumer group '{group}'.\n"));
    let listed = ok_stdout(&broker.tool(&["groups", "list"], &[], None));
    assert!(!listed.lines().any(|line| line == group), "{listed}");
    let gone = broker.tool(&["groups", "describe"], &["--group", &group], None);
    assert_eq!(gone.status.code(), Some(1), "{}", stderr_text(&gone));
}

#[test]
fn unknown_topic_is_a_one_line_error() {
    let broker = Broker::start();
    let topic = unique_topic("missing");
    let output = broker.tool(
        &["consume"],
        &["--topic", &topic, "--timeout-ms", "1000"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_text(&output);
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains(&format!("topic '{topic}' does not exist")),
        "{stderr}"
    );
    assert!(error_lines[0].contains("topics create"), "{stderr}");

    let group = unique_topic("no-such-group");
    let output = broker.tool(&["groups", "describe"], &["--group", &group], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_text(&output);
    assert_eq!(stderr.trim_end(), format!("error: consumer group '{group}' does not exist: list groups with `ringbroker groups list`"));
}

#[test]
fn broker_down_is_a_one_line_error() {
    let port = support::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    for subcommand in [
        &["produce"][..],
        &["consume"][..],
        &["topics", "list"][..],
        &["groups", "list"][..],
    ] {
        let mut args: Vec<&str> = subcommand.to_vec();
        args.extend(["--bootstrap-server", bootstrap.as_str()]);
        if subcommand[0] != "topics" && subcommand[0] != "groups" {
            args.extend(["--topic", "t"]);
        }
        let output = run_tool(&args, Some(b"x\n"));
        assert_eq!(output.status.code(), Some(1), "{subcommand:?}");
        let stderr = stderr_text(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: cannot reach a broker at {bootstrap}")),
            "{stderr}"
        );
        assert!(stderr.contains("ringbroker serve"), "{stderr}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = run_tool(&["consume", "--topic", "t", "--no-such-flag"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_text(&output).contains("--no-such-flag"));
    // --offset needs --partition, as in Kafka's console consumer.
    let output = run_tool(&["consume", "--topic", "t", "--offset", "5"], None);
    assert_eq!(output.status.code(), Some(2));
    let output = run_tool(&["produce", "--topic", "t", "--acks", "2"], None);
    assert_eq!(output.status.code(), Some(2));
    for help in [
        &["topics", "create", "--help"][..],
        &["produce", "--help"],
        &["consume", "--help"],
        &["groups", "describe", "--help"],
    ] {
        let text = ok_stdout(&run_tool(help, None));
        assert!(text.contains("Example"), "{help:?}: {text}");
    }
}

#[test]
fn two_group_members_share_the_partitions_and_commit_everything() {
    let broker = Broker::start();
    let topic = unique_topic("shared");
    let group = unique_topic("sharers");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &["--topic", &topic, "--partitions", "2"],
        None,
    ));
    let keyed: String = (0..40).map(|n| format!("k{n}:v{n}\n")).collect();
    produce_keyed(&broker, &topic, &keyed);
    let consume_args = [
        "--topic",
        topic.as_str(),
        "--group",
        group.as_str(),
        "--from-beginning",
        "--timeout-ms",
        "6000",
    ];
    // Two members join at about the same time; whatever the rebalance timing, together they read
    // every record (at least once) and leave everything committed.
    let outputs: Vec<String> = std::thread::scope(|scope| {
        let members: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| ok_stdout(&broker.tool(&["consume"], &consume_args, None))))
            .collect();
        members
            .into_iter()
            .map(|member| member.join().expect("member thread"))
            .collect()
    });
    let mut seen: Vec<&str> = outputs.iter().flat_map(|output| output.lines()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 40, "{outputs:?}");
    let text = ok_stdout(&broker.tool(
        &["groups", "describe"],
        &["--group", &group, "--output", "json"],
        None,
    ));
    let described: serde_json::Value = serde_json::from_str(&text).expect("groups describe json");
    let rows = described["partitions"].as_array().expect("partitions");
    assert_eq!(rows.len(), 2, "{described}");
    assert!(rows.iter().all(|row| row["lag"] == 0), "{described}");
}

#[test]
fn consumer_without_from_beginning_sees_only_new_records() {
    let broker = Broker::start();
    let topic = unique_topic("live");
    ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
    ok_stdout(&broker.tool(&["produce"], &["--topic", &topic], Some(b"old-1\nold-2\n")));
    let consumed = std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            broker.tool(
                &["consume"],
                &[
                    "--topic",
                    &topic,
                    "--max-messages",
                    "3",
                    "--timeout-ms",
                    "20000",
                ],
                None,
            )
        });
        // Give the consumer time to look up the log end before the new records arrive.
        std::thread::sleep(std::time::Duration::from_secs(3));
        ok_stdout(&broker.tool(
            &["produce"],
            &["--topic", &topic],
            Some(b"new-1\nnew-2\nnew-3\n"),
        ));
        consumer.join().expect("consumer thread")
    });
    assert_eq!(ok_stdout(&consumed), "new-1\nnew-2\nnew-3\n");
}

#[test]
fn every_acks_setting_delivers() {
    let broker = Broker::start();
    for acks in ["0", "1", "all"] {
        let topic = unique_topic(&format!("acks{acks}"));
        ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
        let input = lines(50, "acked");
        ok_stdout(&broker.tool(
            &["produce"],
            &["--topic", &topic, "--acks", acks],
            Some(input.as_bytes()),
        ));
        let output = broker.tool(
            &["consume"],
            &[
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "50",
                "--timeout-ms",
                IDLE_TIMEOUT_MS,
            ],
            None,
        );
        assert_eq!(ok_stdout(&output), input, "acks {acks}");
    }
}

#[test]
fn ctrl_c_commits_and_leaves_the_group() {
    let broker = Broker::start();
    let topic = unique_topic("interrupted");
    let group = unique_topic("interrupted-group");
    ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
    ok_stdout(&broker.tool(
        &["produce"],
        &["--topic", &topic],
        Some(lines(5, "before").as_bytes()),
    ));
    let mut consumer = std::process::Command::new(support::ringbroker_bin())
        .args([
            "consume",
            "--bootstrap-server",
            &broker.bootstrap,
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    // Wait until the consumer printed the five records, then interrupt it like a user's Ctrl-C.
    let mut stdout = std::io::BufReader::new(consumer.stdout.take().expect("stdout"));
    let mut printed = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("read consumer output");
        printed.push(line);
    }
    assert_eq!(printed.concat(), lines(5, "before"));
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &consumer.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = consumer.wait().expect("consumer exit");
    assert!(status.success(), "consumer exited with {status}");
    let text = ok_stdout(&broker.tool(
        &["groups", "describe"],
        &["--group", &group, "--output", "json"],
        None,
    ));
    let described: serde_json::Value = serde_json::from_str(&text).expect("groups describe json");
    assert_eq!(
        described["partitions"][0]["current_offset"], 5,
        "{described}"
    );
    assert_eq!(
        described["members"].as_array().map(Vec::len),
        Some(0),
        "{described}"
    );
}

#[test]
fn ctrl_c_on_the_producer_sends_what_was_typed() {
    let broker = Broker::start();
    let topic = unique_topic("typed");
    ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
    // A linger far longer than the test: the records go out only because of the interrupt.
    let mut producer = std::process::Command::new(support::ringbroker_bin())
        .args([
            "produce",
            "--bootstrap-server",
            &broker.bootstrap,
            "--topic",
            &topic,
            "--linger-ms",
            "600000",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn producer");
    let mut stdin = producer.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"typed-1\ntyped-2\n").expect("type lines");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &producer.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = producer.wait().expect("producer exit");
    drop(stdin);
    assert!(status.success(), "producer exited with {status}");
    let output = broker.tool(
        &["consume"],
        &[
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            IDLE_TIMEOUT_MS,
        ],
        None,
    );
    assert_eq!(ok_stdout(&output), "typed-1\ntyped-2\n");
}

#[test]
fn keyless_records_spread_over_partitions_batch_by_batch() {
    let broker = Broker::start();
    let topic = unique_topic("spread");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &["--topic", &topic, "--partitions", "3"],
        None,
    ));
    // ~60 small batches: the sticky partition moves after each, so every partition gets some.
    let input = lines(3000, "keyless-record-with-some-padding");
    ok_stdout(&broker.tool(
        &["produce"],
        &["--topic", &topic, "--batch-size", "2048"],
        Some(input.as_bytes()),
    ));
    let described = ok_stdout(&broker.tool(
        &["topics", "describe"],
        &["--topic", &topic, "--output", "json"],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(&described).expect("describe json");
    let counts: Vec<i64> = json["topics"][0]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["log_end_offset"].as_i64().unwrap() - p["log_start_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 3000, "{counts:?}");
    assert!(counts.iter().all(|count| *count > 0), "{counts:?}");
}

/// A compacted topic read from the beginning: the cleaner leaves batches holding fewer records than
/// their offset span (the hot key's records removed between unique keys' ones), which the console
/// consumer must read as Kafka's does, offsets with gaps.
#[test]
fn consume_from_beginning_reads_a_compacted_topic() {
    /// Lines produced: every even one updates the hot key, every odd one has a key of its own.
    const LINES: usize = 3000;
    /// Value padding: ~3 MB in all, so three 1 MiB segments and two of them sealed (cleanable).
    const PADDING: usize = 1000;
    /// The cleaner's first pass comes within the retention tick plus log_cleaner_interval_ms (5 s by
    /// default); this leaves room for a loaded machine.
    const COMPACTION_WAIT: std::time::Duration = std::time::Duration::from_secs(90);
    let broker = Broker::start();
    let topic = unique_topic("compacted");
    ok_stdout(&broker.tool(
        &["topics", "create"],
        &[
            "--topic",
            &topic,
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=1048576",
            "--config",
            "min.compaction.lag.ms=0",
        ],
        None,
    ));
    let padding = "p".repeat(PADDING);
    let input: String = (0..LINES)
        .map(|n| match n % 2 {
            0 => format!("hot:hot-{n}-{padding}\n"),
            _ => format!("key{n}:value-{n}-{padding}\n"),
        })
        .collect();
    produce_keyed(&broker, &topic, &input);
    let deadline = std::time::Instant::now() + COMPACTION_WAIT;
    loop {
        let output = ok_stdout(&broker.tool(
            &["consume"],
            &[
                "--topic",
                &topic,
                "--from-beginning",
                "--timeout-ms",
                "3000",
                "--format",
                "%o %k\\n",
            ],
            None,
        ));
        let records: Vec<(i64, String)> = output
            .lines()
            .map(|line| {
                let (offset, key) = line.split_once(' ').expect("offset and key");
                (offset.parse().expect("offset"), key.to_string())
            })
            .collect();
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "offsets rise");
        // Every unique key survives compaction with its own offset.
        let unique: Vec<i64> = records
            .iter()
            .filter(|(_, key)| key != "hot")
            .map(|(offset, _)| *offset)
            .collect();
        let expected: Vec<i64> = (0..LINES as i64).filter(|n| n % 2 == 1).collect();
        assert_eq!(unique, expected);
        let hot = records.len() - unique.len();
        if hot < LINES / 2 {
            // Compacted: the hot key's records in the sealed segments are gone, leaving gaps.
            assert!(records.windows(2).any(|w| w[1].0 - w[0].0 > 1));
            assert_eq!(records.last().map(|r| r.0), Some(LINES as i64 - 1));
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted within {COMPACTION_WAIT:?}:\n{}",
            broker.log()
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
