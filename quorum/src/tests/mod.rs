//! End-to-end tests of the quorum on real executors, files and 127.0.0.1 sockets.

mod cluster;
mod harness;
mod rpc;
mod single_voter;
