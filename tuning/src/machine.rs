//! The machine facts a profile is resolved against: which cores this process may run on, the
//! locked-memory limit (RLIMIT_MEMLOCK) that bounds glommio's registered io memory, and the file
//! descriptor limit (RLIMIT_NOFILE) that bounds connections.

use crate::error::ProfileError;
use crate::sysfs;

/// Where Linux lists the online CPUs.
const ONLINE_CPUS_PATH: &str = "/sys/devices/system/cpu/online";

/// What [`crate::Profile::resolve`] needs to know about the machine. Tests build one by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPUs online in the kernel.
    pub online_cores: Vec<usize>,
    /// CPUs this process may run on (its affinity mask: taskset, cgroup cpuset); a subset of `online_cores`.
    /// Pinning to any other core fails, so profiles are checked against this list.
    pub usable_cores: Vec<usize>,
    /// The soft RLIMIT_MEMLOCK in bytes; `None` means unlimited.
    pub memlock_limit_bytes: Option<u64>,
    /// The hard RLIMIT_NOFILE: the broker raises its soft limit to it at start
    /// (`engine::server::fd_limit`), so it bounds the connections it can hold. `None`: unlimited.
    pub nofile_limit: Option<u64>,
}

impl Machine {
    /// Reads the facts of the machine this process runs on.
    pub fn detect() -> Result<Machine, ProfileError> {
        let usable_cores = affinity_cores()?;
        let online_cores = sysfs::read_trimmed(ONLINE_CPUS_PATH)
            .and_then(|text| sysfs::parse_cpulist(&text).ok())
            .unwrap_or_else(|| usable_cores.clone());
        Ok(Machine {
            online_cores,
            usable_cores,
            memlock_limit_bytes: memlock_limit_bytes()?,
            nofile_limit: hard_nofile_limit()?,
        })
    }
}

/// The CPUs in this process's affinity mask.
fn affinity_cores() -> Result<Vec<usize>, ProfileError> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: we pass the real size of `set`, which the kernel fills; pid 0 means this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(ProfileError::Machine {
            what: "the CPU affinity mask",
            source: std::io::Error::last_os_error(),
        });
    }
    let max = (libc::CPU_SETSIZE as usize).min(sysfs::CPU_ID_MAX + 1);
    // SAFETY: CPU_ISSET reads bit `cpu` of a valid set; `cpu` < CPU_SETSIZE.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The soft RLIMIT_MEMLOCK, `None` when unlimited.
pub fn memlock_limit_bytes() -> Result<Option<u64>, ProfileError> {
    let limit = rlimit(libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK")?;
    Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur))
}

/// The hard RLIMIT_NOFILE, `None` when unlimited.
pub fn hard_nofile_limit() -> Result<Option<u64>, ProfileError> {
    let limit = rlimit(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE")?;
    Ok((limit.rlim_max != libc::RLIM_INFINITY).then_some(limit.rlim_max))
}

fn rlimit(
    resource: libc::__rlimit_resource_t,
    what: &'static str,
) -> Result<libc::rlimit, ProfileError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut limit) };
    if rc != 0 {
        return Err(ProfileError::Machine {
            what,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_finds_at_least_one_usable_core() {
        let machine = Machine::detect().unwrap();
        assert!(!machine.usable_cores.is_empty());
        for core in &machine.usable_cores {
            assert!(machine.online_cores.contains(core));
        }
    }
}
