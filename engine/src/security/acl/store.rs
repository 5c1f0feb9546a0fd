//! The broker's ACLs while it runs, shared by every shard, and kept in `acls.json` in the data
//! directory (written atomically, like the SCRAM credentials) so a restart finds them.
//!
//! Each change bumps `generation`: connections cache their decisions and trust them only while
//! the generation they were made at is current, so the request path reads one atomic instead of
//! taking the lock (`session`). Changes are rare administrative requests; they build a new list,
//! save it, then publish it. Not the cluster's metadata: each broker keeps its own file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use super::types::{AclBinding, AclFilter};

/// The ACL file, under the data directory.
pub const ACLS_FILE: &str = "acls.json";
/// Format version of the ACL file.
const FILE_VERSION: u32 = 1;
/// Most ACLs a broker holds: every cache miss scans them, and a file this large is a mistake.
pub const MAX_ACLS: usize = 100_000;

/// Why the ACLs cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ACL file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("at most {MAX_ACLS} ACLs may be stored")]
    TooMany,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    acls: Vec<AclBinding>,
}

/// The running broker's ACLs (see the module doc).
#[derive(Debug, Default)]
pub struct AclStore {
    /// The current ACLs, sorted and without duplicates; replaced whole on a change.
    acls: RwLock<Arc<Vec<AclBinding>>>,
    /// Bumped after every change is published.
    generation: AtomicU64,
    /// Serializes changes (a change reads, saves and publishes; two must not interleave).
    changing: Mutex<()>,
    /// Where changes are saved, once the data directory is known (`open_file`).
    file: OnceLock<PathBuf>,
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

    /// Loads `acls.json` of `data_dir` (none: no ACLs); from then on every change is saved there.
    pub fn open_file(&self, data_dir: &Path) -> Result<(), StoreError> {
        let path = data_dir.join(ACLS_FILE);
        let acls = load(&path)?;
        self.publish(acls);
        // Only the first call attaches a file (the server opens it once at start).
        let _ = self.file.set(path);
        Ok(())
    }

    /// Adds `acls` (those already present are kept once). Saved before it is visible: on a failed
    /// save nothing changes.
    pub fn add(&self, acls: &[AclBinding]) -> Result<(), StoreError> {
        self.change(|current| current.extend(acls.iter().cloned()))
    }

    /// Removes the ACLs each filter matches; returns, per filter, those it removed.
    pub fn remove(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, StoreError> {
        self.change(|current| {
            let removed: Vec<Vec<AclBinding>> = filters
                .iter()
                .map(|f| {
                    current
                        .iter()
                        .filter(|acl| f.matches(acl))
                        .cloned()
                        .collect()
                })
                .collect();
            current.retain(|acl| !filters.iter().any(|f| f.matches(acl)));
            removed
        })
    }

    fn change<T>(&self, edit: impl FnOnce(&mut Vec<AclBinding>) -> T) -> Result<T, StoreError> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.snapshot().as_ref().clone();
        let out = edit(&mut next);
        next.sort();
        next.dedup();
        if next.len() > MAX_ACLS {
            return Err(StoreError::TooMany);
        }
        if let Some(path) = self.file.get() {
            save(path, &next)?;
        }
        self.publish(next);
        Ok(out)
    }

    fn publish(&self, mut acls: Vec<AclBinding>) {
        acls.sort();
        acls.dedup();
        *self.acls.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(acls);
        // After the new list is in place: a reader that sees the new generation finds it.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

fn load(path: &Path) -> Result<Vec<AclBinding>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: FileFormat = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FILE_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    Ok(file.acls)
}

fn save(path: &Path, acls: &[AclBinding]) -> Result<(), StoreError> {
    let write_error = |source: std::io::Error| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(&FileFormat {
        version: FILE_VERSION,
        acls: acls.to_vec(),
    })
    .map_err(|e| write_error(std::io::Error::other(e)))?;
    crate::security::durable::write_atomically(path, &text).map_err(write_error)
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
    fn changes_survive_a_reopen_and_bump_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = AclStore::default();
        store.open_file(dir.path()).unwrap();
        let before = store.generation();
        store
            .add(&[read_acl("a"), read_acl("b"), read_acl("a")])
            .unwrap();
        assert!(store.generation() > before);
        assert_eq!(store.snapshot().len(), 2);
        let filter = AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some("a".into()),
            pattern_type: PatternType::Literal,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        let removed = store.remove(&[filter.clone(), filter]).unwrap();
        assert_eq!(removed, vec![vec![read_acl("a")], vec![read_acl("a")]]);
        let reopened = AclStore::default();
        reopened.open_file(dir.path()).unwrap();
        assert_eq!(reopened.snapshot().as_ref(), &vec![read_acl("b")]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ACLS_FILE), "[").unwrap();
        let error = AclStore::default().open_file(dir.path()).unwrap_err();
        assert!(error.to_string().contains(ACLS_FILE), "{error}");
    }
}
