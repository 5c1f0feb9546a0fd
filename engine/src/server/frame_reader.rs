//! Reading request frames from one connection with as few `recv`s as the bytes allow (issue 19).
//!
//! A `FrameReader` reads the stream into a per-connection buffer of `READ_BUFFER_BYTES`: one read
//! takes whatever the socket holds, and frames are cut from the buffer until it runs short; only
//! then does the next read wait for the socket. A one-record produce request used to cost three
//! `recv`s (its size prefix, its body, then the empty read before waiting); now it costs one, and a
//! client that pipelines (the Java client keeps 5 requests in flight) has several frames served from
//! one `recv`. glommio arms its wait for readability right after a read that did not fill the
//! buffer, so the reader's next read finds the socket's state without a system call.
//!
//! Frames come out as `BytesMut` slices of the buffer: no copy and, in steady state, no allocation
//! (once every frame cut from an allocation is dropped, the allocation is reused). Only Produce
//! requests, the hot path, keep their slice: a handler that keeps part of a request beyond it (a
//! group member's metadata, a topic name, a SASL token: the protocol crate decodes them as slices)
//! would pin the whole buffer, so every other request is copied into its own allocation, the
//! memory each request had before this reader.
//!
//! Frames larger than the buffer are read straight into their own allocation: what arrived with
//! the prefix (at most one buffer) is copied once, the rest is read in growing steps so that a peer
//! claiming a huge frame and sending nothing holds little memory. The reader does not bound frame
//! sizes or time: the caller checks the size against its limit (`read_frame_size`), takes its
//! in-flight budget before the body, and puts deadlines around each step (`server::connection`).

use std::io;

use bytes::{Buf, BytesMut};
use futures::io::{AsyncRead, AsyncReadExt};
use kafka_protocol::messages::ApiKey;
use ringbroker_protocol::frame::{self, FrameError, FRAME_PREFIX_BYTES};

/// Bytes of a connection's read buffer, allocated at its first request. 64 KiB holds several of the
/// Java client's pipelined produce requests (16 KiB batches) and a `ringbroker-bench` 64 KiB batch
/// in one read; larger requests go to their own allocation. An idle connection keeps it, so
/// 10,000 connections hold 640 MiB: about what the kernel's receive buffers of those sockets may take.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A read is made into at least this much room: with less left at the buffer's end, the buffer is
/// first reclaimed (or replaced when frames cut from it are still in use), so a run of small reads
/// into a nearly full buffer cannot happen.
const MIN_READ_ROOM_BYTES: usize = 8 * 1024;

