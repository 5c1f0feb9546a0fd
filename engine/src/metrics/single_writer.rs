//! Adds to counters that exactly one thread writes. Every atomic a shard records into (counters,
//! histogram buckets) is written only by that shard's thread, and the scraper only loads them, so
//! an add can be a relaxed load and store (plain `mov`s) instead of a `lock xadd`: on x86 every
//! locked instruction is a full barrier costing ~20 cycles, and a produce request records ~25 of
//! them. A second writer would lose increments, never corrupt memory; `WriterCheck` catches one in
//! debug builds.

use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(debug_assertions)]
use std::sync::OnceLock;
#[cfg(debug_assertions)]
use std::thread::ThreadId;

/// Adds `n` to a counter only the calling thread writes (wrapping, as a counter would after 2^64).
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// In debug builds, remembers the first thread that writes and asserts every later write comes
/// from it; in release builds it is empty and free.
#[derive(Debug, Default)]
pub struct WriterCheck {
    #[cfg(debug_assertions)]
    owner: OnceLock<ThreadId>,
}

impl WriterCheck {
    #[inline]
    pub fn assert_single_writer(&self) {
        #[cfg(debug_assertions)]
        {
            let me = std::thread::current().id();
            let owner = *self.owner.get_or_init(|| me);
            assert_eq!(owner, me, "shard metrics written from two threads");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_wrap_like_a_counter() {
        let c = AtomicU64::new(u64::MAX - 1);
        add(&c, 3);
        assert_eq!(c.load(Ordering::Relaxed), 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    fn a_second_writer_thread_is_caught() {
        let check = std::sync::Arc::new(WriterCheck::default());
        check.assert_single_writer();
        check.assert_single_writer();
        let other = check.clone();
        let result = std::thread::spawn(move || other.assert_single_writer()).join();
        assert!(result.is_err());
    }
}
