//! Rebuilding a partition's producer state when it is opened: the snapshot (if it still matches
//! the recovered log) plus a scan of the batch headers after it.

use std::path::Path;

use ringbroker_protocol::batch::BatchHeader;

use super::error::ProducerStateError;
use super::files;
use super::snapshot::{self, SNAPSHOT_FILE};
use super::table::PartitionProducers;
use crate::storage::{PartitionLog, ReadChunk};

/// Bytes asked of the log per read while scanning batch headers.
pub const SCAN_READ_BYTES: usize = 256 << 10;

/// The producer state of `log` as of its log end offset.
pub async fn recover(log: &PartitionLog) -> Result<PartitionProducers, ProducerStateError> {
    let path = log.dir().join(SNAPSHOT_FILE);
    let end = log.log_end_offset();
    let start = log.log_start_offset();
    let (mut from, mut state) = match files::read_whole(&path).await? {
        None => (start, PartitionProducers::default()),
        Some(bytes) => match snapshot::decode(&bytes) {
            Ok((offset, state)) if offset <= end => (offset.max(start), state),
            Ok((offset, _)) => {
                // The log lost its tail after the snapshot was taken: the snapshot describes
                // batches that are gone. Delete it so it cannot be trusted after new appends.
                tracing::warn!(path = %path.display(), offset, log_end = end, "producer state snapshot is ahead of the log; rescanning");
                files::remove_if_exists(&path).await?;
                (start, PartitionProducers::default())
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring producer state snapshot");
                files::remove_if_exists(&path).await?;
                (start, PartitionProducers::default())
            }
        },
    };
    while from < end {
        let read = log.read(from, SCAN_READ_BYTES).await?;
        if read.chunks.is_empty() {
            break;
        }
        for chunk in &read.chunks {
            let next = match chunk {
                ReadChunk::Memory(bytes) => replay_batches(&mut state, bytes),
                ReadChunk::File {
                    path,
                    position,
                    len,
                } => {
                    let bytes = files::read_range(path, *position, *len).await?;
                    replay_batches(&mut state, &bytes)
                }
            };
            match next {
                Some(next) if next > from => from = next,
                _ => return Err(stuck(log.dir(), from)),
            }
        }
    }
    Ok(state)
}

fn stuck(dir: &Path, offset: i64) -> ProducerStateError {
    ProducerStateError::BadSnapshot {
        path: dir.to_path_buf(),
        reason: format!("log scan made no progress at offset {offset}"),
    }
}

/// Replays every complete batch header in `bytes`; returns the offset after the last batch.
fn replay_batches(state: &mut PartitionProducers, bytes: &[u8]) -> Option<i64> {
    let mut position = 0usize;
    let mut next = None;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..]).ok()?;
        if position + header.total_bytes() > bytes.len() {
            break;
        }
        state.replay(&header);
        next = Some(header.last_offset() + 1);
        position += header.total_bytes();
    }
    next
}
