//! Producer id allocation, unique in the cluster and across restarts, without cross-shard messages.
//!
//! Each broker hands out ids of its own range, `[node id << NODE_ID_SHIFT, (node id + 1) <<
//! NODE_ID_SHIFT)`, so brokers never give the same id (node 0's range starts at 0: a single broker
//! keeps the ids it gave before it became a cluster). Within it, shard `s` of `n` hands out ids
//! `≡ s (mod n)`. Each shard reserves blocks of
//! [`ID_BLOCK`] ids and persists the highest id of its reservation in
//! `<data>/producer-ids/shard-<s>` (fsync'ed, renamed into place) BEFORE handing any of them out.
//! At its first reservation a shard reads every shard's file and starts above the highest id
//! ever reserved, so ids stay unique even when the shard count changes between runs.

use std::path::{Path, PathBuf};

use super::error::ProducerStateError;
use super::files;

/// Directory (under the data dir) of the reservation files.
pub const IDS_DIR: &str = "producer-ids";

/// Ids reserved per durable write: one fsync per this many InitProducerId calls on a shard.
pub const ID_BLOCK: i64 = 1000;

/// A broker's producer ids are `node id << NODE_ID_SHIFT` and up: 2^32 ids each (about four billion
/// InitProducerId calls), for every node id a cluster may use.
pub const NODE_ID_SHIFT: u32 = 32;

/// One shard's allocator (lives behind an async lock: reservations await file I/O).
#[derive(Debug)]
pub struct IdAllocator {
    dir: PathBuf,
    shard: i64,
    shards: i64,
    /// Next id to hand out, if a reservation is active.
    next: Option<i64>,
    /// Highest id persisted as reserved by this shard.
    reserved_max: i64,
    /// The first id of this broker's range.
    range_start: i64,
}

impl IdAllocator {
    pub fn new(data_dir: &Path, node_id: i32, shard: usize, shards: usize) -> IdAllocator {
        debug_assert!(shard < shards);
        assert!(node_id >= 0, "node ids are not negative");
        IdAllocator {
            dir: data_dir.join(IDS_DIR),
            shard: shard as i64,
            shards: shards as i64,
            next: None,
            reserved_max: -1,
            range_start: i64::from(node_id) << NODE_ID_SHIFT,
        }
    }

    /// A fresh producer id.
    pub async fn allocate(&mut self) -> Result<i64, ProducerStateError> {
        let id = match self.next {
            Some(id) if id <= self.reserved_max => id,
            _ => self.reserve().await?,
        };
        self.next = Some(id + self.shards);
        Ok(id)
    }

    /// Persists a new block and returns its first id.
    async fn reserve(&mut self) -> Result<i64, ProducerStateError> {
        if self.next.is_none() {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| ProducerStateError::io("create dir", &self.dir, e))?;
            self.reserved_max = self
                .reserved_max
                .max(highest_reserved(&self.dir).await?)
                .max(self.range_start - 1);
        }
        let first = first_above(self.reserved_max, self.shard, self.shards);
        let last = first + (ID_BLOCK - 1) * self.shards;
        if last >= self.range_start + (1 << NODE_ID_SHIFT) {
            return Err(ProducerStateError::IdsExhausted {
                dir: self.dir.clone(),
            });
        }
        let path = self.dir.join(format!("shard-{}", self.shard));
        files::write_durably(&path, format!("{last}\n").into_bytes()).await?;
        self.reserved_max = last;
        Ok(first)
    }
}

/// The smallest id above `floor` that belongs to `shard` of `shards`.
fn first_above(floor: i64, shard: i64, shards: i64) -> i64 {
    let base = floor + 1;
    let rem = base.rem_euclid(shards);
    base + (shard - rem).rem_euclid(shards)
}

/// The highest id any shard file records (-1 with none).
async fn highest_reserved(dir: &Path) -> Result<i64, ProducerStateError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ProducerStateError::io("list", dir, e))?;
    let mut highest = -1;
    for entry in entries {
        let entry = entry.map_err(|e| ProducerStateError::io("list", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("shard-") || name.to_string_lossy().ends_with(".tmp")
        {
            continue;
        }
        let Some(bytes) = files::read_whole(&path).await? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let value: i64 = text
            .trim()
            .parse()
            .map_err(|_| ProducerStateError::BadIdFile {
                path: path.clone(),
                reason: format!("not a number: {:?}", text.trim()),
            })?;
        highest = highest.max(value);
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_hand_out_ids_of_their_own_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut node0 = IdAllocator::new(&path.join("n0"), 0, 0, 1);
                let mut node3 = IdAllocator::new(&path.join("n3"), 3, 0, 2);
                assert_eq!(node0.allocate().await.unwrap(), 0);
                let id = node3.allocate().await.unwrap();
                assert_eq!(id, 3 << NODE_ID_SHIFT);
                assert_eq!(node3.allocate().await.unwrap(), id + 2);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn first_above_picks_the_shards_residue() {
        assert_eq!(first_above(-1, 0, 2), 0);
        assert_eq!(first_above(-1, 1, 2), 1);
        assert_eq!(first_above(1999, 1, 4), 2001);
        assert_eq!(first_above(2001, 1, 4), 2005);
        assert_eq!(first_above(10, 0, 1), 11);
    }

    #[test]
    fn ids_are_unique_across_restarts_and_shard_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut seen = std::collections::HashSet::new();
                for shards in [2usize, 3, 1] {
                    let mut allocators: Vec<IdAllocator> = (0..shards)
                        .map(|s| IdAllocator::new(&path, 0, s, shards))
                        .collect();
                    for round in 0..(ID_BLOCK + 3) {
                        for a in allocators.iter_mut() {
                            let id = a.allocate().await.unwrap();
                            assert!(id >= 0);
                            assert!(seen.insert(id), "duplicate id {id} (round {round})");
                        }
                    }
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
