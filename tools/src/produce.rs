//! `ringbroker produce`: one record per stdin line, like `kafka-console-producer.sh`. Keyed records go to
//! the partition Kafka's default partitioner picks (murmur2); keyless ones stick to one partition per
//! batch and move on when that batch is sent, like the Java client's sticky partitioner.

use crate::common::{now_ms, parse_key_value, stop_on_ctrl_c, ConnectArgs};
use crate::error::ToolError;
use bytes::Bytes;
use ringbroker_protocol::client::{Client, ClientError};
use ringbroker_protocol::records::{partition_for_key, BatchBuilder, Compression, Record};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Lines read ahead of the sender; bounds memory when stdin is faster than the broker.
const LINE_QUEUE_CAPACITY: usize = 10_000;
/// Attempts for a batch that fails with a retriable error (leader moved, broker restarting).
const MAX_SEND_ATTEMPTS: usize = 5;
/// Pause before retrying a batch.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait for the next line before checking for Ctrl-C (records typed so far are sent before
/// exiting, as Kafka's console producer flushes on shutdown).
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long the broker may take to replicate with acks=all.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// Codec names as `--compression` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Compression {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// Flags of `ringbroker produce`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ringbroker produce --bootstrap-server localhost:9092 --topic sample_topic
  printf 'user1:clicked\\nuser2:scrolled\\n' | ringbroker produce --topic events \\
      --property parse.key=true --property key.separator=: --compression zstd

Properties: parse.key=true|false (default false), key.separator=SEP (default TAB).")]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// Reader property KEY=VALUE (repeatable): parse.key, key.separator.
    /// (Kafka 4's --reader-property is accepted too.)
    #[arg(long = "property", alias = "reader-property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
    /// Write every record to this partition instead of partitioning by key.
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
    /// Compression codec of each batch.
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Longest a record waits for more records to join its batch.
    #[arg(long = "linger-ms", value_name = "MS", default_value_t = 100)]
    linger_ms: u64,
    /// Batch size in bytes (before compression) that sends a partition's batch at once.
    #[arg(long = "batch-size", value_name = "BYTES", default_value_t = 16_384)]
    batch_size: usize,
    /// Header KEY=VALUE added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        other => Err(format!("acks must be all, -1, 1 or 0, got '{other}'")),
    }
}

/// How lines become keys and values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LineFormat {
    parse_key: bool,
    key_separator: Vec<u8>,
}

impl LineFormat {
    fn from_properties(properties: &[(String, String)]) -> Result<LineFormat, ToolError> {
        let mut format = LineFormat {
            parse_key: false,
            key_separator: b"\t".to_vec(),
        };
        for (key, value) in properties {
            match key.as_str() {
                "parse.key" => {
                    format.parse_key = value.parse().map_err(|_| {
                        ToolError::Usage(format!("parse.key must be true or false, got '{value}'"))
                    })?
                }
                "key.separator" if !value.is_empty() => {
                    format.key_separator = value.as_bytes().to_vec()
                }
                "key.separator" => {
                    return Err(ToolError::Usage("key.separator must not be empty".into()))
                }
                other => {
                    return Err(ToolError::Usage(format!(
                        "unknown property '{other}': supported are parse.key and key.separator"
                    )))
                }
            }
        }
        Ok(format)
    }

    /// Splits a line into (key, value) at the first separator when parsing keys.
    fn split<'a>(
        &self,
        line: &'a [u8],
        line_number: u64,
    ) -> Result<(Option<&'a [u8]>, &'a [u8]), ToolError> {
        if !self.parse_key {
            return Ok((None, line));
        }
        let separator = &self.key_separator;
        match line.windows(separator.len()).position(|window| window == separator.as_slice()) {
            Some(at) => Ok((Some(&line[..at]), &line[at + separator.len()..])),
            None => Err(ToolError::Failed(format!(
                "line {line_number} has no key separator '{}': write KEY{}VALUE, or drop --property parse.key=true",
                String::from_utf8_lossy(separator),
                String::from_utf8_lossy(separator)
            ))),
        }
    }
}

/// A small xorshift generator for picking sticky partitions; quality does not matter, spread does.
struct Spreader(u64);

impl Spreader {
    fn new() -> Spreader {
        let seed = (now_ms() as u64) ^ (u64::from(std::process::id()) << 32) | 1;
        Spreader(seed)
    }

    fn pick(&mut self, partitions: i32, avoid: Option<i32>) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let pick = (self.0 % partitions as u64) as i32;
        match avoid {
            Some(previous) if previous == pick && partitions > 1 => (pick + 1) % partitions,
            _ => pick,
        }
    }
}

/// Picks each record's partition: the fixed `--partition`, murmur2 of the key, or the sticky partition.
struct Partitioner {
    fixed: Option<i32>,
    partitions: i32,
    spreader: Spreader,
    sticky: i32,
}

