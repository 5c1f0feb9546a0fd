//! One client connection's byte stream: the TCP socket itself (PLAINTEXT, SASL_PLAINTEXT), or a
//! TLS session over it (SSL, SASL_SSL). The connection code reads and writes through the futures
//! `AsyncRead`/`AsyncWrite` of this one type; only plain streams expose their socket for sendfile
//! (on TLS the bytes must pass through the cipher, see `server::writer`).

use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;

use super::tls_socket::TlsSocket;

/// A client connection's stream.
pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: a rustls session is a few KiB, a plain stream a few words.
    Tls(Box<TlsStream<TlsSocket>>),
}

impl ClientStream {
    /// The socket sendfile may write to directly: only a plain stream's.
    pub fn sendfile_socket(&self) -> Option<RawFd> {
        match self {
            ClientStream::Plain(stream) => Some(stream.as_raw_fd()),
            ClientStream::Tls(_) => None,
        }
    }

    /// The underlying socket (for shutdown), whatever the stream.
    pub fn socket(&self) -> RawFd {
        match self {
            ClientStream::Plain(stream) => stream.as_raw_fd(),
            ClientStream::Tls(stream) => stream.get_ref().0.get_ref().as_raw_fd(),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_close(cx),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(cx),
        }
    }
}
