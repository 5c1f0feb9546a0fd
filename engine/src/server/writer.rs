//! Writing responses to one client socket, from the connection's own task and never blocking the
//! shard: small parts are coalesced into few sends, large byte parts are sent as they are, and
//! segment file ranges go by non-blocking `sendfile` when the page cache holds them and by an
//! io_uring read and a send otherwise (`server::sendfile` says why).
//!
//! Waiting for the socket: every byte part goes through glommio's `AsyncWrite`, which sends with
//! MSG_DONTWAIT and, when the socket is full, waits for POLLOUT through an io_uring poll on the
//! shard's own ring, waking this task. glommio 0.9 has no public wait-for-writable (its issue
//! #683), so when sendfile finds the socket full, the next few KiB of the range are read (they
//! are in the page cache) and written through that same `AsyncWrite`: the write is the wait, and
//! once it completes the socket has room and sendfile resumes after those bytes. No private
//! glommio API, no second ring, no timer polling; a client that stops reading parks only this
//! task.
//!
//! TLS connections (`security::stream`): no sendfile, the bytes must go through the cipher.
//! Byte parts (tail cache, response headers) are encrypted straight from where they are; file
//! ranges are read in `COLD_READ_CHUNK_BYTES` steps and each step is encrypted from that buffer,
//! so every byte is copied once before the cipher reads it; the next step's read overlaps the
//! encryption and send of the current one. The response is flushed after its
//! last part (rustls holds encrypted records the socket did not take yet).
//!
//! The write deadline: a peer that accepts no byte of a pending response for
//! `connections_max_write_stall_ms` gets its connection closed (the caller shuts the socket down,
//! which also ends the connection's reader).

use std::os::fd::RawFd;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures::io::{AsyncWriteExt, WriteHalf};

use crate::security::stream::ClientStream;

use super::dispatch::Part;
use super::sendfile::{self, FileRange, Sent};

/// Parts smaller than this are copied into one buffer so a response goes out in few `send`s;
/// larger parts (record data) are written as they are.
pub const COALESCE_BELOW_BYTES: usize = 64 * 1024;
/// Largest single `sendfile` call; the loop repeats until the range is sent.
pub const SENDFILE_CHUNK_BYTES: usize = 1 << 20;
/// Bytes of a range not in the page cache read (and then sent) at a time: bounds the memory one
/// connection's cold read holds.
pub const COLD_READ_CHUNK_BYTES: usize = 256 << 10;
/// Bytes written through glommio's send when sendfile finds the socket full: the write waits for
/// the socket to drain, then sendfile goes on after them.
pub const RESUME_WRITE_BYTES: usize = 16 << 10;

