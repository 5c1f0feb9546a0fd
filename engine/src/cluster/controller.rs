//! The active controller's decisions, as pure functions of the metadata image: what records a
//! broker registration, a heartbeat, a missed session, a topic creation or deletion, a partition
//! increase or a config change produce, and what each requester is told. Nothing here does I/O:
//! the controller task (`controller_task`) proposes the records to the quorum and answers once
//! they are committed and applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::config::ClusterConfig;
use super::image::MetadataImage;
use super::placement::{self, Candidate, PlacementError};
use super::records::{BrokerEndpoint, BrokerRegistration, MetadataRecord, TopicId};
use crate::admin::configs::{apply_ops, ConfigOp};
use crate::admin::is_reserved_topic;
use crate::config::BrokerConfig;
use crate::metadata::topic_name::validate_topic_name;
use crate::metadata::{new_topic_id, PartitionState, NO_LEADER};

/// Kafka's name of the committed-offsets topic and its partition count
/// (`offsets.topic.num.partitions`).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The answer for one topic of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOutcome {
    pub name: String,
    pub error_code: i16,
    pub message: Option<String>,
}

impl TopicOutcome {
    pub(crate) fn ok(name: &str) -> TopicOutcome {
        TopicOutcome {
            name: name.to_string(),
            error_code: 0,
            message: None,
        }
    }

    pub(crate) fn error(
        name: &str,
        error: ResponseError,
        message: impl Into<String>,
    ) -> TopicOutcome {
        TopicOutcome {
            name: name.to_string(),
            error_code: error.code(),
            message: Some(message.into()),
        }
    }
}

/// Records to commit and the answers to give once they are.
#[derive(Debug, Default)]
pub struct Decision {
    pub outcomes: Vec<TopicOutcome>,
    pub records: Vec<MetadataRecord>,
    /// DeleteAcls: the ACLs removed, each with the index of the filter that matched it.
    pub removed_acls: Vec<(usize, crate::security::acl::types::AclBinding)>,
}

/// What the controller needs besides the image: the broker's topic defaults and limits.
pub struct Context<'a> {
    pub broker: &'a BrokerConfig,
    pub cluster: &'a ClusterConfig,
    pub image: &'a MetadataImage,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replicas per partition; empty: the controller places them.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// CreateTopics. `internal` allows the broker's own topics (`__consumer_offsets`).
pub fn create_topics(
    ctx: &Context<'_>,
    specs: &[TopicSpec],
    validate_only: bool,
    internal: bool,
) -> Decision {
    let mut decision = Decision::default();
    let mut leaders = leader_counts(ctx.image);
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<&str> = specs
        .iter()
        .filter(|s| !seen.insert(s.name.as_str()))
        .map(|s| s.name.as_str())
        .collect();
    for spec in specs {
        if duplicated.contains(spec.name.as_str()) {
            decision.outcomes.push(TopicOutcome::error(
                &spec.name,
                ResponseError::InvalidRequest,
                "Create topics request from client contains duplicate topic names",
            ));
            continue;
        }
        match plan_topic(ctx, spec, internal, &leaders) {
            Ok(records) => {
                if !validate_only {
                    for record in &records {
                        if let MetadataRecord::Partition { state, .. } = record {
                            *leaders.entry(state.leader).or_insert(0) += 1;
                        }
                    }
                    decision.records.extend(records);
                }
                decision.outcomes.push(TopicOutcome::ok(&spec.name));
            }
            Err(outcome) => decision.outcomes.push(outcome),
        }
    }
    decision
}

fn plan_topic(
    ctx: &Context<'_>,
    spec: &TopicSpec,
    internal: bool,
    leaders: &HashMap<i32, usize>,
) -> Result<Vec<MetadataRecord>, TopicOutcome> {
    let name = spec.name.as_str();
    let fail = |error, message: String| Err(TopicOutcome::error(name, error, message));
    if let Err(reason) = validate_topic_name(name) {
        return fail(ResponseError::InvalidTopicException, reason);
    }
    if is_reserved_topic(name) && !internal {
        return fail(
            ResponseError::InvalidTopicException,
            format!("'{name}' is an internal topic of the broker and cannot be created"),
        );
    }
    if ctx.image.topics.get(name).is_some() {
        return fail(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        );
    }
    if let Err(e) = crate::topic_config::validate(ctx.broker, &spec.configs) {
        return fail(ResponseError::InvalidConfig, e.to_string());
    }
    let replicas = if spec.assignments.is_empty() {
        place_new(ctx, name, spec.partitions, spec.replication_factor, leaders)?
    } else {
        if spec.partitions != -1 || spec.replication_factor != -1 {
            return fail(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            );
        }
        check_assignments(ctx, name, &spec.assignments)?;
        spec.assignments.clone()
    };
    let factor = replicas.first().map_or(0, Vec::len);
    let min_insync =
        crate::topic_config::TopicSettings::resolve(ctx.broker, &spec.configs).min_insync_replicas;
    if spec
        .configs
        .contains_key(crate::topic_config::MIN_INSYNC_REPLICAS)
        && i64::from(min_insync) > factor as i64
    {
        // Kafka refuses a topic whose acks=all produce could never succeed.
        return fail(
            ResponseError::InvalidConfig,
            format!(
                "min.insync.replicas {min_insync} is larger than the replication factor {factor}"
            ),
        );
    }
    let partitions = replicas.len() as i32;
    if partitions < 1 || partitions > ctx.broker.max_partitions_per_topic {
        return fail(
            ResponseError::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {} (setting max_partitions_per_topic), got {partitions}",
                ctx.broker.max_partitions_per_topic
            ),
        );
    }
    let topic_id = new_topic_id();
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        topic_id,
        configs: spec.configs.clone(),
    }];
    records.extend(partition_records(ctx.image, topic_id, 0, replicas));
    Ok(records)
}

/// Placement of `count` new partitions (`-1`: the defaults) with the live brokers.
fn place_new(
    ctx: &Context<'_>,
    name: &str,
    count: i32,
    replication_factor: i16,
    leaders: &HashMap<i32, usize>,
) -> Result<Vec<Vec<i32>>, TopicOutcome> {
    let count = if count == -1 {
        ctx.broker.default_partitions
    } else {
        count
    };
    if count < 1 || count > ctx.broker.max_partitions_per_topic {
        return Err(TopicOutcome::error(
            name,
            ResponseError::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {} (setting max_partitions_per_topic), got {count}",
                ctx.broker.max_partitions_per_topic
            ),
        ));
    }
    let factor = if replication_factor == -1 {
        ctx.cluster.default_replication_factor
    } else {
        replication_factor
    };
    // Larger than the live brokers can hold is the placement's refusal.
    let candidates: Vec<Candidate> = ctx
        .image
        .live_brokers()
        .map(|b| Candidate {
            node_id: b.node_id,
            rack: b.rack.clone(),
            leaders: leaders.get(&b.node_id).copied().unwrap_or(0),
        })
        .collect();
    placement::place(&candidates, count, i32::from(factor)).map_err(|e| {
        let error = match e {
            PlacementError::NotEnoughBrokers { .. } | PlacementError::InvalidFactor(_) => {
                ResponseError::InvalidReplicationFactor
            }
        };
        TopicOutcome::error(name, error, e.to_string())
    })
}

