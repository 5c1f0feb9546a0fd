//! Test support shared by the crate's tests.

/// io_memory of every test executor: glommio registers it on three rings per executor against
/// the 8 MiB locked-memory cap, and a cluster test runs several executors at once. The quorum's
/// buffered-file and socket I/O does not use these buffers; 64 KiB is glommio's minimum.
pub const TEST_IO_MEMORY_BYTES: usize = 64 << 10;

/// Sends the crate's logs (and raft-rs's) to the test output, filtered by `RUST_LOG`
/// (default: warnings). Safe to call from every test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
