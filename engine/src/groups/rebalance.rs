//! The rebalance engine: starting a rebalance, completing the join phase (new generation, protocol vote,
//! leader), removing members, and the timers that drive it — session expiry per member, the join deadline
//! (rebalance timeout, initial delay) and the sync deadline per generation. Timers re-check the state when
//! they fire (by epoch or generation), so stale ones simply end.

use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::timer::sleep;

use super::coordinator::{now_ms, Inner};
use super::group::{Group, GroupState};
use super::member::{JoinOutcome, SyncOutcome};
use super::responses::{REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID};

impl Inner {
    /// Kafka's `prepareRebalance`: move to PreparingRebalance, cancel an unfinished assignment, arm the
    /// join deadline.
    pub(crate) fn prepare_rebalance(self: &Rc<Self>, group: &mut Group, reason: &str) {
        debug_assert!(group.state != GroupState::Dead);
        if group.state == GroupState::CompletingRebalance {
            for member in &mut group.members {
                member.assignment = Bytes::new();
                member.complete_sync(SyncOutcome::error(REBALANCE_IN_PROGRESS));
            }
        }
        group.pending_sync.clear();
        let from_empty = group.state == GroupState::Empty;
        let rebalance_timeout = group
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        let now = Instant::now();
        group.join_deadline = now + rebalance_timeout;
        group.join_not_before = if from_empty {
            (now + self.config.initial_rebalance_delay()).min(group.join_deadline)
        } else {
            now
        };
        group.state = GroupState::PreparingRebalance;
        group.rebalance_epoch += 1;
        tracing::debug!(group = %group.group_id, generation = group.generation_id, reason, "preparing rebalance");
        self.spawn_join_timer(&group.group_id, group.rebalance_epoch);
        self.try_complete_join(group);
    }

    /// Completes the join phase if it may: the initial delay has passed and every member has rejoined.
    pub(crate) fn try_complete_join(self: &Rc<Self>, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && Instant::now() >= group.join_not_before
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next generation and
    /// answer every parked JoinGroup (the leader gets the member list).
    pub(crate) fn complete_join(self: &Rc<Self>, group: &mut Group) {
        debug_assert_eq!(group.state, GroupState::PreparingRebalance);
        let absent: Vec<String> = group
            .members
            .iter()
            .filter(|m| !m.is_awaiting_join() && !m.is_static())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in absent {
            if let Some(mut member) = group.remove_member(&member_id) {
                member.complete_sync(SyncOutcome::error(UNKNOWN_MEMBER_ID));
            }
        }
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader_id = None;
            group.state = GroupState::Empty;
            group.empty_since_ms = now_ms();
            self.persist_group_state(group, "group emptied");
            return;
        }
        group.protocol_name = group.select_protocol();
        group.state = GroupState::CompletingRebalance;
        group.elect_joined_leader();
        let leader_id = group.leader_id.clone().unwrap_or_default();
        let all_members = group.joined_members();
        let now = Instant::now();
        let (generation_id, protocol_type, protocol_name) = (
            group.generation_id,
            group.protocol_type.clone(),
            group.protocol_name.clone(),
        );
        group.pending_sync.clear();
        for member in &mut group.members {
            let members = if member.member_id == leader_id {
                all_members.clone()
            } else {
                Vec::new()
            };
            member.complete_join(JoinOutcome {
                error_code: 0,
                generation_id,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader_id: leader_id.clone(),
                member_id: member.member_id.clone(),
                members,
            });
            member.touch_session(now);
            group.pending_sync.insert(member.member_id.clone());
        }
        let sync_timeout = group
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        tracing::debug!(group = %group.group_id, generation_id, leader = %leader_id, "generation formed");
        self.spawn_sync_timer(&group.group_id, generation_id, sync_timeout);
    }

