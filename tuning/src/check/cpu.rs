//! CPU checks: core count, NUMA placement and SMT siblings of the shard cores, frequency governor.

use std::path::{Path, PathBuf};

use super::{CheckLine, Fix};
use crate::machine::Machine;
use crate::profile::ResolvedProfile;
use crate::sysfs::{self, format_cpulist};

/// Root of the CPU and NUMA topology files; tests pass a fake tree instead.
pub const SYSTEM_SYSFS: &str = "/sys/devices/system";

pub fn cpu_count(machine: &Machine, profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "one shard per core: the core count bounds the shards, and cores left over serve the kernel, IRQs and the bench";
    let mut value = format!(
        "{} online ({}), {} usable by this process ({})",
        machine.online_cores.len(),
        format_cpulist(&machine.online_cores),
        machine.usable_cores.len(),
        format_cpulist(&machine.usable_cores)
    );
    if let Some(profile) = profile {
        value.push_str(&format!(", {} shard(s)", profile.shard_count()));
    }
    if machine.usable_cores.len() < 2 {
        return CheckLine::warn(
            "cpu count",
            value,
            WHY,
            Fix::manual("give the broker at least 2 cores (taskset, container --cpus)"),
        );
    }
    CheckLine::ok("cpu count", value, WHY)
}

/// NUMA node of each node directory's cpulist.
fn numa_nodes(system: &Path) -> Vec<(usize, Vec<usize>)> {
    let Ok(entries) = std::fs::read_dir(system.join("node")) else {
        return Vec::new();
    };
    let mut nodes: Vec<(usize, Vec<usize>)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let node: usize = entry
                .file_name()
                .to_str()?
                .strip_prefix("node")?
                .parse()
                .ok()?;
            let cpus =
                sysfs::parse_cpulist(&sysfs::read_trimmed(entry.path().join("cpulist"))?).ok()?;
            Some((node, cpus))
        })
        .collect();
    nodes.sort();
    nodes
}

pub fn numa(system: &Path, profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "a shard allocates on its own node; shards on several nodes pay remote-memory latency when messages cross";
    let nodes = numa_nodes(system);
    if nodes.len() <= 1 {
        return CheckLine::ok("numa nodes", format!("{} node", nodes.len().max(1)), WHY);
    }
    let Some(profile) = profile else {
        return CheckLine::ok("numa nodes", format!("{} nodes", nodes.len()), WHY);
    };
    let used: Vec<usize> = nodes
        .iter()
        .filter(|(_, cpus)| profile.shard_cores.iter().any(|c| cpus.contains(c)))
        .map(|(node, _)| *node)
        .collect();
    let value = format!("{} nodes; shard cores on node(s) {used:?}", nodes.len());
    if used.len() > 1 {
        let first = &nodes[0];
        return CheckLine::warn(
            "numa nodes",
            value,
            WHY,
            Fix::manual(format!(
                "keep shard_cores on one node (node {} has cores {}) or run one broker per node",
                first.0,
                format_cpulist(&first.1)
            )),
        );
    }
    CheckLine::ok("numa nodes", value, WHY)
}

pub fn smt_siblings(system: &Path, profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "two pinned shards (or a shard and the bench) on SMT siblings share one physical core's execution units and caches";
    let Some(profile) = profile else {
        return CheckLine::ok("smt siblings", "profile did not resolve", WHY);
    };
    let mut clashes = Vec::new();
    let mut one_per_core: Vec<usize> = Vec::new();
    let mut exposed = false;
    for &core in &profile.shard_cores {
        let path = system.join(format!("cpu/cpu{core}/topology/thread_siblings_list"));
        let Some(siblings) = sysfs::read_trimmed(&path).and_then(|t| sysfs::parse_cpulist(&t).ok())
        else {
            continue;
        };
        exposed = true;
        if !siblings.iter().any(|s| one_per_core.contains(s)) {
            one_per_core.push(core);
        }
        for sibling in siblings.into_iter().filter(|&s| s != core) {
            if profile.shard_cores.contains(&sibling) && sibling > core {
                clashes.push(format!("shards {core}+{sibling}"));
            } else if profile.pin_executors
                && profile.bench_cores.contains(&sibling)
                && !profile.shard_cores.contains(&sibling)
            {
                clashes.push(format!("shard {core}+bench {sibling}"));
            }
        }
    }
    if !exposed {
        return CheckLine::ok("smt siblings", "topology not exposed", WHY);
    }
    if clashes.is_empty() {
        return CheckLine::ok(
            "smt siblings",
            format!(
                "no shard core shares a physical core (cores {})",
                format_cpulist(&profile.shard_cores)
            ),
            WHY,
        );
    }
    CheckLine::warn(
        "smt siblings",
        format!("siblings pinned together: {}", clashes.join(", ")),
        WHY,
        Fix::manual(format!(
            "set shard_cores = \"{}\" (one thread per physical core), or turn SMT off in the BIOS",
            format_cpulist(&one_per_core)
        )),
    )
}

