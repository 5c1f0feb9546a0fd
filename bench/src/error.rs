//! The bench's error type: every failure a run can meet, with a message that says what to do.

use std::io;

/// Everything that can stop a benchmark run or a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The broker sent bytes we could not decode, or we could not encode a request.
    #[error("Kafka protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("broker returned error {code} ({name}) for {what}")]
    Broker {
        /// Kafka error code.
        code: i16,
        /// Kafka error name, when known.
        name: &'static str,
        /// The request or resource it concerned.
        what: String,
    },
    /// The broker does not support a version range we need.
    #[error("broker does not support {api} versions {min}..={max}; it advertises {advertised}")]
    UnsupportedVersion {
        /// API name.
        api: &'static str,
        /// Lowest version we can speak.
        min: i16,
        /// Highest version we can speak.
        max: i16,
        /// What the broker advertised.
        advertised: String,
    },
    /// The topic or partitions are missing or have no leader.
    #[error("metadata problem: {0}")]
    Metadata(String),
    /// The command line or a profile asks for something impossible.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A JSON result file could not be read or written.
    #[error("JSON {path}: {message}")]
    Json {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Building a record batch failed.
    #[error("record batch: {0}")]
    Batch(String),
    /// A worker thread panicked or could not be started.
    #[error("worker thread: {0}")]
    Worker(String),
}

impl BenchError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a kafka-protocol encode/decode error.
    pub fn protocol(what: &str, err: impl std::fmt::Display) -> Self {
        BenchError::Protocol(format!("{what}: {err}"))
    }

    /// A broker error for a non-zero Kafka error code.
    pub fn broker(code: i16, what: impl Into<String>) -> Self {
        BenchError::Broker {
            code,
            name: kafka_error_name(code),
            what: what.into(),
        }
    }
}

/// Names of the Kafka error codes a benchmark run is likely to meet (the full table is Kafka's `Errors`).
pub fn kafka_error_name(code: i16) -> &'static str {
    match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        42 => "INVALID_REQUEST",
        76 => "UNSUPPORTED_COMPRESSION_TYPE",
        87 => "INVALID_RECORD",
        _ => "see Kafka's error table",
    }
}

/// Result alias for the bench.
pub type Result<T> = std::result::Result<T, BenchError>;
