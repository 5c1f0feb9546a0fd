//! One measurement job on io_uring: keeps `queue_depth` O_DIRECT reads or writes in flight on a file for a
//! time budget and counts what completed. A single thread drives the ring, like fio's io_uring engine, so
//! queue depth means device queue depth rather than thread count.

use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

use super::buffer::AlignedBuf;
use crate::error::TuneError;

/// Largest queue depth a job may ask for; iotune measures up to 32.
pub const QUEUE_DEPTH_MAX: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Block after block, wrapping at the end of the file.
    Sequential,
    /// Uniformly random block-aligned offsets (xorshift, fixed seed: runs are comparable).
    Random,
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub direction: Direction,
    pub pattern: Pattern,
    pub block_bytes: usize,
    pub queue_depth: u32,
    /// The file's size; offsets stay below it.
    pub file_bytes: u64,
    /// Keep issuing I/O until this much time has passed...
    pub duration: Duration,
    /// ...and at least this many bytes completed (used to write the whole file once before reading it).
    pub min_bytes: u64,
}

/// What completed.
#[derive(Debug, Clone, Copy)]
pub struct JobResult {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl JobResult {
    pub fn iops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Runs `job` on `fd` (opened with O_DIRECT).
pub fn run(fd: i32, job: Job) -> Result<JobResult, TuneError> {
    let blocks = job.file_bytes / job.block_bytes as u64;
    if blocks == 0 || job.queue_depth == 0 || job.queue_depth > QUEUE_DEPTH_MAX {
        return Err(TuneError::Invalid(format!(
            "iotune job needs a file of at least one {} byte block and a queue depth in 1..={QUEUE_DEPTH_MAX}",
            job.block_bytes
        )));
    }
    let mut ring = IoUring::new(job.queue_depth.next_power_of_two().max(2))
        .map_err(|e| TuneError::io("create an io_uring (see `ringbroker tune check`)", e))?;
    let mut buffers: Vec<AlignedBuf> = (0..job.queue_depth)
        .map(|_| AlignedBuf::new(job.block_bytes))
        .collect();
    let mut offsets = Offsets::new(job.pattern, blocks, job.block_bytes as u64);

    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    let (mut ops, mut bytes, mut in_flight) = (0u64, 0u64, 0u32);
    let mut failure: Option<TuneError> = None;
    for (slot, buffer) in buffers.iter_mut().enumerate() {
        push(&mut ring, fd, job.direction, buffer, slot, offsets.next());
        in_flight += 1;
    }
    while in_flight > 0 {
        if let Err(err) = ring.submit_and_wait(1) {
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // The kernel may still own the buffers: leak them rather than free memory it could write to.
            std::mem::forget(buffers);
            return Err(TuneError::io("wait for io_uring completions", err));
        }
        let completed: Vec<(usize, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data() as usize, cqe.result()))
            .collect();
        for (slot, result) in completed {
            in_flight -= 1;
            match usize::try_from(result) {
                Ok(n) if n == job.block_bytes => {
                    ops += 1;
                    bytes += n as u64;
                    elapsed = start.elapsed();
                }
                Ok(n) => {
                    failure = failure.or(Some(TuneError::Invalid(format!(
                        "short {:?}: {n} of {} bytes",
                        job.direction, job.block_bytes
                    ))))
                }
                Err(_) => {
                    let err = std::io::Error::from_raw_os_error(-result);
                    failure = failure.or(Some(TuneError::io(
                        format!("O_DIRECT {:?} via io_uring", job.direction),
                        err,
                    )));
                }
            }
            let more = elapsed < job.duration || bytes < job.min_bytes;
            if failure.is_none() && more {
                push(
                    &mut ring,
                    fd,
                    job.direction,
                    &mut buffers[slot],
                    slot,
                    offsets.next(),
                );
                in_flight += 1;
            }
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(JobResult {
            ops,
            bytes,
            elapsed,
        }),
    }
}

fn push(
    ring: &mut IoUring,
    fd: i32,
    direction: Direction,
    buffer: &mut AlignedBuf,
    slot: usize,
    offset: u64,
) {
    let len = buffer.len() as u32;
    let entry = match direction {
        Direction::Write => opcode::Write::new(types::Fd(fd), buffer.as_ptr(), len)
            .offset(offset)
            .build(),
        Direction::Read => opcode::Read::new(types::Fd(fd), buffer.as_mut_ptr(), len)
            .offset(offset)
            .build(),
    };
    // SAFETY: the buffer stays alive and untouched until its completion is reaped: `run` only reuses a slot's
    // buffer after its completion, and returns only when nothing is in flight (or leaks the buffers).
    // The ring has at least queue_depth entries and never more than queue_depth are pushed unsubmitted.
    let pushed = unsafe { ring.submission().push(&entry.user_data(slot as u64)) };
    assert!(
        pushed.is_ok(),
        "submission queue sized for queue_depth cannot be full"
    );
}

/// Block-aligned offsets, sequential or random.
struct Offsets {
    pattern: Pattern,
    blocks: u64,
    block_bytes: u64,
    next_block: u64,
    rng: u64,
}

impl Offsets {
    fn new(pattern: Pattern, blocks: u64, block_bytes: u64) -> Offsets {
        debug_assert!(blocks > 0);
        Offsets {
            pattern,
            blocks,
            block_bytes,
            next_block: 0,
            rng: 0x2545_F491_4F6C_DD1D,
        }
    }

    fn next(&mut self) -> u64 {
        let block = match self.pattern {
            Pattern::Sequential => {
                let block = self.next_block;
                self.next_block = (self.next_block + 1) % self.blocks;
                block
            }
            Pattern::Random => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng % self.blocks
            }
        };
        block * self.block_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_in_the_file_and_aligned() {
        let mut sequential = Offsets::new(Pattern::Sequential, 3, 4096);
        let seen: Vec<u64> = (0..4).map(|_| sequential.next()).collect();
        assert_eq!(seen, vec![0, 4096, 8192, 0]);
        let mut random = Offsets::new(Pattern::Random, 10, 4096);
        for _ in 0..1000 {
            let offset = random.next();
            assert!(offset < 10 * 4096 && offset.is_multiple_of(4096));
        }
    }

    #[test]
    fn writes_then_reads_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let file =
            super::super::scratch::ScratchFile::create(dir.path(), "uring-test", 1 << 20).unwrap();
        let job = Job {
            direction: Direction::Write,
            pattern: Pattern::Sequential,
            block_bytes: 64 << 10,
            queue_depth: 4,
            file_bytes: 1 << 20,
            duration: Duration::ZERO,
            min_bytes: 1 << 20,
        };
        let written = run(file.fd(), job).unwrap();
        assert!(written.bytes >= 1 << 20);
        let read = run(
            file.fd(),
            Job {
                direction: Direction::Read,
                pattern: Pattern::Random,
                block_bytes: 4096,
                ..job
            },
        )
        .unwrap();
        assert!(read.ops >= 256 && read.iops() > 0.0);
    }
}
