//! The machine a run happened on: cores, kernel, CPU model, host name (read from /proc; any of them
//! may be missing on other systems and then shows as "unknown").

use std::fs;

use serde::{Deserialize, Serialize};

/// What the JSON result says about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Cores online in the machine (not only those the bench is pinned to).
    pub cores: usize,
    /// Kernel release (uname -r).
    pub kernel: String,
    /// Operating system (uname -s).
    pub os: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Host name.
    pub hostname: String,
    /// 1-minute load average when the run ended: on a shared machine, other work competes for the
    /// cores the broker and the bench are pinned to.
    #[serde(default)]
    pub load_average_1m: Option<f64>,
    /// `/proc/pressure/cpu` "some avg60" (% of time some task waited for a CPU), when available.
    #[serde(default)]
    pub cpu_pressure_some_avg60: Option<f64>,
    /// `/proc/pressure/io` "some avg60", when available.
    #[serde(default)]
    pub io_pressure_some_avg60: Option<f64>,
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Reads the machine description.
pub fn describe() -> Machine {
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cores: cores_online(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        os: read_trimmed("/proc/sys/kernel/ostype"),
        cpu_model,
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        load_average_1m: fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok()),
        cpu_pressure_some_avg60: pressure_some_avg60("/proc/pressure/cpu"),
        io_pressure_some_avg60: pressure_some_avg60("/proc/pressure/io"),
    }
}

/// `sysconf(_SC_NPROCESSORS_ONLN)`: unlike `available_parallelism`, not narrowed by `taskset`.
fn cores_online() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// Parses the `some ... avg60=X` field of a PSI file.
fn pressure_some_avg60(path: &str) -> Option<f64> {
    parse_pressure(&fs::read_to_string(path).ok()?)
}

fn parse_pressure(text: &str) -> Option<f64> {
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("avg60="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_pressure_lines() {
        let text = "some avg10=93.10 avg60=89.35 avg300=84.74 total=1\nfull avg10=0.00 avg60=1.00 avg300=0.00 total=0\n";
        assert_eq!(super::parse_pressure(text), Some(89.35));
        assert_eq!(super::parse_pressure("nothing"), None);
    }

    #[test]
    fn describes_this_machine() {
        let m = super::describe();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
    }
}
