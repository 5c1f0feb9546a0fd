//! `ringbroker consume`: prints records of a topic, like `kafka-console-consumer.sh`. Without `--group`
//! it reads the chosen partitions from the chosen offsets; with `--group` it joins the consumer group
//! (see `group_member`) and commits what it printed.

use crate::common::{parse_key_value, stop_on_ctrl_c, ConnectArgs, Output, OutputFormat};
use crate::error::ToolError;
use crate::format::{parse_template, ConsoleFormat, RecordFormat};
use crate::group_member::{GroupMember, RoundOutcome};
use ringbroker_protocol::batch::batches;
use ringbroker_protocol::client::admin::OffsetSpec;
use ringbroker_protocol::client::error::OFFSET_OUT_OF_RANGE;
use ringbroker_protocol::client::fetch::{FetchOptions, DEFAULT_FETCH_MAX_WAIT_MS};
use ringbroker_protocol::client::{check_code, Client, ClientError};
use ringbroker_protocol::records::decode_records;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Fetch rounds in a row that may fail with retriable errors (leader moves) before giving up.
const MAX_RETRIABLE_ROUNDS: usize = 20;
/// Pause after a retriable fetch error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Flags of `ringbroker consume`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ringbroker consume --bootstrap-server localhost:9092 --topic sample_topic --from-beginning
  ringbroker consume --topic events --group audit --property print.key=true --property print.offset=true
  ringbroker consume --topic events --partition 0 --offset 100 --max-messages 10
  ringbroker consume --topic events --from-beginning --format '%p:%o %k=%s\\n' --timeout-ms 5000")]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Start at the earliest offset when there is no committed one (default: only new records).
    #[arg(long = "from-beginning", conflicts_with = "offset")]
    from_beginning: bool,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Start offset in --partition: a number, earliest or latest.
    #[arg(long, requires = "partition", value_parser = parse_start)]
    offset: Option<Start>,
    /// Consumer group to join; offsets are committed to it.
    #[arg(long)]
    group: Option<String>,
    /// Exit after printing this many records.
    #[arg(long = "max-messages", value_name = "N")]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Formatter property KEY=VALUE (repeatable): print.key, print.partition, print.offset,
    /// print.timestamp, print.headers, print.value, key.separator, line.separator.
    /// (Kafka 4's --formatter-property is accepted too.)
    #[arg(long = "property", alias = "formatter-property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
    /// kcat-style output template: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp,
    /// %h headers, %K/%S key/value length, \n newline.
    #[arg(long, conflicts_with = "output")]
    format: Option<String>,
    /// plain (the formatter) or json (one object per record).
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
    /// read_uncommitted or read_committed.
    #[arg(long = "isolation-level", default_value = "read_uncommitted", value_parser = parse_isolation)]
    isolation_level: i8,
}

/// Where reading starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start(text: &str) -> Result<Start, String> {
    match text {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        number => match number.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(Start::At(offset)),
            _ => Err(format!(
                "expected a non-negative offset, earliest or latest, got '{number}'"
            )),
        },
    }
}

fn parse_isolation(text: &str) -> Result<i8, String> {
    match text {
        "read_uncommitted" => Ok(0),
        "read_committed" => Ok(1),
        other => Err(format!(
            "expected read_uncommitted or read_committed, got '{other}'"
        )),
    }
}

/// What every fetch round needs.
pub struct Reader {
    pub topic: String,
    pub format: RecordFormat,
    pub options: FetchOptions,
    /// Where to go when an offset is out of range (and where a group without commits starts).
    pub reset: OffsetSpec,
    pub printed: u64,
    pub max_messages: Option<u64>,
    pub output: Output,
}

impl Reader {
    /// True once --max-messages records were printed.
    pub fn done(&self) -> bool {
        self.max_messages.is_some_and(|max| self.printed >= max)
    }

    /// One Fetch for `positions`, printing records and advancing positions. Returns records printed,
    /// or `None` when stdout was closed.
    pub fn round(
        &mut self,
        client: &mut Client,
        positions: &mut BTreeMap<i32, i64>,
    ) -> Result<Option<u64>, ToolError> {
        let wanted: Vec<(i32, i64)> = positions
            .iter()
            .map(|(partition, offset)| (*partition, *offset))
            .collect();
        let fetched = client.fetch(&self.topic, &wanted, &self.options)?;
        let mut out = Vec::new();
        let before = self.printed;
        for partition in fetched {
            if partition.error_code == OFFSET_OUT_OF_RANGE {
                let reset = client.list_offsets(&self.topic, &[partition.partition], self.reset)?;
                if let Some((offset, _)) = reset.get(&partition.partition) {
                    positions.insert(partition.partition, *offset);
                }
                continue;
            }
            check_code(
                partition.error_code,
                || format!("Fetch {}-{}", self.topic, partition.partition),
                None,
            )?;
            let Some(position) = positions.get(&partition.partition).copied() else {
                continue;
            };
            let mut next = position;
            for record in decode_records(&partition.records).map_err(ClientError::from)? {
                if record.offset < position || self.done() {
                    continue;
                }
                self.format
                    .write(&mut out, &self.topic, partition.partition, &record);
                self.printed += 1;
                next = record.offset + 1;
            }
            if !self.done() {
                // Control batches and compaction gaps hold no printable records: step over them too.
                for (header, _) in batches(&partition.records).flatten() {
                    next = next.max(header.last_offset() + 1);
                }
            }
            positions.insert(partition.partition, next);
        }
        if !out.is_empty() {
            let delivered = self.output.write(&out)? && self.output.flush()?;
            if !delivered {
                return Ok(None);
            }
        }
        Ok(Some(self.printed - before))
    }
}

