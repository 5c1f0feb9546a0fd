//! The leader-epoch cache of one log (Kafka's `LeaderEpochFileCache`): which leader epoch started
//! at which offset, so that a replica can answer OffsetForLeaderEpoch and a follower can find where
//! its log diverged from a new leader's.
//!
//! - An entry `(epoch, start_offset)` is added when an appended batch carries an epoch above the
//!   latest one (start offset = that batch's base offset). Batches with a negative epoch (clients
//!   send -1; data written before epochs were stamped) add nothing.
//! - Kept in memory; persisted as `leader-epoch-checkpoint` in the partition directory, in Kafka's
//!   format: a version line `0`, a count line, then one `epoch start_offset` line per entry.
//! - Persisted AHEAD of the data: the appender writes the file (atomically, through glommio) before
//!   any write round that holds a batch of a new epoch. The file is therefore always a superset of
//!   the epochs on disk, and recovery only has to drop the entries at or past the recovered log end
//!   (`truncate_from_end`). A missing or damaged file is rebuilt by scanning the batch headers.
//! - Truncated with the log (`truncate_from_end`) and when the log start moves
//!   (`truncate_from_start`, as Kafka does for retention and DeleteRecords).

use std::path::Path;

use super::error::StorageError;
use super::files;

/// File name of the checkpoint inside the partition directory (Kafka's).
pub const LEADER_EPOCH_FILE_NAME: &str = "leader-epoch-checkpoint";

/// The only version of the checkpoint format (Kafka's `CURRENT_VERSION`).
const LEADER_EPOCH_FILE_VERSION: u32 = 0;

/// Largest number of entries a checkpoint may declare: one per leader change still in the log;
/// far more than any log sees, small enough that a damaged count cannot make us allocate much.
const LEADER_EPOCH_ENTRIES_MAX: usize = 1 << 20;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epochs of one log, ascending in both fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
    /// The in-memory entries differ from the checkpoint file.
    dirty: bool,
}

impl LeaderEpochCache {
    /// A cache holding `entries` (as loaded from the checkpoint: in sync with it).
    pub(crate) fn from_entries(entries: Vec<EpochEntry>) -> LeaderEpochCache {
        debug_assert!(is_ascending(&entries));
        LeaderEpochCache {
            entries,
            dirty: false,
        }
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Whether the checkpoint file lags the entries.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The checkpoint bytes of the entries, marking them persisted (the caller writes them; on
    /// failure it calls `mark_dirty`).
    pub(crate) fn take_checkpoint(&mut self) -> Vec<u8> {
        self.dirty = false;
        encode(&self.entries)
    }

    /// Whether a batch of `epoch` may follow the log's batches: negative epochs carry no epoch;
    /// others may not go below the latest one (that would rewrite the log's history).
    pub(crate) fn admits(&self, epoch: i32) -> bool {
        epoch < 0 || self.latest_epoch().is_none_or(|latest| epoch >= latest)
    }

    /// Records that the batch at `start_offset` carries `epoch`: adds an entry when the epoch is
    /// above the latest one. Returns whether an entry was added.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|last| last.start_offset <= start_offset),
            "epoch start offsets grow"
        );
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.dirty = true;
        true
    }

