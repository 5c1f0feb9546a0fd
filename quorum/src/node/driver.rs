//! The one task that drives raft-rs's `RawNode`: it ticks it from a timer, steps the messages
//! peers send, proposes what callers queue, and handles each Ready in raft-rs's order — send the
//! leader's messages, install a snapshot, apply committed entries, persist entries and hard state
//! (fdatasync), only then send the messages that must follow persistence, advance. It takes a
//! snapshot every `snapshot_interval_entries` applied entries and compacts the log below it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{pin_mut, select_biased, FutureExt};
use glommio::channels::local_channel::LocalReceiver;
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{RawNode, SnapshotStatus, StateRole};

use super::proposals::{InFlightProposals, Proposal};
use super::shared::Shared;
use crate::error::{ProposeError, QuorumError};
use crate::limits::{MAX_EVENTS_PER_READY, MAX_SNAPSHOT_BYTES};
use crate::rpc::peer_link::{LinkFeedback, PeerLinks};
use crate::state_machine::StateMachine;
use crate::storage::{RaftStorage, StorageView};

/// The driver's timing and snapshot settings (from `QuorumConfig`).
pub(crate) struct DriverSettings {
    pub tick_interval: Duration,
    pub snapshot_interval_entries: u64,
    pub compaction_retained_entries: u64,
}

pub(crate) struct Driver {
    pub node: RawNode<StorageView>,
    pub storage: RaftStorage,
    pub state_machine: Rc<dyn StateMachine>,
    pub shared: Rc<Shared>,
    pub links: Option<Rc<PeerLinks>>,
    /// Raft messages from the listener's connections; `None` for a lone voter without one.
    pub messages: Option<LocalReceiver<Message>>,
    pub proposals: LocalReceiver<Proposal>,
    pub settings: DriverSettings,
    /// The last index applied to the state machine.
    pub applied: u64,
    pub in_flight: InFlightProposals,
    /// No snapshot is attempted before this applied index (after one came out too big).
    pub next_snapshot_attempt: u64,
}

enum Event {
    Tick,
    Message(Message),
    Proposal(Proposal),
    Stop,
}

impl Driver {
    /// Runs until a stop is asked or storage fails; then fails what is in flight and closes the
    /// storage with the latest hard state written.
    pub async fn run(mut self) -> Result<(), QuorumError> {
        let result = self.run_until_stopped().await;
        if let Err(error) = &result {
            tracing::error!(node = self.shared.node_id, %error, "quorum driver stopped on an error");
        }
        self.shared.stopping.set(1);
        self.in_flight.fail_all(ProposeError::Stopped);
        self.shared.role.set(StateRole::Follower);
        self.shared.leader.set(0);
        self.shared.leader_changes.bump();
        let closed = self.storage.close().await;
        result.and(closed.map_err(QuorumError::from))
    }

    async fn run_until_stopped(&mut self) -> Result<(), QuorumError> {
        let mut next_tick = Instant::now() + self.settings.tick_interval;
        // The start state (a single voter's campaign) may already have work.
        self.handle_ready().await?;
        self.publish();
        loop {
            let mut event = self.next_event(next_tick).await;
            let mut taken = 0;
            loop {
                match event {
                    Event::Stop => return Ok(()),
                    Event::Tick => {
                        self.node.tick();
                        let now = Instant::now();
                        next_tick += self.settings.tick_interval;
                        if next_tick < now {
                            // Behind (a long fsync): skip the missed ticks rather than fire a
                            // burst that would time out elections at once.
                            next_tick = now + self.settings.tick_interval;
                        }
                    }
                    Event::Message(message) => self.step(message),
                    Event::Proposal(proposal) => self.propose(proposal),
                }
                taken += 1;
                if taken == MAX_EVENTS_PER_READY {
                    break;
                }
                // Taken only when it will be handled: a proposal dropped here would lose its reply.
                match self.ready_event() {
                    Some(more) => event = more,
                    None => break,
                }
            }
            self.take_link_feedback();
            self.handle_ready().await?;
            self.publish();
        }
    }

