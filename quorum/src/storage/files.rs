//! File operations of the raft storage on glommio, none of which blocks the executor: whole-file
//! reads, durable appends (write, then io_uring fdatasync), atomic replacement (write a
//! temporary, fdatasync, rename, fsync the directory), truncation, directory creation.
//! Only buffered files: the DMA probe trap of glommio 0.9 concerns `DmaFile::open` alone.
//! Every storage operation runs under [`wake_guard`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{pin_mut, select_biased, FutureExt};
use glommio::io::{BufferedFile, Directory, OpenOptions};

use super::error::StorageError;

/// Bytes read per call while loading a file.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Suffix of a file being written by [`replace_atomically`]; a leftover is removed at open.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

fn is_not_found(error: &glommio::GlommioError<()>) -> bool {
    error.raw_os_error() == Some(libc::ENOENT)
}

/// How often an executor waiting on a storage operation wakes to collect completions itself.
const WAKE_GUARD_INTERVAL: Duration = Duration::from_millis(10);

/// Awaits a storage operation with a timer armed, so the executor cannot sleep past its
/// completion. Once a storage test hung 16 minutes with its executor asleep in `io_uring_enter`
/// (no timeout, nothing in flight on glommio's blocking threads) until a debugger's signal woke
/// it and the test finished; a proposal once waited 5 s, exactly until the next timer. glommio
/// 0.9 hands rename, remove, truncate and directory creation to a blocking thread pool whose
/// result is announced by an eventfd write it skips when it believes the executor awake: our
/// best explanation, not proven (it did not recur in 340 runs, loaded or not). With a timer armed
/// the executor sleeps at most one interval, looks at every ring and the pool, and moves on. The
/// cost is a timer per operation, next to an fdatasync.
pub async fn wake_guard<T>(operation: impl Future<Output = T>) -> T {
    let operation = operation.fuse();
    pin_mut!(operation);
    loop {
        let poll_again = glommio::timer::sleep(WAKE_GUARD_INTERVAL).fuse();
        pin_mut!(poll_again);
        select_biased! {
            output = operation => return output,
            () = poll_again => {}
        }
    }
}

/// Creates `dir` and its parents (a blocking syscall chain, so on glommio's blocking pool).
pub async fn create_dir_all(dir: &Path) -> Result<(), StorageError> {
    let owned = dir.to_owned();
    glommio::executor()
        .spawn_blocking(move || std::fs::create_dir_all(&owned))
        .await
        .map_err(StorageError::io("create directory", dir))
}

/// Opens `path` for reading and writing; `None` when it does not exist.
pub async fn open_read_write(path: &Path) -> Result<Option<BufferedFile>, StorageError> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .buffered_open(path)
        .await
    {
        Ok(file) => Ok(Some(file)),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(StorageError::io("open", path)(error)),
    }
}

/// The whole content of an open file, which must be at most `max_bytes`.
pub async fn read_all(
    file: &BufferedFile,
    path: &Path,
    max_bytes: u64,
) -> Result<Vec<u8>, StorageError> {
    let size = file
        .file_size()
        .await
        .map_err(StorageError::io("stat", path))?;
    if size > max_bytes {
        return Err(StorageError::corrupt(
            path,
            format!("it is {size} bytes, above the limit of {max_bytes}"),
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let want = ((size - out.len() as u64) as usize).min(READ_CHUNK_BYTES);
        let chunk = file
            .read_at(out.len() as u64, want)
            .await
            .map_err(StorageError::io("read", path))?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads the whole file at `path`; `None` when it does not exist.
pub async fn read_file(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(StorageError::io("open", path)(error)),
    };
    let bytes = read_all(&file, path, max_bytes).await;
    file.close()
        .await
        .map_err(StorageError::io("close", path))?;
    bytes.map(Some)
}

/// Writes all of `bytes` at `position`. A short write (a full disk) is an error, not retried:
/// the caller treats any failed write as a torn tail, which the next open cuts.
pub async fn write_all_at(
    file: &BufferedFile,
    path: &Path,
    bytes: Vec<u8>,
    position: u64,
) -> Result<(), StorageError> {
    let length = bytes.len();
    if length == 0 {
        return Ok(());
    }
    let written = file
        .write_at(bytes, position)
        .await
        .map_err(StorageError::io("write", path))?;
    if written != length {
        return Err(StorageError::io("write", path)(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {written} of {length} bytes at {position}"),
        )));
    }
    Ok(())
}

/// Replaces `path` by `bytes` so that a crash leaves the old file or the new one, never a mix.
pub async fn replace_atomically(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let temporary = temporary_path(path);
    let file = BufferedFile::create(&temporary)
        .await
        .map_err(StorageError::io("create", &temporary))?;
    write_all_at(&file, &temporary, bytes, 0).await?;
    file.fdatasync()
        .await
        .map_err(StorageError::io("fdatasync", &temporary))?;
    file.close()
        .await
        .map_err(StorageError::io("close", &temporary))?;
    glommio::io::rename(&temporary, path)
        .await
        .map_err(StorageError::io("rename into place", path))?;
    if let Some(dir) = path.parent() {
        sync_directory(dir).await?;
    }
    Ok(())
}

/// fsyncs a directory so that creations and renames in it survive a power loss.
pub async fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    let directory = Directory::open(dir)
        .await
        .map_err(StorageError::io("open directory", dir))?;
    directory
        .sync()
        .await
        .map_err(StorageError::io("fsync directory", dir))?;
    directory
        .close()
        .await
        .map_err(StorageError::io("close directory", dir))
}

/// Removes `path`; a missing file is fine.
pub async fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(StorageError::io("remove", path)(error)),
    }
}

pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}
