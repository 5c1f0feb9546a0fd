//! `ringbroker groups list|describe|reset-offsets`: consumer-group administration, like
//! `kafka-consumer-groups.sh` (describe shows members, assignment, committed offset, log end offset, lag).

use crate::common::{render_table, ConnectArgs, Output, OutputFormat};
use crate::error::ToolError;
use ringbroker_protocol::client::admin::OffsetSpec;
use ringbroker_protocol::client::assignor::{decode_assignment, CONSUMER_PROTOCOL_TYPE};
use ringbroker_protocol::client::error::{GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP};
use ringbroker_protocol::client::groups::GroupDescription;
use ringbroker_protocol::client::{Client, ClientError};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Group state of a group the coordinator does not know.
const STATE_DEAD: &str = "Dead";
/// Group state in which offsets may be reset.
const STATE_EMPTY: &str = "Empty";

/// Flags of `ringbroker groups`.
#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupsCommand {
    /// List consumer groups, one per line.
    #[command(after_help = "Example:\n  ringbroker groups list --bootstrap-server localhost:9092")]
    List(ListArgs),
    /// Members, assignment, committed offset, log end offset and lag per partition.
    #[command(
        after_help = "Example:\n  ringbroker groups describe --bootstrap-server localhost:9092 --group audit"
    )]
    Describe(DescribeArgs),
    /// Move a group's committed offsets (the group must have no active members). Dry run unless --execute.
    #[command(
        after_help = "Examples:\n  ringbroker groups reset-offsets --group audit --topic events --to-earliest --execute\n  ringbroker groups reset-offsets --group audit --topic events:0,1 --to-offset 100\n  ringbroker groups reset-offsets --group audit --topic events --shift-by -10 --execute\n  ringbroker groups reset-offsets --group audit --topic events --to-datetime 2026-11-25T14:30:00.000 --execute"
    )]
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (the group must have no active members).
    #[command(
        after_help = "Example:\n  ringbroker groups delete --bootstrap-server localhost:9092 --group audit"
    )]
    Delete(GroupDeleteArgs),
}

#[derive(Debug, clap::Args)]
struct GroupDeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group id.
    #[arg(long)]
    group: String,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group id.
    #[arg(long)]
    group: String,
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
#[group(id = "target", required = true, multiple = false, args = ["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime"])]
struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group id.
    #[arg(long)]
    group: String,
    /// TOPIC or TOPIC:P1,P2 to reset.
    #[arg(long, value_parser = parse_topic_partitions)]
    topic: (String, Option<Vec<i32>>),
    /// Reset to the log start offset.
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// Reset to this offset (clamped to each partition's log start..end).
    #[arg(long = "to-offset", value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Move each partition's committed offset by N (negative: back), clamped to log start..end.
    #[arg(long = "shift-by", value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Reset to the first offset whose timestamp is at or after this UTC time, e.g.
    /// 2026-11-25T14:30:00.000 (Kafka's format; a trailing Z or +00:00 is accepted). Partitions with
    /// no such record go to the log end.
    #[arg(long = "to-datetime", value_name = "YYYY-MM-DDTHH:mm:SS.sss", value_parser = parse_utc_datetime_ms)]
    to_datetime: Option<i64>,
    /// Apply the reset (without it, only show the plan).
    #[arg(long)]
    execute: bool,
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
}

/// A UTC date-time in Kafka's reset format as milliseconds since the epoch.
fn parse_utc_datetime_ms(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
        format!("'{text}' is not a UTC date-time like 2026-11-25T14:30:00.000: {e}")
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("'{text}' is before 1970"))?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| format!("'{text}' is too far in the future"))
}

