//! kcat interop: what our producer writes kcat reads, and what kcat (librdkafka) writes our consumer
//! reads, keys included, for every codec. Skipped (with a note) when `kcat` is not on PATH.

mod support;

use std::process::Command;
use support::{ok_stdout, run_command, unique_topic, Broker};

fn kcat_available() -> bool {
    let found = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("kcat not on PATH: skipping (apt-get install -y kcat)");
    }
    found
}

fn kcat(args: &[&str], stdin: Option<&[u8]>) -> String {
    ok_stdout(&run_command(Command::new("kcat").args(args), stdin))
}

#[test]
fn kcat_reads_what_we_write_keys_included() {
    if !kcat_available() {
        return;
    }
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("to-kcat-{codec}"));
        ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
        let input: String = (0..50).map(|n| format!("key{n}=value {n}\n")).collect();
        ok_stdout(&broker.tool(
            &["produce"],
            &[
                "--topic",
                &topic,
                "--compression",
                codec,
                "--property",
                "parse.key=true",
                "--property",
                "key.separator==",
            ],
            Some(input.as_bytes()),
        ));
        let read = kcat(
            &[
                "-C",
                "-b",
                &broker.bootstrap,
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%k=%s\\n",
            ],
            None,
        );
        assert_eq!(read, input, "codec {codec}");
    }
}

#[test]
fn we_read_what_kcat_writes_keys_included() {
    if !kcat_available() {
        return;
    }
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("from-kcat-{codec}"));
        ok_stdout(&broker.tool(&["topics", "create"], &["--topic", &topic], None));
        let input: String = (0..50).map(|n| format!("key{n}:value {n}\n")).collect();
        kcat(
            &[
                "-P",
                "-b",
                &broker.bootstrap,
                "-t",
                &topic,
                "-K",
                ":",
                "-z",
                codec,
            ],
            Some(input.as_bytes()),
        );
        let read = ok_stdout(&broker.tool(
            &["consume"],
            &[
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "50",
                "--timeout-ms",
                "10000",
                "--property",
                "print.key=true",
                "--property",
                "key.separator=:",
            ],
            None,
        ));
        assert_eq!(read, input, "codec {codec}");
    }
}
