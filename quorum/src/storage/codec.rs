//! Payloads of the storage's records: the log header, the hard state and the snapshot, in fixed
//! little-endian layouts, and entries in raft-rs's protobuf encoding (so every field raft-rs may
//! add survives a restart). Decoding fails on any payload whose length does not add up.

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};

/// The on-disk format version in every log header. Bump it when a layout here changes.
pub const FORMAT_VERSION: u16 = 1;

/// The first record of a log file: where the log starts and which voters wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// The log holds entries from `base_index + 1` on; `base_index` itself is compacted away.
    pub base_index: u64,
    /// The term of the entry at `base_index` (0 when `base_index` is 0).
    pub base_term: u64,
    /// The static voter set the quorum was started with, sorted.
    pub voters: Vec<u64>,
}

/// A decoding failure: what did not fit. The caller names the file.
pub type DecodeError = String;

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(format!(
                "{} payload ends early ({} bytes left, {count} needed)",
                self.what,
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let mut word = [0u8; 2];
        word.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(word))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} payload has {} bytes too many",
                self.what,
                self.bytes.len()
            ))
        }
    }
}

pub fn encode_log_header(header: &LogHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 8 + 8 + 4 + 8 * header.voters.len());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&header.base_index.to_le_bytes());
    out.extend_from_slice(&header.base_term.to_le_bytes());
    out.extend_from_slice(&(header.voters.len() as u32).to_le_bytes());
    for voter in &header.voters {
        out.extend_from_slice(&voter.to_le_bytes());
    }
    out
}

pub fn decode_log_header(payload: &[u8]) -> Result<LogHeader, DecodeError> {
    let mut reader = Reader {
        bytes: payload,
        what: "log header",
    };
    let version = reader.u16()?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "log format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    let base_index = reader.u64()?;
    let base_term = reader.u64()?;
    let count = reader.u32()? as usize;
    // Bounded by the payload itself: `take` fails before a huge count allocates anything.
    let mut voters = Vec::new();
    for _ in 0..count {
        voters.push(reader.u64()?);
    }
    reader.finish()?;
    Ok(LogHeader {
        base_index,
        base_term,
        voters,
    })
}

pub fn encode_hard_state(state: &HardState) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[0..8].copy_from_slice(&state.term.to_le_bytes());
    out[8..16].copy_from_slice(&state.vote.to_le_bytes());
    out[16..24].copy_from_slice(&state.commit.to_le_bytes());
    out
}

pub fn decode_hard_state(payload: &[u8]) -> Result<HardState, DecodeError> {
    let mut reader = Reader {
        bytes: payload,
        what: "hard state",
    };
    let state = HardState {
        term: reader.u64()?,
        vote: reader.u64()?,
        commit: reader.u64()?,
        ..HardState::default()
    };
    reader.finish()?;
    Ok(state)
}

pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, DecodeError> {
    entry
        .write_to_bytes()
        .map_err(|error| format!("cannot encode entry {}: {error}", entry.index))
}

pub fn decode_entry(payload: &[u8]) -> Result<Entry, DecodeError> {
    // Copies the payload once into a Bytes so the entry's data can be shared without copies later.
    let bytes = Bytes::copy_from_slice(payload);
    Entry::parse_from_carllerche_bytes(&bytes)
        .map_err(|error| format!("entry payload does not decode: {error}"))
}

/// The snapshot file's one record: `index u64 | term u64 | conf_len u32 | ConfState | data`.
pub fn encode_snapshot(metadata: &SnapshotMetadata, data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let conf = metadata
        .get_conf_state()
        .write_to_bytes()
        .map_err(|error| format!("cannot encode the configuration: {error}"))?;
    let mut out = Vec::with_capacity(8 + 8 + 4 + conf.len() + data.len());
    out.extend_from_slice(&metadata.index.to_le_bytes());
    out.extend_from_slice(&metadata.term.to_le_bytes());
    out.extend_from_slice(&(conf.len() as u32).to_le_bytes());
    out.extend_from_slice(&conf);
    out.extend_from_slice(data);
    Ok(out)
}

pub fn decode_snapshot(payload: &[u8]) -> Result<(SnapshotMetadata, Bytes), DecodeError> {
    let mut reader = Reader {
        bytes: payload,
        what: "snapshot",
    };
    let mut metadata = SnapshotMetadata {
        index: reader.u64()?,
        term: reader.u64()?,
        ..SnapshotMetadata::default()
    };
    let conf_len = reader.u32()? as usize;
    let conf = ConfState::parse_from_bytes(reader.take(conf_len)?)
        .map_err(|error| format!("snapshot configuration does not decode: {error}"))?;
    metadata.set_conf_state(conf);
    let data = Bytes::copy_from_slice(reader.bytes);
    Ok((metadata, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_hard_state_round_trip_and_reject_short_payloads() {
        let header = LogHeader {
            base_index: 42,
            base_term: 3,
            voters: vec![1, 2, 3],
        };
        let encoded = encode_log_header(&header);
        assert_eq!(decode_log_header(&encoded), Ok(header));
        assert!(decode_log_header(&encoded[..encoded.len() - 1]).is_err());

        let state = HardState {
            term: 7,
            vote: 2,
            commit: 99,
            ..HardState::default()
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&state)), Ok(state));
        assert!(decode_hard_state(&[0u8; 23]).is_err());
    }

    #[test]
    fn snapshot_round_trip() {
        let mut metadata = SnapshotMetadata {
            index: 10,
            term: 2,
            ..SnapshotMetadata::default()
        };
        metadata.mut_conf_state().voters = vec![1, 2, 3];
        let encoded = encode_snapshot(&metadata, b"state").expect("encode");
        let (decoded, data) = decode_snapshot(&encoded).expect("decode");
        assert_eq!(decoded, metadata);
        assert_eq!(&data[..], b"state");
    }
}
