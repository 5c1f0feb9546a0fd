//! Cluster metadata: the topic table (names, ids, partition counts, configs) and which shard owns
//! each partition. Every shard holds a copy; the controller shard (shard 0) is the only writer: it
//! persists the table to `<data>/topics.json` and broadcasts each new version over the mesh.

pub mod ownership;
pub mod topic_name;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use ownership::owner_shard;

/// File (inside the data dir) holding the topic table.
pub const TOPICS_FILE: &str = "topics.json";

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("cannot read or write the topic table {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("topic table {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// One topic as every shard knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Kafka topic id (UUID).
    pub id: [u8; 16],
    pub partitions: i32,
    /// Topic-level configs as given at creation (Kafka names, e.g. `cleanup.policy`).
    pub configs: BTreeMap<String, String>,
    /// Where each partition lives in the cluster, indexed by partition number (`partitions`
    /// entries once the cluster metadata has placed them; empty in a pre-cluster `topics.json`).
    #[serde(default)]
    pub assignments: Vec<PartitionState>,
}

/// One partition's place in the cluster: its replicas (broker ids), the in-sync ones, the leader
/// and the epochs that order changes (Kafka's PartitionRecord).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The leading broker; `NO_LEADER` when no replica can lead.
    pub leader: i32,
    /// Bumped on every leader change (clients and followers fence stale leaders with it).
    pub leader_epoch: i32,
    /// Bumped on every change of the partition.
    pub partition_epoch: i32,
}

/// Kafka's "no leader" broker id.
pub const NO_LEADER: i32 = -1;

impl TopicMeta {
    /// The state of `partition`, if it exists and is placed.
    pub fn partition_state(&self, partition: i32) -> Option<&PartitionState> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.assignments.get(p))
    }

    /// The leader of `partition` (`NO_LEADER` when it has none or is unknown).
    pub fn leader_of(&self, partition: i32) -> i32 {
        self.partition_state(partition)
            .map_or(NO_LEADER, |s| s.leader)
    }
}

/// The topic table. Partition owners are derived (`owner_shard`), not stored, so a restart with a
/// different shard count redistributes partitions without rewriting the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicTable {
    pub topics: BTreeMap<String, TopicMeta>,
}

impl TopicTable {
    /// Loads the table from the data dir; a missing file is an empty table (first start).
    pub fn load(data_dir: &Path) -> Result<TopicTable, MetadataError> {
        let path = data_dir.join(TOPICS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TopicTable::default()),
            Err(source) => return Err(MetadataError::Io { path, source }),
        };
        serde_json::from_str(&text).map_err(|e| MetadataError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the table atomically: temp file, fsync, rename, fsync of the directory. A crash
    /// leaves either the old or the new table, never a torn one.
    pub fn persist(&self, data_dir: &Path) -> Result<(), MetadataError> {
        use std::io::Write;
        let path = data_dir.join(TOPICS_FILE);
        let tmp = data_dir.join(format!("{TOPICS_FILE}.tmp"));
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| MetadataError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// Number of partitions of `topic`, if it exists.
    pub fn partition_count(&self, name: &str) -> Option<i32> {
        self.topics.get(name).map(|t| t.partitions)
    }
}

/// Directory of one partition's log: `<data>/<topic>-<partition>` (Kafka's layout).
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// A fresh random topic id (UUID v4), never the all-zero id Kafka reserves for "no id".
pub fn new_topic_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_through_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            TopicTable::load(dir.path()).expect("empty"),
            TopicTable::default()
        );
        let mut table = TopicTable::default();
        table.topics.insert(
            "orders".into(),
            TopicMeta {
                id: new_topic_id(),
                partitions: 8,
                configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
                assignments: Vec::new(),
            },
        );
        table.persist(dir.path()).expect("persist");
        assert_eq!(TopicTable::load(dir.path()).expect("load"), table);
    }

    #[test]
    fn corrupt_table_is_an_error_not_an_empty_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(TOPICS_FILE), "{not json").expect("write");
        assert!(matches!(
            TopicTable::load(dir.path()),
            Err(MetadataError::Invalid { .. })
        ));
    }
}
