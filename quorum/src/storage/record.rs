//! The record framing of the raft log file and the snapshot file: `length u32 LE | crc32c u32 LE
//! | kind u8 | payload`, where `length` counts `kind` and `payload` and the CRC32C covers the same
//! bytes. A scan stops at the first record that is incomplete, fails its CRC or has an impossible
//! length: that is where a crash tore the tail (or the disk corrupted it), and everything from
//! there on is cut.

use thiserror::Error;

/// Bytes before a record's kind: the length and the CRC.
pub const RECORD_PREFIX_BYTES: usize = 8;

/// What a record holds. The values are on disk: never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// First record of a log file: format version, the index and term the log starts after, the voters.
    LogHeader = 1,
    /// One raft-rs `Entry` (protobuf). An entry at an index the log already holds replaces that
    /// entry and every later one (a new leader overwrote an uncommitted suffix).
    Entry = 2,
    /// The raft hard state (term, vote, commit); the last one in the file wins.
    HardState = 3,
    /// The whole snapshot file: index, term, configuration and the state machine's bytes.
    Snapshot = 4,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::LogHeader),
            2 => Some(Self::Entry),
            3 => Some(Self::HardState),
            4 => Some(Self::Snapshot),
            _ => None,
        }
    }
}

/// One decoded record, borrowing its payload from the scanned buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: RecordKind,
    pub payload: &'a [u8],
    /// Where the record starts in the scanned buffer.
    pub offset: usize,
}

/// Why a scan stopped before the end of the buffer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TailDamage {
    #[error(
        "an incomplete record at byte {offset} ({available} bytes left, the record needs {needed})"
    )]
    Incomplete {
        offset: usize,
        available: usize,
        needed: usize,
    },
    #[error("a record at byte {offset} claims {length} bytes (a record holds 1 to {max} bytes)")]
    BadLength {
        offset: usize,
        length: usize,
        max: usize,
    },
    #[error("a record at byte {offset} fails its CRC32C (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        offset: usize,
        stored: u32,
        computed: u32,
    },
    #[error("a record at byte {offset} has the unknown kind {kind}")]
    UnknownKind { offset: usize, kind: u8 },
}

/// The records of a buffer up to the first damaged one.
#[derive(Debug)]
pub struct Scan<'a> {
    pub records: Vec<Record<'a>>,
    /// Bytes from the start of the buffer that hold whole, valid records.
    pub valid_bytes: usize,
    /// Why the scan stopped early; `None` when it read the whole buffer.
    pub damage: Option<TailDamage>,
}

/// Appends one framed record to `out`.
pub fn encode(kind: RecordKind, payload: &[u8], out: &mut Vec<u8>) {
    let length = 1 + payload.len();
    let length = u32::try_from(length).unwrap_or_else(|_| {
        // Callers cap entries and snapshots far below 4 GiB; a bigger one is a bug upstream.
        panic!("a record of {length} bytes does not fit its u32 length")
    });
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind as u8]), payload);
    out.reserve(RECORD_PREFIX_BYTES + length as usize);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// Reads records from `buffer` until its end or the first damaged record. `max_record_bytes`
/// bounds `length`, so that a torn length field is not trusted to mean gigabytes.
pub fn scan(buffer: &[u8], max_record_bytes: usize) -> Scan<'_> {
    let mut records = Vec::new();
    let mut offset = 0;
    let damage = loop {
        if offset == buffer.len() {
            break None;
        }
        match decode_at(buffer, offset, max_record_bytes) {
            Ok(record) => {
                offset += RECORD_PREFIX_BYTES + 1 + record.payload.len();
                records.push(record);
            }
            Err(damage) => break Some(damage),
        }
    };
    Scan {
        records,
        valid_bytes: offset,
        damage,
    }
}

