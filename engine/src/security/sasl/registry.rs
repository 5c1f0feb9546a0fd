//! The broker's SCRAM credentials while it runs: the cluster's, as its metadata log holds them
//! (UserScramCredential records, as Kafka's KRaft keeps them), installed by shard 0 each time the
//! metadata image changes and read by every shard when a client authenticates. Also the
//! `--add-scram` credentials given at start, which the broker hands the controller once it has
//! joined the cluster (`cluster::migrate::scram_credentials`), and the reading of
//! `scram-credentials.json`, where an earlier ringbroker kept each broker's own credentials.
//!
//! Authentication takes the read lock once per authentication, never per request, and only to
//! clone an `Arc`; an install swaps that `Arc` (changes are rare administrative acts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

use super::credentials::{CredentialStore, ScramCredential, ScramMechanism};

/// The file an earlier ringbroker kept a broker's credentials in, under the data directory
/// (moved into the metadata log at start, then renamed).
pub const CREDENTIALS_FILE: &str = "scram-credentials.json";
/// Format version of the credentials file.
const FILE_VERSION: u32 = 1;

/// Why the credentials file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a credentials file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The running broker's credentials (see the module doc).
#[derive(Debug, Default)]
pub struct CredentialRegistry {
    /// The cluster's credentials as of the last image installed.
    installed: RwLock<Arc<CredentialStore>>,
    /// The `--add-scram` credentials (hashed at start; the passwords are not kept).
    bootstrap: CredentialStore,
}

impl CredentialRegistry {
    /// A registry with `bootstrap` (the `--add-scram` credentials) to hand the cluster, and no
    /// installed credentials yet.
    pub fn new(bootstrap: CredentialStore) -> Self {
        CredentialRegistry {
            installed: RwLock::new(Arc::new(CredentialStore::default())),
            bootstrap,
        }
    }

    /// The current credentials (a poisoned lock still holds a whole store: writers swap it).
    pub fn read(&self) -> Arc<CredentialStore> {
        self.installed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `--add-scram` credentials given at start.
    pub fn bootstrap(&self) -> &CredentialStore {
        &self.bootstrap
    }

    /// Makes `store` (a metadata image's credentials) the ones clients authenticate against.
    pub fn install(&self, store: &Arc<CredentialStore>) {
        let mut installed = self.installed.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&installed, store) {
            *installed = store.clone();
        }
    }
}

#[derive(Deserialize)]
struct FileFormat {
    version: u32,
    credentials: Vec<StoredCredential>,
}

#[derive(Deserialize)]
struct StoredCredential {
    user: String,
    mechanism: String,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

/// Reads `scram-credentials.json` of `data_dir`, if there is one.
pub fn read_file(data_dir: &Path) -> Result<Option<CredentialStore>, RegistryError> {
    let path = data_dir.join(CREDENTIALS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RegistryError::Read { path, source }),
    };
    let corrupt = |reason: String| RegistryError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file: FileFormat = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FILE_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    let mut store = CredentialStore::default();
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
    Ok(Some(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_store_replaces_the_previous_one() {
        let mut bootstrap = CredentialStore::default();
        bootstrap
            .add_scram("SCRAM-SHA-512=[name=admin,password=first]")
            .unwrap();
        let registry = CredentialRegistry::new(bootstrap);
        assert!(registry.read().is_empty(), "nothing before the cluster's");
        assert_eq!(registry.bootstrap().len(), 1);
        let mut cluster = CredentialStore::default();
        cluster.insert(
            "alice",
            ScramMechanism::Sha256,
            ScramCredential::from_password(ScramMechanism::Sha256, b"pw", b"s", 4096),
        );
        let cluster = Arc::new(cluster);
        registry.install(&cluster);
        assert!(Arc::ptr_eq(&registry.read(), &cluster));
        assert!(registry
            .read()
            .get("admin", ScramMechanism::Sha512)
            .is_none());
    }

    #[test]
    fn an_earlier_credentials_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_file(dir.path()).unwrap().is_none());
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, b"second", b"salt", 8192);
        let text = serde_json::json!({
            "version": 1,
            "credentials": [{
                "user": "admin",
                "mechanism": "SCRAM-SHA-512",
                "iterations": 8192,
                "salt": BASE64.encode(&credential.salt),
                "stored_key": BASE64.encode(&credential.stored_key),
                "server_key": BASE64.encode(&credential.server_key),
            }]
        });
        std::fs::write(dir.path().join(CREDENTIALS_FILE), text.to_string()).unwrap();
        let store = read_file(dir.path()).unwrap().unwrap();
        let admin = store.get("admin", ScramMechanism::Sha512).unwrap();
        assert!(admin.matches_password(ScramMechanism::Sha512, b"second"));
        assert_eq!(admin.iterations, 8192);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CREDENTIALS_FILE), "not json").unwrap();
        let error = read_file(dir.path()).unwrap_err().to_string();
        assert!(error.contains(CREDENTIALS_FILE), "{error}");
    }
}
