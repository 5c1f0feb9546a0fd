//! Consumer-protocol groups (KIP-848, `group.protocol=consumer`): the broker computes the assignment. Each
//! member heartbeats (ConsumerGroupHeartbeat) with its subscription and the partitions it owns; the
//! coordinator bumps the group epoch when membership, subscriptions or subscribed topics change, computes
//! a new target assignment with a server-side assignor, and moves every member towards it partition by
//! partition: a member first revokes what it must give up, and only then do others get those partitions.
//! There is no stop-the-world rebalance.
//!
//! Module map: `values` (what the log stores), `model` (the group and member state and its indexes),
//! `subscription` (topics, metadata hash, regular expressions), `assignor` (uniform, range), `reconcile`
//! (one member's next assignment), `heartbeat` (the request: validation, join, leave, answer), `fencing`
//! (removing members: leave, session and revocation timeouts), `records` (records of a change, the
//! snapshot for compaction, the replay at start-up), `describe` (ConsumerGroupDescribe, ListGroups).

pub mod assignor;
pub mod describe;
pub mod fencing;
pub mod heartbeat;
pub mod model;
pub mod reconcile;
pub mod records;
pub mod subscription;
pub mod values;
