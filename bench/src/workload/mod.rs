//! The workloads: producer and consumer threads, the clock they share, and the run that drives them.

pub mod consumer;
pub mod generator;
pub mod pinning;
pub mod producer;
pub mod profile;
pub mod run;
pub mod txn;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One clock for every thread of a run: monotonic `Instant`s, mapped to wall-clock ns (what goes
/// into records) through a single anchor so producer stamps and consumer reads agree exactly.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_wall_ns: u64,
}

impl Clock {
    /// Anchors the clock now.
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            anchor: Instant::now(),
            anchor_wall_ns: wall,
        }
    }

    /// Wall-clock ns of an instant.
    pub fn wall_ns(&self, at: Instant) -> u64 {
        self.anchor_wall_ns + at.saturating_duration_since(self.anchor).as_nanos() as u64
    }

    /// Wall-clock ns now.
    pub fn now_ns(&self) -> u64 {
        self.wall_ns(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Flags the run uses to stop its threads.
#[derive(Debug, Default)]
pub struct StopFlags {
    /// Set when the run's time is up or a worker failed: everyone stops.
    pub stop: AtomicBool,
    /// Set when every producer finished (e2e consumers then drain and stop).
    pub producers_done: AtomicBool,
}

impl StopFlags {
    /// Whether to stop now.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks everyone to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
