//! Reading a broker config file into flat `key -> value` entries.
//!
//! Two syntaxes, one key space:
//! - TOML (`ringbroker.toml`): Kafka's setting names written as dotted keys (`log.dirs = "/var/lib/x"`,
//!   which TOML reads as nested tables and this module joins back into `log.dirs`);
//! - Kafka's `server.properties` (a file whose name ends in `.properties`): `key=value` lines, `#` and
//!   `!` comments, so a Kafka user can start from the file they have.
//!
//! Kafka's alternative spellings are folded into the one ringbroker reads
//! (`log.retention.hours`/`.minutes` into `log.retention.ms`, `log.dir` into `log.dirs`, a socket
//! buffer of -1 into 0), as Kafka itself resolves them. Which keys are known is decided by the caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SettingsError;

/// Largest config file read; a broker config is a few KiB, a bigger file is a mistake.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1 << 20;

/// The syntax of a config file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Toml,
    /// Kafka's `server.properties`.
    Properties,
}

/// A loaded config file: its entries by flat key.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub format: FileFormat,
    entries: BTreeMap<String, toml::Value>,
    /// Kafka spellings that were folded into another key, as `from -> to` (printed at start).
    pub folded: Vec<String>,
}

/// Kafka's retention in hours or minutes, folded into `log.retention.ms` (Kafka: ms wins over
/// minutes over hours).
const RETENTION_UNITS: [(&str, i64); 2] = [
    ("log.retention.minutes", 60_000),
    ("log.retention.hours", 3_600_000),
];

/// Kafka's socket buffer settings, where -1 means "the operating system's default" (ours: 0).
const SOCKET_BUFFER_KEYS: [&str; 2] = ["socket.send.buffer.bytes", "socket.receive.buffer.bytes"];

impl ConfigFile {
    /// Reads `path`: TOML, or Kafka properties when the name ends in `.properties`.
    pub fn load(path: &Path) -> Result<ConfigFile, SettingsError> {
        let unreadable = |reason: String| SettingsError::File {
            path: path.to_path_buf(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        if size > CONFIG_FILE_BYTES_MAX {
            return Err(unreadable(format!(
                "{size} bytes is larger than a config file can be ({CONFIG_FILE_BYTES_MAX})"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let format = if path.extension().is_some_and(|e| e == "properties") {
            FileFormat::Properties
        } else {
            FileFormat::Toml
        };
        ConfigFile::parse(&text, path, format)
    }

    /// Parses config text as if read from `path`.
    pub fn parse(text: &str, path: &Path, format: FileFormat) -> Result<ConfigFile, SettingsError> {
        let entries = match format {
            FileFormat::Toml => parse_toml(text).map_err(|reason| SettingsError::File {
                path: path.to_path_buf(),
                reason,
            })?,
            FileFormat::Properties => parse_properties(text),
        };
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            format,
            entries,
            folded: Vec::new(),
        };
        file.fold_kafka_spellings()?;
        Ok(file)
    }

    /// Every key in the file, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The raw value of `key`, if the file sets it.
    pub fn value(&self, key: &str) -> Option<&toml::Value> {
        self.entries.get(key)
    }

    /// The value of `key` as the text a flag would take: strings as written, numbers and booleans
    /// printed, arrays joined with commas (`log.dirs = ["/a"]`, Kafka lists).
    pub fn text(&self, key: &str) -> Result<Option<String>, SettingsError> {
        let Some(value) = self.entries.get(key) else {
            return Ok(None);
        };
        value_text(value)
            .map(Some)
            .ok_or_else(|| SettingsError::Invalid {
                origin: format!("config file {}", self.path.display()),
                key: key.to_string(),
                value: value.to_string(),
                reason: "expected a string, a number, a boolean or a list of them".to_string(),
            })
    }

    fn fold_kafka_spellings(&mut self) -> Result<(), SettingsError> {
        for (key, unit_ms) in RETENTION_UNITS {
            let Some(value) = self.entries.remove(key) else {
                continue;
            };
            if self.entries.contains_key("log.retention.ms") {
                self.folded.push(format!(
                    "{key} (ignored: log.retention.ms is set, as in Kafka)"
                ));
                continue;
            }
            let amount: i64 = value_text(&value)
                .and_then(|text| text.trim().parse().ok())
                .ok_or_else(|| SettingsError::Invalid {
                    origin: format!("config file {}", self.path.display()),
                    key: key.to_string(),
                    value: value.to_string(),
                    reason: "expected a whole number".to_string(),
                })?;
            let ms = if amount < 0 {
                -1
            } else {
                amount.saturating_mul(unit_ms)
            };
            self.entries
                .insert("log.retention.ms".to_string(), toml::Value::Integer(ms));
            self.folded
                .push(format!("{key} -> log.retention.ms = {ms}"));
        }
        if let Some(dir) = self.entries.remove("log.dir") {
            if self.entries.contains_key("log.dirs") {
                self.folded
                    .push("log.dir (ignored: log.dirs is set, as in Kafka)".to_string());
            } else {
                self.entries.insert("log.dirs".to_string(), dir);
                self.folded.push("log.dir -> log.dirs".to_string());
            }
        }
        for key in SOCKET_BUFFER_KEYS {
            let is_minus_one = self
                .entries
                .get(key)
                .and_then(value_text)
                .is_some_and(|text| text.trim() == "-1");
            if is_minus_one {
                self.entries
                    .insert(key.to_string(), toml::Value::Integer(0));
                self.folded
                    .push(format!("{key} = -1 -> 0 (the kernel's default)"));
            }
        }
        Ok(())
    }
}

fn value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(value_text)
            .collect::<Option<Vec<String>>>()
            .map(|texts| texts.join(",")),
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

/// TOML tables flattened into dotted keys: `[log] dirs = ".."` and `log.dirs = ".."` are the same.
fn parse_toml(text: &str) -> Result<BTreeMap<String, toml::Value>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.to_string().trim()))?;
    let mut entries = BTreeMap::new();
    flatten("", table, &mut entries);
    Ok(entries)
}

fn flatten(prefix: &str, table: toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            leaf => {
                out.insert(key, leaf);
            }
        }
    }
}

