//! CPU time of the bench itself and, with `--broker-pid`, of a broker on the same machine, read from
//! `/proc/<pid>/stat`: on a shared machine, CPU seconds per gigabyte say more than throughput alone
//! (a broker using 30% of its core is waiting on something, not computing).

use std::fs;

/// CPU time (user + system) of a process in clock ticks; `None` for the bench itself.
pub fn process_cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    parse_stat_ticks(&fs::read_to_string(path).ok()?)
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15; the command name in field 2 may
/// contain spaces, so counting starts after its closing parenthesis).
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_spaces_in_the_name() {
        let stat = "123 (ring broker) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_our_own_cpu_time() {
        assert!(process_cpu_ticks(None).is_some());
        assert!(ticks_per_second() > 0.0);
    }
}