    /// Drops the entries starting at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) {
        let kept = self
            .entries
            .partition_point(|entry| entry.start_offset < end_offset);
        if kept < self.entries.len() {
            self.entries.truncate(kept);
            self.dirty = true;
        }
    }

    /// The log now starts at `start_offset`: entries that started at or before it go, except the
    /// last of them, which now starts at `start_offset` (its epoch covers the first records).
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) {
        let below = self
            .entries
            .partition_point(|entry| entry.start_offset <= start_offset);
        let Some(last_below) = below.checked_sub(1) else {
            return;
        };
        let moved = EpochEntry {
            epoch: self.entries[last_below].epoch,
            start_offset,
        };
        if last_below == 0 && self.entries[0] == moved {
            return;
        }
        self.entries.drain(..last_below);
        self.entries[0] = moved;
        self.dirty = true;
    }

    /// Kafka's OffsetForLeaderEpoch answer for `requested_epoch` on a log ending at
    /// `log_end_offset` (`LeaderEpochFileCache.endOffsetFor`):
    /// - the latest epoch: `(epoch, log_end_offset)`;
    /// - an older epoch: the largest epoch <= it and the start offset of the epoch after that one;
    /// - below every known epoch: `(requested_epoch, start of the first epoch)` (the data before
    ///   was removed; a follower truncates to where the log's known history starts);
    /// - `None` (UNDEFINED: epoch -1, offset -1) for epoch -1, an empty cache, or an epoch above
    ///   the latest one.
    pub(crate) fn end_offset_for(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<(i32, i64)> {
        let latest = self.latest_epoch()?;
        if requested_epoch < 0 || requested_epoch > latest {
            return None;
        }
        if requested_epoch == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self
            .entries
            .partition_point(|entry| entry.epoch <= requested_epoch);
        let next_start = self.entries[higher].start_offset;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].epoch, next_start)),
            None => Some((requested_epoch, next_start)),
        }
    }
}

fn is_ascending(entries: &[EpochEntry]) -> bool {
    entries
        .windows(2)
        .all(|pair| pair[0].epoch < pair[1].epoch && pair[0].start_offset <= pair[1].start_offset)
}

/// Kafka's checkpoint text: version, count, `epoch start_offset` lines.
pub(crate) fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut text = format!("{LEADER_EPOCH_FILE_VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
    }
    text.into_bytes()
}

/// Parses a checkpoint; an error says what is wrong (the caller rebuilds the cache by a scan).
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<EpochEntry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.lines();
    let version = lines.next().ok_or("empty file")?;
    if version.trim() != LEADER_EPOCH_FILE_VERSION.to_string() {
        return Err(format!("unknown version {version:?}"));
    }
    let count: usize = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or("missing or bad entry count")?;
    if count > LEADER_EPOCH_ENTRIES_MAX {
        return Err(format!("{count} entries"));
    }
    let mut entries = Vec::with_capacity(count);
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let parsed = (
            fields.next().and_then(|field| field.parse::<i32>().ok()),
            fields.next().and_then(|field| field.parse::<i64>().ok()),
            fields.next(),
        );
        let (Some(epoch), Some(start_offset), None) = parsed else {
            return Err(format!("bad entry line {line:?}"));
        };
        if epoch < 0 || start_offset < 0 {
            return Err(format!("negative entry {line:?}"));
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count || lines.any(|line| !line.trim().is_empty()) {
        return Err(format!(
            "{} entries where {count} were declared",
            entries.len()
        ));
    }
    if !is_ascending(&entries) {
        return Err("entries out of order".into());
    }
    Ok(entries)
}

/// The entries of the checkpoint in `dir`: `Ok(None)` when the file is missing or damaged (the
/// caller rebuilds them from the log).
pub(crate) async fn load(dir: &Path) -> Result<Option<Vec<EpochEntry>>, StorageError> {
    let path = dir.join(LEADER_EPOCH_FILE_NAME);
    let Some(bytes) = files::read_small_file(&path).await? else {
        return Ok(None);
    };
    match decode(&bytes) {
        Ok(entries) => Ok(Some(entries)),
        Err(why) => {
            tracing::warn!(path = %path.display(), %why, "rebuilding a damaged leader-epoch checkpoint from the log");
            Ok(None)
        }
    }
}

