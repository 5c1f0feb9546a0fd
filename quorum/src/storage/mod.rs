//! Durable raft storage for raft-rs in the quorum's data dir: the log file (entries and hard
//! state, one fdatasync per append), the snapshot file (replaced atomically) and their in-memory
//! image, which raft-rs reads through [`StorageView`]. Memory changes only after the bytes are
//! durable, so the driver may tell raft-rs "persisted" as soon as a call here returns.
//!
//! Recovery (`open`) loads the snapshot, replays the log (cutting a torn tail) and reconciles the
//! two after a crash between writing a snapshot and rewriting the log: log entries that do not
//! continue the snapshot are dropped.

mod codec;
mod error;
mod files;
mod log_file;
mod memory;
mod record;
mod snapshot_file;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

pub use error::StorageError;
pub use memory::{LogState, StorageView};

use codec::LogHeader;
use log_file::{LogFile, LOG_FILE_NAME};
use snapshot_file::SNAPSHOT_FILE_NAME;

/// The quorum's durable raft state and its in-memory image.
pub struct RaftStorage {
    dir: PathBuf,
    voters: Vec<u64>,
    state: Rc<RefCell<LogState>>,
    log: LogFile,
    /// The hard state the log file ends with.
    durable_hard_state: HardState,
}

/// What `open` found and repaired, for the start-up log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes of a torn or corrupt tail cut from the log.
    pub cut_bytes: u64,
    /// Log entries dropped because they did not continue the snapshot.
    pub dropped_entries: usize,
}

impl RaftStorage {
    /// Opens (or creates) the storage in `dir` for a quorum of `voters`.
    pub async fn open(
        dir: &Path,
        voters: &[u64],
    ) -> Result<(RaftStorage, RecoveryReport), StorageError> {
        files::wake_guard(async {
            let mut voters = voters.to_vec();
            voters.sort_unstable();
            files::create_dir_all(dir).await?;
            let log_path = dir.join(LOG_FILE_NAME);
            let snapshot_path = dir.join(SNAPSHOT_FILE_NAME);
            files::remove_if_exists(&files::temporary_path(&log_path)).await?;
            files::remove_if_exists(&files::temporary_path(&snapshot_path)).await?;

            let snapshot = snapshot_file::read(&snapshot_path).await?;
            let Some((log, loaded)) = LogFile::open(&log_path).await? else {
                if snapshot.is_some() {
                    // The log holds the vote; without it this node could vote twice in a term.
                    return Err(StorageError::corrupt(
                        &log_path,
                        "it is missing while a snapshot exists",
                    ));
                }
                let storage = RaftStorage::create_fresh(dir, voters).await?;
                return Ok((storage, RecoveryReport::default()));
            };
            check_voters(&log_path, &loaded.header.voters, &voters)?;
            if let Some((metadata, _)) = &snapshot {
                let mut stored = metadata.get_conf_state().voters.clone();
                stored.sort_unstable();
                check_voters(&snapshot_path, &stored, &voters)?;
            }
            let mut report = RecoveryReport {
                cut_bytes: loaded.cut.as_ref().map_or(0, |(_, bytes)| *bytes),
                dropped_entries: 0,
            };
            let (state, rewrite) = reconcile(&log_path, loaded, snapshot, &voters, &mut report)?;
            let durable_hard_state = state.hard_state.clone();
            let mut storage = RaftStorage {
                dir: dir.to_owned(),
                voters,
                state: Rc::new(RefCell::new(state)),
                log,
                durable_hard_state,
            };
            if rewrite {
                storage.rewrite_log().await?;
            }
            Ok((storage, report))
        })
        .await
    }

    async fn create_fresh(dir: &Path, voters: Vec<u64>) -> Result<RaftStorage, StorageError> {
        let header = LogHeader {
            base_index: 0,
            base_term: 0,
            voters: voters.clone(),
        };
        let hard_state = HardState::default();
        let log = LogFile::create(&dir.join(LOG_FILE_NAME), &header, &hard_state, &[]).await?;
        let conf_state = conf_state_of(&voters);
        Ok(RaftStorage {
            dir: dir.to_owned(),
            voters,
            state: Rc::new(RefCell::new(LogState::new(0, 0, conf_state))),
            log,
            durable_hard_state: hard_state,
        })
    }

