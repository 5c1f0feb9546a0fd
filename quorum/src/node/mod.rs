//! The quorum member: [`Quorum::start`] recovers the durable state into the state machine, binds
//! the controller listener, connects to the peers and spawns the driver task; the handle then
//! proposes, reports leadership and serves committed entries to brokers that are not voters.
//! Everything runs on the executor that called `start` (the broker's shard 0).

mod driver;
mod proposals;
pub(crate) mod shared;
mod status;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpListener;
use glommio::task::JoinHandle;
use raft::eraftpb::{EntryType, Message};
use raft::{RawNode, StateRole};

pub use status::{QuorumStatus, Role, VoterStatus};

use crate::config::QuorumConfig;
use crate::error::{Compacted, ProposeError, QuorumError, Stopped};
use crate::limits::MAX_QUEUED_INBOUND_RAFT_MESSAGES;
use crate::logger::raft_logger;
use crate::rpc::peer_link::PeerLinks;
use crate::rpc::server::{self, ServerContext};
use crate::rpc::RpcHandler;
use crate::state_machine::StateMachine;
use crate::storage::{RaftStorage, StorageError};
use crate::watch::within;
use driver::{Driver, DriverSettings};
use proposals::Proposal;
use shared::{PendingSlot, Shared};

/// A running member of the metadata quorum.
pub struct Quorum {
    shared: Rc<Shared>,
    proposals: LocalSender<Proposal>,
    config: QuorumConfig,
    tasks: RefCell<Option<Tasks>>,
}

struct Tasks {
    driver: JoinHandle<Result<(), QuorumError>>,
    server: Option<JoinHandle<()>>,
    links: Option<Rc<PeerLinks>>,
}

impl Quorum {
    /// Starts this node: binds the listener, recovers (restores the snapshot, re-applies the
    /// committed entries after it), connects to the peers and starts driving raft.
    pub async fn start(
        config: QuorumConfig,
        state_machine: Rc<dyn StateMachine>,
        rpc: Option<Rc<dyn RpcHandler>>,
    ) -> Result<Rc<Quorum>, QuorumError> {
        config.validate()?;
        // Bind first: a taken port fails before any disk work.
        let listener = match config.listen {
            Some(addr) => Some(TcpListener::bind(addr).map_err(|error| QuorumError::Bind {
                addr,
                source: error.into(),
            })?),
            None => None,
        };
        let voter_ids: Vec<u64> = config.voters.keys().copied().collect();
        let (storage, report) = RaftStorage::open(&config.data_dir, &voter_ids).await?;
        let applied = recover_state_machine(&storage, state_machine.as_ref())?;
        tracing::info!(node = config.node_id, applied, cut_bytes = report.cut_bytes,
            dropped_entries = report.dropped_entries, dir = %config.data_dir.display(), "quorum storage recovered");

        let mut node = RawNode::new(
            &config.raft_config(applied),
            storage.view(),
            &raft_logger(config.node_id),
        )?;
        if config.voters.len() == 1 {
            // Alone, nobody can be waited for: lead at once instead of after an election timeout.
            node.campaign()?;
        }
        let shared = Rc::new(Shared::new(
            config.node_id,
            storage.state().clone(),
            applied,
        ));
        let (proposal_sender, proposals) = local_channel::new_bounded(config.max_pending_proposals);
        let links = (config.voters.len() > 1).then(|| PeerLinks::start(&config, shared.clone()));
        let mut messages = None;
        let server = listener.map(|listener| {
            let (message_sender, receiver) =
                local_channel::new_bounded(MAX_QUEUED_INBOUND_RAFT_MESSAGES);
            messages = Some(receiver);
            let context = ServerContext::new(
                config.node_id,
                config.voters.keys().copied().collect(),
                Some(Rc::new(message_sender)),
                rpc,
                shared.clone(),
            );
            glommio::spawn_local(server::serve(listener, Rc::new(context))).detach()
        });
        let mut driver = Driver {
            node,
            storage,
            state_machine,
            shared: shared.clone(),
            links: links.clone(),
            messages,
            proposals,
            settings: DriverSettings {
                tick_interval: config.tick_interval,
                snapshot_interval_entries: config.snapshot_interval_entries,
                compaction_retained_entries: config.compaction_retained_entries,
            },
            applied,
            in_flight: Default::default(),
            next_snapshot_attempt: 0,
        };
        // A lone voter already leads (its campaign won at once): callers see it from the start.
        driver.publish();
        let driver = glommio::spawn_local(driver.run()).detach();
        Ok(Rc::new(Quorum {
            shared,
            proposals: proposal_sender,
            config,
            tasks: RefCell::new(Some(Tasks {
                driver,
                server,
                links,
            })),
        }))
    }

