//! Storage tests on a real glommio executor and real files: round trips across reopen, torn and
//! corrupt tails, conflicting suffixes, snapshots with compaction, an installed snapshot, a crash
//! between a snapshot and the log rewrite, and a changed voter set.

use std::future::Future;
use std::path::Path;

use bytes::Bytes;
use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::Storage as _;

use super::log_file::LOG_FILE_NAME;
use super::*;

pub(crate) fn run<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(crate::testing::TEST_IO_MEMORY_BYTES)
        .spawn(make)
        .expect("spawn executor")
        .join()
        .expect("test body panicked");
}

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(data.as_bytes().to_vec()),
        ..Entry::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term, &format!("e{i}"))).collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

fn data_of(storage: &RaftStorage, index: u64) -> String {
    let state = storage.state().borrow();
    let entry = state.entry(index).expect("entry present");
    String::from_utf8(entry.data.to_vec()).expect("utf8")
}

async fn reopen(dir: &Path) -> (RaftStorage, RecoveryReport) {
    RaftStorage::open(dir, &[1, 2, 3]).await.expect("reopen")
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=5, 1), Some(&hard_state(1, 2, 3)), true)
            .await
            .expect("persist");
        storage.close().await.expect("close");

        let (storage, report) = reopen(temp.path()).await;
        assert_eq!(report, RecoveryReport::default());
        let view = storage.view();
        assert_eq!(view.first_index().ok(), Some(1));
        assert_eq!(view.last_index().ok(), Some(5));
        let initial = view.initial_state().expect("initial state");
        assert_eq!(initial.hard_state, hard_state(1, 2, 3));
        assert_eq!(initial.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(data_of(&storage, 4), "e4");
    });
}

#[test]
fn a_commit_only_change_waits_for_the_next_sync_or_close() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=3, 1), Some(&hard_state(1, 1, 1)), true)
            .await
            .expect("persist");
        storage
            .persist(&[], Some(&hard_state(1, 1, 3)), false)
            .await
            .expect("commit only");
        let log_bytes = std::fs::read(temp.path().join(LOG_FILE_NAME)).expect("read");
        storage.close().await.expect("close");
        let after_close = std::fs::read(temp.path().join(LOG_FILE_NAME)).expect("read");
        assert!(
            after_close.len() > log_bytes.len(),
            "close writes the newer commit"
        );
        let (storage, _) = reopen(temp.path()).await;
        assert_eq!(storage.state().borrow().hard_state.commit, 3);
    });
}

#[test]
fn a_torn_tail_is_cut_at_every_length_and_appends_continue_after_it() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=3, 1), Some(&hard_state(1, 1, 0)), true)
            .await
            .expect("persist");
        storage.close().await.expect("close");
        let path = temp.path().join(LOG_FILE_NAME);
        let whole = std::fs::read(&path).expect("read");
        let entry_bytes = {
            let mut one = Vec::new();
            record::encode(
                record::RecordKind::Entry,
                &codec::encode_entry(&entry(3, 1, "e3")).expect("encode"),
                &mut one,
            );
            one.len()
        };
        // One append wrote entries 1..=3, then the hard state. Tearing inside the hard state
        // record cuts it alone; tearing deeper cuts entry 3 too.
        let hard_state_bytes = record::RECORD_PREFIX_BYTES + 1 + 24;
        for torn in 1..hard_state_bytes + entry_bytes {
            std::fs::write(&path, &whole[..whole.len() - torn]).expect("tear");
            let (mut storage, report) = reopen(temp.path()).await;
            // Exactly one whole record gone is a clean end, not damage.
            let at_boundary = torn == hard_state_bytes;
            assert_eq!(report.cut_bytes > 0, !at_boundary, "torn by {torn}");
            let expected_last = if torn <= hard_state_bytes { 3 } else { 2 };
            assert_eq!(
                storage.state().borrow().last_index(),
                expected_last,
                "torn by {torn}"
            );
            // The cut file takes appends and replays them.
            storage
                .persist(
                    &[entry(expected_last + 1, 2, "after")],
                    Some(&hard_state(2, 1, 0)),
                    true,
                )
                .await
                .expect("append after cut");
            storage.close().await.expect("close");
            let (storage, report) = reopen(temp.path()).await;
            assert_eq!(report.cut_bytes, 0);
            assert_eq!(data_of(&storage, expected_last + 1), "after");
            assert_eq!(storage.state().borrow().hard_state.term, 2);
            storage.close().await.expect("close");
        }
    });
}

#[test]
fn a_corrupt_last_record_is_cut() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=3, 1), None, true)
            .await
            .expect("persist");
        storage.close().await.expect("close");
        let path = temp.path().join(LOG_FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("corrupt");
        let (storage, report) = reopen(temp.path()).await;
        assert!(report.cut_bytes > 0);
        assert_eq!(storage.state().borrow().last_index(), 2);
        let cut_len = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(cut_len, bytes.len() as u64 - report.cut_bytes);
    });
}

#[test]
fn a_new_leaders_entries_replace_a_conflicting_suffix_across_reopen() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=5, 1), None, true)
            .await
            .expect("persist");
        storage
            .persist(&[entry(3, 2, "new3"), entry(4, 2, "new4")], None, true)
            .await
            .expect("overwrite");
        assert_eq!(storage.state().borrow().last_index(), 4);
        storage.close().await.expect("close");
        let (storage, _) = reopen(temp.path()).await;
        assert_eq!(storage.state().borrow().last_index(), 4);
        assert_eq!(data_of(&storage, 3), "new3");
        assert_eq!(storage.view().term(4).ok(), Some(2));
        assert_eq!(data_of(&storage, 2), "e2");
    });
}

