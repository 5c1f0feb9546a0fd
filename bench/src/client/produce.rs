//! Pre-encoded Produce requests: encoded once with kafka-protocol around a pre-built batch, then
//! per send only the correlation id, partition index, timestamps, stamp and CRC are patched in place
//! (no copy of the records on the hot path).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use ringbroker_protocol::batch::BatchHeader;

use crate::client::admin::topic_name;
use crate::client::batch_view::{self, Stamp, STAMP_BYTES};
use crate::client::connection::encode_request_frame;
use crate::error::{BenchError, Result};

/// Offset of the correlation id in a framed request: size (4), api key (2), api version (2).
const CORRELATION_ID_OFFSET: usize = 8;
/// In non-flexible Produce versions a partition's data ends with `index: i32, records: i32 length +
/// bytes`, and with one topic and one partition the batch is the tail of the frame.
const PARTITION_INDEX_BEFORE_BATCH: usize = 8;
/// First flexible Produce version (compact encodings): our frame layout stops before it.
const FIRST_FLEXIBLE_PRODUCE_VERSION: i16 = 9;

/// A framed Produce request for one partition and one batch, ready to be patched and sent.
#[derive(Debug, Clone)]
pub struct ProduceFrame {
    bytes: Vec<u8>,
    batch_at: usize,
    stamp_at: Option<usize>,
    record_count: i32,
}

impl ProduceFrame {
    /// Encodes a Produce request around `batch` (a whole v2 record batch).
    pub fn new(
        topic: &str,
        acks: i16,
        timeout_ms: i32,
        version: i16,
        batch: Bytes,
    ) -> Result<Self> {
        if version >= FIRST_FLEXIBLE_PRODUCE_VERSION {
            return Err(BenchError::Protocol(format!(
                "Produce v{version} frames are not supported"
            )));
        }
        let header = BatchHeader::parse(&batch)
            .map_err(|e| BenchError::Batch(format!("built batch: {e}")))?;
        assert_eq!(
            header.total_bytes(),
            batch.len(),
            "one whole batch per frame"
        );
        let stamp_at = batch_view::first_value_range(&batch)
            .filter(|&(_, len)| len >= STAMP_BYTES)
            .map(|(at, _)| at);
        let batch_len = batch.len();
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let mut buf = BytesMut::with_capacity(batch_len + 128);
        encode_request_frame(&mut buf, &request, version, 0)?;
        let batch_at = buf.len() - batch_len;
        let length_at = batch_at - 4;
        assert_eq!(
            i32::from_be_bytes([
                buf[length_at],
                buf[length_at + 1],
                buf[length_at + 2],
                buf[length_at + 3]
            ]),
            batch_len as i32,
            "Produce v{version} frame layout: records must be the frame's tail"
        );
        Ok(ProduceFrame {
            bytes: buf.to_vec(),
            batch_at,
            stamp_at: stamp_at.map(|at| batch_at + at),
            record_count: header.record_count,
        })
    }

    /// Records in the batch.
    #[cfg(test)]
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of the record batch.
    pub fn batch_bytes(&self) -> usize {
        self.bytes.len() - self.batch_at
    }

    /// Whether the batch carries a precise (ns) send stamp in its first value.
    #[cfg(test)]
    pub fn has_stamp(&self) -> bool {
        self.stamp_at.is_some()
    }

    /// Patches the frame for one send and returns the bytes to write.
    pub fn prepare(&mut self, correlation_id: i32, partition: i32, stamp: Stamp) -> &[u8] {
        self.bytes[CORRELATION_ID_OFFSET..CORRELATION_ID_OFFSET + 4]
            .copy_from_slice(&correlation_id.to_be_bytes());
        let index_at = self.batch_at - PARTITION_INDEX_BEFORE_BATCH;
        self.bytes[index_at..index_at + 4].copy_from_slice(&partition.to_be_bytes());
        let first_ms = (stamp.first_ns / 1_000_000) as i64;
        let last_ns = stamp.first_ns + stamp.spacing_ns * (self.record_count.max(1) as u64 - 1);
        let stamp_in_batch = self.stamp_at.map(|at| at - self.batch_at);
        batch_view::patch_batch(
            &mut self.bytes[self.batch_at..],
            first_ms,
            (last_ns / 1_000_000) as i64,
            stamp_in_batch,
            stamp,
        );
        &self.bytes
    }
}

/// Outcome of one Produce response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProduceOutcome {
    /// Partitions answered with an error.
    pub errors: u32,
    /// The first error code seen (0 if none).
    pub first_error: i16,
}

/// Checks every partition result of a Produce response.
pub fn outcome(response: &ProduceResponse) -> ProduceOutcome {
    let mut out = ProduceOutcome::default();
    for topic in &response.responses {
        for p in &topic.partition_responses {
            if p.error_code != 0 {
                out.errors += 1;
                if out.first_error == 0 {
                    out.first_error = p.error_code;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::batch_view::tests::built_batch;
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable};
    use ringbroker_protocol::batch::{validate_batch, Compression};

    #[test]
    fn frames_build_for_every_version_we_speak() {
        let api = crate::client::versions::PRODUCE;
        for version in api.min..=api.max {
            let batch = Bytes::from(built_batch(2, b"", &[b'x'; 20], Compression::None));
            let mut frame = ProduceFrame::new("t", -1, 1000, version, batch).expect("frame");
            let bytes = Bytes::copy_from_slice(frame.prepare(
                1,
                0,
                Stamp {
                    first_ns: 1,
                    spacing_ns: 0,
                },
            ));
            let mut body = bytes.slice(4..);
            decode_request_header_from_buffer(&mut body).expect("header");
            ProduceRequest::decode(&mut body, version).expect("body decodes");
        }
        let batch = Bytes::from(built_batch(1, b"", &[b'x'; 20], Compression::None));
        assert!(
            ProduceFrame::new("t", 1, 1000, 9, batch).is_err(),
            "flexible versions are refused"
        );
    }

    #[test]
    fn frame_patches_decode_as_a_valid_request() {
        let batch = Bytes::from(built_batch(5, b"", &[b'x'; 100], Compression::None));
        let mut frame = ProduceFrame::new("topic", 1, 30_000, 7, batch).expect("frame");
        assert!(frame.has_stamp());
        assert_eq!(frame.record_count(), 5);
        let stamp = Stamp {
            first_ns: 5_000_000_000,
            spacing_ns: 1_000_000,
        };
        let bytes = Bytes::copy_from_slice(frame.prepare(77, 3, stamp));
        let mut body = bytes.slice(4..);
        let header = decode_request_header_from_buffer(&mut body).expect("header");
        assert_eq!(header.correlation_id, 77);
        let request = ProduceRequest::decode(&mut body, 7).expect("body");
        let p = &request.topic_data[0].partition_data[0];
        assert_eq!(p.index, 3);
        let records = p.records.as_ref().expect("records");
        let h = validate_batch(records).expect("valid batch");
        assert_eq!(batch_view::read_stamp(records), Some(stamp));
        assert_eq!((h.base_timestamp, h.max_timestamp), (5_000, 5_004));
    }
}
