//! Per-partition segmented log storage (work in progress).
