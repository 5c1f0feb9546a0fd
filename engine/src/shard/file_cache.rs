//! Read-only handles of segment files, opened on first use and kept per shard, for serving the
//! file ranges a fetch resolves to (data older than the tail cache). Reads go through glommio's
//! DMA engine so a cold read never blocks the executor.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;

/// Most segment files kept open per shard; the least recently opened is closed beyond it.
pub const MAX_OPEN_SEGMENT_FILES: usize = 256;

pub struct FileCache {
    files: RefCell<HashMap<PathBuf, (u64, Rc<DmaFile>)>>,
    clock: std::cell::Cell<u64>,
}

impl Default for FileCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FileCache {
    pub fn new() -> FileCache {
        FileCache {
            files: RefCell::new(HashMap::new()),
            clock: std::cell::Cell::new(0),
        }
    }

    async fn open(&self, path: &Path) -> std::io::Result<Rc<DmaFile>> {
        let tick = self.clock.get() + 1;
        self.clock.set(tick);
        if let Some(entry) = self.files.borrow_mut().get_mut(path) {
            entry.0 = tick;
            return Ok(entry.1.clone());
        }
        let file = Rc::new(DmaFile::open(path).await.map_err(std::io::Error::from)?);
        let mut files = self.files.borrow_mut();
        if files.len() >= MAX_OPEN_SEGMENT_FILES {
            if let Some(oldest) = files
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(p, _)| p.clone())
            {
                files.remove(&oldest);
            }
        }
        files.insert(path.to_path_buf(), (tick, file.clone()));
        Ok(file)
    }

    /// Reads `len` bytes at `position` of a segment file (one copy, into the returned buffer).
    pub async fn read(&self, path: &Path, position: u64, len: u64) -> std::io::Result<Bytes> {
        let file = self.open(path).await?;
        let read = file
            .read_at(position, len as usize)
            .await
            .map_err(std::io::Error::from)?;
        if read.len() as u64 != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: wanted {len} bytes at {position}, got {}",
                    path.display(),
                    read.len()
                ),
            ));
        }
        Ok(Bytes::copy_from_slice(&read))
    }

    /// Forgets the handles of files under `dir` (after a topic is deleted).
    pub fn forget_under(&self, dir: &Path) {
        self.files.borrow_mut().retain(|p, _| !p.starts_with(dir));
    }
}
