//! Consumer-group coordinator (work in progress).
