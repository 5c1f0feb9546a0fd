//! Small-file I/O on the shard's executor: durable replace (write a temporary, fdatasync, rename,
//! sync the directory) and whole-file or ranged reads.

use std::path::Path;

use glommio::io::{BufferedFile, Directory, DmaFile};

use super::error::ProducerStateError;

/// Suffix of the temporary file a durable write goes through before its rename.
const TEMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `bytes` so that after a crash it holds either the old or the new content.
pub async fn write_durably(path: &Path, bytes: Vec<u8>) -> Result<(), ProducerStateError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(TEMP_SUFFIX);
    let temp = std::path::PathBuf::from(temp);
    let err = |op, e: glommio::GlommioError<()>| ProducerStateError::io(op, &temp, e);
    let file = BufferedFile::create(&temp)
        .await
        .map_err(|e| err("create", e))?;
    let len = bytes.len();
    let written = file.write_at(bytes, 0).await.map_err(|e| err("write", e))?;
    if written != len {
        return Err(ProducerStateError::io(
            "write",
            &temp,
            format!("short write {written} of {len}"),
        ));
    }
    file.fdatasync().await.map_err(|e| err("fdatasync", e))?;
    file.close().await.map_err(|e| err("close", e))?;
    glommio::io::rename(&temp, path)
        .await
        .map_err(|e| ProducerStateError::io("rename", path, e))?;
    if let Some(dir) = path.parent() {
        let dir_handle = Directory::open(dir)
            .await
            .map_err(|e| ProducerStateError::io("open dir", dir, e))?;
        dir_handle
            .sync()
            .await
            .map_err(|e| ProducerStateError::io("sync dir", dir, e))?;
        let _ = dir_handle.close().await;
    }
    Ok(())
}

/// The whole content of `path`, or `None` when it does not exist.
pub async fn read_whole(path: &Path) -> Result<Option<Vec<u8>>, ProducerStateError> {
    let file = match BufferedFile::open(path).await {
        Ok(f) => f,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(ProducerStateError::io("open", path, e)),
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| ProducerStateError::io("stat", path, e))?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let chunk = file
            .read_at(out.len() as u64, (size - out.len() as u64) as usize)
            .await
            .map_err(|e| ProducerStateError::io("read", path, e))?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    let _ = file.close().await;
    Ok(Some(out))
}

/// `len` bytes at `position` of a segment file (fewer if the file is shorter).
pub async fn read_range(
    path: &Path,
    position: u64,
    len: u64,
) -> Result<Vec<u8>, ProducerStateError> {
    let file = DmaFile::open(path)
        .await
        .map_err(|e| ProducerStateError::io("open", path, e))?;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        let at = position + out.len() as u64;
        let want = (len - out.len() as u64) as usize;
        let chunk = file
            .read_at(at, want)
            .await
            .map_err(|e| ProducerStateError::io("read", path, e))?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    let _ = file.close().await;
    Ok(out)
}

/// Removes `path` if it exists.
pub async fn remove_if_exists(path: &Path) -> Result<(), ProducerStateError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(ProducerStateError::io("remove", path, e)),
    }
}

fn is_not_found(e: &glommio::GlommioError<()>) -> bool {
    match e {
        glommio::GlommioError::IoError(source)
        | glommio::GlommioError::EnhancedIoError { source, .. } => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}
