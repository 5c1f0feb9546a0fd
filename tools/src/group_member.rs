//! Membership of `ringbroker consume --group`: the classic consumer-group protocol as the Java consumer
//! runs it (JoinGroup, the leader computes a range assignment, SyncGroup), then heartbeats, periodic
//! offset commits, rejoining on a rebalance, and LeaveGroup with a final commit on exit.

use ringbroker_protocol::client::admin::OffsetSpec;
use ringbroker_protocol::client::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, range_assign,
    CONSUMER_PROTOCOL_TYPE, RANGE_ASSIGNOR,
};
use ringbroker_protocol::client::error::{
    ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use ringbroker_protocol::client::groups::JoinParams;
use ringbroker_protocol::client::{Client, ClientError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Session timeout: how long the coordinator keeps a silent member. Shorter than the Java default
/// (45 s) so a killed console consumer frees its partitions sooner.
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// How long the coordinator waits for members to rejoin during a rebalance.
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// Heartbeat period: a third of the session timeout, as the Java consumer does.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(SESSION_TIMEOUT_MS as u64 / 3);
/// Auto-commit period (the Java consumer's `auto.commit.interval.ms` default).
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Join attempts in a row that may end in a rebalance error before giving up.
const MAX_JOIN_ATTEMPTS: usize = 10;

/// Whether a tick changed the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundOutcome {
    Unchanged,
    /// The group rebalanced; positions must be re-read for the new assignment.
    Rejoined,
}

/// This process's membership in one group, reading one topic.
pub struct GroupMember {
    group: String,
    topic: String,
    member_id: String,
    generation_id: i32,
    assigned: Vec<i32>,
    last_heartbeat: Instant,
    last_commit: Instant,
    committed: BTreeMap<i32, i64>,
}

impl GroupMember {
    /// Joins `group` subscribed to `topic` and waits for an assignment.
    pub fn join(client: &mut Client, group: &str, topic: &str) -> Result<GroupMember, ClientError> {
        let mut member = GroupMember {
            group: group.to_owned(),
            topic: topic.to_owned(),
            member_id: String::new(),
            generation_id: -1,
            assigned: Vec::new(),
            last_heartbeat: Instant::now(),
            last_commit: Instant::now(),
            committed: BTreeMap::new(),
        };
        member.rejoin(client)?;
        Ok(member)
    }

    fn rejoin(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.join_and_sync(client) {
                Ok(()) => return Ok(()),
                Err(error) if attempt < MAX_JOIN_ATTEMPTS && self.recoverable(&error) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Rebalance errors are answered by joining again (with a fresh member id if ours is unknown).
    fn recoverable(&mut self, error: &ClientError) -> bool {
        match error.kafka_code() {
            Some(UNKNOWN_MEMBER_ID) => {
                self.member_id.clear();
                true
            }
            Some(REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION) => true,
            _ => error.is_retriable(),
        }
    }

    fn join_and_sync(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let params = JoinParams {
            group_id: self.group.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: None,
            session_timeout_ms: SESSION_TIMEOUT_MS,
            rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
            protocols: vec![(
                RANGE_ASSIGNOR.to_owned(),
                encode_subscription(std::slice::from_ref(&self.topic))?,
            )],
        };
        let joined = client.join_group(&params)?;
        self.member_id = joined.member_id.clone();
        self.generation_id = joined.generation_id;
        let assignments = if joined.is_leader() {
            self.assign(client, &joined.members)?
        } else {
            Vec::new()
        };
        let protocol_name = joined
            .protocol_name
            .clone()
            .unwrap_or_else(|| RANGE_ASSIGNOR.to_owned());
        let mine = client.sync_group(
            &self.group,
            self.generation_id,
            &self.member_id,
            Some((CONSUMER_PROTOCOL_TYPE, protocol_name.as_str())),
            &assignments,
        )?;
        let assignment = decode_assignment(&mine)?;
        self.assigned = assignment.get(&self.topic).cloned().unwrap_or_default();
        self.assigned.sort_unstable();
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// The leader's job: a range assignment over every member's subscription.
    fn assign(
        &self,
        client: &mut Client,
        members: &[(String, bytes::Bytes)],
    ) -> Result<Vec<(String, bytes::Bytes)>, ClientError> {
        let mut subscriptions = Vec::with_capacity(members.len());
        let mut counts = BTreeMap::new();
        for (member_id, metadata) in members {
            let topics = decode_subscription(metadata)?;
            for topic in &topics {
                if !counts.contains_key(topic) {
                    // A topic that vanished gets no partitions rather than failing the whole group.
                    if let Ok(info) = client.topic(topic, false) {
                        counts.insert(topic.clone(), info.partitions.len() as i32);
                    }
                }
            }
            subscriptions.push((member_id.clone(), topics));
        }
        range_assign(&subscriptions, &counts)
            .into_iter()
            .map(|(member_id, assignment)| Ok((member_id, encode_assignment(&assignment)?)))
            .collect()
    }

    /// Where to read each assigned partition: the committed offset, else `reset`.
    pub fn start_positions(
        &mut self,
        client: &mut Client,
        reset: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        if self.assigned.is_empty() {
            return Ok(BTreeMap::new());
        }
        let wanted = [(self.topic.clone(), self.assigned.clone())];
        let committed = client.fetch_committed_offsets(&self.group, Some(&wanted))?;
        let mut positions = BTreeMap::new();
        let mut missing = Vec::new();
        for partition in &self.assigned {
            let found = committed
                .iter()
                .find(|c| c.topic == self.topic && c.partition == *partition && c.offset >= 0);
            match found {
                Some(offset) => {
                    positions.insert(*partition, offset.offset);
                }
                None => missing.push(*partition),
            }
        }
        if !missing.is_empty() {
            for (partition, (offset, _)) in client.list_offsets(&self.topic, &missing, reset)? {
                positions.insert(partition, offset);
            }
        }
        self.committed = positions.clone();
        Ok(positions)
    }

    /// Heartbeats and commits when due; rejoins when the group rebalanced.
    pub fn tick(
        &mut self,
        client: &mut Client,
        positions: &BTreeMap<i32, i64>,
    ) -> Result<RoundOutcome, ClientError> {
        let mut result = Ok(());
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            result = self.commit(client, positions);
        }
        if result.is_ok() && self.last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            result = client.heartbeat(&self.group, self.generation_id, &self.member_id);
            self.last_heartbeat = Instant::now();
        }
        match result {
            Ok(()) => Ok(RoundOutcome::Unchanged),
            Err(error) if self.recoverable(&error) => {
                // Offsets read so far belong to this generation; a failed commit here is retried
                // by whoever gets the partitions, so it is not fatal.
                let _ = self.commit(client, positions);
                self.rejoin(client)?;
                Ok(RoundOutcome::Rejoined)
            }
            Err(error) => Err(error),
        }
    }

    /// Commits positions that moved since the last commit.
    pub fn commit(
        &mut self,
        client: &mut Client,
        positions: &BTreeMap<i32, i64>,
    ) -> Result<(), ClientError> {
        self.last_commit = Instant::now();
        let changed: Vec<(i32, i64)> = positions
            .iter()
            .filter(|(partition, offset)| self.committed.get(partition) != Some(offset))
            .map(|(partition, offset)| (*partition, *offset))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        client.commit_offsets(
            &self.group,
            self.generation_id,
            &self.member_id,
            &self.topic,
            &changed,
        )?;
        self.committed.extend(changed);
        Ok(())
    }

    /// Final commit, then LeaveGroup so the others rebalance at once. Losing the membership at this
    /// point (a rebalance started, the session expired) only means the next reader starts from the
    /// last successful commit: a warning, not a failure.
    pub fn close(
        mut self,
        client: &mut Client,
        positions: &BTreeMap<i32, i64>,
    ) -> Result<(), ClientError> {
        let committed = self.commit(client, positions);
        let left = client.leave_group(&self.group, &self.member_id);
        for (what, result) in [
            ("commit final offsets", committed),
            ("leave the group", left),
        ] {
            match result {
                Ok(()) => {}
                Err(error) if membership_lost(&error) => {
                    eprintln!(
                        "warning: could not {what} of group '{}': {error}",
                        self.group
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// Errors meaning this member's generation is over.
fn membership_lost(error: &ClientError) -> bool {
    matches!(
        error.kafka_code(),
        Some(REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID)
    )
}