fn parse_topic_partitions(text: &str) -> Result<(String, Option<Vec<i32>>), String> {
    let Some((topic, list)) = text.split_once(':') else {
        return Ok((text.to_owned(), None));
    };
    let partitions = list
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .map_err(|_| format!("bad partition '{p}' in '{text}'"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if topic.is_empty() || partitions.is_empty() {
        return Err(format!("expected TOPIC or TOPIC:P1,P2, got '{text}'"));
    }
    Ok((topic.to_owned(), Some(partitions)))
}

/// Runs `ringbroker groups ...`.
pub fn run(args: GroupsArgs) -> Result<(), ToolError> {
    match args.command {
        GroupsCommand::List(args) => list(args),
        GroupsCommand::Describe(args) => describe(args),
        GroupsCommand::ResetOffsets(args) => reset(args),
        GroupsCommand::Delete(args) => delete(args),
    }
}

fn list(args: ListArgs) -> Result<(), ToolError> {
    let mut client = args.connect.connect()?;
    let groups = client.list_groups()?;
    let text = match args.output {
        OutputFormat::Json => format!(
            "{}\n",
            json!(groups
                .iter()
                .map(|g| json!({"group": g.group_id, "protocol_type": g.protocol_type, "state": g.state}))
                .collect::<Vec<_>>())
        ),
        OutputFormat::Plain => groups.iter().map(|group| format!("{}\n", group.group_id)).collect(),
    };
    Output::new().print(&text)
}

/// One row of `describe`.
struct LagRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    member: Option<(String, String, String)>,
}

impl LagRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

fn describe(args: DescribeArgs) -> Result<(), ToolError> {
    let mut client = args.connect.connect()?;
    let description = client.describe_group(&args.group)?;
    let committed = client.fetch_committed_offsets(&args.group, None)?;
    if description.state == STATE_DEAD && committed.is_empty() {
        return Err(ToolError::Failed(format!(
            "consumer group '{}' does not exist: list groups with `ringbroker groups list`",
            args.group
        )));
    }
    let rows = lag_rows(&mut client, &description, &committed)?;
    let text = match args.output {
        OutputFormat::Json => describe_json(&description, &rows),
        OutputFormat::Plain => describe_plain(&description, &rows),
    };
    Output::new().print(&text)
}

fn lag_rows(
    client: &mut Client,
    description: &GroupDescription,
    committed: &[ringbroker_protocol::client::groups::CommittedOffset],
) -> Result<Vec<LagRow>, ClientError> {
    // (topic, partition) → owning member (id, host, client id).
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    if description.protocol_type == CONSUMER_PROTOCOL_TYPE {
        for member in &description.members {
            for (topic, partitions) in decode_assignment(&member.assignment)? {
                for partition in partitions {
                    let owner = (
                        or_dash(&member.member_id),
                        or_dash(&member.client_host),
                        or_dash(&member.client_id),
                    );
                    owners.insert((topic.clone(), partition), owner);
                }
            }
        }
    }
    let mut keys: BTreeSet<(String, i32)> = owners.keys().cloned().collect();
    keys.extend(committed.iter().map(|c| (c.topic.clone(), c.partition)));
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &keys {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, partitions) in &by_topic {
        // A deleted topic keeps its committed offsets; show them without an end offset.
        if let Ok(offsets) = client.list_offsets(topic, partitions, OffsetSpec::Latest) {
            ends.extend(
                offsets
                    .into_iter()
                    .map(|(partition, (offset, _))| ((topic.clone(), partition), offset)),
            );
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| LagRow {
            committed: committed
                .iter()
                .find(|c| c.topic == key.0 && c.partition == key.1 && c.offset >= 0)
                .map(|c| c.offset),
            log_end: ends.get(&key).copied(),
            member: owners.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect())
}

/// A table cell for a possibly empty string: "-" keeps columns parseable by `awk`.
fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

fn dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn describe_plain(description: &GroupDescription, rows: &[LagRow]) -> String {
    let mut text = String::new();
    if description.members.is_empty() {
        text.push_str(&format!(
            "Consumer group '{}' has no active members.\n",
            description.group_id
        ));
    }
    text.push_str(&format!(
        "Group: {}  State: {}  Members: {}\n",
        description.group_id,
        description.state,
        description.members.len()
    ));
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let (member, host, client) = row
                .member
                .clone()
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            vec![
                description.group_id.clone(),
                row.topic.clone(),
                row.partition.to_string(),
                dash(row.committed),
                dash(row.log_end),
                dash(row.lag()),
                member,
                host,
                client,
            ]
        })
        .collect();
    text.push_str(&render_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &table_rows,
    ));
    text
}

fn describe_json(description: &GroupDescription, rows: &[LagRow]) -> String {
    let value = json!({
        "group": description.group_id,
        "state": description.state,
        "protocol_type": description.protocol_type,
        "protocol": description.protocol,
        "members": description.members.iter().map(|m| json!({
            "member_id": m.member_id, "client_id": m.client_id, "host": m.client_host,
        })).collect::<Vec<_>>(),
        "partitions": rows.iter().map(|row| json!({
            "topic": row.topic,
            "partition": row.partition,
            "current_offset": row.committed,
            "log_end_offset": row.log_end,
            "lag": row.lag(),
            "member_id": row.member.as_ref().map(|m| m.0.clone()),
        })).collect::<Vec<_>>(),
    });
    format!("{value}\n")
}