    /// Kafka's `removeMemberAndUpdateGroup`: the member is gone (left, expired, late); answer its parked
    /// requests and rebalance the rest.
    pub(crate) fn remove_member_and_update(
        self: &Rc<Self>,
        group: &mut Group,
        member_id: &str,
        reason: &str,
    ) {
        if let Some(mut member) = group.remove_member(member_id) {
            member.complete_join(JoinOutcome::error(UNKNOWN_MEMBER_ID, member_id));
            member.complete_sync(SyncOutcome::error(UNKNOWN_MEMBER_ID));
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group, reason)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Watches one member's (or pending member's) session until it ends. Heartbeats only move the deadline;
    /// the task wakes at the old one, sees the new one and sleeps again.
    pub(crate) fn spawn_session_timer(self: &Rc<Self>, group_id: &str, member_id: &str) {
        let weak = Rc::downgrade(self);
        let (group_id, member_id) = (group_id.to_string(), member_id.to_string());
        spawn_deferred(async move {
            while let Some(wait) = session_check(&weak, &group_id, &member_id) {
                sleep(wait).await;
            }
        });
    }

    fn spawn_join_timer(self: &Rc<Self>, group_id: &str, epoch: u64) {
        let weak = Rc::downgrade(self);
        let group_id = group_id.to_string();
        spawn_deferred(async move {
            while let Some(wait) = join_check(&weak, &group_id, epoch) {
                sleep(wait).await;
            }
        });
    }

    /// Members that have not sent SyncGroup one rebalance timeout after the generation formed are removed
    /// (Kafka 2.8+), so a leader that never assigns cannot stall the group forever.
    fn spawn_sync_timer(self: &Rc<Self>, group_id: &str, generation_id: i32, timeout: Duration) {
        let weak = Rc::downgrade(self);
        let group_id = group_id.to_string();
        spawn_deferred(async move {
            sleep(timeout).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return;
            };
            let current = matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
            if !current || group.generation_id != generation_id || group.pending_sync.is_empty() {
                return;
            }
            let late: Vec<String> = group.pending_sync.iter().cloned().collect();
            for member_id in &late {
                if let Some(mut member) = group.remove_member(member_id) {
                    member.complete_sync(SyncOutcome::error(UNKNOWN_MEMBER_ID));
                }
            }
            inner.prepare_rebalance(group, "members did not sync in time");
        });
    }
}

/// Spawns a detached timer task that first yields: glommio may run a new task right away, and the
/// spawner still holds the groups borrow the task is about to take.
pub(crate) fn spawn_deferred(task: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(async move {
        YieldOnce(false).await;
        task.await;
    })
    .detach();
}

/// Returns `Pending` once (after waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// One step of a session watch: `Some(wait)` to sleep again, `None` when the watch is over.
fn session_check(weak: &Weak<Inner>, group_id: &str, member_id: &str) -> Option<Duration> {
    let inner = weak.upgrade()?;
    let mut groups = inner.groups.borrow_mut();
    let group = groups.get_mut(group_id)?;
    let now = Instant::now();
    if let Some(deadline) = group.pending_members.get(member_id).copied() {
        if now < deadline {
            return Some(deadline - now);
        }
        group.pending_members.remove(member_id);
        inner.try_complete_join(group);
        return None;
    }
    let member = group.member_mut(member_id)?;
    if now < member.session_deadline {
        return Some(member.session_deadline - now);
    }
    if member.keeps_session_alive() {
        member.touch_session(now);
        return Some(member.session_timeout);
    }
    tracing::info!(
        group = group_id,
        member = member_id,
        "session timed out; removing member"
    );
    inner.remove_member_and_update(group, member_id, "session timeout");
    None
}

/// One step of a join watch: completes the join at the initial delay (if everyone joined) or forcibly at
/// the rebalance deadline.
fn join_check(weak: &Weak<Inner>, group_id: &str, epoch: u64) -> Option<Duration> {
    let inner = weak.upgrade()?;
    let mut groups = inner.groups.borrow_mut();
    let group = groups.get_mut(group_id)?;
    if group.state != GroupState::PreparingRebalance || group.rebalance_epoch != epoch {
        return None;
    }
    let now = Instant::now();
    if now >= group.join_deadline {
        inner.complete_join(group);
        return None;
    }
    if now < group.join_not_before {
        return Some(group.join_not_before - now);
    }
    inner.try_complete_join(group);
    if group.state != GroupState::PreparingRebalance {
        return None;
    }
    Some(group.join_deadline - now)
}
