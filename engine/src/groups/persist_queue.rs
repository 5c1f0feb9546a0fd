//! Group commit of coordinator records: concurrent OffsetCommit/OffsetDelete requests and group-metadata
//! writes queue their records, and one detached flusher task persists everything queued in a single store
//! call, applies it to memory in queue order (the order it has in the log) and answers every request.
//! While one batch is being written, the next one gathers, so a busy shard writes few, large appends
//! instead of one per commit. The flusher is its own task so a client hanging up cannot cancel a write
//! half-way and leave memory behind the log.
//!
//! The queue is the one order of the log: whoever writes directly under the persist lock (group deletion,
//! the retention sweep) first drains what is queued ([`Inner::drain_queue_locked`]), so a record queued
//! earlier never lands after theirs.

use std::rc::Rc;
use std::time::Instant;

use super::coordinator::{now_ms, Inner};
use super::error::GroupError;
use super::store::CoordinatorRecord;
use super::waiter::{waiter, Waiter};

/// Most records persisted in one flush; the flusher takes whole requests until this is reached (always at
/// least one), which bounds the size of one append.
const FLUSH_RECORDS_MAX: usize = 10_000;

/// One request's records waiting to be persisted.
pub(crate) struct QueuedPersist {
    records: Vec<CoordinatorRecord>,
    /// Answered with the flush's outcome (errors as text: one error answers many requests).
    done: Waiter<Result<(), String>>,
}

impl Inner {
    /// Persists `records` (with whatever else is queued), then applies them. Resolves once they are durable
    /// and visible, or failed.
    pub(crate) async fn persist_and_apply(
        self: &Rc<Self>,
        records: Vec<CoordinatorRecord>,
    ) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, handle) = waiter();
        self.persist_queue
            .borrow_mut()
            .push(QueuedPersist { records, done });
        if !self.flusher_running.get() {
            self.flusher_running.set(true);
            let inner = self.clone();
            glommio::spawn_local(async move { inner.flush_queue().await }).detach();
        }
        match handle.wait().await {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(GroupError::Storage(reason)),
            None => Err(GroupError::Storage("offsets flusher stopped".into())),
        }
    }

    /// The flusher: drains the queue batch by batch, then ends (the next request starts a new one). The
    /// lock is taken before a batch is, so a direct writer holding it sees (and drains) every queued record.
    async fn flush_queue(self: Rc<Self>) {
        loop {
            let flushed = match self.persist_lock().await {
                Ok(_permit) => self.flush_batch_locked().await,
                Err(error) => {
                    let reason = error.to_string();
                    for queued in self.take_batch() {
                        queued.done.complete(Err(reason.clone()));
                    }
                    false
                }
            };
            if !flushed {
                break;
            }
        }
        self.flusher_running.set(false);
    }

    /// Persists everything queued, in order, then applies it; the caller holds the persist lock.
    pub(crate) async fn drain_queue_locked(&self) {
        while self.flush_batch_locked().await {}
    }

    /// Writes one batch of the queue and answers its requests; `false` when the queue was empty.
    async fn flush_batch_locked(&self) -> bool {
        let batch = self.take_batch();
        if batch.is_empty() {
            return false;
        }
        let records: Vec<CoordinatorRecord> = batch
            .iter()
            .flat_map(|q| q.records.iter().cloned())
            .collect();
        let outcome = self
            .store
            .persist(&records)
            .await
            .map(|()| {
                self.apply_records(&records, Instant::now(), now_ms());
            })
            .map_err(|e| e.to_string());
        for queued in batch {
            queued.done.complete(outcome.clone());
        }
        true
    }

    fn take_batch(&self) -> Vec<QueuedPersist> {
        let mut queue = self.persist_queue.borrow_mut();
        let mut records = 0;
        let mut take = 0;
        for queued in queue.iter() {
            if take > 0 && records + queued.records.len() > FLUSH_RECORDS_MAX {
                break;
            }
            records += queued.records.len();
            take += 1;
        }
        queue.drain(..take).collect()
    }
}
