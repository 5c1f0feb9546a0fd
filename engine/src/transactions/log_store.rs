//! The durable state of one shard's transaction coordinator: Kafka `__transaction_state` records
//! (`codec`) appended to the partition logs of that topic this shard owns, one record per state
//! change, each its own batch; the last record of a transactional id wins on replay, as after
//! Kafka's compaction. The logs live beside the data partitions (`<data>/__transaction_state-<n>/`)
//! and are opened by the coordinator, like `__consumer_offsets` by the group coordinator.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ringbroker_protocol::records::{decode_records, BatchBuilder, Compression, Record};

use super::codec;
use super::config::{
    TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_SEGMENT_BYTES,
    TRANSACTION_STATE_TAIL_CACHE_BYTES, TRANSACTION_STATE_TOPIC,
};
use super::error::TxnError;
use super::metadata::TxnMetadata;
use crate::groups::{offsets_partition_for, scan_log};
use crate::storage::{LogConfig, PartitionLog};

/// The `__transaction_state` partition of a transactional id (Kafka's placement).
pub fn state_partition_for(transactional_id: &str) -> i32 {
    offsets_partition_for(transactional_id, TRANSACTION_STATE_PARTITIONS)
}

/// The `__transaction_state` partitions one shard owns.
pub struct TxnLogStore {
    logs: BTreeMap<i32, PartitionLog>,
}

impl TxnLogStore {
    /// Opens (creating if needed) `<data_dir>/__transaction_state-<p>/` for every `owned`
    /// partition, with `base`'s flush policy and small segments.
    pub async fn open(data_dir: &Path, owned: &[i32], base: &LogConfig) -> Result<Self, TxnError> {
        let config = LogConfig {
            segment_bytes: base.segment_bytes.min(TRANSACTION_STATE_SEGMENT_BYTES),
            tail_cache_bytes: base
                .tail_cache_bytes
                .min(TRANSACTION_STATE_TAIL_CACHE_BYTES),
            preallocate: false,
            ..base.clone()
        };
        let mut logs = BTreeMap::new();
        for &partition in owned {
            debug_assert!((0..TRANSACTION_STATE_PARTITIONS).contains(&partition));
            let dir = data_dir.join(format!("{TRANSACTION_STATE_TOPIC}-{partition}"));
            let log = PartitionLog::open(&dir, config.clone())
                .await
                .map_err(|e| TxnError::Storage(format!("opening {}: {e}", dir.display())))?;
            logs.insert(partition, log);
        }
        Ok(TxnLogStore { logs })
    }

    /// Appends `txn`'s state; resolves once it is durable (the log's flush policy).
    pub async fn persist(&self, txn: &TxnMetadata, now_ms: i64) -> Result<(), TxnError> {
        let partition = state_partition_for(&txn.transactional_id);
        let log = self
            .logs
            .get(&partition)
            .ok_or(TxnError::PartitionNotOwned(partition))?;
        let key = codec::encode_key(&txn.transactional_id)?;
        let value = codec::encode_value(txn)?;
        let mut builder = BatchBuilder::new(Compression::None);
        builder
            .push(&Record {
                key: Some(&key),
                value: Some(&value),
                headers: &[],
                timestamp_ms: now_ms,
            })
            .map_err(|e| TxnError::Storage(format!("building a state batch: {e}")))?;
        let batch = builder
            .finish()
            .map_err(|e| TxnError::Storage(format!("building a state batch: {e}")))?;
        // Single broker: no leader epoch for an internal log yet (replication will stamp it).
        log.append(&batch, -1).await.map_err(|e| {
            TxnError::Storage(format!(
                "appending to {TRANSACTION_STATE_TOPIC}-{partition}: {e}"
            ))
        })?;
        Ok(())
    }

    /// The latest state of every transactional id in the owned partitions.
    pub async fn load_all(&self) -> Result<HashMap<String, TxnMetadata>, TxnError> {
        let mut out: HashMap<String, TxnMetadata> = HashMap::new();
        for (partition, log) in &self.logs {
            let what = format!("replaying {TRANSACTION_STATE_TOPIC}-{partition}");
            let mut failure: Option<TxnError> = None;
            scan_log(log, log.log_start_offset(), &what, |bytes, from| {
                let records = decode_records(bytes).map_err(|e| e.to_string())?;
                for record in records.into_iter().filter(|r| r.offset >= from) {
                    let Some(key) = record.key else {
                        return Err("record without key".into());
                    };
                    let decoded = codec::decode_key(key).and_then(|id| match record.value {
                        Some(value) => codec::decode_value(&id, value).map(|txn| (id, Some(txn))),
                        None => Ok((id, None)),
                    });
                    match decoded {
                        Ok((id, Some(txn))) => {
                            out.insert(id, txn);
                        }
                        Ok((id, None)) => {
                            out.remove(&id);
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            failure = Some(e);
                            return Err(reason);
                        }
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| failure.take().unwrap_or(TxnError::Storage(e)))?;
        }
        Ok(out)
    }

    /// Closes every log cleanly (checkpoint, so the next open skips the recovery scan).
    pub async fn close(&self) -> Result<(), TxnError> {
        for log in self.logs.values() {
            log.close()
                .await
                .map_err(|e| TxnError::Storage(format!("closing transaction state log: {e}")))?;
        }
        Ok(())
    }
}
