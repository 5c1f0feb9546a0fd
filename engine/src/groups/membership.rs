//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup on the group state machine, following Kafka's classic
//! `GroupCoordinator` check by check (error precedence included). Handlers answer at once (`Reply::Now(outcome)`)
//! or return a handle the caller awaits while the request is parked.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use super::coordinator::{now_ms, ClientInfo, Inner};
use super::group::{Group, GroupState};
use super::member::{JoinOutcome, Member, MemberProtocol, SyncOutcome};
use super::responses::*;
use super::waiter::{waiter, Reply, WaitHandle};

/// JoinGroup version from which a new dynamic member must first obtain its id (KIP-394).
const JOIN_MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// First JoinGroup/SyncGroup/Heartbeat version carrying `group_instance_id` (KIP-345)...
const JOIN_STATIC_MEMBERSHIP_VERSION: i16 = 5;
/// ...and the SyncGroup/Heartbeat/OffsetCommit versions that carry it.
const SYNC_STATIC_MEMBERSHIP_VERSION: i16 = 3;
const HEARTBEAT_STATIC_MEMBERSHIP_VERSION: i16 = 3;
/// LeaveGroup version that replaced the single member id by a batch of members.
const LEAVE_BATCH_VERSION: i16 = 3;

/// A JoinGroup's parameters, validated and owned.
struct JoinParams {
    member_id: String,
    instance_id: Option<String>,
    client: ClientInfo,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<MemberProtocol>,
}