    /// Replicates `data` and resolves with its log index once it is committed and applied to
    /// the local state machine. Only the leader accepts proposals.
    pub async fn propose(&self, data: Vec<u8>) -> Result<u64, ProposeError> {
        if self.shared.is_stopping() {
            return Err(ProposeError::Stopped);
        }
        if data.len() > self.config.max_entry_bytes {
            return Err(ProposeError::TooLarge {
                bytes: data.len(),
                max: self.config.max_entry_bytes,
            });
        }
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        let limit = self.config.max_pending_proposals;
        let slot = PendingSlot::try_take(&self.shared, limit)
            .ok_or(ProposeError::TooManyPending { limit })?;
        let (reply, outcome) = oneshot::channel();
        self.proposals
            .try_send(Proposal { data, reply, slot })
            .map_err(|_| ProposeError::TooManyPending { limit })?;
        let timeout = self.config.propose_timeout;
        match within(timeout, outcome).await {
            Some(outcome) => outcome.unwrap_or(Err(ProposeError::Stopped)),
            None => Err(ProposeError::Timeout {
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.shared.leader_id()
    }

    pub fn is_leader(&self) -> bool {
        self.shared.role.get() == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.shared.term.get()
    }

    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// Waits until the leadership change counter differs from `seen` and returns it: pass the
    /// value returned last time (0 at first). It also moves when the quorum stops (leader: none).
    pub async fn leader_changed(&self, seen: u64) -> u64 {
        self.shared
            .leader_changes
            .wait_until(|count| count != seen)
            .await
    }

    /// The leadership change counter now, to pass to `leader_changed`.
    pub fn leader_change_count(&self) -> u64 {
        self.shared.leader_changes.get()
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied.get()
    }

    /// Waits until `index` is applied locally; `Err(Stopped)` if the quorum stops first.
    pub async fn wait_applied(&self, index: u64) -> Result<(), Stopped> {
        let applied = self.shared.applied.wait_until(|applied| applied >= index);
        match self.shared.stopping.or_until_set(applied).await {
            Some(_) => Ok(()),
            None if self.applied_index() >= index => Ok(()),
            None => Err(Stopped),
        }
    }

    /// Committed entries from `from_index` (1 is the first index) on, up to `max_bytes` of data
    /// (at least one entry when any is committed there), for brokers that follow the metadata
    /// log without voting. Entries with empty data (a new leader's first entry) are included:
    /// skip them, but move past their index. `Compacted` when `from_index` is below the log:
    /// read `snapshot()` and continue after its index.
    pub fn read_committed(
        &self,
        from_index: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, Compacted> {
        self.shared
            .log
            .borrow()
            .read_committed(from_index, max_bytes)
    }

    /// The latest snapshot: its index and the state machine's bytes. `None` before the first.
    pub fn snapshot(&self) -> Option<(u64, Bytes)> {
        let log = self.shared.log.borrow();
        let index = log.snapshot_metadata().index;
        (index > 0).then(|| (index, log.snapshot_data().clone()))
    }

    pub fn status(&self) -> QuorumStatus {
        let shared = &self.shared;
        let log = shared.log.borrow();
        let match_index = shared.match_index.borrow();
        let last_contact = shared.last_contact.borrow();
        let now = std::time::Instant::now();
        let voters = self
            .config
            .voters
            .keys()
            .map(|id| VoterStatus {
                node_id: *id,
                match_index: match_index.get(id).copied(),
                last_contact: if *id == shared.node_id {
                    Some(now)
                } else {
                    last_contact.get(id).copied()
                },
            })
            .collect();
        QuorumStatus {
            node_id: shared.node_id,
            role: shared.role.get().into(),
            leader: shared.leader_id(),
            term: shared.term.get(),
            commit_index: shared.commit_index.get(),
            applied_index: shared.applied.get(),
            snapshot_index: log.snapshot_metadata().index,
            first_index: log.first_index(),
            last_index: log.last_index(),
            voters,
        }
    }

    /// Stops the driver (the latest hard state written, files closed), the listener and every
    /// connection. Proposals in flight fail with `Stopped`. The error is the driver's, if it
    /// had stopped on one (a failed disk write).
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        self.shared.stopping.set(1);
        let Some(tasks) = self.tasks.borrow_mut().take() else {
            return Ok(());
        };
        let result = tasks.driver.await.unwrap_or(Ok(()));
        if let Some(server) = tasks.server {
            server.await;
        }
        if let Some(links) = tasks.links {
            links.stop().await;
        }
        result
    }

    /// Test fault injection: drops all Raft traffic to and from the peers while `isolated`.
    #[cfg(test)]
    pub(crate) fn set_isolated(&self, isolated: bool) {
        self.shared.isolated.set(isolated);
    }
}

impl Drop for Quorum {
    /// A handle dropped without `shutdown` still stops its tasks (they see the stop signal and
    /// close the storage); only `shutdown` waits for that and reports errors.
    fn drop(&mut self) {
        self.shared.stopping.set(1);
    }
}

/// Restores the local snapshot into the state machine and re-applies the committed entries after
/// it; returns the applied index.
fn recover_state_machine(
    storage: &RaftStorage,
    state_machine: &dyn StateMachine,
) -> Result<u64, QuorumError> {
    let (snapshot_index, snapshot_data, entries, commit) = {
        let log = storage.state().borrow();
        let snapshot_index = log.snapshot_metadata().index;
        let commit = log.hard_state.commit;
        let mut entries = Vec::new();
        for index in snapshot_index + 1..=commit {
            let entry = log.entry(index).ok_or_else(|| {
                StorageError::corrupt(
                    storage.dir(),
                    format!("committed entry {index} is missing from the log"),
                )
            })?;
            entries.push(entry.clone());
        }
        (snapshot_index, log.snapshot_data().clone(), entries, commit)
    };
    // No borrow is held while the state machine runs: it may read the quorum.
    if snapshot_index > 0 {
        state_machine.restore(snapshot_index, &snapshot_data);
    }
    for entry in entries {
        if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
            state_machine.apply(entry.index, &entry.data);
        }
    }
    Ok(commit)
}

/// Raft messages a connection hands to the node.
pub(crate) type RaftInbox = Rc<LocalSender<Message>>;
