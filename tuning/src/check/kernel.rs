//! Kernel-wide checks: io_uring, locked memory, transparent huge pages, swappiness, irqbalance, and the
//! network limits (listen backlog, socket buffer maxima).

use super::{CheckLine, Fix, FixAction};
use crate::profile::value::human_bytes;
use crate::profile::ResolvedProfile;
use crate::sysfs;

/// glommio 0.9 needs io_uring features of Linux 5.8.
pub const KERNEL_MIN: (u32, u32) = (5, 8);
/// Swappiness at or below this keeps the kernel from swapping a shard's memory while page cache is there.
pub const SWAPPINESS_MAX_OK: u64 = 10;
/// The value `tune apply` sets for vm.swappiness.
pub const SWAPPINESS_RECOMMENDED: u64 = 1;
/// Listen backlog below this drops SYNs when hundreds of clients (or the bench) connect at once.
pub const SOMAXCONN_MIN: u64 = 4096;

pub fn io_uring() -> CheckLine {
    const WHY: &str = "glommio does every disk and network I/O through io_uring; without it the broker cannot start";
    let release =
        sysfs::read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_string());
    let disabled = sysfs::read_u64("/proc/sys/kernel/io_uring_disabled");
    let setup = io_uring::IoUring::new(4).map(drop);
    let value = format!(
        "kernel {release}, io_uring_disabled = {}, io_uring_setup: {}",
        disabled.map_or_else(|| "absent".to_string(), |d| d.to_string()),
        match &setup {
            Ok(()) => "ok".to_string(),
            Err(err) => err.to_string(),
        }
    );
    if disabled == Some(2) {
        return CheckLine::fail(
            "io_uring",
            value,
            WHY,
            Fix::sysctl("kernel.io_uring_disabled", 0),
        );
    }
    match setup {
        Ok(()) if kernel_at_least(&release, KERNEL_MIN) => CheckLine::ok("io_uring", value, WHY),
        Ok(()) => CheckLine::warn("io_uring", value, WHY, Fix::manual("upgrade to Linux 5.8 or newer")),
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
            CheckLine::fail("io_uring", value, WHY, Fix::manual("upgrade to a Linux kernel >= 5.8 built with io_uring"))
        }
        Err(_) if disabled == Some(1) => CheckLine::fail("io_uring", value, WHY, Fix::sysctl("kernel.io_uring_disabled", 0)),
        Err(_) => CheckLine::fail(
            "io_uring",
            value,
            WHY,
            Fix::manual("allow io_uring_setup: in a container run with --security-opt seccomp=unconfined (or a seccomp profile allowing io_uring_*)"),
        ),
    }
}

fn kernel_at_least(release: &str, (major_min, minor_min): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) >= (major_min, minor_min),
        _ => true,
    }
}

pub fn memlock(profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "glommio registers 3 x io_memory_bytes per shard as locked memory; past the limit I/O falls back to slower unregistered buffers";
    let limit = crate::machine::memlock_limit_bytes().ok().flatten();
    let limit_text = limit.map_or_else(|| "unlimited".to_string(), human_bytes);
    let Some(profile) = profile else {
        return CheckLine::warn(
            "locked memory",
            format!("RLIMIT_MEMLOCK {limit_text}; profile did not resolve"),
            WHY,
            Fix::manual("fix the profile first"),
        );
    };
    let needed = profile.locked_memory_needed_bytes();
    let value = format!(
        "RLIMIT_MEMLOCK {limit_text}, profile needs {} (3 x {} x {} shards)",
        human_bytes(needed),
        human_bytes(profile.io_memory_bytes),
        profile.shard_count()
    );
    match limit {
        Some(limit) if needed > limit => CheckLine::fail(
            "locked memory",
            value,
            WHY,
            Fix::manual(format!(
                "ulimit -l {} (or LimitMEMLOCK=infinity in the systemd unit, memlock in /etc/security/limits.conf, docker --ulimit memlock=-1), or lower io_memory_bytes",
                needed.div_ceil(1024)
            )),
        ),
        _ => CheckLine::ok("locked memory", value, WHY),
    }
}

pub fn transparent_huge_pages() -> CheckLine {
    const WHY: &str = "the tail cache and DMA buffers are large and long-lived: huge pages cut TLB misses on every shard";
    const PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    let Some(choices) = sysfs::read_trimmed(PATH) else {
        return CheckLine::ok("transparent huge pages", "not exposed", WHY);
    };
    match sysfs::selected(&choices) {
        Some("never") => CheckLine::warn(
            "transparent huge pages",
            choices.clone(),
            WHY,
            Fix::sysfs(&[PATH.into()], "madvise"),
        ),
        _ => CheckLine::ok("transparent huge pages", choices, WHY),
    }
}

