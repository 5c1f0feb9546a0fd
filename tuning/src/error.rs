//! Error types of the tuning crate: [`ProfileError`] for loading and resolving profiles (every message names
//! the key and the fix), [`TuneError`] for the `tune` commands' I/O.

use std::path::PathBuf;

/// Why a profile could not be loaded, overridden or resolved for this machine.
///
/// Every variant's message says what is wrong and how to fix it; the ones about a key name that key.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile file could not be read.
    #[error(
        "cannot read profile {path}: {source}; fix: pass an existing, readable file to --profile"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("profile {profile} is not valid TOML: {message}; fix: correct the syntax at the place shown")]
    Syntax { profile: String, message: String },
    /// A key this version does not know (often a typo).
    #[error("profile {profile}: unknown key `{key}`; fix: {fix}")]
    UnknownKey {
        profile: String,
        key: String,
        fix: String,
    },
    /// A key's value has the wrong type, is out of range, or is impossible on this machine.
    #[error("profile {profile}: key `{key}` = {value} is invalid: {reason}; fix: {fix}")]
    InvalidValue {
        profile: String,
        key: String,
        value: String,
        reason: String,
        fix: String,
    },
    /// A machine fact needed to resolve the profile could not be read.
    #[error("cannot read {what} of this machine: {source}; fix: run on Linux with /proc and /sys mounted")]
    Machine {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl ProfileError {
    /// The profile key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ProfileError::UnknownKey { key, .. } | ProfileError::InvalidValue { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }
}

/// Failures of the `tune` commands outside profile handling (data directory I/O, io_uring, output files).
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// An I/O step failed; `what` says which one.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A configuration the command cannot run with.
    #[error("{0}")]
    Invalid(String),
}

impl TuneError {
    /// Wraps an I/O error with the step that failed, e.g. `"open /data/iotune.tmp with O_DIRECT"`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TuneError::Io {
            what: what.into(),
            source,
        }
    }
}
