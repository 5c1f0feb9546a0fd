//! Classic-group membership in the offsets log (Kafka's GroupMetadata record), so a broker restart is
//! invisible to a stable group. Written when a generation completes (the leader's SyncGroup: persisted
//! before any member gets its assignment, as Kafka does), when the group becomes Empty (its generation
//! survives) and when a static member takes over its entry in a Stable group (its new member id must
//! survive, or the restarted broker would fence it). Deletion writes a tombstone (`admin`, `offsets`).
//! At start-up, groups whose log holds metadata come back Stable (or Empty) with their generation,
//! leader, members and assignments; every member's session restarts at load time, so members that do
//! not heartbeat within their session timeout are then removed.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::coordinator::{now_ms, Inner};
use super::group::{Group, GroupState};
use super::member::{JoinOutcome, Member, MemberProtocol, SyncOutcome};
use super::rebalance::spawn_deferred;
use super::responses::{NONE, NOT_COORDINATOR};
use super::store::{CoordinatorRecord, GroupMetadata, GroupMetadataRecord, StoredMember};

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

fn duration_ms(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Group {
    /// This group as a GroupMetadata value, each member with the assignment `assignment_of` gives.
    pub fn metadata_snapshot(
        &self,
        assignment_of: impl Fn(&Member) -> Bytes,
        now_ms: i64,
    ) -> GroupMetadata {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            current_state_timestamp_ms: if self.state == GroupState::Empty {
                self.empty_since_ms
            } else {
                now_ms
            },
            members: self
                .members
                .iter()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: millis(m.rebalance_timeout),
                    session_timeout_ms: millis(m.session_timeout),
                    subscription: m.metadata_for(&protocol),
                    assignment: assignment_of(m),
                })
                .collect(),
        }
    }

    /// Takes membership from stored metadata (Kafka's `ClassicGroup.fromRecord`): Stable with its
    /// members, whose sessions start at `now`, or Empty.
    fn restore_membership(&mut self, metadata: &GroupMetadata, now: Instant, now_ms: i64) {
        debug_assert!(self.members.is_empty() && self.state == GroupState::Empty);
        self.generation_id = metadata.generation_id;
        self.protocol_type = Some(metadata.protocol_type.clone()).filter(|t| !t.is_empty());
        self.protocol_name = metadata.protocol_name.clone();
        self.leader_id = metadata.leader_id.clone();
        self.members = metadata
            .members
            .iter()
            .map(|m| {
                let session_timeout = duration_ms(m.session_timeout_ms);
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout,
                    rebalance_timeout: duration_ms(m.rebalance_timeout_ms),
                    // Only the selected protocol's metadata is stored (as in Kafka).
                    protocols: metadata
                        .protocol_name
                        .iter()
                        .map(|name| MemberProtocol {
                            name: name.clone(),
                            metadata: m.subscription.clone(),
                        })
                        .collect(),
                    assignment: m.assignment.clone(),
                    session_deadline: now + session_timeout,
                    join_waiter: None,
                    sync_waiter: None,
                }
            })
            .collect();
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader_id = None;
            self.empty_since_ms = if metadata.current_state_timestamp_ms >= 0 {
                metadata.current_state_timestamp_ms
            } else {
                now_ms
            };
        } else {
            self.state = GroupState::Stable;
        }
    }
}

fn metadata_record(group_id: &str, value: GroupMetadata) -> CoordinatorRecord {
    CoordinatorRecord::GroupMetadata(GroupMetadataRecord {
        group_id: group_id.to_string(),
        value: Some(value),
    })
}

