//! Per-partition segmented log storage, running inside one glommio executor (single-threaded).
//!
//! A partition is a directory of segments named by base offset (`00000000000000000000.log`) with a
//! sparse offset index (`.index`) and a time index (`.timeindex`) beside each. Record batches are
//! stored byte for byte as produced, only the base offset rewritten (it precedes the CRC), so reads
//! can hand out file ranges for sendfile or tail-cache bytes verbatim.
//!
//! Module map:
//! - `log`: the `PartitionLog` handle and public types;
//! - `append`: leader appends (offsets and leader epoch stamped) and follower appends (the
//!   leader's batches byte for byte), queued for the appender;
//! - `appender`: group-commit DMA writes, tail page, segment create/seal/roll, fdatasync policy,
//!   checkpoint writes (leader epochs ahead of their data, high watermark);
//! - `reader`: Fetch-semantics reads (consumers below the high watermark, followers below the
//!   written end) and timestamp lookups;
//! - `recovery`: open, checkpoint trust or scan + truncate of the torn tail, epochs;
//! - `retention`: deleting whole segments past retention.ms / retention.bytes;
//! - `leader_epoch`, `high_watermark`: the epoch cache and the high watermark, with their
//!   checkpoint files;
//! - `truncation`, `cut`: truncating the log to an offset (replication), and the cut of a log's
//!   tail it shares with `rollback`;
//! - `full_truncation`: emptying the log and restarting it at an offset past its end (a follower
//!   below its leader's log start), crash-safe through the saved log start;
//! - `rollback`: surviving a full disk: roll back to the written end, retry when space returns;
//! - `compaction`: the log cleaner of `cleanup.policy=compact` topics (latest record per key);
//! - `scan`: walking batch headers / validating batches in a segment file;
//! - `segment`, `index`, `tail_cache`, `watch`: the data structures;
//! - `checkpoint`, `files`: the clean-shutdown checkpoint and small-file helpers;
//! - `config`, `error`: `LogConfig`/`FlushPolicy` and `StorageError`.
//!
//! Disk space: the active segment is fallocated `PREALLOCATE_STEP_BYTES` (16 MiB) ahead of its data,
//! sealed segments are truncated to their data, so an idle partition costs ~16 MiB, not a segment.
//!
//! Durability (see `FlushPolicy`): an append resolves once its DMA write completed, so it survives a
//! broker crash; surviving a power loss needs fdatasync, done per round (`Always`), within the
//! interval (`IntervalMs`, default 1000 ms) or only on seal/close (`Never`).

mod append;
mod appender;
mod checkpoint;
pub mod compaction;
mod config;
mod cut;
mod error;
mod files;
mod full_truncation;
mod high_watermark;
mod index;
mod leader_epoch;
mod log;
mod reader;
mod recovery;
mod retention;
mod rollback;
mod scan;
mod segment;
mod tail_cache;
mod truncation;
mod watch;

#[cfg(test)]
mod replication_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::cell::Cell;
use std::path::Path;

pub use compaction::transactions::{AbortedRange, CleanerTxns};
pub use compaction::txn_tracker::{LogTxnTracker, Marker};
pub use compaction::{CompactionMemo, CompactionOutcome, CompactionPolicy};
pub use config::{
    FlushPolicy, LogConfig, DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_INDEX_INTERVAL_BYTES,
    DEFAULT_SEGMENT_BYTES, PAGE_BYTES, PREALLOCATE_STEP_BYTES, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
};
pub use error::StorageError;
pub use high_watermark::{HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS, HIGH_WATERMARK_FILE_NAME};
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_FILE_NAME};
pub use log::{AppendOutcome, LogHealth, PartitionLog, ReadChunk, ReadResult};
pub use retention::RetentionPolicy;
pub use rollback::APPEND_RETRY_INTERVAL;
pub use truncation::TruncateOptions;

thread_local! {
    /// Whether this thread's executor already ran the probe workaround.
    static DMA_PROBE_PRIMED: Cell<bool> = const { Cell::new(false) };
}

/// Works around glommio 0.9's io-poll probe bug (docs/ARCHITECTURE.md section 11): the first `DmaFile` opened on
/// an executor decides, per device, whether reads go to the poll ring, by reading offset 0 of that
/// file; an empty file makes the probe "succeed" and every later DMA read fails with EOPNOTSUPP. Call
/// once per executor, before any other DMA open on the device of `data_dir`: it opens a non-empty
/// file there first. `PartitionLog::open` also calls it (once per thread) as a safety net.
pub async fn prime_dma_probe(data_dir: &Path) -> Result<(), StorageError> {
    // Blocking std calls: a 4 KiB file, once per executor at start-up.
    std::fs::create_dir_all(data_dir)?;
    let probe_path = data_dir.join(format!(
        ".dma-probe-{}-{}",
        std::process::id(),
        glommio::executor().id()
    ));
    match std::fs::write(&probe_path, [0xA5u8; PAGE_BYTES as usize]) {
        Ok(()) => {
            let opened = glommio::io::DmaFile::open(&probe_path).await;
            std::fs::remove_file(&probe_path)?;
            opened?.close().await?;
        }
        Err(write_error) => {
            // A full disk must not keep the broker from starting and serving what it holds:
            // any existing non-empty segment serves the probe just as well (it is only read).
            let _ = std::fs::remove_file(&probe_path);
            let Some(existing) = existing_nonempty_segment(data_dir) else {
                return Err(write_error.into());
            };
            tracing::warn!(error = %write_error, probe = %existing.display(), "cannot write the DMA probe file; probing an existing segment");
            glommio::io::DmaFile::open(&existing).await?.close().await?;
        }
    }
    DMA_PROBE_PRIMED.with(|primed| primed.set(true));
    Ok(())
}

/// A segment file of at least one page in some partition directory of `data_dir`.
fn existing_nonempty_segment(data_dir: &Path) -> Option<std::path::PathBuf> {
    let partitions = std::fs::read_dir(data_dir).ok()?;
    for partition in partitions.flatten() {
        let Ok(files) = std::fs::read_dir(partition.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let is_segment = path.extension().is_some_and(|e| e == "log");
            if is_segment && file.metadata().is_ok_and(|m| m.len() >= PAGE_BYTES) {
                return Some(path);
            }
        }
    }
    None
}

/// Runs [`prime_dma_probe`] unless this thread already did.
pub(crate) async fn prime_dma_probe_once(data_dir: &Path) -> Result<(), StorageError> {
    if DMA_PROBE_PRIMED.with(Cell::get) {
        return Ok(());
    }
    prime_dma_probe(data_dir).await
}