impl Partitioner {
    fn new(fixed: Option<i32>, partitions: i32) -> Partitioner {
        let mut spreader = Spreader::new();
        let sticky = spreader.pick(partitions, None);
        Partitioner {
            fixed,
            partitions,
            spreader,
            sticky,
        }
    }

    fn choose(&self, key: Option<&[u8]>) -> i32 {
        match (self.fixed, key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => self.sticky,
        }
    }

    /// Keyless records move to another partition once the sticky partition's batch went out.
    fn sent(&mut self, partitions: &[i32]) {
        if partitions.contains(&self.sticky) {
            self.sticky = self.spreader.pick(self.partitions, Some(self.sticky));
        }
    }
}

/// Runs `ringbroker produce`.
pub fn run(args: ProduceArgs) -> Result<(), ToolError> {
    let format = LineFormat::from_properties(&args.properties)?;
    if args.batch_size == 0 {
        return Err(ToolError::Usage("--batch-size must be positive".into()));
    }
    let (client, partitions) = open_topic(&args)?;
    let mut partitioner = Partitioner::new(args.partition, partitions);
    let mut producer = Producer {
        client,
        topic: args.topic.clone(),
        acks: args.acks,
        compression: args.compression.into(),
        batches: BTreeMap::new(),
    };
    let headers: Vec<(&str, Option<&[u8]>)> = args
        .headers
        .iter()
        .map(|(key, value)| (key.as_str(), Some(value.as_bytes())))
        .collect();
    let linger = Duration::from_millis(args.linger_ms);
    let stop = stop_on_ctrl_c()?;
    let lines = spawn_stdin_reader();
    let mut deadline: Option<Instant> = None;
    let mut line_number = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let wait = deadline.map_or(STOP_POLL, |at| {
            at.saturating_duration_since(Instant::now()).min(STOP_POLL)
        });
        let line = match lines.recv_timeout(wait) {
            Ok(Ok(line)) => line,
            Ok(Err(error)) => return Err(ToolError::Stdin(error)),
            Err(RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|at| Instant::now() >= at) {
                    partitioner.sent(&producer.flush_all()?);
                    deadline = None;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        line_number += 1;
        let (key, value) = format.split(&line, line_number)?;
        let partition = partitioner.choose(key);
        let record = Record {
            key,
            value: Some(value),
            headers: &headers,
            timestamp_ms: now_ms(),
        };
        let full = producer.push(partition, &record)? >= args.batch_size;
        deadline.get_or_insert_with(|| Instant::now() + linger);
        if full {
            producer.flush(&[partition])?;
            partitioner.sent(&[partition]);
            if producer.is_empty() {
                deadline = None;
            }
        }
    }
    producer.flush_all()?;
    Ok(())
}

/// Connects, looks the topic up (letting the broker auto-create it, as the Java producer does) and
/// checks `--partition`. Returns the client and the partition count.
fn open_topic(args: &ProduceArgs) -> Result<(Client, i32), ToolError> {
    let bootstrap = &args.connect.bootstrap_server;
    let mut client = args.connect.connect()?;
    let topic = client
        .topic(&args.topic, true)
        .map_err(|error| ToolError::for_topic(error, &args.topic, bootstrap))?;
    let partitions = topic.partitions.len() as i32;
    if let Some(partition) = args.partition {
        if partition < 0 || partition >= partitions {
            return Err(ToolError::Usage(format!(
                "--partition {partition} does not exist: topic '{}' has partitions 0..{}",
                args.topic,
                partitions - 1
            )));
        }
    }
    Ok((client, partitions))
}

/// Reads stdin on a thread so the main loop can wait for lines and for the linger deadline at once.
/// Lines lose their line terminator (\n or \r\n) like Java's `readLine`.
fn spawn_stdin_reader() -> Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = sync_channel(LINE_QUEUE_CAPACITY);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if sender.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(error));
                    return;
                }
            }
        }
    });
    receiver
}

/// Per-partition batches waiting to be sent.
struct Producer {
    client: Client,
    topic: String,
    acks: i16,
    compression: Compression,
    batches: BTreeMap<i32, BatchBuilder>,
}

impl Producer {
    /// Appends a record; returns the partition batch's size so far.
    fn push(&mut self, partition: i32, record: &Record<'_>) -> Result<usize, ToolError> {
        let compression = self.compression;
        let builder = self
            .batches
            .entry(partition)
            .or_insert_with(|| BatchBuilder::new(compression));
        builder.push(record).map_err(ClientError::from)?;
        Ok(builder.estimated_bytes())
    }

    fn is_empty(&self) -> bool {
        self.batches.values().all(BatchBuilder::is_empty)
    }

