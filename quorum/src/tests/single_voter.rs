//! A quorum of one voter with no listener: it leads at once, commits without peers, snapshots,
//! and comes back after a restart with the same state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::harness::{propose_many, serial, TestNode, TEST_PROPOSE_TIMEOUT};
use crate::{Compacted, QuorumConfig};

fn single_voter_config(dir: &std::path::Path) -> QuorumConfig {
    // The address is never used: no listener, no peers.
    let voters = BTreeMap::from([(1, SocketAddr::from(([127, 0, 0, 1], 1)))]);
    let mut config = QuorumConfig::new(1, voters, None, dir.join("quorum"));
    config.propose_timeout = TEST_PROPOSE_TIMEOUT;
    config.snapshot_interval_entries = 25;
    config.compaction_retained_entries = 5;
    config
}

#[test]
fn a_single_voter_commits_at_once_and_survives_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = single_voter_config(dir.path());
    let started = Instant::now();
    let mut node = TestNode::start(config.clone(), None);
    let (first, elapsed) = node.run(move |quorum, _| async move {
        let index = quorum.propose(b"entry-0".to_vec()).await;
        (index, started.elapsed())
    });
    // A correctness bound, not a speed claim: an election timeout (1 s to 2 s) would be the
    // alternative; the lone voter campaigns at start.
    assert!(first.is_ok(), "{first:?}");
    assert!(
        elapsed < Duration::from_secs(1),
        "first commit took {elapsed:?}"
    );

    let last = node.run(|quorum, _| async move {
        let mut last = 0;
        for i in 1..60 {
            last = quorum
                .propose(format!("entry-{i}").into_bytes())
                .await
                .expect("committed");
        }
        last
    });
    let (before, snapshot_index) = node.run(|quorum, recorder| async move {
        let snapshot_index = quorum.snapshot().map(|(index, _)| index);
        (recorder.applied.borrow().clone(), snapshot_index)
    });
    assert_eq!(before.len(), 60);
    assert!(
        snapshot_index.is_some_and(|index| index >= 50),
        "{snapshot_index:?}"
    );
    node.stop();

    let node = TestNode::start(config, None);
    let (after, restored, status) = node.run(|quorum, recorder| async move {
        (
            recorder.applied.borrow().clone(),
            recorder.restored.borrow().clone(),
            quorum.status(),
        )
    });
    assert_eq!(after, before, "restart rebuilds the same state");
    assert_eq!(
        restored.len(),
        1,
        "from the snapshot, then the entries after it"
    );
    assert!(status.applied_index >= last);

    // Committed reads: below the log is Compacted, after the snapshot come its entries.
    let (snapshot_now, compacted, read) = node.run(move |quorum, _| async move {
        let snapshot_index = quorum.snapshot().map_or(0, |(index, _)| index);
        (
            snapshot_index,
            quorum.read_committed(1, 1 << 20),
            quorum.read_committed(snapshot_index + 1, 1 << 20),
        )
    });
    assert_eq!(
        compacted,
        Err(Compacted {
            snapshot_index: snapshot_now
        })
    );
    let read_data: Vec<Vec<u8>> = read
        .expect("entries after the snapshot")
        .into_iter()
        .filter(|(_, data)| !data.is_empty())
        .map(|(_, data)| data.to_vec())
        .collect();
    let tail: Vec<Vec<u8>> = after
        .iter()
        .filter(|(index, _)| *index > snapshot_now)
        .map(|(_, data)| data.clone())
        .collect();
    assert!(!tail.is_empty());
    assert_eq!(read_data, tail);

    let more = node.run(|quorum, _| async move { quorum.propose(b"after-restart".to_vec()).await });
    assert!(more.is_ok_and(|index| index > last));

    // A burst larger than the driver takes per Ready: every proposal is answered and applied.
    let burst = 3 * crate::limits::MAX_EVENTS_PER_READY;
    let indexes = propose_many(&node, "burst", burst, burst);
    assert_eq!(indexes.len(), burst);
    let applied = node.run(|_, recorder| async move { recorder.applied.borrow().len() });
    assert_eq!(applied, 60 + 1 + burst);
}
