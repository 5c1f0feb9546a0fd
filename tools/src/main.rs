//! The `ringbroker` command: `serve` starts the broker; the other subcommands are Kafka client tools.

mod common;
mod config;
mod consume;
mod error;
mod format;
mod group_member;
mod groups;
mod manuals;
mod produce;
mod serve;
mod stats;
mod topics;

use clap::{Parser, Subcommand};
use clap_complete::Shell;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ringbroker",
    version,
    about = "Kafka-compatible thread-per-core event streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the broker (defaults: 127.0.0.1:9092, ./ringbroker-data, one shard per core).
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe and delete topics (like kafka-topics.sh).
    Topics(topics::TopicsArgs),
    /// Write stdin lines as records (like kafka-console-producer.sh).
    Produce(produce::ProduceArgs),
    /// Print records of a topic (like kafka-console-consumer.sh).
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups, show lag, reset offsets (like kafka-consumer-groups.sh).
    Groups(groups::GroupsArgs),
    /// Live view of a broker's metrics: throughput, latency percentiles, lagging groups.
    Stats(stats::StatsArgs),
    /// Check this machine against a tuning profile, apply fixes, measure the data dir (iotune).
    Tune {
        #[command(subcommand)]
        command: ringbroker_tuning::cli::TuneCommand,
    },
    /// Check a broker config file without starting, or print every setting's reference.
    Config(config::ConfigArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Write the man pages (ringbroker.1 and one per subcommand) into a directory.
    Man {
        /// Where to write them.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Topics(args) => finish(topics::run(args)),
        Command::Produce(args) => finish(produce::run(args)),
        Command::Consume(args) => finish(consume::run(args)),
        Command::Groups(args) => finish(groups::run(args)),
        Command::Stats(args) => finish(stats::run(args)),
        Command::Tune { command } => ringbroker_tuning::cli::run(command),
        Command::Config(args) => config::run(args),
        Command::Completions { shell } => manuals::completions(shell),
        Command::Man { out_dir } => manuals::man_pages(&out_dir),
    }
}

/// The whole command line, for the generated completions and man pages.
pub fn cli_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Reports a client subcommand's error on one stderr line and turns it into the exit code.
fn finish(result: Result<(), error::ToolError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
