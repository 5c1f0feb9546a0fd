//! Data-directory checks: O_DIRECT support, and the block device under it (logical block size, scheduler).

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{CheckLine, Fix};
use crate::iotune::buffer::AlignedBuf;
use crate::iotune::scratch::ScratchFile;
use crate::iotune::IoProperties;
use crate::profile::DMA_ALIGN_BYTES;
use crate::sysfs;

/// Schedulers that add no reordering latency for a log that already writes sequentially and in batches.
pub const GOOD_SCHEDULERS: [&str; 2] = ["none", "mq-deadline"];

/// The directory itself, or its nearest existing ancestor when it is not created yet.
pub fn existing_ancestor(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .find(|p| p.is_dir())
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

pub fn o_direct(dir: &Path) -> CheckLine {
    const WHY: &str = "the log writes segments with O_DIRECT (DMA, no page cache); without it the broker cannot store data";
    let probe = ScratchFile::create(dir, "check", 0).and_then(|file| {
        let buffer = AlignedBuf::new(DMA_ALIGN_BYTES as usize);

        file.file()
            .write_all_at(buffer.as_slice(), 0)
            .map_err(|e| crate::TuneError::io("write 4 KiB aligned with O_DIRECT", e))
    });
    match probe {
        Ok(()) => CheckLine::ok("o_direct", format!("4 KiB aligned O_DIRECT write in {} works", dir.display()), WHY),
        Err(err) => CheckLine::fail(
            "o_direct",
            format!("{}: {err}", dir.display()),
            WHY,
            Fix::manual("put --data-dir on ext4 or xfs on a local disk (tmpfs before Linux 6.6, overlayfs on some kernels and many FUSE filesystems refuse O_DIRECT)"),
        ),
    }
}

/// Whether iotune has measured this data directory (the broker then sizes in-flight writes from it).
pub fn io_properties(data_dir: &Path) -> CheckLine {
    const WHY: &str =
        "iotune's measurement sizes in-flight DMA writes to the device instead of a guess";
    let path = IoProperties::default_path(data_dir);
    let fix = Fix::manual(format!(
        "ringbroker tune iotune --data-dir {}",
        data_dir.display()
    ));
    if !path.exists() {
        return CheckLine::warn(
            "io properties",
            format!("{} not found", path.display()),
            WHY,
            fix,
        );
    }
    match IoProperties::load(&path) {
        Ok(p) => CheckLine::ok(
            "io properties",
            format!(
                "seq write {:.0} MiB/s, seq read {:.0} MiB/s, fdatasync p99 {} us, writes in flight {}",
                p.seq_write_mib_per_s, p.seq_read_mib_per_s, p.fdatasync_latency_us_p99, p.recommended_dma_writes_in_flight
            ),
            WHY,
        ),
        Err(err) => CheckLine::warn("io properties", err.to_string(), WHY, fix),
    }
}

/// The whole-disk sysfs directory (…/block/vda) of the device holding `dir`, if it is a block device.
fn disk_sysfs_dir(dir: &Path) -> Option<PathBuf> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let by_dev = |dev: u64| {
        let link = PathBuf::from(format!(
            "/sys/dev/block/{}:{}",
            libc::major(dev),
            libc::minor(dev)
        ));
        std::fs::canonicalize(link).ok()
    };
    let device_dir = by_dev(dev).or_else(|| by_dev(mount_source_rdev(dir)?))?;
    // A partition's directory (…/vda/vda1) has a `partition` file and no queue/: its parent is the disk.
    if device_dir.join("partition").exists() {
        return device_dir.parent().map(Path::to_path_buf);
    }
    Some(device_dir)
}

/// For filesystems whose st_dev is anonymous (btrfs, some overlays): the device named as the mount's source.
fn mount_source_rdev(dir: &Path) -> Option<u64> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (_, source) = mountinfo
        .lines()
        .filter_map(|line| {
            let mount_point = line.split(' ').nth(4)?;
            let source = line.split(" - ").nth(1)?.split(' ').nth(1)?;
            dir.starts_with(mount_point)
                .then(|| (mount_point.len(), source.to_string()))
        })
        .max_by_key(|(len, _)| *len)?;
    source
        .starts_with("/dev/")
        .then(|| std::fs::metadata(&source).ok().map(|m| m.rdev()))?
}

/// Logical block size and scheduler lines for the data dir's disk.
pub fn block_device(dir: &Path) -> Vec<CheckLine> {
    const WHY_BLOCK: &str =
        "DMA writes are 4 KiB aligned; a larger logical block size makes them fail with EINVAL";
    const WHY_SCHED: &str =
        "the log already batches and orders its writes; a reordering scheduler only adds latency";
    let Some(disk) = disk_sysfs_dir(dir) else {
        let value = format!(
            "{} is not on a local block device (overlay, tmpfs or network filesystem)",
            dir.display()
        );
        let fix = Fix::manual("for benchmarks, put --data-dir on a local ext4/xfs disk");
        return vec![
            CheckLine::warn("logical block size", value.clone(), WHY_BLOCK, fix.clone()),
            CheckLine::warn("disk scheduler", value, WHY_SCHED, fix),
        ];
    };
    let name = disk
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let queue = disk.join("queue");
    let mut lines = Vec::new();
    match sysfs::read_u64(queue.join("logical_block_size")) {
        Some(size) if size <= DMA_ALIGN_BYTES => {
            let physical = sysfs::read_u64(queue.join("physical_block_size")).unwrap_or(size);
            lines.push(CheckLine::ok(
                "logical block size",
                format!("{size} bytes on {name} (physical {physical})"),
                WHY_BLOCK,
            ));
        }
        Some(size) => lines.push(CheckLine::fail(
            "logical block size",
            format!("{size} bytes on {name}"),
            WHY_BLOCK,
            Fix::manual("use a device formatted with 512 B or 4 KiB logical blocks"),
        )),
        None => lines.push(CheckLine::ok(
            "logical block size",
            format!("not exposed for {name}"),
            WHY_BLOCK,
        )),
    }
    let scheduler_path = queue.join("scheduler");
    let rotational = sysfs::read_u64(queue.join("rotational")) == Some(1);
    match sysfs::read_trimmed(&scheduler_path) {
        Some(choices) => {
            let active = sysfs::selected(&choices)
                .unwrap_or(choices.as_str())
                .to_string();
            let value = format!(
                "{choices} on {name}{}",
                if rotational { " (rotational disk)" } else { "" }
            );
            if GOOD_SCHEDULERS.contains(&active.as_str()) {
                lines.push(CheckLine::ok("disk scheduler", value, WHY_SCHED));
            } else {
                let want = if choices.contains("none") {
                    "none"
                } else {
                    "mq-deadline"
                };
                lines.push(CheckLine::warn(
                    "disk scheduler",
                    value,
                    WHY_SCHED,
                    Fix::sysfs(std::slice::from_ref(&scheduler_path), want),
                ));
            }
        }
        None => lines.push(CheckLine::ok(
            "disk scheduler",
            format!("not exposed for {name}"),
            WHY_SCHED,
        )),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor_of_a_missing_dir_exists() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/c");
        assert_eq!(existing_ancestor(&missing), dir.path());
    }

    #[test]
    fn o_direct_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let line = o_direct(dir.path());
        assert!(line.fix.is_some() || line.status == super::super::Status::Ok);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
