//! A partition leader's view of its followers: each follower's log end offset (the offset of its
//! last fetch: it holds everything below), when it was last caught up, and from those the high
//! watermark (the smallest log end among the in-sync replicas) and the ISR changes to ask the
//! controller for; and each follower's log start, from which the low watermark (the smallest log
//! start of the live replicas, what DeleteRecords waits for). Pure state: the caller applies the
//! high watermark to the log and sends the AlterPartition requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset); -1 before its first fetch.
    pub log_end_offset: i64,
    /// The follower's log start offset, as its last fetch gave it; -1 before its first fetch.
    pub log_start_offset: i64,
    /// When the follower last held everything the leader had (Kafka's lastCaughtUpTimeMs).
    pub last_caught_up: Instant,
    /// The leader's log end offset at the follower's previous fetch, and when that was: a fetch
    /// that reaches it proves the follower was caught up then (Kafka's rule).
    previous_fetch_leader_end: i64,
    previous_fetch_at: Instant,
}

/// The leader's state of one partition it leads in `leader_epoch`.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub node_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// An AlterPartition is on its way to the controller (one at a time, as Kafka's leader).
    pub alter_in_flight: bool,
}

impl LeaderState {
    /// A leader that just took over: followers start caught up "now" (they get a full lag
    /// period to fetch before they leave the ISR), their log ends unknown.
    pub fn new(
        node_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now: Instant,
    ) -> LeaderState {
        debug_assert!(
            replicas.contains(&node_id),
            "a leader is one of the replicas"
        );
        let followers = replicas
            .iter()
            .filter(|id| **id != node_id)
            .map(|id| {
                (
                    *id,
                    FollowerProgress {
                        log_end_offset: -1,
                        log_start_offset: -1,
                        last_caught_up: now,
                        previous_fetch_leader_end: -1,
                        previous_fetch_at: now,
                    },
                )
            })
            .collect();
        LeaderState {
            node_id,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            followers,
            alter_in_flight: false,
        }
    }

    /// The image changed the partition without changing its leader epoch (an ISR change, or the
    /// replicas): keep what is known of the followers.
    pub fn update(&mut self, partition_epoch: i32, replicas: &[i32], isr: &[i32], now: Instant) {
        self.partition_epoch = partition_epoch;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        self.alter_in_flight = false;
        let node_id = self.node_id;
        self.followers.retain(|id, _| replicas.contains(id));
        for id in replicas.iter().filter(|id| **id != node_id) {
            self.followers.entry(*id).or_insert(FollowerProgress {
                log_end_offset: -1,
                log_start_offset: -1,
                last_caught_up: now,
                previous_fetch_leader_end: -1,
                previous_fetch_at: now,
            });
        }
    }

