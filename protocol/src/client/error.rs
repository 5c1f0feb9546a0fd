//! `ClientError`: everything a client call can fail with, and Kafka error codes mapped to their names.

use crate::records::RecordsError;
use kafka_protocol::ResponseError;

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's LEADER_NOT_AVAILABLE (also sent while an auto-created topic gets its leader).
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// Kafka's NOT_LEADER_OR_FOLLOWER.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Kafka's OFFSET_OUT_OF_RANGE.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Kafka's COORDINATOR_LOAD_IN_PROGRESS.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// Kafka's COORDINATOR_NOT_AVAILABLE.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Kafka's NOT_COORDINATOR.
pub const NOT_COORDINATOR: i16 = 16;
/// Kafka's ILLEGAL_GENERATION.
pub const ILLEGAL_GENERATION: i16 = 22;
/// Kafka's UNKNOWN_MEMBER_ID.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// Kafka's REBALANCE_IN_PROGRESS.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// Kafka's UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Kafka's TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's NON_EMPTY_GROUP.
pub const NON_EMPTY_GROUP: i16 = 68;
/// Kafka's GROUP_ID_NOT_FOUND.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// Kafka's MEMBER_ID_REQUIRED (JoinGroup v4+ first round).
pub const MEMBER_ID_REQUIRED: i16 = 79;

/// Errors of the blocking Kafka client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// None of the bootstrap servers accepted a connection and answered ApiVersions.
    #[error("cannot reach any broker at {servers} ({last_error}): is the broker running and --bootstrap-server right?")]
    NoBrokerReachable { servers: String, last_error: String },
    /// Connecting to one broker failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// Reading or writing a connection failed (timeouts included).
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// The broker closed the connection mid-request.
    #[error("broker {addr} closed the connection")]
    Closed { addr: String },
    /// A request could not be encoded (a field out of range for the negotiated version).
    #[error("cannot encode {api} v{version} request: {reason}")]
    Encode {
        api: &'static str,
        version: i16,
        reason: String,
    },
    /// A response could not be decoded.
    #[error("cannot decode {api} v{version} response from {addr}: {reason}")]
    Decode {
        api: &'static str,
        version: i16,
        addr: String,
        reason: String,
    },
    /// A response frame announced more bytes than we accept.
    #[error("response of {bytes} bytes from {addr} exceeds the {max_bytes}-byte limit")]
    FrameTooLarge {
        addr: String,
        bytes: i64,
        max_bytes: usize,
    },
    /// The response's correlation id is not the request's.
    #[error("broker {addr} answered correlation id {got}, expected {expected}")]
    CorrelationMismatch {
        addr: String,
        expected: i32,
        got: i32,
    },
    /// The broker supports no version of an API that this client speaks.
    #[error(
        "broker {addr} does not support {api} (this client speaks v{client_min}-v{client_max})"
    )]
    UnsupportedApi {
        addr: String,
        api: &'static str,
        client_min: i16,
        client_max: i16,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {} ({code}){}", kafka_error_name(*code), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    /// Metadata names no leader for a partition.
    #[error("no leader known for {topic}-{partition}")]
    NoLeader { topic: String, partition: i32 },
    /// A partition number outside the topic.
    #[error("topic {topic} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        partitions: usize,
    },
    /// Metadata names a broker id it did not list.
    #[error("metadata names broker {0} but does not list its address")]
    UnknownBroker(i32),
    /// The broker broke a protocol rule this client relies on.
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// Building or decoding record batches failed.
    #[error(transparent)]
    Records(#[from] RecordsError),
}

impl ClientError {
    /// The Kafka error code, if the broker answered with one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for errors Kafka marks retriable, and for lost connections.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|error| error.is_retriable())
            }
            ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::NoLeader { .. } => {
                true
            }
            _ => false,
        }
    }
}

/// `Ok(())` for error code 0, else `ClientError::Kafka` with `context` (e.g. "Produce orders-3").
pub fn check_code(
    code: i16,
    context: impl FnOnce() -> String,
    message: Option<&str>,
) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    Err(ClientError::Kafka {
        context: context(),
        code,
        message: message.map(str::to_owned),
    })
}

/// Kafka's name for an error code, as the Java client prints it: `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        // The crate's names are Kafka's in CamelCase; Kafka prints them in SCREAMING_SNAKE_CASE.
        Some(error) => {
            let camel = format!("{error}");
            let mut name = String::with_capacity(camel.len() + 8);
            for (index, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && index > 0 {
                    name.push('_');
                }
                name.push(ch.to_ascii_uppercase());
            }
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_error_name(0), "NONE");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_error_name(79), "MEMBER_ID_REQUIRED");
        assert_eq!(kafka_error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn kafka_error_display_names_code_and_context() {
        let error = check_code(3, || "Metadata for topic orders".into(), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Metadata for topic orders: UNKNOWN_TOPIC_OR_PARTITION (3)"
        );
        assert_eq!(error.kafka_code(), Some(3));
        assert!(error.is_retriable());
        let error = check_code(
            36,
            || "CreateTopics t".into(),
            Some("Topic 't' already exists."),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "CreateTopics t: TOPIC_ALREADY_EXISTS (36): Topic 't' already exists."
        );
        assert!(!error.is_retriable());
        assert!(check_code(0, || unreachable!(), None).is_ok());
    }
}