/// Replaces the checkpoint in `dir` with `bytes` (temporary file, fdatasync, rename, directory
/// sync, all through glommio: no blocking call on the executor).
pub(crate) async fn persist(dir: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    files::write_file_atomically(&dir.join(LEADER_EPOCH_FILE_NAME), bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.iter().map(|&(e, s)| entry(e, s)).collect())
    }

    #[test]
    fn assign_adds_only_higher_epochs() {
        let mut epochs = LeaderEpochCache::default();
        assert!(!epochs.assign(-1, 0), "no epoch");
        assert!(epochs.assign(0, 0));
        assert!(!epochs.assign(0, 5), "same epoch");
        assert!(epochs.assign(3, 10));
        assert!(!epochs.assign(2, 12), "lower epoch");
        assert!(epochs.is_dirty());
        assert_eq!(epochs.entries(), &[entry(0, 0), entry(3, 10)]);
        assert_eq!(epochs.latest_epoch(), Some(3));
        assert!(epochs.admits(3) && epochs.admits(4) && epochs.admits(-1));
        assert!(!epochs.admits(2));
        epochs.take_checkpoint();
        assert!(!epochs.is_dirty());
    }

    /// The cases of Kafka's `LeaderEpochFileCacheTest` for `endOffsetFor`.
    #[test]
    fn end_offset_for_follows_kafka() {
        let epochs = cache(&[(1, 0), (3, 20), (6, 50)]);
        let log_end_offset = 70;
        assert_eq!(epochs.end_offset_for(6, log_end_offset), Some((6, 70)));
        assert_eq!(epochs.end_offset_for(3, log_end_offset), Some((3, 50)));
        // Epochs 4 and 5 never wrote: the largest epoch below is 3, which ended where 6 began.
        assert_eq!(epochs.end_offset_for(5, log_end_offset), Some((3, 50)));
        assert_eq!(epochs.end_offset_for(2, log_end_offset), Some((1, 20)));
        assert_eq!(epochs.end_offset_for(1, log_end_offset), Some((1, 20)));
        // Below every known epoch: where the known history starts.
        assert_eq!(epochs.end_offset_for(0, log_end_offset), Some((0, 0)));
        assert_eq!(epochs.end_offset_for(7, log_end_offset), None);
        assert_eq!(epochs.end_offset_for(-1, log_end_offset), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 10), None);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut epochs = cache(&[(1, 0), (3, 20), (6, 50)]);
        epochs.truncate_from_end(51);
        assert!(!epochs.is_dirty(), "nothing starts at or after 51");
        epochs.truncate_from_end(50);
        assert_eq!(epochs.entries(), &[entry(1, 0), entry(3, 20)]);
        assert!(epochs.is_dirty());
        let mut epochs = cache(&[(1, 0), (3, 20), (6, 50)]);
        epochs.truncate_from_start(30);
        assert_eq!(epochs.entries(), &[entry(3, 30), entry(6, 50)]);
        epochs.truncate_from_start(50);
        assert_eq!(epochs.entries(), &[entry(6, 50)]);
        epochs.truncate_from_start(10);
        assert_eq!(
            epochs.entries(),
            &[entry(6, 50)],
            "below the first: no change"
        );
    }

    #[test]
    fn checkpoint_text_round_trips_and_damage_is_detected() {
        let entries = vec![entry(0, 0), entry(4, 1_000), entry(9, 1_000)];
        let bytes = encode(&entries);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "0\n3\n0 0\n4 1000\n9 1000\n"
        );
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert_eq!(decode(b"0\n0\n").unwrap(), Vec::new());
        for damaged in [
            &b""[..],
            b"1\n0\n",
            b"0\n2\n0 0\n",
            b"0\n1\n0 0\n1 5\n",
            b"0\n1\n0\n",
            b"0\n1\nx 0\n",
            b"0\n2\n3 0\n1 5\n",
            b"0\n2\n1 9\n3 5\n",
            b"0\n1\n-1 0\n",
            b"0\n99999999999\n",
            b"0\n1\n0 0 7\n",
        ] {
            assert!(
                decode(damaged).is_err(),
                "{:?}",
                String::from_utf8_lossy(damaged)
            );
        }
    }
}
