//! The broker's SCRAM credentials while it runs: read by every shard when a client authenticates,
//! changed by AlterUserScramCredentials (what `kafka-configs --entity-type users` sends), and kept
//! durably in one file of the data directory so a restart finds them.
//!
//! Not the cluster's metadata yet: each broker keeps its own file (a credential changed through
//! one broker is not seen by the others). Authentication reads take a read lock once per
//! authentication, never per request; writes are rare administrative changes, written to a
//! temporary file, synced and renamed over the old one.

use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::credentials::{CredentialStore, ScramCredential, ScramMechanism};

/// The credentials file, under the data directory.
pub const CREDENTIALS_FILE: &str = "scram-credentials.json";
/// Format version of the credentials file.
const FILE_VERSION: u32 = 1;

/// Why the credentials cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a credentials file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One change of AlterUserScramCredentials.
pub enum Change {
    Delete(String, ScramMechanism),
    Upsert(String, ScramMechanism, ScramCredential),
}

/// The running broker's credentials (see the module doc).
#[derive(Debug, Default)]
pub struct CredentialRegistry {
    store: RwLock<CredentialStore>,
    /// Where changes are saved, once the data directory is known (`open_file`).
    file: OnceLock<PathBuf>,
}

impl CredentialRegistry {
    /// A registry holding `bootstrap` (the `--add-scram` credentials), in memory until
    /// `open_file`.
    pub fn new(bootstrap: CredentialStore) -> Self {
        CredentialRegistry {
            store: RwLock::new(bootstrap),
            file: OnceLock::new(),
        }
    }

    /// Reads the current credentials (a poisoned lock still holds consistent data: writers
    /// replace the store whole).
    pub fn read(&self) -> RwLockReadGuard<'_, CredentialStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the credentials file of `data_dir`, keeps from the bootstrap credentials those the
    /// file does not hold (a first start, or a user added to `--add-scram` since), and saves the
    /// result. From then on every change is saved.
    pub fn open_file(&self, data_dir: &Path) -> Result<(), RegistryError> {
        let path = data_dir.join(CREDENTIALS_FILE);
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        let mut merged = load(&path)?;
        for (user, mechanism, credential) in store.entries() {
            if merged.get(user, mechanism).is_none() {
                merged.insert(user, mechanism, credential.clone());
            }
        }
        save(&path, &merged)?;
        *store = merged;
        // Only the first call attaches a file (the server opens it once at start).
        let _ = self.file.set(path);
        Ok(())
    }

    /// Applies `changes` all at once, saving the file first: on a failed save nothing changes.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(), RegistryError> {
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        let mut next = store.clone();
        for change in changes {
            match change {
                Change::Delete(user, mechanism) => next.remove(&user, mechanism),
                Change::Upsert(user, mechanism, credential) => {
                    next.insert(&user, mechanism, credential)
                }
            }
        }
        if let Some(path) = self.file.get() {
            save(path, &next)?;
        }
        *store = next;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    credentials: Vec<StoredCredential>,
}

#[derive(Serialize, Deserialize)]
struct StoredCredential {
    user: String,
    mechanism: String,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

fn load(path: &Path) -> Result<CredentialStore, RegistryError> {
    let mut store = CredentialStore::default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
        Err(source) => {
            return Err(RegistryError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: FileFormat = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FILE_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    for entry in file.credentials {
        let mechanism = entry
            .mechanism
            .parse()
            .ok()
            .and_then(ScramMechanism::of)
            .ok_or_else(|| corrupt(format!("unknown mechanism {}", entry.mechanism)))?;
        let decode = |field: &str| {
            BASE64
                .decode(field)
                .map_err(|e| corrupt(format!("bad base64: {e}")))
        };
        let credential = ScramCredential {
            salt: decode(&entry.salt)?,
            iterations: entry.iterations,
            stored_key: decode(&entry.stored_key)?,
            server_key: decode(&entry.server_key)?,
        };
        store.insert(&entry.user, mechanism, credential);
    }
    Ok(store)
}

fn save(path: &Path, store: &CredentialStore) -> Result<(), RegistryError> {
    let write_error = |source: std::io::Error| RegistryError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut credentials: Vec<StoredCredential> = store
        .entries()
        .map(|(user, mechanism, credential)| StoredCredential {
            user: user.to_string(),
            mechanism: mechanism.sasl().name().to_string(),
            iterations: credential.iterations,
            salt: BASE64.encode(&credential.salt),
            stored_key: BASE64.encode(&credential.stored_key),
            server_key: BASE64.encode(&credential.server_key),
        })
        .collect();
    credentials.sort_by(|a, b| (&a.user, &a.mechanism).cmp(&(&b.user, &b.mechanism)));
    let text = serde_json::to_string_pretty(&FileFormat {
        version: FILE_VERSION,
        credentials,
    })
    .map_err(|e| write_error(std::io::Error::other(e)))?;
    crate::security::durable::write_atomically(path, &text).map_err(write_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_a_reopen_and_bootstrap_does_not_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut bootstrap = CredentialStore::default();
        bootstrap
            .add_scram("SCRAM-SHA-512=[name=admin,password=first]")
            .unwrap();
        let registry = CredentialRegistry::new(bootstrap.clone());
        registry.open_file(dir.path()).unwrap();
        let changed =
            ScramCredential::from_password(ScramMechanism::Sha512, b"second", b"salt", 4096);
        registry
            .apply(vec![
                Change::Upsert("admin".into(), ScramMechanism::Sha512, changed),
                Change::Upsert(
                    "alice".into(),
                    ScramMechanism::Sha256,
                    ScramCredential::from_password(ScramMechanism::Sha256, b"pw", b"s", 4096),
                ),
            ])
            .unwrap();
        registry
            .apply(vec![Change::Delete("alice".into(), ScramMechanism::Sha256)])
            .unwrap();
        // A restart with the same --add-scram keeps the changed password.
        let reopened = CredentialRegistry::new(bootstrap);
        reopened.open_file(dir.path()).unwrap();
        let store = reopened.read();
        let admin = store.get("admin", ScramMechanism::Sha512).unwrap();
        assert!(admin.matches_password(ScramMechanism::Sha512, b"second"));
        assert!(store.get("alice", ScramMechanism::Sha256).is_none());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CREDENTIALS_FILE), "not json").unwrap();
        let error = CredentialRegistry::default()
            .open_file(dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains(CREDENTIALS_FILE), "{error}");
    }
}