#[test]
fn snapshot_and_compaction_survive_reopen() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=10, 1), Some(&hard_state(1, 1, 8)), true)
            .await
            .expect("persist");
        storage
            .save_snapshot(8, Bytes::from_static(b"state@8"))
            .await
            .expect("snapshot");
        storage.compact(6).await.expect("compact");
        assert_eq!(storage.view().first_index().ok(), Some(7));
        storage.close().await.expect("close");

        let (storage, _) = reopen(temp.path()).await;
        let view = storage.view();
        assert_eq!(view.first_index().ok(), Some(7));
        assert_eq!(view.last_index().ok(), Some(10));
        assert_eq!(view.term(6).ok(), Some(1), "the base keeps its term");
        assert!(view.term(5).is_err());
        let snapshot = view.snapshot(0, 2).expect("snapshot");
        assert_eq!(snapshot.get_metadata().index, 8);
        assert_eq!(
            snapshot.get_metadata().get_conf_state().voters,
            vec![1, 2, 3]
        );
        assert_eq!(&snapshot.data[..], b"state@8");
        assert_eq!(
            storage.state().borrow().read_committed(1, 1 << 20),
            Err(crate::error::Compacted { snapshot_index: 8 })
        );
    });
}

fn leader_snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let metadata = snapshot.mut_metadata();
    metadata.index = index;
    metadata.term = term;
    metadata.mut_conf_state().voters = vec![1, 2, 3];
    snapshot.data = Bytes::from_static(data);
    snapshot
}

#[test]
fn an_installed_snapshot_replaces_the_local_state() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (mut storage, _) = reopen(temp.path()).await;
        storage
            .persist(&entries(1..=3, 1), Some(&hard_state(1, 1, 2)), true)
            .await
            .expect("persist");
        storage
            .install_snapshot(&leader_snapshot(20, 3, b"leader@20"))
            .await
            .expect("install");
        storage
            .persist(&[entry(21, 3, "e21")], Some(&hard_state(3, 0, 20)), true)
            .await
            .expect("persist after");
        storage.close().await.expect("close");

        let (storage, _) = reopen(temp.path()).await;
        let view = storage.view();
        assert_eq!(view.first_index().ok(), Some(21));
        assert_eq!(view.last_index().ok(), Some(21));
        assert_eq!(view.term(20).ok(), Some(3));
        assert_eq!(storage.state().borrow().hard_state.commit, 20);
        assert_eq!(
            &view.snapshot(0, 2).expect("snapshot").data[..],
            b"leader@20"
        );
    });
}

/// Leaves `dir` as a crash between writing a snapshot at index 4 (of `snapshot_term`) and
/// rewriting the log would: the snapshot file in place, the log still holding entries 1..=5 of
/// term 1.
async fn snapshot_written_log_not_rewritten(dir: &Path, snapshot_term: u64) {
    let (mut storage, _) = reopen(dir).await;
    storage
        .persist(&entries(1..=5, 1), Some(&hard_state(1, 1, 2)), true)
        .await
        .expect("persist");
    storage.close().await.expect("close");
    let snapshot = leader_snapshot(4, snapshot_term, b"snapshot@4");
    snapshot_file::write(
        &dir.join(SNAPSHOT_FILE_NAME),
        snapshot.get_metadata(),
        &snapshot.data,
    )
    .await
    .expect("write snapshot");
}

#[test]
fn a_crash_between_the_snapshot_and_the_log_rewrite_drops_the_stale_log() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        // A leader's snapshot of term 2: the local entry 4 (term 1) does not match it.
        snapshot_written_log_not_rewritten(temp.path(), 2).await;
        let (storage, report) = reopen(temp.path()).await;
        assert_eq!(report.dropped_entries, 5);
        assert_eq!(storage.view().first_index().ok(), Some(5));
        assert_eq!(storage.view().last_index().ok(), Some(4));
        assert_eq!(storage.state().borrow().hard_state.commit, 4);
        storage.close().await.expect("close");
        let (_, report) = reopen(temp.path()).await;
        assert_eq!(report.dropped_entries, 0, "the repair was written");
    });
}

#[test]
fn a_log_that_continues_the_snapshot_is_kept() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        // A local snapshot: entry 4 of term 1 is in the log, so the log continues it.
        snapshot_written_log_not_rewritten(temp.path(), 1).await;
        let (storage, report) = reopen(temp.path()).await;
        assert_eq!(report.dropped_entries, 0);
        assert_eq!(storage.view().last_index().ok(), Some(5));
        assert_eq!(storage.state().borrow().hard_state.commit, 4);
    });
}

#[test]
fn another_voter_set_is_refused() {
    run(|| async {
        let temp = tempfile::tempdir().expect("tempdir");
        let (storage, _) = reopen(temp.path()).await;
        storage.close().await.expect("close");
        match RaftStorage::open(temp.path(), &[1, 2, 4]).await {
            Err(StorageError::VotersChanged {
                stored, configured, ..
            }) => {
                assert_eq!(stored, vec![1, 2, 3]);
                assert_eq!(configured, vec![1, 2, 4]);
            }
            Err(other) => panic!("expected VotersChanged, got {other}"),
            Ok(_) => panic!("expected VotersChanged, the open succeeded"),
        }
    });
}
