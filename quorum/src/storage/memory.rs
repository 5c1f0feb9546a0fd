//! The in-memory image of the durable raft state: the entries after the compaction point, the
//! hard state, the configuration and the latest snapshot. raft-rs reads it through
//! [`StorageView`] (its `Storage` trait is synchronous); the durable layer ([`super::RaftStorage`])
//! changes it only after the matching bytes are on disk, so raft-rs never sees a state that a
//! crash could take back.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};

use crate::error::Compacted;

/// The durable raft state, in memory.
#[derive(Debug, Default)]
pub struct LogState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// Entries from `base_index + 1` on are in `entries`; `base_index` itself is compacted away.
    base_index: u64,
    /// The term of the entry at `base_index`.
    base_term: u64,
    /// `entries[i].index == base_index + 1 + i`.
    entries: Vec<Entry>,
    /// The latest snapshot's index, term and configuration (index 0: none yet).
    snapshot_metadata: SnapshotMetadata,
    snapshot_data: Bytes,
}

impl LogState {
    pub fn new(base_index: u64, base_term: u64, conf_state: ConfState) -> Self {
        LogState {
            base_index,
            base_term,
            conf_state,
            ..LogState::default()
        }
    }

    pub fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    pub fn base(&self) -> (u64, u64) {
        (self.base_index, self.base_term)
    }

    pub fn entries_after_base(&self) -> &[Entry] {
        &self.entries
    }

    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_metadata
    }

    pub fn snapshot_data(&self) -> &Bytes {
        &self.snapshot_data
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }

    /// The term of the entry at `index`, if the log still holds it (or it is the base).
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    /// Appends `entries`, first dropping every entry at or after the first new index (a leader's
    /// entries replace a conflicting suffix). The new entries must follow the log without a gap.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(
            first.index > self.base_index && first.index <= self.last_index() + 1,
            "entries from {} do not continue the log ({}..={})",
            first.index,
            self.first_index(),
            self.last_index()
        );
        debug_assert!(entries.windows(2).all(|w| w[1].index == w[0].index + 1));
        self.entries
            .truncate((first.index - self.base_index - 1) as usize);
        self.entries.extend_from_slice(entries);
    }

    /// Drops every entry up to and including `new_base`, which must be in the log.
    pub fn compact(&mut self, new_base: u64) {
        if new_base <= self.base_index {
            return;
        }
        let term = self.term_of(new_base).unwrap_or_else(|| {
            panic!(
                "compact to {new_base} beyond the last index {}",
                self.last_index()
            )
        });
        self.entries.drain(..(new_base - self.base_index) as usize);
        self.base_index = new_base;
        self.base_term = term;
    }

    /// Replaces the whole log by `snapshot`: an installed snapshot from the leader.
    pub fn reset_to_snapshot(&mut self, metadata: SnapshotMetadata, data: Bytes) {
        self.entries.clear();
        self.base_index = metadata.index;
        self.base_term = metadata.term;
        self.conf_state = metadata.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(metadata.term);
        self.hard_state.commit = self.hard_state.commit.max(metadata.index);
        self.set_snapshot(metadata, data);
    }

    /// Records a newer snapshot; the log keeps its entries.
    pub fn set_snapshot(&mut self, metadata: SnapshotMetadata, data: Bytes) {
        debug_assert!(metadata.index >= self.snapshot_metadata.index);
        self.snapshot_metadata = metadata;
        self.snapshot_data = data;
    }

    /// Committed entries from `from_index` on, up to `max_bytes` of data (at least one entry when
    /// any is there). Entries with empty data (a new leader's first entry) are included so the
    /// reader's position moves past them.
    pub fn read_committed(
        &self,
        from_index: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, Compacted> {
        if from_index < self.first_index() {
            return Err(Compacted {
                snapshot_index: self.snapshot_metadata.index,
            });
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let commit = self.hard_state.commit.min(self.last_index());
        for index in from_index..=commit {
            let Some(entry) = self.entry(index) else {
                break;
            };
            if !out.is_empty() && bytes + entry.data.len() > max_bytes {
                break;
            }
            bytes += entry.data.len();
            out.push((index, entry.data.clone()));
        }
        Ok(out)
    }
}

/// raft-rs's read access to the [`LogState`] shared with the durable layer.
#[derive(Clone)]
pub struct StorageView {
    state: Rc<RefCell<LogState>>,
}

impl StorageView {
    pub fn new(state: Rc<RefCell<LogState>>) -> Self {
        StorageView { state }
    }
}

impl raft::Storage for StorageView {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let state = self.state.borrow();
        Ok(RaftState::new(
            state.hard_state.clone(),
            state.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let state = self.state.borrow();
        if low < state.first_index() {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > state.last_index() + 1 {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let start = (low - state.first_index()) as usize;
        let end = (high - state.first_index()) as usize;
        let mut entries = state.entries[start..end].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let state = self.state.borrow();
        if index < state.base_index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        state
            .term_of(index)
            .ok_or(raft::Error::Store(RaftStorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.state.borrow().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.state.borrow().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let state = self.state.borrow();
        let metadata = &state.snapshot_metadata;
        // The log is compacted only up to a snapshot, so the latest one covers every index
        // raft-rs can no longer send as entries. A newer one comes with the next snapshot interval.
        if metadata.index == 0 || metadata.index < request_index {
            return Err(raft::Error::Store(
                RaftStorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(metadata.clone());
        snapshot.data = state.snapshot_data.clone();
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from_static(data),
            ..Entry::default()
        }
    }

    #[test]
    fn append_replaces_a_conflicting_suffix_and_compact_keeps_the_base_term() {
        let mut state = LogState::new(0, 0, ConfState::default());
        state.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]);
        state.append(&[entry(2, 2, b"B")]);
        assert_eq!(state.last_index(), 2);
        assert_eq!(state.term_of(2), Some(2));
        state.compact(1);
        assert_eq!(state.base(), (1, 1));
        assert_eq!(state.first_index(), 2);
        assert_eq!(state.entry(1), None);

        let view = StorageView::new(Rc::new(RefCell::new(state)));
        assert_eq!(view.term(1).ok(), Some(1));
        assert!(view.term(0).is_err());
        assert!(view
            .entries(1, 3, None, GetEntriesContext::empty(false))
            .is_err());
        let got = view
            .entries(2, 3, None, GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(&got[0].data[..], b"B");
    }

    #[test]
    fn read_committed_stops_at_commit_and_reports_compaction() {
        let mut state = LogState::new(0, 0, ConfState::default());
        state.append(&[entry(1, 1, b""), entry(2, 1, b"bb"), entry(3, 1, b"cc")]);
        state.hard_state.commit = 2;
        let read = state.read_committed(1, 1 << 20).expect("read");
        assert_eq!(read.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2]);
        assert!(state.read_committed(3, 1 << 20).expect("read").is_empty());
        // One entry always comes back, even past max_bytes.
        assert_eq!(state.read_committed(2, 0).expect("read").len(), 1);
        state.compact(1);
        assert_eq!(
            state.read_committed(1, 1 << 20),
            Err(Compacted { snapshot_index: 0 })
        );
    }
}
