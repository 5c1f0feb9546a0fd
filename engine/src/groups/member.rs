//! One member of a classic group: its identity, session, supported protocols with their metadata, the
//! assignment the leader gave it, and its parked JoinGroup/SyncGroup request if any.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::waiter::Waiter;

/// Result of a completed join, shaped into a JoinGroupResponse for the request's version later.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Filled for the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error_code: i16, member_id: &str) -> Self {
        Self {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Result of a completed sync, shaped into a SyncGroupResponse later.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error_code: i16) -> Self {
        Self {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One (protocol name, metadata) the member supports, in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProtocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<MemberProtocol>,
    /// What the leader assigned in the current generation (empty until SyncGroup).
    pub assignment: Bytes,
    /// When the member is considered dead without a heartbeat.
    pub session_deadline: Instant,
    pub join_waiter: Option<Waiter<JoinOutcome>>,
    pub sync_waiter: Option<Waiter<SyncOutcome>>,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    pub fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }

    /// A member parked in JoinGroup or SyncGroup cannot heartbeat (the Java client stops heartbeating while
    /// a join is outstanding), so its session is held open until the request completes.
    pub fn keeps_session_alive(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn touch_session(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }

    /// Answers a parked join, if any. The member's session restarts (as Kafka reschedules its heartbeat):
    /// it could not heartbeat while parked, and the deadline that passed meanwhile must not expire it
    /// before its next request can arrive.
    pub fn complete_join(&mut self, outcome: JoinOutcome) {
        if let Some(waiter) = self.join_waiter.take() {
            waiter.complete(outcome);
            self.touch_session(Instant::now());
        }
    }

    /// Answers a parked sync, if any; the session restarts as for [`Member::complete_join`].
    pub fn complete_sync(&mut self, outcome: SyncOutcome) {
        if let Some(waiter) = self.sync_waiter.take() {
            waiter.complete(outcome);
            self.touch_session(Instant::now());
        }
    }
}
