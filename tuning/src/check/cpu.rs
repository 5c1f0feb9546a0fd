//! CPU checks: core count, NUMA placement and SMT siblings of the shard cores, frequency governor.

use std::path::PathBuf;

use super::{CheckLine, Fix};
use crate::machine::Machine;
use crate::profile::ResolvedProfile;
use crate::sysfs::{self, format_cpulist};

const CPU_SYSFS: &str = "/sys/devices/system/cpu";
const NODE_SYSFS: &str = "/sys/devices/system/node";

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
fn numa_nodes() -> Vec<(usize, Vec<usize>)> {
    let Ok(entries) = std::fs::read_dir(NODE_SYSFS) else {
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

pub fn numa(profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "a shard allocates on its own node; shards on several nodes pay remote-memory latency when messages cross";
    let nodes = numa_nodes();
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

pub fn smt_siblings(profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "two pinned shards (or a shard and the bench) on SMT siblings share one physical core's execution units and caches";
    let Some(profile) = profile else {
        return CheckLine::ok("smt siblings", "profile did not resolve", WHY);
    };
    let mut clashes = Vec::new();
    let mut one_per_core: Vec<usize> = Vec::new();
    let mut exposed = false;
    for &core in &profile.shard_cores {
        let path = format!("{CPU_SYSFS}/cpu{core}/topology/thread_siblings_list");
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

pub fn governor(machine: &Machine, profile: Option<&ResolvedProfile>) -> CheckLine {
    const WHY: &str = "power-saving governors clock a busy-polling shard down between bursts, adding latency at every ramp-up";
    let cores = profile.map_or(&machine.usable_cores, |p| &p.shard_cores);
    let mut slow: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for &core in cores {
        let path = PathBuf::from(format!("{CPU_SYSFS}/cpu{core}/cpufreq/scaling_governor"));
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
