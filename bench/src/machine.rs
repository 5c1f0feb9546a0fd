//! The machine a run happened on: cores, kernel, CPU model, host name (read from /proc; any of them
//! may be missing on other systems and then shows as "unknown").

use std::fs;

use serde::{Deserialize, Serialize};

/// What the JSON result says about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Cores this process may run on.
    pub cores: usize,
    /// Kernel release (uname -r).
    pub kernel: String,
    /// Operating system (uname -s).
    pub os: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Host name.
    pub hostname: String,
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
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        os: read_trimmed("/proc/sys/kernel/ostype"),
        cpu_model,
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_this_machine() {
        let m = super::describe();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
    }
}
