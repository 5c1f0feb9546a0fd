//! Which `--add-scram` credentials this data directory has already handed to the cluster, so that
//! each is handed once, as Kafka applies `kafka-storage format --add-scram` once: a user deleted
//! with `kafka-configs` afterwards stays deleted when the broker restarts with the same flag. A
//! credential added to the flag later is handed at the next start. The record is per data
//! directory: a node started on an empty one hands its `--add-scram` again (only credentials the
//! cluster lacks are added, so that re-adds only a user deleted since).
//!
//! The file, `add-scram-handed.json`, holds `[user, mechanism]` pairs, sorted; it is replaced
//! atomically (a crash leaves the old or the new list).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// The file's name in the data directory.
pub const HANDED_FILE: &str = "add-scram-handed.json";

/// A credential's identity: user name and mechanism name (`SCRAM-SHA-512`).
pub type Handed = BTreeSet<(String, String)>;

/// The credentials handed so far (none when the file does not exist).
pub fn read(data_dir: &Path) -> Result<Handed, String> {
    let path = data_dir.join(HANDED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Handed::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let pairs: Vec<(String, String)> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a list of [user, mechanism]: {e}", path.display()))?;
    Ok(pairs.into_iter().collect())
}

/// Replaces the list with `handed`.
pub fn write(data_dir: &Path, handed: &Handed) -> Result<(), String> {
    let path = data_dir.join(HANDED_FILE);
    let tmp = data_dir.join(format!("{HANDED_FILE}.tmp"));
    let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let pairs: Vec<&(String, String)> = handed.iter().collect();
    let text =
        serde_json::to_vec(&pairs).map_err(|e| format!("cannot encode {HANDED_FILE}: {e}"))?;
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_survives_a_round_trip_and_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("read").is_empty());
        let handed: Handed = [
            ("admin".to_string(), "SCRAM-SHA-512".to_string()),
            ("a \"quoted\" user".to_string(), "SCRAM-SHA-256".to_string()),
        ]
        .into_iter()
        .collect();
        write(dir.path(), &handed).expect("write");
        assert_eq!(read(dir.path()).expect("read again"), handed);
        std::fs::write(dir.path().join(HANDED_FILE), b"{not a list").expect("corrupt");
        assert!(
            read(dir.path()).is_err(),
            "a damaged list is an error, not an empty one"
        );
    }
}
