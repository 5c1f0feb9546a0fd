//! Members leaving a consumer group: a leave heartbeat (epoch -1; -2 for a static member that keeps its
//! assignment until its session ends), a session that runs out (no heartbeat for the broker's
//! consumer session timeout), or a revocation not done within the member's rebalance timeout. A removed
//! member's records are tombstoned and the group epoch bumps, so the others get its partitions at their
//! next heartbeat. Timers re-check the state when they fire, so stale ones simply end.

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::heartbeat::{Decision, Failure};
use super::model::{ConsumerGroup, STATIC_LEAVE_EPOCH};
use super::records;
use super::values::MemberState;
use crate::groups::coordinator::Inner;
use crate::groups::group::Group;
use crate::groups::rebalance::spawn_deferred;
use crate::groups::responses::*;
use crate::groups::store::CoordinatorRecord;

/// Removes a member: tombstones for it and a bumped group epoch.
pub(crate) fn fence_member(
    group_id: &str,
    consumer: &mut ConsumerGroup,
    member_id: &str,
) -> Vec<CoordinatorRecord> {
    if consumer.remove_member(member_id).is_none() {
        return Vec::new();
    }
    let mut out = records::member_tombstones(group_id, member_id);
    consumer.group_epoch += 1;
    out.push(records::group_epoch(group_id, consumer));
    out
}

