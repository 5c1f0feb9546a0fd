//! Committed offsets: OffsetCommit (persist, then apply), OffsetFetch, OffsetDelete, recovery replay and
//! the retention sweep. Every change is persisted under the persist lock before it is applied, so
//! the in-memory view is always the replay of the store's log.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::Permit;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};

use super::consumer;
use super::consumer::model::ConsumerGroup;
use super::consumer::values::{ConsumerRecord, ConsumerRecordKind};
use super::coordinator::{now_ms, Inner};
use super::error::GroupError;
use super::group::{Group, GroupState};
use super::responses::*;
use super::store::{
    CommittedOffset, CoordinatorRecord, GroupMetadataRecord, OffsetKey, OffsetRecord,
};

/// First OffsetCommit version carrying `group_instance_id`.
const COMMIT_STATIC_MEMBERSHIP_VERSION: i16 = 7;
/// First OffsetFetch version with a top-level error code.
const FETCH_TOP_LEVEL_ERROR_VERSION: i16 = 2;
/// First OffsetFetch version with the `groups` batch.
const FETCH_GROUPS_BATCH_VERSION: i16 = 8;
/// First OffsetCommit/OffsetFetch version a consumer-protocol member may use (it carries the member
/// epoch; Kafka refuses older ones from such members).
const COMMIT_CONSUMER_PROTOCOL_VERSION: i16 = 9;
const FETCH_MEMBER_EPOCH_VERSION: i16 = 9;

/// Who commits offsets, as OffsetCommit or TxnOffsetCommit name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committer<'a> {
    pub group_id: &'a str,
    /// The generation (classic group) or member epoch (consumer group); -1 outside the group.
    pub generation_id: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// A TxnOffsetCommit.
    pub transactional: bool,
    /// The request's version.
    pub version: i16,
}

/// One partition's offset as a commit asks it.
pub(crate) struct AskedOffset<'a> {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<&'a str>,
}

/// OffsetDelete's plan: an error code per requested partition, and the tombstones to write.
type DeleteDecision = (Vec<Vec<i16>>, Vec<CoordinatorRecord>);

/// A fetched partition: its index, its committed offset if any, and its error code
/// (UNSTABLE_OFFSET_COMMIT while a transaction holds an offset of it and the fetch wants stable ones).
struct FetchedPartition {
    index: i32,
    committed: Option<CommittedOffset>,
    error_code: i16,
}

/// A fetched topic: its name and partitions.
type FetchedTopic = (String, Vec<FetchedPartition>);