fn reset(args: ResetArgs) -> Result<(), ToolError> {
    let bootstrap = args.connect.bootstrap_server.clone();
    let mut client = args.connect.connect()?;
    let (topic, chosen) = &args.topic;
    let info = client
        .topic(topic, false)
        .map_err(|error| ToolError::for_topic(error, topic, &bootstrap))?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions = match chosen {
        Some(list) => {
            if let Some(missing) = list.iter().find(|p| !all.contains(p)) {
                return Err(ToolError::Usage(format!(
                    "topic '{topic}' has no partition {missing}"
                )));
            }
            list.clone()
        }
        None => all,
    };
    let description = client.describe_group(&args.group)?;
    if args.execute && description.state != STATE_EMPTY && description.state != STATE_DEAD {
        return Err(ToolError::Failed(format!(
            "offsets of group '{}' can only be reset while it has no active members, but it is {}: stop its consumers first",
            args.group, description.state
        )));
    }
    let starts = client.list_offsets(topic, &partitions, OffsetSpec::Earliest)?;
    let ends = client.list_offsets(topic, &partitions, OffsetSpec::Latest)?;
    let committed: BTreeMap<i32, i64> = if args.shift_by.is_some() {
        client
            .fetch_committed_offsets(&args.group, Some(&[(topic.clone(), partitions.clone())]))?
            .into_iter()
            .filter(|c| c.offset >= 0)
            .map(|c| (c.partition, c.offset))
            .collect()
    } else {
        BTreeMap::new()
    };
    let by_time = match args.to_datetime {
        Some(ms) => client.list_offsets(topic, &partitions, OffsetSpec::Timestamp(ms))?,
        None => BTreeMap::new(),
    };
    let mut plan: Vec<(i32, i64)> = Vec::with_capacity(partitions.len());
    for partition in &partitions {
        let start = starts.get(partition).map_or(0, |(offset, _)| *offset);
        let end = ends
            .get(partition)
            .map_or(start, |(offset, _)| *offset)
            .max(start);
        let target = if args.to_earliest {
            start
        } else if args.to_latest {
            end
        } else if let Some(shift) = args.shift_by {
            let Some(current) = committed.get(partition) else {
                return Err(ToolError::Failed(format!(
                    "group '{}' has no committed offset for {topic}:{partition} to shift: reset it with --to-earliest, --to-latest or --to-offset",
                    args.group
                )));
            };
            current.saturating_add(shift).clamp(start, end)
        } else if args.to_datetime.is_some() {
            // -1: no record at or after that time (Kafka's reset then goes to the log end).
            match by_time.get(partition) {
                Some((offset, _)) if *offset >= 0 => (*offset).clamp(start, end),
                _ => end,
            }
        } else {
            args.to_offset.unwrap_or(start).clamp(start, end)
        };
        plan.push((*partition, target));
    }
    if args.execute {
        client.commit_offsets(&args.group, -1, "", topic, &plan)?;
    }
    let text = match args.output {
        OutputFormat::Json => format!(
            "{}\n",
            json!({
                "group": args.group, "topic": topic, "executed": args.execute,
                "partitions": plan.iter().map(|(p, o)| json!({"partition": p, "new_offset": o})).collect::<Vec<_>>(),
            })
        ),
        OutputFormat::Plain => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|(partition, offset)| {
                    vec![
                        args.group.clone(),
                        topic.clone(),
                        partition.to_string(),
                        offset.to_string(),
                    ]
                })
                .collect();
            let mut text = render_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
            if !args.execute {
                text.push_str("Dry run: nothing changed. Add --execute to apply.\n");
            }
            text
        }
    };
    Output::new().print(&text)
}

fn delete(args: GroupDeleteArgs) -> Result<(), ToolError> {
    let mut client = args.connect.connect()?;
    let group = &args.group;
    match client.delete_group(group) {
        Ok(()) => Output::new().print(&format!("Deleted consumer group '{group}'.\n")),
        Err(error) if error.kafka_code() == Some(GROUP_ID_NOT_FOUND) => {
            Err(ToolError::Failed(format!(
            "consumer group '{group}' does not exist: list groups with `ringbroker groups list`"
        )))
        }
        Err(error) if error.kafka_code() == Some(NON_EMPTY_GROUP) => Err(ToolError::Failed(
            format!("consumer group '{group}' still has active members: stop its consumers first"),
        )),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_datetimes_parse_as_utc_milliseconds() {
        assert_eq!(parse_utc_datetime_ms("1970-01-01T00:00:01.500"), Ok(1500));
        assert_eq!(
            parse_utc_datetime_ms("2026-11-25T14:30:00Z"),
            Ok(1_795_617_000_000)
        );
        assert_eq!(
            parse_utc_datetime_ms("2026-11-25T14:30:00+00:00"),
            parse_utc_datetime_ms("2026-11-25T14:30:00.000")
        );
        assert!(parse_utc_datetime_ms("yesterday").is_err());
        assert!(parse_utc_datetime_ms("2026-13-01T00:00:00").is_err());
    }

    #[test]
    fn topic_partition_lists_parse() {
        assert_eq!(
            parse_topic_partitions("t").unwrap(),
            ("t".to_string(), None)
        );
        assert_eq!(
            parse_topic_partitions("t:0,2").unwrap(),
            ("t".to_string(), Some(vec![0, 2]))
        );
        assert!(parse_topic_partitions("t:x").is_err());
        assert!(parse_topic_partitions(":1").is_err());
    }

    #[test]
    fn lag_needs_both_offsets() {
        let row = LagRow {
            topic: "t".into(),
            partition: 0,
            committed: Some(3),
            log_end: Some(10),
            member: None,
        };
        assert_eq!(row.lag(), Some(7));
        let row = LagRow {
            committed: None,
            ..row
        };
        assert_eq!(row.lag(), None);
    }
}
