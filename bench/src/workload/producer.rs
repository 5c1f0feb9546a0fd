//! A producer thread: pre-built Produce frames sent on one connection per partition leader, with up
//! to `--max-in-flight` requests outstanding; a reader thread per connection takes the responses in
//! order and records request→ack latency (from the intended send time when a rate is set, so a
//! stalled broker cannot hide its stall: coordinated omission corrected).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;

use crate::client::admin::{PartitionLeader, TopicLayout};
use crate::client::batch_view::Stamp;
use crate::client::connection::{decode_response, Connection, FrameReader, FrameWriter};
use crate::client::produce::{outcome, ProduceFrame};
use crate::client::versions::PRODUCE;
use crate::error::{BenchError, Result};
use crate::stats::{LatencyKind, Recorder, Shared};
use crate::workload::generator::{build_pool, BatchShape};
use crate::workload::pinning::CorePlan;
use crate::workload::{Clock, StopFlags};

/// Below this much time to wait for the next intended send we spin instead of sleeping: a sleep
/// overshoots by tens of microseconds, which would add that much latency to every paced send.
pub const SPIN_BELOW: Duration = Duration::from_micros(200);

/// What one producer thread needs.
pub struct ProducerPlan {
    /// Thread index (also the pool seed).
    pub index: usize,
    /// Partitions this producer writes, round-robin.
    pub partitions: Vec<PartitionLeader>,
    /// Records to send, if bounded by count.
    pub records_limit: Option<u64>,
    /// Target records/s of this producer, if paced.
    pub rate: Option<f64>,
    /// The batch shape.
    pub shape: BatchShape,
    /// Produce acks.
    pub acks: i16,
    /// Broker-side timeout of a Produce request.
    pub timeout_ms: i32,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// The core to pin to.
    pub core: Option<usize>,
}

/// A request on the wire, waiting for its response.
struct InFlight {
    correlation_id: i32,
    /// Intended send time of the first record (or the write time when not paced).
    first_intended: Instant,
    spacing_ns: u64,
    records: u64,
    payload_bytes: u64,
    batch_bytes: u64,
}

/// How long a paced producer waits before it looks again at a full in-flight window: records keep
/// coming due meanwhile, and the next batch takes all of them (see `BatchShape::catch_up_sizes`).
pub const WINDOW_POLL: Duration = Duration::from_micros(50);

/// Pre-built frames of one batch size.
struct FrameClass {
    records: u64,
    payload_bytes: u64,
    frames: Vec<ProduceFrame>,
}

/// One connection's sending side.
struct Lane {
    writer: FrameWriter,
    /// Smallest batch size first; one class unless the producer is paced.
    classes: Vec<FrameClass>,
    in_flight: Option<SyncSender<InFlight>>,
    reader: Option<JoinHandle<Result<()>>>,
}

impl Lane {
    /// The largest class whose records are all overdue (`due` of them), at least the smallest.
    fn class_for(&self, due: u64) -> usize {
        self.classes
            .iter()
            .rposition(|c| c.records <= due)
            .unwrap_or(0)
    }
}

