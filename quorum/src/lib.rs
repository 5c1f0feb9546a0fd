//! ringbroker's metadata quorum: a Raft group of controllers, like Kafka's KRaft, built on
//! raft-rs (sans-IO) and driven from one glommio task. Three parts, one folder each:
//!
//! - [`storage`]: raft-rs's `Storage` on durable files (log records with CRC32C and one
//!   fdatasync per append, an atomically replaced snapshot, compaction, torn-tail recovery);
//! - [`node`]: the driver task and the [`Quorum`] handle (propose, leadership, committed reads);
//! - [`rpc`]: the controller listener's frames, Raft traffic between voters, and requests from
//!   brokers ([`RpcHandler`], [`RpcClient`]).
//!
//! Nothing here blocks the executor thread: file I/O goes through glommio's io_uring files
//! (buffered, fdatasync on the ring), directory creation through glommio's blocking pool.

pub mod config;
pub mod error;
pub mod limits;
mod logger;
pub mod node;
pub mod rpc;
pub mod state_machine;
pub mod storage;
pub mod watch;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use config::QuorumConfig;
pub use error::{Compacted, ProposeError, QuorumError, Stopped};
pub use node::{Quorum, QuorumStatus, Role, VoterStatus};
pub use rpc::{RpcClient, RpcClientConfig, RpcError, RpcHandler};
pub use state_machine::StateMachine;
