//! The io-properties file `tune iotune` writes into the data directory and the broker reads to size its
//! in-flight DMA writes ([`crate::ResolvedProfile::apply_io_properties`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TuneError;

/// File name of the io-properties file inside the data directory.
pub const IO_PROPERTIES_FILE_NAME: &str = "io-properties.toml";

/// 4 KiB random IOPS measured at one queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueueDepthIops {
    pub queue_depth: u32,
    pub iops: f64,
}

/// What `tune iotune` measured on one data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoProperties {
    /// The measured directory.
    pub data_dir: String,
    /// When, in seconds since the Unix epoch.
    pub measured_at_unix_s: u64,
    /// Size of the scratch file the measurements ran on.
    pub file_bytes: u64,
    /// Sequential O_DIRECT writes of 1 MiB, one at a time, into a preallocated file.
    pub seq_write_mib_per_s: f64,
    /// Sequential O_DIRECT reads of 1 MiB, one at a time.
    pub seq_read_mib_per_s: f64,
    /// 4 KiB O_DIRECT random writes per queue depth.
    pub rand_write_4k: Vec<QueueDepthIops>,
    /// 4 KiB O_DIRECT random reads per queue depth.
    pub rand_read_4k: Vec<QueueDepthIops>,
    /// fdatasync after a 4 KiB write: median and 99th percentile.
    pub fdatasync_latency_us_p50: u64,
    pub fdatasync_latency_us_p99: u64,
    /// The smallest measured queue depth reaching 90% of the best random-write IOPS: more writes in flight
    /// than this add memory, not throughput.
    pub recommended_dma_writes_in_flight: u32,
}

impl IoProperties {
    /// `<data_dir>/io-properties.toml`.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join(IO_PROPERTIES_FILE_NAME)
    }

    /// Reads an io-properties file.
    pub fn load(path: &Path) -> Result<IoProperties, TuneError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TuneError::io(format!("read {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| {
            TuneError::Invalid(format!(
                "{} is not an io-properties file: {e}; fix: rerun `ringbroker tune iotune`",
                path.display()
            ))
        })
    }

    /// Writes the file (TOML, with a header comment).
    pub fn write(&self, path: &Path) -> Result<(), TuneError> {
        let body = toml::to_string(self)
            .map_err(|e| TuneError::Invalid(format!("cannot encode io properties: {e}")))?;
        let text = format!("# Written by `ringbroker tune iotune`; the broker reads it to size in-flight DMA writes.\n{body}");
        std::fs::write(path, text)
            .map_err(|e| TuneError::io(format!("write {}", path.display()), e))
    }
}

/// The smallest queue depth whose IOPS reach `RECOMMEND_FRACTION` of the best measured.
pub fn recommended_queue_depth(points: &[QueueDepthIops]) -> u32 {
    /// Share of the best IOPS that counts as saturated.
    const RECOMMEND_FRACTION: f64 = 0.9;
    let best = points.iter().map(|p| p.iops).fold(0.0, f64::max);
    points
        .iter()
        .filter(|p| p.iops >= RECOMMEND_FRACTION * best)
        .map(|p| p.queue_depth)
        .min()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IoProperties {
        IoProperties {
            data_dir: "/data".into(),
            measured_at_unix_s: 1,
            file_bytes: 1 << 20,
            seq_write_mib_per_s: 1200.5,
            seq_read_mib_per_s: 1500.0,
            rand_write_4k: vec![
                QueueDepthIops {
                    queue_depth: 1,
                    iops: 5000.0,
                },
                QueueDepthIops {
                    queue_depth: 16,
                    iops: 80000.0,
                },
            ],
            rand_read_4k: vec![QueueDepthIops {
                queue_depth: 1,
                iops: 7000.0,
            }],
            fdatasync_latency_us_p50: 300,
            fdatasync_latency_us_p99: 900,
            recommended_dma_writes_in_flight: 16,
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = IoProperties::default_path(dir.path());
        sample().write(&path).unwrap();
        assert_eq!(IoProperties::load(&path).unwrap(), sample());
    }

    #[test]
    fn recommends_the_knee() {
        let points = |v: &[(u32, f64)]| {
            v.iter()
                .map(|&(queue_depth, iops)| QueueDepthIops { queue_depth, iops })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            recommended_queue_depth(&points(&[(1, 10.0), (4, 95.0), (16, 100.0), (32, 99.0)])),
            4
        );
        assert_eq!(
            recommended_queue_depth(&points(&[(1, 10.0), (4, 50.0), (16, 100.0)])),
            16
        );
        assert_eq!(recommended_queue_depth(&[]), 1);
    }

    #[test]
    fn resolved_profile_takes_the_measured_depth_unless_set() {
        let machine = crate::Machine {
            online_cores: vec![0],
            usable_cores: vec![0],
            memlock_limit_bytes: None,
            nofile_limit: None,
        };
        let mut resolved = crate::Profile::builtin_default()
            .resolve_for(&machine)
            .unwrap();
        resolved.apply_io_properties(&sample());
        assert_eq!(resolved.dma_writes_in_flight_per_partition, 16);
        assert_eq!(
            resolved.source(crate::Key::DmaWritesInFlightPerPartition),
            crate::Provenance::Iotune
        );

        let mut profile = crate::Profile::builtin_default();
        profile
            .set_from_flag("dma_writes_in_flight_per_partition", "2")
            .unwrap();
        let mut resolved = profile.resolve_for(&machine).unwrap();
        resolved.apply_io_properties(&sample());
        assert_eq!(resolved.dma_writes_in_flight_per_partition, 2);
    }
}
