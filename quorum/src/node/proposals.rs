//! Proposals between `Quorum::propose` and their outcome: the queued request the driver takes
//! in, and the in-flight table (log index and term at proposal time) that resolves each one when
//! its index is applied, or fails it when leadership is lost.

use std::collections::BTreeMap;

use futures::channel::oneshot;

use super::shared::PendingSlot;
use crate::error::ProposeError;

pub(crate) type ProposeReply = oneshot::Sender<Result<u64, ProposeError>>;

/// A proposal on its way to the driver.
pub(crate) struct Proposal {
    pub data: Vec<u8>,
    pub reply: ProposeReply,
    pub slot: PendingSlot,
}

struct InFlight {
    term: u64,
    reply: ProposeReply,
    _slot: PendingSlot,
}

/// Proposals appended to the leader's log, by index.
#[derive(Default)]
pub(crate) struct InFlightProposals {
    by_index: BTreeMap<u64, InFlight>,
}

impl InFlightProposals {
    pub fn insert(&mut self, index: u64, term: u64, reply: ProposeReply, slot: PendingSlot) {
        let previous = self.by_index.insert(
            index,
            InFlight {
                term,
                reply,
                _slot: slot,
            },
        );
        debug_assert!(previous.is_none(), "two proposals at index {index}");
    }

    /// The entry at `index` (of `term`) was applied: its proposal succeeded if the entry is the
    /// one proposed (same term); otherwise another leader's entry took the index.
    pub fn applied(&mut self, index: u64, term: u64, leader: Option<u64>) {
        // Anything below `index` still here was overwritten without reaching apply.
        while let Some(entry) = self.by_index.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (at, in_flight) = entry.remove_entry();
            let outcome = if at == index && in_flight.term == term {
                Ok(index)
            } else {
                Err(ProposeError::NotLeader { leader })
            };
            // The proposer may have given up (timeout); nobody to tell then.
            let _ = in_flight.reply.send(outcome);
        }
    }

    /// Fails every proposal in flight (leadership lost, or the quorum stopping).
    pub fn fail_all(&mut self, error: ProposeError) {
        for (_, in_flight) in std::mem::take(&mut self.by_index) {
            let _ = in_flight.reply.send(Err(error.clone()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }
}
