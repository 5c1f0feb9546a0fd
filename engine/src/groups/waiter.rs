//! One-shot hand-off for parked requests: a JoinGroup waits until the rebalance completes, a follower's
//! SyncGroup until the leader's assignment arrives. The state machine keeps the [`Waiter`] in the member
//! and completes it synchronously; the request handler awaits the [`WaitHandle`].

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

/// The completing half, kept in the group state.
pub struct Waiter<T> {
    sender: LocalSender<T>,
}

/// The awaiting half, held by the parked request.
pub struct WaitHandle<T> {
    receiver: LocalReceiver<T>,
}

/// A handler's answer: now, or later through a handle (the request is parked in the group).
pub enum Reply<T> {
    Now(T),
    Later(WaitHandle<T>),
}

/// A fresh one-shot pair.
pub fn waiter<T>() -> (Waiter<T>, WaitHandle<T>) {
    // One slot: exactly one value is ever sent.
    let (sender, receiver) = local_channel::new_bounded(1);
    (Waiter { sender }, WaitHandle { receiver })
}

impl<T> Waiter<T> {
    /// Hands `value` to the parked request. If the request is gone (its connection closed and the
    /// future was dropped) there is nobody to answer, which is fine.
    pub fn complete(self, value: T) {
        let _ = self.sender.try_send(value);
    }
}

impl<T> WaitHandle<T> {
    /// The value, or `None` if the waiter was dropped without completing (the member was discarded).
    pub async fn wait(self) -> Option<T> {
        self.receiver.recv().await
    }
}

impl<T> std::fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}