    /// The in-memory image, shared with the quorum's readers. Never hold a borrow across an await.
    pub fn state(&self) -> &Rc<RefCell<LogState>> {
        &self.state
    }

    /// raft-rs's view of this storage.
    pub fn view(&self) -> StorageView {
        StorageView::new(self.state.clone())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn snapshot_index(&self) -> u64 {
        self.state.borrow().snapshot_metadata().index
    }

    /// Makes `entries` and the hard state durable, then shows them to raft-rs. `hard_state` is a
    /// Ready's new hard state; when only its commit moved and there are no entries (`must_sync`
    /// false) nothing is written now: the commit rides along with the next durable write.
    pub async fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        must_sync: bool,
    ) -> Result<(), StorageError> {
        files::wake_guard(async {
            if let Some(state) = hard_state {
                self.state.borrow_mut().hard_state = state.clone();
            }
            let current = self.state.borrow().hard_state.clone();
            let changed = current != self.durable_hard_state;
            if entries.is_empty() && (!changed || !must_sync) {
                return Ok(());
            }
            self.log
                .append(entries, changed.then_some(&current))
                .await?;
            self.durable_hard_state = current;
            self.state.borrow_mut().append(entries);
            Ok(())
        })
        .await
    }

    /// Records a new commit index in memory (raft-rs does not need it durable at once).
    pub fn set_commit(&mut self, commit: u64) {
        let mut state = self.state.borrow_mut();
        debug_assert!(commit >= state.hard_state.commit);
        state.hard_state.commit = commit;
    }

    /// Writes the hard state if memory is ahead of the file (at shutdown: the latest commit).
    pub async fn flush_hard_state(&mut self) -> Result<(), StorageError> {
        self.persist(&[], None, true).await
    }

    /// Replaces the whole local state by a snapshot the leader sent.
    pub async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        files::wake_guard(async {
            let metadata = snapshot.get_metadata().clone();
            snapshot_file::write(
                &self.dir.join(SNAPSHOT_FILE_NAME),
                &metadata,
                &snapshot.data,
            )
            .await?;
            self.state
                .borrow_mut()
                .reset_to_snapshot(metadata, snapshot.data.clone());
            self.rewrite_log().await
        })
        .await
    }

    /// Stores the state machine's snapshot as of `index` (applied, hence committed and in the log).
    pub async fn save_snapshot(&mut self, index: u64, data: Bytes) -> Result<(), StorageError> {
        files::wake_guard(async {
            let metadata = {
                let state = self.state.borrow();
                assert!(
                    index <= state.hard_state.commit,
                    "snapshot at {index} beyond the commit index"
                );
                assert!(
                    index > state.snapshot_metadata().index,
                    "snapshot at {index} is not newer"
                );
                let term = state
                    .term_of(index)
                    .unwrap_or_else(|| panic!("snapshot at {index}, outside the log"));
                let mut metadata = SnapshotMetadata {
                    index,
                    term,
                    ..SnapshotMetadata::default()
                };
                metadata.set_conf_state(state.conf_state.clone());
                metadata
            };
            snapshot_file::write(&self.dir.join(SNAPSHOT_FILE_NAME), &metadata, &data).await?;
            self.state.borrow_mut().set_snapshot(metadata, data);
            Ok(())
        })
        .await
    }

    /// Drops the entries up to `new_base` (at most the snapshot index) from memory and disk.
    pub async fn compact(&mut self, new_base: u64) -> Result<(), StorageError> {
        files::wake_guard(async {
            {
                let state = self.state.borrow();
                assert!(
                    new_base <= state.snapshot_metadata().index,
                    "compaction to {new_base} beyond the snapshot"
                );
                if new_base <= state.base().0 {
                    return Ok(());
                }
            }
            self.state.borrow_mut().compact(new_base);
            self.rewrite_log().await
        })
        .await
    }

    /// Writes the log file anew from memory (header at the current base, hard state, entries).
    async fn rewrite_log(&mut self) -> Result<(), StorageError> {
        let (header, hard_state, entries) = {
            let state = self.state.borrow();
            let (base_index, base_term) = state.base();
            let header = LogHeader {
                base_index,
                base_term,
                voters: self.voters.clone(),
            };
            (
                header,
                state.hard_state.clone(),
                state.entries_after_base().to_vec(),
            )
        };
        let path = self.log.path().to_owned();
        let log = LogFile::create(&path, &header, &hard_state, &entries).await?;
        let old = std::mem::replace(&mut self.log, log);
        old.close().await?;
        self.durable_hard_state = hard_state;
        Ok(())
    }

    /// Closes the log after writing the latest hard state.
    pub async fn close(mut self) -> Result<(), StorageError> {
        files::wake_guard(async move {
            self.flush_hard_state().await?;
            self.log.close().await
        })
        .await
    }
}

