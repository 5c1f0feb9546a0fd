//! The raft log file (`raft.log`): a header record, then entry and hard-state records appended
//! as raft-rs hands them over, each append made durable by one fdatasync. Replay applies the
//! records in order (an entry at an index already present replaces that entry and the rest);
//! a torn or corrupt tail is cut. Compaction and snapshot installation write a new file with
//! only what stays and rename it over the old one.

use std::path::{Path, PathBuf};

use glommio::io::BufferedFile;
use raft::eraftpb::{Entry, HardState};

use super::codec::{self, LogHeader};
use super::error::StorageError;
use super::files;
use super::record::{self, RecordKind, TailDamage};
use crate::limits::{MAX_LOG_FILE_BYTES, MAX_LOG_RECORD_BYTES};

/// Name of the log file in the quorum's data dir.
pub const LOG_FILE_NAME: &str = "raft.log";

/// An open log file, positioned for appends.
pub struct LogFile {
    path: PathBuf,
    file: BufferedFile,
    /// Bytes of whole records; the next append goes here.
    end: u64,
}

/// What a replay found in the file.
#[derive(Debug)]
pub struct LoadedLog {
    pub header: LogHeader,
    /// Entries from `header.base_index + 1` on, contiguous, conflicts already resolved.
    pub entries: Vec<Entry>,
    /// The last hard state written, if any.
    pub hard_state: Option<HardState>,
    /// The damage that ended the replay early and how many bytes were cut with it.
    pub cut: Option<(TailDamage, u64)>,
}

impl LogFile {
    /// Opens and replays `path`, cutting a torn tail; `None` when the file does not exist.
    pub async fn open(path: &Path) -> Result<Option<(LogFile, LoadedLog)>, StorageError> {
        let Some(file) = files::open_read_write(path).await? else {
            return Ok(None);
        };
        let bytes = files::read_all(&file, path, MAX_LOG_FILE_BYTES).await?;
        let scan = record::scan(&bytes, MAX_LOG_RECORD_BYTES);
        let mut loaded = replay(path, &scan.records)?;
        let valid = scan.valid_bytes as u64;
        if let Some(damage) = scan.damage {
            let cut_bytes = bytes.len() as u64 - valid;
            tracing::warn!(path = %path.display(), %damage, cut_bytes, "raft log: cutting a torn tail");
            file.truncate(valid)
                .await
                .map_err(StorageError::io("truncate", path))?;
            file.fdatasync()
                .await
                .map_err(StorageError::io("fdatasync", path))?;
            loaded.cut = Some((damage, cut_bytes));
        }
        let log = LogFile {
            path: path.to_owned(),
            file,
            end: valid,
        };
        Ok(Some((log, loaded)))
    }

    /// Writes a complete log (header, hard state, entries) under `path`, replacing any file there
    /// atomically, and opens it for appends.
    pub async fn create(
        path: &Path,
        header: &LogHeader,
        hard_state: &HardState,
        entries: &[Entry],
    ) -> Result<LogFile, StorageError> {
        let mut bytes = Vec::new();
        record::encode(
            RecordKind::LogHeader,
            &codec::encode_log_header(header),
            &mut bytes,
        );
        record::encode(
            RecordKind::HardState,
            &codec::encode_hard_state(hard_state),
            &mut bytes,
        );
        for entry in entries {
            encode_entry(path, entry, &mut bytes)?;
        }
        let end = bytes.len() as u64;
        files::replace_atomically(path, bytes).await?;
        let file = files::open_read_write(path).await?.ok_or_else(|| {
            StorageError::corrupt(path, "the log file vanished right after it was written")
        })?;
        Ok(LogFile {
            path: path.to_owned(),
            file,
            end,
        })
    }

    /// Appends entries and, when given, a hard state, durably: the call returns after fdatasync.
    pub async fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        for entry in entries {
            encode_entry(&self.path, entry, &mut bytes)?;
        }
        if let Some(state) = hard_state {
            record::encode(
                RecordKind::HardState,
                &codec::encode_hard_state(state),
                &mut bytes,
            );
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let length = bytes.len() as u64;
        files::write_all_at(&self.file, &self.path, bytes, self.end).await?;
        self.file
            .fdatasync()
            .await
            .map_err(StorageError::io("fdatasync", &self.path))?;
        self.end += length;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn close(self) -> Result<(), StorageError> {
        self.file
            .close()
            .await
            .map_err(StorageError::io("close", &self.path))
    }
}

fn encode_entry(path: &Path, entry: &Entry, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let payload =
        codec::encode_entry(entry).map_err(|reason| StorageError::corrupt(path, reason))?;
    if payload.len() >= MAX_LOG_RECORD_BYTES {
        // The quorum refuses proposals this big; an entry from a peer this big is refused too.
        return Err(StorageError::corrupt(
            path,
            format!(
                "entry {} encodes to {} bytes, above the record limit of {MAX_LOG_RECORD_BYTES}",
                entry.index,
                payload.len()
            ),
        ));
    }
    record::encode(RecordKind::Entry, &payload, out);
    Ok(())
}

/// Applies the records of a scan in order.
fn replay(path: &Path, records: &[record::Record<'_>]) -> Result<LoadedLog, StorageError> {
    let corrupt = |reason: String| StorageError::corrupt(path, reason);
    let Some((first, rest)) = records.split_first() else {
        return Err(corrupt(
            "it holds no header (it is written whole before first use)".into(),
        ));
    };
    if first.kind != RecordKind::LogHeader {
        return Err(corrupt(format!("it starts with a {:?} record", first.kind)));
    }
    let header = codec::decode_log_header(first.payload).map_err(corrupt)?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut hard_state = None;
    for record in rest {
        match record.kind {
            RecordKind::Entry => {
                let entry = codec::decode_entry(record.payload).map_err(corrupt)?;
                let last = header.base_index + entries.len() as u64;
                if entry.index <= header.base_index || entry.index > last + 1 {
                    return Err(corrupt(format!(
                        "entry {} at byte {} does not continue the log (base {}, last {last})",
                        entry.index, record.offset, header.base_index
                    )));
                }
                entries.truncate((entry.index - header.base_index - 1) as usize);
                entries.push(entry);
            }
            RecordKind::HardState => {
                hard_state = Some(codec::decode_hard_state(record.payload).map_err(corrupt)?);
            }
            other => {
                return Err(corrupt(format!(
                    "a {other:?} record at byte {}",
                    record.offset
                )))
            }
        }
    }
    Ok(LoadedLog {
        header,
        entries,
        hard_state,
        cut: None,
    })
}
