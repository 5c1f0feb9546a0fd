//! `ringbroker tune iotune`: measures a data directory with O_DIRECT I/O on io_uring and writes
//! `io-properties.toml` there for the broker.
//!
//! Steps, in order (defaults take about 25 s): sequential 1 MiB writes over a preallocated file (at least one
//! full pass, so later reads hit written blocks), sequential 1 MiB reads, 4 KiB random writes and reads at
//! each queue depth, and fdatasync latency after 4 KiB appends into a fresh preallocated file (the log's own
//! pattern: preallocated segment, append, flush).

pub(crate) mod buffer;
mod properties;
pub(crate) mod scratch;
mod uring;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use properties::{
    recommended_queue_depth, IoProperties, QueueDepthIops, IO_PROPERTIES_FILE_NAME,
};

use crate::error::TuneError;
use buffer::AlignedBuf;
use scratch::ScratchFile;
use uring::{Direction, Job, Pattern};

/// Scratch file size by default: large enough that a device's write cache does not hold all of it.
pub const DEFAULT_FILE_BYTES: u64 = 1 << 30;
/// The smallest scratch file iotune accepts.
pub const FILE_BYTES_MIN: u64 = 1 << 20;
/// iotune never takes more than this share of the free space (1/N).
pub const FREE_SPACE_DIVISOR: u64 = 4;
/// Sequential block size, as the log writes when a partition is busy.
pub const SEQ_BLOCK_BYTES: usize = 1 << 20;
/// Random block size: one page, the smallest O_DIRECT write the log issues.
pub const RANDOM_BLOCK_BYTES: usize = 4096;
/// Queue depths measured by default.
pub const DEFAULT_QUEUE_DEPTHS: [u32; 4] = [1, 4, 16, 32];
/// Upper bound on fdatasync samples (the time budget usually ends first).
pub const FDATASYNC_SAMPLES_MAX: usize = 5000;
/// Size of the fresh file the fdatasync samples append into.
pub const FDATASYNC_FILE_BYTES: u64 = 64 << 20;

/// What to measure and for how long.
#[derive(Debug, Clone)]
pub struct IotuneConfig {
    pub data_dir: PathBuf,
    pub file_bytes: u64,
    /// Time for each of the sequential write and read steps.
    pub seq_duration: Duration,
    /// Time for each random step (one per queue depth and direction).
    pub random_duration: Duration,
    pub queue_depths: Vec<u32>,
    pub fdatasync_duration: Duration,
}

impl IotuneConfig {
    /// The full measurement (about 25 s).
    pub fn new(data_dir: &Path) -> IotuneConfig {
        IotuneConfig {
            data_dir: data_dir.to_path_buf(),
            file_bytes: DEFAULT_FILE_BYTES,
            seq_duration: Duration::from_secs(3),
            random_duration: Duration::from_secs(2),
            queue_depths: DEFAULT_QUEUE_DEPTHS.to_vec(),
            fdatasync_duration: Duration::from_secs(2),
        }
    }

    /// A run of well under a second on a small file, for tests and smoke checks. Figures are noisy.
    pub fn quick(data_dir: &Path) -> IotuneConfig {
        IotuneConfig {
            file_bytes: 8 << 20,
            seq_duration: Duration::from_millis(50),
            random_duration: Duration::from_millis(40),
            fdatasync_duration: Duration::from_millis(100),
            ..IotuneConfig::new(data_dir)
        }
    }
}

