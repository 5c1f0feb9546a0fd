//! The ringbroker broker engine: thread-per-core shards on glommio, each owning a subset of
//! partitions (log storage, fetch/produce paths) and consumer-group coordinators.
//!
//! Module map (one concern per folder, see docs/STYLE.md):
//! - `server`: executors, listeners, connections, the dispatcher and one handler per Kafka API.
//! - `shard`: one core's state, the cross-shard mesh, segment file handles.
//! - `metadata`: the topic table and partition ownership; `admin`: topic creation/deletion.
//! - `cluster`: the Raft metadata quorum's records, the metadata image, the controller's decisions.
//! - `produce`, `fetch`, `offsets`: the per-partition data paths, local or across shards.
//! - `storage`: per-partition segmented log on DMA files, indexes, recovery, tail cache.
//! - `groups`: consumer-group coordinator and committed offsets.
//! - `replication`: leaders and followers of replicated partitions, the ISR, acks=all.
//! - `producer_state`: idempotent producers: per-partition sequence state, producer ids.
//! - `transactions`: the transaction coordinator, markers, last stable offsets, aborted transactions.
//! - `metrics`: per-shard counters and histograms, the Prometheus endpoint.
//! - `topic_config`: Kafka topic configs (names, defaults, validation, effective settings);
//!   `retention`: the per-shard background task deleting segments past retention.
//! - `config`: the effective settings and every limit; `errors`: Kafka error code mapping.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod metrics;
pub mod offsets;
pub mod produce;
pub mod producer_state;
pub mod replication;
pub mod retention;
pub mod security;
pub mod server;
pub mod shard;
pub mod storage;
pub mod topic_config;
pub mod transactions;

pub use config::BrokerConfig;
