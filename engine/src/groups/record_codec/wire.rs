//! The primitive encodings of Kafka's generated message schemas, as used by `__consumer_offsets` keys and
//! values: fixed-width big-endian integers, and strings, bytes and arrays either classic (`i16`/`i32`
//! lengths, -1 for null) or compact (unsigned varint of length + 1, 0 for null) in flexible versions,
//! where every struct also ends with a tagged-field section. A [`Writer`] and a [`Reader`] are told once
//! whether the version they handle is flexible, so a schema's code reads the same for both.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::groups::error::GroupError;

/// Most elements an array of a stored record may claim. Records are written by us (a group of at most
/// `group_members_max` members, a few thousand partitions); the bound only stops a damaged length from
/// making the reader allocate or loop for billions of elements before it notices the truncation.
const ARRAY_ELEMENTS_MAX: usize = 1 << 20;

fn malformed(what: impl Into<String>) -> GroupError {
    GroupError::MalformedRecord(what.into())
}

/// Appends one message's fields in schema order.
pub struct Writer {
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    pub fn new(flexible: bool) -> Self {
        Self {
            buf: BytesMut::with_capacity(64),
            flexible,
        }
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub fn i8(&mut self, value: i8) {
        self.buf.put_i8(value);
    }

    pub fn i16(&mut self, value: i16) {
        self.buf.put_i16(value);
    }

    pub fn i32(&mut self, value: i32) {
        self.buf.put_i32(value);
    }

    pub fn i64(&mut self, value: i64) {
        self.buf.put_i64(value);
    }

    pub fn uuid(&mut self, value: &uuid::Uuid) {
        self.buf.put_slice(value.as_bytes());
    }

    /// An array of `i32`.
    pub fn i32_array(
        &mut self,
        values: impl ExactSizeIterator<Item = i32>,
    ) -> Result<(), GroupError> {
        self.array_len(values.len())?;
        for value in values {
            self.i32(value);
        }
        Ok(())
    }

    fn uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    /// A length prefix: compact (`len + 1` as a varint) or classic (`i16`/`i32` chosen by the caller).
    fn length(&mut self, len: Option<usize>, classic_i16: bool) -> Result<(), GroupError> {
        if self.flexible {
            self.uvarint(len.map_or(0, |n| n as u64 + 1));
            return Ok(());
        }
        match (len, classic_i16) {
            (None, true) => self.i16(-1),
            (None, false) => self.i32(-1),
            (Some(n), true) => {
                self.i16(i16::try_from(n).map_err(|_| malformed(format!("string of {n} bytes")))?)
            }
            (Some(n), false) => {
                self.i32(i32::try_from(n).map_err(|_| malformed(format!("{n} bytes or elements")))?)
            }
        }
        Ok(())
    }

    pub fn string(&mut self, value: &str) -> Result<(), GroupError> {
        self.nullable_string(Some(value))
    }

    pub fn nullable_string(&mut self, value: Option<&str>) -> Result<(), GroupError> {
        self.length(value.map(str::len), true)?;
        if let Some(value) = value {
            self.buf.put_slice(value.as_bytes());
        }
        Ok(())
    }

    pub fn bytes(&mut self, value: &[u8]) -> Result<(), GroupError> {
        self.length(Some(value.len()), false)?;
        self.buf.put_slice(value);
        Ok(())
    }

    /// The element count of an array; the caller then writes each element.
    pub fn array_len(&mut self, len: usize) -> Result<(), GroupError> {
        self.length(Some(len), false)
    }

    /// The (empty) tagged-field section that ends every struct of a flexible version.
    pub fn tagged_fields(&mut self) {
        self.tagged_fields_with(&[]);
    }

    /// A flexible struct's tagged-field section holding `fields` (tag, encoded value), in tag order.
    pub fn tagged_fields_with(&mut self, fields: &[(u32, Bytes)]) {
        if !self.flexible {
            debug_assert!(fields.is_empty(), "tagged fields need a flexible version");
            return;
        }
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0), "tags in order");
        self.uvarint(fields.len() as u64);
        for (tag, value) in fields {
            self.uvarint(u64::from(*tag));
            self.uvarint(value.len() as u64);
            self.buf.put_slice(value);
        }
    }
}

/// Reads one message's fields in schema order; every read checks the bytes are there.
pub struct Reader {
    buf: Bytes,
    flexible: bool,
}

impl Reader {
    pub fn new(buf: Bytes, flexible: bool) -> Self {
        Self { buf, flexible }
    }

    /// Whether every byte was read (a reader of a newer version's trailing fields checks this).
    pub fn is_empty(&self) -> bool {
        !self.buf.has_remaining()
    }

    fn need(&self, bytes: usize, what: &str) -> Result<(), GroupError> {
        if self.buf.remaining() < bytes {
            return Err(malformed(format!("truncated {what}")));
        }
        Ok(())
    }

    pub fn i8(&mut self, what: &str) -> Result<i8, GroupError> {
        self.need(1, what)?;
        Ok(self.buf.get_i8())
    }

