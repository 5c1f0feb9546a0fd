//! `--hdr-log`: the run's interval histograms in the standard HdrHistogram interval log format
//! (the `.hlog` that HistogramLogProcessor, HdrHistogramVisualizer and the `hdrhistogram` crate read):
//! version and start-time headers, the column legend, then one tagged, deflate-compressed V2
//! histogram per interval (`Tag=produce` / `Tag=e2e`), values in nanoseconds.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::error::{BenchError, Result};
use crate::stats::IntervalHistogram;

/// The format version line Java's HistogramLogWriter writes.
pub const LOG_FORMAT_VERSION: &str = "[Histogram log format version 1.3]";
/// The column legend line that follows the headers.
pub const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
/// Interval_Max is printed in ms (values are ns), as jHiccup does.
pub const MAX_VALUE_DIVISOR: f64 = 1e6;

/// Encodes the intervals as an interval log.
pub fn encode(intervals: &[IntervalHistogram], started_at: SystemTime) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let _headers = IntervalLogWriterBuilder::new()
            .add_comment("[Logged with ringbroker-bench]")
            .add_comment(LOG_FORMAT_VERSION)
            .with_start_time(started_at)
            .with_base_time(started_at)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| BenchError::io("writing hlog headers", e))?;
    }
    out.write_all(LEGEND.as_bytes())
        .map_err(|e| BenchError::io("writing hlog legend", e))?;
    let mut writer = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| BenchError::io("writing hlog", e))?;
    for i in intervals {
        writer
            .write_histogram(&i.histogram, i.start, i.duration, Tag::new(i.kind.tag()))
            .map_err(|e| BenchError::Protocol(format!("serializing interval histogram: {e}")))?;
    }
    Ok(out)
}

/// Writes the interval log to `path`.
pub fn write(path: &Path, intervals: &[IntervalHistogram], started_at: SystemTime) -> Result<()> {
    let bytes = encode(intervals, started_at)?;
    std::fs::write(path, bytes)
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, LatencyKind};
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    use std::time::Duration;

    #[test]
    fn log_parses_back_with_tags_and_values() {
        let mut h = new_histogram();
        h.record(2_000_000).expect("in range");
        h.record(3_000).expect("in range");
        let intervals = vec![
            IntervalHistogram {
                start: Duration::ZERO,
                duration: Duration::from_secs(1),
                kind: LatencyKind::Produce,
                histogram: h.clone(),
            },
            IntervalHistogram {
                start: Duration::from_secs(1),
                duration: Duration::from_secs(1),
                kind: LatencyKind::E2e,
                histogram: h,
            },
        ];
        let bytes = encode(
            &intervals,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .expect("encodes");
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.contains("#[Histogram log format version 1.3]"));
        assert!(text.contains("#[StartTime: 1700000000.000"));
        assert!(text.contains(LEGEND));
        assert!(text.contains("Tag=produce,0.000,1.000,2.00"), "{text}");
        let mut found = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let Ok(LogEntry::Interval(i)) = entry {
                let decoded = base64_decode(i.encoded_histogram());
                let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                    .deserialize(&mut &decoded[..])
                    .expect("histogram");
                found.push((i.tag().map(|t| t.as_str().to_string()), h.len()));
            }
        }
        assert_eq!(
            found,
            vec![(Some("produce".into()), 2), (Some("e2e".into()), 2)]
        );
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
