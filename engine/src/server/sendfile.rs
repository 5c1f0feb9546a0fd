//! Zero-copy transfer of segment file ranges to a client socket with `sendfile(2)`.
//!
//! glommio has no sendfile (its issue #683), so the transfer runs on the executor's blocking
//! thread pool: the connection's writer awaits it, which keeps response order. Segment files are
//! written with O_DIRECT, which bypasses the page cache; sendfile reads through it, so this path
//! pays off for catch-up reads of older data, while the hot tail is served from memory.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// Largest single `sendfile` call; the loop repeats until the range is sent.
pub const SENDFILE_CHUNK_BYTES: usize = 1 << 20;
/// A client that accepts no bytes for this long is given up on (the socket's send timeout).
pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Sets the socket's send timeout so a blocking sendfile to a stalled client returns.
pub fn set_send_timeout(socket: RawFd) -> std::io::Result<()> {
    let timeout = libc::timeval {
        tv_sec: SEND_STALL_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: `socket` is an open socket owned by the caller's stream; the option value is a
    // valid timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `range` to `socket` (blocking; run it on a blocking thread). The socket must stay open
/// until this returns: the caller holds the stream across the await.
pub fn send_range(socket: RawFd, range: &FileRange) -> std::io::Result<()> {
    let file = std::fs::File::open(&range.path)?;
    let opened = file.metadata()?.ino();
    if range.inode != 0 && opened != range.inode {
        // Compaction replaced the file after the read was planned (a send delayed past the swap's
        // grace period). Its bytes at these positions are other batches: fail the connection, the
        // client fetches again, rather than hand it records it would take for the ones it asked for.
        return Err(std::io::Error::other(FileReplaced {
            path: range.path.clone(),
            planned_inode: range.inode,
            found_inode: opened,
        }));
    }
    let mut offset = libc::off_t::try_from(range.position).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "file position out of range",
        )
    })?;
    let mut left = range.len as usize;
    while left > 0 {
        let count = left.min(SENDFILE_CHUNK_BYTES);
        // SAFETY: both descriptors are open for the duration of the call; `offset` is a valid
        // pointer to an off_t the kernel advances by the bytes sent.
        let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut offset, count) };
        if sent < 0 {
            let error = std::io::Error::last_os_error();
            match error.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client accepted no data within the send timeout",
                    ))
                }
                _ => return Err(error),
            }
        }
        if sent == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ends before the requested range", range.path.display()),
            ));
        }
        left -= sent as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

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
        send_range(server.as_raw_fd(), &planned).expect("the planned file");
        let mut received = [0u8; 5];
        client.read_exact(&mut received).expect("read");
        assert_eq!(&received, b"bytes");

        // What compaction's swap does: another file renamed over the path.
        let replacement = dir.path().join("cleaned");
        std::fs::write(&replacement, b"other content").expect("write");
        std::fs::rename(&replacement, &path).expect("rename");
        let error = send_range(server.as_raw_fd(), &planned).expect_err("a replaced file");
        assert!(FileReplaced::is(&error), "{error}");
    }
}
