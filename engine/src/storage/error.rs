//! `StorageError`: everything the partition log can fail with. Mapping to Kafka error codes is done by
//! the engine's request handlers, not here.

use ringbroker_protocol::batch::BatchError;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The requested offset is outside `[log_start_offset, end_offset]` (the log end offset for
    /// reads and truncation, the high watermark for DeleteRecords).
    #[error("offset {offset} is out of range [{log_start_offset}, {end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        end_offset: i64,
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
    /// A leader append in an epoch below the log's latest, or a follower's batch whose epoch goes
    /// below it: the writer is behind a leader change (the log's history is not rewritten).
    #[error("leader epoch {epoch} is below the log's latest epoch {latest_epoch}")]
    StaleLeaderEpoch { epoch: i32, latest_epoch: i32 },
    /// A follower append that does not continue the log exactly (Kafka's
    /// UnexpectedAppendOffsetException): the caller truncates or fetches again.
    #[error("follower append starts or continues at offset {found}, expected {expected}")]
    UnexpectedAppendOffset { expected: i64, found: i64 },
    /// A truncation offset inside a batch: logs are only cut between batches.
    #[error("offset {offset} is inside the batch starting at {batch_base_offset}")]
    NotBatchBoundary { offset: i64, batch_base_offset: i64 },
    /// A truncation below the high watermark without `allow_below_high_watermark`.
    #[error(
        "truncation to {offset} would remove records below the high watermark {high_watermark}"
    )]
    BelowHighWatermark { offset: i64, high_watermark: i64 },
    /// A truncation is running: appends (and other truncations) are refused until it ends.
    #[error("the partition log is being truncated")]
    Truncating,
    /// A `LogConfig` value is unusable.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(error: glommio::GlommioError<()>) -> Self {
        StorageError::Io(error.into())
    }
}
