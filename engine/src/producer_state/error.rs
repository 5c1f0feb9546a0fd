//! Errors of the producer-state module.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProducerStateError {
    #[error("{op} {path}: {message}")]
    Io {
        op: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("producer state snapshot {path} is unusable: {reason}")]
    BadSnapshot { path: PathBuf, reason: String },
    #[error("reading the partition log for producer state: {0}")]
    Log(#[from] crate::storage::StorageError),
    #[error("producer id file {path} is corrupt: {reason}")]
    BadIdFile { path: PathBuf, reason: String },
    #[error("this broker has handed out every producer id of its range (see {dir})")]
    IdsExhausted { dir: PathBuf },
}

impl ProducerStateError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ProducerStateError::Io {
            op,
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