pub fn swappiness() -> CheckLine {
    const WHY: &str = "a swapped-out page stalls the shard that touches it, and with it every partition on that core";
    match sysfs::read_u64("/proc/sys/vm/swappiness") {
        None => CheckLine::ok("vm.swappiness", "not exposed", WHY),
        Some(value) if value <= SWAPPINESS_MAX_OK => {
            CheckLine::ok("vm.swappiness", value.to_string(), WHY)
        }
        Some(value) => CheckLine::warn(
            "vm.swappiness",
            format!("{value} (want <= {SWAPPINESS_MAX_OK})"),
            WHY,
            Fix::sysctl("vm.swappiness", SWAPPINESS_RECOMMENDED),
        ),
    }
}

pub fn irqbalance(profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "irqbalance moves NIC and NVMe interrupts onto any core, including pinned shard cores, adding jitter";
    let running = process_running("irqbalance");
    let pinned = profile.is_some_and(|p| p.pin_executors);
    match (running, pinned) {
        (false, _) => CheckLine::ok("irqbalance", "not running", WHY),
        (true, false) => CheckLine::ok("irqbalance", "running (shards are not pinned, so it does no harm)", WHY),
        (true, true) => CheckLine::warn(
            "irqbalance",
            "running while shards are pinned",
            WHY,
            Fix {
                command: "systemctl stop irqbalance; then steer IRQs to non-shard cores (echo CPULIST > /proc/irq/N/smp_affinity_list)".to_string(),
                actions: vec![FixAction::Run { program: "systemctl".to_string(), args: vec!["stop".to_string(), "irqbalance".to_string()] }],
            },
        ),
    }
}

/// Whether a process with this `comm` exists.
fn process_running(comm: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
        is_pid && sysfs::read_trimmed(entry.path().join("comm")).as_deref() == Some(comm)
    })
}

pub fn somaxconn() -> CheckLine {
    const WHY: &str = "the listen backlog: when many clients connect at once, a short one drops SYNs and clients wait a second to retry";
    match sysfs::read_u64("/proc/sys/net/core/somaxconn") {
        None => CheckLine::ok("net.core.somaxconn", "not exposed", WHY),
        Some(value) if value >= SOMAXCONN_MIN => {
            CheckLine::ok("net.core.somaxconn", value.to_string(), WHY)
        }
        Some(value) => CheckLine::warn(
            "net.core.somaxconn",
            format!("{value} (want >= {SOMAXCONN_MIN})"),
            WHY,
            Fix::sysctl("net.core.somaxconn", SOMAXCONN_MIN),
        ),
    }
}

/// `net.core.rmem_max` / `wmem_max` against the profile's explicit socket buffer size.
pub fn socket_buffer_max(sysctl: &'static str, wanted: Option<u64>) -> CheckLine {
    const WHY: &str = "the kernel silently caps SO_RCVBUF/SO_SNDBUF at these maxima, so larger profile values would not take effect";
    let path = std::path::Path::new("/proc/sys").join(sysctl.replace('.', "/"));
    let Some(max) = sysfs::read_u64(&path) else {
        return CheckLine::ok(sysctl, "not exposed", WHY);
    };
    match wanted {
        Some(wanted) if wanted > max => CheckLine::warn(
            sysctl,
            format!("{max}, below the profile's socket buffer {wanted}"),
            WHY,
            Fix::sysctl(sysctl, wanted),
        ),
        Some(0) => CheckLine::ok(
            sysctl,
            format!("{max} (profile uses kernel autotuning)"),
            WHY,
        ),
        _ => CheckLine::ok(sysctl, max.to_string(), WHY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare() {
        assert!(kernel_at_least("6.18.44-fc-v669", KERNEL_MIN));
        assert!(kernel_at_least("5.8.0", KERNEL_MIN));
        assert!(!kernel_at_least("5.4.0-150-generic", KERNEL_MIN));
        assert!(kernel_at_least("weird", KERNEL_MIN));
    }

    #[test]
    fn finds_this_process_by_comm() {
        let comm = sysfs::read_trimmed("/proc/self/comm").unwrap();
        assert!(process_running(&comm));
        assert!(!process_running("no-such-process-name"));
    }
}
