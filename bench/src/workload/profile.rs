//! `--profile`: the bench cores of a ringbroker tuning profile (`bench_cores`, resolved against this
//! machine by `ringbroker_tuning`; its warnings, e.g. cores shared with the broker, are printed).

use std::path::Path;

use ringbroker_tuning::Profile;

use crate::error::{BenchError, Result};

/// Reads the profile and returns the cores it gives the bench.
pub fn bench_cores(path: &Path) -> Result<Vec<usize>> {
    let invalid = |e: &dyn std::fmt::Display| {
        BenchError::InvalidArgument(format!("--profile {}: {e}", path.display()))
    };
    let profile = Profile::load(path).map_err(|e| invalid(&e))?;
    let resolved = profile.resolve().map_err(|e| invalid(&e))?;
    for warning in &resolved.warnings {
        eprintln!("ringbroker-bench: profile {}: {warning}", path.display());
    }
    Ok(resolved.bench_cores.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bench_cores_from_a_profile_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "bench_cores = \"0\"\n").expect("write");
        match bench_cores(&path) {
            Ok(cores) => assert_eq!(cores, vec![0]),
            // A machine where core 0 is not usable rejects the profile: that is the profile's call.
            Err(e) => assert!(e.to_string().contains("--profile"), "{e}"),
        }
        assert!(bench_cores(&dir.path().join("missing.toml")).is_err());
    }
}
