//! The broker's copy of the cluster's ACLs, shared by every shard: the ACLs of the metadata image
//! (`cluster::image`), installed by shard 0 each time it publishes a newer image
//! (`cluster::publish`). CreateAcls and DeleteAcls change them through the controller, which
//! commits Kafka's AccessControlEntry / RemoveAccessControlEntry records, so every broker of the
//! cluster holds the same ACLs.
//!
//! Each change bumps `generation`: connections cache their decisions and trust them only while
//! the generation they were made at is current, so the request path reads one atomic instead of
//! taking the lock (`session`).
//!
//! `acls.json` is where a broker of an earlier version kept its own ACLs; `read_file` reads it
//! once so that they move into the metadata log (`cluster::migrate`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::types::AclBinding;

/// The ACL file of earlier versions, under the data directory.
pub const ACLS_FILE: &str = "acls.json";
/// Format version of the ACL file.
const FILE_VERSION: u32 = 1;
/// Most ACLs a cluster holds: every cache miss scans them (the controller refuses more).
pub const MAX_ACLS: usize = 100_000;

/// Why an ACL file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ACL file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    acls: Vec<AclBinding>,
}

/// The running broker's ACLs (see the module doc).
#[derive(Debug, Default)]
pub struct AclStore {
    /// The image's ACLs, sorted and without duplicates; replaced whole on a change.
    acls: RwLock<Arc<Vec<AclBinding>>>,
    /// Bumped after every change is installed.
    generation: AtomicU64,
}

impl AclStore {
    /// The current ACLs (an `Arc`: the lock is held only to clone it).
    pub fn snapshot(&self) -> Arc<Vec<AclBinding>> {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The generation of the current ACLs.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs the ACLs of a metadata image (sorted, each once, as the image keeps them). The
    /// image shares its list until it changes, so an unchanged list is recognized by pointer and
    /// costs the connections' caches nothing.
    pub fn install(&self, acls: &Arc<Vec<AclBinding>>) {
        debug_assert!(acls.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
        {
            let mut current = self.acls.write().unwrap_or_else(|e| e.into_inner());
            if Arc::ptr_eq(&current, acls) {
                return;
            }
            *current = acls.clone();
        }
        // After the new list is in place: a reader that sees the new generation finds it.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Reads `acls.json` of `data_dir`, if there is one.
pub fn read_file(data_dir: &Path) -> Result<Option<Vec<AclBinding>>, StoreError> {
    let path = data_dir.join(ACLS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Read { path, source }),
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file: FileFormat = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FILE_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    Ok(Some(file.acls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::types::{Operation, PatternType, Permission, ResourceType};

    fn read_acl(name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn a_new_list_bumps_the_generation_and_the_same_list_does_not() {
        let store = AclStore::default();
        let before = store.generation();
        let acls = Arc::new(vec![read_acl("a"), read_acl("b")]);
        store.install(&acls);
        assert!(store.generation() > before);
        assert_eq!(store.snapshot(), acls);
        let after = store.generation();
        store.install(&acls.clone());
        assert_eq!(store.generation(), after, "the same list changes nothing");
    }

    #[test]
    fn the_file_of_earlier_versions_is_read_and_a_corrupt_one_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_file(dir.path()).unwrap().is_none());
        let text = serde_json::to_string(&FileFormat {
            version: FILE_VERSION,
            acls: vec![read_acl("a")],
        })
        .unwrap();
        std::fs::write(dir.path().join(ACLS_FILE), text).unwrap();
        assert_eq!(read_file(dir.path()).unwrap(), Some(vec![read_acl("a")]));
        std::fs::write(dir.path().join(ACLS_FILE), "[").unwrap();
        let error = read_file(dir.path()).unwrap_err();
        assert!(error.to_string().contains(ACLS_FILE), "{error}");
    }
}