/// An explicit assignment: every list the same length, distinct registered brokers.
fn check_assignments(
    ctx: &Context<'_>,
    name: &str,
    assignments: &[Vec<i32>],
) -> Result<(), TopicOutcome> {
    let invalid = |message: String| {
        Err(TopicOutcome::error(
            name,
            ResponseError::InvalidReplicaAssignment,
            message,
        ))
    };
    let factor = assignments.first().map_or(0, Vec::len);
    for (partition, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() || replicas.len() != factor {
            return invalid(format!(
                "All partitions should have the same number of replicas; partition {partition} has {}",
                replicas.len()
            ));
        }
        let distinct: BTreeSet<&i32> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!(
                "Duplicate brokers not allowed in replica assignment: {replicas:?} for partition {partition}"
            ));
        }
        if let Some(unknown) = replicas
            .iter()
            .find(|id| !ctx.image.brokers.contains_key(id))
        {
            return invalid(format!(
                "Broker {unknown} in the replica assignment of partition {partition} is not registered"
            ));
        }
    }
    Ok(())
}

/// Partition records for new partitions `first..` of `topic_id`: every replica in the ISR, the
/// first live replica leads.
fn partition_records(
    image: &MetadataImage,
    topic_id: TopicId,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    replicas.into_iter().enumerate().map(move |(i, replicas)| {
        let leader = replicas
            .iter()
            .copied()
            .find(|r| image.is_live(*r))
            .unwrap_or(NO_LEADER);
        MetadataRecord::Partition {
            topic_id,
            partition: first + i as i32,
            state: PartitionState {
                isr: replicas.clone(),
                replicas,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        }
    })
}

/// Partitions each broker leads now.
fn leader_counts(image: &MetadataImage) -> HashMap<i32, usize> {
    let mut counts = HashMap::new();
    for meta in image.topics.topics.values() {
        for state in &meta.assignments {
            *counts.entry(state.leader).or_insert(0) += 1;
        }
    }
    counts
}

/// DeleteTopics.
pub fn delete_topics(ctx: &Context<'_>, names: &[String]) -> Decision {
    let mut decision = Decision::default();
    let mut removed = BTreeSet::new();
    for name in names {
        match ctx.image.topics.get(name) {
            _ if is_reserved_topic(name) => decision.outcomes.push(TopicOutcome::error(
                name,
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' is an internal topic of the broker and cannot be deleted."),
            )),
            Some(meta) => {
                if removed.insert(meta.id) {
                    decision
                        .records
                        .push(MetadataRecord::RemoveTopic { topic_id: meta.id });
                }
                decision.outcomes.push(TopicOutcome::ok(name));
            }
            None => decision.outcomes.push(TopicOutcome::error(
                name,
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )),
        }
    }
    decision
}

/// CreatePartitions: grows a topic to `count` partitions.
pub fn create_partitions(
    ctx: &Context<'_>,
    name: &str,
    count: i32,
    assignments: &[Vec<i32>],
    validate_only: bool,
) -> Decision {
    let mut decision = Decision::default();
    let outcome = match plan_partitions(ctx, name, count, assignments) {
        Ok(records) => {
            if !validate_only {
                decision.records = records;
            }
            TopicOutcome::ok(name)
        }
        Err(outcome) => outcome,
    };
    decision.outcomes.push(outcome);
    decision
}

fn plan_partitions(
    ctx: &Context<'_>,
    name: &str,
    count: i32,
    assignments: &[Vec<i32>],
) -> Result<Vec<MetadataRecord>, TopicOutcome> {
    let Some(meta) = ctx.image.topics.get(name) else {
        return Err(TopicOutcome::error(
            name,
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let current = meta.partitions;
    if count <= current {
        return Err(TopicOutcome::error(
            name,
            ResponseError::InvalidPartitions,
            format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
        ));
    }
    if count > ctx.broker.max_partitions_per_topic {
        return Err(TopicOutcome::error(
            name,
            ResponseError::InvalidPartitions,
            format!(
                "{count} partitions exceed max_partitions_per_topic ({})",
                ctx.broker.max_partitions_per_topic
            ),
        ));
    }
    let added = count - current;
    let replicas = if assignments.is_empty() {
        let factor = meta
            .assignments
            .first()
            .map_or(1, |s| s.replicas.len() as i16);
        place_new(ctx, name, added, factor, &leader_counts(ctx.image))?
    } else {
        if assignments.len() != added as usize {
            return Err(TopicOutcome::error(
                name,
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Increasing the number of partitions by {added} but {} assignments provided.",
                    assignments.len()
                ),
            ));
        }
        check_assignments(ctx, name, assignments)?;
        assignments.to_vec()
    };
    Ok(partition_records(ctx.image, meta.id, current, replicas).collect())
}

/// AlterConfigs / IncrementalAlterConfigs of one topic.
pub fn alter_configs(
    ctx: &Context<'_>,
    name: &str,
    ops: &[ConfigOp],
    replace_all: bool,
    validate_only: bool,
) -> Decision {
    let mut decision = Decision::default();
    let Some(meta) = ctx.image.topics.get(name) else {
        decision.outcomes.push(TopicOutcome::error(
            name,
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
        return decision;
    };
    match apply_ops(ctx.broker, &meta.configs, ops, replace_all) {
        Ok(configs) => {
            if !validate_only && configs != meta.configs {
                decision.records.push(MetadataRecord::TopicConfig {
                    topic_id: meta.id,
                    configs,
                });
            }
            decision.outcomes.push(TopicOutcome::ok(name));
        }
        Err(outcome) => decision.outcomes.push(TopicOutcome {
            name: name.to_string(),
            error_code: outcome.error_code,
            message: outcome.message,
        }),
    }
    decision
}

// ------------------------------------------------------------------------------------------ ISR

/// A leader's AlterPartition: the ISR it wants, with the epochs it knows.
#[derive(Debug, Clone)]
pub struct IsrChange<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: &'a [i32],
}

/// Kafka's error for an ISR change based on an old partition epoch.
pub const INVALID_UPDATE_VERSION: i16 = 95;
/// Kafka's error for an ISR naming a replica that may not be in it (fenced, or not a replica).
pub const INELIGIBLE_REPLICA: i16 = 107;

/// AlterPartition: accepted from the partition's current leader, in its current leader and
/// partition epochs, for an ISR of distinct replicas that keeps the leader and adds only live
/// brokers (Kafka's rules). The partition epoch moves on; the leader epoch does not.
pub fn alter_partition(ctx: &Context<'_>, change: &IsrChange<'_>) -> Decision {
    let mut decision = Decision::default();
    let name = change.topic;
    let refused = |code: i16, message: String| Decision {
        outcomes: vec![TopicOutcome {
            name: name.to_string(),
            error_code: code,
            message: Some(message),
        }],
        ..Decision::default()
    };
    let Some(meta) = ctx.image.topics.get(name) else {
        return refused(
            ResponseError::UnknownTopicOrPartition.code(),
            format!("Topic '{name}' does not exist."),
        );
    };
    let Some(state) = meta.partition_state(change.partition) else {
        return refused(
            ResponseError::UnknownTopicOrPartition.code(),
            format!("{name}-{} does not exist", change.partition),
        );
    };
    if state.leader != change.leader_id || change.leader_epoch < state.leader_epoch {
        return refused(
            ResponseError::FencedLeaderEpoch.code(),
            format!(
                "broker {} in epoch {} no longer leads {name}-{} (leader {} in epoch {})",
                change.leader_id,
                change.leader_epoch,
                change.partition,
                state.leader,
                state.leader_epoch
            ),
        );
    }
    if change.leader_epoch > state.leader_epoch || change.partition_epoch != state.partition_epoch {
        return refused(
            INVALID_UPDATE_VERSION,
            format!(
                "partition epoch {} of {name}-{} is not the current one ({})",
                change.partition_epoch, change.partition, state.partition_epoch
            ),
        );
    }
    let mut distinct = change.new_isr.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    // KIP-841: a replica joins only while eligible (live, its data directory online).
    let eligible = |id: &i32| {
        state.replicas.contains(id) && (state.isr.contains(id) || ctx.image.is_eligible(*id))
    };
    if distinct.len() != change.new_isr.len()
        || !change.new_isr.contains(&change.leader_id)
        || !change.new_isr.iter().all(eligible)
    {
        return refused(
            INELIGIBLE_REPLICA,
            format!(
                "ISR {:?} of {name}-{} must be distinct live replicas of {:?} including the leader",
                change.new_isr, change.partition, state.replicas
            ),
        );
    }
    decision.outcomes.push(TopicOutcome::ok(name));
    if change.new_isr != state.isr.as_slice() {
        let mut state = state.clone();
        state.isr = change.new_isr.to_vec();
        state.partition_epoch += 1;
        decision.records.push(MetadataRecord::Partition {
            topic_id: meta.id,
            partition: change.partition,
            state,
        });
    }
    decision
}

// ---------------------------------------------------------------------------- preferred leaders

/// Kafka's error for a preferred replica that cannot lead now (not live or not in the ISR).
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// Kafka's error for a partition already led by its preferred replica.
pub const ELECTION_NOT_NEEDED: i16 = 84;
/// Kafka's `leader.imbalance.per.broker.percentage` default: a broker leading fewer than 90% of
/// the partitions it is preferred for gets them back.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: usize = 10;

/// One partition's preferred-leader election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub message: Option<String>,
}

/// What one partition's election decides: the error to answer (0: elected) and its message, and
/// the partition's new state when a leader was elected.
type ElectionOutcome = (i16, Option<String>, Option<PartitionState>);

/// Runs `decide` on each wanted partition (`partitions` None: every partition), answering
/// UNKNOWN_TOPIC_OR_PARTITION for those the image does not have; the shared shape of ElectLeaders'
/// preferred and unclean elections.
fn run_elections(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
    decide: impl Fn(&str, i32, &PartitionState) -> ElectionOutcome,
) -> (Vec<Election>, Vec<MetadataRecord>) {
    let wanted: Vec<(String, i32)> = match partitions {
        Some(list) => list.to_vec(),
        None => image
            .topics
            .topics
            .iter()
            .flat_map(|(name, meta)| (0..meta.partitions).map(move |p| (name.clone(), p)))
            .collect(),
    };
    let mut elections = Vec::with_capacity(wanted.len());
    let mut records = Vec::new();
    for (topic, partition) in wanted {
        let found = image
            .topics
            .get(&topic)
            .and_then(|meta| meta.partition_state(partition).map(|s| (meta.id, s)));
        let (error_code, message) = match found {
            None => (
                ResponseError::UnknownTopicOrPartition.code(),
                Some(format!("{topic}-{partition} does not exist")),
            ),
            Some((topic_id, state)) => {
                let (code, message, elected) = decide(&topic, partition, state);
                if let Some(state) = elected {
                    records.push(MetadataRecord::Partition {
                        topic_id,
                        partition,
                        state,
                    });
                }
                (code, message)
            }
        };
        elections.push(Election {
            topic,
            partition,
            error_code,
            message,
        });
    }
    (elections, records)
}

/// Preferred-leader elections (Kafka's ElectLeaders, election type PREFERRED): the first replica
/// leads again when it is live and in the ISR. `partitions` None: every partition.
pub fn elect_preferred(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<Election>, Vec<MetadataRecord>) {
    run_elections(image, partitions, |topic, partition, state| {
        match state.replicas.first().copied() {
            Some(preferred) if preferred == state.leader => (ELECTION_NOT_NEEDED, None, None),
            Some(preferred) if state.isr.contains(&preferred) && image.is_eligible(preferred) => {
                let mut state = state.clone();
                state.leader = preferred;
                state.leader_epoch += 1;
                state.partition_epoch += 1;
                (0, None, Some(state))
            }
            _ => (
                PREFERRED_LEADER_NOT_AVAILABLE,
                Some(format!(
                    "the preferred replica of {topic}-{partition} is not live or not in sync"
                )),
                None,
            ),
        }
    })
}

/// Kafka's error for an unclean election with no live replica to lead.
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;

/// Unclean elections (Kafka's ElectLeaders, election type UNCLEAN): a leaderless partition gets
/// any live replica as leader, alone in the ISR (records only the old ISR held may be lost); a
/// partition with a leader needs none.
pub fn elect_unclean(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<Election>, Vec<MetadataRecord>) {
    run_elections(image, partitions, |topic, partition, state| {
        if state.leader != NO_LEADER {
            return (ELECTION_NOT_NEEDED, None, None);
        }
        match state
            .replicas
            .iter()
            .copied()
            .find(|r| image.is_eligible(*r))
        {
            Some(leader) => {
                tracing::warn!(
                    topic,
                    partition,
                    leader,
                    "unclean leader election asked: records only the old ISR held may be lost"
                );
                let mut state = state.clone();
                state.leader = leader;
                state.isr = vec![leader];
                state.leader_epoch += 1;
                state.partition_epoch += 1;
                (0, None, Some(state))
            }
            None => (
                ELIGIBLE_LEADERS_NOT_AVAILABLE,
                Some(format!("no replica of {topic}-{partition} is live")),
                None,
            ),
        }
    })
}

/// Kafka's automatic leader rebalance: the partitions of every broker that leads fewer than
/// (100 - `LEADER_IMBALANCE_PER_BROKER_PERCENTAGE`)% of those it is preferred for, back to it
/// where it can lead.
pub fn rebalance_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut preferred_for: HashMap<i32, Vec<(String, i32, bool)>> = HashMap::new();
    for (name, meta) in &image.topics.topics {
        for (index, state) in meta.assignments.iter().enumerate() {
            if let Some(preferred) = state.replicas.first() {
                preferred_for.entry(*preferred).or_default().push((
                    name.clone(),
                    index as i32,
                    state.leader == *preferred,
                ));
            }
        }
    }
    let mut candidates = Vec::new();
    for (broker, partitions) in preferred_for {
        if !image.is_eligible(broker) {
            continue;
        }
        let not_leading = partitions.iter().filter(|(_, _, leads)| !leads).count();
        if not_leading * 100 > partitions.len() * LEADER_IMBALANCE_PER_BROKER_PERCENTAGE {
            candidates.extend(
                partitions
                    .into_iter()
                    .filter(|(_, _, leads)| !leads)
                    .map(|(topic, partition, _)| (topic, partition)),
            );
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    elect_preferred(image, Some(&candidates)).1
}

// ------------------------------------------------------------------------------------------ brokers

/// When each registered broker was last heard from (the active controller's soft state: a new
/// active controller starts every session afresh).
#[derive(Debug, Default)]
pub struct BrokerSessions {
    last_heard: HashMap<i32, Instant>,
}

impl BrokerSessions {
    /// Starts every registered broker's session now (on becoming the active controller).
    pub fn restart_all(&mut self, image: &MetadataImage, now: Instant) {
        self.last_heard = image.brokers.keys().map(|id| (*id, now)).collect();
    }

    pub fn heard(&mut self, node_id: i32, now: Instant) {
        self.last_heard.insert(node_id, now);
    }

    /// Moves every session's end `by` later: the active controller itself did not run for that
    /// long (a stalled executor, a slow commit holding the decisions), so it could not have heard
    /// the heartbeats sent meanwhile; fencing for them would fence the live brokers, itself
    /// included.
    pub fn extend_all(&mut self, by: Duration) {
        for at in self.last_heard.values_mut() {
            *at += by;
        }
    }

    /// Ends `node_id`'s session now unless it was heard from after `since`. Returns whether it
    /// ended.
    pub fn end_unless_heard_since(
        &mut self,
        node_id: i32,
        since: Instant,
        now: Instant,
        timeout: Duration,
    ) -> bool {
        let Some(expired) = now.checked_sub(timeout) else {
            return false;
        };
        match self.last_heard.get_mut(&node_id) {
            Some(at) if *at <= since && *at > expired => {
                *at = expired;
                true
            }
            _ => false,
        }
    }

    /// Ends `node_id`'s session `grace` from `now` unless it is heard from again first (its
    /// connection closed). Returns whether the session got shorter.
    pub fn expire_soon(
        &mut self,
        node_id: i32,
        now: Instant,
        grace: Duration,
        timeout: Duration,
    ) -> bool {
        let Some(backdated) = (now + grace).checked_sub(timeout) else {
            return false;
        };
        match self.last_heard.get_mut(&node_id) {
            Some(at) if *at > backdated => {
                *at = backdated;
                true
            }
            _ => false,
        }
    }

    fn alive(&self, node_id: i32, timeout: Duration, now: Instant) -> bool {
        self.last_heard
            .get(&node_id)
            .is_some_and(|at| now.saturating_duration_since(*at) < timeout)
    }
}

/// A broker's registration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub node_id: i32,
    pub incarnation: [u8; 16],
    /// Every client listener of the broker, the inter-broker one first (never empty).
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub cluster_id: Option<String>,
}

/// Kafka's error for a broker id that another live broker process holds.
pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
/// Kafka's error for a broker of another cluster.
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
/// Kafka's error for a heartbeat of a registration that is no longer current.
pub const STALE_BROKER_EPOCH: i16 = 77;

/// BrokerRegistration: the records of a (re-)registration, or the error to answer. A new
/// incarnation of a node whose old one still heartbeats is refused (DUPLICATE_BROKER_REGISTRATION,
/// the broker retries until the old session expires), unless `replaces_dead` says the old one is
/// known to be gone.
pub fn register_broker(
    ctx: &Context<'_>,
    sessions: &BrokerSessions,
    request: &Registration,
    replaces_dead: bool,
    now: Instant,
) -> Result<Vec<MetadataRecord>, (i16, String)> {
    if let (Some(theirs), Some(ours)) = (&request.cluster_id, &ctx.image.cluster_id) {
        if theirs != ours {
            return Err((
                INCONSISTENT_CLUSTER_ID,
                format!("the broker's data directory belongs to cluster {theirs}, this is cluster {ours}"),
            ));
        }
    }
    if let Some(existing) = ctx.image.brokers.get(&request.node_id) {
        let other_process = existing.incarnation != request.incarnation;
        if other_process
            && !replaces_dead
            && !existing.fenced
            && sessions.alive(request.node_id, ctx.cluster.broker_session_timeout, now)
        {
            return Err((
                DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "node id {} is registered by another live broker ({}); node ids must be unique",
                    request.node_id,
                    existing
                        .inter_broker_endpoint()
                        .map_or(String::new(), |e| format!("{}:{}", e.host, e.port))
                ),
            ));
        }
    }
    let mut records = vec![MetadataRecord::Broker(BrokerRegistration {
        node_id: request.node_id,
        incarnation: request.incarnation,
        epoch: 0,
        listeners: request.listeners.clone(),
        rack: request.rack.clone(),
        fenced: true,
        shutting_down: false,
    })];
    // A re-registration replaces a live old incarnation: it no longer leads anything.
    if ctx.image.is_live(request.node_id) {
        records.extend(move_leaderships(ctx.image, request.node_id));
    }
    Ok(records)
}

/// A broker's heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub node_id: i32,
    pub epoch: i64,
    pub applied_index: u64,
    pub want_shutdown: bool,
    /// The broker's data directory is offline (`replication::log_dir`).
    pub log_dir_offline: bool,
}

/// The answer to a heartbeat, and the records it causes.
#[derive(Debug, Default)]
pub struct HeartbeatDecision {
    pub error: Option<(i16, String)>,
    pub records: Vec<MetadataRecord>,
    /// The broker is fenced after the records are applied.
    pub fenced: bool,
    pub shutdown_complete: bool,
}

/// BrokerHeartbeat: unfences a broker that caught up with the metadata log, runs a controlled
/// shutdown (leaderships moved away, broker fenced), and follows the broker's data directory:
/// offline, the broker leaves every ISR and its leaderships move (Kafka's handling of
/// OfflineLogDirs); online again, leaderless partitions may get it back as leader, and its
/// partitions' leaders add it to their ISRs once it has caught up.
pub fn heartbeat(
    ctx: &Context<'_>,
    sessions: &mut BrokerSessions,
    beat: &Heartbeat,
    now: Instant,
) -> HeartbeatDecision {
    let Some(broker) = ctx.image.brokers.get(&beat.node_id) else {
        return HeartbeatDecision {
            error: Some((
                STALE_BROKER_EPOCH,
                format!("broker {} is not registered", beat.node_id),
            )),
            fenced: true,
            ..HeartbeatDecision::default()
        };
    };
    if broker.epoch != beat.epoch {
        return HeartbeatDecision {
            error: Some((
                STALE_BROKER_EPOCH,
                format!(
                    "broker epoch {} is stale: the current registration of broker {} has epoch {}",
                    beat.epoch, beat.node_id, broker.epoch
                ),
            )),
            fenced: true,
            ..HeartbeatDecision::default()
        };
    }
    sessions.heard(beat.node_id, now);
    let mut decision = HeartbeatDecision {
        fenced: broker.fenced,
        shutdown_complete: broker.shutting_down,
        ..HeartbeatDecision::default()
    };
    if beat.want_shutdown {
        if !broker.shutting_down {
            decision.records.push(MetadataRecord::BrokerState {
                node_id: beat.node_id,
                epoch: broker.epoch,
                fenced: true,
                shutting_down: true,
            });
            decision
                .records
                .extend(move_leaderships(ctx.image, beat.node_id));
        }
        decision.fenced = true;
        decision.shutdown_complete = true;
        return decision;
    }
    let caught_up = beat.applied_index >= broker.epoch as u64;
    let may_lead = !beat.log_dir_offline;
    let unfencing = broker.fenced && !broker.shutting_down && caught_up;
    if unfencing {
        decision.records.push(MetadataRecord::BrokerState {
            node_id: beat.node_id,
            epoch: broker.epoch,
            fenced: false,
            shutting_down: false,
        });
        let also_eligible = may_lead.then_some(beat.node_id);
        decision
            .records
            .extend(elect_leaderless(ctx, ctx.image, also_eligible));
        decision.fenced = false;
    }
    let recorded_offline = ctx.image.log_dir_offline.contains(&beat.node_id);
    if beat.log_dir_offline != recorded_offline && !broker.shutting_down {
        decision.records.push(MetadataRecord::BrokerLogDir {
            node_id: beat.node_id,
            epoch: broker.epoch,
            offline: beat.log_dir_offline,
        });
        if beat.log_dir_offline {
            tracing::warn!(
                node_id = beat.node_id,
                "broker reports its data directory offline: out of every ISR, leaderships moved"
            );
            // A fenced broker already left every ISR and leads nothing. A partition no other
            // eligible in-sync replica can lead keeps this leader: it answers KAFKA_STORAGE_ERROR
            // until its disk takes writes again (leaderless, it would only be unavailable longer,
            // and a single broker would answer NOT_LEADER_OR_FOLLOWER for its full disk).
            if !broker.fenced {
                decision
                    .records
                    .extend(move_leaderships_off_offline_dir(ctx.image, beat.node_id));
            }
        } else {
            tracing::info!(
                node_id = beat.node_id,
                "broker reports its data directory online"
            );
            // (An unfencing broker's leaderless partitions were elected above already.)
            if !broker.fenced && !unfencing {
                decision
                    .records
                    .extend(elect_leaderless(ctx, ctx.image, Some(beat.node_id)));
            }
        }
    }
    decision
}

/// Fences every live broker whose session expired, moving its leaderships away.
pub fn fence_expired(
    ctx: &Context<'_>,
    sessions: &BrokerSessions,
    now: Instant,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for broker in ctx.image.live_brokers() {
        if !sessions.alive(broker.node_id, ctx.cluster.broker_session_timeout, now) {
            tracing::warn!(
                node_id = broker.node_id,
                timeout_ms = ctx.cluster.broker_session_timeout.as_millis() as u64,
                "fencing broker: no heartbeat within broker.session.timeout.ms"
            );
            records.push(MetadataRecord::BrokerState {
                node_id: broker.node_id,
                epoch: broker.epoch,
                fenced: true,
                shutting_down: false,
            });
            records.extend(move_leaderships(ctx.image, broker.node_id));
        }
    }
    records
}

/// New leaders for the partitions `node_id` leads: the next in-sync replica that is live, or none
/// (no unclean election). The last in-sync replica stays in the ISR, as Kafka keeps it. Then
/// `node_id` leaves the ISR of the partitions it follows (Kafka's controller does so when it
/// fences a broker): acks=all stops waiting for it at once instead of after
/// `replica.lag.time.max.ms`.
fn move_leaderships(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    shed_leaderships(image, node_id, false)
}

/// `move_leaderships` for a live broker whose data directory went offline: partitions without
/// another eligible in-sync replica keep it as their leader.
fn move_leaderships_off_offline_dir(image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
    shed_leaderships(image, node_id, true)
}

fn shed_leaderships(
    image: &MetadataImage,
    node_id: i32,
    keep_without_successor: bool,
) -> Vec<MetadataRecord> {
    let mut records = lead_elsewhere(image, node_id, keep_without_successor);
    for meta in image.topics.topics.values() {
        for (partition, state) in meta.assignments.iter().enumerate() {
            if state.leader == node_id || !state.isr.contains(&node_id) || state.isr.len() <= 1 {
                continue;
            }
            let mut state = state.clone();
            state.isr.retain(|r| *r != node_id);
            state.partition_epoch += 1;
            records.push(MetadataRecord::Partition {
                topic_id: meta.id,
                partition: partition as i32,
                state,
            });
        }
    }
    records
}

fn lead_elsewhere(
    image: &MetadataImage,
    node_id: i32,
    keep_without_successor: bool,
) -> Vec<MetadataRecord> {
    image
        .partitions_led_by(node_id)
        .into_iter()
        .filter_map(|(topic_id, partition, mut state)| {
            let next = state
                .isr
                .iter()
                .copied()
                .find(|r| *r != node_id && image.is_eligible(*r));
            if next.is_none() && keep_without_successor {
                return None;
            }
            if next.is_some() && state.isr.len() > 1 {
                state.isr.retain(|r| *r != node_id);
            }
            state.leader = next.unwrap_or(NO_LEADER);
            state.leader_epoch += 1;
            state.partition_epoch += 1;
            Some(MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            })
        })
        .collect()
}

