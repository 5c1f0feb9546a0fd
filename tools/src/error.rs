//! `ToolError`: what a client subcommand failed at, worded for the person at the terminal (what happened
//! and what to do), and the exit code it maps to.

use ringbroker_protocol::client::error::UNKNOWN_TOPIC_OR_PARTITION;
use ringbroker_protocol::client::ClientError;
use std::process::ExitCode;

/// Exit code of a failed command (broker error, unreachable broker, rejected record).
const EXIT_FAILURE: u8 = 1;
/// Exit code of a bad command line, as clap uses.
const EXIT_USAGE: u8 = 2;

/// Errors of the client subcommands.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A flag combination or value the command cannot use.
    #[error("{0} (see --help)")]
    Usage(String),
    /// The topic does not exist.
    #[error("topic '{topic}' does not exist: create it with `ringbroker topics create --bootstrap-server {bootstrap} --topic {topic}` or check `ringbroker topics list`")]
    UnknownTopic { topic: String, bootstrap: String },
    /// A failure with its own message.
    #[error("{0}")]
    Failed(String),
    /// A client call failed.
    #[error("{}", describe_client_error(.0))]
    Client(#[from] ClientError),
    /// Reading standard input failed.
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    /// Writing standard output failed (other than a closed pipe, which ends the command quietly).
    #[error("cannot write standard output: {0}")]
    Stdout(std::io::Error),
}

impl ToolError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ToolError::Usage(_) => ExitCode::from(EXIT_USAGE),
            _ => ExitCode::from(EXIT_FAILURE),
        }
    }

    /// Maps UNKNOWN_TOPIC_OR_PARTITION on `topic` to the friendly `UnknownTopic`.
    pub fn for_topic(error: ClientError, topic: &str, bootstrap: &str) -> ToolError {
        if error.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION) {
            ToolError::UnknownTopic {
                topic: topic.to_owned(),
                bootstrap: bootstrap.to_owned(),
            }
        } else {
            ToolError::Client(error)
        }
    }
}

fn describe_client_error(error: &ClientError) -> String {
    match error {
        ClientError::NoBrokerReachable { servers, last_error } => format!(
            "cannot reach a broker at {servers} ({last_error}): start one with `ringbroker serve` or fix --bootstrap-server"
        ),
        ClientError::Io { addr, source } if source.kind() == std::io::ErrorKind::WouldBlock
            || source.kind() == std::io::ErrorKind::TimedOut =>
        {
            format!("broker {addr} did not answer in time: check that it is healthy, or raise --request-timeout-ms")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_what_to_do() {
        let error = ToolError::Client(ClientError::NoBrokerReachable {
            servers: "localhost:1".into(),
            last_error: "connection refused".into(),
        });
        let text = error.to_string();
        assert!(
            text.contains("cannot reach a broker at localhost:1"),
            "{text}"
        );
        assert!(text.contains("ringbroker serve"), "{text}");
        assert!(!text.contains('\n'));
        let unknown = ClientError::Kafka {
            context: "Metadata".into(),
            code: 3,
            message: None,
        };
        let text = ToolError::for_topic(unknown, "t1", "h:9092").to_string();
        assert!(text.starts_with("topic 't1' does not exist"), "{text}");
        assert_eq!(ToolError::Usage("x".into()).exit_code(), ExitCode::from(2));
    }
}