fn conf_state_of(voters: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        ..ConfState::default()
    }
}

fn check_voters(path: &Path, stored: &[u64], configured: &[u64]) -> Result<(), StorageError> {
    if stored == configured {
        return Ok(());
    }
    Err(StorageError::VotersChanged {
        path: path.to_owned(),
        stored: stored.to_vec(),
        configured: configured.to_vec(),
    })
}

/// Builds the in-memory state from the log and the snapshot; `true` when the log file must be
/// rewritten because entries were dropped.
fn reconcile(
    log_path: &Path,
    loaded: log_file::LoadedLog,
    snapshot: Option<(SnapshotMetadata, Bytes)>,
    voters: &[u64],
    report: &mut RecoveryReport,
) -> Result<(LogState, bool), StorageError> {
    let corrupt = |reason: String| StorageError::corrupt(log_path, reason);
    let (snapshot_index, snapshot_term) = snapshot
        .as_ref()
        .map_or((0, 0), |(metadata, _)| (metadata.index, metadata.term));
    let header = &loaded.header;
    let mut state = LogState::new(header.base_index, header.base_term, conf_state_of(voters));
    state.append(&loaded.entries);
    let mut rewrite = false;
    if header.base_index > snapshot_index {
        return Err(corrupt(format!(
            "the log starts after {} but the snapshot ends at {snapshot_index}",
            header.base_index
        )));
    }
    match state.term_of(snapshot_index) {
        Some(term) if term == snapshot_term => {}
        Some(_) | None if snapshot_index == header.base_index => {
            return Err(corrupt(format!(
                "the log's base term {} differs from the snapshot's term {snapshot_term} at {snapshot_index}",
                header.base_term
            )));
        }
        _ => {
            // A crash after installing a leader's snapshot, before the log was rewritten: the log
            // does not continue the snapshot, so none of it stays.
            report.dropped_entries = loaded.entries.len();
            tracing::warn!(path = %log_path.display(), snapshot_index, dropped = report.dropped_entries,
                "raft log: dropping entries that do not continue the snapshot");
            state = LogState::new(snapshot_index, snapshot_term, conf_state_of(voters));
            rewrite = true;
        }
    }
    let mut hard_state = loaded.hard_state.unwrap_or_default();
    hard_state.term = hard_state.term.max(snapshot_term);
    hard_state.commit = hard_state.commit.max(snapshot_index);
    if hard_state.commit > state.last_index() {
        // The commit index need not be durable (raft learns it again from the leader); a lower
        // one is always safe, one past the log would make raft-rs refuse to start.
        tracing::warn!(path = %log_path.display(), commit = hard_state.commit, last_index = state.last_index(),
            "raft log: the stored commit index is past the log; lowering it");
        hard_state.commit = state.last_index();
    }
    state.hard_state = hard_state;
    if let Some((metadata, data)) = snapshot {
        state.set_snapshot(metadata, data);
    }
    Ok((state, rewrite))
}
