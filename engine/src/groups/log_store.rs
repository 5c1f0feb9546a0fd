//! The durable [`OffsetStore`]: offset records as Kafka v2 record batches in the `__consumer_offsets`
//! partition logs this shard owns (waiting for engine/src/storage and protocol records to land).

/// Placeholder type name; the implementation lands with the storage layer.
pub struct LogOffsetStore;
