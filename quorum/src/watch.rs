//! A counter that tasks on the same executor wait on: the applied index, the leadership change
//! count, the stop flag, a connection's closed flag. `set` wakes every waiter; each re-checks its
//! own condition ([`Watch::or_until_set`] races any future against the watch; [`within`] races
//! one against a deadline). A waiter removes its waker when it resolves or is dropped, so the waker table
//! holds only live waiters however many come and go.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::{pin_mut, select_biased, FutureExt};

#[derive(Debug, Default)]
pub struct Watch {
    value: Cell<u64>,
    /// Wakers of the waiters whose condition did not hold at their last poll, by waiter id.
    wakers: RefCell<BTreeMap<u64, Waker>>,
    next_waiter_id: Cell<u64>,
}

impl Watch {
    pub fn new(value: u64) -> Self {
        Watch {
            value: Cell::new(value),
            ..Watch::default()
        }
    }

    pub fn get(&self) -> u64 {
        self.value.get()
    }

    /// Stores `value` and wakes the waiters if it changed.
    pub fn set(&self, value: u64) {
        if self.value.replace(value) != value {
            // Woken waiters re-register when they poll again; collect first so a waker that
            // runs code touching this watch finds it unborrowed.
            let wakers: Vec<Waker> = self.wakers.borrow().values().cloned().collect();
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// Adds one and returns the new value.
    pub fn bump(&self) -> u64 {
        let value = self.value.get() + 1;
        self.set(value);
        value
    }

    /// Runs `future` unless the watch is (or becomes) non-zero first: `None` then, and `future`
    /// is dropped. The stop flag and a connection's closed flag cut work short this way.
    pub async fn or_until_set<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let future = future.fuse();
        let set = self.wait_until(|value| value != 0).fuse();
        pin_mut!(future, set);
        select_biased! {
            _ = set => None,
            output = future => Some(output),
        }
    }

    /// Resolves with the value once `condition` holds for it.
    pub fn wait_until<C: Fn(u64) -> bool>(&self, condition: C) -> WaitUntil<'_, C> {
        let id = self.next_waiter_id.get();
        self.next_waiter_id.set(id.wrapping_add(1));
        WaitUntil {
            watch: self,
            condition,
            id,
        }
    }
}

/// `future`'s output, or `None` when `limit` passes first (and `future` is dropped).
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    let future = future.fuse();
    let expired = glommio::timer::sleep(limit).fuse();
    pin_mut!(future, expired);
    select_biased! {
        output = future => Some(output),
        () = expired => None,
    }
}

/// The future of [`Watch::wait_until`].
pub struct WaitUntil<'a, C> {
    watch: &'a Watch,
    condition: C,
    id: u64,
}

impl<C: Fn(u64) -> bool> Future for WaitUntil<'_, C> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<u64> {
        let value = self.watch.value.get();
        if (self.condition)(value) {
            self.watch.wakers.borrow_mut().remove(&self.id);
            return Poll::Ready(value);
        }
        self.watch
            .wakers
            .borrow_mut()
            .insert(self.id, context.waker().clone());
        Poll::Pending
    }
}

impl<C> Drop for WaitUntil<'_, C> {
    fn drop(&mut self) {
        self.watch.wakers.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn waiters_resolve_on_their_condition_and_leave_no_waker_behind() {
        let watch = Watch::new(0);
        let mut reached_two = Box::pin(watch.wait_until(|value| value >= 2));
        assert_eq!(reached_two.as_mut().now_or_never(), None);
        {
            let abandoned = watch.wait_until(|value| value >= 5);
            assert_eq!(abandoned.now_or_never(), None);
        }
        assert_eq!(watch.wakers.borrow().len(), 1, "the dropped waiter left");
        watch.bump();
        assert_eq!(reached_two.as_mut().now_or_never(), None);
        watch.bump();
        assert_eq!(reached_two.as_mut().now_or_never(), Some(2));
        assert!(watch.wakers.borrow().is_empty());
    }
}
