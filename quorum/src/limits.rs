//! The crate's fixed limits, in one place: what bounds memory and disk when a peer, a client or a
//! damaged file says otherwise. Tunables a deployment may change are in [`crate::QuorumConfig`].

/// Largest state-machine snapshot the quorum stores and sends. KRaft metadata snapshots of big
/// clusters (hundreds of thousands of partitions) are tens of MiB; a snapshot travels in one
/// frame and is held in memory a few times over while it is sent, so this also bounds that.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Ceiling of [`crate::QuorumConfig::max_entry_bytes`]: an entry travels in one raft message
/// and one frame. KRaft's record batches are at most 8 MiB (KafkaRaftClient's
/// `MAX_BATCH_SIZE_BYTES`), so 16 MiB leaves room while keeping a frame far from the snapshot's size.
pub const MAX_ENTRY_BYTES_CEILING: usize = 16 << 20;

/// Room for the framing and encoding around a payload (flatbuffer table, protobuf fields).
pub const ENVELOPE_BYTES: usize = 64 << 10;

/// Largest frame the RPC layer reads or writes (size prefix excluded): one snapshot message with
/// its envelope. A peer announcing more is cut off before anything is allocated.
pub const MAX_FRAME_BYTES: usize = MAX_SNAPSHOT_BYTES + ENVELOPE_BYTES;

/// Largest record the log scan accepts: one entry at the ceiling plus its encoding. A torn
/// length field above it is damage, not an allocation request.
pub const MAX_LOG_RECORD_BYTES: usize = MAX_ENTRY_BYTES_CEILING + ENVELOPE_BYTES;

/// Largest raft log file loaded at start. The log is compacted at every snapshot, so it holds
/// about `snapshot_interval_entries + compaction_retained_entries` entries; metadata records are
/// a few hundred bytes, so 2 GiB means something other than this quorum grew the file.
pub const MAX_LOG_FILE_BYTES: u64 = 2 << 30;

/// Largest snapshot file: the snapshot and its header.
pub const MAX_SNAPSHOT_FILE_BYTES: u64 = (MAX_SNAPSHOT_BYTES + ENVELOPE_BYTES) as u64;

/// Bytes of committed entries raft-rs hands over in one Ready (its `max_committed_size_per_ready`):
/// a node catching up applies in slices of this size and keeps ticking and answering in between.
pub const MAX_APPLY_BYTES_PER_READY: u64 = 4 << 20;

/// Raft messages received from peers and not yet stepped by the driver. When full, the
/// connections that carry them wait (TCP backpressure) instead of buffering more.
pub const MAX_QUEUED_INBOUND_RAFT_MESSAGES: usize = 4096;

/// Events (messages, proposals) the driver takes in before it writes and sends what they
/// produced: one fdatasync covers the whole batch, yet a flood cannot delay the ticks for long.
pub const MAX_EVENTS_PER_READY: usize = 256;
