//! The transactions of one data partition, on the shard that owns it: where each producer's open
//! transaction starts (the last stable offset is the earliest of them), the aborted transactions
//! (what Kafka keeps in `.txnindex`: read_committed fetches return the ones overlapping what they
//! read, so clients drop those records), and the epoch of each producer's last marker (a fenced
//! producer's late transactional writes are refused).
//!
//! Kept in memory and rebuilt when the partition opens by scanning its log, but only for
//! partitions that ever held a transactional batch: the first such append creates the file
//! [`TRANSACTIONAL_FLAG_FILE`] beside the segments (durably, before the append), so the many
//! partitions that never see a transaction open without a scan.

use std::collections::HashMap;
use std::path::Path;

use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::{batches, BatchHeader};
use ringbroker_protocol::records::control_record_type;

use crate::groups::{scan_log_to, ScanBound};
use crate::storage::PartitionLog;

/// Marks a partition directory whose log holds (or held) transactional batches.
pub const TRANSACTIONAL_FLAG_FILE: &str = "transactional";

/// Kafka's control record types (the key's second i16).
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// An aborted transaction of a partition (Kafka's `AbortedTxn`, without the LSO field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// The transaction state of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionTxns {
    /// Producer id → offset of its open transaction's first batch here.
    ongoing: HashMap<i64, i64>,
    /// Aborted transactions in marker order (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
    /// Producer id → epoch of its latest marker here.
    marker_epochs: HashMap<i64, i16>,
    /// Producer id → epoch the transaction coordinator confirmed this partition is in the
    /// producer's ongoing transaction for (KIP-890 verification, `verification`); ends with the
    /// transaction's marker, so a batch after it is verified again. Memory only: a new leader asks
    /// again.
    verified: HashMap<i64, i16>,
    /// The flag file exists (or the scan found transactional data).
    pub flagged: bool,
}

impl PartitionTxns {
    /// Refuses transactional batches of a producer epoch older than a marker already written here
    /// (a fenced zombie): Kafka's INVALID_PRODUCER_EPOCH.
    pub fn check_batches(&self, records: &[u8]) -> Result<(), i16> {
        for (header, _) in batches(records).flatten() {
            if !header.is_transactional() || header.is_control() {
                continue;
            }
            if let Some(&epoch) = self.marker_epochs.get(&header.producer_id) {
                if header.producer_epoch < epoch {
                    return Err(ResponseError::InvalidProducerEpoch.code());
                }
            }
        }
        Ok(())
    }

    /// Records the transactional batches of `records`, about to be appended at `base_offset`.
    pub fn note_batches(&mut self, records: &[u8], base_offset: i64) {
        let mut offset = base_offset;
        for (header, _) in batches(records).flatten() {
            self.note_data(&header, offset);
            offset += i64::from(header.last_offset_delta) + 1;
        }
    }

    /// Whether `producer_id` at `epoch` may write transactional batches here without asking the
    /// coordinator: its open transaction already has a batch here, or the coordinator said this
    /// partition is in it.
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.ongoing.contains_key(&producer_id) || self.verified.get(&producer_id) == Some(&epoch)
    }

    /// The coordinator confirmed this partition is in the transaction of `producer_id` at `epoch`.
    pub fn note_verified(&mut self, producer_id: i64, epoch: i16) {
        self.verified.insert(producer_id, epoch);
    }

    /// Refuses transactional batches of a producer whose transaction was not verified here (or
    /// ended since): Kafka's INVALID_TXN_STATE, "Partition was not added to the transaction".
    pub fn check_verified(&self, records: &[u8]) -> Result<(), i16> {
        for (header, _) in batches(records).flatten() {
            if header.is_transactional()
                && !header.is_control()
                && !self.in_transaction(header.producer_id, header.producer_epoch)
            {
                return Err(ResponseError::InvalidTxnState.code());
            }
        }
        Ok(())
    }

    fn note_data(&mut self, header: &BatchHeader, offset: i64) {
        if header.is_transactional() && !header.is_control() {
            self.ongoing.entry(header.producer_id).or_insert(offset);
        }
    }

    /// Undoes `note_batches` for an append at `base_offset` that failed.
    pub fn rollback(&mut self, base_offset: i64) {
        self.ongoing.retain(|_, first| *first < base_offset);
    }

    /// Records a marker of `producer_id` written at `marker_offset`.
    pub fn note_marker(&mut self, producer_id: i64, epoch: i16, commit: bool, marker_offset: i64) {
        self.verified.remove(&producer_id);
        let first = self.ongoing.remove(&producer_id);
        if !commit {
            if let Some(first_offset) = first {
                debug_assert!(first_offset < marker_offset);
                debug_assert!(self
                    .aborted
                    .last()
                    .is_none_or(|a| a.last_offset < marker_offset));
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: marker_offset,
                });
            }
        }
        let known = self.marker_epochs.entry(producer_id).or_insert(epoch);
        *known = (*known).max(epoch);
    }

    /// The first offset of the earliest open transaction, if any (the LSO is this, else the
    /// high watermark).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.values().copied().min()
    }

    /// The last stable offset given the partition's high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Aborted transactions overlapping offsets `[from, to)`, in order. The list is sorted by
    /// marker offset, so those ending before `from` are skipped by a binary search (a caught-up
    /// reader looks at the few newest only).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (deleted by retention).
    pub fn prune_below(&mut self, log_start_offset: i64) {
        let below = self
            .aborted
            .partition_point(|a| a.last_offset < log_start_offset);
        if below > 0 {
            self.aborted.drain(..below);
        }
    }

    /// Applies one batch read back from the log at start-up.
    fn replay_batch(&mut self, header: &BatchHeader, batch: &[u8]) -> Result<(), String> {
        if !header.is_transactional() {
            return Ok(());
        }
        self.flagged = true;
        if !header.is_control() {
            self.note_data(header, header.base_offset);
            return Ok(());
        }
        let Some(control_type) = control_record_type(batch) else {
            return Err(format!(
                "control batch at offset {} without a readable control key",
                header.base_offset
            ));
        };
        if control_type == CONTROL_TYPE_ABORT || control_type == CONTROL_TYPE_COMMIT {
            self.note_marker(
                header.producer_id,
                header.producer_epoch,
                control_type == CONTROL_TYPE_COMMIT,
                header.base_offset,
            );
        }
        Ok(())
    }

    /// Rebuilds a partition's state from its log up to its high watermark (at open; only when
    /// the flag file says it has transactional data).
    pub async fn recover(log: &PartitionLog) -> Result<PartitionTxns, String> {
        Self::recover_to(log, ScanBound::HighWatermark).await
    }

    /// Rebuilds a partition's state from its log up to `bound`: a new leader reads everything it
    /// holds (its followers' copy of the state was never kept: replication writes the log alone,
    /// and a copy from an earlier leadership may describe batches truncated since).
    pub async fn recover_to(log: &PartitionLog, bound: ScanBound) -> Result<PartitionTxns, String> {
        let mut state = PartitionTxns::default();
        if !log.dir().join(TRANSACTIONAL_FLAG_FILE).exists() {
            return Ok(state);
        }
        state.flagged = true;
        let what = format!(
            "rebuilding the transaction index of {}",
            log.dir().display()
        );
        scan_log_to(log, log.log_start_offset(), bound, &what, |bytes, from| {
            let mut position = 0usize;
            for item in batches(bytes) {
                let (header, _) = item.map_err(|e| e.to_string())?;
                let batch = &bytes[position..position + header.total_bytes()];
                position += header.total_bytes();
                if header.last_offset() < from {
                    continue;
                }
                state.replay_batch(&header, batch)?;
            }
            Ok(())
        })
        .await?;
        Ok(state)
    }
}

