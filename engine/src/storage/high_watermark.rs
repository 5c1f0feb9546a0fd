//! The high watermark: the end of what consumers may read, kept apart from the written end.
//!
//! - The **written end** (`LogInner::written`) is one past the last offset whose append completed
//!   (its DMA write, and fdatasync under `FlushPolicy::Always`). Appends wait on it.
//! - The **high watermark** (`LogInner::high_watermark`) is what consumers see. A single-replica
//!   log (`high_watermark_follows_log_end`, the default) keeps it equal to the written end. A
//!   replicated log gets it from the replication layer (`PartitionLog::set_high_watermark`: the
//!   leader from its in-sync followers, a follower from its leader), and consumers never see more
//!   than min(that value, the written end): a record the leader has not written itself stays
//!   hidden even if followers already hold it.
//! - A replicated log persists its high watermark in `replication-offset-checkpoint` (Kafka's
//!   file, one per partition directory here), at most every
//!   [`HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS`], on truncation and on close. Recovery takes
//!   min(checkpoint, recovered log end): a restart never exposes records the checkpoint did not
//!   cover. A stale (lower) checkpoint is safe: the leader raises the value again.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::error::StorageError;
use super::files;
use super::log::LogInner;

/// File name of the checkpoint inside the partition directory. Kafka keeps one
/// `replication-offset-checkpoint` per log directory listing every partition; ringbroker keeps one
/// per partition directory, so its entry line is the offset alone.
pub const HIGH_WATERMARK_FILE_NAME: &str = "replication-offset-checkpoint";

/// How often a replicated log writes its high watermark at most: Kafka's default
/// `replica.high.watermark.checkpoint.interval.ms`. Writing on every change would cost a file
/// write and two fsyncs per produce round; a stale value only hides records after a restart
/// until the leader's next fetch response.
#[cfg(not(test))]
pub const HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS: u64 = 5_000;
/// Tests do not wait five seconds for a checkpoint.
#[cfg(test)]
pub const HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS: u64 = 50;

/// Format version (first line).
const HIGH_WATERMARK_FILE_VERSION: u32 = 0;

/// Checkpoint text: version line, count line (always 1), offset line.
pub(crate) fn encode(high_watermark: i64) -> Vec<u8> {
    format!("{HIGH_WATERMARK_FILE_VERSION}\n1\n{high_watermark}\n").into_bytes()
}

/// The offset of a checkpoint, `None` if the text is not one.
pub(crate) fn decode(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines().map(str::trim);
    let version_ok = lines.next()? == HIGH_WATERMARK_FILE_VERSION.to_string();
    let count_ok = lines.next()? == "1";
    let offset: i64 = lines.next()?.parse().ok()?;
    let rest_empty = lines.all(str::is_empty);
    (version_ok && count_ok && rest_empty && offset >= 0).then_some(offset)
}

/// The checkpointed high watermark in `dir`; `None` when missing or damaged.
pub(crate) async fn load(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(HIGH_WATERMARK_FILE_NAME);
    let Some(bytes) = files::read_small_file(&path).await? else {
        return Ok(None);
    };
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(path = %path.display(), "ignoring a damaged high-watermark checkpoint; consumers see nothing past the log start until the leader sets the high watermark");
    }
    Ok(decoded)
}

/// Replaces the checkpoint in `dir` (atomically, through glommio).
pub(crate) async fn persist(dir: &Path, high_watermark: i64) -> Result<(), StorageError> {
    files::write_file_atomically(&dir.join(HIGH_WATERMARK_FILE_NAME), encode(high_watermark)).await
}

/// The high watermark a log opens with. Single-replica: the recovered log end. Replicated:
/// Kafka's rule, the checkpoint (0 when missing) clamped to `[log_start_offset, log_end_offset]`.
pub(crate) fn recovered(
    follows_log_end: bool,
    checkpoint: Option<i64>,
    log_start_offset: i64,
    log_end_offset: i64,
) -> i64 {
    if follows_log_end {
        return log_end_offset;
    }
    checkpoint
        .unwrap_or(0)
        .clamp(log_start_offset.min(log_end_offset), log_end_offset)
}

/// The high watermark consumers may see now (see the module doc).
pub(crate) fn effective(inner: &LogInner) -> i64 {
    let written = inner.written.get();
    if inner.high_watermark_follows_log_end.get() {
        written
    } else {
        inner.replicated_high_watermark.get().min(written)
    }
}

/// Raises the high watermark to [`effective`] (after a write completed or the replication layer
/// set a new value) and, for a replicated log, schedules its checkpoint.
pub(crate) fn refresh(inner: &Rc<LogInner>) {
    let target = effective(inner);
    if target <= inner.high_watermark.get() {
        return;
    }
    inner.high_watermark.advance(target);
    if !inner.high_watermark_follows_log_end.get() {
        schedule_checkpoint(inner);
    }
}

/// Has the appender write the checkpoint within [`HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS`] (one
/// timer per interval, however many changes).
fn schedule_checkpoint(inner: &Rc<LogInner>) {
    {
        let mut state = inner.state.borrow_mut();
        if state.high_watermark_checkpoint_scheduled || state.closed {
            return;
        }
        state.high_watermark_checkpoint_scheduled = true;
    }
    // Weak: a pending checkpoint must not keep a dropped log alive.
    let weak = Rc::downgrade(inner);
    glommio::spawn_local(async move {
        glommio::timer::sleep(Duration::from_millis(HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS)).await;
        if let Some(inner) = weak.upgrade() {
            {
                let mut state = inner.state.borrow_mut();
                state.high_watermark_checkpoint_scheduled = false;
                state.high_watermark_checkpoint_due = true;
            }
            super::appender::kick(&inner);
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_text_round_trips() {
        assert_eq!(encode(1234), b"0\n1\n1234\n");
        assert_eq!(decode(&encode(1234)), Some(1234));
        assert_eq!(decode(&encode(0)), Some(0));
        for damaged in [
            &b""[..],
            b"0\n1\n",
            b"1\n1\n5\n",
            b"0\n2\n5\n",
            b"0\n1\n-5\n",
            b"0\n1\nx\n",
            b"0\n1\n5\n6\n",
        ] {
            assert_eq!(
                decode(damaged),
                None,
                "{:?}",
                String::from_utf8_lossy(damaged)
            );
        }
    }

    #[test]
    fn recovery_clamps_the_checkpoint() {
        assert_eq!(
            recovered(true, Some(3), 0, 10),
            10,
            "single replica: the log end"
        );
        assert_eq!(recovered(false, Some(3), 0, 10), 3);
        assert_eq!(
            recovered(false, Some(30), 0, 10),
            10,
            "never past the log end"
        );
        assert_eq!(recovered(false, None, 0, 10), 0, "missing: nothing exposed");
        assert_eq!(recovered(false, None, 5, 10), 5, "not below the log start");
        assert_eq!(recovered(false, Some(2), 5, 10), 5);
    }
}