/// Runs every step; `progress` receives one line per finished step.
pub fn run(
    config: &IotuneConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<IoProperties, TuneError> {
    let file_bytes = fit_file_bytes(&config.data_dir, config.file_bytes)?;
    let file = ScratchFile::create(&config.data_dir, "iotune", file_bytes)?;
    let seq = |direction, min_bytes| Job {
        direction,
        pattern: Pattern::Sequential,
        block_bytes: SEQ_BLOCK_BYTES,
        queue_depth: 1,
        file_bytes,
        duration: config.seq_duration,
        min_bytes,
    };
    let write = uring::run(file.fd(), seq(Direction::Write, file_bytes))?;
    progress(&format!(
        "sequential write 1 MiB qd1: {:.0} MiB/s",
        write.mib_per_s()
    ));
    let read = uring::run(file.fd(), seq(Direction::Read, 0))?;
    progress(&format!(
        "sequential read 1 MiB qd1: {:.0} MiB/s",
        read.mib_per_s()
    ));

    let mut rand_write_4k = Vec::new();
    let mut rand_read_4k = Vec::new();
    for &queue_depth in &config.queue_depths {
        for (direction, out) in [
            (Direction::Write, &mut rand_write_4k),
            (Direction::Read, &mut rand_read_4k),
        ] {
            let job = Job {
                direction,
                pattern: Pattern::Random,
                block_bytes: RANDOM_BLOCK_BYTES,
                queue_depth,
                file_bytes,
                duration: config.random_duration,
                min_bytes: 0,
            };
            let result = uring::run(file.fd(), job)?;
            progress(&format!(
                "random {direction:?} 4 KiB qd{queue_depth}: {:.0} IOPS",
                result.iops()
            ));
            out.push(QueueDepthIops {
                queue_depth,
                iops: result.iops(),
            });
        }
    }
    drop(file);

    let (p50, p99) = fdatasync_latency_us(
        &config.data_dir,
        file_bytes.min(FDATASYNC_FILE_BYTES),
        config.fdatasync_duration,
    )?;
    progress(&format!(
        "fdatasync after 4 KiB append: p50 {p50} us, p99 {p99} us"
    ));
    Ok(IoProperties {
        data_dir: config.data_dir.display().to_string(),
        measured_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        file_bytes,
        seq_write_mib_per_s: round1(write.mib_per_s()),
        seq_read_mib_per_s: round1(read.mib_per_s()),
        recommended_dma_writes_in_flight: recommended_queue_depth(&rand_write_4k),
        rand_write_4k,
        rand_read_4k,
        fdatasync_latency_us_p50: p50,
        fdatasync_latency_us_p99: p99,
    })
}

/// Shrinks the scratch file to a share of the free space, aligned to 1 MiB.
fn fit_file_bytes(dir: &Path, wanted: u64) -> Result<u64, TuneError> {
    let free = free_bytes(dir)?;
    let bytes =
        wanted.min(free / FREE_SPACE_DIVISOR) / SEQ_BLOCK_BYTES as u64 * SEQ_BLOCK_BYTES as u64;
    if bytes < FILE_BYTES_MIN {
        return Err(TuneError::Invalid(format!(
            "{} has only {free} bytes free; iotune needs {} (fix: free space or pick another --data-dir)",
            dir.display(),
            FILE_BYTES_MIN * FREE_SPACE_DIVISOR
        )));
    }
    Ok(bytes)
}

fn free_bytes(dir: &Path) -> Result<u64, TuneError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| TuneError::Invalid(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: statvfs is plain data; zeroed is a valid value to be overwritten.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and stat is a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(TuneError::io(
            format!("statvfs {}", dir.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Appends 4 KiB pages into a fresh preallocated file, timing the fdatasync after each.
fn fdatasync_latency_us(
    dir: &Path,
    file_bytes: u64,
    duration: Duration,
) -> Result<(u64, u64), TuneError> {
    let file = ScratchFile::create(dir, "iotune-sync", file_bytes)?;
    let buffer = AlignedBuf::new(RANDOM_BLOCK_BYTES);

    let pages = (file_bytes / RANDOM_BLOCK_BYTES as u64) as usize;
    let mut samples_us = Vec::with_capacity(FDATASYNC_SAMPLES_MAX.min(pages));
    let start = Instant::now();
    while samples_us.len() < FDATASYNC_SAMPLES_MAX.min(pages)
        && (samples_us.is_empty() || start.elapsed() < duration)
    {
        let offset = (samples_us.len() * RANDOM_BLOCK_BYTES) as u64;
        file.file()
            .write_all_at(buffer.as_slice(), offset)
            .map_err(|e| {
                TuneError::io(format!("O_DIRECT write to {}", file.path().display()), e)
            })?;
        let before = Instant::now();
        // SAFETY: fdatasync on an open fd.
        if unsafe { libc::fdatasync(file.fd()) } != 0 {
            return Err(TuneError::io("fdatasync", std::io::Error::last_os_error()));
        }
        samples_us.push(before.elapsed().as_micros() as u64);
    }
    samples_us.sort_unstable();
    Ok((percentile(&samples_us, 0.50), percentile(&samples_us, 0.99)))
}

/// The nearest-rank percentile of sorted samples (0 for none).
fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), 50);
        assert_eq!(percentile(&samples, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn quick_run_measures_a_temp_dir_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let properties = run(&IotuneConfig::quick(dir.path()), &mut |line| {
            lines.push(line.to_string())
        })
        .unwrap();

        assert!(properties.seq_write_mib_per_s > 0.0 && properties.seq_read_mib_per_s > 0.0);
        assert_eq!(properties.rand_write_4k.len(), DEFAULT_QUEUE_DEPTHS.len());
        assert!(properties.rand_read_4k.iter().all(|p| p.iops > 0.0));
        assert!(properties.fdatasync_latency_us_p50 <= properties.fdatasync_latency_us_p99);
        assert!(DEFAULT_QUEUE_DEPTHS.contains(&properties.recommended_dma_writes_in_flight));
        assert_eq!(lines.len(), 3 + 2 * DEFAULT_QUEUE_DEPTHS.len());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "scratch files are removed"
        );
    }
}