impl Inner {
    /// Takes the persist lock (one offsets change at a time, in log order).
    pub(crate) async fn persist_lock(&self) -> Result<Permit<'_>, GroupError> {
        self.persist_lock
            .acquire_permit(1)
            .await
            .map_err(|error| GroupError::Storage(format!("persist lock closed: {error}")))
    }

    /// Persists `records`, then applies them; the caller holds the persist lock and has drained the queue.
    pub(crate) async fn persist_then_apply(
        &self,
        records: &[CoordinatorRecord],
    ) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        self.store.persist(records).await?;
        self.apply_records(records, Instant::now(), now_ms());
        Ok(())
    }

    /// Applies records the log accepted (creating Empty groups as needed); returns the offsets now held.
    /// A group-metadata record only updates what the group has in the log
    /// ([`Group::persisted_metadata`]); consumer-group records change nothing at run time, the state
    /// they describe being already in memory. [`Inner::replay_records`] is the start-up form.
    pub(crate) fn apply_records(
        &self,
        records: &[CoordinatorRecord],
        now: Instant,
        now_ms: i64,
    ) -> usize {
        self.apply_records_as(records, now, now_ms, false)
    }

    /// Replays the log at start-up: as [`Inner::apply_records`], and consumer-group records rebuild their
    /// groups (a group-epoch tombstone removes one).
    pub(crate) fn replay_records(
        &self,
        records: &[CoordinatorRecord],
        now: Instant,
        now_ms: i64,
    ) -> usize {
        self.apply_records_as(records, now, now_ms, true)
    }

    fn apply_records_as(
        &self,
        records: &[CoordinatorRecord],
        now: Instant,
        now_ms: i64,
        replaying: bool,
    ) -> usize {
        let mut groups = self.groups.borrow_mut();
        for record in records {
            if self.apply_txn_record(&mut groups, record, now, now_ms) {
                continue;
            }
            let Some(group_id) = record.group_id() else {
                continue;
            };
            if record.is_tombstone() && !groups.contains_key(group_id) {
                continue;
            }
            if matches!(record, CoordinatorRecord::Consumer(_)) && !replaying {
                continue;
            }
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now, now_ms));
            match record {
                CoordinatorRecord::Offset(OffsetRecord { key, value }) => match value {
                    Some(value) => {
                        group
                            .offsets
                            .insert((key.topic.clone(), key.partition), value.clone());
                    }
                    None => {
                        group.offsets.remove(&(key.topic.clone(), key.partition));
                    }
                },
                CoordinatorRecord::GroupMetadata(GroupMetadataRecord { value, .. }) => {
                    group.persisted_metadata = value.clone();
                }
                CoordinatorRecord::Consumer(ConsumerRecord { kind, .. }) => {
                    if matches!(kind, ConsumerRecordKind::GroupEpoch(None)) {
                        group.consumer = None;
                    } else {
                        let consumer = group.consumer.get_or_insert_with(Default::default);
                        consumer::records::replay(consumer, kind, now);
                    }
                }
                CoordinatorRecord::TxnOffset(_) | CoordinatorRecord::TxnMarker(_) => {
                    debug_assert!(false, "transaction records are applied apart");
                }
            }
        }
        // Groups whose offsets and metadata were all deleted and that nobody uses are gone (Kafka's group
        // tombstone).
        groups.retain(|_, g| {
            !(g.offsets.is_empty()
                && g.persisted_metadata.is_none()
                && g.consumer.is_none()
                && g.state == GroupState::Empty
                && g.size() == 0
                && g.generation_id == 0)
        });
        groups.values().map(|g| g.offsets.len()).sum()
    }

    /// Kafka's commit checks; `Ok` when the commit may proceed.
    fn check_commit(&self, req: &OffsetCommitRequest, version: i16) -> Result<(), i16> {
        self.check_committer(&Committer {
            group_id: req.group_id.0.as_str(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.as_str(),
            instance_id: if version >= COMMIT_STATIC_MEMBERSHIP_VERSION {
                req.group_instance_id.as_deref()
            } else {
                None
            },
            transactional: false,
            version,
        })
    }

    /// Kafka's `validateOffsetCommit` for a plain or transactional commit.
    pub(crate) fn check_committer(&self, who: &Committer<'_>) -> Result<(), i16> {
        let Committer {
            group_id,
            generation_id,
            member_id,
            instance_id,
            transactional,
            version,
        } = *who;
        if group_id.is_empty() {
            return Err(INVALID_GROUP_ID);
        }
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            // No group: only a standalone consumer (generation -1) may commit; it creates the group.
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(ILLEGAL_GENERATION)
            };
        };
        if group.state == GroupState::Dead {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        // Older TxnOffsetCommit versions carry no member: Kafka lets them commit to any group.
        if transactional && generation_id < 0 && member_id.is_empty() && instance_id.is_none() {
            return Ok(());
        }
        if let Some(consumer) = group.consumer.as_deref() {
            return check_consumer_commit(
                consumer,
                member_id,
                generation_id,
                version,
                transactional,
            );
        }
        if group.is_static_member_fenced(member_id, instance_id) {
            return Err(FENCED_INSTANCE_ID);
        }
        if generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(REBALANCE_IN_PROGRESS);
        }
        let current_generation = group.generation_id;
        let Some(member) = group.member_mut(member_id) else {
            return Err(UNKNOWN_MEMBER_ID);
        };
        if generation_id != current_generation {
            return Err(ILLEGAL_GENERATION);
        }
        // A commit proves the member is alive.
        member.touch_session(Instant::now());
        Ok(())
    }

    pub(crate) async fn offset_commit(
        self: &Rc<Self>,
        req: &OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let checked = self.check_commit(req, version);
        let asked = req.topics.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| AskedOffset {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_deref(),
            });
            (topic.name.0.as_str(), partitions)
        });
        let (mut codes, offsets) = self.decide_commit(req.group_id.0.as_str(), checked, asked);
        let records = offsets.into_iter().map(CoordinatorRecord::Offset).collect();
        self.persist_commit(req.group_id.0.as_str(), records, &mut codes)
            .await;
        let mut response = OffsetCommitResponse::default();
        response.topics = req
            .topics
            .iter()
            .zip(codes)
            .map(|(topic, topic_codes)| {
                let mut out = OffsetCommitResponseTopic::default();
                out.name = topic.name.clone();
                out.partitions = topic
                    .partitions
                    .iter()
                    .zip(topic_codes)
                    .map(|(partition, code)| {
                        let mut p = OffsetCommitResponsePartition::default();
                        p.partition_index = partition.partition_index;
                        p.error_code = code;
                        p
                    })
                    .collect();
                out
            })
            .collect();
        response
    }

    /// The offsets a commit (plain or transactional) writes and every partition's code: `checked`'s
    /// error for all, OFFSET_METADATA_TOO_LARGE for too much metadata, else NONE and an offset.
    pub(crate) fn decide_commit<'a, P>(
        &self,
        group_id: &str,
        checked: Result<(), i16>,
        topics: impl Iterator<Item = (&'a str, P)>,
    ) -> (Vec<Vec<i16>>, Vec<OffsetRecord>)
    where
        P: Iterator<Item = AskedOffset<'a>>,
    {
        let commit_timestamp_ms = now_ms();
        let mut codes = Vec::new();
        let mut offsets = Vec::new();
        for (topic, partitions) in topics {
            let mut topic_codes = Vec::new();
            for asked in partitions {
                let metadata = asked.metadata.unwrap_or("");
                let code = match checked {
                    Err(code) => code,
                    Ok(()) if metadata.len() > self.config.offset_metadata_max_bytes => {
                        OFFSET_METADATA_TOO_LARGE
                    }
                    Ok(()) => {
                        offsets.push(OffsetRecord {
                            key: OffsetKey {
                                group_id: group_id.to_string(),
                                topic: topic.to_string(),
                                partition: asked.partition,
                            },
                            value: Some(CommittedOffset {
                                offset: asked.offset,
                                leader_epoch: asked.leader_epoch,
                                metadata: metadata.to_string(),
                                commit_timestamp_ms,
                            }),
                        });
                        NONE
                    }
                };
                topic_codes.push(code);
            }
            codes.push(topic_codes);
        }
        (codes, offsets)
    }

    /// Persists a commit's records; on failure the partitions that were to commit are answered
    /// NOT_COORDINATOR, as Kafka answers a storage failure of the offsets log: the client looks the
    /// coordinator up again and retries.
    pub(crate) async fn persist_commit(
        self: &Rc<Self>,
        group_id: &str,
        records: Vec<CoordinatorRecord>,
        codes: &mut [Vec<i16>],
    ) {
        if let Err(error) = self.persist_and_apply(records).await {
            tracing::warn!(group = group_id, %error, "offset commit not persisted");
            for code in codes.iter_mut().flatten().filter(|c| **c == NONE) {
                *code = NOT_COORDINATOR;
            }
        }
    }

    /// Offsets of one group: every stored one when `topics` is `None`, else the asked partitions (-1 for
    /// those without a commit; unknown groups are not an error). With `require_stable` a partition an
    /// open transaction holds an offset of is answered UNSTABLE_OFFSET_COMMIT (Kafka's consumers
    /// retry it until the transaction ends).
    fn fetch_group(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<FetchedTopic> {
        let groups = self.groups.borrow();
        let pending = self.pending_txn.borrow();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let fetched = |topic: &str, index: i32, committed: Option<&CommittedOffset>| {
            if require_stable && pending.is_pending(group_id, topic, index) {
                FetchedPartition {
                    index,
                    committed: None,
                    error_code: UNSTABLE_OFFSET_COMMIT,
                }
            } else {
                FetchedPartition {
                    index,
                    committed: committed.cloned(),
                    error_code: NONE,
                }
            }
        };
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| {
                            let committed = offsets.and_then(|o| o.get(&(topic.clone(), p)));
                            fetched(&topic, p, committed)
                        })
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedPartition>> = BTreeMap::new();
                for ((topic, partition), committed) in offsets.into_iter().flatten() {
                    by_topic.entry(topic.clone()).or_default().push(fetched(
                        topic,
                        *partition,
                        Some(committed),
                    ));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// The member checks of an OffsetFetch v9+ (`member`: its id and epoch) on a consumer group.
    fn check_fetch(&self, group_id: &str, member: Option<(Option<&str>, i32)>) -> Result<(), i16> {
        let Some((member_id, member_epoch)) = member else {
            return Ok(());
        };
        let groups = self.groups.borrow();
        match groups.get(group_id).and_then(|g| g.consumer.as_deref()) {
            Some(consumer) => check_consumer_fetch(consumer, member_id, member_epoch),
            None => Ok(()),
        }
    }

    pub(crate) fn offset_fetch(
        &self,
        req: &OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let mut response = OffsetFetchResponse::default();
        if version >= FETCH_GROUPS_BATCH_VERSION {
            response.groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let mut group = OffsetFetchResponseGroup::default();
                    group.group_id = g.group_id.clone();
                    let member = (version >= FETCH_MEMBER_EPOCH_VERSION)
                        .then_some((g.member_id.as_deref(), g.member_epoch));
                    if let Err(code) = self.check_fetch(g.group_id.0.as_str(), member) {
                        group.error_code = code;
                        return group;
                    }
                    group.topics = self
                        .fetch_group(g.group_id.0.as_str(), topics, req.require_stable)
                        .into_iter()
                        .map(batch_topic)
                        .collect();
                    group
                })
                .collect();
            return response;
        }
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        response.topics = self
            .fetch_group(req.group_id.0.as_str(), topics, req.require_stable)
            .into_iter()
            .map(|(name, partitions)| {
                let mut topic = OffsetFetchResponseTopic::default();
                topic.name = str_bytes(&name).into();
                topic.partitions = partitions
                    .into_iter()
                    .map(|fetched| {
                        let mut p = OffsetFetchResponsePartition::default();
                        p.partition_index = fetched.index;
                        p.error_code = fetched.error_code;
                        let (offset, epoch, metadata) = offset_fields(fetched.committed);
                        p.committed_offset = offset;
                        p.committed_leader_epoch = epoch;
                        p.metadata = Some(str_bytes(&metadata));
                        p
                    })
                    .collect();
                topic
            })
            .collect();
        if version >= FETCH_TOP_LEVEL_ERROR_VERSION {
            response.error_code = NONE;
        }
        response
    }

    pub(crate) async fn offset_delete(
        self: &Rc<Self>,
        req: &OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let mut response = OffsetDeleteResponse::default();
        let group_id = req.group_id.0.as_str();
        let decided = self.decide_offset_delete(req);
        let (codes, records) = match decided {
            Ok(decided) => decided,
            Err(code) => {
                response.error_code = code;
                return response;
            }
        };
        if let Err(error) = self.persist_and_apply(records).await {
            tracing::warn!(group = group_id, %error, "offset delete not persisted");
            response.error_code = NOT_COORDINATOR;
            return response;
        }
        response.topics = req
            .topics
            .iter()
            .zip(codes)
            .map(|(topic, topic_codes)| {
                let mut out = OffsetDeleteResponseTopic::default();
                out.name = topic.name.clone();
                out.partitions = topic
                    .partitions
                    .iter()
                    .zip(topic_codes)
                    .map(|(p, code)| {
                        let mut partition = OffsetDeleteResponsePartition::default();
                        partition.partition_index = p.partition_index;
                        partition.error_code = code;
                        partition
                    })
                    .collect();
                out
            })
            .collect();
        response
    }

    /// Kafka's `handleDeleteOffsets` checks: per-partition codes and the tombstones to write.
    fn decide_offset_delete(&self, req: &OffsetDeleteRequest) -> Result<DeleteDecision, i16> {
        let group_id = req.group_id.0.as_str();
        let groups = self.groups.borrow();
        let group = groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(GROUP_ID_NOT_FOUND)?;
        let subscribed = match group.state {
            // A consumer-protocol group: the topics its members subscribe to stay (Kafka's
            // `isSubscribedToTopic`), whatever its (always Empty) classic state says.
            _ if group.consumer.as_deref().is_some_and(|c| !c.is_empty()) => group
                .consumer
                .as_deref()
                .map(|c| Some(c.subscribed_topics().into_iter().collect())),
            GroupState::Empty => None,
            _ if group.protocol_type.as_deref() == Some("consumer") => {
                Some(group.subscribed_topics())
            }
            _ => return Err(NON_EMPTY_GROUP),
        };
        let mut records = Vec::new();
        let codes = req
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.0.as_str();
                // Unknown subscriptions count as subscribed, to be safe (as Kafka does).
                let in_use = subscribed
                    .as_ref()
                    .is_some_and(|s| s.as_ref().is_none_or(|topics| topics.contains(name)));
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        if in_use {
                            return GROUP_SUBSCRIBED_TO_TOPIC;
                        }
                        if group
                            .offsets
                            .contains_key(&(name.to_string(), p.partition_index))
                        {
                            records.push(CoordinatorRecord::Offset(OffsetRecord {
                                key: OffsetKey {
                                    group_id: group_id.to_string(),
                                    topic: name.to_string(),
                                    partition: p.partition_index,
                                },
                                value: None,
                            }));
                        }
                        NONE
                    })
                    .collect()
            })
            .collect();
        Ok((codes, records))
    }

    /// Tombstones offsets of Empty groups older than the retention, deletes Empty groups left with no
    /// offsets (with a group-metadata tombstone when the log holds their metadata, as Kafka's
    /// `cleanupGroupMetadata` does), and compacts the store when it asks for it.
    pub(crate) async fn expire_offsets(&self, now_ms: i64) -> Result<usize, GroupError> {
        let _permit = self.persist_lock().await?;
        self.drain_queue_locked().await;
        let retention_ms = self.config.offsets_retention_ms;
        let records: Vec<CoordinatorRecord> = {
            let groups = self.groups.borrow();
            groups
                .values()
                .filter(|g| g.state == GroupState::Empty)
                .flat_map(|g| {
                    // A consumer-protocol group with members keeps the offsets of what they subscribe to
                    // (Kafka expires those of its other topics only).
                    let kept = g
                        .consumer
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .map(ConsumerGroup::subscribed_topics);
                    g.offsets
                        .iter()
                        .filter(move |((topic, _), c)| {
                            kept.as_ref().is_none_or(|k| !k.contains(topic))
                                && now_ms
                                    .saturating_sub(c.commit_timestamp_ms.max(g.empty_since_ms))
                                    >= retention_ms
                        })
                        .map(move |((topic, partition), _)| {
                            CoordinatorRecord::Offset(OffsetRecord {
                                key: OffsetKey {
                                    group_id: g.group_id.clone(),
                                    topic: topic.clone(),
                                    partition: *partition,
                                },
                                value: None,
                            })
                        })
                })
                .collect()
        };
        self.persist_then_apply(&records).await?;
        self.delete_unused_groups().await?;
        if self.store.wants_compaction() {
            let live = self.live_records();
            self.store.compact(&live).await?;
        }
        Ok(records.len())
    }

    /// Removes Empty groups without offsets or pending members, writing a metadata tombstone first for
    /// those the log knows. They are Dead while it is written, so a join meanwhile is told to retry.
    async fn delete_unused_groups(&self) -> Result<(), GroupError> {
        let unused = |g: &Group| g.has_no_members() && g.offsets.is_empty();
        let (removed, tombstones): (Vec<String>, Vec<CoordinatorRecord>) = {
            let mut groups = self.groups.borrow_mut();
            groups.retain(|_, g| {
                !(unused(g) && g.persisted_metadata.is_none() && g.consumer.is_none())
            });
            let mut removed = Vec::new();
            let mut tombstones = Vec::new();
            for g in groups.values_mut().filter(|g| unused(g)) {
                g.state = GroupState::Dead;
                removed.push(g.group_id.clone());
                tombstones.extend(group_tombstones(g));
            }
            (removed, tombstones)
        };
        let persisted = self.persist_then_apply(&tombstones).await;
        let mut groups = self.groups.borrow_mut();
        for group_id in &removed {
            if persisted.is_ok() {
                groups.remove(group_id);
            } else if let Some(group) = groups.get_mut(group_id) {
                group.state = GroupState::Empty;
            }
        }
        persisted
    }
}

