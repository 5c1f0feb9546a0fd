//! The health of the broker's data directory, as Kafka's log directories in KRaft (KIP-858): a
//! directory holding a log that cannot be written is *offline*, the broker says so in its
//! heartbeats, and the controller takes the broker out of every ISR and moves its leaderships
//! away (`cluster::controller::heartbeat`); the broker joins ISRs again only once it reports the
//! directory online (a leader's AlterPartition adding it is refused until then, INELIGIBLE_REPLICA).
//!
//! ringbroker has one data directory, so "offline" is about the whole broker's storage. A log
//! cannot be written when a write failed: for lack of space it is suspended (and takes appends
//! again once space is back, `storage::rollback`), otherwise it is fenced until a restart. Kafka
//! marks a directory offline for good and halts a broker whose every directory failed; ringbroker
//! keeps the broker up (it still serves reads of what it holds) and lets the directory come back
//! online once every log takes writes again, because a full disk is the common failure and it
//! heals without a restart.
//!
//! Each shard's monitor looks at its logs every [`LOG_DIR_CHECK_INTERVAL`] and sets its flag in the
//! broker-wide [`LogDirHealth`]; shard 0's heartbeat reads them all. A suspended log that nobody
//! appends to (a partition whose leadership moved away, whose producers stopped) would stay
//! suspended, and the directory offline, for ever: the monitor lets such a log try again once the
//! file system has room for a segment's preallocation ([`RESUME_FREE_BYTES_MIN`]).

use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::groups::{OFFSETS_TOPIC_NAME, OFFSETS_TOPIC_PARTITIONS};
use crate::shard::Shard;
use crate::storage::{LogHealth, PartitionLog, PREALLOCATE_STEP_BYTES};

/// How often each shard looks at its logs: half the broker heartbeat interval (500 ms), so that a
/// failed write reaches the controller within about one heartbeat.
pub const LOG_DIR_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Free bytes the data directory's file system needs before an idle suspended log may try to
/// write again: one preallocation step, what the next segment or the next step of the active one
/// takes. Less would only fail again (and flap the directory between online and offline).
pub const RESUME_FREE_BYTES_MIN: u64 = PREALLOCATE_STEP_BYTES;

/// Which shards hold a log that cannot be written (shared by every shard of the broker).
#[derive(Debug)]
pub struct LogDirHealth {
    offline: Vec<AtomicBool>,
}

impl LogDirHealth {
    pub fn new(shards: usize) -> LogDirHealth {
        LogDirHealth {
            offline: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Records whether `shard` holds a log that cannot be written; returns the previous value.
    pub fn set(&self, shard: usize, offline: bool) -> bool {
        self.offline
            .get(shard)
            .is_some_and(|flag| flag.swap(offline, Ordering::Relaxed))
    }

    /// Whether the data directory is offline: some shard holds a log that cannot be written.
    pub fn offline(&self) -> bool {
        self.offline.iter().any(|flag| flag.load(Ordering::Relaxed))
    }
}

/// Runs for the life of the shard (see the module doc).
pub fn spawn_monitor(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(LOG_DIR_CHECK_INTERVAL).await;
            if shard.stop.load(Ordering::Relaxed) {
                return;
            }
            check(&shard);
        }
    })
    .detach();
}

fn check(shard: &Shard) {
    let logs = logs_of(shard);
    let has_room =
        || free_bytes(&shard.config.data_dir).is_some_and(|free| free >= RESUME_FREE_BYTES_MIN);
    let mut room = None;
    let mut failing = Vec::new();
    for log in &logs {
        match log.health() {
            LogHealth::Online => {}
            LogHealth::Fenced => failing.push(log),
            LogHealth::Suspended => {
                if !*room.get_or_insert_with(has_room) || !log.resume_appends_if_due() {
                    failing.push(log);
                }
            }
        }
    }
    let offline = !failing.is_empty();
    let was_offline = shard.log_dir.set(shard.id, offline);
    if offline && !was_offline {
        let first = failing.first().map(|log| log.dir().display().to_string());
        tracing::error!(shard = shard.id, logs = failing.len(), first = ?first, "partition logs cannot be written: reporting the data directory offline (out of every ISR, no leaderships)");
    } else if was_offline && !offline {
        tracing::info!(
            shard = shard.id,
            "every partition log takes writes again: reporting the data directory online"
        );
    }
}

/// Every log this shard owns, `__consumer_offsets` included.
fn logs_of(shard: &Shard) -> Vec<PartitionLog> {
    let mut logs = shard.all_logs();
    logs.extend(
        (0..OFFSETS_TOPIC_PARTITIONS)
            .filter(|partition| shard.owner_of(OFFSETS_TOPIC_NAME, *partition) == shard.id)
            .filter_map(|partition| shard.log(OFFSETS_TOPIC_NAME, partition)),
    );
    logs
}

/// Bytes an unprivileged writer may still allocate on the file system of `dir`; `None` when it
/// cannot be asked (then no idle log is resumed: appends still resume it).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the size statvfs fills. A blocking call, but a cheap one (no I/O beyond
    // the superblock the kernel holds), made at most every check interval when a log is suspended.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it initialised the whole struct.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
