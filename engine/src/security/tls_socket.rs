//! The socket under a TLS session, writing every queued TLS record in one `sendmsg`. rustls queues
//! each encrypted record (at most 16 KiB of plaintext) as its own chunk and hands them all to
//! `write_vectored`; glommio's `TcpStream` has no vectored write, so the default sent one record
//! per system call, and a fetch of many MiB through TLS went out 16 KiB per send, waiting in
//! between. Reads, and the wait for a full socket to drain, are glommio's own.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// Ciphertext a TLS session may hold unsent (rustls' `set_buffer_limit`): with its default of
/// 64 KiB a write of a large response is cut into four-record rounds; this lets one `sendmsg`
/// take up to this much while keeping a connection's buffer bounded.
pub const TLS_SEND_BUFFER_BYTES: usize = 256 << 10;

/// Most records one `sendmsg` takes (rustls passes at most 64 chunks; the kernel's `UIO_MAXIOV`
/// is 1024).
const MAX_SLICES: usize = 64;

/// A client socket that a TLS session writes through.
pub struct TlsSocket(pub TcpStream);

impl TlsSocket {
    pub fn get_ref(&self) -> &TcpStream {
        &self.0
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let bufs = &bufs[..bufs.len().min(MAX_SLICES)];
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        match send_without_waiting(this.0.as_raw_fd(), bufs) {
            Ok(sent) => Poll::Ready(Ok(sent)),
            // The socket is full: glommio's write of the first record waits for room (through
            // the shard's ring) and wakes this task, or sends if room appeared meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Pin::new(&mut this.0).poll_write(cx, first)
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}

/// One non-blocking `sendmsg` of `bufs`; `WouldBlock` when the socket has no room.
fn send_without_waiting(
    socket: std::os::fd::RawFd,
    bufs: &[IoSlice<'_>],
) -> std::io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no name, no control data); `IoSlice` is ABI-compatible
    // with `iovec` on Unix (std guarantees it), and the slices outlive the call.
    let sent = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = bufs.len() as _;
        libc::sendmsg(socket, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn every_slice_goes_out_in_order_in_one_send() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let sender =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut receiver, _) = listener.accept().expect("accept");
        let records: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
        let mut slices: Vec<IoSlice<'_>> = records.iter().map(|r| IoSlice::new(r)).collect();
        slices.insert(2, IoSlice::new(&[]));
        let total: usize = records.iter().map(Vec::len).sum();
        let sent = send_without_waiting(sender.as_raw_fd(), &slices).expect("send");
        assert_eq!(sent, total, "a socket with room takes every record at once");
        let mut got = vec![0u8; total];
        receiver.read_exact(&mut got).expect("read");
        assert_eq!(got, records.concat());
    }
}