impl Inner {
    /// After a replay: every group whose log holds metadata gets its membership back and a session watch
    /// per member, from now. Returns how many members came back.
    pub(crate) fn restore_groups(
        self: &Rc<Self>,
        now: Instant,
        now_ms: i64,
        only: &dyn Fn(&str) -> bool,
    ) -> usize {
        let mut watches: Vec<(String, String)> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for group in groups.values_mut().filter(|g| only(&g.group_id)) {
                let Some(metadata) = group.persisted_metadata.clone() else {
                    continue;
                };
                group.restore_membership(&metadata, now, now_ms);
                watches.extend(
                    group
                        .members
                        .iter()
                        .map(|m| (group.group_id.clone(), m.member_id.clone())),
                );
                tracing::debug!(
                    group = %group.group_id,
                    generation = group.generation_id,
                    members = group.members.len(),
                    "group metadata loaded"
                );
            }
        }
        for (group_id, member_id) in &watches {
            self.spawn_session_timer(group_id, member_id);
        }
        watches.len()
    }

    /// The leader's SyncGroup: the generation with `assignments` is persisted first; once durable (and
    /// if no newer rebalance started meanwhile) every member gets its assignment and the group is Stable.
    /// A failed write answers every parked SyncGroup with NOT_COORDINATOR (the clients find the
    /// coordinator again and rejoin) and rebalances, as Kafka does.
    pub(crate) fn persist_generation_then_install(
        self: &Rc<Self>,
        group: &Group,
        assignments: HashMap<String, Bytes>,
    ) {
        debug_assert_eq!(group.state, GroupState::CompletingRebalance);
        let snapshot = group.metadata_snapshot(
            |m| assignments.get(&m.member_id).cloned().unwrap_or_default(),
            now_ms(),
        );
        let record = metadata_record(&group.group_id, snapshot);
        let (group_id, generation_id) = (group.group_id.clone(), group.generation_id);
        let inner = self.clone();
        spawn_deferred(async move {
            let persisted = inner.persist_and_apply(vec![record]).await;
            let mut groups = inner.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return;
            };
            if group.state != GroupState::CompletingRebalance
                || group.generation_id != generation_id
            {
                // A newer rebalance started while the write was in flight; it answers the members.
                return;
            }
            match persisted {
                Ok(()) => install_assignments(group, &assignments),
                Err(error) => {
                    tracing::warn!(group = %group_id, %error, "group metadata not persisted; rebalancing");
                    for member in &mut group.members {
                        member.assignment = Bytes::new();
                        member.complete_sync(SyncOutcome::error(NOT_COORDINATOR));
                    }
                    inner.prepare_rebalance(group, "group metadata not persisted");
                }
            }
        });
    }

    /// Records the group's current state (an Empty group keeps its generation across a restart). A failed
    /// write is logged: the log then still holds the previous generation, whose members a restarted
    /// broker removes when their sessions expire.
    pub(crate) fn persist_group_state(self: &Rc<Self>, group: &Group, reason: &'static str) {
        let record = metadata_record(
            &group.group_id,
            group.metadata_snapshot(|m| m.assignment.clone(), now_ms()),
        );
        let inner = self.clone();
        let group_id = group.group_id.clone();
        spawn_deferred(async move {
            if let Err(error) = inner.persist_and_apply(vec![record]).await {
                tracing::warn!(group = %group_id, %error, reason, "group metadata not persisted");
            }
        });
    }

    /// A static member took over its entry in a Stable group: its new member id is persisted before the
    /// JoinGroup is answered with the current generation (`answer`). On failure the member is told
    /// NOT_COORDINATOR; it finds the coordinator again and rejoins with its instance id, replacing the
    /// entry once more, so the never-announced id left in memory does no harm (the log keeps the old one).
    pub(crate) fn persist_static_takeover(
        self: &Rc<Self>,
        group: &Group,
        new_member_id: &str,
        answer: JoinOutcome,
    ) {
        debug_assert_eq!(group.state, GroupState::Stable);
        let record = metadata_record(
            &group.group_id,
            group.metadata_snapshot(|m| m.assignment.clone(), now_ms()),
        );
        let inner = self.clone();
        let (group_id, member_id) = (group.group_id.clone(), new_member_id.to_string());
        spawn_deferred(async move {
            let persisted = inner.persist_and_apply(vec![record]).await;
            let mut groups = inner.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return;
            };
            let stable = group.state == GroupState::Stable;
            let Some(member) = group.member_mut(&member_id) else {
                return;
            };
            match persisted {
                // Unless a rebalance started meanwhile: the member's parked join is its to answer.
                Ok(()) if stable => member.complete_join(answer),
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(group = %group_id, %error, "static member takeover not persisted");
                    member.complete_join(JoinOutcome::error(NOT_COORDINATOR, &member_id));
                }
            }
        });
    }
}

/// Every member gets its assignment (empty if the leader gave none), the group turns Stable and every
/// parked SyncGroup is answered.
fn install_assignments(group: &mut Group, assignments: &HashMap<String, Bytes>) {
    for member in &mut group.members {
        member.assignment = assignments
            .get(&member.member_id)
            .cloned()
            .unwrap_or_default();
    }
    group.state = GroupState::Stable;
    let (protocol_type, protocol_name) = (group.protocol_type.clone(), group.protocol_name.clone());
    for member in &mut group.members {
        let assignment = member.assignment.clone();
        member.complete_sync(SyncOutcome {
            error_code: NONE,
            protocol_type: protocol_type.clone(),
            protocol_name: protocol_name.clone(),
            assignment,
        });
    }
    tracing::debug!(group = %group.group_id, generation = group.generation_id, "group stable");
}