/// Why a response could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The peer accepted no byte for the stall limit.
    #[error("the client accepted no response bytes for {} ms (connections_max_write_stall_ms)", .0.as_millis())]
    Stalled(Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The writing side of a connection.
pub struct ResponseWriter {
    writer: WriteHalf<ClientStream>,
    /// The socket's descriptor, for sendfile; open as long as `writer` lives. `None` on TLS.
    socket: Option<RawFd>,
    /// Small parts gathered for one send.
    pending: BytesMut,
    /// Longest the peer may accept no byte (`connections_max_write_stall_ms`).
    stall_limit: Duration,
}

impl ResponseWriter {
    /// `socket`, when given, must be `writer`'s descriptor, already non-blocking
    /// (`sendfile::set_nonblocking`); `None` sends files through `writer` (TLS).
    pub fn new(
        writer: WriteHalf<ClientStream>,
        socket: Option<RawFd>,
        stall_limit: Duration,
    ) -> Self {
        ResponseWriter {
            writer,
            socket,
            pending: BytesMut::with_capacity(COALESCE_BELOW_BYTES),
            stall_limit,
        }
    }

    /// Writes one response: small parts are gathered so they go out in few sends; large byte
    /// parts are written directly and file ranges as described in the module doc.
    pub async fn write_parts(&mut self, parts: Vec<Part>) -> Result<(), WriteError> {
        for part in parts {
            match part {
                Part::Bytes(bytes) if bytes.len() < COALESCE_BELOW_BYTES => {
                    self.pending.extend_from_slice(&bytes);
                    if self.pending.len() >= COALESCE_BELOW_BYTES {
                        self.flush_pending().await?;
                    }
                }
                Part::Bytes(bytes) => {
                    self.flush_pending().await?;
                    self.write_all(&bytes).await?;
                }
                Part::File(range) => {
                    self.flush_pending().await?;
                    self.send_file(&range).await?;
                }
            }
        }
        // The response must not sit in our buffer (or rustls') while the client waits for it.
        self.flush_pending().await?;
        if self.socket.is_none() {
            self.flush_stream().await?;
        }
        Ok(())
    }

    /// Flushes the stream (the TLS session's encrypted records), bounded by the stall limit.
    async fn flush_stream(&mut self) -> Result<(), WriteError> {
        let mut flush = self.writer.flush();
        match futures::poll!(&mut flush) {
            Poll::Ready(result) => Ok(result?),
            Poll::Pending => Ok(with_timeout(self.stall_limit, flush)
                .await
                .ok_or(WriteError::Stalled(self.stall_limit))??),
        }
    }

    /// Closes the writing side (FIN after everything sent).
    pub async fn close(mut self) {
        let _ = self.writer.close().await;
    }

    async fn flush_pending(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_all(&pending).await;
        self.pending = pending;
        self.pending.clear();
        result
    }

    /// Writes all of `bytes`; each wait for the socket is bounded by the stall limit. A send that
    /// completes at once (the usual case) arms no timer.
    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), WriteError> {
        while !bytes.is_empty() {
            let mut write = self.writer.write(bytes);
            let written = match futures::poll!(&mut write) {
                Poll::Ready(result) => result?,
                Poll::Pending => with_timeout(self.stall_limit, write)
                    .await
                    .ok_or(WriteError::Stalled(self.stall_limit))??,
            };
            if written == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            bytes = &bytes[written..];
        }
        Ok(())
    }

    /// Sends a segment file range (see the module doc).
    async fn send_file(&mut self, range: &FileRange) -> Result<(), WriteError> {
        let file = sendfile::open_planned(range).await?;
        let result = self.send_file_bytes(&file, range).await;
        let _ = file.close().await;
        result
    }

    async fn send_file_bytes(
        &mut self,
        file: &glommio::io::BufferedFile,
        range: &FileRange,
    ) -> Result<(), WriteError> {
        let end = range.position + range.len;
        let mut position = range.position;
        let Some(socket) = self.socket else {
            // TLS: read a chunk, encrypt it from that buffer; the next chunk's read runs while
            // this one is encrypted and sent (the cipher, not the read, sets the pace).
            let want = |from: u64| (end - from).min(COLD_READ_CHUNK_BYTES as u64) as usize;
            if position >= end {
                return Ok(());
            }
            // Never empty: read_range fails on a file that ends early.
            let mut data = sendfile::read_range(file, position, want(position)).await?;
            loop {
                let after = position + data.len() as u64;
                if after >= end {
                    self.write_all(&data).await?;
                    position = after;
                    break;
                }
                let (written, next) = futures::join!(
                    self.write_all(&data),
                    sendfile::read_range(file, after, want(after))
                );
                written?;
                position = after;
                data = next?;
            }
            debug_assert_eq!(position, end);
            return Ok(());
        };
        while position < end {
            let left = end - position;
            let chunk = left.min(SENDFILE_CHUNK_BYTES as u64);
            if !sendfile::in_page_cache(file, position, chunk) {
                let want = left.min(COLD_READ_CHUNK_BYTES as u64) as usize;
                let data = sendfile::read_range(file, position, want).await?;
                self.write_all(&data).await?;
                position += data.len() as u64;
                continue;
            }
            match sendfile::send_once(socket, file, position, chunk as usize)? {
                Sent::Bytes(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} ends before the planned range", range.path.display()),
                    )
                    .into())
                }
                Sent::Bytes(sent) => position += sent as u64,
                Sent::WouldBlock => {
                    let want = left.min(RESUME_WRITE_BYTES as u64) as usize;
                    let data = sendfile::read_range(file, position, want).await?;
                    self.write_all(&data).await?;
                    position += data.len() as u64;
                }
            }
        }
        debug_assert_eq!(position, end);
        Ok(())
    }
}

/// Runs `fut` for at most `limit`; `None` when time ran out. A future that is ready at once (a
/// frame already in the read buffer, a send the socket takes) sets no timer.
pub async fn with_timeout<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    futures::pin_mut!(fut);
    if let Poll::Ready(output) = futures::poll!(fut.as_mut()) {
        return Some(output);
    }
    let timer = glommio::timer::sleep(limit);
    futures::pin_mut!(timer);
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((output, _)) => Some(output),
        futures::future::Either::Right(_) => None,
    }
}