/// Runs `ringbroker consume`.
pub fn run(args: ConsumeArgs) -> Result<(), ToolError> {
    let format = if let Some(template) = &args.format {
        RecordFormat::Template(parse_template(template).map_err(ToolError::Usage)?)
    } else if args.output == OutputFormat::Json {
        RecordFormat::Json
    } else {
        RecordFormat::Console(
            ConsoleFormat::from_properties(&args.properties).map_err(ToolError::Usage)?,
        )
    };
    let stop = stop_on_ctrl_c()?;
    let bootstrap = args.connect.bootstrap_server.clone();
    let mut client = args.connect.connect()?;
    let topic = client
        .topic(&args.topic, false)
        .map_err(|error| ToolError::for_topic(error, &args.topic, &bootstrap))?;
    let max_wait_ms = args.timeout_ms.map_or(DEFAULT_FETCH_MAX_WAIT_MS, |ms| {
        (ms as i32).clamp(1, DEFAULT_FETCH_MAX_WAIT_MS)
    });
    let mut reader = Reader {
        topic: args.topic.clone(),
        format,
        options: FetchOptions {
            max_wait_ms,
            isolation_level: args.isolation_level,
            ..FetchOptions::default()
        },
        reset: if args.from_beginning {
            OffsetSpec::Earliest
        } else {
            OffsetSpec::Latest
        },
        printed: 0,
        max_messages: args.max_messages,
        output: Output::new(),
    };
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let result = match &args.group {
        Some(group) => run_group(&mut client, &mut reader, group, timeout, &stop),
        None => {
            let partitions: Vec<i32> = match args.partition {
                Some(partition) if topic.partitions.iter().any(|p| p.partition == partition) => {
                    vec![partition]
                }
                Some(partition) => {
                    return Err(ToolError::Usage(format!(
                        "--partition {partition} does not exist: topic '{}' has {} partition(s)",
                        args.topic,
                        topic.partitions.len()
                    )))
                }
                None => topic.partitions.iter().map(|p| p.partition).collect(),
            };
            let start = args.offset.unwrap_or(if args.from_beginning {
                Start::Earliest
            } else {
                Start::Latest
            });
            run_standalone(&mut client, &mut reader, &partitions, start, timeout, &stop)
        }
    };
    eprintln!("Processed a total of {} messages", reader.printed);
    result.map_err(|error| match error {
        ToolError::Client(error) => ToolError::for_topic(error, &args.topic, &bootstrap),
        other => other,
    })
}

fn run_standalone(
    client: &mut Client,
    reader: &mut Reader,
    partitions: &[i32],
    start: Start,
    timeout: Option<Duration>,
    stop: &AtomicBool,
) -> Result<(), ToolError> {
    let mut positions: BTreeMap<i32, i64> = match start {
        Start::At(offset) => partitions
            .iter()
            .map(|partition| (*partition, offset))
            .collect(),
        Start::Earliest | Start::Latest => {
            let spec = if start == Start::Earliest {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            let offsets = client.list_offsets(&reader.topic, partitions, spec)?;
            offsets
                .into_iter()
                .map(|(partition, (offset, _))| (partition, offset))
                .collect()
        }
    };
    let mut last_record = Instant::now();
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) && !reader.done() {
        match reader.round(client, &mut positions) {
            Ok(None) => return Ok(()),
            Ok(Some(printed)) => {
                failures = 0;
                if printed > 0 {
                    last_record = Instant::now();
                }
            }
            Err(ToolError::Client(error))
                if error.is_retriable() && failures < MAX_RETRIABLE_ROUNDS =>
            {
                failures += 1;
                client.invalidate_topic(&reader.topic);
                std::thread::sleep(RETRY_BACKOFF);
            }
            Err(error) => return Err(error),
        }
        if timeout.is_some_and(|timeout| last_record.elapsed() >= timeout) {
            break;
        }
    }
    Ok(())
}

fn run_group(
    client: &mut Client,
    reader: &mut Reader,
    group: &str,
    timeout: Option<Duration>,
    stop: &AtomicBool,
) -> Result<(), ToolError> {
    let mut member = GroupMember::join(client, group, &reader.topic)?;
    let mut positions = member.start_positions(client, reader.reset)?;
    let mut last_record = Instant::now();
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) && !reader.done() {
        if positions.is_empty() {
            // No partitions for us (more members than partitions): keep the membership alive.
            std::thread::sleep(Duration::from_millis(reader.options.max_wait_ms as u64));
        } else {
            match reader.round(client, &mut positions) {
                Ok(None) => break,
                Ok(Some(printed)) => {
                    failures = 0;
                    if printed > 0 {
                        last_record = Instant::now();
                    }
                }
                Err(ToolError::Client(error))
                    if error.is_retriable() && failures < MAX_RETRIABLE_ROUNDS =>
                {
                    failures += 1;
                    client.invalidate_topic(&reader.topic);
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(error) => return Err(error),
            }
        }
        if member.tick(client, &positions)? == RoundOutcome::Rejoined {
            positions = member.start_positions(client, reader.reset)?;
        }
        if timeout.is_some_and(|timeout| last_record.elapsed() >= timeout) {
            break;
        }
    }
    Ok(member.close(client, &positions)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_parse() {
        assert_eq!(parse_start("earliest").unwrap(), Start::Earliest);
        assert_eq!(parse_start("latest").unwrap(), Start::Latest);
        assert_eq!(parse_start("17").unwrap(), Start::At(17));
        assert!(parse_start("-3").is_err());
        assert!(parse_start("soon").is_err());
        assert_eq!(parse_isolation("read_committed").unwrap(), 1);
        assert!(parse_isolation("dirty").is_err());
    }
}