/// Creates the flag file of a partition directory durably (once per partition, before its first
/// transactional append).
pub fn create_flag_file(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(TRANSACTIONAL_FLAG_FILE);
    let file = std::fs::File::create(&path)?;
    file.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

    fn txn_batch(producer_id: i64, epoch: i16, records: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.set_producer(producer_id, epoch, 0);
        builder.set_transactional(true);
        for _ in 0..records {
            builder
                .push(&Record {
                    key: None,
                    value: Some(b"v"),
                    headers: &[],
                    timestamp_ms: 1,
                })
                .unwrap();
        }
        builder.finish().unwrap().to_vec()
    }

    #[test]
    fn the_lso_stops_at_the_earliest_open_transaction() {
        let mut state = PartitionTxns::default();
        assert_eq!(state.last_stable_offset(10), 10);
        state.note_batches(&txn_batch(1, 0, 3), 10);
        state.note_batches(&txn_batch(2, 0, 2), 13);
        state.note_batches(&txn_batch(1, 0, 1), 15);
        assert_eq!(state.last_stable_offset(16), 10);
        state.note_marker(1, 0, true, 16);
        assert_eq!(state.last_stable_offset(17), 13);
        state.note_marker(2, 0, false, 17);
        assert_eq!(state.last_stable_offset(18), 18);
        assert!(state.aborted_between(0, 13).is_empty());
        assert_eq!(
            state.aborted_between(0, 18),
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 13,
                last_offset: 17
            }]
        );
        assert!(state.aborted_between(18, 30).is_empty());
    }

    #[test]
    fn a_fenced_epoch_is_refused_after_its_marker() {
        let mut state = PartitionTxns::default();
        state.note_batches(&txn_batch(1, 0, 1), 0);
        state.note_marker(1, 1, false, 1);
        assert_eq!(
            state.check_batches(&txn_batch(1, 0, 1)),
            Err(ResponseError::InvalidProducerEpoch.code())
        );
        assert_eq!(state.check_batches(&txn_batch(1, 1, 1)), Ok(()));
    }

    #[test]
    fn a_failed_append_is_forgotten() {
        let mut state = PartitionTxns::default();
        state.note_batches(&txn_batch(1, 0, 1), 5);
        state.rollback(5);
        assert_eq!(state.first_unstable_offset(), None);
    }

    #[test]
    fn replayed_batches_rebuild_the_same_state() {
        let mut live = PartitionTxns::default();
        let data = txn_batch(4, 0, 2);
        live.note_batches(&data, 0);
        let marker = super::super::markers::control_batch(4, 0, false, 0).unwrap();
        live.note_marker(4, 0, false, 2);
        let mut replayed = PartitionTxns::default();
        let mut header = BatchHeader::parse(&data).unwrap();
        header.base_offset = 0;
        replayed.replay_batch(&header, &data).unwrap();
        let mut header = BatchHeader::parse(&marker).unwrap();
        header.base_offset = 2;
        replayed.replay_batch(&header, &marker).unwrap();
        replayed.flagged = false;
        assert_eq!(replayed, live);
    }
}
