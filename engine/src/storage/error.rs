//! `StorageError`: everything the partition log can fail with. Mapping to Kafka error codes is done by
//! the engine's request handlers, not here.

use ringbroker_protocol::batch::BatchError;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The requested offset is outside `[log_start_offset, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// An I/O call failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Data on disk is not what the log wrote (bad index file, batch that fails validation where
    /// the log had committed it, ...).
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    /// The bytes passed to `append` are not a sequence of complete v2 record batches.
    #[error("invalid record batch in append: {0:?}")]
    InvalidBatch(BatchError),
    /// The bytes passed to `append` are framed wrongly (trailing partial batch, negative offset delta).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// `append` was called with no bytes.
    #[error("append of an empty byte string")]
    EmptyAppend,
    /// The append cannot fit the format (one append bigger than a segment position can address).
    #[error("append of {bytes} bytes is too large for one segment")]
    AppendTooLarge { bytes: usize },
    /// The log was closed (or removed); open it again to use it.
    #[error("partition log is closed")]
    Closed,
    /// An earlier write or fdatasync failed; the log refuses further appends because the state of
    /// its tail on disk is unknown. Reopening runs recovery.
    #[error("partition log failed earlier and is fenced: {0}")]
    Fenced(String),
    /// A write failed for lack of space: the log rolled back to its last acknowledged offset and
    /// refuses appends until one tried after `APPEND_RETRY_INTERVAL` succeeds (no restart needed).
    #[error("partition log is out of disk space; appends resume once space is freed: {0}")]
    NoSpace(String),
    /// A `LogConfig` value is unusable.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(error: glommio::GlommioError<()>) -> Self {
        StorageError::Io(error.into())
    }
}
