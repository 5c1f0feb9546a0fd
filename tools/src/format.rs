//! How `ringbroker consume` prints a record: Kafka's console-consumer layout driven by
//! `--property print.*=true` (the default prints the value alone), a kcat-style `--format` string, or
//! one JSON object per record.

use ringbroker_protocol::records::OwnedRecord;
use serde_json::json;

/// Printing options parsed from `--property` / `--format` / `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// Kafka's DefaultMessageFormatter.
    Console(ConsoleFormat),
    /// kcat-style tokens: %t %p %o %k %s %T %h %K %S %%, and \n \t \\ escapes.
    Template(Vec<Piece>),
    /// One JSON object per line.
    Json,
}

/// Kafka DefaultMessageFormatter properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFormat {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: String,
    pub line_separator: String,
    pub headers_separator: String,
    pub null_literal: String,
}

impl Default for ConsoleFormat {
    fn default() -> Self {
        ConsoleFormat {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            null_literal: "null".into(),
        }
    }
}

impl ConsoleFormat {
    /// Applies `--property` pairs; unknown keys are an error naming the supported ones.
    pub fn from_properties(properties: &[(String, String)]) -> Result<ConsoleFormat, String> {
        let mut format = ConsoleFormat::default();
        for (key, value) in properties {
            let flag = || {
                value
                    .parse::<bool>()
                    .map_err(|_| format!("{key} must be true or false, got '{value}'"))
            };
            match key.as_str() {
                "print.timestamp" => format.print_timestamp = flag()?,
                "print.partition" => format.print_partition = flag()?,
                "print.offset" => format.print_offset = flag()?,
                "print.headers" => format.print_headers = flag()?,
                "print.key" => format.print_key = flag()?,
                "print.value" => format.print_value = flag()?,
                "key.separator" => format.key_separator = unescape(value),
                "line.separator" => format.line_separator = unescape(value),
                "headers.separator" => format.headers_separator = unescape(value),
                "null.literal" => format.null_literal = value.clone(),
                other => {
                    return Err(format!(
                        "unknown property '{other}': supported are print.timestamp, print.partition, print.offset, \
                         print.headers, print.key, print.value, key.separator, line.separator, headers.separator, \
                         null.literal"
                    ))
                }
            }
        }
        Ok(format)
    }
}

/// One part of a `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
    KeyLength,
    ValueLength,
}