pub fn governor(system: &Path, machine: &Machine, profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "power-saving governors clock a busy-polling shard down between bursts, adding latency at every ramp-up";
    let cores = profile.map_or(&machine.usable_cores, |p| &p.shard_cores);
    let mut slow: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for &core in cores {
        let path = system.join(format!("cpu/cpu{core}/cpufreq/scaling_governor"));
        if let Some(governor) = sysfs::read_trimmed(&path) {
            if governor != "performance" {
                slow.push(path);
            }
            if !seen.contains(&governor) {
                seen.push(governor);
            }
        }
    }
    if seen.is_empty() {
        return CheckLine::ok("cpu governor", "not exposed (VM or no cpufreq driver)", WHY);
    }
    let value = format!("{} on cores {}", seen.join(", "), format_cpulist(cores));
    if slow.is_empty() {
        CheckLine::ok("cpu governor", value, WHY)
    } else {
        CheckLine::warn("cpu governor", value, WHY, Fix::sysfs(&slow, "performance"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::Profile;

    /// A fake /sys/devices/system: 4 CPUs as 2 cores x 2 SMT threads (0+2, 1+3), 2 NUMA nodes, powersave.
    fn fake_system() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (cpu, siblings) in [(0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")] {
            let dir = root.path().join(format!("cpu/cpu{cpu}"));
            std::fs::create_dir_all(dir.join("topology")).unwrap();
            std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
            std::fs::write(dir.join("topology/thread_siblings_list"), siblings).unwrap();
            std::fs::write(dir.join("cpufreq/scaling_governor"), "powersave\n").unwrap();
        }
        for (node, cpus) in [(0, "0,2"), (1, "1,3")] {
            let dir = root.path().join(format!("node/node{node}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpulist"), cpus).unwrap();
        }
        root
    }

    fn resolved(text: &str) -> ResolvedProfile {
        let machine = Machine {
            online_cores: vec![0, 1, 2, 3],
            usable_cores: vec![0, 1, 2, 3],
            memlock_limit_bytes: None,
            nofile_limit: None,
        };
        Profile::from_toml_str(text, "p.toml")
            .unwrap()
            .resolve_for(&machine)
            .unwrap()
    }

    #[test]
    fn smt_siblings_among_shards_warn_with_one_thread_per_core_fix() {
        let system = fake_system();
        let line = smt_siblings(
            system.path(),
            Some(&resolved("shard_cores = \"0-3\"\nbench_cores = [0]\n")),
        );
        assert_eq!(line.status, Status::Warn, "{line:?}");
        assert!(
            line.value.contains("shards 0+2") && line.value.contains("shards 1+3"),
            "{line:?}"
        );
        assert!(line.fix.unwrap().command.contains("shard_cores = \"0-1\""));

        let line = smt_siblings(
            system.path(),
            Some(&resolved("shard_cores = [0]\nbench_cores = [2]\n")),
        );
        assert_eq!(line.status, Status::Warn);
        assert!(line.value.contains("shard 0+bench 2"), "{line:?}");

        let line = smt_siblings(
            system.path(),
            Some(&resolved("shard_cores = [0, 1]\nbench_cores = [0, 1]\n")),
        );
        assert_eq!(line.status, Status::Ok, "{line:?}");
    }

    #[test]
    fn shards_across_numa_nodes_warn() {
        let system = fake_system();
        let line = numa(system.path(), Some(&resolved("shard_cores = [0, 1]\n")));
        assert_eq!(line.status, Status::Warn, "{line:?}");
        assert!(line.value.contains("2 nodes"), "{line:?}");
        let line = numa(system.path(), Some(&resolved("shard_cores = [0, 2]\n")));
        assert_eq!(line.status, Status::Ok, "{line:?}");
    }

    #[test]
    fn powersave_governor_warns_with_a_write_per_core() {
        let system = fake_system();
        let profile = resolved("shard_cores = [1, 3]\n");
        let machine = Machine {
            online_cores: vec![0, 1, 2, 3],
            usable_cores: vec![0, 1, 2, 3],
            memlock_limit_bytes: None,
            nofile_limit: None,
        };
        let line = governor(system.path(), &machine, Some(&profile));
        assert_eq!(line.status, Status::Warn);
        let fix = line.fix.unwrap();
        assert_eq!(fix.actions.len(), 2);
        assert!(fix.command.contains("echo performance >"), "{fix:?}");
        assert!(
            fix.command.contains("cpu3/cpufreq/scaling_governor"),
            "{fix:?}"
        );
    }
}
