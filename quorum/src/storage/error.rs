//! What can go wrong in the raft storage: I/O on a named file, or a file whose content cannot be
//! the storage's own (a damaged record in the middle is cut as a torn tail; this is for records
//! whose CRC holds but whose content is impossible, and for a snapshot file that fails its CRC).

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("cannot {operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is corrupt: {reason}; move the quorum's data dir aside to rebuild this node from the leader", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{} was written by a quorum of voters {stored:?}, but the configuration names {configured:?}; controller.quorum.voters is static: start with the voters this data dir belongs to", path.display())]
    VotersChanged {
        path: PathBuf,
        stored: Vec<u64>,
        configured: Vec<u64>,
    },
}

impl StorageError {
    /// A closure that wraps a glommio or std error of `operation` on `path`.
    pub fn io<'a, E: Into<std::io::Error>>(
        operation: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(E) -> StorageError + 'a {
        move |source| StorageError::Io {
            operation,
            path: path.to_owned(),
            source: source.into(),
        }
    }

    pub fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}
