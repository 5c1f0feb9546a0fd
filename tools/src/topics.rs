//! `ringbroker topics create|list|describe|alter|delete`: topic administration, like `kafka-topics.sh`
//! (`alter --config` like `kafka-configs.sh --alter`).

use crate::common::{parse_key_value, render_table, ConnectArgs, Output, OutputFormat};
use crate::error::ToolError;
use ringbroker_protocol::client::admin::{NewTopic, OffsetSpec};
use ringbroker_protocol::client::error::{TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION};
use ringbroker_protocol::client::{Client, ClientError, TopicInfo};
use serde_json::json;
use std::collections::BTreeMap;

/// How long the broker may take to create or delete a topic.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// Flags of `ringbroker topics`.
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  ringbroker topics create --bootstrap-server localhost:9092 --topic orders --partitions 3 --config retention.ms=86400000"
    )]
    Create(CreateArgs),
    /// List topic names, one per line.
    #[command(after_help = "Example:\n  ringbroker topics list --bootstrap-server localhost:9092")]
    List(ListArgs),
    /// Show partitions, leaders, replicas, ISR, log start/end offsets and non-default configs.
    #[command(
        after_help = "Example:\n  ringbroker topics describe --bootstrap-server localhost:9092 --topic orders\n  ringbroker topics describe --output json"
    )]
    Describe(DescribeArgs),
    /// Set topic configs (KEY=VALUE) or return them to their defaults (--delete-config KEY).
    #[command(
        after_help = "Example:\n  ringbroker topics alter --bootstrap-server localhost:9092 --topic orders --config retention.ms=3600000 --delete-config retention.bytes"
    )]
    Alter(AlterArgs),
    /// Delete a topic and its data.
    #[command(
        after_help = "Example:\n  ringbroker topics delete --bootstrap-server localhost:9092 --topic orders"
    )]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Copies of each partition.
    #[arg(long = "replication-factor", default_value_t = 1)]
    replication_factor: i16,
    /// Topic config KEY=VALUE (repeatable), e.g. cleanup.policy=compact.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
    /// Succeed quietly if the topic already exists.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Leave out internal topics such as __consumer_offsets.
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to describe; all topics if omitted.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, value_enum, default_value = "plain")]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Topic config KEY=VALUE to set (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
    /// Topic config to return to its default (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Succeed quietly if the topic does not exist.
    #[arg(long = "if-exists")]
    if_exists: bool,
}

/// Runs `ringbroker topics ...`.
pub fn run(args: TopicsArgs) -> Result<(), ToolError> {
    match args.command {
        TopicsCommand::Create(args) => create(args),
        TopicsCommand::List(args) => list(args),
        TopicsCommand::Describe(args) => describe(args),
        TopicsCommand::Alter(args) => alter(args),
        TopicsCommand::Delete(args) => delete(args),
    }
}