/// Parses a kcat-style format string.
pub fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = unescape(template).chars().collect::<Vec<_>>().into_iter();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            text.push(ch);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => {
                text.push('%');
                continue;
            }
            Some('t') => Piece::Topic,
            Some('p') => Piece::Partition,
            Some('o') => Piece::Offset,
            Some('k') => Piece::Key,
            Some('s') => Piece::Value,
            Some('T') => Piece::Timestamp,
            Some('h') => Piece::Headers,
            Some('K') => Piece::KeyLength,
            Some('S') => Piece::ValueLength,
            Some(other) => {
                return Err(format!(
                    "unknown --format token '%{other}': use %t %p %o %k %s %T %h %K %S %%"
                ))
            }
            None => return Err("--format ends with a lone '%'".into()),
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Turns the escapes \n, \t, \r and \\ into their characters (shells pass them literally).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl RecordFormat {
    /// Appends the printed form of `record` to `out`.
    pub fn write(&self, out: &mut Vec<u8>, topic: &str, partition: i32, record: &OwnedRecord) {
        match self {
            RecordFormat::Console(format) => write_console(format, out, partition, record),
            RecordFormat::Template(pieces) => write_template(pieces, out, topic, partition, record),
            RecordFormat::Json => {
                let text = |bytes: &Option<bytes::Bytes>| {
                    bytes
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                let headers: Vec<serde_json::Value> = record
                    .headers
                    .iter()
                    .map(|(key, value)| json!({ "key": key, "value": text(value) }))
                    .collect();
                let line = json!({
                    "topic": topic,
                    "partition": partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp_ms,
                    "key": text(&record.key),
                    "value": text(&record.value),
                    "headers": headers,
                });
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
        }
    }
}

fn write_bytes_or_null(out: &mut Vec<u8>, bytes: &Option<bytes::Bytes>, null: &str) {
    match bytes {
        Some(bytes) => out.extend_from_slice(bytes),
        None => out.extend_from_slice(null.as_bytes()),
    }
}

fn write_console(format: &ConsoleFormat, out: &mut Vec<u8>, partition: i32, record: &OwnedRecord) {
    let separator = format.key_separator.as_bytes();
    if format.print_timestamp {
        out.extend_from_slice(format!("CreateTime:{}", record.timestamp_ms).as_bytes());
        out.extend_from_slice(separator);
    }
    if format.print_partition {
        out.extend_from_slice(format!("Partition:{partition}").as_bytes());
        out.extend_from_slice(separator);
    }
    if format.print_offset {
        out.extend_from_slice(format!("Offset:{}", record.offset).as_bytes());
        out.extend_from_slice(separator);
    }
    if format.print_headers {
        if record.headers.is_empty() {
            out.extend_from_slice(b"NO_HEADERS");
        }
        for (index, (key, value)) in record.headers.iter().enumerate() {
            if index > 0 {
                out.extend_from_slice(format.headers_separator.as_bytes());
            }
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            write_bytes_or_null(out, value, &format.null_literal);
        }
        out.extend_from_slice(separator);
    }
    if format.print_key {
        write_bytes_or_null(out, &record.key, &format.null_literal);
        if format.print_value {
            out.extend_from_slice(separator);
        }
    }
    if format.print_value {
        write_bytes_or_null(out, &record.value, &format.null_literal);
    }
    out.extend_from_slice(format.line_separator.as_bytes());
}

fn write_template(
    pieces: &[Piece],
    out: &mut Vec<u8>,
    topic: &str,
    partition: i32,
    record: &OwnedRecord,
) {
    let length = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(-1, |b| b.len() as i64);
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
            Piece::Topic => out.extend_from_slice(topic.as_bytes()),
            Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
            Piece::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
            // kcat prints nothing for a null key or value.
            Piece::Key => write_bytes_or_null(out, &record.key, ""),
            Piece::Value => write_bytes_or_null(out, &record.value, ""),
            Piece::Timestamp => out.extend_from_slice(record.timestamp_ms.to_string().as_bytes()),
            Piece::Headers => {
                for (index, (key, value)) in record.headers.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    out.push(b'=');
                    write_bytes_or_null(out, value, "");
                }
            }
            Piece::KeyLength => out.extend_from_slice(length(&record.key).to_string().as_bytes()),
            Piece::ValueLength => {
                out.extend_from_slice(length(&record.value).to_string().as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record() -> OwnedRecord {
        OwnedRecord {
            offset: 42,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"user1")),
            value: Some(Bytes::from_static(b"clicked")),
            headers: vec![
                ("trace".into(), Some(Bytes::from_static(b"abc"))),
                ("empty".into(), None),
            ],
        }
    }

    fn render(format: &RecordFormat) -> String {
        let mut out = Vec::new();
        format.write(&mut out, "events", 3, &record());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_prints_the_value_alone() {
        assert_eq!(
            render(&RecordFormat::Console(ConsoleFormat::default())),
            "clicked\n"
        );
    }

    #[test]
    fn print_properties_follow_kafkas_order() {
        let properties: Vec<(String, String)> = [
            "print.key",
            "print.partition",
            "print.offset",
            "print.timestamp",
            "print.headers",
        ]
        .iter()
        .map(|key| (key.to_string(), "true".to_string()))
        .collect();
        let format = ConsoleFormat::from_properties(&properties).unwrap();
        assert_eq!(
            render(&RecordFormat::Console(format)),
            "CreateTime:1700000000000\tPartition:3\tOffset:42\ttrace:abc,empty:null\tuser1\tclicked\n"
        );
        let format = ConsoleFormat::from_properties(&[
            ("print.key".into(), "true".into()),
            ("key.separator".into(), ":".into()),
        ])
        .unwrap();
        assert_eq!(render(&RecordFormat::Console(format)), "user1:clicked\n");
        assert!(ConsoleFormat::from_properties(&[("print.keys".into(), "true".into())]).is_err());
    }

    #[test]
    fn templates_work_like_kcat() {
        let pieces = parse_template("%t/%p@%o %k=%s (%K,%S) [%h] %T 100%%\\n").unwrap();
        assert_eq!(
            render(&RecordFormat::Template(pieces)),
            "events/3@42 user1=clicked (5,7) [trace=abc,empty=] 1700000000000 100%\n"
        );
        assert!(parse_template("%x").is_err());
        assert!(parse_template("abc%").is_err());
    }

    #[test]
    fn json_lines_carry_every_field() {
        let line = render(&RecordFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["offset"], 42);
        assert_eq!(value["key"], "user1");
        assert_eq!(value["headers"][1]["value"], serde_json::Value::Null);
    }
}
