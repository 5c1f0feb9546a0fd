//! Zero-copy transfer of segment file ranges to a client socket with `sendfile(2)`.
//!
//! glommio has no sendfile (its issue #683), so the transfer runs on the executor's blocking
//! thread pool: the connection's writer awaits it, which keeps response order. Segment files are
//! written with O_DIRECT, which bypasses the page cache; sendfile reads through it, so this path
//! pays off for catch-up reads of older data, while the hot tail is served from memory.

use std::os::fd::{AsRawFd, RawFd};
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