/// Runs one producer to completion (time up, record limit, or error).
pub fn run(
    plan: ProducerPlan,
    layout: Arc<TopicLayout>,
    shared: Arc<Shared>,
    flags: Arc<StopFlags>,
    clock: Clock,
    read_timeout: Duration,
) -> Result<()> {
    CorePlan::pin_current(plan.core);
    let pools = plan
        .shape
        .catch_up_sizes()
        .into_iter()
        .map(|n| {
            let shape = plan.shape.with_records(n);
            build_pool(&shape, plan.index as u64 + 1).map(|pool| (shape, pool))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut lanes = BTreeMap::new();
    for p in &plan.partitions {
        if let std::collections::btree_map::Entry::Vacant(slot) = lanes.entry(p.leader) {
            slot.insert(open_lane(
                &plan,
                &layout,
                p.leader,
                &pools,
                &shared,
                &flags,
                read_timeout,
            )?);
        }
    }
    let result = send_loop(&plan, &mut lanes, &shared, &flags, clock);
    let mut first_error = result.err();
    for (_, mut lane) in lanes {
        lane.in_flight = None; // closing the queue lets the reader finish the outstanding responses
        if let Some(handle) = lane.reader.take() {
            let joined = handle
                .join()
                .unwrap_or_else(|_| Err(BenchError::Worker("producer reader panicked".into())));
            if let Err(e) = joined {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
fn open_lane(
    plan: &ProducerPlan,
    layout: &TopicLayout,
    leader: i32,
    pools: &[(BatchShape, Vec<Bytes>)],
    shared: &Arc<Shared>,
    flags: &Arc<StopFlags>,
    read_timeout: Duration,
) -> Result<Lane> {
    let conn = Connection::connect(layout.broker_addr(leader)?, read_timeout)?;
    let version = conn.versions().pick(PRODUCE)?;
    let mut classes = Vec::with_capacity(pools.len());
    for (shape, pool) in pools {
        let frames = pool
            .iter()
            .map(|b| {
                ProduceFrame::new(
                    &layout.topic,
                    plan.acks,
                    plan.timeout_ms,
                    version,
                    b.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        classes.push(FrameClass {
            records: shape.records_per_batch as u64,
            payload_bytes: shape.payload_bytes(),
            frames,
        });
    }
    let (writer, reader, _) = conn.into_split()?;
    if plan.acks == 0 {
        // acks=0: Kafka sends no response at all, so there is nothing to read or time.
        return Ok(Lane {
            writer,
            classes,
            in_flight: None,
            reader: None,
        });
    }
    // The queue holds what is on the wire: its bound is the in-flight limit.
    let (tx, rx) = sync_channel(plan.max_in_flight);
    let recorder = shared.recorder(LatencyKind::Produce);
    let (shared, flags, core) = (shared.clone(), flags.clone(), plan.core);
    let handle = thread::Builder::new()
        .name(format!("producer-{}-acks", plan.index))
        .spawn(move || {
            CorePlan::pin_current(core);
            let r = read_acks(reader, rx, version, recorder, &shared);
            if r.is_err() {
                flags.request_stop();
            }
            r
        })
        .map_err(|e| BenchError::Worker(format!("spawning ack reader: {e}")))?;
    Ok(Lane {
        writer,
        classes,
        in_flight: Some(tx),
        reader: Some(handle),
    })
}

fn send_loop(
    plan: &ProducerPlan,
    lanes: &mut BTreeMap<i32, Lane>,
    shared: &Shared,
    flags: &StopFlags,
    clock: Clock,
) -> Result<()> {
    let spacing = plan.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let spacing_ns = spacing.map_or(0, |s| s.as_nanos() as u64);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut sends: usize = 0;
    while !flags.stopped() && plan.records_limit.is_none_or(|limit| sent < limit) {
        let partition = plan.partitions[sends % plan.partitions.len()];
        let lane = lanes.get_mut(&partition.leader).ok_or_else(|| {
            BenchError::Metadata(format!("no connection to leader {}", partition.leader))
        })?;
        let (class_index, first_intended) = match spacing {
            Some(s) => {
                let first = start + s.mul_f64(sent as f64);
                // Records whose intended send time has passed (the first one is due at `start`).
                let due = (start.elapsed().as_nanos() / s.as_nanos().max(1)) as u64 + 1;
                let class = lane.class_for(due.saturating_sub(sent));
                let records = lane.classes[class].records;
                wait_until(first + s.mul_f64(records.saturating_sub(1) as f64), flags);
                (class, first)
            }
            None => (0, Instant::now()),
        };
        let class = &mut lane.classes[class_index];
        let (records, payload_bytes) = (class.records, class.payload_bytes);
        let frame_index = sends % class.frames.len();
        let batch_bytes = class.frames[frame_index].batch_bytes() as u64;
        if let Some(tx) = &lane.in_flight {
            let entry = InFlight {
                correlation_id: lane.writer.peek_correlation_id(),
                first_intended,
                spacing_ns,
                records,
                payload_bytes,
                batch_bytes,
            };
            if spacing.is_none() {
                if tx.send(entry).is_err() {
                    break; // the reader failed; its error is reported when joined
                }
            } else {
                match tx.try_send(entry) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        // Paced and the window is full: wait a little, then size the batch again.
                        thread::sleep(WINDOW_POLL);
                        continue;
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
        let correlation_id = lane.writer.next_correlation_id();
        let stamp = Stamp {
            first_ns: clock.wall_ns(first_intended),
            spacing_ns,
        };
        let bytes = class.frames[frame_index].prepare(correlation_id, partition.partition, stamp);
        lane.writer.write_frame(bytes)?;
        shared
            .counters
            .sent_records
            .fetch_add(records, Ordering::Relaxed);
        if lane.in_flight.is_none() {
            let c = &shared.counters;
            c.acked_records.fetch_add(records, Ordering::Relaxed);
            c.acked_payload_bytes
                .fetch_add(payload_bytes, Ordering::Relaxed);
            c.acked_batch_bytes
                .fetch_add(batch_bytes, Ordering::Relaxed);
        }
        sent += records;
        sends += 1;
    }
    Ok(())
}

/// Sleeps, then spins, until `deadline` (or a stop).
fn wait_until(deadline: Instant, flags: &StopFlags) {
    loop {
        let now = Instant::now();
        if now >= deadline || flags.stopped() {
            return;
        }
        let left = deadline - now;
        if left > SPIN_BELOW {
            thread::sleep(left - SPIN_BELOW);
        } else {
            std::hint::spin_loop();
        }
    }
}

fn read_acks(
    mut reader: FrameReader,
    in_flight: Receiver<InFlight>,
    version: i16,
    recorder: Recorder,
    shared: &Shared,
) -> Result<()> {
    for entry in in_flight {
        let frame = reader.read_frame()?;
        let (correlation_id, response) = decode_response::<ProduceRequest>(frame, version)?;
        let acked_at = Instant::now();
        if correlation_id != entry.correlation_id {
            return Err(BenchError::Protocol(format!(
                "Produce response {correlation_id} arrived when {} was expected: responses out of order",
                entry.correlation_id
            )));
        }
        let result = outcome(&response);
        let c = &shared.counters;
        if result.errors > 0 {
            c.errors
                .fetch_add(u64::from(result.errors), Ordering::Relaxed);
            if first_error_is_fatal(result.first_error) {
                return Err(BenchError::broker(result.first_error, "Produce"));
            }
            continue;
        }
        let first_latency = acked_at
            .saturating_duration_since(entry.first_intended)
            .as_nanos() as u64;
        recorder.record_spaced(first_latency, entry.spacing_ns, entry.records);
        c.acked_records.fetch_add(entry.records, Ordering::Relaxed);
        c.acked_payload_bytes
            .fetch_add(entry.payload_bytes, Ordering::Relaxed);
        c.acked_batch_bytes
            .fetch_add(entry.batch_bytes, Ordering::Relaxed);
    }
    Ok(())
}

/// Errors no retry can fix: the run stops and says why.
fn first_error_is_fatal(code: i16) -> bool {
    matches!(code, 2 | 3 | 10 | 35 | 42 | 76 | 87)
}
