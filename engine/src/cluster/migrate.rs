//! Moving a pre-cluster data directory into the metadata log: a broker of an earlier version kept
//! its topics in `<data>/topics.json`. On the first start of a single-node cluster (this node the
//! only voter) those topics are committed as records, each partition with this broker as its one
//! replica and leader, keeping topic ids and configs; the file is then renamed so it is read once.
//! A node of a multi-voter cluster with such a file refuses to start: its topics would have to
//! enter another quorum's log, which is an operator's decision.

use std::rc::Rc;
use std::time::Duration;

use super::agent::ClusterAgent;
use super::records::MetadataRecord;
use crate::metadata::{PartitionState, TopicTable, TOPICS_FILE};

/// The file's name after it was moved into the metadata log.
pub const MIGRATED_SUFFIX: &str = ".migrated";
/// How long the migration waits for the single voter to lead (it campaigns at once).
const LEADERSHIP_WAIT: Duration = Duration::from_secs(10);

pub async fn topics_json(agent: &Rc<ClusterAgent>) -> Result<(), String> {
    let data_dir = agent.config.data_dir.clone();
    let path = data_dir.join(TOPICS_FILE);
    if !path.exists() {
        return Ok(());
    }
    let node_id = agent.node_id;
    if !agent.config.cluster.is_single_voter(node_id) {
        return Err(format!(
            "{} holds the topics of a single broker (an earlier ringbroker); they can move into the metadata log only when this node is the only voter (start it without cluster flags once), or move the directory away",
            path.display()
        ));
    }
    let table = TopicTable::load(&data_dir).map_err(|e| e.to_string())?;
    wait_until_leading(agent).await?;
    let image = agent.image();
    let mut records = Vec::new();
    for (name, meta) in &table.topics {
        if image.topics.get(name).is_some() {
            continue; // moved before a crash that came ahead of the rename
        }
        records.push(MetadataRecord::Topic {
            name: name.clone(),
            topic_id: meta.id,
            configs: meta.configs.clone(),
        });
        for partition in 0..meta.partitions {
            records.push(MetadataRecord::Partition {
                topic_id: meta.id,
                partition,
                state: PartitionState {
                    replicas: vec![node_id],
                    isr: vec![node_id],
                    leader: node_id,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            });
        }
    }
    let moved = table.topics.len();
    agent
        .decide_and_commit(|_, _| ((), records))
        .await
        .map_err(|(_, message)| {
            format!("cannot move topics.json into the metadata log: {message}")
        })?;
    let done = data_dir.join(format!("{TOPICS_FILE}{MIGRATED_SUFFIX}"));
    std::fs::rename(&path, &done)
        .map_err(|e| format!("cannot rename {} after moving it: {e}", path.display()))?;
    tracing::info!(topics = moved, file = %done.display(), "moved the topic table into the cluster metadata log");
    Ok(())
}

async fn wait_until_leading(agent: &ClusterAgent) -> Result<(), String> {
    let started = std::time::Instant::now();
    while !agent.is_active_controller() {
        if started.elapsed() > LEADERSHIP_WAIT {
            return Err("the single-voter metadata quorum did not elect itself".into());
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
