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
    recover_with_end(log).await.map(|(state, _)| state)
}

/// The producer state of `log` and the offset after the last batch it covers: at least the log
/// end offset when the scan began (a read may pass it when appends run during the scan).
pub async fn recover_with_end(
    log: &PartitionLog,
) -> Result<(PartitionProducers, i64), ProducerStateError> {
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
        // The whole log, not only what consumers see: a replicated log's high watermark may lag
        // its end, and producer state covers every batch (at open the written end is the end).
        let read = log.read_for_replica(from, SCAN_READ_BYTES).await?;
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
                    ..
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
    Ok((state, from))
}

fn stuck(dir: &Path, offset: i64) -> ProducerStateError {
    ProducerStateError::BadSnapshot {
        path: dir.to_path_buf(),
        reason: format!("log scan made no progress at offset {offset}"),
    }
}

/// Replays every complete batch header in `bytes`; returns the offset after the last batch.
pub(super) fn replay_batches(state: &mut PartitionProducers, bytes: &[u8]) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_state::table::tests::idempotent_batch;
    use crate::producer_state::table::Decision;
    use crate::storage::LogConfig;

    fn run<Fut: std::future::Future<Output = ()> + 'static>(
        make: impl FnOnce() -> Fut + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(make)
            .expect("spawn executor")
            .join()
            .expect("test body panicked");
    }

    /// Small segments and no tail cache: the scan reads several segment files.
    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 4 << 10,
            tail_cache_bytes: 0,
            ..LogConfig::default()
        }
    }

    /// Appends `batches` batches of 3 records from producers 1 and 2 in turn, keeping `live` current.
    async fn append(log: &PartitionLog, live: &mut PartitionProducers, from: i32, batches: i32) {
        for i in from..from + batches {
            let id = 1 + i64::from(i % 2);
            let batch = idempotent_batch(id, 0, (i / 2) * 3, 3);
            assert_eq!(
                live.check_and_record(&batch, log.log_end_offset()),
                Decision::Append
            );
            log.append(&batch, -1).await.expect("append");
        }
    }

    #[test]
    fn scan_and_snapshot_rebuild_the_live_state() {
        run(|| async {
            let temp = tempfile::tempdir().expect("tempdir");
            let dir = temp.path().join("t-0");
            let mut live = PartitionProducers::default();
            let log = PartitionLog::open(&dir, config()).await.expect("open");
            append(&log, &mut live, 0, 60).await;
            log.close().await.expect("close");

            // No snapshot: a scan of every segment.
            let log = PartitionLog::open(&dir, config()).await.expect("reopen");
            assert!(
                log.dir().read_dir().expect("ls").count() > 3,
                "several segments"
            );
            assert_eq!(recover(&log).await.expect("recover"), live);

            // A snapshot in the middle, more appends after it: snapshot + scan of the rest.
            let path = dir.join(SNAPSHOT_FILE);
            let bytes = snapshot::encode(&live, log.log_end_offset());
            files::write_durably(&path, bytes).await.expect("snapshot");
            append(&log, &mut live, 60, 7).await;
            log.close().await.expect("close");
            let log = PartitionLog::open(&dir, config()).await.expect("reopen");
            assert_eq!(recover(&log).await.expect("recover"), live);

            // A snapshot ahead of the log (its tail was lost): ignored and deleted.
            let mut ahead = live.clone();
            ahead.producers.clear();
            let bytes = snapshot::encode(&ahead, log.log_end_offset() + 100);
            files::write_durably(&path, bytes).await.expect("snapshot");
            assert_eq!(recover(&log).await.expect("recover"), live);
            assert!(!path.exists());

            // A damaged snapshot: ignored too.
            files::write_durably(&path, b"garbage".to_vec())
                .await
                .expect("write");
            assert_eq!(recover(&log).await.expect("recover"), live);
            log.close().await.expect("close");
        });
    }
}
