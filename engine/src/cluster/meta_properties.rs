//! `<data>/meta.properties`, as Kafka writes it: which cluster and which node a data directory
//! belongs to. Written once the cluster id is known; a later start with another node id, or a
//! cluster whose id differs, is refused: that data directory holds another broker's partitions.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The file's name in the data directory (Kafka's).
pub const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, Error)]
pub enum MetaPropertiesError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the data directory {dir} belongs to node {found}, but this broker was started as node {wanted} (--node-id); use that node's data directory, or an empty one")]
    OtherNode {
        dir: PathBuf,
        found: i32,
        wanted: i32,
    },
    #[error("the data directory {dir} belongs to cluster {found}, but the controller quorum is cluster {wanted}; use an empty data directory to join this cluster")]
    OtherCluster {
        dir: PathBuf,
        found: String,
        wanted: String,
    },
}

/// What the file says (either key may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: Option<String>,
    pub node_id: Option<i32>,
}

/// Reads the file; a missing file is empty properties.
pub fn read(data_dir: &Path) -> Result<MetaProperties, MetaPropertiesError> {
    let path = data_dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(MetaProperties::default()),
        Err(source) => return Err(MetaPropertiesError::Io { path, source }),
    };
    let mut props = MetaProperties::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("cluster.id", id)) => props.cluster_id = Some(id.trim().to_string()),
            Some(("node.id", id)) => props.node_id = id.trim().parse().ok(),
            _ => {}
        }
    }
    Ok(props)
}

/// The cluster id the data directory holds, if any (unreadable counts as none: the start-up
/// check reports it).
pub fn read_cluster_id(data_dir: &Path) -> Option<String> {
    read(data_dir).ok().and_then(|p| p.cluster_id)
}

/// Refuses a data directory of another node.
pub fn check_node(data_dir: &Path, node_id: i32) -> Result<(), MetaPropertiesError> {
    match read(data_dir)?.node_id {
        Some(found) if found != node_id => Err(MetaPropertiesError::OtherNode {
            dir: data_dir.to_path_buf(),
            found,
            wanted: node_id,
        }),
        _ => Ok(()),
    }
}

/// Checks the data directory against the cluster id the quorum holds, and records both ids if
/// the file does not have them yet (durably: temp file, fsync, rename, directory fsync).
pub fn check_and_record(
    data_dir: &Path,
    node_id: i32,
    cluster_id: &str,
) -> Result<(), MetaPropertiesError> {
    let props = read(data_dir)?;
    if let Some(found) = &props.cluster_id {
        if found != cluster_id {
            return Err(MetaPropertiesError::OtherCluster {
                dir: data_dir.to_path_buf(),
                found: found.clone(),
                wanted: cluster_id.to_string(),
            });
        }
    }
    check_node(data_dir, node_id)?;
    if props.cluster_id.is_some() && props.node_id.is_some() {
        return Ok(());
    }
    let path = data_dir.join(META_PROPERTIES);
    let io = |source| MetaPropertiesError::Io {
        path: path.clone(),
        source,
    };
    let text = format!(
        "#\n#Written by ringbroker\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
    );
    let tmp = data_dir.join(format!("{META_PROPERTIES}.tmp"));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_remembers_its_cluster_and_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("empty"), MetaProperties::default());
        check_and_record(dir.path(), 2, "abc").expect("first start");
        assert_eq!(read_cluster_id(dir.path()).as_deref(), Some("abc"));
        check_and_record(dir.path(), 2, "abc").expect("same again");
        assert!(matches!(
            check_and_record(dir.path(), 2, "xyz"),
            Err(MetaPropertiesError::OtherCluster { .. })
        ));
        assert!(matches!(
            check_node(dir.path(), 3),
            Err(MetaPropertiesError::OtherNode {
                found: 2,
                wanted: 3,
                ..
            })
        ));
        check_node(dir.path(), 2).expect("same node");
    }
}
