//! The file side of sending segment file ranges to a client, all of it without blocking the
//! shard: opening the planned file (io_uring `openat`), asking whether a range is in the page
//! cache (`cachestat(2)`), `sendfile(2)` on the non-blocking socket, and reading a range through
//! io_uring (`BufferedFile::read_at`). `server::writer` combines them.
//!
//! Why both sendfile and reads: sendfile never waits for the socket once the socket is
//! O_NONBLOCK (it sends what fits and returns), but it reads the file through the page cache and
//! waits, on the calling thread, for pages that are not there. Segments are written with
//! O_DIRECT, which bypasses the page cache, so old data is usually cold: sendfile on it would
//! stall the whole shard on the disk. A range the page cache holds goes by sendfile (one copy, no
//! user buffer); any other range is read through io_uring (the shard awaits the disk like any
//! other I/O, and the read fills the page cache for the next consumer) and written to the socket.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use glommio::io::BufferedFile;

/// A segment file range to send.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub path: PathBuf,
    pub position: u64,
    pub len: u64,
    /// The inode the read was planned on (0: unknown, not checked).
    pub inode: u64,
}

/// A planned range's path names another file than the one the read was planned on.
#[derive(Debug)]
pub struct FileReplaced {
    pub path: PathBuf,
    pub planned_inode: u64,
    pub found_inode: u64,
}

impl std::fmt::Display for FileReplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was replaced since the read was planned (inode {} now {})",
            self.path.display(),
            self.planned_inode,
            self.found_inode
        )
    }
}

impl std::error::Error for FileReplaced {}

impl FileReplaced {
    /// Whether `error` is this one.
    pub fn is(error: &std::io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<FileReplaced>())
    }
}

/// Opens the file of `range` (without blocking the shard) and checks it is the one the read was
/// planned on: compaction may have renamed a cleaned file over the path since (a send delayed
/// past the swap's grace period). Its bytes at these positions would be other batches, so that
/// fails with [`FileReplaced`]: the connection is closed and the client fetches again, rather
/// than take records for the ones it asked for.
pub async fn open_planned(range: &FileRange) -> std::io::Result<BufferedFile> {
    let file = BufferedFile::open(&range.path).await?;
    let opened = inode(file.as_raw_fd())?;
    if range.inode != 0 && opened != range.inode {
        let _ = file.close().await;
        return Err(std::io::Error::other(FileReplaced {
            path: range.path.clone(),
            planned_inode: range.inode,
            found_inode: opened,
        }));
    }
    Ok(file)
}

fn inode(fd: RawFd) -> std::io::Result<u64> {
    // SAFETY: all-zero is a valid `stat`; fstat fills it for the open descriptor `fd`.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call; `stat` is ours and large enough.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.st_ino)
}

/// Puts the socket in non-blocking mode: sendfile then sends what fits and returns EAGAIN when the
/// socket buffer is full, instead of waiting. glommio's own reads and writes on the socket already
/// pass MSG_DONTWAIT and wait for readiness through io_uring, so they are unaffected.
pub fn set_nonblocking(socket: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFL on an open descriptor reads its flags.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: F_SETFL on an open descriptor with its flags plus O_NONBLOCK.
    if unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `cachestat(2)`'s syscall number (Linux 6.5+; the same in every architecture's table).
const SYS_CACHESTAT: libc::c_long = 451;
/// Page size the kernel's page cache counts in.
const PAGE_BYTES: u64 = 4096;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `len` bytes at `position` of `file` is in the page cache, so sendfile
/// will not wait for the disk. False when the kernel cannot tell (before Linux 6.5): the range is
/// then read through io_uring, which is always safe, only slower for cached data.
pub fn in_page_cache(file: &BufferedFile, position: u64, len: u64) -> bool {
    debug_assert!(len > 0);
    let range = CachestatRange { off: position, len };
    let mut stat = Cachestat::default();
    // SAFETY: the descriptor is open while `file` lives; `range` and `stat` are ours, laid out as
    // the kernel's `struct cachestat_range` and `struct cachestat`; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    let pages = (position + len - 1) / PAGE_BYTES - position / PAGE_BYTES + 1;
    rc == 0 && stat.nr_cache >= pages
}

