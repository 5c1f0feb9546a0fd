//! Small-file helpers on glommio: read a whole (small) file, replace a file atomically (write a
//! temporary, fdatasync, rename, sync the directory), remove a file that may be missing.
//! Index files and the clean-shutdown checkpoint go through here; segment data never does.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, Directory};

use super::error::StorageError;

/// Suffix of files being written by [`write_file_atomically`]; leftovers are deleted at open.
pub const TEMPORARY_SUFFIX: &str = "tmp";

/// Upper bound of a file read by [`read_small_file`]: an offset index of a full 4 GiB segment at the
/// smallest sensible interval stays far below it.
const SMALL_FILE_BYTES_MAX: u64 = 256 << 20;

/// The inode number of an open file. A read is planned on a segment's open file but sent by
/// opening its path later (`sendfile`); the sender checks that the path still names this inode.
pub(crate) fn inode_of(file: &impl std::os::fd::AsRawFd) -> std::io::Result<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`) and
    // `stat` points to writable memory of the size fstat fills.
    let rc = unsafe { libc::fstat(file.as_raw_fd(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it initialised the whole struct.
    Ok(unsafe { stat.assume_init() }.st_ino)
}

fn is_not_found(error: &glommio::GlommioError<()>) -> bool {
    error.raw_os_error() == Some(libc::ENOENT)
}

/// Reads the whole file, `None` if it does not exist.
pub(crate) async fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let size = file.file_size().await?;
    if size > SMALL_FILE_BYTES_MAX {
        return Err(StorageError::Corrupt(format!(
            "{} is {size} bytes",
            path.display()
        )));
    }
    let bytes = if size == 0 {
        Vec::new()
    } else {
        file.read_at(0, size as usize).await?.to_vec()
    };
    file.close().await?;
    if bytes.len() as u64 != size {
        return Err(StorageError::Corrupt(format!(
            "short read of {}",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file, never a torn one.
pub(crate) async fn write_file_atomically(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".");
    temporary.push(TEMPORARY_SUFFIX);
    let temporary = PathBuf::from(temporary);
    let file = BufferedFile::create(&temporary).await?;
    let expected = bytes.len();
    if expected > 0 {
        let written = file.write_at(bytes, 0).await?;
        if written != expected {
            return Err(StorageError::Io(std::io::Error::new(
                ErrorKind::WriteZero,
                format!("short write to {}", temporary.display()),
            )));
        }
    }
    file.fdatasync().await?;
    file.close().await?;
    glommio::io::rename(&temporary, path).await?;
    if let Some(dir) = path.parent() {
        sync_directory(dir).await?;
    }
    Ok(())
}

/// fsyncs a directory so that creations, renames and deletions in it survive a power loss.
pub(crate) async fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    let directory = Directory::open(dir).await?;
    directory.sync().await?;
    directory.close().await?;
    Ok(())
}

/// Removes `path`; a missing file is not an error.
pub(crate) async fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
