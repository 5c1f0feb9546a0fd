//! Kafka error codes the engine answers with, and the one place where internal errors become
//! them. Codes come from the `kafka-protocol` crate's table (the Kafka protocol guide's list).

use kafka_protocol::ResponseError;

use crate::storage::StorageError;

/// "No error" on the wire.
pub const NONE: i16 = 0;

/// The Kafka error code for a storage failure.
pub fn storage_error_code(error: &StorageError) -> i16 {
    match error {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::InvalidBatch(_)
        | StorageError::InvalidAppend(_)
        | StorageError::EmptyAppend => ResponseError::CorruptMessage.code(),
        StorageError::AppendTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        // Closed, behind a leader change, or being truncated to a new leader's log: the client
        // refreshes its metadata and retries on the leader.
        StorageError::Closed | StorageError::StaleLeaderEpoch { .. } | StorageError::Truncating => {
            ResponseError::NotLeaderOrFollower.code()
        }
        _ => ResponseError::KafkaStorageError.code(),
    }
}

pub fn code(error: ResponseError) -> i16 {
    error.code()
}