    pub fn i16(&mut self, what: &str) -> Result<i16, GroupError> {
        self.need(2, what)?;
        Ok(self.buf.get_i16())
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, GroupError> {
        self.need(4, what)?;
        Ok(self.buf.get_i32())
    }

    pub fn i64(&mut self, what: &str) -> Result<i64, GroupError> {
        self.need(8, what)?;
        Ok(self.buf.get_i64())
    }

    pub fn uuid(&mut self, what: &str) -> Result<uuid::Uuid, GroupError> {
        self.need(16, what)?;
        let mut raw = [0u8; 16];
        self.buf.copy_to_slice(&mut raw);
        Ok(uuid::Uuid::from_bytes(raw))
    }

    /// An array of `i32`.
    pub fn i32_array(&mut self, what: &str) -> Result<Vec<i32>, GroupError> {
        let len = self.array_len(what)?;
        (0..len).map(|_| self.i32(what)).collect()
    }

    fn uvarint(&mut self, what: &str) -> Result<u64, GroupError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            self.need(1, what)?;
            let byte = self.buf.get_u8();
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(format!("varint of {what} longer than 64 bits")))
    }

    /// A length prefix; `None` for null.
    fn length(&mut self, classic_i16: bool, what: &str) -> Result<Option<usize>, GroupError> {
        let raw: i64 = if self.flexible {
            i64::try_from(self.uvarint(what)?).map_err(|_| malformed(format!("{what} length")))? - 1
        } else if classic_i16 {
            i64::from(self.i16(what)?)
        } else {
            i64::from(self.i32(what)?)
        };
        match raw {
            -1 => Ok(None),
            n if n < -1 => Err(malformed(format!("negative length of {what}"))),
            n => Ok(Some(
                usize::try_from(n).map_err(|_| malformed(format!("{what} length")))?,
            )),
        }
    }

    fn raw(&mut self, len: usize, what: &str) -> Result<Bytes, GroupError> {
        self.need(len, what)?;
        Ok(self.buf.split_to(len))
    }

    pub fn nullable_string(&mut self, what: &str) -> Result<Option<String>, GroupError> {
        let Some(len) = self.length(true, what)? else {
            return Ok(None);
        };
        let raw = self.raw(len, what)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| malformed(format!("{what} is not UTF-8")))
    }

    pub fn string(&mut self, what: &str) -> Result<String, GroupError> {
        self.nullable_string(what)?
            .ok_or_else(|| malformed(format!("null {what}")))
    }

    pub fn bytes(&mut self, what: &str) -> Result<Bytes, GroupError> {
        let len = self
            .length(false, what)?
            .ok_or_else(|| malformed(format!("null {what}")))?;
        self.raw(len, what)
    }

    /// The element count of an array (null reads as empty).
    pub fn array_len(&mut self, what: &str) -> Result<usize, GroupError> {
        let len = self.length(false, what)?.unwrap_or(0);
        // Every element takes at least one byte: a count beyond the bytes left is damage.
        if len > ARRAY_ELEMENTS_MAX || len > self.buf.remaining() {
            return Err(malformed(format!("{what} claims {len} elements")));
        }
        Ok(len)
    }

    /// Skips a flexible struct's tagged fields (a newer writer may add some we do not know).
    pub fn tagged_fields(&mut self) -> Result<(), GroupError> {
        self.tagged_fields_read().map(drop)
    }

    /// A flexible struct's tagged fields as (tag, value bytes), for the caller to pick the ones it knows.
    pub fn tagged_fields_read(&mut self) -> Result<Vec<(u32, Bytes)>, GroupError> {
        if !self.flexible {
            return Ok(Vec::new());
        }
        let count = self.uvarint("tagged field count")?;
        if count > self.buf.remaining() as u64 {
            return Err(malformed(format!("{count} tagged fields claimed")));
        }
        let mut fields = Vec::new();
        for _ in 0..count {
            let tag = u32::try_from(self.uvarint("tag")?).map_err(|_| malformed("tag"))?;
            let size = usize::try_from(self.uvarint("tagged field size")?)
                .map_err(|_| malformed("tagged field size"))?;
            fields.push((tag, self.raw(size, "tagged field")?));
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_compact_round_trip() {
        for flexible in [false, true] {
            let mut w = Writer::new(flexible);
            w.string("héllo").unwrap();
            w.nullable_string(None).unwrap();
            w.bytes(&[1, 2, 3]).unwrap();
            w.array_len(2).unwrap();
            w.i32(-5);
            w.i64(1 << 40);
            w.tagged_fields();
            let mut r = Reader::new(w.finish(), flexible);
            assert_eq!(r.string("s").unwrap(), "héllo");
            assert_eq!(r.nullable_string("n").unwrap(), None);
            assert_eq!(&r.bytes("b").unwrap()[..], &[1, 2, 3]);
            // The count is checked against the bytes left (two i32/i64 follow).
            assert_eq!(r.array_len("a").unwrap(), 2);
            assert_eq!(r.i32("i").unwrap(), -5);
            assert_eq!(r.i64("l").unwrap(), 1 << 40);
            r.tagged_fields().unwrap();
            assert!(r.i16("past the end").is_err());
        }
    }

    #[test]
    fn compact_lengths_are_varints_of_len_plus_one() {
        let mut w = Writer::new(true);
        w.string(&"x".repeat(200)).unwrap();
        let bytes = w.finish();
        // 201 = 0xC9 → varint 0xC9 0x01.
        assert_eq!(&bytes[..2], &[0xC9, 0x01]);
    }

    #[test]
    fn absurd_array_counts_are_refused() {
        let mut w = Writer::new(false);
        w.i32(1_000_000_000);
        let mut r = Reader::new(w.finish(), false);
        assert!(r.array_len("members").is_err());
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        let mut r = Reader::new(Bytes::from_static(&[1, 7, 2, 0xAA, 0xBB, 9]), true);
        r.tagged_fields().unwrap();
        assert!(r.i16("after").is_err(), "one byte left");
    }
}