    /// Waits for the next tick, message, proposal or stop (a stop first, ticks last).
    async fn next_event(&self, next_tick: Instant) -> Event {
        let wait = next_tick.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Event::Tick;
        }
        let stop = self.shared.stopping.wait_until(|value| value != 0).fuse();
        let message = async {
            match &self.messages {
                Some(messages) => messages.recv().await,
                None => futures::future::pending().await,
            }
        }
        .fuse();
        let proposal = self.proposals.recv().fuse();
        let tick = glommio::timer::sleep(wait).fuse();
        pin_mut!(stop, message, proposal, tick);
        select_biased! {
            _ = stop => Event::Stop,
            message = message => message.map_or(Event::Stop, Event::Message),
            proposal = proposal => proposal.map_or(Event::Stop, Event::Proposal),
            () = tick => Event::Tick,
        }
    }

    /// A message or proposal that is already queued, without waiting.
    fn ready_event(&self) -> Option<Event> {
        if let Some(messages) = &self.messages {
            if let Some(Some(message)) = messages.recv().now_or_never() {
                return Some(Event::Message(message));
            }
        }
        if let Some(Some(proposal)) = self.proposals.recv().now_or_never() {
            return Some(Event::Proposal(proposal));
        }
        None
    }

    fn step(&mut self, message: Message) {
        let from = message.from;
        self.shared
            .last_contact
            .borrow_mut()
            .insert(from, Instant::now());
        if let Err(error) = self.node.step(message) {
            tracing::debug!(node = self.shared.node_id, from, %error, "raft refused a message");
        }
    }

    fn propose(&mut self, proposal: Proposal) {
        if self.node.raft.state != StateRole::Leader {
            let leader = Some(self.node.raft.leader_id).filter(|id| *id != 0);
            let _ = proposal.reply.send(Err(ProposeError::NotLeader { leader }));
            return;
        }
        let term = self.node.raft.term;
        let expected_index = self.node.raft.raft_log.last_index() + 1;
        // raft-rs takes the data by value; the proposal's buffer moves, no copy.
        let Proposal { data, reply, slot } = proposal;
        match self.node.propose(Vec::new(), data) {
            Ok(()) => {
                let index = self.node.raft.raft_log.last_index();
                debug_assert_eq!(index, expected_index);
                self.in_flight.insert(index, term, reply, slot);
            }
            Err(error) => {
                // ProposalDropped: a leadership transfer is under way.
                tracing::debug!(node = self.shared.node_id, %error, "raft dropped a proposal");
                let _ = reply.send(Err(ProposeError::NotLeader { leader: None }));
            }
        }
    }

    /// Tells raft-rs what the peer links could not deliver.
    fn take_link_feedback(&mut self) {
        let Some(links) = &self.links else {
            return;
        };
        for feedback in links.take_feedback() {
            match feedback {
                LinkFeedback::Unreachable(peer) => self.node.report_unreachable(peer),
                LinkFeedback::SnapshotFailed(peer) => {
                    self.node.report_snapshot(peer, SnapshotStatus::Failure)
                }
                LinkFeedback::SnapshotSent(peer) => {
                    self.node.report_snapshot(peer, SnapshotStatus::Finish)
                }
            }
        }
    }

    fn send(&self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let Some(links) = &self.links else {
            debug_assert!(false, "a quorum without peers has messages to send");
            return;
        };
        if self.shared.isolated.get() {
            return;
        }
        for message in messages {
            links.send(message);
        }
    }

    async fn handle_ready(&mut self) -> Result<(), QuorumError> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        // A leader's messages may go before its own write (raft thesis 10.2.1).
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.storage.install_snapshot(&snapshot).await?;
            let index = snapshot.get_metadata().index;
            self.state_machine.restore(index, &snapshot.data);
            tracing::info!(
                node = self.shared.node_id,
                index,
                bytes = snapshot.data.len(),
                "installed the leader's snapshot"
            );
            self.applied = index;
            self.shared.applied.set(index);
        }
        self.apply(ready.take_committed_entries());
        self.storage
            .persist(ready.entries(), ready.hs(), ready.must_sync())
            .await?;
        // Votes and append acknowledgements: only now that what they promise is durable.
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit);
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
        self.maybe_snapshot().await
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let leader = Some(self.node.raft.leader_id).filter(|id| *id != 0);
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            debug_assert_eq!(
                entry.index,
                self.applied + 1,
                "entries applied out of order"
            );
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if !entry.data.is_empty() {
                        self.state_machine.apply(entry.index, &entry.data);
                    }
                }
                other => {
                    // Membership is static (controller.quorum.voters); no node proposes these.
                    tracing::warn!(node = self.shared.node_id, index = entry.index, kind = ?other,
                        "ignoring a configuration-change entry: the voter set is static");
                }
            }
            self.applied = entry.index;
            self.in_flight.applied(entry.index, entry.term, leader);
        }
        // Published here too, not only after the Ready: the snapshot that may follow yields.
        self.shared
            .commit_index
            .set(self.node.raft.raft_log.committed);
        self.shared.applied.set(self.applied);
    }

    /// Takes a snapshot once `snapshot_interval_entries` entries were applied since the last
    /// one, then compacts the log to `compaction_retained_entries` below it.
    async fn maybe_snapshot(&mut self) -> Result<(), QuorumError> {
        let last = self.storage.snapshot_index();
        if self.applied < last + self.settings.snapshot_interval_entries
            || self.applied < self.next_snapshot_attempt
        {
            return Ok(());
        }
        let data = self.state_machine.snapshot();
        if data.len() > MAX_SNAPSHOT_BYTES {
            tracing::error!(node = self.shared.node_id, bytes = data.len(), max = MAX_SNAPSHOT_BYTES,
                "the state machine's snapshot is above the limit; not stored, the log keeps growing");
            self.next_snapshot_attempt = self.applied + self.settings.snapshot_interval_entries;
            return Ok(());
        }
        let index = self.applied;
        self.storage.save_snapshot(index, Bytes::from(data)).await?;
        let new_base = index.saturating_sub(self.settings.compaction_retained_entries);
        self.storage.compact(new_base).await?;
        tracing::debug!(
            node = self.shared.node_id,
            index,
            new_base,
            "snapshot taken, log compacted"
        );
        Ok(())
    }

    /// Publishes role, leader, term, indexes and progress for the `Quorum` handle.
    pub fn publish(&mut self) {
        let raft = &self.node.raft;
        let shared = &self.shared;
        let was_leader = shared.role.get() == StateRole::Leader;
        let leader_changed = shared.leader.get() != raft.leader_id
            || (raft.leader_id != 0 && shared.term.get() != raft.term);
        shared.role.set(raft.state);
        shared.leader.set(raft.leader_id);
        shared.term.set(raft.term);
        shared.commit_index.set(raft.raft_log.committed);
        let mut match_index = shared.match_index.borrow_mut();
        match_index.clear();
        if raft.state == StateRole::Leader {
            for (id, progress) in raft.prs().iter() {
                match_index.insert(*id, progress.matched);
            }
        }
        drop(match_index);
        if was_leader && raft.state != StateRole::Leader {
            let leader = shared.leader_id();
            self.in_flight.fail_all(ProposeError::NotLeader { leader });
        }
        if leader_changed {
            tracing::info!(
                node = shared.node_id,
                leader = raft.leader_id,
                term = raft.term,
                "quorum leadership changed"
            );
            shared.leader_changes.bump();
        }
        debug_assert!(raft.state == StateRole::Leader || self.in_flight.is_empty());
    }
}