impl Inner {
    /// A leave heartbeat (epoch -1, or -2 for a static member coming back later).
    pub(crate) fn consumer_leave(
        self: &Rc<Self>,
        group: Option<&mut Group>,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<Decision, Failure> {
        let group_id = req.group_id.0.as_str();
        let member_id = req.member_id.as_str();
        let Some(consumer) = group.and_then(|g| g.consumer.as_deref_mut()) else {
            return Err(Failure::new(
                GROUP_ID_NOT_FOUND,
                format!("Consumer group {group_id} not found."),
            ));
        };
        let unknown = || {
            Failure::new(
                UNKNOWN_MEMBER_ID,
                format!("Member {member_id} is not a member of group {group_id}."),
            )
        };
        if let Some(instance_id) = req.instance_id.as_deref() {
            let holder = consumer.static_member_id(instance_id).ok_or_else(unknown)?;
            if holder != member_id {
                return Err(Failure::new(
                    FENCED_INSTANCE_ID,
                    format!("Static member {member_id} with instance id {instance_id} was fenced by member {holder}."),
                ));
            }
        } else if !consumer.members.contains_key(member_id) {
            return Err(unknown());
        }
        let records = if req.member_epoch == STATIC_LEAVE_EPOCH {
            // Keeps its partitions (nobody else gets them) until it comes back or its session ends.
            let mut current = consumer.members[member_id].current.clone();
            current.previous_member_epoch = current.member_epoch;
            current.member_epoch = STATIC_LEAVE_EPOCH;
            consumer.set_current(member_id, current);
            vec![records::current_assignment(
                group_id,
                &consumer.members[member_id],
            )]
        } else {
            tracing::info!(group = group_id, member = member_id, "member left");
            fence_member(group_id, consumer, member_id)
        };
        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.member_id = Some(str_bytes(member_id));
        response.member_epoch = req.member_epoch;
        Ok(Decision { response, records })
    }

    /// Writes records of a change no request waits for (a timer's); a failure is logged.
    pub(crate) fn persist_detached(
        self: &Rc<Self>,
        records: Vec<CoordinatorRecord>,
        what: &'static str,
    ) {
        if records.is_empty() {
            return;
        }
        let inner = self.clone();
        spawn_deferred(async move {
            if let Err(error) = inner.persist_and_apply(records).await {
                tracing::warn!(%error, what, "consumer group change not persisted");
            }
        });
    }

    /// Watches a member's session until it ends: no heartbeat by the deadline removes the member.
    pub(crate) fn spawn_consumer_session_timer(self: &Rc<Self>, group_id: &str, member_id: &str) {
        let weak = Rc::downgrade(self);
        let (group_id, member_id) = (group_id.to_string(), member_id.to_string());
        spawn_deferred(async move {
            while let Some(wait) = session_check(&weak, &group_id, &member_id) {
                sleep(wait).await;
            }
        });
    }

    /// Removes a member still revoking at `epoch` when its rebalance timeout ends.
    pub(crate) fn spawn_consumer_revocation_timer(
        self: &Rc<Self>,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        timeout: Duration,
    ) {
        let weak = Rc::downgrade(self);
        let (group_id, member_id) = (group_id.to_string(), member_id.to_string());
        spawn_deferred(async move {
            sleep(timeout).await;
            let Some(inner) = weak.upgrade() else { return };
            let records = {
                let mut groups = inner.groups.borrow_mut();
                let Some(consumer) = groups
                    .get_mut(&group_id)
                    .and_then(|g| g.consumer.as_deref_mut())
                else {
                    return;
                };
                let late = consumer.members.get(&member_id).is_some_and(|m| {
                    m.current.state == MemberState::UnrevokedPartitions
                        && m.current.member_epoch == epoch
                        && m.revocation_deadline.is_some_and(|d| Instant::now() >= d)
                });
                if !late {
                    return;
                }
                tracing::info!(group = %group_id, member = %member_id, "member did not revoke within its rebalance timeout; removing it");
                fence_member(&group_id, consumer, &member_id)
            };
            inner.persist_detached(records, "revocation timeout");
        });
    }

    /// After a load: every consumer-group member's session starts now, and members that were revoking get
    /// their rebalance timeout again, as Kafka does when it loads a group.
    pub(crate) fn restore_consumer_groups(
        self: &Rc<Self>,
        now: Instant,
        only: &dyn Fn(&str) -> bool,
    ) -> usize {
        let session = self.config.consumer_session_timeout();
        let mut watches: Vec<Watch> = Vec::new();
        for (group_id, group) in self
            .groups
            .borrow_mut()
            .iter_mut()
            .filter(|(id, _)| only(id))
        {
            let Some(consumer) = group.consumer.as_deref_mut() else {
                continue;
            };
            consumer.reindex();
            for member in consumer.members.values_mut() {
                member.session_deadline = now + session;
                let revoking =
                    (member.current.state == MemberState::UnrevokedPartitions).then(|| {
                        let timeout = Duration::from_millis(
                            u64::try_from(member.metadata.rebalance_timeout_ms).unwrap_or(0),
                        );
                        member.revocation_deadline = Some(now + timeout);
                        (member.current.member_epoch, timeout)
                    });
                watches.push((group_id.clone(), member.member_id.clone(), revoking));
            }
        }
        for (group_id, member_id, revoking) in &watches {
            self.spawn_consumer_session_timer(group_id, member_id);
            if let Some((epoch, timeout)) = revoking {
                self.spawn_consumer_revocation_timer(group_id, member_id, *epoch, *timeout);
            }
        }
        watches.len()
    }
}

/// A loaded member to watch: group, member, and (epoch, rebalance timeout) when it was revoking.
type Watch = (String, String, Option<(i32, Duration)>);

/// One step of a session watch: `Some(wait)` to sleep again, `None` when the watch is over.
fn session_check(weak: &Weak<Inner>, group_id: &str, member_id: &str) -> Option<Duration> {
    let inner = weak.upgrade()?;
    let records = {
        let mut groups = inner.groups.borrow_mut();
        let consumer = groups.get_mut(group_id)?.consumer.as_deref_mut()?;
        let member = consumer.members.get(member_id)?;
        let now = Instant::now();
        if now < member.session_deadline {
            return Some(member.session_deadline - now);
        }
        tracing::info!(
            group = group_id,
            member = member_id,
            "session timed out; removing member"
        );
        fence_member(group_id, consumer, member_id)
    };
    inner.persist_detached(records, "session timeout");
    None
}