    /// Records a fetch of `follower` at `fetch_offset` while the leader's log ends at
    /// `leader_end`. Returns false for a node that is not a follower of this partition.
    pub fn record_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_end: i64,
        now: Instant,
    ) -> bool {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return false;
        };
        progress.log_end_offset = fetch_offset;
        if fetch_offset >= leader_end {
            progress.last_caught_up = now;
        } else if fetch_offset >= progress.previous_fetch_leader_end
            && progress.previous_fetch_at > progress.last_caught_up
        {
            progress.last_caught_up = progress.previous_fetch_at;
        }
        progress.previous_fetch_leader_end = leader_end;
        progress.previous_fetch_at = now;
        true
    }

    /// Records the log start offset a fetch of `follower` gave. Returns whether it changed.
    pub fn record_log_start(&mut self, follower: i32, log_start_offset: i64) -> bool {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return false;
        };
        let changed = progress.log_start_offset != log_start_offset;
        progress.log_start_offset = log_start_offset;
        changed
    }

    /// The low watermark (Kafka's `lowWatermarkIfLeader`): the smallest log start among the
    /// leader's own `leader_log_start` and its followers on a live broker (`is_live`), in the ISR
    /// or not. A live follower that has not fetched yet holds it at -1: its log start is unknown.
    pub fn low_watermark(&self, leader_log_start: i64, is_live: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(id, _)| is_live(**id))
            .map(|(_, progress)| progress.log_start_offset)
            .fold(leader_log_start, i64::min)
    }

    /// The high watermark the ISR allows: the smallest log end among the in-sync followers, and
    /// the leader's own `leader_written_end`. `None` while an in-sync follower has not fetched
    /// yet (its log end is unknown: nothing can be promised).
    pub fn high_watermark(&self, leader_written_end: i64) -> Option<i64> {
        let mut high_watermark = leader_written_end;
        for id in self.isr.iter().filter(|id| **id != self.node_id) {
            let end = self.followers.get(id).map_or(-1, |p| p.log_end_offset);
            if end < 0 {
                return None;
            }
            high_watermark = high_watermark.min(end);
        }
        Some(high_watermark)
    }

    /// The ISR to ask for, if it should change: in-sync followers not caught up within
    /// `max_lag` leave; out-of-sync followers whose log end reached `high_watermark` join if
    /// `may_join` lets them (the broker is unfenced). The leader always stays.
    pub fn wanted_isr(
        &self,
        high_watermark: i64,
        max_lag: Duration,
        now: Instant,
        may_join: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        let mut wanted: Vec<i32> =
            self.isr
                .iter()
                .copied()
                .filter(|id| {
                    *id == self.node_id
                        || self.followers.get(id).is_some_and(|p| {
                            now.saturating_duration_since(p.last_caught_up) <= max_lag
                        })
                })
                .collect();
        for (id, progress) in &self.followers {
            if !wanted.contains(id)
                && !self.isr.contains(id)
                && may_join(*id)
                && progress.log_end_offset >= 0
                && progress.log_end_offset >= high_watermark
            {
                wanted.push(*id);
            }
        }
        if !wanted.contains(&self.node_id) {
            wanted.push(self.node_id);
        }
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(now: Instant) -> LeaderState {
        LeaderState::new(1, 5, 7, &[1, 2, 3], &[1, 2, 3], now)
    }

    #[test]
    fn the_high_watermark_is_the_smallest_in_sync_log_end() {
        let now = Instant::now();
        let mut state = leader(now);
        assert_eq!(state.high_watermark(100), None, "followers not heard from");
        state.record_fetch(2, 80, 100, now);
        assert_eq!(state.high_watermark(100), None, "follower 3 not heard from");
        state.record_fetch(3, 90, 100, now);
        assert_eq!(state.high_watermark(100), Some(80));
        state.record_fetch(2, 100, 100, now);
        assert_eq!(state.high_watermark(100), Some(90));
        // A follower out of the ISR does not hold the high watermark back.
        state.isr = vec![1, 2];
        assert_eq!(state.high_watermark(100), Some(100));
        assert!(!state.record_fetch(9, 1, 100, now), "not a replica");
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_join() {
        let start = Instant::now();
        let max_lag = Duration::from_millis(1_000);
        let mut state = leader(start);
        state.record_fetch(2, 100, 100, start);
        state.record_fetch(3, 50, 100, start);
        assert_eq!(state.wanted_isr(50, max_lag, start, |_| true), None);
        let later = start + Duration::from_millis(1_500);
        // Follower 2 keeps up; follower 3 keeps fetching but never reaches the end.
        state.record_fetch(2, 120, 120, later);
        state.record_fetch(3, 60, 120, later);
        assert_eq!(
            state.wanted_isr(60, max_lag, later, |_| true),
            Some(vec![1, 2])
        );
        state.update(8, &[1, 2, 3], &[1, 2], later);
        // Follower 3 reaches the high watermark: it joins again.
        state.record_fetch(3, 120, 130, later);
        assert_eq!(
            state.wanted_isr(120, max_lag, later, |_| true),
            Some(vec![1, 2, 3])
        );
        assert_eq!(
            state.wanted_isr(120, max_lag, later, |id| id != 3),
            None,
            "3 is fenced"
        );
    }

    #[test]
    fn the_low_watermark_is_the_smallest_log_start_of_the_live_replicas() {
        let now = Instant::now();
        let mut state = leader(now);
        let all_live = |_: i32| true;
        assert_eq!(
            state.low_watermark(50, all_live),
            -1,
            "followers not heard from"
        );
        assert!(state.record_log_start(2, 40));
        assert!(!state.record_log_start(2, 40), "unchanged");
        assert!(state.record_log_start(3, 45));
        assert_eq!(state.low_watermark(50, all_live), 40);
        assert_eq!(state.low_watermark(30, all_live), 30, "the leader's own");
        // Out of the ISR it still counts; on a dead (fenced) broker it does not.
        state.isr = vec![1, 3];
        assert_eq!(state.low_watermark(50, all_live), 40);
        assert_eq!(state.low_watermark(50, |id| id != 2), 45);
        assert!(!state.record_log_start(9, 1), "not a replica");
    }

    #[test]
    fn a_fetch_reaching_the_previous_end_counts_as_caught_up_then() {
        let start = Instant::now();
        let mut state = leader(start);
        let t1 = start + Duration::from_millis(100);
        state.record_fetch(2, 10, 20, t1);
        let t2 = start + Duration::from_millis(200);
        // Reaches 20 (the leader's end at t1) though the leader is at 30 now.
        state.record_fetch(2, 20, 30, t2);
        assert_eq!(state.followers[&2].last_caught_up, t1);
    }
}
