//! What the hot path calls: each hook is one line at its call site and a not-taken branch when
//! metrics are off (`None`). Keeping the counting logic here keeps the server and data-path files
//! about serving requests.

use std::future::Future;

use ringbroker_protocol::batch::BatchHeader;

use super::shard::{ShardMetrics, Stage};
use crate::fetch::FetchOutcome;
use crate::produce::ProduceOutcome;
use crate::server::dispatch::Part;
use crate::storage::{AppendOutcome, ReadChunk};

/// Kafka's `UNKNOWN_SERVER_ERROR`, used for requests that closed the connection instead of
/// being answered.
pub const CLOSED_ERROR_CODE: i16 = -1;

/// When a step started. A produce request takes seven of these, so the clock is the TSC read
/// through `quanta` (~12 ns on the 2-vCPU test VM) rather than `clock_gettime` (~27-36 ns there,
/// which was 90% of what metrics cost a request: `cargo bench --bench metrics_hooks`). `quanta`
/// falls back to the OS clock where the TSC is not invariant.
pub type Stamp = quanta::Instant;

/// Calibrates the TSC clock now (up to 200 ms, once per process) so no request pays for it.
pub fn calibrate_clock() {
    let _ = Stamp::now();
}

/// The current time, only when metrics are on.
#[inline]
pub fn now(metrics: Option<&ShardMetrics>) -> Option<Stamp> {
    metrics.map(|_| Stamp::now())
}

/// Awaits `fut`, recording its duration as `stage` when metrics are on.
pub async fn timed<F: Future>(metrics: Option<&ShardMetrics>, stage: Stage, fut: F) -> F::Output {
    let started = now(metrics);
    let output = fut.await;
    if let (Some(m), Some(started)) = (metrics, started) {
        m.stage(stage, started.elapsed());
    }
    output
}

/// A request's body was read off the socket at `received`; its size prefix arrived at
/// `prefix_read` (two clock reads the caller takes anyway: no extra one here).
#[inline]
pub fn frame_read(
    metrics: Option<&ShardMetrics>,
    api_key: i16,
    prefix_read: Option<Stamp>,
    received: Option<Stamp>,
) {
    const PRODUCE: i16 = 0;
    if let (Some(m), Some(started), Some(received), PRODUCE) =
        (metrics, prefix_read, received, api_key)
    {
        m.stage(Stage::ProduceNetworkRead, received - started);
    }
}

/// A request's handler task starts running: the time since its frame was read is queue wait.
#[inline]
pub fn handler_started(metrics: Option<&ShardMetrics>, api_key: i16, received: Option<Stamp>) {
    if let (Some(m), Some(received), Some((queue, _))) =
        (metrics, received, Stage::queue_and_reply(api_key))
    {
        m.stage(queue, received.elapsed());
    }
}

/// A response is about to be written: count its bytes by how they go out.
pub fn sending(metrics: Option<&ShardMetrics>, parts: &[Part]) {
    let Some(m) = metrics else { return };
    let (mut copied, mut sendfile) = (0u64, 0u64);
    for part in parts {
        match part {
            Part::Bytes(bytes) => copied += bytes.len() as u64,
            Part::File(range) => sendfile += range.len,
        }
    }
    ShardMetrics::add(&m.counters.bytes_sent_copied, copied);
    ShardMetrics::add(&m.counters.bytes_sent_sendfile, sendfile);
}

/// A response was written (or, for acks=0, dropped): request latency and reply stage.
pub fn responded(
    metrics: Option<&ShardMetrics>,
    api_key: i16,
    received: Option<Stamp>,
    write_started: Option<Stamp>,
) {
    let (Some(m), Some(received)) = (metrics, received) else {
        return;
    };
    // One clock read for both.
    let now = Stamp::now();
    m.request_latency(api_key, now - received);
    if let (Some(started), Some((_, reply))) = (write_started, Stage::queue_and_reply(api_key)) {
        m.stage(reply, now - started);
    }
}

/// Batches of `bytes` were appended on this (the owning) shard.
pub fn appended(metrics: Option<&ShardMetrics>, bytes: usize, outcome: &AppendOutcome) {
    let Some(m) = metrics else { return };
    debug_assert!(outcome.last_offset >= outcome.base_offset);
    ShardMetrics::add(&m.counters.produce_bytes_in, bytes as u64);
    let records = outcome.last_offset - outcome.base_offset + 1;
    ShardMetrics::add(&m.counters.produce_records_in, records.max(0) as u64);
}

/// Per-partition error codes of a Produce.
pub fn produced(metrics: Option<&ShardMetrics>, outcomes: &[ProduceOutcome]) {
    let Some(m) = metrics else { return };
    for outcome in outcomes.iter().filter(|o| o.error_code != 0) {
        m.error(0, outcome.error_code);
    }
}

