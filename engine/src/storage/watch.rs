//! `OffsetWatch`: a single-threaded "value reached N" notifier. The high watermark of a log is one;
//! appends wait for it to pass their last offset and long-polling fetches wait for it to pass the fetch
//! offset. Waiters are keyed by target so that advancing wakes only the ones that are satisfied (no
//! thundering herd, no sleep loop).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A monotonic `i64` with waiters. Once failed, every waiter resolves at once. An interrupt (a
/// log rolling back after a retryable write failure) resolves every waiter of the epoch it ends,
/// so waiters must re-check what they waited for.
#[derive(Debug)]
pub(crate) struct OffsetWatch {
    value: Cell<i64>,
    failed: Cell<bool>,
    /// Bumped by [`OffsetWatch::interrupt`].
    epoch: Cell<u64>,
    /// The value when the last interrupt ended the epoch before the current one.
    value_at_last_interrupt: Cell<i64>,
    waiters: RefCell<BTreeMap<(i64, u64), Waker>>,
    next_waiter_id: Cell<u64>,
}

impl OffsetWatch {
    pub(crate) fn new(value: i64) -> Rc<OffsetWatch> {
        Rc::new(OffsetWatch {
            value: Cell::new(value),
            failed: Cell::new(false),
            epoch: Cell::new(0),
            value_at_last_interrupt: Cell::new(value),
            waiters: RefCell::new(BTreeMap::new()),
            next_waiter_id: Cell::new(0),
        })
    }

    pub(crate) fn get(&self) -> i64 {
        self.value.get()
    }

    /// Raises the value and wakes every waiter whose target is now reached.
    pub(crate) fn advance(&self, value: i64) {
        debug_assert!(value >= self.value.get(), "watch values only grow");
        self.value.set(value);
        // Pop the satisfied waiters from the front (the map is ordered by target).
        let mut ready = Vec::new();
        {
            let mut waiters = self.waiters.borrow_mut();
            while let Some(entry) = waiters.first_entry() {
                if entry.key().0 > value {
                    break;
                }
                ready.push(entry.remove());
            }
        }
        // Wake outside the borrow: a woken task may register again.
        for waker in ready {
            waker.wake();
        }
    }

    /// Moves the value back to `value` (a truncation): nobody is woken, waiters keep waiting for
    /// their targets. Callers `interrupt` first when waiters of the old values must resolve.
    pub(crate) fn reset(&self, value: i64) {
        debug_assert!(value <= self.value.get(), "reset only moves back");
        self.value.set(value);
    }

    /// Marks the watch failed and wakes everybody.
    pub(crate) fn fail(&self) {
        self.failed.set(true);
        let all = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in all.into_values() {
            waker.wake();
        }
    }

    /// The current epoch (see [`OffsetWatch::interrupt`]).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// Ends the current epoch and wakes everybody, without failing the watch for good: waiters
    /// taken in the ended epoch resolve; later ones wait as usual.
    pub(crate) fn interrupt(&self) {
        self.value_at_last_interrupt.set(self.value.get());
        self.epoch.set(self.epoch.get() + 1);
        let all = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in all.into_values() {
            waker.wake();
        }
    }

    /// The value when `epoch` ended, if it is the epoch just before the current one (older
    /// epochs' end values are not kept: callers treat them as unknown).
    pub(crate) fn value_at_end_of(&self, epoch: u64) -> Option<i64> {
        (epoch + 1 == self.epoch.get()).then(|| self.value_at_last_interrupt.get())
    }

    /// Resolves once `get() >= target`, the watch failed, or its epoch changed.
    pub(crate) fn wait_until(self: &Rc<Self>, target: i64) -> WaitUntil {
        self.wait_until_in_epoch(target, self.epoch.get())
    }

    /// Like [`OffsetWatch::wait_until`], but also resolves at once if the epoch is no longer
    /// `epoch` (taken when the waiter's reason to wait began, e.g. when an append got its offsets).
    pub(crate) fn wait_until_in_epoch(self: &Rc<Self>, target: i64, epoch: u64) -> WaitUntil {
        WaitUntil {
            watch: self.clone(),
            target,
            epoch,
            waiter_id: None,
        }
    }
}

/// Future of [`OffsetWatch::wait_until`].
pub(crate) struct WaitUntil {
    watch: Rc<OffsetWatch>,
    target: i64,
    epoch: u64,
    waiter_id: Option<u64>,
}

impl Future for WaitUntil {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.watch.value.get() >= this.target
            || this.watch.failed.get()
            || this.watch.epoch.get() != this.epoch
        {
            if let Some(id) = this.waiter_id.take() {
                this.watch.waiters.borrow_mut().remove(&(this.target, id));
            }
            return Poll::Ready(());
        }
        let id = match this.waiter_id {
            Some(id) => id,
            None => {
                let id = this.watch.next_waiter_id.get();
                this.watch.next_waiter_id.set(id + 1);
                this.waiter_id = Some(id);
                id
            }
        };
        this.watch
            .waiters
            .borrow_mut()
            .insert((this.target, id), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for WaitUntil {
    fn drop(&mut self) {
        if let Some(id) = self.waiter_id {
            self.watch.waiters.borrow_mut().remove(&(self.target, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_only_satisfied_waiters() {
        let watch = OffsetWatch::new(0);
        let counter = std::sync::Arc::new(CountingWaker(0.into()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut near = Box::pin(watch.wait_until(5));
        let mut far = Box::pin(watch.wait_until(10));
        assert!(near.as_mut().poll(&mut cx).is_pending());
        assert!(far.as_mut().poll(&mut cx).is_pending());
        watch.advance(5);
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(near.as_mut().poll(&mut cx).is_ready());
        assert!(far.as_mut().poll(&mut cx).is_pending());
        drop(far);
        assert!(watch.waiters.borrow().is_empty());
        let mut after_fail = Box::pin(watch.wait_until(100));
        watch.fail();
        assert!(after_fail.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn interrupt_resolves_the_ended_epoch_only() {
        let watch = OffsetWatch::new(0);
        let counter = std::sync::Arc::new(CountingWaker(0.into()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let epoch = watch.epoch();
        let mut waiting = Box::pin(watch.wait_until(10));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        watch.interrupt();
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        // Taken before the interrupt, first polled after it: still resolves.
        let mut late = Box::pin(watch.wait_until_in_epoch(10, epoch));
        assert!(late.as_mut().poll(&mut cx).is_ready());
        // A waiter of the new epoch waits as usual.
        let mut fresh = Box::pin(watch.wait_until(10));
        assert!(fresh.as_mut().poll(&mut cx).is_pending());
        watch.advance(10);
        assert!(fresh.as_mut().poll(&mut cx).is_ready());
        assert_eq!(watch.value_at_end_of(epoch), Some(0));
        watch.interrupt();
        assert_eq!(watch.value_at_end_of(epoch + 1), Some(10));
        assert_eq!(
            watch.value_at_end_of(epoch),
            None,
            "only the last end is kept"
        );
    }
}