fn create(args: CreateArgs) -> Result<(), ToolError> {
    if args.partitions < 1 {
        return Err(ToolError::Usage(format!(
            "--partitions must be at least 1, got {}",
            args.partitions
        )));
    }
    if args.replication_factor < 1 {
        return Err(ToolError::Usage(format!(
            "--replication-factor must be at least 1, got {}",
            args.replication_factor
        )));
    }
    let mut client = args.connect.connect()?;
    let topic = NewTopic {
        name: args.topic.clone(),
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        configs: args.configs,
    };
    for (name, outcome) in client.create_topics(&[topic], ADMIN_TIMEOUT_MS)? {
        match outcome {
            Ok(()) => Output::new().print(&format!("Created topic {name}.\n"))?,
            Err(error)
                if error.kafka_code() == Some(TOPIC_ALREADY_EXISTS) && args.if_not_exists => {}
            Err(error) if error.kafka_code() == Some(TOPIC_ALREADY_EXISTS) => {
                return Err(ToolError::Failed(format!(
                    "topic '{name}' already exists: pick another name, or pass --if-not-exists"
                )));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn list(args: ListArgs) -> Result<(), ToolError> {
    let mut client = args.connect.connect()?;
    let metadata = client.metadata(None, false)?;
    let mut names: Vec<String> = metadata
        .topics
        .into_iter()
        .filter(|topic| !(args.exclude_internal && topic.is_internal))
        .map(|topic| topic.name)
        .collect();
    names.sort();
    let text = match args.output {
        OutputFormat::Json => format!("{}\n", json!(names)),
        OutputFormat::Plain => names.iter().map(|name| format!("{name}\n")).collect(),
    };
    Output::new().print(&text)
}

/// Everything `describe` shows about one topic.
struct TopicReport {
    info: TopicInfo,
    configs: BTreeMap<String, Option<String>>,
    start_offsets: BTreeMap<i32, (i64, i64)>,
    end_offsets: BTreeMap<i32, (i64, i64)>,
}

fn describe(args: DescribeArgs) -> Result<(), ToolError> {
    let bootstrap = args.connect.bootstrap_server.clone();
    let mut client = args.connect.connect()?;
    let names: Vec<String> = match &args.topic {
        Some(topic) => vec![topic.clone()],
        None => {
            let mut names: Vec<String> = client
                .metadata(None, false)?
                .topics
                .into_iter()
                .map(|topic| topic.name)
                .collect();
            names.sort();
            names
        }
    };
    let mut reports = Vec::with_capacity(names.len());
    for name in &names {
        let report = report(&mut client, name)
            .map_err(|error| ToolError::for_topic(error, name, &bootstrap))?;
        reports.push(report);
    }
    let text = match args.output {
        OutputFormat::Json => format!(
            "{}\n",
            json!({ "topics": reports.iter().map(report_json).collect::<Vec<_>>() })
        ),
        OutputFormat::Plain => reports
            .iter()
            .map(report_plain)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    Output::new().print(&text)
}

fn report(client: &mut Client, name: &str) -> Result<TopicReport, ClientError> {
    let info = client.topic(name, false)?;
    let configs = match client.describe_topic_configs(name) {
        Ok(entries) => entries
            .into_iter()
            .filter(|entry| !entry.is_default)
            .map(|entry| {
                let value = if entry.is_sensitive {
                    Some("<sensitive>".to_owned())
                } else {
                    entry.value
                };
                (entry.name, value)
            })
            .collect(),
        // A broker without DescribeConfigs still gets its partitions described.
        Err(ClientError::UnsupportedApi { .. }) => BTreeMap::new(),
        Err(error) => return Err(error),
    };
    let partitions: Vec<i32> = info
        .partitions
        .iter()
        .map(|partition| partition.partition)
        .collect();
    let start_offsets = client.list_offsets(name, &partitions, OffsetSpec::Earliest)?;
    let end_offsets = client.list_offsets(name, &partitions, OffsetSpec::Latest)?;
    Ok(TopicReport {
        info,
        configs,
        start_offsets,
        end_offsets,
    })
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn offset_of(offsets: &BTreeMap<i32, (i64, i64)>, partition: i32) -> i64 {
    offsets.get(&partition).map_or(-1, |(offset, _)| *offset)
}

fn report_plain(report: &TopicReport) -> String {
    let info = &report.info;
    let replication = info
        .partitions
        .first()
        .map_or(0, |partition| partition.replicas.len());
    let configs: Vec<String> = report
        .configs
        .iter()
        .map(|(name, value)| format!("{name}={}", value.as_deref().unwrap_or("null")))
        .collect();
    let mut text = format!(
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        info.name,
        info.partitions.len(),
        replication,
        configs.join(",")
    );
    let rows: Vec<Vec<String>> = info
        .partitions
        .iter()
        .map(|partition| {
            vec![
                partition.partition.to_string(),
                partition.leader.to_string(),
                join_ids(&partition.replicas),
                join_ids(&partition.isr),
                offset_of(&report.start_offsets, partition.partition).to_string(),
                offset_of(&report.end_offsets, partition.partition).to_string(),
            ]
        })
        .collect();
    text.push_str(&render_table(
        &[
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "ISR",
            "LOG-START-OFFSET",
            "LOG-END-OFFSET",
        ],
        &rows,
    ));
    text
}

fn report_json(report: &TopicReport) -> serde_json::Value {
    let info = &report.info;
    json!({
        "name": info.name,
        "internal": info.is_internal,
        "configs": report.configs,
        "partitions": info.partitions.iter().map(|partition| json!({
            "partition": partition.partition,
            "leader": partition.leader,
            "replicas": partition.replicas,
            "isr": partition.isr,
            "log_start_offset": offset_of(&report.start_offsets, partition.partition),
            "log_end_offset": offset_of(&report.end_offsets, partition.partition),
        })).collect::<Vec<_>>(),
    })
}

fn alter(args: AlterArgs) -> Result<(), ToolError> {
    if args.configs.is_empty() && args.delete_configs.is_empty() {
        return Err(ToolError::Usage(
            "give at least one --config KEY=VALUE or --delete-config KEY".into(),
        ));
    }
    let bootstrap = args.connect.bootstrap_server.clone();
    let mut client = args.connect.connect()?;
    let changes: Vec<(String, Option<String>)> = args
        .configs
        .into_iter()
        .map(|(key, value)| (key, Some(value)))
        .chain(args.delete_configs.into_iter().map(|key| (key, None)))
        .collect();
    client
        .alter_topic_configs(&args.topic, &changes)
        .map_err(|error| ToolError::for_topic(error, &args.topic, &bootstrap))?;
    Output::new().print(&format!(
        "Completed updating config for topic {}.\n",
        args.topic
    ))?;
    Ok(())
}

fn delete(args: DeleteArgs) -> Result<(), ToolError> {
    let bootstrap = args.connect.bootstrap_server.clone();
    let mut client = args.connect.connect()?;
    for (name, outcome) in client.delete_topics(&[args.topic.as_str()], ADMIN_TIMEOUT_MS)? {
        match outcome {
            Ok(()) => Output::new().print(&format!("Deleted topic {name}.\n"))?,
            Err(error)
                if error.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION) && args.if_exists => {}
            Err(error) => return Err(ToolError::for_topic(error, &name, &bootstrap)),
        }
    }
    Ok(())
}
