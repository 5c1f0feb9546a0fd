//! Small readers for /proc and /sys files and the Linux "cpulist" format ("0-3,8,10-11").

use std::path::Path;

/// Highest CPU number accepted in a cpulist; bounds the expansion of a range like "0-4000000000".
pub const CPU_ID_MAX: usize = 8191;

/// Reads a small text file and trims it; `None` if it does not exist or cannot be read (many of these files
/// are absent in VMs and containers, which the callers report as "not exposed").
pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads a file holding one unsigned integer (e.g. /proc/sys/vm/swappiness).
pub fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// The bracketed choice of a sysfs selector such as "always [madvise] never" → "madvise".
pub fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(&choices[start + 1..end])
}

/// Parses a Linux cpulist ("0-3,8,10-11") into sorted, de-duplicated CPU numbers.
pub fn parse_cpulist(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a)?, parse_cpu(b)?),
            None => {
                let cpu = parse_cpu(part)?;
                (cpu, cpu)
            }
        };
        if low > high {
            return Err(format!("range `{part}` runs backwards"));
        }
        cpus.extend(low..=high);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn parse_cpu(text: &str) -> Result<usize, String> {
    let cpu: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a CPU number"))?;
    if cpu > CPU_ID_MAX {
        return Err(format!(
            "CPU {cpu} is above the supported maximum {CPU_ID_MAX}"
        ));
    }
    Ok(cpu)
}

/// Formats CPU numbers as a compact cpulist ("0-3,8").
pub fn format_cpulist(cpus: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulist_round_trips() {
        assert_eq!(
            parse_cpulist("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(parse_cpulist(" 2 , 2,1").unwrap(), vec![1, 2]);
        assert!(parse_cpulist("3-1").is_err());
        assert!(parse_cpulist("a").is_err());
        assert!(parse_cpulist("0-99999999").is_err());
    }

    #[test]
    fn selector_picks_bracketed_choice() {
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(selected("none"), None);
    }
}