/// Java properties, as Kafka's files use them: `key=value` or `key: value` or `key value`, `#` and
/// `!` comments, a trailing `\` continues the line. Unicode escapes are not needed by any Kafka
/// setting ringbroker reads and are kept as written.
fn parse_properties(text: &str) -> BTreeMap<String, toml::Value> {
    let mut entries = BTreeMap::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            logical.push_str(continued);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let split = entry.find(['=', ':', ' ', '\t']);
        let (key, value) = match split {
            Some(at) => (&entry[..at], entry[at + 1..].trim_start()),
            None => (entry.as_str(), ""),
        };
        let value = value.strip_prefix(['=', ':']).unwrap_or(value);
        entries.insert(
            key.trim().to_string(),
            toml::Value::String(value.trim().to_string()),
        );
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_file(text: &str) -> ConfigFile {
        ConfigFile::parse(text, Path::new("t.toml"), FileFormat::Toml).unwrap()
    }

    #[test]
    fn dotted_keys_and_tables_flatten_to_kafka_names() {
        let file = toml_file(
            "listeners = \"PLAINTEXT://0.0.0.0:9092\"\nlog.dirs = \"/var/lib/rb\"\nnum.partitions = 3\n\
             [auto.create.topics]\nenable = false\n",
        );
        let keys: Vec<&str> = file.keys().collect();
        assert_eq!(
            keys,
            [
                "auto.create.topics.enable",
                "listeners",
                "log.dirs",
                "num.partitions"
            ]
        );
        assert_eq!(file.text("num.partitions").unwrap().as_deref(), Some("3"));
        assert_eq!(
            file.text("auto.create.topics.enable").unwrap().as_deref(),
            Some("false")
        );
        assert_eq!(file.text("absent").unwrap(), None);
    }

    #[test]
    fn arrays_are_kafka_lists_and_tables_at_a_leaf_are_refused() {
        let file = toml_file("log.dirs = [\"/a\", \"/b\"]\nwhen = 1979-05-27\n");
        assert_eq!(file.text("log.dirs").unwrap().as_deref(), Some("/a,/b"));
        let error = file.text("when").unwrap_err().to_string();
        assert!(error.contains("when"), "{error}");
    }

    #[test]
    fn bad_toml_names_the_file() {
        let error = ConfigFile::parse("listeners = ", Path::new("x.toml"), FileFormat::Toml)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("x.toml") && error.contains("TOML"),
            "{error}"
        );
    }

    #[test]
    fn properties_lines_comments_and_continuations() {
        let text = "# comment\n! also a comment\nnode.id=1\nlisteners = PLAINTEXT://:9092,\\\n  CONTROLLER://:9093\n\
                    num.partitions: 3\nlog.dirs /tmp/kraft\nempty=\n";
        let file =
            ConfigFile::parse(text, Path::new("s.properties"), FileFormat::Properties).unwrap();
        assert_eq!(file.text("node.id").unwrap().as_deref(), Some("1"));
        assert_eq!(
            file.text("listeners").unwrap().as_deref(),
            Some("PLAINTEXT://:9092,CONTROLLER://:9093")
        );
        assert_eq!(file.text("num.partitions").unwrap().as_deref(), Some("3"));
        assert_eq!(
            file.text("log.dirs").unwrap().as_deref(),
            Some("/tmp/kraft")
        );
        assert_eq!(file.text("empty").unwrap().as_deref(), Some(""));
    }

    #[test]
    fn kafka_spellings_fold_as_kafka_resolves_them() {
        let file = toml_file(
            "log.retention.hours = 168\nlog.dir = \"/d\"\nsocket.send.buffer.bytes = -1\n",
        );
        assert_eq!(
            file.text("log.retention.ms").unwrap().as_deref(),
            Some("604800000")
        );
        assert_eq!(file.text("log.dirs").unwrap().as_deref(), Some("/d"));
        assert_eq!(
            file.text("socket.send.buffer.bytes").unwrap().as_deref(),
            Some("0")
        );
        assert!(file
            .keys()
            .all(|k| k != "log.retention.hours" && k != "log.dir"));
        // Milliseconds win over hours; -1 stays "forever".
        let file = toml_file("log.retention.ms = 1000\nlog.retention.hours = 1\n");
        assert_eq!(
            file.text("log.retention.ms").unwrap().as_deref(),
            Some("1000")
        );
        let file = toml_file("log.retention.minutes = -1\n");
        assert_eq!(
            file.text("log.retention.ms").unwrap().as_deref(),
            Some("-1")
        );
    }
}