/// What a Fetch returns, after `max_bytes` was applied: bytes, records, errors.
pub fn fetched(metrics: Option<&ShardMetrics>, outcomes: &[FetchOutcome]) {
    let Some(m) = metrics else { return };
    let (mut bytes, mut records) = (0u64, 0u64);
    for outcome in outcomes {
        if outcome.error_code != 0 {
            m.error(1, outcome.error_code);
        }
        for chunk in &outcome.chunks {
            bytes += chunk.len();
            records += match chunk {
                ReadChunk::Memory(data) => records_in(data),
                // Counted by the read from the headers it walked: the file is not read here.
                ReadChunk::File { records, .. } => *records,
            };
        }
    }
    ShardMetrics::add(&m.counters.fetch_bytes_out, bytes);
    ShardMetrics::add(&m.counters.fetch_records_out, records);
}

/// Awaits `fut`, the connection's reader waiting for its in-flight budget (it reads nothing from
/// the socket meanwhile), counted as one read pause. Only called when the budget is spent, so the
/// common path takes no clock read here.
pub async fn read_paused<F: Future>(metrics: Option<&ShardMetrics>, fut: F) -> F::Output {
    let Some(m) = metrics else {
        return fut.await;
    };
    ShardMetrics::add(&m.counters.connection_read_pauses, 1);
    // Ends the pause even if the connection task is dropped while it waits.
    let _pause = ReadPause {
        metrics: m,
        started: std::time::Instant::now(),
    };
    fut.await
}

/// A read pause in progress: its end is counted on drop.
struct ReadPause<'a> {
    metrics: &'a ShardMetrics,
    started: std::time::Instant,
}

impl Drop for ReadPause<'_> {
    fn drop(&mut self) {
        let counters = &self.metrics.counters;
        let paused_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        ShardMetrics::add(&counters.connection_read_paused_us, paused_us);
        ShardMetrics::add(&counters.connection_read_pauses_ended, 1);
    }
}

/// Records in whole v2 batches (only their 61-byte headers are read).
fn records_in(mut data: &[u8]) -> u64 {
    let mut records = 0u64;
    while let Ok(header) = BatchHeader::parse(data) {
        records += u64::try_from(header.record_count).unwrap_or(0);
        let Some(rest) = data.get(header.total_bytes()..) else {
            break;
        };
        data = rest;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::build_simple_batch;

    #[test]
    fn counts_records_of_concatenated_batches() {
        let mut data = build_simple_batch(0, &[b"a", b"b", b"c"]);
        data.extend(build_simple_batch(3, &[b"d"]));
        assert_eq!(records_in(&data), 4);
        assert_eq!(records_in(&data[..10]), 0);
    }

    #[test]
    fn read_pauses_are_counted_until_they_end_or_are_dropped() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = ShardMetrics::new(0);
        let counters = &m.counters;
        assert_eq!(
            futures::executor::block_on(read_paused(Some(&m), async { 7 })),
            7
        );
        assert_eq!(counters.connection_read_pauses.load(Relaxed), 1);
        assert_eq!(counters.connection_read_pauses_ended.load(Relaxed), 1);
        // A pause still waiting counts as ongoing; dropping it (connection gone) ends it.
        let mut waiting = Box::pin(read_paused(Some(&m), futures::future::pending::<()>()));
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counters.connection_read_pauses.load(Relaxed), 2);
        assert_eq!(counters.connection_read_pauses_ended.load(Relaxed), 1);
        drop(waiting);
        assert_eq!(counters.connection_read_pauses_ended.load(Relaxed), 2);
        futures::executor::block_on(read_paused(None, async {}));
        assert_eq!(counters.connection_read_pauses.load(Relaxed), 2);
    }

    #[test]
    fn fetched_counts_bytes_records_and_errors() {
        let m = ShardMetrics::new(0);
        let batch = bytes::Bytes::from(build_simple_batch(0, &[b"x", b"y"]));
        let ok = FetchOutcome {
            error_code: 0,
            high_watermark: 2,
            log_start_offset: 0,
            chunks: vec![
                ReadChunk::File {
                    path: "/nonexistent/00000000000000000000.log".into(),
                    position: 4096,
                    len: 1000,
                    records: 7,
                    inode: 0,
                },
                ReadChunk::Memory(batch.clone()),
            ],
            stable: Default::default(),
        };
        fetched(Some(&m), &[ok, FetchOutcome::error(1)]);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(load(&m.counters.fetch_bytes_out), 1000 + batch.len() as u64);
        assert_eq!(load(&m.counters.fetch_records_out), 7 + 2);
        assert_eq!(m.errors_of(1, 1), 1);
    }
}
