//! The ringbroker broker engine: thread-per-core shards on glommio, each owning a subset of
//! partitions (log storage, fetch/produce paths) and consumer-group coordinators.
//!
//! Module map (one concern per folder, see ../shared/STYLE.md):
//! - `storage`: per-partition segmented log on DMA files, indexes, recovery, tail cache.
//! - `groups`: consumer-group coordinator and committed offsets.

pub mod groups;
pub mod storage;
