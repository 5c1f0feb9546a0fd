//! One connection's byte stream: the TCP socket itself (PLAINTEXT, SASL_PLAINTEXT), or a TLS
//! session over it (SSL, SASL_SSL). `ClientStream` is a client's connection to this broker: the
//! connection code reads and writes through its futures `AsyncRead`/`AsyncWrite`; only plain
//! streams expose their socket for sendfile (on TLS the bytes must pass through the cipher, see
//! `server::writer`). `BrokerStream` is this broker's connection to another one (the TLS client
//! side), for `replication::client`; both are a `Stream`.

use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream as ClientTlsStream;
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;

use super::tls_socket::TlsSocket;

/// A connection's stream: the socket, or a TLS session of type `T` over it.
pub enum Stream<T> {
    Plain(TcpStream),
    /// Boxed: a rustls session is a few KiB, a plain stream a few words.
    Tls(Box<T>),
}

/// A client connection's stream (this broker is the TLS server).
pub type ClientStream = Stream<TlsStream<TlsSocket>>;

/// This broker's connection to another broker (this broker is the TLS client).
pub type BrokerStream = Stream<ClientTlsStream<TcpStream>>;

impl ClientStream {
    /// The socket sendfile may write to directly: only a plain stream's.
    pub fn sendfile_socket(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(stream) => Some(stream.as_raw_fd()),
            Stream::Tls(_) => None,
        }
    }

    /// The underlying socket (for shutdown), whatever the stream.
    pub fn socket(&self) -> RawFd {
        match self {
            Stream::Plain(stream) => stream.as_raw_fd(),
            Stream::Tls(stream) => stream.get_ref().0.get_ref().as_raw_fd(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_close(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(cx),
        }
    }
}
