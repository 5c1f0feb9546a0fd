//! The `producer-state.snapshot` file of a partition: the producer state as of a log offset, so
//! that recovery scans only the log after it. Format (big-endian), version 1:
//! `u16 version, i64 offset, u32 producers, { i64 id, i16 epoch, u8 n, n x { i32 first_seq,
//! i32 last_seq, i64 base_offset, i64 last_offset } }*, u32 crc32c(all before)`.

use super::entry::{BatchMeta, ProducerEntry, BATCH_WINDOW};
use super::table::PartitionProducers;

/// File name of the snapshot inside the partition directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";

/// Format version written by this code.
const SNAPSHOT_VERSION: u16 = 1;

/// Bytes of one remembered batch in the file.
const BATCH_BYTES: usize = 24;

/// Encodes `state` as of `offset` (the log end offset it covers).
pub fn encode(state: &PartitionProducers, offset: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + state.producers.len() * (11 + 2 * BATCH_BYTES));
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(state.producers.len() as u32).to_be_bytes());
    let mut ids: Vec<&i64> = state.producers.keys().collect();
    ids.sort_unstable();
    for id in ids {
        let entry = &state.producers[id];
        debug_assert!(entry.batches.len() <= BATCH_WINDOW);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.push(entry.batches.len() as u8);
        for b in &entry.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A cursor that fails instead of panicking on short input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.buf.len() < N {
            return Err("truncated".into());
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[..N]);
        self.buf = &self.buf[N..];
        Ok(out)
    }
}

/// Decodes a snapshot: (offset it covers, state). Errors say why the file is unusable.
pub fn decode(bytes: &[u8]) -> Result<(i64, PartitionProducers), String> {
    if bytes.len() < 4 {
        return Err("shorter than its checksum".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { buf: body };
    let version = u16::from_be_bytes(r.take()?);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown version {version}"));
    }
    let offset = i64::from_be_bytes(r.take()?);
    let count = u32::from_be_bytes(r.take()?);
    let mut state = PartitionProducers::default();
    for _ in 0..count {
        let id = i64::from_be_bytes(r.take()?);
        let epoch = i16::from_be_bytes(r.take()?);
        let [n] = r.take::<1>()?;
        if usize::from(n) > BATCH_WINDOW {
            return Err(format!("{n} batches for producer {id}"));
        }
        let mut entry = ProducerEntry {
            epoch,
            ..ProducerEntry::default()
        };
        for _ in 0..n {
            entry.batches.push_back(BatchMeta {
                first_seq: i32::from_be_bytes(r.take()?),
                last_seq: i32::from_be_bytes(r.take()?),
                base_offset: i64::from_be_bytes(r.take()?),
                last_offset: i64::from_be_bytes(r.take()?),
            });
        }
        state.producers.insert(id, entry);
    }
    if !r.buf.is_empty() {
        return Err(format!("{} trailing bytes", r.buf.len()));
    }
    Ok((offset, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_state::table::tests::idempotent_batch;

    #[test]
    fn round_trips_and_detects_damage() {
        let mut state = PartitionProducers::default();
        let mut offset = 0;
        for (id, seqs) in [(3i64, 7), (9, 2)] {
            for seq in 0..seqs {
                state.check_and_record(&idempotent_batch(id, 2, seq, 1), offset);
                offset += 1;
            }
        }
        let bytes = encode(&state, offset);
        assert_eq!(decode(&bytes), Ok((offset, state.clone())));
        let mut damaged = bytes.clone();
        damaged[12] ^= 1;
        assert!(decode(&damaged).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            decode(&encode(&PartitionProducers::default(), 5)),
            Ok((5, PartitionProducers::default()))
        );
    }
}