/// Leaders for partitions that have none, from their live in-sync replicas (`also_live` counts as
/// live: a broker being unfenced by the same decision). With `unclean.leader.election.enable`
/// (broker default or topic), a live replica outside the ISR leads when no in-sync one is live;
/// the ISR becomes that replica alone (records only the old ISR held may be lost).
fn elect_leaderless(
    ctx: &Context<'_>,
    image: &MetadataImage,
    also_live: Option<i32>,
) -> Vec<MetadataRecord> {
    let live = |id: i32| Some(id) == also_live || image.is_eligible(id);
    let mut records = Vec::new();
    for meta in image.topics.topics.values() {
        let unclean_allowed =
            crate::topic_config::TopicSettings::resolve(ctx.broker, &meta.configs)
                .unclean_leader_election;
        for (partition, state) in meta.assignments.iter().enumerate() {
            if state.leader != NO_LEADER {
                continue;
            }
            let clean = state.isr.iter().copied().find(|r| live(*r));
            let unclean = || {
                unclean_allowed
                    .then(|| state.replicas.iter().copied().find(|r| live(*r)))
                    .flatten()
            };
            let (leader, isr) = match clean {
                Some(leader) => (leader, state.isr.clone()),
                None => match unclean() {
                    Some(leader) => {
                        tracing::warn!(topic_id = ?meta.id, partition, leader, "unclean leader election: records only the old ISR held may be lost");
                        (leader, vec![leader])
                    }
                    None => continue,
                },
            };
            let mut state = state.clone();
            state.isr = isr;
            state.leader = leader;
            state.leader_epoch += 1;
            state.partition_epoch += 1;
            records.push(MetadataRecord::Partition {
                topic_id: meta.id,
                partition: partition as i32,
                state,
            });
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_brokers(ids: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut index = 0;
        for id in ids {
            index += 1;
            image.apply(
                index,
                &[MetadataRecord::Broker(BrokerRegistration {
                    node_id: *id,
                    incarnation: [*id as u8; 16],
                    epoch: 0,
                    listeners: vec![BrokerEndpoint::plaintext(&format!("10.0.0.{id}"), 9092)],
                    rack: None,
                    fenced: true,
                    shutting_down: false,
                })],
            );
            let epoch = index as i64;
            index += 1;
            image.apply(
                index,
                &[MetadataRecord::BrokerState {
                    node_id: *id,
                    epoch,
                    fenced: false,
                    shutting_down: false,
                }],
            );
        }
        image
    }

    fn context<'a>(
        broker: &'a BrokerConfig,
        cluster: &'a ClusterConfig,
        image: &'a MetadataImage,
    ) -> Context<'a> {
        Context {
            broker,
            cluster,
            image,
        }
    }

    fn spec(name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        }
    }

    fn commit(image: &mut MetadataImage, records: &[MetadataRecord]) {
        let next = image.applied_index + 1;
        image.apply(next, records);
    }

    #[test]
    fn a_topic_is_placed_over_the_live_brokers_with_leaders_spread() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2, 3]);
        let decision = create_topics(
            &Context {
                broker: &broker,
                cluster: &cluster,
                image: &image,
            },
            &[spec("orders", 12)],
            false,
            false,
        );
        assert_eq!(decision.outcomes, vec![TopicOutcome::ok("orders")]);
        commit(&mut image, &decision.records);
        let meta = image.topics.get("orders").expect("created");
        assert_eq!(meta.partitions, 12);
        for leader in [1, 2, 3] {
            assert_eq!(image.partitions_led_by(leader).len(), 4);
        }
        // A second topic starts where the first left the load: still even.
        let again = create_topics(
            &Context {
                broker: &broker,
                cluster: &cluster,
                image: &image,
            },
            &[spec("orders", 1), spec("audit", 3)],
            false,
            false,
        );
        assert_eq!(
            again.outcomes[0].error_code,
            ResponseError::TopicAlreadyExists.code()
        );
        commit(&mut image, &again.records);
        for leader in [1, 2, 3] {
            assert_eq!(image.partitions_led_by(leader).len(), 5);
        }
    }

    #[test]
    fn bad_creations_get_kafkas_errors_and_no_records() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let image = image_with_brokers(&[1, 2]);
        let ctx = Context {
            broker: &broker,
            cluster: &cluster,
            image: &image,
        };
        let mut replicated = spec("r", 1);
        replicated.replication_factor = 3;
        let mut assigned = spec("a", -1);
        assigned.assignments = vec![vec![7]];
        let decision = create_topics(
            &ctx,
            &[
                replicated,
                assigned,
                spec("bad name!", 1),
                spec("__consumer_offsets", 1),
                spec("dup", 1),
                spec("dup", 1),
            ],
            false,
            false,
        );
        let codes: Vec<i16> = decision.outcomes.iter().map(|o| o.error_code).collect();
        assert_eq!(
            codes,
            vec![
                ResponseError::InvalidReplicationFactor.code(),
                ResponseError::InvalidReplicaAssignment.code(),
                ResponseError::InvalidTopicException.code(),
                ResponseError::InvalidTopicException.code(),
                ResponseError::InvalidRequest.code(),
                ResponseError::InvalidRequest.code(),
            ]
        );
        assert!(decision.records.is_empty());
    }

    #[test]
    fn registration_heartbeats_fencing_and_controlled_shutdown() {
        let broker_config = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2]);
        let mut sessions = BrokerSessions::default();
        let t0 = Instant::now();
        sessions.restart_all(&image, t0);
        let created = create_topics(
            &context(&broker_config, &cluster, &image),
            &[spec("t", 4)],
            false,
            false,
        );
        commit(&mut image, &created.records);
        assert_eq!(image.partitions_led_by(2).len(), 2);

        // Another process claiming node id 2 while it heartbeats is refused.
        let impostor = Registration {
            node_id: 2,
            incarnation: [99; 16],
            listeners: vec![BrokerEndpoint::plaintext("10.0.0.9", 9092)],
            rack: None,
            cluster_id: None,
        };
        let refused = register_broker(
            &context(&broker_config, &cluster, &image),
            &sessions,
            &impostor,
            false,
            t0,
        );
        assert_eq!(refused.map_err(|e| e.0), Err(DUPLICATE_BROKER_REGISTRATION));
        // The controller's own process replacing its dead incarnation is let in.
        let own = register_broker(
            &context(&broker_config, &cluster, &image),
            &sessions,
            &impostor,
            true,
            t0,
        );
        assert!(own.is_ok());

        // Broker 2 goes silent: fenced after the session timeout, its partitions lose their leader.
        let later = t0 + cluster.broker_session_timeout + Duration::from_millis(1);
        sessions.heard(1, later);
        let fenced = fence_expired(&context(&broker_config, &cluster, &image), &sessions, later);
        commit(&mut image, &fenced);
        assert!(!image.is_live(2));
        assert!(image.partitions_led_by(2).is_empty());
        let leaderless = image.topics.get("t").expect("t").assignments.iter();
        assert_eq!(leaderless.filter(|s| s.leader == NO_LEADER).count(), 2);

        // It restarts: a new registration (fenced), then a heartbeat once caught up unfences it and
        // gives its partitions their leader back.
        let restarted = Registration {
            incarnation: [42; 16],
            ..impostor
        };
        let records = register_broker(
            &context(&broker_config, &cluster, &image),
            &sessions,
            &restarted,
            false,
            later,
        )
        .expect("ok");
        commit(&mut image, &records);
        let epoch = image.brokers[&2].epoch;
        let behind = heartbeat(
            &context(&broker_config, &cluster, &image),
            &mut sessions,
            &Heartbeat {
                node_id: 2,
                epoch,
                applied_index: epoch as u64 - 1,
                want_shutdown: false,
                log_dir_offline: false,
            },
            later,
        );
        assert!(behind.fenced && behind.records.is_empty());
        let caught_up = heartbeat(
            &context(&broker_config, &cluster, &image),
            &mut sessions,
            &Heartbeat {
                node_id: 2,
                epoch,
                applied_index: epoch as u64,
                want_shutdown: false,
                log_dir_offline: false,
            },
            later,
        );
        assert!(!caught_up.fenced);
        commit(&mut image, &caught_up.records);
        assert_eq!(image.partitions_led_by(2).len(), 2);
        let state = &image.topics.get("t").expect("t").assignments;
        assert!(state.iter().all(|s| s.leader != NO_LEADER));
        assert!(state.iter().any(|s| s.leader_epoch == 2));

        // A stale epoch is refused.
        let stale = heartbeat(
            &context(&broker_config, &cluster, &image),
            &mut sessions,
            &Heartbeat {
                node_id: 2,
                epoch: epoch - 1,
                applied_index: epoch as u64,
                want_shutdown: false,
                log_dir_offline: false,
            },
            later,
        );
        assert_eq!(stale.error.map(|e| e.0), Some(STALE_BROKER_EPOCH));

        // Controlled shutdown moves its leaderships away and fences it.
        let shutdown = heartbeat(
            &context(&broker_config, &cluster, &image),
            &mut sessions,
            &Heartbeat {
                node_id: 2,
                epoch,
                applied_index: epoch as u64,
                want_shutdown: true,
                log_dir_offline: false,
            },
            later,
        );
        assert!(shutdown.shutdown_complete && shutdown.fenced);
        commit(&mut image, &shutdown.records);
        assert!(image.partitions_led_by(2).is_empty());
        assert!(!image.is_live(2));
    }

    #[test]
    fn partitions_grow_and_topics_go() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2]);
        let created = create_topics(
            &context(&broker, &cluster, &image),
            &[spec("t", 2)],
            false,
            false,
        );
        commit(&mut image, &created.records);
        let shrink = create_partitions(&context(&broker, &cluster, &image), "t", 1, &[], false);
        assert_eq!(
            shrink.outcomes[0].error_code,
            ResponseError::InvalidPartitions.code()
        );
        let grown = create_partitions(&context(&broker, &cluster, &image), "t", 5, &[], false);
        assert_eq!(grown.outcomes, vec![TopicOutcome::ok("t")]);
        commit(&mut image, &grown.records);
        assert_eq!(image.topics.get("t").expect("t").partitions, 5);
        let deleted = delete_topics(
            &context(&broker, &cluster, &image),
            &["t".into(), "nope".into()],
        );
        assert_eq!(deleted.outcomes[0], TopicOutcome::ok("t"));
        assert_eq!(
            deleted.outcomes[1].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        commit(&mut image, &deleted.records);
        assert!(image.topics.get("t").is_none());
    }

    fn replicated(image: &mut MetadataImage, broker: &BrokerConfig, cluster: &ClusterConfig) {
        let mut topic = spec("r", 1);
        topic.replication_factor = 3;
        let created = create_topics(&context(broker, cluster, image), &[topic], false, false);
        assert_eq!(created.outcomes, vec![TopicOutcome::ok("r")]);
        commit(image, &created.records);
    }

    fn state(image: &MetadataImage) -> PartitionState {
        image
            .topics
            .get("r")
            .and_then(|m| m.partition_state(0))
            .cloned()
            .expect("partition r-0")
    }

    #[test]
    fn isr_changes_come_from_the_current_leader_only() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2, 3]);
        replicated(&mut image, &broker, &cluster);
        let before = state(&image);
        assert_eq!(before.isr.len(), 3);
        let follower = *before
            .replicas
            .iter()
            .find(|r| **r != before.leader)
            .expect("a follower");
        let shrunk: Vec<i32> = before
            .isr
            .iter()
            .copied()
            .filter(|r| *r != follower)
            .collect();
        let change = |leader_id, leader_epoch, partition_epoch, new_isr: &[i32]| {
            alter_partition(
                &context(&broker, &cluster, &image),
                &IsrChange {
                    topic: "r",
                    partition: 0,
                    leader_id,
                    leader_epoch,
                    partition_epoch,
                    new_isr,
                },
            )
        };
        // Not the leader, or an old leader epoch: fenced.
        let code = |d: &Decision| d.outcomes[0].error_code;
        assert_eq!(
            code(&change(
                follower,
                before.leader_epoch,
                before.partition_epoch,
                &shrunk
            )),
            ResponseError::FencedLeaderEpoch.code()
        );
        // An old partition epoch.
        assert_eq!(
            code(&change(
                before.leader,
                before.leader_epoch,
                before.partition_epoch - 1,
                &shrunk
            )),
            INVALID_UPDATE_VERSION
        );
        // Without the leader, or with a non-replica.
        assert_eq!(
            code(&change(
                before.leader,
                before.leader_epoch,
                before.partition_epoch,
                &[follower]
            )),
            INELIGIBLE_REPLICA
        );
        assert_eq!(
            code(&change(
                before.leader,
                before.leader_epoch,
                before.partition_epoch,
                &[before.leader, 9]
            )),
            INELIGIBLE_REPLICA
        );
        let accepted = change(
            before.leader,
            before.leader_epoch,
            before.partition_epoch,
            &shrunk,
        );
        assert_eq!(accepted.outcomes, vec![TopicOutcome::ok("r")]);
        commit(&mut image, &accepted.records);
        let after = state(&image);
        assert_eq!(after.isr, shrunk);
        assert_eq!(
            after.leader_epoch, before.leader_epoch,
            "an ISR change keeps the leader epoch"
        );
        assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    }

    #[test]
    fn a_fenced_broker_leaves_every_isr_and_its_leaderships_move() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2, 3]);
        replicated(&mut image, &broker, &cluster);
        let before = state(&image);
        let follower = *before
            .replicas
            .iter()
            .find(|r| **r != before.leader)
            .expect("a follower");
        // The follower's session expires: it leaves the ISR, the leader stays.
        let records = move_leaderships(&image, follower);
        commit(&mut image, &records);
        let after = state(&image);
        assert!(!after.isr.contains(&follower));
        assert_eq!(after.leader, before.leader);
        assert_eq!(after.leader_epoch, before.leader_epoch);
        // The leader's session expires: a live in-sync replica leads, in a new epoch.
        let records = move_leaderships(&image, before.leader);
        commit(&mut image, &records);
        let last = state(&image);
        assert_ne!(last.leader, before.leader);
        assert!(last.isr.contains(&last.leader));
        assert_eq!(last.leader_epoch, before.leader_epoch + 1);
    }

    #[test]
    fn an_offline_log_dir_keeps_a_leader_no_other_replica_can_replace() {
        let mut image = image_with_brokers(&[1, 2, 3]);
        replicated(
            &mut image,
            &BrokerConfig::default(),
            &ClusterConfig::single_node(1),
        );
        let mut alone = state(&image);
        alone.isr = vec![alone.leader];
        alone.partition_epoch += 1;
        let topic_id = image.topics.get("r").expect("topic r").id;
        commit(
            &mut image,
            &[MetadataRecord::Partition {
                topic_id,
                partition: 0,
                state: alone.clone(),
            }],
        );
        // No other in-sync replica: the leader stays (it answers KAFKA_STORAGE_ERROR), where a
        // fenced broker's partition would go leaderless.
        assert!(move_leaderships_off_offline_dir(&image, alone.leader).is_empty());
        let fenced = move_leaderships(&image, alone.leader);
        assert!(matches!(
            fenced.as_slice(),
            [MetadataRecord::Partition { state, .. }] if state.leader == NO_LEADER
        ));
    }

    #[test]
    fn an_offline_log_dir_takes_a_broker_out_of_every_isr_until_it_is_back() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2, 3]);
        replicated(&mut image, &broker, &cluster);
        let before = state(&image);
        let follower = *before
            .replicas
            .iter()
            .find(|r| **r != before.leader)
            .expect("a follower");
        let mut sessions = BrokerSessions::default();
        let now = Instant::now();
        let beat = |image: &MetadataImage, sessions: &mut BrokerSessions, node_id, offline| {
            let epoch = image.brokers[&node_id].epoch;
            heartbeat(
                &context(&broker, &cluster, image),
                sessions,
                &Heartbeat {
                    node_id,
                    epoch,
                    applied_index: image.applied_index,
                    want_shutdown: false,
                    log_dir_offline: offline,
                },
                now,
            )
        };
        let steady = beat(&image, &mut sessions, follower, false);
        assert!(steady.records.is_empty(), "nothing changes");
        // The follower's disk fails: out of the ISR at once, the leader stays.
        let offline = beat(&image, &mut sessions, follower, true);
        assert!(!offline.fenced, "the broker stays registered and unfenced");
        commit(&mut image, &offline.records);
        assert!(image.log_dir_offline.contains(&follower));
        assert!(image.is_live(follower) && !image.is_eligible(follower));
        let after = state(&image);
        assert!(!after.isr.contains(&follower));
        assert_eq!(
            (after.leader, after.leader_epoch),
            (before.leader, before.leader_epoch)
        );
        assert!(
            beat(&image, &mut sessions, follower, true)
                .records
                .is_empty(),
            "reported once"
        );
        // The leader may not add it back while its directory is offline.
        let grow = |image: &MetadataImage| {
            let current = state(image);
            let mut isr = current.isr.clone();
            isr.push(follower);
            alter_partition(
                &context(&broker, &cluster, image),
                &IsrChange {
                    topic: "r",
                    partition: 0,
                    leader_id: current.leader,
                    leader_epoch: current.leader_epoch,
                    partition_epoch: current.partition_epoch,
                    new_isr: &isr,
                },
            )
        };
        assert_eq!(grow(&image).outcomes[0].error_code, INELIGIBLE_REPLICA);
        // A snapshot keeps the state.
        let restored = MetadataImage::from_records(image.applied_index, &image.to_records());
        assert!(restored.log_dir_offline.contains(&follower));
        // Back online: eligible again, and the leader's request is accepted.
        let online = beat(&image, &mut sessions, follower, false);
        commit(&mut image, &online.records);
        assert!(image.is_eligible(follower));
        let grown = grow(&image);
        assert_eq!(grown.outcomes[0].error_code, 0);
        commit(&mut image, &grown.records);
        assert!(state(&image).isr.contains(&follower));
        // The leader's disk fails: another in-sync replica leads, in a new epoch.
        let leader = state(&image).leader;
        let leader_offline = beat(&image, &mut sessions, leader, true);
        commit(&mut image, &leader_offline.records);
        let moved = state(&image);
        assert_ne!(moved.leader, leader);
        assert!(!moved.isr.contains(&leader));
        assert_eq!(moved.leader_epoch, before.leader_epoch + 1);
        // A new registration of that broker starts online.
        let registration = Registration {
            node_id: leader,
            incarnation: [99; 16],
            listeners: vec![BrokerEndpoint::plaintext("10.0.0.9", 9092)],
            rack: None,
            cluster_id: None,
        };
        let records = register_broker(
            &context(&broker, &cluster, &image),
            &sessions,
            &registration,
            true,
            now,
        )
        .expect("registered");
        commit(&mut image, &records);
        assert!(!image.log_dir_offline.contains(&leader));
    }

    #[test]
    fn min_insync_above_the_replication_factor_is_refused() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let image = image_with_brokers(&[1, 2, 3]);
        let mut topic = spec("m", 1);
        topic.replication_factor = 2;
        topic
            .configs
            .insert("min.insync.replicas".into(), "3".into());
        let refused = create_topics(&context(&broker, &cluster, &image), &[topic], false, false);
        assert_eq!(
            refused.outcomes[0].error_code,
            ResponseError::InvalidConfig.code()
        );
        assert!(refused.records.is_empty());
    }

    #[test]
    fn preferred_replicas_lead_again_when_in_sync() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let mut image = image_with_brokers(&[1, 2, 3]);
        replicated(&mut image, &broker, &cluster);
        let before = state(&image);
        let preferred = before.replicas[0];
        assert_eq!(before.leader, preferred);
        let (elections, records) = elect_preferred(&image, None);
        assert_eq!(elections[0].error_code, ELECTION_NOT_NEEDED);
        assert!(records.is_empty());
        // The preferred leader's session expires: another leads. Back in the ISR, it leads again.
        let moved = move_leaderships(&image, preferred);
        commit(&mut image, &moved);
        assert_ne!(state(&image).leader, preferred);
        let (elections, _) = elect_preferred(&image, Some(&[("r".into(), 0)]));
        assert_eq!(
            elections[0].error_code, PREFERRED_LEADER_NOT_AVAILABLE,
            "not in the ISR"
        );
        let mut rejoined = state(&image);
        rejoined.isr.push(preferred);
        let topic_id = image.topics.get("r").expect("r").id;
        commit(
            &mut image,
            &[MetadataRecord::Partition {
                topic_id,
                partition: 0,
                state: rejoined,
            }],
        );
        let records = rebalance_leaders(&image);
        assert_eq!(
            records.len(),
            1,
            "one partition, 100% off its preferred leader"
        );
        commit(&mut image, &records);
        let after = state(&image);
        assert_eq!(after.leader, preferred);
        assert_eq!(after.leader_epoch, before.leader_epoch + 2);
        let (unknown, _) = elect_preferred(&image, Some(&[("nope".into(), 0)]));
        assert_eq!(
            unknown[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }

    #[test]
    fn a_stalled_controller_extends_sessions_instead_of_fencing() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let image = image_with_brokers(&[1, 2]);
        let t0 = Instant::now();
        let mut sessions = BrokerSessions::default();
        sessions.restart_all(&image, t0);
        let late = t0 + cluster.broker_session_timeout + Duration::from_secs(1);
        assert_eq!(
            fence_expired(&context(&broker, &cluster, &image), &sessions, late).len(),
            2,
            "both sessions ran out"
        );
        sessions.extend_all(Duration::from_secs(5));
        assert!(fence_expired(&context(&broker, &cluster, &image), &sessions, late).is_empty());
    }

    #[test]
    fn a_session_not_heard_since_a_takeover_can_be_ended_at_once() {
        let broker = BrokerConfig::default();
        let cluster = ClusterConfig::single_node(1);
        let timeout = cluster.broker_session_timeout;
        let image = image_with_brokers(&[1, 2, 3]);
        let took_over = Instant::now() + timeout;
        let mut sessions = BrokerSessions::default();
        sessions.restart_all(&image, took_over - Duration::from_secs(4));
        let now = took_over + Duration::from_secs(1);
        sessions.heard(2, took_over + Duration::from_millis(300));
        assert!(sessions.end_unless_heard_since(3, took_over, now, timeout));
        assert!(
            !sessions.end_unless_heard_since(2, took_over, now, timeout),
            "broker 2 heartbeated after the takeover"
        );
        assert!(
            !sessions.end_unless_heard_since(3, took_over, now, timeout),
            "already ended"
        );
        let fenced = fence_expired(&context(&broker, &cluster, &image), &sessions, now);
        assert_eq!(fenced.len(), 1, "only broker 3: {fenced:?}");
    }
}
