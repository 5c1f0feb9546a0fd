//! `--profile`: the bench cores of a ringbroker tuning profile.

use std::path::Path;

use crate::error::{BenchError, Result};

/// Reads the profile and returns the cores it gives the bench.
pub fn bench_cores(path: &Path) -> Result<Vec<usize>> {
    Err(BenchError::InvalidArgument(format!(
        "--profile {}: reading tuning profiles is not wired in yet; pass --cores",
        path.display()
    )))
}
