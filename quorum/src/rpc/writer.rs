//! The writing half of a connection as a task: it takes whole frames from a bounded queue and
//! writes them, several per `write` when they are queued together (glommio does not buffer
//! socket writes: one `send` per call).

use futures::io::{AsyncWrite, AsyncWriteExt};
use futures::FutureExt;
use glommio::channels::local_channel::LocalReceiver;

/// Frames gathered into one socket write at most (one bigger frame goes alone).
pub const WRITE_COALESCE_BYTES: usize = 256 << 10;

/// Writes queued frames until the queue closes or a write fails; returns the error, if any.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    queue: LocalReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(mut buffer) = queue.recv().await {
        while buffer.len() < WRITE_COALESCE_BYTES {
            match queue.recv().now_or_never() {
                Some(Some(next)) => buffer.extend_from_slice(&next),
                _ => break,
            }
        }
        writer.write_all(&buffer).await?;
    }
    writer.flush().await?;
    writer.close().await
}
