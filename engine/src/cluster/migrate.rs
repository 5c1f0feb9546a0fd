//! Moving a pre-cluster data directory into the metadata log: a broker of an earlier version kept
//! its topics in `<data>/topics.json`. On the first start of a single-node cluster (this node the
//! only voter) those topics are committed as records, each partition with this broker as its one
//! replica and leader, keeping topic ids and configs; the file is then renamed so it is read once.
//! A node of a multi-voter cluster with such a file refuses to start: its topics would have to
//! enter another quorum's log, which is an operator's decision.
//!
//! A broker's own `acls.json` (ACLs were per broker before they were the cluster's) moves the same
//! way, on any node: ACLs merge harmlessly (`acls_json`). So does its `scram-credentials.json`,
//! together with the `--add-scram` credentials (`scram_credentials`): both only add what the
//! cluster lacks, and each `--add-scram` credential is handed once per data directory
//! (`handed_scram`).

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::agent::ClusterAgent;
use super::handed_scram;
use super::records::{MetadataRecord, UserScramCredential};
use super::rpc_api::{AdminRequest, ScramChanges};
use crate::metadata::{PartitionState, TopicTable, TOPICS_FILE};
use crate::security::acl::store::ACLS_FILE;
use crate::security::sasl::registry::{self, CREDENTIALS_FILE};

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

/// How often a broker retries moving its `acls.json` while no controller takes it.
const ACLS_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Moves a broker's own `acls.json` (an earlier ringbroker kept each broker's ACLs there) into the
/// metadata log: sent to the active controller as one CreateAcls, then renamed so it is read
/// once. The ACLs of several brokers merge (an ACL present already is kept once). Runs beside the
/// broker, retrying while there is no active controller: until it is done the broker holds the
/// cluster's ACLs only, so it refuses rather than allows what the file would have allowed.
pub async fn acls_json(agent: Rc<ClusterAgent>) {
    let data_dir = agent.config.data_dir.clone();
    let acls = match crate::security::acl::store::read_file(&data_dir) {
        Ok(Some(acls)) => acls,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, "cannot move the broker's ACL file into the metadata log");
            return;
        }
    };
    let count = acls.len();
    let request = AdminRequest::CreateAcls { acls };
    loop {
        let reply = agent.admin(request.clone()).await;
        match reply.outcomes.iter().find(|o| o.error_code != 0) {
            None => break,
            Some(refused) => tracing::warn!(
                error_code = refused.error_code,
                message = ?refused.message,
                "cannot move acls.json into the metadata log yet; retrying"
            ),
        }
        glommio::timer::sleep(ACLS_RETRY_INTERVAL).await;
    }
    let path = data_dir.join(ACLS_FILE);
    let done = data_dir.join(format!("{ACLS_FILE}{MIGRATED_SUFFIX}"));
    match std::fs::rename(&path, &done) {
        Ok(()) => {
            tracing::info!(acls = count, file = %done.display(), "moved the broker's ACLs into the cluster metadata log")
        }
        Err(error) => {
            tracing::error!(%error, file = %path.display(), "moved the ACLs, but cannot rename the file (it is read again at the next start: harmless)")
        }
    }
}

/// Pause between two attempts to hand the controller the start-up SCRAM credentials while it is
/// being elected.
const SCRAM_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Hands the controller this node's start-up SCRAM credentials: those of an earlier ringbroker's
/// `scram-credentials.json` (then renamed so it is read once) and the `--add-scram` ones, the
/// file's first (a password changed with `kafka-configs` then outlived a restart with the same
/// `--add-scram`, and still does). Each is added only if the cluster has no credential for that
/// user and mechanism, so every node may pass the same `--add-scram`: the first to start writes
/// it, and a password changed since is kept. Awaited before the broker registers (so before any
/// shard serves clients); waits for a controller up to `initial.broker.registration.timeout.ms`,
/// and an error stops the broker.
pub async fn scram_credentials(agent: &Rc<ClusterAgent>) -> Result<(), String> {
    let data_dir = agent.config.data_dir.clone();
    let from_file = registry::read_file(&data_dir).map_err(|e| e.to_string())?;
    let mut upsertions = Vec::new();
    let mut named = std::collections::HashSet::new();
    let bootstrap = agent.config.security.credentials.bootstrap();
    let mut handed = handed_scram::read(&data_dir)?;
    let handed_before = handed.len();
    let not_yet_handed = bootstrap
        .sorted_entries()
        .into_iter()
        .filter(|(user, mechanism, _)| {
            handed.insert((user.to_string(), mechanism.sasl().name().to_string()))
        })
        .collect::<Vec<_>>();
    let skipped = bootstrap.sorted_entries().len() - not_yet_handed.len();
    if skipped > 0 {
        tracing::info!(
            credentials = skipped,
            "--add-scram credentials this data directory handed the cluster before are not handed again (a user deleted since stays deleted)"
        );
    }
    for (user, mechanism, credential) in from_file
        .iter()
        .flat_map(|store| store.sorted_entries())
        .chain(not_yet_handed)
    {
        if named.insert((user.to_string(), mechanism.kafka_type())) {
            upsertions.push(UserScramCredential {
                user: user.to_string(),
                mechanism,
                credential: credential.clone(),
            });
        }
    }
    if upsertions.is_empty() {
        return Ok(());
    }
    let count = upsertions.len();
    debug_assert!(handed.len() >= handed_before);
    let request = AdminRequest::AlterScramCredentials(ScramChanges {
        upsertions,
        deletions: Vec::new(),
        only_if_absent: true,
    });
    let started = std::time::Instant::now();
    let patience = agent.config.cluster.controller_startup_timeout;
    let reply = loop {
        let reply = agent.admin(request.clone()).await;
        // A controller election meanwhile: ask the next one.
        let retriable = reply.outcomes.iter().any(|o| {
            o.error_code == ResponseError::NotController.code()
                || o.error_code == ResponseError::RequestTimedOut.code()
        });
        if !retriable || started.elapsed() >= patience {
            break reply;
        }
        tracing::info!("no controller took the start-up SCRAM credentials yet; retrying");
        glommio::timer::sleep(SCRAM_RETRY_INTERVAL).await;
    };
    if let Some(refused) = reply.outcomes.iter().find(|o| o.error_code != 0) {
        return Err(format!(
            "cannot add the start-up SCRAM credentials (--add-scram, {CREDENTIALS_FILE}) to the cluster metadata: user {} got error {}: {}",
            refused.name,
            refused.error_code,
            refused.message.as_deref().unwrap_or("")
        ));
    }
    tracing::info!(
        credentials = count,
        "start-up SCRAM credentials are in the cluster metadata (those it lacked were added)"
    );
    if handed.len() > handed_before {
        handed_scram::write(&data_dir, &handed)?;
    }
    if from_file.is_some() {
        let path = data_dir.join(CREDENTIALS_FILE);
        let done = data_dir.join(format!("{CREDENTIALS_FILE}{MIGRATED_SUFFIX}"));
        std::fs::rename(&path, &done).map_err(|e| {
            format!(
                "moved {} into the metadata log, but cannot rename it: {e}",
                path.display()
            )
        })?;
        tracing::info!(file = %done.display(), "moved the broker's SCRAM credentials into the cluster metadata log");
    }
    Ok(())
}