/// Bodies larger than the read buffer are read in steps of at least this size (doubling with what has
/// arrived): a peer that claims a large frame and sends nothing holds at most this much.
pub const FRAME_READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameReadError {
    /// The stream failed or ended (`UnexpectedEof` mid-frame).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The size prefix is refused (not positive, or over the caller's limit).
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Request frames from one stream.
pub struct FrameReader<R> {
    reader: R,
    /// Bytes read and not yet handed out. Invariant: every allocation it has used was zeroed when
    /// made (`make_room`), and nothing de-initialises bytes, so its spare capacity is initialised.
    buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            buffer: BytesMut::new(),
        }
    }

    /// Bytes read from the stream and not handed out yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// One read of the stream into the buffer; `Ok(0)` at the end of the stream. Cancel-safe: a
    /// read dropped before it completes took nothing from the stream.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        self.make_room(1);
        let len = self.buffer.len();
        let room = self.buffer.spare_capacity_mut();
        // SAFETY: the spare capacity is initialised (the invariant on `buffer`), and `u8` has no
        // invalid bit pattern.
        let room = unsafe { &mut *(room as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        let read = self.reader.read(room).await?;
        debug_assert!(read <= self.buffer.capacity() - len);
        // SAFETY: the read wrote `read` bytes right after `len`, all within the capacity.
        unsafe { self.buffer.set_len(len + read) };
        Ok(read)
    }

    /// The next frame's size, read from its prefix and checked against `max_request_bytes`. Reads
    /// only when fewer than the prefix's bytes are buffered.
    pub async fn read_frame_size(
        &mut self,
        max_request_bytes: usize,
    ) -> Result<usize, FrameReadError> {
        self.fill_to(FRAME_PREFIX_BYTES).await?;
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        prefix.copy_from_slice(&self.buffer[..FRAME_PREFIX_BYTES]);
        self.buffer.advance(FRAME_PREFIX_BYTES);
        Ok(frame::frame_size(prefix, max_request_bytes)?)
    }

    /// The body of a frame of `size` bytes (its prefix already taken by `read_frame_size`).
    pub async fn read_body(&mut self, size: usize) -> io::Result<BytesMut> {
        if size > READ_BUFFER_BYTES {
            return self.read_large_body(size).await;
        }
        self.fill_to(size).await?;
        let body = self.buffer.split_to(size);
        if served_in_place(&body) {
            Ok(body)
        } else {
            // On purpose: the request gets its own allocation (see the module comment).
            Ok(BytesMut::from(&body[..]))
        }
    }

    /// Reads until at least `bytes` (at most a buffer) are buffered; `UnexpectedEof` if the stream
    /// ends first.
    async fn fill_to(&mut self, bytes: usize) -> io::Result<()> {
        debug_assert!(bytes <= READ_BUFFER_BYTES);
        while self.buffer.len() < bytes {
            self.make_room(bytes - self.buffer.len());
            if self.read_more().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// Makes room for at least `needed` more bytes (and `MIN_READ_ROOM_BYTES` when it has to move
    /// anything): reclaims the allocation when no frame cut from it is alive, otherwise moves the
    /// buffered bytes to a fresh, zeroed one.
    fn make_room(&mut self, needed: usize) {
        let len = self.buffer.len();
        debug_assert!(
            len + needed <= READ_BUFFER_BYTES,
            "a frame that fits the buffer"
        );
        if self.buffer.capacity() - len >= needed.max(MIN_READ_ROOM_BYTES) {
            return;
        }
        // Never allocates: it succeeds only by reusing the current allocation (zeroed when made).
        if self.buffer.try_reclaim(READ_BUFFER_BYTES - len) {
            return;
        }
        // Zeroed once per allocation: the reads go into initialised memory (see `buffer`).
        let mut fresh = BytesMut::zeroed(READ_BUFFER_BYTES);
        fresh.clear();
        fresh.extend_from_slice(&self.buffer);
        self.buffer = fresh;
    }

    /// A body larger than the buffer: the buffered part is copied once, the rest read straight into
    /// the body in growing steps.
    async fn read_large_body(&mut self, size: usize) -> io::Result<BytesMut> {
        let head = self.buffer.len();
        debug_assert!(head <= READ_BUFFER_BYTES && head < size);
        let mut body = BytesMut::with_capacity(size.min(FRAME_READ_CHUNK_BYTES.max(head)));
        body.extend_from_slice(&self.buffer);
        self.buffer.clear();
        while body.len() < size {
            let start = body.len();
            let want = (size - start).min(FRAME_READ_CHUNK_BYTES.max(start));
            body.resize(start + want, 0);
            self.reader.read_exact(&mut body[start..]).await?;
        }
        debug_assert_eq!(body.len(), size);
        Ok(body)
    }
}

/// Whether a frame may stay a slice of the read buffer: Produce requests, whose handler keeps no
/// part of them once answered (the records are copied into the log).
fn served_in_place(body: &[u8]) -> bool {
    frame::request_prefix(body).is_ok_and(|p| p.api_key == ApiKey::Produce as i16)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;

    const PRODUCE: i16 = ApiKey::Produce as i16;
    const FETCH: i16 = ApiKey::Fetch as i16;

    /// A stream whose every read returns at most the next chunk: one chunk is what one `recv` finds.
    #[derive(Default)]
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl Script {
        fn new(chunks: Vec<Vec<u8>>) -> Self {
            Script {
                chunks: chunks.into(),
                reads: 0,
            }
        }
    }

    impl AsyncRead for Script {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.reads += 1;
            let Some(chunk) = this.chunks.front_mut() else {
                return Poll::Ready(Ok(0));
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                this.chunks.pop_front();
            }
            Poll::Ready(Ok(n))
        }
    }

    /// A frame (prefix included) whose body is a request header prefix then `extra` bytes of `fill`.
    fn frame(api_key: i16, correlation_id: i32, extra: usize, fill: u8) -> Vec<u8> {
        let size = frame::MIN_REQUEST_HEADER_BYTES + extra;
        let mut f = Vec::with_capacity(FRAME_PREFIX_BYTES + size);
        f.extend_from_slice(&(size as i32).to_be_bytes());
        f.extend_from_slice(&api_key.to_be_bytes());
        f.extend_from_slice(&0i16.to_be_bytes());
        f.extend_from_slice(&correlation_id.to_be_bytes());
        f.resize(FRAME_PREFIX_BYTES + size, fill);
        f
    }

    fn next(frames: &mut FrameReader<Script>) -> Result<BytesMut, FrameReadError> {
        block_on(async {
            let size = frames
                .read_frame_size(frame::DEFAULT_MAX_REQUEST_BYTES)
                .await?;
            Ok(frames.read_body(size).await?)
        })
    }

    #[test]
    fn several_frames_in_one_read() {
        let frames_sent = [
            frame(PRODUCE, 1, 100, 1),
            frame(FETCH, 2, 30, 2),
            frame(PRODUCE, 3, 5000, 3),
        ];
        let mut frames = FrameReader::new(Script::new(vec![frames_sent.concat()]));
        for sent in &frames_sent {
            let body = next(&mut frames).expect("a whole frame");
            assert_eq!(&body[..], &sent[FRAME_PREFIX_BYTES..]);
        }
        assert_eq!(frames.reader.reads, 1, "one read served three frames");
        assert_eq!(frames.buffered(), 0);
        assert_eq!(block_on(frames.read_more()).expect("end"), 0, "clean end");
    }

    #[test]
    fn partial_prefix_then_the_rest() {
        let sent = frame(PRODUCE, 7, 50, 9);
        let chunks = vec![sent[..2].to_vec(), sent[2..3].to_vec(), sent[3..].to_vec()];
        let mut frames = FrameReader::new(Script::new(chunks));
        assert_eq!(&next(&mut frames).expect("frame")[..], &sent[4..]);
        assert_eq!(frames.reader.reads, 3);
    }

    #[test]
    fn partial_body_then_the_rest_with_the_next_frame() {
        let first = frame(FETCH, 1, 3000, 4);
        let second = frame(PRODUCE, 2, 10, 5);
        let chunks = vec![first[..100].to_vec(), [&first[100..], &second[..]].concat()];
        let mut frames = FrameReader::new(Script::new(chunks));
        assert_eq!(&next(&mut frames).expect("first")[..], &first[4..]);
        assert_eq!(&next(&mut frames).expect("second")[..], &second[4..]);
        assert_eq!(frames.reader.reads, 2);
    }

    #[test]
    fn a_frame_larger_than_the_buffer_is_read_into_its_own_body() {
        let large = frame(PRODUCE, 1, 3 * READ_BUFFER_BYTES + 123, 6);
        let small = frame(PRODUCE, 2, 20, 7);
        let mut stream = [&large[..], &small[..]].concat();
        // The peer's segments: the large frame's tail and the next frame arrive together.
        let mut chunks = Vec::new();
        while !stream.is_empty() {
            let n = stream.len().min(50_000);
            chunks.push(stream.drain(..n).collect::<Vec<u8>>());
        }
        let mut frames = FrameReader::new(Script::new(chunks));
        let body = next(&mut frames).expect("large");
        assert_eq!(&body[..], &large[4..]);
        assert_eq!(&next(&mut frames).expect("small")[..], &small[4..]);
        assert_eq!(block_on(frames.read_more()).expect("end"), 0);
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_its_body() {
        let sent = frame(PRODUCE, 1, 1000, 1);
        let mut frames =
            FrameReader::new(Script::new(vec![sent[..4].to_vec(), sent[4..].to_vec()]));
        let refused = block_on(frames.read_frame_size(100));
        assert!(
            matches!(
                refused,
                Err(FrameReadError::Frame(FrameError::TooLarge {
                    size: 1008,
                    limit: 100
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(frames.reader.reads, 1, "the body was not read");
        let mut frames = FrameReader::new(Script::new(vec![0i32.to_be_bytes().to_vec()]));
        assert!(matches!(
            block_on(frames.read_frame_size(100)),
            Err(FrameReadError::Frame(FrameError::NonPositiveSize {
                size: 0
            }))
        ));
    }

    #[test]
    fn the_end_of_the_stream_mid_frame_is_an_unexpected_eof() {
        let small = frame(PRODUCE, 1, 100, 1);
        let large = frame(PRODUCE, 1, 2 * READ_BUFFER_BYTES, 1);
        for (what, stream) in [
            ("mid-prefix", &small[..2]),
            ("mid-body", &small[..50]),
            ("mid-large-body", &large[..100_000]),
        ] {
            let mut frames = FrameReader::new(Script::new(vec![stream.to_vec()]));
            match next(&mut frames) {
                Err(FrameReadError::Io(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn produce_frames_are_slices_of_the_buffer_and_others_are_copied() {
        let sent = [
            frame(PRODUCE, 1, 10, 1),
            frame(PRODUCE, 2, 10, 2),
            frame(FETCH, 3, 10, 3),
        ];
        let mut frames = FrameReader::new(Script::new(vec![sent.concat()]));
        let first = next(&mut frames).expect("first");
        let second = next(&mut frames).expect("second");
        let third = next(&mut frames).expect("third");
        let after_first = first.as_ptr() as usize + first.len() + FRAME_PREFIX_BYTES;
        assert_eq!(
            second.as_ptr() as usize,
            after_first,
            "adjacent in the buffer"
        );
        let after_second = second.as_ptr() as usize + second.len() + FRAME_PREFIX_BYTES;
        assert_ne!(third.as_ptr() as usize, after_second, "copied out");
        assert_eq!(third.capacity(), third.len(), "in an allocation of its own");
    }

    #[test]
    fn the_buffer_is_reused_once_its_frames_are_dropped() {
        let sent: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(PRODUCE, i, 10_000, i as u8))
            .collect();
        let mut frames = FrameReader::new(Script::new(sent.clone()));
        let first = next(&mut frames).expect("first");
        let base = first.as_ptr() as usize - FRAME_PREFIX_BYTES;
        drop(first);
        for s in &sent[1..] {
            let body = next(&mut frames).expect("frame");
            assert_eq!(&body[..], &s[4..]);
            let at = body.as_ptr() as usize;
            assert!(
                at > base && at + body.len() <= base + READ_BUFFER_BYTES,
                "same allocation"
            );
        }
    }

    #[test]
    fn frames_still_in_use_keep_their_bytes_when_the_buffer_moves_on() {
        let sent: Vec<Vec<u8>> = (0..40).map(|i| frame(PRODUCE, i, 9_999, i as u8)).collect();
        // Each read finds a frame and a half: the buffer keeps a partial frame when it moves.
        let stream = sent.concat();
        let chunks = stream.chunks(15_000).map(<[u8]>::to_vec).collect();
        let mut frames = FrameReader::new(Script::new(chunks));
        let kept: Vec<BytesMut> = sent
            .iter()
            .map(|_| next(&mut frames).expect("frame"))
            .collect();
        for (body, s) in kept.iter().zip(&sent) {
            assert_eq!(&body[..], &s[4..]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any frames cut at any read boundaries come out whole and in order.
        #[test]
        fn frames_survive_any_segmentation(
            sizes in prop::collection::vec(
                (prop_oneof![3 => 0usize..20_000, 1 => 0usize..3 * READ_BUFFER_BYTES], any::<bool>()),
                1..12,
            ),
            cuts in prop::collection::vec(1usize..100_000, 1..40),
        ) {
            let sent: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, (extra, produce))| {
                    let key = if *produce { PRODUCE } else { FETCH };
                    frame(key, i as i32, *extra, i as u8)
                })
                .collect();
            let mut stream = sent.concat();
            let mut chunks = Vec::new();
            for cut in cuts.iter().cycle() {
                if stream.is_empty() {
                    break;
                }
                let n = (*cut).min(stream.len());
                chunks.push(stream.drain(..n).collect::<Vec<u8>>());
            }
            let mut frames = FrameReader::new(Script::new(chunks));
            let mut kept = Vec::new();
            for s in &sent {
                let body = next(&mut frames).expect("frame");
                prop_assert_eq!(&body[..], &s[4..]);
                kept.push(body);
            }
            for (body, s) in kept.iter().zip(&sent) {
                prop_assert_eq!(&body[..], &s[4..]);
            }
            prop_assert_eq!(block_on(frames.read_more()).expect("end"), 0);
        }
    }
}