    /// Sends every non-empty batch; returns the partitions sent.
    fn flush_all(&mut self) -> Result<Vec<i32>, ToolError> {
        let partitions: Vec<i32> = self
            .batches
            .iter()
            .filter(|(_, builder)| !builder.is_empty())
            .map(|(partition, _)| *partition)
            .collect();
        self.flush(&partitions)?;
        Ok(partitions)
    }

    /// Sends the batches of `partitions` in one request per leader, retrying retriable failures.
    fn flush(&mut self, partitions: &[i32]) -> Result<(), ToolError> {
        let mut pending: Vec<(i32, Bytes)> = Vec::with_capacity(partitions.len());
        for partition in partitions {
            if let Some(builder) = self.batches.get_mut(partition) {
                if !builder.is_empty() {
                    pending.push((*partition, builder.finish().map_err(ClientError::from)?));
                }
            }
        }
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let results = match self.client.produce(
                &self.topic,
                pending.clone(),
                self.acks,
                PRODUCE_TIMEOUT_MS,
            ) {
                Ok(results) => results,
                Err(error) if error.is_retriable() && attempt < MAX_SEND_ATTEMPTS => {
                    self.client.invalidate_topic(&self.topic);
                    std::thread::sleep(RETRY_BACKOFF);
                    continue;
                }
                Err(error) => return Err(rejected(error)),
            };
            let mut retry = Vec::new();
            for (partition, batch) in pending {
                match results.get(&partition) {
                    Some(Ok(_)) => {}
                    Some(Err(error)) if error.is_retriable() && attempt < MAX_SEND_ATTEMPTS => {
                        retry.push((partition, batch));
                    }
                    Some(Err(error)) => return Err(rejected_ref(error)),
                    None => {
                        return Err(ToolError::Failed(format!(
                            "broker did not answer for {}-{partition}: records may be lost",
                            self.topic
                        )))
                    }
                }
            }
            if !retry.is_empty() {
                std::thread::sleep(RETRY_BACKOFF);
            }
            pending = retry;
        }
        Ok(())
    }
}

fn rejected(error: ClientError) -> ToolError {
    match error {
        ClientError::Kafka { .. } => rejected_ref(&error),
        other => ToolError::Client(other),
    }
}

fn rejected_ref(error: &ClientError) -> ToolError {
    ToolError::Failed(format!("records rejected by the broker: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        let format = LineFormat::from_properties(&properties(&[
            ("parse.key", "true"),
            ("key.separator", ":"),
        ]))
        .unwrap();
        assert_eq!(
            format.split(b"k:v:w", 1).unwrap(),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(format.split(b":v", 1).unwrap(), (Some(&b""[..]), &b"v"[..]));
        let error = format.split(b"no separator", 7).unwrap_err().to_string();
        assert!(
            error.starts_with("line 7 has no key separator ':'"),
            "{error}"
        );
        let plain = LineFormat::from_properties(&[]).unwrap();
        assert_eq!(plain.split(b"a\tb", 1).unwrap(), (None, &b"a\tb"[..]));
        let tabbed = LineFormat::from_properties(&properties(&[("parse.key", "true")])).unwrap();
        assert_eq!(
            tabbed.split(b"a\tb", 1).unwrap(),
            (Some(&b"a"[..]), &b"b"[..])
        );
    }

    #[test]
    fn unknown_properties_and_bad_values_are_usage_errors() {
        assert!(matches!(
            LineFormat::from_properties(&properties(&[("parse.keys", "true")])),
            Err(ToolError::Usage(_))
        ));
        assert!(matches!(
            LineFormat::from_properties(&properties(&[("parse.key", "yes")])),
            Err(ToolError::Usage(_))
        ));
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all").unwrap(), -1);
        assert_eq!(parse_acks("-1").unwrap(), -1);
        assert_eq!(parse_acks("0").unwrap(), 0);
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn partitioner_prefers_fixed_then_key_then_sticky() {
        let mut partitioner = Partitioner::new(None, 4);
        assert_eq!(partitioner.choose(Some(b"21")), partition_for_key(b"21", 4));
        let sticky = partitioner.choose(None);
        assert_eq!(partitioner.choose(None), sticky);
        partitioner.sent(&[(sticky + 1) % 4]);
        assert_eq!(
            partitioner.choose(None),
            sticky,
            "another partition's batch keeps the sticky one"
        );
        partitioner.sent(&[sticky]);
        assert_ne!(partitioner.choose(None), sticky);
        let fixed = Partitioner::new(Some(2), 4);
        assert_eq!(fixed.choose(Some(b"21")), 2);
    }

    #[test]
    fn sticky_picks_stay_in_range_and_move_on() {
        let mut spreader = Spreader::new();
        for _ in 0..1000 {
            let first = spreader.pick(3, None);
            assert!((0..3).contains(&first));
            assert_ne!(spreader.pick(3, Some(first)), first);
        }
        assert_eq!(spreader.pick(1, Some(0)), 0);
    }
}
