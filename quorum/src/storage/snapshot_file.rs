//! The snapshot file (`snapshot`): one record holding the snapshot's index, term, configuration
//! and the state machine's bytes. It is only ever replaced whole (temporary file, fdatasync,
//! rename), so unlike the log it cannot have a torn tail: any damage is corruption.

use std::path::Path;

use bytes::Bytes;
use raft::eraftpb::SnapshotMetadata;

use super::codec;
use super::error::StorageError;
use super::files;
use super::record::{self, RecordKind};
use crate::limits::MAX_SNAPSHOT_FILE_BYTES;

/// Name of the snapshot file in the quorum's data dir.
pub const SNAPSHOT_FILE_NAME: &str = "snapshot";

/// Reads the snapshot at `path`; `None` when there is none yet.
pub async fn read(path: &Path) -> Result<Option<(SnapshotMetadata, Bytes)>, StorageError> {
    let Some(bytes) = files::read_file(path, MAX_SNAPSHOT_FILE_BYTES).await? else {
        return Ok(None);
    };
    let scan = record::scan(&bytes, MAX_SNAPSHOT_FILE_BYTES as usize);
    if let Some(damage) = scan.damage {
        return Err(StorageError::corrupt(path, damage.to_string()));
    }
    match scan.records.as_slice() {
        [only] if only.kind == RecordKind::Snapshot => codec::decode_snapshot(only.payload)
            .map(Some)
            .map_err(|reason| StorageError::corrupt(path, reason)),
        other => Err(StorageError::corrupt(
            path,
            format!(
                "expected one snapshot record, found {} records",
                other.len()
            ),
        )),
    }
}

/// Replaces the snapshot at `path` durably.
pub async fn write(
    path: &Path,
    metadata: &SnapshotMetadata,
    data: &[u8],
) -> Result<(), StorageError> {
    let payload = codec::encode_snapshot(metadata, data)
        .map_err(|reason| StorageError::corrupt(path, reason))?;
    let mut bytes = Vec::with_capacity(payload.len() + record::RECORD_PREFIX_BYTES + 1);
    record::encode(RecordKind::Snapshot, &payload, &mut bytes);
    files::replace_atomically(path, bytes).await
}