fn duration_ms(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn text(value: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    value.as_ref().map(|s| s.to_string())
}

impl Inner {
    pub(crate) fn join(
        self: &Rc<Self>,
        req: &JoinGroupRequest,
        version: i16,
        client: &ClientInfo,
    ) -> Reply<JoinOutcome> {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        if group_id.is_empty() {
            return Reply::Now(JoinOutcome::error(INVALID_GROUP_ID, &member_id));
        }
        if req.session_timeout_ms < self.config.session_timeout_min_ms
            || req.session_timeout_ms > self.config.session_timeout_max_ms
        {
            return Reply::Now(JoinOutcome::error(INVALID_SESSION_TIMEOUT, &member_id));
        }
        // JoinGroup v0 has no rebalance timeout: the session timeout bounds the rebalance too.
        let rebalance_timeout_ms = if version == 0 || req.rebalance_timeout_ms <= 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        let params = JoinParams {
            member_id,
            instance_id: if version >= JOIN_STATIC_MEMBERSHIP_VERSION {
                text(&req.group_instance_id)
            } else {
                None
            },
            client: client.clone(),
            session_timeout: duration_ms(req.session_timeout_ms),
            rebalance_timeout: duration_ms(rebalance_timeout_ms),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| MemberProtocol {
                    name: p.name.to_string(),
                    metadata: p.metadata.clone(),
                })
                .collect(),
        };
        let mut groups = self.groups.borrow_mut();
        if let Some(group) = groups.get_mut(&group_id) {
            if let Err(code) = self.leave_consumer_protocol(group) {
                return Reply::Now(JoinOutcome::error(code, &params.member_id));
            }
        }
        if params.member_id.is_empty() {
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, Instant::now(), now_ms()));
            self.join_new_member(group, params, version)
        } else {
            match groups.get_mut(&group_id) {
                Some(group) => self.join_known_member(group, params),
                None => Reply::Now(JoinOutcome::error(UNKNOWN_MEMBER_ID, &params.member_id)),
            }
        }
    }

    /// A classic JoinGroup into a consumer-protocol group: an empty one is converted back to a classic
    /// group (its consumer records tombstoned; offsets stay), as Kafka does. One with members would need a
    /// mixed group (classic members inside a consumer group, which Kafka 4 runs and we do not):
    /// INCONSISTENT_GROUP_PROTOCOL, Kafka's answer when a member's protocol cannot join.
    fn leave_consumer_protocol(self: &Rc<Self>, group: &mut Group) -> Result<(), i16> {
        let Some(consumer) = group.consumer.as_deref() else {
            return Ok(());
        };
        if !consumer.is_empty() {
            return Err(INCONSISTENT_GROUP_PROTOCOL);
        }
        let records = crate::groups::consumer::records::group_tombstones(&group.group_id, consumer);
        group.consumer = None;
        tracing::info!(group = %group.group_id, "empty consumer group converted to the classic protocol");
        self.persist_detached(records, "conversion to the classic protocol");
        Ok(())
    }

    /// Kafka's `doNewMemberJoinGroup` (unknown member id).
    fn join_new_member(
        self: &Rc<Self>,
        group: &mut Group,
        mut params: JoinParams,
        version: i16,
    ) -> Reply<JoinOutcome> {
        if group.state == GroupState::Dead {
            return Reply::Now(JoinOutcome::error(COORDINATOR_NOT_AVAILABLE, ""));
        }
        if !group.supports_protocols(&params.protocol_type, &params.protocols) {
            return Reply::Now(JoinOutcome::error(INCONSISTENT_GROUP_PROTOCOL, ""));
        }
        let replaces_static = params
            .instance_id
            .as_deref()
            .and_then(|id| group.static_member_id(id))
            .is_some();
        if !replaces_static && group.size() >= self.config.group_members_max {
            return Reply::Now(JoinOutcome::error(GROUP_MAX_SIZE_REACHED, ""));
        }
        let prefix = params
            .instance_id
            .clone()
            .unwrap_or_else(|| params.client.client_id.clone());
        params.member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance_id) = params.instance_id.clone() {
            if let Some(old_member_id) = group.static_member_id(&instance_id).map(str::to_string) {
                return self.replace_static_member(group, &old_member_id, params);
            }
            return Reply::Later(self.add_member_and_rebalance(group, params, false));
        }
        if version >= JOIN_MEMBER_ID_REQUIRED_VERSION {
            // Two-step join: hand out the id, remember it for one session timeout.
            group.pending_members.insert(
                params.member_id.clone(),
                Instant::now() + params.session_timeout,
            );
            self.spawn_session_timer(&group.group_id, &params.member_id);
            return Reply::Now(JoinOutcome::error(MEMBER_ID_REQUIRED, &params.member_id));
        }
        Reply::Later(self.add_member_and_rebalance(group, params, false))
    }

    /// Kafka's `doCurrentMemberJoinGroup` (a member id the client got earlier).
    fn join_known_member(
        self: &Rc<Self>,
        group: &mut Group,
        params: JoinParams,
    ) -> Reply<JoinOutcome> {
        let member_id = params.member_id.clone();
        if group.state == GroupState::Dead {
            return Reply::Now(JoinOutcome::error(COORDINATOR_NOT_AVAILABLE, &member_id));
        }
        if group.pending_members.contains_key(&member_id) {
            if !group.supports_protocols(&params.protocol_type, &params.protocols) {
                return Reply::Now(JoinOutcome::error(INCONSISTENT_GROUP_PROTOCOL, &member_id));
            }
            return Reply::Later(self.add_member_and_rebalance(group, params, true));
        }
        if group.is_static_member_fenced(&member_id, params.instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(FENCED_INSTANCE_ID, &member_id));
        }
        if !group.has_member(&member_id) {
            return Reply::Now(JoinOutcome::error(UNKNOWN_MEMBER_ID, &member_id));
        }
        if !group.supports_protocols(&params.protocol_type, &params.protocols) {
            return Reply::Now(JoinOutcome::error(INCONSISTENT_GROUP_PROTOCOL, &member_id));
        }
        let unchanged = group
            .member(&member_id)
            .is_some_and(|m| m.protocols == params.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                Reply::Later(self.update_member_and_rebalance(group, params))
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried join of this generation: answer it again (the leader gets the members again).
                let members = if group.is_leader(&member_id) {
                    group.joined_members()
                } else {
                    Vec::new()
                };
                Reply::Now(current_generation(group, &member_id, members))
            }
            GroupState::Stable if unchanged && !group.is_leader(&member_id) => {
                Reply::Now(current_generation(group, &member_id, Vec::new()))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                Reply::Later(self.update_member_and_rebalance(group, params))
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinOutcome::error(UNKNOWN_MEMBER_ID, &member_id))
            }
        }
    }

    fn add_member_and_rebalance(
        self: &Rc<Self>,
        group: &mut Group,
        params: JoinParams,
        from_pending: bool,
    ) -> WaitHandle<JoinOutcome> {
        let (join_waiter, handle) = waiter();
        let now = Instant::now();
        if group.members.is_empty() {
            group.protocol_type = Some(params.protocol_type.clone());
        }
        group.pending_members.remove(&params.member_id);
        if group.leader_id.is_none() {
            group.leader_id = Some(params.member_id.clone());
        }
        let member_id = params.member_id.clone();
        group.members.push(Member {
            member_id: params.member_id,
            group_instance_id: params.instance_id,
            client_id: params.client.client_id,
            client_host: params.client.client_host,
            session_timeout: params.session_timeout,
            rebalance_timeout: params.rebalance_timeout,
            protocols: params.protocols,
            assignment: Bytes::new(),
            session_deadline: now + params.session_timeout,
            join_waiter: Some(join_waiter),
            sync_waiter: None,
        });
        if !from_pending {
            // A pending member already has its session watch; it follows the id into membership.
            self.spawn_session_timer(&group.group_id, &member_id);
        }
        match group.state {
            GroupState::PreparingRebalance => {
                if now < group.join_not_before {
                    // Kafka's InitialDelayedJoin: each arrival during the delay extends it, up to the deadline.
                    group.join_not_before =
                        (now + self.config.initial_rebalance_delay()).min(group.join_deadline);
                }
                self.try_complete_join(group);
            }
            _ => self.prepare_rebalance(group, "member joined"),
        }
        handle
    }

    fn update_member_and_rebalance(
        self: &Rc<Self>,
        group: &mut Group,
        params: JoinParams,
    ) -> WaitHandle<JoinOutcome> {
        let (join_waiter, handle) = waiter();
        if let Some(member) = group.member_mut(&params.member_id) {
            // A duplicate join replaces the earlier one, which is told to rejoin.
            member.complete_join(JoinOutcome::error(REBALANCE_IN_PROGRESS, &params.member_id));
            member.protocols = params.protocols;
            member.session_timeout = params.session_timeout;
            member.rebalance_timeout = params.rebalance_timeout;
            member.join_waiter = Some(join_waiter);
        }
        if group.state == GroupState::PreparingRebalance {
            self.try_complete_join(group);
        } else {
            self.prepare_rebalance(group, "member rejoined with new metadata or as leader");
        }
        handle
    }

    /// Kafka's `updateStaticMemberAndRebalance`: a restarted static member takes over its old entry. In a
    /// Stable group whose protocol stays the same it gets the current generation back without a
    /// rebalance; otherwise the group rebalances.
    fn replace_static_member(
        self: &Rc<Self>,
        group: &mut Group,
        old_member_id: &str,
        params: JoinParams,
    ) -> Reply<JoinOutcome> {
        let current_leader = group.leader_id.clone().unwrap_or_default();
        let new_member_id = params.member_id.clone();
        let (join_waiter, handle) = waiter();
        let Some(member) = group.member_mut(old_member_id) else {
            debug_assert!(false, "static member id registered but missing");
            return Reply::Now(JoinOutcome::error(UNKNOWN_MEMBER_ID, &new_member_id));
        };
        member.complete_join(JoinOutcome::error(FENCED_INSTANCE_ID, old_member_id));
        member.complete_sync(SyncOutcome::error(FENCED_INSTANCE_ID));
        member.member_id = new_member_id.clone();
        member.client_id = params.client.client_id;
        member.client_host = params.client.client_host;
        member.protocols = params.protocols;
        member.session_timeout = params.session_timeout;
        member.rebalance_timeout = params.rebalance_timeout;
        member.touch_session(Instant::now());
        member.join_waiter = Some(join_waiter);
        if group.leader_id.as_deref() == Some(old_member_id) {
            group.leader_id = Some(new_member_id.clone());
        }
        if group.pending_sync.remove(old_member_id) {
            group.pending_sync.insert(new_member_id.clone());
        }
        self.spawn_session_timer(&group.group_id, &new_member_id);
        match group.state {
            GroupState::Stable if group.select_protocol() == group.protocol_name => {
                // Return the old leader id so the new member does not assign (a Stable group would not
                // broadcast a new assignment anyway). Answered once the new member id is durable.
                let mut outcome = current_generation(group, &new_member_id, Vec::new());
                outcome.leader_id = current_leader;
                self.persist_static_takeover(group, &new_member_id, outcome);
                Reply::Later(handle)
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(group);
                Reply::Later(handle)
            }
            _ => {
                self.prepare_rebalance(group, "static member rejoined with changed protocols");
                Reply::Later(handle)
            }
        }
    }

    pub(crate) fn sync(
        self: &Rc<Self>,
        req: &SyncGroupRequest,
        version: i16,
    ) -> Reply<SyncOutcome> {
        let member_id = req.member_id.to_string();
        let instance_id = if version >= SYNC_STATIC_MEMBERSHIP_VERSION {
            text(&req.group_instance_id)
        } else {
            None
        };
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(req.group_id.0.as_str()) else {
            return Reply::Now(SyncOutcome::error(UNKNOWN_MEMBER_ID));
        };
        if group.state == GroupState::Dead {
            return Reply::Now(SyncOutcome::error(COORDINATOR_NOT_AVAILABLE));
        }
        if group.is_static_member_fenced(&member_id, instance_id.as_deref()) {
            return Reply::Now(SyncOutcome::error(FENCED_INSTANCE_ID));
        }
        if !group.has_member(&member_id) {
            return Reply::Now(SyncOutcome::error(UNKNOWN_MEMBER_ID));
        }
        if req.generation_id != group.generation_id {
            return Reply::Now(SyncOutcome::error(ILLEGAL_GENERATION));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_deref() != Some(n.as_str()));
        if type_mismatch || name_mismatch {
            return Reply::Now(SyncOutcome::error(INCONSISTENT_GROUP_PROTOCOL));
        }
        let now = Instant::now();
        group.pending_sync.remove(&member_id);
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncOutcome::error(UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => Reply::Now(SyncOutcome::error(REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                let Some(member) = group.member_mut(&member_id) else {
                    return Reply::Now(SyncOutcome::error(UNKNOWN_MEMBER_ID));
                };
                member.touch_session(now);
                let assignment = member.assignment.clone();
                Reply::Now(synced(group, assignment))
            }
            GroupState::CompletingRebalance => {
                let (sync_waiter, handle) = waiter();
                if let Some(member) = group.member_mut(&member_id) {
                    member.touch_session(now);
                    member.complete_sync(SyncOutcome::error(REBALANCE_IN_PROGRESS));
                    member.sync_waiter = Some(sync_waiter);
                }
                if group.is_leader(&member_id) {
                    let assignments = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    self.persist_generation_then_install(group, assignments);
                }
                Reply::Later(handle)
            }
        }
    }

    pub(crate) fn heartbeat(self: &Rc<Self>, req: &HeartbeatRequest, version: i16) -> i16 {
        let member_id = req.member_id.as_str();
        let instance_id = if version >= HEARTBEAT_STATIC_MEMBERSHIP_VERSION {
            text(&req.group_instance_id)
        } else {
            None
        };
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(req.group_id.0.as_str()) else {
            return UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_static_member_fenced(member_id, instance_id.as_deref()) {
            return FENCED_INSTANCE_ID;
        }
        let (state, generation_id) = (group.state, group.generation_id);
        let Some(member) = group.member_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation_id {
            return ILLEGAL_GENERATION;
        }
        member.touch_session(Instant::now());
        match state {
            // Members may heartbeat between their JoinGroup and SyncGroup.
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup: the top-level error and one result per leaving member.
    pub(crate) fn leave(
        self: &Rc<Self>,
        req: &LeaveGroupRequest,
        version: i16,
    ) -> (i16, Vec<LeaveResult>) {
        let identities: Vec<(String, Option<String>)> = if version >= LEAVE_BATCH_VERSION {
            req.members
                .iter()
                .map(|m| (m.member_id.to_string(), text(&m.group_instance_id)))
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(req.group_id.0.as_str()) else {
            let results = identities
                .into_iter()
                .map(|(m, i)| (m, i, UNKNOWN_MEMBER_ID))
                .collect();
            return (NONE, results);
        };
        if group.state == GroupState::Dead {
            return (COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        let results = identities
            .into_iter()
            .map(|(member_id, instance_id)| {
                let code = self.leave_one(group, &member_id, instance_id.as_deref());
                (member_id, instance_id, code)
            })
            .collect();
        (NONE, results)
    }

    fn leave_one(
        self: &Rc<Self>,
        group: &mut Group,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if member_id.is_empty() {
            // Removal by instance id (admin RemoveMembersFromConsumerGroup).
            let Some(registered) = instance_id
                .and_then(|id| group.static_member_id(id))
                .map(str::to_string)
            else {
                return UNKNOWN_MEMBER_ID;
            };
            self.remove_member_and_update(group, &registered, "static member removed");
            return NONE;
        }
        if group.is_static_member_fenced(member_id, instance_id) {
            return FENCED_INSTANCE_ID;
        }
        if group.pending_members.remove(member_id).is_some() {
            self.try_complete_join(group);
            return NONE;
        }
        if !group.has_member(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        self.remove_member_and_update(group, member_id, "member left");
        NONE
    }
}

/// The current generation as a JoinGroup answer for `member_id`.
fn current_generation(
    group: &Group,
    member_id: &str,
    members: Vec<super::member::JoinedMember>,
) -> JoinOutcome {
    JoinOutcome {
        error_code: NONE,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader_id.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members,
    }
}

fn synced(group: &Group, assignment: Bytes) -> SyncOutcome {
    SyncOutcome {
        error_code: NONE,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    }
}