fn decode_at(
    buffer: &[u8],
    offset: usize,
    max_record_bytes: usize,
) -> Result<Record<'_>, TailDamage> {
    let available = buffer.len() - offset;
    if available < RECORD_PREFIX_BYTES {
        return Err(TailDamage::Incomplete {
            offset,
            available,
            needed: RECORD_PREFIX_BYTES,
        });
    }
    let word = |at: usize| {
        let bytes: [u8; 4] = buffer[at..at + 4].try_into().unwrap_or([0; 4]);
        u32::from_le_bytes(bytes)
    };
    let length = word(offset) as usize;
    let stored = word(offset + 4);
    if length == 0 || length > max_record_bytes {
        // Zeroes (a preallocated or never-written tail) land here too.
        return Err(TailDamage::BadLength {
            offset,
            length,
            max: max_record_bytes,
        });
    }
    let needed = RECORD_PREFIX_BYTES + length;
    if available < needed {
        return Err(TailDamage::Incomplete {
            offset,
            available,
            needed,
        });
    }
    let body = &buffer[offset + RECORD_PREFIX_BYTES..offset + needed];
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(TailDamage::BadChecksum {
            offset,
            stored,
            computed,
        });
    }
    let kind = RecordKind::from_byte(body[0]).ok_or(TailDamage::UnknownKind {
        offset,
        kind: body[0],
    })?;
    Ok(Record {
        kind,
        payload: &body[1..],
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut buffer = Vec::new();
        encode(RecordKind::Entry, b"first", &mut buffer);
        encode(RecordKind::HardState, b"second record", &mut buffer);
        buffer
    }

    #[test]
    fn round_trip() {
        let buffer = two_records();
        let scan = scan(&buffer, 1 << 20);
        assert_eq!(scan.damage, None);
        assert_eq!(scan.valid_bytes, buffer.len());
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.records[0].kind, RecordKind::Entry);
        assert_eq!(scan.records[0].payload, b"first");
        assert_eq!(scan.records[1].kind, RecordKind::HardState);
        assert_eq!(scan.records[1].payload, b"second record");
    }

    #[test]
    fn every_torn_length_keeps_the_whole_records_before_it() {
        let buffer = two_records();
        let first_len = RECORD_PREFIX_BYTES + 1 + b"first".len();
        for cut in 0..buffer.len() {
            let scan = scan(&buffer[..cut], 1 << 20);
            let expected = usize::from(cut >= first_len);
            assert_eq!(scan.records.len(), expected, "cut at {cut}");
            assert_eq!(scan.valid_bytes, expected * first_len, "cut at {cut}");
            let torn_mid_record = cut != 0 && cut != first_len;
            assert_eq!(scan.damage.is_some(), torn_mid_record, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_last_record_cuts_it() {
        let clean = two_records();
        let second = RECORD_PREFIX_BYTES + 1 + b"first".len();
        for byte in second..clean.len() {
            let mut buffer = clean.clone();
            buffer[byte] ^= 0x10;
            let scan = scan(&buffer, 1 << 20);
            assert_eq!(scan.records.len(), 1, "flip at {byte}");
            assert_eq!(scan.valid_bytes, second, "flip at {byte}");
            assert!(scan.damage.is_some(), "flip at {byte}");
        }
    }

    #[test]
    fn zeroes_and_huge_lengths_are_damage_not_records() {
        let mut buffer = two_records();
        let valid = buffer.len();
        buffer.extend_from_slice(&[0u8; 64]);
        let scan_zeroes = scan(&buffer, 1 << 20);
        assert_eq!(scan_zeroes.valid_bytes, valid);
        assert!(matches!(
            scan_zeroes.damage,
            Some(TailDamage::BadLength { length: 0, .. })
        ));

        let mut huge = two_records();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0u8; 16]);
        let scan_huge = scan(&huge, 1 << 20);
        assert_eq!(scan_huge.valid_bytes, valid);
        assert!(matches!(
            scan_huge.damage,
            Some(TailDamage::BadLength { .. })
        ));
    }
}
