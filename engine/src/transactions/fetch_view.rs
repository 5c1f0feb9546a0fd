//! What a fetch needs from the partition's transactions: the last stable offset (reported to
//! every consumer) and, for read_committed, the bound of the read and the aborted transactions
//! overlapping it, so the client drops their records.

use super::partition_state::AbortedTxn;
use crate::shard::Shard;
use crate::storage::PartitionLog;

/// The transactional view of one partition read starting at `from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StableView {
    pub last_stable_offset: i64,
    /// Empty for read_uncommitted.
    pub aborted: Vec<AbortedTxn>,
}

/// The view of a partition this shard owns.
pub fn stable_view(
    shard: &Shard,
    topic: &str,
    partition: i32,
    log: &PartitionLog,
    from: i64,
    read_committed: bool,
) -> StableView {
    let (last_stable_offset, aborted) = shard.txn_partitions.stable_view(
        topic,
        partition,
        log.high_watermark(),
        log.log_start_offset(),
        from,
        read_committed,
    );
    StableView {
        last_stable_offset,
        aborted,
    }
}

/// The end of what a read may return: the last stable offset for read_committed, else the high
/// watermark.
pub fn readable_end(
    shard: &Shard,
    topic: &str,
    partition: i32,
    log: &PartitionLog,
    read_committed: bool,
) -> i64 {
    if !read_committed {
        return log.high_watermark();
    }
    stable_view(shard, topic, partition, log, log.high_watermark(), false).last_stable_offset
}

/// Writes a Fetch v4-11 partition's `aborted_transactions` array (producer id, first offset).
pub fn put_aborted(out: &mut bytes::BytesMut, aborted: &[AbortedTxn]) {
    use bytes::BufMut;
    out.put_i32(i32::try_from(aborted.len()).unwrap_or(i32::MAX));
    for a in aborted {
        out.put_i64(a.producer_id);
        out.put_i64(a.first_offset);
    }
}