/// What one non-blocking sendfile call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// This many bytes went into the socket.
    Bytes(usize),
    /// The socket buffer is full: wait until the peer reads.
    WouldBlock,
}

/// One `sendfile(2)` of up to `count` bytes at `position`, on a non-blocking socket.
pub fn send_once(
    socket: RawFd,
    file: &BufferedFile,
    position: u64,
    count: usize,
) -> std::io::Result<Sent> {
    let mut offset = libc::off_t::try_from(position).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "file position out of range",
        )
    })?;
    loop {
        // SAFETY: both descriptors are open for the duration of the call; `offset` is a valid
        // pointer to an off_t the kernel advances by the bytes sent.
        let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut offset, count) };
        if sent >= 0 {
            return Ok(Sent::Bytes(sent as usize));
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(Sent::WouldBlock),
            _ => return Err(error),
        }
    }
}

/// Reads up to `len` bytes at `position` through io_uring (the shard awaits it like any I/O).
/// Fails if the file ends first: a planned range lies wholly inside its file.
pub async fn read_range(
    file: &BufferedFile,
    position: u64,
    len: usize,
) -> std::io::Result<glommio::io::ReadResult> {
    let data = file.read_at(position, len).await?;
    if data.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("a segment file ends before position {position}"),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;

    /// Runs `fut` on a small executor (locked memory is scarce: 64 KiB of io memory).
    fn run<F: std::future::Future>(fut: F) -> F::Output {
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 16)
            .make()
            .expect("executor")
            .run(fut)
    }

    #[test]
    fn sends_the_planned_file_and_refuses_a_file_put_in_its_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, b"planned bytes").expect("write");
        let planned = FileRange {
            path: path.clone(),
            position: 8,
            len: 5,
            inode: std::fs::metadata(&path).expect("metadata").ino(),
        };
        let (mut client, server) = UnixStream::pair().expect("socket pair");
        set_nonblocking(server.as_raw_fd()).expect("non-blocking");
        run(async {
            let file = open_planned(&planned).await.expect("the planned file");
            // Just written with buffered I/O: in the page cache (when the kernel can tell).
            let _ = in_page_cache(&file, 8, 5);
            assert_eq!(
                send_once(server.as_raw_fd(), &file, 8, 5).expect("sendfile"),
                Sent::Bytes(5)
            );
            assert_eq!(
                &read_range(&file, 0, 7).await.expect("read")[..],
                b"planned"
            );
            assert!(read_range(&file, 13, 4).await.is_err(), "past the end");
            file.close().await.expect("close");

            // What compaction's swap does: another file renamed over the path.
            let replacement = dir.path().join("cleaned");
            std::fs::write(&replacement, b"other content").expect("write");
            std::fs::rename(&replacement, &path).expect("rename");
            let error = open_planned(&planned).await.expect_err("a replaced file");
            assert!(FileReplaced::is(&error), "{error}");
        });
        let mut received = [0u8; 5];
        client.read_exact(&mut received).expect("read");
        assert_eq!(&received, b"bytes");
    }

    #[test]
    fn a_full_socket_would_block_instead_of_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.log");
        std::fs::write(&path, vec![7u8; 8 << 20]).expect("write");
        let (_client, server) = UnixStream::pair().expect("socket pair");
        set_nonblocking(server.as_raw_fd()).expect("non-blocking");
        run(async {
            let range = FileRange {
                path: path.clone(),
                position: 0,
                len: 8 << 20,
                inode: 0,
            };
            let file = open_planned(&range).await.expect("open");
            let mut position = 0u64;
            // Nobody reads the other end: the socket fills, then sendfile says so at once.
            let send = |position| send_once(server.as_raw_fd(), &file, position, 1 << 20);
            while let Sent::Bytes(n) = send(position).expect("sendfile") {
                position += n as u64;
                assert!(
                    position < 8 << 20,
                    "a socket pair buffers far less than 8 MiB"
                );
            }
            file.close().await.expect("close");
        });
    }
}