/// The tombstones deleting a group's membership records (classic metadata, consumer-group state), not
/// its offsets.
pub(crate) fn group_tombstones(group: &Group) -> Vec<CoordinatorRecord> {
    let mut out = Vec::new();
    if group.persisted_metadata.is_some() {
        out.push(CoordinatorRecord::GroupMetadata(GroupMetadataRecord {
            group_id: group.group_id.clone(),
            value: None,
        }));
    }
    if let Some(consumer) = group.consumer.as_deref() {
        out.extend(consumer::records::group_tombstones(
            &group.group_id,
            consumer,
        ));
    }
    out
}

impl Inner {
    /// Every live record: committed offsets, the group metadata the log holds and the offsets of
    /// open transactions (what a replay of a compacted store must yield).
    pub(crate) fn live_records(&self) -> Vec<CoordinatorRecord> {
        let groups = self.groups.borrow();
        let mut live = Vec::new();
        for g in groups.values() {
            if let Some(metadata) = &g.persisted_metadata {
                live.push(CoordinatorRecord::GroupMetadata(GroupMetadataRecord {
                    group_id: g.group_id.clone(),
                    value: Some(metadata.clone()),
                }));
            }
            if let Some(consumer) = g.consumer.as_deref() {
                live.extend(consumer::records::snapshot(&g.group_id, consumer));
            }
            live.extend(g.offsets.iter().map(|((topic, partition), committed)| {
                CoordinatorRecord::Offset(OffsetRecord {
                    key: OffsetKey {
                        group_id: g.group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    value: Some(committed.clone()),
                })
            }));
        }
        // After every plain record: a replay orders them as the log did (see `txn_offsets`).
        live.extend(
            self.pending_txn
                .borrow()
                .live_records()
                .into_iter()
                .map(CoordinatorRecord::TxnOffset),
        );
        live
    }
}

/// Kafka's `ConsumerGroup.validateOffsetCommit`: outside the group (epoch -1) only while it has no
/// members; a member must commit with OffsetCommit v9+ and its current member epoch.
fn check_consumer_commit(
    consumer: &ConsumerGroup,
    member_id: &str,
    member_epoch: i32,
    version: i16,
    transactional: bool,
) -> Result<(), i16> {
    if member_epoch < 0 && consumer.is_empty() {
        return Ok(());
    }
    let member = consumer.members.get(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
    // TxnOffsetCommit has carried the member epoch (as its generation) since v3.
    if !transactional && version < COMMIT_CONSUMER_PROTOCOL_VERSION {
        return Err(UNSUPPORTED_VERSION);
    }
    if member_epoch != member.epoch() {
        return Err(STALE_MEMBER_EPOCH);
    }
    Ok(())
}

/// Kafka's `ConsumerGroup.validateOffsetFetch` (OffsetFetch v9+): a fetch naming a member must name one
/// of the group at its current epoch; the admin client's (no member, epoch -1) always passes.
fn check_consumer_fetch(
    consumer: &ConsumerGroup,
    member_id: Option<&str>,
    member_epoch: i32,
) -> Result<(), i16> {
    if member_id.is_none() && member_epoch < 0 {
        return Ok(());
    }
    let member = member_id
        .and_then(|id| consumer.members.get(id))
        .ok_or(UNKNOWN_MEMBER_ID)?;
    if member_epoch != member.epoch() {
        return Err(STALE_MEMBER_EPOCH);
    }
    Ok(())
}

/// (offset, leader epoch, metadata) as OffsetFetch reports them; -1/-1/"" when nothing is committed.
fn offset_fields(committed: Option<CommittedOffset>) -> (i64, i32, String) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

fn batch_topic((name, partitions): FetchedTopic) -> OffsetFetchResponseTopics {
    let mut topic = OffsetFetchResponseTopics::default();
    topic.name = str_bytes(&name).into();
    topic.partitions = partitions
        .into_iter()
        .map(|fetched| {
            let mut p = OffsetFetchResponsePartitions::default();
            p.partition_index = fetched.index;
            p.error_code = fetched.error_code;
            let (offset, epoch, metadata) = offset_fields(fetched.committed);
            p.committed_offset = offset;
            p.committed_leader_epoch = epoch;
            p.metadata = Some(str_bytes(&metadata));
            p
        })
        .collect();
    topic
}
