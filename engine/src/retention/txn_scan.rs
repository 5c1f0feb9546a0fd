//! The transactions of a log read from the log itself (`storage::LogTxnTracker`), for the
//! replicas whose cleaner has no transaction table to ask: followers of user partitions (only
//! their leader keeps transaction state) and every replica of `__consumer_offsets` (the group
//! coordinator writes its transactional offsets and markers there, no table records them).
//!
//! Each log's tracker is kept between passes and fed only what reached the high watermark since,
//! so a pass reads the new records once, not the whole log. It starts over from the log start
//! when the log moved under it: the log start passed what it observed (retention, DeleteRecords,
//! a follower's full truncation) or the high watermark went below it (a truncation).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use ringbroker_protocol::batch::batches;
use ringbroker_protocol::records::control_record_type;

use crate::groups::scan_log;
use crate::storage::{CleanerTxns, LogTxnTracker, Marker, PartitionLog};
use crate::transactions::{CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT};

thread_local! {
    /// Per partition directory, on this shard's executor (each shard cleans the logs it owns).
    static TRACKERS: RefCell<HashMap<PathBuf, LogTxnTracker>> = RefCell::new(HashMap::new());
}

/// The transactions of `log` up to its high watermark, as its cleaner needs them.
pub async fn cleaner_txns(log: &PartitionLog) -> Result<CleanerTxns, String> {
    let dir = log.dir().to_path_buf();
    let log_start = log.log_start_offset();
    let high_watermark = log.high_watermark();
    let kept = TRACKERS.with(|trackers| trackers.borrow_mut().remove(&dir));
    let mut tracker = kept
        .filter(|t| (log_start..=high_watermark).contains(&t.observed_to()))
        .unwrap_or_else(|| LogTxnTracker::starting_at(log_start));
    tracker.forget_aborted_below(log_start);
    let from = tracker.observed_to();
    let what = format!("reading the transactions of {}", dir.display());
    scan_log(log, from, &what, |bytes, _| {
        for batch in batches(bytes) {
            let (header, batch) = batch.map_err(|e| e.to_string())?;
            let marker = if header.is_control() {
                match control_record_type(batch) {
                    Some(CONTROL_TYPE_COMMIT) => Some(Marker::Commit),
                    Some(CONTROL_TYPE_ABORT) => Some(Marker::Abort),
                    other => {
                        // Neither: the cleaner cannot tell what the transaction's records are.
                        return Err(format!(
                            "{what}: control batch of type {other:?} at offset {}",
                            header.base_offset
                        ));
                    }
                }
            } else {
                None
            };
            tracker.observe(&header, marker);
        }
        Ok(())
    })
    .await?;
    let view = tracker.cleaner_txns();
    TRACKERS.with(|trackers| trackers.borrow_mut().insert(dir, tracker));
    Ok(view)
}

/// A compaction pass of the log in `dir` cleaned below `offset`: the aborted transactions that
/// ended below it are gone from the log.
pub fn cleaned_below(dir: &std::path::Path, offset: i64) {
    TRACKERS.with(|trackers| {
        if let Some(tracker) = trackers.borrow_mut().get_mut(dir) {
            tracker.forget_aborted_below(offset);
        }
    });
}
