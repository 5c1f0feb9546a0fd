//! Zig-zag LEB128 varints as Kafka's v2 record format uses them (`varint` for i32, `varlong` for i64).

use super::RecordsError;

/// Longest encoding of a zig-zag i32: ceil(32 / 7) bytes.
pub const VARINT_MAX_BYTES: usize = 5;
/// Longest encoding of a zig-zag i64: ceil(64 / 7) bytes.
pub const VARLONG_MAX_BYTES: usize = 10;

/// Bytes `put_varint(value)` writes.
pub fn varint_len(value: i32) -> usize {
    varlong_len(i64::from(value))
}

/// Bytes `put_varlong(value)` writes.
pub fn varlong_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

/// Appends `value` as a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Appends `value` as a zig-zag varlong.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    // A sign-extended i32 zig-zags to the same bits as the 32-bit zig-zag, so one writer serves both.
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A forward-only reader over record bytes with bounds-checked primitive reads.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Position of the next byte to read, from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads one byte.
    pub fn i8(&mut self) -> Result<i8, RecordsError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or(RecordsError::Truncated("record attributes"))?;
        self.pos += 1;
        Ok(byte as i8)
    }

    /// Reads `len` raw bytes, returning their range in the buffer.
    pub fn bytes(
        &mut self,
        len: usize,
        what: &'static str,
    ) -> Result<std::ops::Range<usize>, RecordsError> {
        if len > self.remaining() {
            return Err(RecordsError::Truncated(what));
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    /// Reads a zig-zag varint (at most `VARINT_MAX_BYTES`).
    pub fn varint(&mut self) -> Result<i32, RecordsError> {
        let raw = self.unsigned(VARINT_MAX_BYTES)?;
        if raw > u64::from(u32::MAX) {
            return Err(RecordsError::BadVarint);
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Reads a zig-zag varlong (at most `VARLONG_MAX_BYTES`).
    pub fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned(VARLONG_MAX_BYTES)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn unsigned(&mut self, max_bytes: usize) -> Result<u64, RecordsError> {
        let mut value: u64 = 0;
        for index in 0..max_bytes {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or(RecordsError::Truncated("varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordsError::BadVarint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // From Kafka's ByteUtilsTest: zig-zag maps 0,-1,1,-2 to 0,1,2,3.
        let mut out = Vec::new();
        for value in [0, -1, 1, -2, 63, -64, 64] {
            put_varint(&mut out, value);
        }
        assert_eq!(out, [0x00, 0x01, 0x02, 0x03, 0x7e, 0x7f, 0x80, 0x01]);
        let mut out = Vec::new();
        put_varint(&mut out, i32::MIN);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0x80u8; 6];
        assert!(matches!(
            Reader::new(&bytes).varint(),
            Err(RecordsError::BadVarint)
        ));
        let bytes = [0x80u8; 11];
        assert!(matches!(
            Reader::new(&bytes).varlong(),
            Err(RecordsError::BadVarint)
        ));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint().unwrap(), value);
            prop_assert_eq!(reader.remaining(), 0);
        }

        #[test]
        fn varlong_round_trips(value in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varlong().unwrap(), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = Reader::new(&bytes).varint();
            let _ = Reader::new(&bytes).varlong();
        }
    }
}
