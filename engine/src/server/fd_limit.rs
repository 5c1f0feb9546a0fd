//! The file descriptor limit: every client connection holds one, so the broker raises its soft
//! RLIMIT_NOFILE to the hard limit at start (as Kafka's packaging asks operators to), and
//! `max_connections = "auto"` is derived from that hard limit (`ringbroker_tuning`'s resolve).

/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit now in force (`None`:
/// unlimited).
pub fn raise_to_hard_limit() -> std::io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur != limit.rlim_max {
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        tracing::info!(
            from = before,
            to = limit.rlim_max,
            "raised the file descriptor limit (RLIMIT_NOFILE) to its hard limit"
        );
    }
    Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_to_hard_limit().expect("raise");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(
            now,
            (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
        );
    }
}
